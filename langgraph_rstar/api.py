"""Plain-asyncio facade: ``await asolve(question, target=...)`` and the sync ``solve(...)``."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.types import Overwrite

from langgraph_rstar.backends import BackendLike
from langgraph_rstar.config import RStarConfig, resolve_config
from langgraph_rstar.controller import partial_of
from langgraph_rstar.events import RStarEvent, is_rstar_event
from langgraph_rstar.graph import (
    RStarInput,
    add_usage,
    create_rstar_graph,
    merge_tree,
)
from langgraph_rstar.search import Candidate, TreeNode
from langgraph_rstar.settings import check_names

EventHandler = Callable[[RStarEvent], Any] | Callable[[RStarEvent], Awaitable[Any]]


class RStarError(RuntimeError):
    """A run failed; ``partial`` holds what was computed before the failure (tree, usage).

    With a checkpointer and ``thread_id``, calling ``asolve`` again with the same ones resumes the
    run where it stopped instead of starting over.
    """

    def __init__(self, message: str, *, partial: RStarResult | None, thread_id: str):
        super().__init__(message)
        self.partial = partial
        self.thread_id = thread_id


# (checkpointer id, thread id) of the searches running in this process: one at a time per thread.
_RUNNING: set[tuple[int, str]] = set()


class ThreadBusyError(ValueError):
    """Another search is running on the same checkpointer and ``thread_id`` in this process."""


@dataclass
class RStarResult:
    """The outcome of one rStar run (JSON-exportable with :meth:`to_dict`).

    A result can be *degraded* and says so: ``budget_exhausted`` names the budget limit
    (``max_requests``, ``max_generated_tokens`` or ``max_seconds``) that stopped the search
    early, and ``discriminator_error`` is set when the discriminator's endpoint failed and the
    answer is the generator's majority vote. :attr:`warnings` puts both in words.
    """

    question: str
    answer: str | None
    confidence: float
    trajectory: list[str]
    selection: str = ""
    generator_answer: str | None = None
    generator_confidence: float = 0.0
    candidates: list[Candidate] = field(default_factory=list)
    verification: dict[str, Any] = field(default_factory=dict)
    usage: dict[str, dict[str, int]] = field(default_factory=dict)
    tree: dict[str, TreeNode] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    budget_exhausted: str | None = None
    discriminator_error: str | None = None

    @property
    def degraded(self) -> bool:
        """Whether the answer came from less than the configured search (see :attr:`warnings`)."""
        return bool(self.budget_exhausted or self.discriminator_error)

    @property
    def warnings(self) -> list[str]:
        """What limited this result, in words (empty for a complete run)."""
        out = []
        if self.budget_exhausted:
            limit = self.config.get(self.budget_exhausted)
            out.append(
                f"budget {self.budget_exhausted}={limit} exhausted: the search stopped early "
                "and answered from what it had"
                + ("; the discriminator was skipped" if self.discriminator_skipped else "")
            )
        if self.discriminator_error:
            out.append(
                f"the discriminator failed ({self.discriminator_error}); the answer is the "
                "generator's majority vote"
            )
        return out

    @property
    def discriminator_skipped(self) -> bool:
        return self.verification.get("reason") == "budget"

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> RStarResult:
        return cls(
            question=state.get("question", ""),
            answer=state.get("answer"),
            confidence=float(state.get("confidence") or 0.0),
            trajectory=list(state.get("trajectory") or []),
            selection=state.get("selection", ""),
            generator_answer=state.get("generator_answer"),
            generator_confidence=float(state.get("generator_confidence") or 0.0),
            candidates=list(state.get("candidates") or []),
            verification=dict(state.get("verification") or {}),
            usage=dict(state.get("usage") or {}),
            tree=dict(state.get("nodes") or {}),
            config=dict(state.get("config") or {}),
            budget_exhausted=state.get("budget_exhausted"),
            discriminator_error=state.get("discriminator_error"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "warnings": self.warnings}

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)


def _configure(config: RStarConfig | None, overrides: Mapping[str, Any]) -> RStarConfig:
    check_names(RStarConfig, overrides, extra=("preset",))
    base = config or RStarConfig.preset("fast", task=overrides.get("task", "gsm8k"))
    return resolve_config(base, dict(overrides))


async def asolve(
    question: str,
    *,
    target: BackendLike,
    discriminator: BackendLike | None = None,
    config: RStarConfig | None = None,
    on_event: EventHandler | None = None,
    checkpointer: BaseCheckpointSaver | None = None,
    thread_id: str | None = None,
    **overrides: Any,
) -> RStarResult:
    """Solve one question with rStar.

    Args:
        question: the problem text.
        target: the generator: an ``LLMBackend``, a LangChain chat model or LLM, or a
            ``"provider:model"`` string.
        discriminator: the discriminator, the same kinds (defaults to ``target``).
        config: settings (``RStarConfig.preset("fast")`` by default); ``overrides`` replace fields,
            e.g. ``num_rollouts=8`` or ``task="math500"``.
        on_event: called with every progress event (sync or async callable).
        checkpointer / thread_id: persist the run; after a failure, call again with the same
            question, checkpointer and thread_id to resume. Actions that finished are not re-run;
            only those that were in flight are sent again. A different question on a thread
            with an unfinished run raises ``ValueError``. Without a checkpointer nothing is
            stored (the result is collected from the run's stream).

    Raises:
        ValueError: empty question, bad settings, a thread with an unfinished run for another
            question, or (:class:`ThreadBusyError`) a thread already running a search.
        TypeError: a model that is none of the kinds above, or an unknown setting.
        RStarError: the run failed (e.g. the endpoint died); ``.partial`` keeps the tree so far.

    Example:
        >>> import asyncio
        >>> from langgraph_rstar import OpenAICompatibleLLM, asolve
        >>> llm = OpenAICompatibleLLM("http://localhost:8000/v1", "Qwen/Qwen2.5-1.5B-Instruct")
        >>> # result = asyncio.run(asolve("What is 17 * 3?", target=llm))
        >>> # result.answer, result.confidence
    """
    if not isinstance(question, str) or not question.strip():
        raise ValueError("rStar needs a non-empty question")
    cfg = _configure(config, overrides)
    thread = thread_id or f"rstar-{uuid.uuid4().hex}"
    if checkpointer is None:  # nothing stored, nothing shared: no thread to be busy
        return await _ends_with_caller(
            _run(question, target, discriminator, cfg, on_event, None, thread)
        )
    key = (id(checkpointer), thread)
    if key in _RUNNING:
        raise ThreadBusyError(
            f"thread {thread!r} is already running a search on this checkpointer; wait for it "
            "to finish (then call again to get its result or resume it) or use another thread_id"
        )
    _RUNNING.add(key)
    try:
        return await _ends_with_caller(
            _run(question, target, discriminator, cfg, on_event, checkpointer, thread)
        )
    finally:
        _RUNNING.discard(key)


async def _ends_with_caller(run: Awaitable[RStarResult]) -> RStarResult:
    """Await ``run`` in its own task; if the caller is cancelled, cancel it ONCE and wait until
    it has ended.

    The search node keeps its actions in flight between two stream chunks; LangGraph cancels
    them when the run's stream closes. A caller cancelled twice (a server task cancelled while
    it awaits the search it is stopping) would interrupt that clean-up and leave the search
    sending requests with nobody waiting for it.
    """
    inner = asyncio.ensure_future(run)
    try:
        return await asyncio.shield(inner)
    except asyncio.CancelledError:
        inner.cancel()
        while not inner.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait({inner})
        raise


async def _run(
    question: str,
    target: BackendLike,
    discriminator: BackendLike | None,
    cfg: RStarConfig,
    on_event: EventHandler | None,
    checkpointer: BaseCheckpointSaver | None,
    thread: str,
) -> RStarResult:
    app = create_rstar_graph(target, discriminator=discriminator, config=cfg).compile(
        checkpointer=checkpointer
    )
    run_config: RunnableConfig = {"configurable": {"thread_id": thread}}
    graph_input: RStarInput | None = {"question": question}
    if checkpointer is not None:
        previous = await app.aget_state(run_config)
        if previous.next:  # an unfinished run on this thread: resume it, for its question only
            asked = (previous.values or {}).get("question")
            if asked is not None and asked.strip() != question.strip():
                raise ValueError(
                    f"thread {thread!r} holds an unfinished run for a different question "
                    f"({asked[:60]!r}); resume it with that question or use a new thread_id"
                )
            graph_input = None
    # Without a checkpointer nothing is stored: the state is rebuilt from the nodes' updates.
    state: dict[str, Any] = {}
    graph_nodes = set(app.builder.nodes)
    # aclosing: a caller that cancels us between two chunks leaves the stream suspended, with
    # the search node's actions still running; closing it cancels them.
    stream: Any = app.astream(graph_input, run_config, stream_mode=["custom", "updates"])
    try:
        async with contextlib.aclosing(stream):
            async for mode, chunk in stream:
                if mode == "updates":
                    for name, update in chunk.items():
                        if name in graph_nodes and isinstance(update, Mapping):
                            _apply(state, update)
                elif on_event is not None and is_rstar_event(chunk):
                    outcome = on_event(chunk)
                    if asyncio.iscoroutine(outcome):
                        await outcome
    except Exception as exc:
        if checkpointer is not None:
            state = dict((await app.aget_state(run_config)).values or {})
        failed = partial_of(exc)
        if failed is not None:  # what the search had when it failed
            _apply(state, {"nodes": failed["nodes"], "usage": {"target": failed["usage"]}})
        partial = RStarResult.from_state(state) if state else None
        raise RStarError(f"rStar run failed: {exc}", partial=partial, thread_id=thread) from exc
    if checkpointer is not None:
        state = dict((await app.aget_state(run_config)).values or {})
    return RStarResult.from_state(state)


def _apply(state: dict[str, Any], update: Mapping[str, Any]) -> None:
    """Apply one node's update the way the graph's reducers do (for the keys a result reads)."""
    for key, value in update.items():
        if isinstance(value, Overwrite):
            state[key] = value.value
        elif key == "nodes":
            state[key] = merge_tree(state.get(key), value)
        elif key == "usage":
            state[key] = add_usage(state.get(key), value)
        else:
            state[key] = value


def solve(question: str, **kwargs: Any) -> RStarResult:
    """Synchronous :func:`asolve` (owns an event loop; use ``await asolve`` inside async code)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(asolve(question, **kwargs))
    raise RuntimeError("solve() was called inside a running event loop; use `await asolve(...)`")
