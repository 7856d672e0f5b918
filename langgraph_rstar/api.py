"""Plain-asyncio facade: ``await asolve(question, target=...)`` and the sync ``solve(...)``."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.types import Overwrite

from langgraph_rstar.backends import LLMBackend
from langgraph_rstar.config import RStarConfig, resolve_config
from langgraph_rstar.controller import partial_of
from langgraph_rstar.events import RStarEvent, is_rstar_event
from langgraph_rstar.graph import NOT_DURABLE, add_usage, create_rstar_graph, merge_tree
from langgraph_rstar.search import Candidate, TreeNode

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


@dataclass
class RStarResult:
    """The outcome of one rStar run (JSON-exportable with :meth:`to_dict`)."""

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
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)


def _configure(config: RStarConfig | None, overrides: Mapping[str, Any]) -> RStarConfig:
    known = {f.name for f in dataclasses.fields(RStarConfig)} | {"preset"}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"unknown rStar setting(s): {', '.join(unknown)}")
    base = config or RStarConfig.preset("fast", task=overrides.get("task", "gsm8k"))
    return resolve_config(base, dict(overrides))


async def asolve(
    question: str,
    *,
    target: LLMBackend,
    discriminator: LLMBackend | None = None,
    config: RStarConfig | None = None,
    on_event: EventHandler | None = None,
    checkpointer: BaseCheckpointSaver | None = None,
    thread_id: str | None = None,
    **overrides: Any,
) -> RStarResult:
    """Solve one question with rStar.

    Args:
        question: the problem text.
        target: the generator backend.
        discriminator: the discriminator backend (defaults to ``target``).
        config: settings (``RStarConfig.preset("fast")`` by default); ``overrides`` replace fields,
            e.g. ``num_rollouts=8`` or ``task="math500"``.
        on_event: called with every progress event (sync or async callable).
        checkpointer / thread_id: persist the run; after a failure, call again with the same
            question, checkpointer and thread_id to resume. Actions that finished are not re-run;
            only those that were in flight are sent again. A different question on a thread
            with an unfinished run raises ``ValueError``. Without a checkpointer nothing is
            stored (the result is collected from the run's stream).

    Raises:
        ValueError: empty question, bad settings, or a thread busy with another question.
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
    app = create_rstar_graph(target, discriminator=discriminator, config=cfg).compile(
        checkpointer=checkpointer
    )
    run_config: dict[str, Any] = {"configurable": {"thread_id": thread}}
    if checkpointer is None:
        run_config["configurable"][NOT_DURABLE] = True
    graph_input: dict[str, Any] | None = {"question": question}
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
    try:
        async for mode, chunk in app.astream(
            graph_input, run_config, stream_mode=["custom", "updates"]
        ):
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
