"""A worker thread with its own event loop for the method's CPU work, off the caller's loop.

Actions and the discriminator spend their CPU time reading and comparing answers; for the
math family one comparison can take seconds of SymPy (math-verify), and on the caller's event
loop that would stall every other search and request in flight. So their coroutines run on a
worker thread's loop (:func:`run_on_worker`) while every model call still goes out on the
caller's loop through :class:`HomeLoopBackend` (its HTTP clients, semaphores and connection
pool belong there). The worker thread is outside the main thread, so each comparison gets
``answers.py``'s watchdog deadline; CPython switches threads every few milliseconds, so the
caller's loop keeps running while a comparison grinds.

Example:
    >>> from langgraph_rstar.answers import majority_vote
    >>> async def work(llm):  # runs on the worker loop; llm.generate() on the caller's
    ...     gen = await llm.generate(["Q: 1+1?"], n=2)
    ...     return majority_vote([c.text for c in gen.choices[0]], "gsm8k")
    >>> # result = await run_on_worker(work, HomeLoopBackend(backend))
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from langgraph_rstar.answers import task_family
from langgraph_rstar.backends import Generation, LLMBackend, Usage

_T = TypeVar("_T")
_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def worker_loop() -> asyncio.AbstractEventLoop:
    """The worker thread's event loop (started on first use; a daemon thread)."""
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="rstar-worker", daemon=True).start()
            _loop = loop
        return _loop


async def run_on_worker(fn: Callable[..., Awaitable[_T]], *args: Any) -> _T:
    """Run ``fn(*args)`` on the worker loop and await its result from the caller's loop.

    Cancelling the caller cancels the work on the worker loop too.
    """
    return await _await_on(worker_loop(), fn(*args))


async def _await_on(loop: asyncio.AbstractEventLoop, coro: Awaitable[_T]) -> _T:
    future: concurrent.futures.Future[_T] = asyncio.run_coroutine_threadsafe(
        coro,  # type: ignore[arg-type]
        loop,
    )
    # A result nobody waits for any more (the caller was cancelled) is not an error to log.
    future.add_done_callback(lambda f: f.cancelled() or f.exception())
    try:
        return await asyncio.wrap_future(future)
    except asyncio.CancelledError:
        future.cancel()
        raise


def compares_slowly(task: str) -> bool:
    """Whether comparing answers of ``task`` can take long enough to stall a loop: the math
    family (SymPy, up to seconds per pair). Number and yes/no answers compare in microseconds:
    their actions stay on the caller's loop, where a thread hop per model call would cost the
    client more CPU than the comparisons it moves.

    Example:
        >>> compares_slowly("math500"), compares_slowly("gsm8k")
        (True, False)
    """
    return task_family(task) == "math"


class HomeLoopBackend:
    """An :class:`LLMBackend` usable on the worker loop: each call runs on the loop it was made
    for (the caller's), where the wrapped backend's clients live."""

    def __init__(self, inner: LLMBackend, loop: asyncio.AbstractEventLoop | None = None):
        self.inner = inner
        self.loop = loop or asyncio.get_running_loop()
        self.name = inner.name

    @property
    def usage(self) -> Usage:
        return self.inner.usage

    async def generate(self, prompts: Sequence[str], **kwargs: Any) -> Generation:
        if asyncio.get_running_loop() is self.loop:
            return await self.inner.generate(prompts, **kwargs)
        future = asyncio.run_coroutine_threadsafe(self.inner.generate(prompts, **kwargs), self.loop)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.cancel()
            raise


__all__ = ["HomeLoopBackend", "compares_slowly", "run_on_worker", "worker_loop"]
