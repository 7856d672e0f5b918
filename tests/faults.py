"""Helpers of the fault suite (tests/test_faults_*.py): time bounds and fast-failing backends.

Every case is marked ``@pytest.mark.fault(expect, risk=...)`` and counted by ``tests/conftest.py``
in the issue's categories: a passing case is what it ``expect``s (``clear``: a clear error;
``valid-flagged``: a valid result marked as degraded; ``valid``: a valid, complete result); a
failing one is a ``hang`` (its bound passed), a ``crash`` (an unexpected exception) or its
``risk`` (``silent``, ``loss`` or ``security``) when an assertion failed.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

import pytest

from langgraph_rstar import OpenAICompatibleLLM
from tests.conftest import Hang

T = TypeVar("T")

clear = pytest.mark.fault("clear")
flagged = pytest.mark.fault("valid-flagged")
valid = pytest.mark.fault("valid")

# A short whole-request deadline keeps hanging servers cheap to test.
DEADLINE = 0.4

# The openai SDK's HTTP transport the backends of `fast_llm` use (test_faults_server.py runs
# its cases under each).
HTTP = "httpx"


async def bounded(aw: Awaitable[T], seconds: float) -> T:
    """Await ``aw``; a :class:`Hang` (not a timeout the code under test could catch) if it takes
    longer than ``seconds``."""
    try:
        return await asyncio.wait_for(aw, seconds)
    except asyncio.TimeoutError:
        raise Hang(f"did not finish within {seconds} s") from None


class Timer:
    """``with Timer() as t: ...``; then ``t.seconds``."""

    def __enter__(self) -> Timer:
        self.start = time.monotonic()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.monotonic() - self.start


def fast_llm(url: str, **kwargs: Any) -> OpenAICompatibleLLM:
    """A backend with a short deadline and near-zero backoff (retries stay cheap)."""
    kwargs.setdefault("timeout", DEADLINE)
    kwargs.setdefault("max_retries", 1)
    kwargs.setdefault("http", HTTP)
    llm = OpenAICompatibleLLM(url, kwargs.pop("model", "scripted"), **kwargs)
    llm.retry_initial_wait = 0.01
    llm.retry_max_wait = 0.05
    return llm


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
