"""`create_rstar_graph`: rStar as a LangGraph ``StateGraph``.

Topology::

    START -> init -> controller -(Send per action)-> a1_one_step | a2_remaining_steps |
                        ^                              a3_subquestion | a4_reanswer_subquestion |
                        |                              a5_rephrase_question
                        +------------------------------------+
             controller -> discriminate -> finalize -> END

``controller`` is the async MCTS controller: it back-propagates finished rollouts, starts new ones
(up to ``rollouts_in_flight``) and walks each rollout until it needs an expansion; every action
allowed at every node to expand goes out as one ``Send``, so a wave's model calls run
concurrently. All state is JSON-native, so any checkpointer can pause and resume a search.

Every model call of a run is made under the question's affinity key (:func:`question_key`), so
a router over several replicas keeps one question's calls on the replica whose prefix cache
holds its prompt and tree.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.runtime import Runtime
from langgraph.types import Overwrite, RetryPolicy, Send
from typing_extensions import TypedDict

from langgraph_rstar import events
from langgraph_rstar.actions import ACTION_FUNCTIONS
from langgraph_rstar.backends import BackendError, BackendLike, affinity_key, as_backend
from langgraph_rstar.backends.tracing import llm_run_context
from langgraph_rstar.config import RStarConfig, RStarContext, resolve_config
from langgraph_rstar.discriminator import (
    Verification,
    select_final,
    skipped_verification,
    verify_candidates,
)
from langgraph_rstar.nodes import node
from langgraph_rstar.prompts import PromptPack
from langgraph_rstar.search import (
    ACTIONS,
    Candidate,
    Expansion,
    Rollout,
    SearchSettings,
    Spent,
    TreeNode,
    advance,
    collect_candidates,
    generator_vote,
    make_root,
    merge_nodes,
    path_context,
)


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
    candidates: list[Candidate]
    verification: Verification
    usage: Annotated[dict[str, dict[str, int]], add_usage]
    budget_exhausted: str | None  # the budget limit that stopped the search, if one did
    discriminator_error: str | None  # why the discriminator failed (the generator's vote won)


class RStarState(RStarInput, RStarOutput, total=False):
    """The whole run state: the tree is a flat map keyed by node id."""

    config: dict[str, Any]
    started_at: float  # wall clock (time.time()) when the search started, for max_seconds
    nodes: Annotated[dict[str, TreeNode], merge_nodes]
    rollouts: dict[str, Rollout]
    expansions: list[Expansion]


class ActionRequest(TypedDict):
    """A ``Send`` payload: one action for one node, with just the path text it needs."""

    action: str
    context: dict[str, Any]
    config: dict[str, Any]


def question_key(question: str) -> str:
    """The affinity key of a question's model calls: a digest of its text, the same in every
    process (so shards on several machines route a question alike).

    Example:
        >>> question_key("What is 2 + 3?") == question_key("What is 2 + 3?")
        True
    """
    digest = hashlib.blake2b(question.strip().encode("utf-8"), digest_size=8).hexdigest()
    return f"q-{digest}"


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


def _spent(state: Mapping[str, Any]) -> Spent:
    started = state.get("started_at")
    return Spent.from_usage(state.get("usage"), time.time() - started if started else 0.0)


def render_answer(pack: PromptPack, steps: Sequence[str], answer: str | None) -> str:
    """The text users read (the AIMessage's content): the steps, then ``Final answer: ...``."""
    return f"{pack.render_steps(steps)}\n\nFinal answer: {answer}" if steps else str(answer)


def create_rstar_graph(
    target: BackendLike,
    *,
    discriminator: BackendLike | None = None,
    config: RStarConfig | None = None,
    retry_policy: RetryPolicy | None = None,
) -> StateGraph[RStarState, RStarContext, RStarInput, RStarOutput]:
    """Build the rStar graph (uncompiled: you choose the checkpointer, cache and name).

    Args:
        target: the generator SLM: an ``LLMBackend`` (e.g. ``OpenAICompatibleLLM``), a LangChain
            chat model or LLM, or a ``"provider:model"`` string (see ``as_backend``).
        discriminator: the discriminator SLM, the same kinds; ``None`` reuses ``target``
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
    target = as_backend(target, role="target")
    disc = target if discriminator is None else as_backend(discriminator, role="discriminator")

    async def init(state: RStarState, runtime: Runtime[RStarContext]) -> dict[str, Any]:
        cfg = resolve_config(base, runtime.context)
        question = _question_from(state)
        cfg.prompt_pack()  # fail early on a bad pack
        return {
            "question": question,
            "config": cfg.to_dict(),
            "nodes": Overwrite({"0": make_root(question)}),
            "rollouts": {},
            "expansions": [],
            "usage": Overwrite({}),
            "started_at": time.time(),
            "budget_exhausted": None,
            "discriminator_error": None,
        }

    async def controller(state: RStarState, runtime: Runtime[RStarContext]) -> dict[str, Any]:
        spent = _spent(state)
        step = advance(
            state["nodes"],
            state.get("rollouts") or {},
            SearchSettings.from_config(state["config"]),
            spent,
        )
        write = runtime.stream_writer
        if step.exhausted:
            write(events.budget_exhausted(step.exhausted, spent, state, step.stopped))
            return {
                "nodes": step.nodes,
                "rollouts": step.rollouts,
                "expansions": [],
                "budget_exhausted": step.exhausted,
            }
        # announce starts first: a rollout may start and finish within this one step
        for rid in step.started:
            write(events.rollout_started(rid, state["config"]["num_rollouts"]))
        for run in step.finished:
            end = merge_nodes(state["nodes"], step.nodes)[run["path"][-1]]
            write(events.rollout_finished(run, end))
        return {"nodes": step.nodes, "rollouts": step.rollouts, "expansions": step.expansions}

    def dispatch(state: RStarState) -> list[Send] | str:
        expansions = state.get("expansions") or []
        if not expansions:
            return "discriminate"
        return [
            Send(
                action,
                ActionRequest(
                    action=action,
                    context=dict(path_context(state["nodes"], exp["node_id"], exp["rollout"])),
                    config=state["config"],
                ),
            )
            for exp in expansions
            for action in exp["actions"]
        ]

    def make_action_node(action: str):
        fn = ACTION_FUNCTIONS[action]

        async def run_action(
            request: ActionRequest, runtime: Runtime[RStarContext], config: RunnableConfig
        ):
            cfg = RStarConfig.from_dict(request["config"])
            ctx = request["context"]
            parent = ctx["node_id"]
            about = {
                "rstar_action": action,
                "rstar_node_id": parent,
                "rstar_rollout": ctx["rollout"],
                "rstar_depth": ctx["depth"],
            }
            with (
                llm_run_context(config, metadata=about),
                affinity_key(question_key(ctx["question"])),
            ):
                result = await fn(ctx, target, cfg.prompt_pack(), cfg)  # type: ignore[arg-type]
            runtime.stream_writer(events.node_expanded(action, parent, result["nodes"]))
            return {"nodes": result["nodes"], "usage": {"target": result["usage"]}}

        run_action.__name__ = action
        return run_action

    async def discriminate(
        state: RStarState, runtime: Runtime[RStarContext], config: RunnableConfig
    ) -> dict[str, Any]:
        cfg = RStarConfig.from_dict(state["config"])
        candidates = collect_candidates(state["nodes"])
        vote = generator_vote(candidates, cfg.task)
        about = {
            "rstar_action": "discriminate",
            "rstar_node_ids": [c["node_id"] for c in candidates],
        }
        out: dict[str, Any] = {
            "candidates": candidates,
            "generator_answer": vote.answer,
            "generator_confidence": vote.confidence,
        }
        # A spent budget skips the check; a dead discriminator falls back to the generator's
        # vote. Both are flagged in the state and the events, never silent.
        limit = state.get("budget_exhausted") or SearchSettings.from_config(
            state["config"]
        ).exhausted(_spent(state))
        try:
            if limit:
                verification = skipped_verification("budget")
            else:
                with (
                    llm_run_context(config, metadata=about),
                    affinity_key(question_key(state["question"])),
                ):
                    verification = await verify_candidates(
                        state["question"],
                        candidates,
                        llm=disc,
                        pack=cfg.prompt_pack(),
                        config=cfg,
                        on_check=lambda c: runtime.stream_writer(events.candidate_verified(c)),
                        on_start=lambda n, k: runtime.stream_writer(
                            events.verification_started(n, k)
                        ),
                    )
        except BackendError as exc:
            error = f"{type(exc).__name__}: {exc}"
            runtime.stream_writer(events.discriminator_failed(error))
            spent = exc.usage.as_dict() if exc.usage is not None else {}
            verification = skipped_verification("discriminator failed", spent)
            out["discriminator_error"] = error
        if limit and not state.get("budget_exhausted"):
            runtime.stream_writer(events.budget_exhausted(limit, _spent(state), state, []))
            out["budget_exhausted"] = limit
        return {
            **out,
            "verification": verification,
            "usage": {"discriminator": verification["usage"]},
        }

    async def finalize(state: RStarState, runtime: Runtime[RStarContext]) -> dict[str, Any]:
        cfg = RStarConfig.from_dict(state["config"])
        final = select_final(state.get("candidates") or [], state["verification"], cfg)
        runtime.stream_writer(events.final_answer(final, state))
        steps = final["trajectory"]
        content = render_answer(cfg.prompt_pack(), steps, final["answer"])
        return {
            "answer": final["answer"],
            "confidence": final["confidence"],
            "trajectory": steps,
            "selection": final["method"],
            "messages": [
                AIMessage(
                    content=content,
                    name="rstar",
                    # degraded answers are flagged to the parent agent as well
                    response_metadata={
                        "budget_exhausted": state.get("budget_exhausted"),
                        "discriminator_error": state.get("discriminator_error"),
                    },
                )
            ],
        }

    builder = StateGraph(
        RStarState, context_schema=RStarContext, input_schema=RStarInput, output_schema=RStarOutput
    )
    builder.add_node("init", node(init))
    builder.add_node("controller", node(controller))
    for action in ACTIONS:
        builder.add_node(
            action,
            node(make_action_node(action)),
            input_schema=ActionRequest,
            retry_policy=retry_policy,
        )
        builder.add_edge(action, "controller")
    builder.add_node("discriminate", node(discriminate), retry_policy=retry_policy)
    builder.add_node("finalize", node(finalize))
    builder.add_edge(START, "init")
    builder.add_edge("init", "controller")
    builder.add_conditional_edges("controller", dispatch, [*ACTIONS, "discriminate"])
    builder.add_edge("discriminate", "finalize")
    builder.add_edge("finalize", END)
    return builder


__all__ = [
    "ActionRequest",
    "RStarInput",
    "RStarOutput",
    "RStarState",
    "create_rstar_graph",
    "question_key",
    "render_answer",
]
