"""Model calls as LLM runs in LangChain callbacks (and so in LangSmith).

A backend opens one run per request it sends (:func:`start_llm_run`) with the prompts, and
closes it with the completions and token usage (:meth:`LLMRun.end`) or the error. Which run it
nests under and what metadata it carries is the caller's business: wrap the calls in
:func:`llm_run_context` with the caller's ``RunnableConfig`` and any metadata. Without a context
the run nests under LangChain's current run config if there is one (a sync node, or an async one
on Python 3.11+). Nothing here knows what the calls are for.

Example:
    >>> async def node(state, config: RunnableConfig):
    ...     with llm_run_context(config, metadata={"step": "draft"}):
    ...         await backend.generate(["Q: 2+2?\\nA:"])  # one LLM run per request, under `node`
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from langchain_core.callbacks import AsyncCallbackManager, AsyncCallbackManagerForLLMRun
from langchain_core.callbacks.manager import ahandle_event
from langchain_core.outputs import Generation as LCGeneration
from langchain_core.outputs import LLMResult
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import var_child_runnable_config

from langgraph_rstar.backends.base import Completion, Usage

__all__ = ["LLMRun", "RunContext", "current_run_context", "llm_run_context", "start_llm_run"]


@dataclass(frozen=True)
class RunContext:
    """Where model calls are traced: the parent run's config, plus metadata and tags."""

    config: RunnableConfig | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    tags: Sequence[str] = ()


_CONTEXT: ContextVar[RunContext | None] = ContextVar("langgraph_rstar_run_context", default=None)


@contextlib.contextmanager
def llm_run_context(
    config: RunnableConfig | None = None,
    *,
    metadata: Mapping[str, Any] | None = None,
    tags: Sequence[str] = (),
) -> Iterator[RunContext]:
    """Model calls made in this block are LLM runs under ``config``'s run, with ``metadata``.

    Nested blocks add their metadata and tags to the outer ones; ``config=None`` keeps the
    outer config. The context follows the code into awaited calls and tasks started inside.
    """
    outer = _CONTEXT.get() or RunContext()
    ctx = RunContext(
        config=config if config is not None else outer.config,
        metadata={**outer.metadata, **(metadata or {})},
        tags=[*outer.tags, *(t for t in tags if t not in outer.tags)],
    )
    token = _CONTEXT.set(ctx)
    try:
        yield ctx
    finally:
        _CONTEXT.reset(token)


def current_run_context() -> RunContext:
    """The innermost :func:`llm_run_context`, else LangChain's current run config, else none."""
    ctx = _CONTEXT.get() or RunContext()
    if ctx.config is None:
        ctx = RunContext(var_child_runnable_config.get(), ctx.metadata, ctx.tags)
    return ctx


class LLMRun:
    """An open LLM run; end it exactly once with :meth:`end` or :meth:`error`."""

    def __init__(self, manager: AsyncCallbackManagerForLLMRun, model: str) -> None:
        self.manager = manager
        self.model = model
        self.run_id = manager.run_id

    async def end(self, choices: Sequence[Sequence[Completion]], usage: Usage) -> None:
        """Close the run with the completions (one list per prompt) and this request's usage."""
        result = LLMResult(
            generations=[
                [
                    LCGeneration(
                        text=c.text,
                        generation_info={"finish_reason": c.finish_reason, "tokens": c.tokens},
                    )
                    for c in per_prompt
                ]
                for per_prompt in choices
            ],
            llm_output={
                "token_usage": {
                    "prompt_tokens": usage.prompt_tokens,
                    "completion_tokens": usage.completion_tokens,
                    "total_tokens": usage.prompt_tokens + usage.completion_tokens,
                },
                "model_name": self.model,
            },
        )
        await self.manager.on_llm_end(result)

    async def error(self, exc: BaseException) -> None:
        """Close the run as failed (a cancelled request counts as failed)."""
        await self.manager.on_llm_error(exc)


async def start_llm_run(
    name: str,
    prompts: Sequence[str],
    *,
    model: str,
    invocation_params: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> LLMRun | None:
    """Open one LLM run for one request holding ``prompts``; ``None`` when nobody listens.

    All prompts of a batched request go into one run (``inputs.prompts``), so runs and
    requests match one to one. ``metadata`` (e.g. ``ls_model_name``) is added to the context's.
    """
    ctx = current_run_context()
    config = ctx.config or {}
    manager = AsyncCallbackManager.configure(
        inheritable_callbacks=config.get("callbacks"),
        inheritable_tags=config.get("tags"),
        inheritable_metadata=config.get("metadata"),
        local_tags=list(ctx.tags),
        local_metadata={**ctx.metadata, **(metadata or {})},
    )
    if not manager.handlers:
        return None
    run_id = uuid.uuid4()
    await ahandle_event(
        manager.handlers,
        "on_llm_start",
        "ignore_llm",
        {"name": name, "id": ["langgraph_rstar", "backends", name]},
        list(prompts),
        run_id=run_id,
        parent_run_id=manager.parent_run_id,
        tags=manager.tags,
        metadata=manager.metadata,
        invocation_params=dict(invocation_params or {}),
        name=name,
    )
    run_manager = AsyncCallbackManagerForLLMRun(
        run_id=run_id,
        handlers=manager.handlers,
        inheritable_handlers=manager.inheritable_handlers,
        parent_run_id=manager.parent_run_id,
        tags=manager.tags,
        inheritable_tags=manager.inheritable_tags,
        metadata=manager.metadata,
        inheritable_metadata=manager.inheritable_metadata,
    )
    return LLMRun(run_manager, model)
