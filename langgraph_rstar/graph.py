"""`create_rstar_graph`: rStar as a LangGraph ``StateGraph``.

Topology::

    START -> init -> search -> discriminate -> finalize -> END
                       |
                       +-- a1_one_step | a2_remaining_steps | a3_subquestion |
                           a4_reanswer_subquestion | a5_rephrase_question   (LangGraph tasks)

``search`` runs the MCTS (:mod:`langgraph_rstar.controller`): up to ``rollouts_in_flight``
rollouts at once, each resuming as soon as the expansion it waits for has returned. Every
action it takes runs as a LangGraph task named after the action, so the five actions show up
by name in ``updates``/``tasks`` streams and in traces, and each result is checkpointed when it
returns: a run resumed after a crash re-sends no finished action. All state is JSON-native,
so any checkpointer can pause and resume a search.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.runtime import Runtime
from langgraph.types import Overwrite, RetryPolicy

from langgraph_rstar import events
from langgraph_rstar.backends import LLMBackend
from langgraph_rstar.config import RStarConfig, RStarContext, resolve_config
from langgraph_rstar.controller import (
    ActionRequest,
    Controller,
    compact_nodes,
    expand_nodes,
    make_action_tasks,
)
from langgraph_rstar.discriminator import Verification, select_final, verify_candidates
from langgraph_rstar.search import (
    Candidate,
    Rollout,
    TreeNode,
    collect_candidates,
    generator_vote,
    make_root,
    merge_nodes,
)
from langgraph_rstar.worker import HomeLoopBackend, run_on_worker


def add_usage(
    left: Mapping[str, Mapping[str, int]] | None, right: Mapping[str, Mapping[str, int]] | None
) -> dict[str, dict[str, int]]:
    """Sum usage counters per endpoint role ("target", "discriminator")."""
    out = {role: dict(counts) for role, counts in (left or {}).items()}
    for role, counts in (right or {}).items():
        bucket = out.setdefault(role, {})
        for key, value in counts.items():
            bucket[key] = bucket.get(key, 0) + value
    return out


def merge_tree(
    left: Mapping[str, TreeNode] | None, right: Mapping[str, Mapping[str, Any]] | None
) -> dict[str, TreeNode]:
    """The tree's reducer: :func:`merge_nodes` of records written compact or in full."""
    return merge_nodes(left, expand_nodes(right or {}))


try:  # langgraph >= 1.2: channels whose checkpoints keep writes only, not a copy per step
    from langgraph.channels.delta import DeltaChannel
except ImportError:  # pragma: no cover - older langgraph: plain reducers, larger checkpoints
    DeltaChannel = None  # type: ignore[assignment,misc]


def _written_once(reducer: Any = None) -> Any:
    """A channel stored in checkpoints as the writes made to it, not also as a value blob.

    The tree, the candidates and the verification are written once or twice per run but are
    large; stored as blobs too, every checkpoint after the write would hold a second copy.
    """
    if DeltaChannel is None:
        return reducer if reducer is not None else (lambda left, right: right)
    if reducer is None:
        return DeltaChannel(lambda state, writes: writes[-1] if writes else state)

    def fold(state: Any, writes: Any) -> Any:
        for write in writes:
            state = reducer(state, write)
        return state

    return DeltaChannel(fold)


class RStarInput(TypedDict, total=False):
    """Input: a ``question``, or ``messages`` whose last human message is the question."""

    question: str
    messages: Annotated[list[AnyMessage], add_messages]


class RStarOutput(TypedDict, total=False):
    """Output: the answer, its confidence and trajectory, and one ``AIMessage`` named "rstar"."""

    messages: Annotated[list[AnyMessage], add_messages]
    question: str
    answer: str | None
    confidence: float
    trajectory: list[str]
    selection: str  # how the answer was chosen
    generator_answer: str | None
    generator_confidence: float
    candidates: Annotated[list[Candidate], _written_once()]
    verification: Annotated[Verification, _written_once()]
    usage: Annotated[dict[str, dict[str, int]], add_usage]


class RStarState(RStarInput, RStarOutput, total=False):
    """The whole run state: the tree is a flat map keyed by node id."""

    config: dict[str, Any]
    nodes: Annotated[dict[str, TreeNode], _written_once(merge_tree)]
    rollouts: Annotated[dict[str, Rollout], _written_once()]


# Set to True in ``configurable`` by a caller that runs the graph without a checkpointer (e.g.
# ``asolve``): the search then skips recording its completion order, which only a resume needs.
NOT_DURABLE = "rstar_without_checkpointer"


def _question_from(state: Mapping[str, Any]) -> str:
    question = state.get("question")
    if not question:
        for message in reversed(state.get("messages") or []):
            if isinstance(message, HumanMessage) or getattr(message, "type", "") == "human":
                question = (
                    message.content if isinstance(message.content, str) else str(message.content)
                )
                break
    question = (question or "").strip()
    if not question:
        raise ValueError("rStar needs a non-empty question (state 'question' or a human message)")
    return question


async def _discriminate(
    question: str, nodes: Mapping[str, TreeNode], config: dict[str, Any], llm: LLMBackend
) -> dict[str, Any]:
    """The mutual-consistency check of the final tree's candidates (runs on the worker loop)."""
    cfg = RStarConfig.from_dict(config)
    candidates = collect_candidates(nodes)
    vote = generator_vote(candidates, cfg.task)
    verification = await verify_candidates(
        question, candidates, llm=llm, pack=cfg.prompt_pack(), config=cfg
    )
    return {
        "candidates": candidates,
        "generator_answer": vote.answer,
        "generator_confidence": vote.confidence,
        "verification": verification,
        "usage": {"discriminator": verification["usage"]},
    }


def create_rstar_graph(
    target: LLMBackend,
    *,
    discriminator: LLMBackend | None = None,
    config: RStarConfig | None = None,
    retry_policy: RetryPolicy | None = None,
) -> StateGraph:
    """Build the rStar graph (uncompiled: you choose the checkpointer, cache and name).

    Args:
        target: backend of the generator SLM (e.g. ``OpenAICompatibleLLM``).
        discriminator: backend of the discriminator SLM; ``None`` reuses ``target``
            (self-discrimination). Set ``use_discriminator=False`` in the config to skip it.
        config: defaults for every run (``RStarConfig.preset("fast")`` when omitted). Each run
            may override any field through the context: ``graph.ainvoke(inp, context={...})``.
        retry_policy: optional LangGraph retry policy for the model-calling nodes (the backend
            already retries transient HTTP errors).

    Returns:
        A ``StateGraph`` with input ``RStarInput`` and output ``RStarOutput``.

    Example:
        >>> from langgraph_rstar import OpenAICompatibleLLM, RStarConfig, create_rstar_graph
        >>> llm = OpenAICompatibleLLM("http://localhost:8000/v1", "Qwen/Qwen2.5-1.5B-Instruct")
        >>> app = create_rstar_graph(llm, config=RStarConfig.preset("fast")).compile()
        >>> # out = await app.ainvoke({"question": "What is 2 + 3 * 4?"})
        >>> # out["answer"], out["confidence"]
    """
    base = config or RStarConfig.preset("fast")
    disc = discriminator or target

    async def init(state: RStarState, runtime: Runtime[RStarContext]) -> dict[str, Any]:
        cfg = resolve_config(base, runtime.context)
        question = _question_from(state)
        cfg.prompt_pack()  # fail early on a bad pack
        return {
            "question": question,
            "config": cfg.to_dict(),
            "nodes": Overwrite({"0": make_root(question)}),
            "rollouts": {},
            "usage": Overwrite({}),
        }

    action_tasks = make_action_tasks(target, retry_policy)

    async def search(
        state: RStarState, runtime: Runtime[RStarContext], config: RunnableConfig
    ) -> dict[str, Any]:
        controller = Controller(
            state["nodes"],
            state.get("rollouts") or {},
            state["config"],
            action_tasks,
            runtime.stream_writer,
            durable=(config.get("configurable") or {}).get(NOT_DURABLE) is not True,
        )
        out = await controller.run()
        # The whole tree in one compact write (`merge_tree` restores the full records; no
        # Overwrite, which would also store a snapshot of the channel).
        return {**out, "nodes": compact_nodes(out["nodes"])}

    async def discriminate(state: RStarState, runtime: Runtime[RStarContext]) -> dict[str, Any]:
        # Answer comparisons run on the worker loop, model calls on this one (worker.py).
        out = await run_on_worker(
            _discriminate, state["question"], state["nodes"], state["config"], HomeLoopBackend(disc)
        )
        for check in out["verification"]["checks"]:
            runtime.stream_writer(events.candidate_verified(check))
        return out

    async def finalize(state: RStarState, runtime: Runtime[RStarContext]) -> dict[str, Any]:
        cfg = RStarConfig.from_dict(state["config"])
        final = await asyncio.to_thread(
            select_final, state.get("candidates") or [], state["verification"], cfg
        )
        runtime.stream_writer(events.final_answer(final))
        steps = final["trajectory"]
        body = cfg.prompt_pack().render_steps(steps)
        content = f"{body}\n\nFinal answer: {final['answer']}" if steps else str(final["answer"])
        return {
            "answer": final["answer"],
            "confidence": final["confidence"],
            "trajectory": steps,
            "selection": final["method"],
            "messages": [AIMessage(content=content, name="rstar")],
        }

    builder = StateGraph(
        RStarState, context_schema=RStarContext, input_schema=RStarInput, output_schema=RStarOutput
    )
    builder.add_node("init", init)
    builder.add_node("search", search)
    builder.add_node("discriminate", discriminate, retry_policy=retry_policy)
    builder.add_node("finalize", finalize)
    builder.add_edge(START, "init")
    builder.add_edge("init", "search")
    builder.add_edge("search", "discriminate")
    builder.add_edge("discriminate", "finalize")
    builder.add_edge("finalize", END)
    return builder


__all__ = [
    "ActionRequest",
    "RStarInput",
    "RStarOutput",
    "RStarState",
    "create_rstar_graph",
]
