"""`create_rstar_graph`: rStar as a LangGraph ``StateGraph``.

Topology::

    START -> init -> search -> discriminate -> finalize -> END
                       |
                       +-- one durable task per action taken, named after the action, each
                           running the ``expand`` subgraph:

                           START -> a1_one_step | a2_remaining_steps | a3_subquestion |
                                    a4_reanswer_subquestion | a5_rephrase_question -> END

``search`` runs the MCTS (:mod:`langgraph_rstar.controller`): up to ``rollouts_in_flight``
rollouts at once, each resuming as soon as the expansion it waits for has returned (no barrier
between waves). Every action it takes is a LangGraph task named after the action that runs the
compiled ``expand`` graph, whose five nodes are the actions: they show up by name in
``get_graph(xray=True)``, in ``updates``/``tasks`` streams (the tasks at the top level, the
nodes with ``subgraphs=True``) and in traces (a task run, the ``expand`` graph run, then the
action's node run holding its LLM runs). Each task's result is checkpointed when it returns,
so a run resumed after a crash re-sends no finished action. All state is JSON-native, so any
checkpointer can pause and resume a search.

Every model call of a run is made under the question's affinity key (:func:`question_key`), so
a router over several replicas keeps one question's calls on the replica whose prefix cache
holds its prompt and tree.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import Overwrite, RetryPolicy
from typing_extensions import TypedDict

from langgraph_rstar import events
from langgraph_rstar.actions import ACTION_FUNCTIONS
from langgraph_rstar.backends import (
    BackendError,
    BackendLike,
    LLMBackend,
    affinity_key,
    as_backend,
)
from langgraph_rstar.backends.tracing import llm_run_context
from langgraph_rstar.config import RStarConfig, RStarContext, resolve_config
from langgraph_rstar.controller import (
    USAGE_KEYS,
    ActionOutput,
    ActionRequest,
    Controller,
    compact_nodes,
    expand_nodes,
    is_durable,
)
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
    Rollout,
    SearchSettings,
    Spent,
    TreeNode,
    collect_candidates,
    generator_vote,
    make_root,
    merge_nodes,
)
from langgraph_rstar.sync_bridge import running_sync
from langgraph_rstar.worker import HomeLoopBackend, compares_slowly, run_on_worker


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
    budget_exhausted: str | None  # the budget limit that stopped the search, if one did
    discriminator_error: str | None  # why the discriminator failed (the generator's vote won)


class RStarState(RStarInput, RStarOutput, total=False):
    """The whole run state: the tree is a flat map keyed by node id."""

    config: dict[str, Any]
    started_at: float  # wall clock (time.time()) when the search started, for max_seconds
    nodes: Annotated[dict[str, TreeNode], _written_once(merge_tree)]
    rollouts: Annotated[dict[str, Rollout], _written_once()]


class ExpandState(TypedDict, total=False):
    """The ``expand`` subgraph's state: one action's request (in), its new children (out)."""

    action: str
    context: dict[str, Any]
    config: dict[str, Any]
    node_id: str
    nodes: dict[str, dict[str, Any]]
    usage: list[int]


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


@dataclass(frozen=True)
class _ConfigKey:
    text: str  # repr of the config dict: equal dicts of one search give equal keys
    data: Mapping[str, Any] = field(compare=False)


# Every action of a search carries the same config dict; validating it (pydantic) cost ~0.4 ms
# per action, so the built config is remembered. Bounded; RStarConfig is frozen.
@functools.lru_cache(maxsize=64)
def _config_of(key: _ConfigKey) -> RStarConfig:
    return RStarConfig.from_dict(key.data)


async def _run_action(fn: Any, request: ActionRequest, llm: LLMBackend) -> Any:
    data = request["config"]
    cfg = _config_of(_ConfigKey(repr(data), data))
    return await fn(request["context"], llm, cfg.prompt_pack(), cfg)


def _make_action_node(action: str, target: LLMBackend):
    fn = ACTION_FUNCTIONS[action]

    async def run_action(state: ExpandState, config: RunnableConfig) -> ActionOutput:
        ctx = state["context"]
        about = {
            "rstar_action": action,
            "rstar_node_id": ctx["node_id"],
            "rstar_rollout": ctx["rollout"],
            "rstar_depth": ctx["depth"],
        }
        request = ActionRequest(action=action, context=ctx, config=state["config"])
        with (
            llm_run_context(config, metadata=about),
            affinity_key(question_key(ctx["question"])),
        ):
            if compares_slowly(state["config"]["task"]):
                # Answer reading and voting run on the worker loop, the model calls on this
                # one (worker.py): a slow answer comparison stalls no other search.
                result = await run_on_worker(_run_action, fn, request, HomeLoopBackend(target))
            else:
                result = await _run_action(fn, request, target)
        return ActionOutput(
            node_id=ctx["node_id"],
            action=action,
            nodes=compact_nodes(result["nodes"]),
            usage=[result["usage"].get(k, 0) for k in USAGE_KEYS],
        )

    run_action.__name__ = action
    return run_action


def create_expand_graph(
    target: BackendLike, *, retry_policy: RetryPolicy | None = None
) -> StateGraph[ExpandState, None, ActionRequest, ActionOutput]:
    """The graph of one expansion step: the request's ``action`` picks one of the five action
    nodes, which samples the target model and returns the node's new children (compact).

    ``create_rstar_graph`` compiles it once (``name="expand"``) and its search runs it for every
    action it takes, so the actions are graph nodes with their own streams and traces.

    Example:
        >>> expand = create_expand_graph(llm).compile(name="expand")
        >>> # out = await expand.ainvoke({"action": "a1_one_step", "context": path_context(
        >>> #     nodes, "0"), "config": RStarConfig.preset("fast").to_dict()})
        >>> # out["nodes"]: the root's A1 children, out["usage"]: [requests, prompt, generated]
    """
    backend = as_backend(target, role="target")
    builder = StateGraph(ExpandState, input_schema=ActionRequest, output_schema=ActionOutput)
    for action in ACTIONS:
        builder.add_node(
            action, node(_make_action_node(action, backend)), retry_policy=retry_policy
        )
        builder.add_edge(action, END)
    builder.add_conditional_edges(START, _requested_action, list(ACTIONS))
    return builder


def _requested_action(state: ExpandState) -> str:
    return state["action"]


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
    # The durable task that runs it stores its result, which is what a resume needs; the
    # tasks run it with durability "exit" (controller.py), so it stores no checkpoint of its
    # own. (Not checkpointer=False: LangGraph would then not show it as a subgraph.)
    expand: CompiledStateGraph = create_expand_graph(target, retry_policy=retry_policy).compile(
        name="expand"
    )

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
            "started_at": time.time(),
            "budget_exhausted": None,
            "discriminator_error": None,
        }

    async def search(
        state: RStarState, runtime: Runtime[RStarContext], config: RunnableConfig
    ) -> dict[str, Any]:
        controller = Controller(
            state["nodes"],
            state.get("rollouts") or {},
            state["config"],
            expand,
            runtime.stream_writer,
            started_at=state.get("started_at") or time.time(),
            durable=is_durable(config),
            sync=running_sync(),
        )
        out = await controller.run()
        # The whole tree in one compact write (`merge_tree` restores the full records; no
        # Overwrite, which would also store a snapshot of the channel).
        return {**out, "nodes": compact_nodes(out["nodes"])}

    async def discriminate(
        state: RStarState, runtime: Runtime[RStarContext], config: RunnableConfig
    ) -> dict[str, Any]:
        cfg = RStarConfig.from_dict(state["config"])
        candidates = collect_candidates(state["nodes"])
        vote = (  # (compares answers: off the event loop when that can be slow)
            await asyncio.to_thread(generator_vote, candidates, cfg.task)
            if compares_slowly(cfg.task)
            else generator_vote(candidates, cfg.task)
        )
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
        # The check's answer comparisons run on the worker loop when they may be slow; its
        # progress events come back to this loop in order, before the node returns.
        home = asyncio.get_running_loop()
        write = runtime.stream_writer

        def emit(event: Any) -> None:
            home.call_soon_threadsafe(write, event)

        async def check() -> Verification:
            if not compares_slowly(cfg.task):
                return await _verify(state["question"], candidates, disc, cfg, write)
            return await run_on_worker(
                _verify, state["question"], candidates, HomeLoopBackend(disc), cfg, emit
            )

        try:
            if limit:
                verification = skipped_verification("budget")
            else:
                with (
                    llm_run_context(config, metadata=about),
                    affinity_key(question_key(state["question"])),
                ):
                    verification = await check()
        except BackendError as exc:
            error = f"{type(exc).__name__}: {exc}"
            write(events.discriminator_failed(error))
            spent = exc.usage.as_dict() if exc.usage is not None else {}
            verification = skipped_verification("discriminator failed", spent)
            out["discriminator_error"] = error
        if limit and not state.get("budget_exhausted"):
            write(events.budget_exhausted(limit, _spent(state), state, []))
            out["budget_exhausted"] = limit
        return {
            **out,
            "verification": verification,
            "usage": {"discriminator": verification["usage"]},
        }

    async def finalize(state: RStarState, runtime: Runtime[RStarContext]) -> dict[str, Any]:
        cfg = RStarConfig.from_dict(state["config"])
        # (selection compares answers: off the event loop)
        final = await asyncio.to_thread(
            select_final, state.get("candidates") or [], state["verification"], cfg
        )
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
    builder.add_node("search", node(search))
    builder.add_node("discriminate", node(discriminate), retry_policy=retry_policy)
    builder.add_node("finalize", node(finalize))
    builder.add_edge(START, "init")
    builder.add_edge("init", "search")
    builder.add_edge("search", "discriminate")
    builder.add_edge("discriminate", "finalize")
    builder.add_edge("finalize", END)
    return builder


async def _verify(
    question: str,
    candidates: list[Candidate],
    llm: LLMBackend,
    cfg: RStarConfig,
    emit: Any,
) -> Verification:
    """The mutual-consistency check (runs on the worker loop; ``emit`` sends events home)."""
    return await verify_candidates(
        question,
        candidates,
        llm=llm,
        pack=cfg.prompt_pack(),
        config=cfg,
        on_check=lambda c: emit(events.candidate_verified(c)),
        on_start=lambda n, k: emit(events.verification_started(n, k)),
    )


__all__ = [
    "ActionOutput",
    "ActionRequest",
    "ExpandState",
    "RStarInput",
    "RStarOutput",
    "RStarState",
    "create_expand_graph",
    "create_rstar_graph",
    "question_key",
    "render_answer",
]
