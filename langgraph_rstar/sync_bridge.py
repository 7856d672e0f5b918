"""Synchronous twins of async code: one background event loop that sync callers hand work to.

LangGraph's ``graph.invoke()``/``graph.stream()`` call a node's sync function. rStar's nodes are
coroutines (the backends are async), so each node gets a sync twin that runs the coroutine on a
single background loop shared by the whole process. Sharing one loop (instead of
``asyncio.run`` per call) keeps the backends' HTTP clients and in-flight limits alive between
calls, and lets the parallel sync tasks of a wave run concurrently on it.

Context variables of the caller (LangGraph's run config, tracing context) travel with the
coroutine: ``run_coroutine_threadsafe`` schedules it in a copy of the caller's context.

Example:
    >>> async def add(a, b):
    ...     return a + b
    >>> run_sync(add(2, 3))
    5
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar
from typing import Any, TypeVar

__all__ = ["run_sync", "running_sync", "sync_twin"]

_T = TypeVar("_T")
_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
# True inside a coroutine that a sync twin runs (a node called by ``invoke``/``stream``).
_FROM_SYNC: ContextVar[bool] = ContextVar("langgraph_rstar_from_sync", default=False)


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=loop.run_forever, name="langgraph-rstar-sync", daemon=True
            )
            thread.start()
            _loop = loop
        return _loop


def run_sync(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coro`` to completion on the background loop and return its result.

    Raises:
        RuntimeError: called from a coroutine already running on that loop (it would wait on
            itself forever).
    """
    loop = _background_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        coro.close()
        raise RuntimeError("run_sync() called from the background loop itself; await instead")
    future = asyncio.run_coroutine_threadsafe(coro, loop)
    try:
        return future.result()
    except BaseException:
        future.cancel()  # e.g. KeyboardInterrupt in the caller: stop the work too
        raise


def sync_twin(afunc: Callable[..., Awaitable[_T]]) -> Callable[..., _T]:
    """A sync function with ``afunc``'s signature that runs it with :func:`run_sync`."""

    @functools.wraps(afunc)
    def func(*args: Any, **kwargs: Any) -> _T:
        token = _FROM_SYNC.set(True)  # (the coroutine runs in a copy of this context)
        try:
            return run_sync(afunc(*args, **kwargs))  # type: ignore[arg-type]
        finally:
            _FROM_SYNC.reset(token)

    return func


def running_sync() -> bool:
    """Whether this code runs for a sync caller (in a coroutine a sync twin started).

    LangGraph's sync runner cannot run a coroutine task; a node that calls tasks uses this to
    pick their sync versions.
    """
    return _FROM_SYNC.get()
