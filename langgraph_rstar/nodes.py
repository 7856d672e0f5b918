"""How rStar's coroutines become LangGraph nodes that work from sync and async callers alike.

:func:`node` gives each coroutine a sync twin (``graph.invoke``/``graph.stream`` call it; it runs
the coroutine on :mod:`~langgraph_rstar.sync_bridge`'s loop) and, on Python 3.10, puts the run's
config into LangChain's context variable for the length of the node. LangGraph does that itself
from Python 3.11 on (``asyncio.create_task(..., context=...)``); without it, LangGraph's own
``custom`` stream writer fails in async nodes on 3.10 ("Called get_config outside of a runnable
context"), and so did every ``asolve``.

LangGraph has no public way to give a node both bodies; its own packages (prebuilt, supervisor)
build ``RunnableCallable`` the same way.

Example:
    >>> async def double(state: dict) -> dict:
    ...     return {"x": state["x"] * 2}
    >>> builder.add_node("double", node(double))  # invoke() and ainvoke() both work
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import var_child_runnable_config
from langgraph._internal._runnable import RunnableCallable

from langgraph_rstar.sync_bridge import sync_twin

__all__ = ["node"]

_CONTEXT_FROM_LANGGRAPH = sys.version_info >= (3, 11)


def _in_run_context(afunc: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """``afunc`` with the run's config set in LangChain's context while it runs."""
    signature = inspect.signature(afunc)
    takes_config = "config" in signature.parameters
    params = list(signature.parameters.values())
    if not takes_config:
        params.append(
            inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, annotation=RunnableConfig)
        )

    @functools.wraps(afunc)
    async def run(*args: Any, **kwargs: Any) -> Any:
        config = kwargs["config"] if takes_config else kwargs.pop("config")
        token = var_child_runnable_config.set(config)
        try:
            return await afunc(*args, **kwargs)
        finally:
            var_child_runnable_config.reset(token)

    run.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    return run


def node(afunc: Callable[..., Awaitable[Any]], *, name: str | None = None) -> RunnableCallable:
    """A LangGraph node for the coroutine ``afunc``, with a sync twin (``trace=False``: the
    task is the run, as for a plain function passed to ``add_node``)."""
    if not _CONTEXT_FROM_LANGGRAPH:
        afunc = _in_run_context(afunc)
    twin = sync_twin(afunc)
    # LangGraph finds the subgraph a node calls (``get_graph(xray=True)``, subgraph state) in
    # the names the node's function reads: show it the coroutine under any wrapper.
    twin.__signature__ = inspect.signature(afunc)  # type: ignore[attr-defined]
    twin.__wrapped__ = inspect.unwrap(afunc)  # type: ignore[attr-defined]
    return RunnableCallable(twin, afunc, name=name or afunc.__name__, trace=False)
