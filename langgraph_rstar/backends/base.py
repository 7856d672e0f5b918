"""Backend-agnostic model I/O: the :class:`LLMBackend` protocol and the data it returns.

The rest of the package only talks to :class:`LLMBackend`; nothing here knows HTTP or any
particular server. :mod:`langgraph_rstar.backends.openai_compat` implements the protocol for
OpenAI-compatible endpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
from collections.abc import Awaitable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from typing import Protocol, TypeVar, runtime_checkable

__all__ = [
    "BackendError",
    "Completion",
    "Generation",
    "LLMBackend",
    "Usage",
    "affinity_key",
    "apply_stop",
    "split_by_length",
    "current_affinity_key",
]

_T = TypeVar("_T")


# --------------------------------------------------------------------------------------------
# Public data types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Completion:
    """One sampled continuation.

    Attributes:
        text: Generated text, cut at the earliest stop string (applied client-side).
        finish_reason: ``"stop"`` (stop string or end of generation), ``"length"`` or ``None``.
        tokens: Generated tokens of this choice (best effort, see
            :class:`OpenAICompatibleLLM` for how each dialect is counted).
    """

    text: str
    finish_reason: str | None
    tokens: int


@dataclass
class Usage:
    """Request and token counters.

    Attributes:
        requests: HTTP requests that got a response (retried and rejected ones included).
        prompt_tokens: Prompt tokens processed by the server.
        completion_tokens: Generated tokens, summed over every choice.
    """

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, other: Usage) -> None:
        """Add ``other``'s counters to this one in place."""
        self.requests += other.requests
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens

    def as_dict(self) -> dict[str, int]:
        """The counters as a plain dict (JSON friendly)."""
        return asdict(self)


@dataclass
class Generation:
    """Result of one :meth:`LLMBackend.generate` call.

    Attributes:
        choices: One list per prompt, in prompt order, each with exactly ``n`` completions.
        usage: Usage of this call only.
    """

    choices: list[list[Completion]]
    usage: Usage = field(default_factory=Usage)


class BackendError(RuntimeError):
    """The endpoint is unreachable, rejected a request, or sent a reply we cannot use.

    Attributes:
        transient: The endpoint could not serve the request (unreachable, timed out, HTTP 429 or
            5xx after its retries): another replica of the same model may. ``False`` when the
            request itself was refused or the reply was unusable.
        usage: What the failed call spent before it failed (set by ``generate``), if known.
    """

    usage: Usage | None = None

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


@runtime_checkable
class LLMBackend(Protocol):
    """What the search needs from a language model: ``n`` samples for each of many prompts."""

    name: str
    usage: Usage  # running total over the backend's life

    async def generate(
        self,
        prompts: Sequence[str],
        *,
        n: int = 1,
        max_tokens: int = 256,
        stop: Sequence[str] = (),
        temperature: float = 0.8,
        top_p: float = 0.95,
        top_k: int | None = 40,
        repetition_penalty: float | None = 1.1,
        seed: int | None = None,
    ) -> Generation:
        """Sample ``n`` completions for every prompt (raw text, no chat template)."""
        ...


# --------------------------------------------------------------------------------------------
# Affinity: which calls belong together
# --------------------------------------------------------------------------------------------

_AFFINITY: ContextVar[str | None] = ContextVar("langgraph_rstar_affinity_key", default=None)
_HEADER_SAFE = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")


@contextlib.contextmanager
def affinity_key(key: str | None) -> Iterator[None]:
    """Mark the model calls made inside the block as belonging together under ``key``.

    Backends that know about affinity use it (a router keeps the calls of one key on one
    replica, whose prefix cache then holds their shared prompt; an OpenAI-compatible backend
    sends it as a header for a router in front of the replicas); others ignore it. The key
    follows the asyncio context, so tasks started inside the block carry it too.

    Example:
        >>> with affinity_key("question-17"):
        ...     current_affinity_key()
        'question-17'
        >>> current_affinity_key() is None
        True
    """
    token = _AFFINITY.set(key or None)
    try:
        yield
    finally:
        _AFFINITY.reset(token)


def current_affinity_key() -> str | None:
    """The key set by the innermost :func:`affinity_key` block around this call, if any."""
    return _AFFINITY.get()


def header_safe(key: str) -> str:
    """``key`` if it can travel as an HTTP header value as it is, else a digest of it."""
    if _HEADER_SAFE.fullmatch(key):
        return key
    return hashlib.blake2b(key.encode("utf-8"), digest_size=12).hexdigest()


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def apply_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` at the earliest occurrence of any stop string.

    Returns:
        The (possibly) shortened text and whether a stop string was found.
    """
    cut = -1
    for s in stop:
        if s:
            i = text.find(s)
            if i >= 0 and (cut < 0 or i < cut):
                cut = i
    return (text[:cut], True) if cut >= 0 else (text, False)


def checked_prompts(prompts: Sequence[str], n: int) -> list[str]:
    """The prompts of a ``generate`` call as a list, after the checks every backend makes."""
    if isinstance(prompts, str):
        raise TypeError("prompts must be a sequence of strings, not a single str")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return list(prompts)


def split_by_length(total: int, lengths: Sequence[int]) -> list[int]:
    """Share ``total`` tokens among texts in proportion to their lengths (the sum stays exact).

    Example:
        >>> split_by_length(10, [3, 1, 0])
        [8, 2, 0]
    """
    if not lengths:
        return []
    whole = sum(lengths)
    if whole == 0:
        share, rest = divmod(total, len(lengths))
        return [share + (1 if i < rest else 0) for i in range(len(lengths))]
    counts = [total * ln // whole for ln in lengths]
    leftover = total - sum(counts)
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i])[:leftover]:
        counts[i] += 1
    return counts


def _split(k: int, cap: int | None) -> list[int]:
    """Split ``k`` samples into request sizes of at most ``cap``."""
    if cap is None or k <= cap:
        return [k]
    sizes = [cap] * (k // cap)
    if k % cap:
        sizes.append(k % cap)
    return sizes


async def _gather_or_cancel(aws: Sequence[Awaitable[_T]]) -> list[_T]:
    """Like ``asyncio.gather`` but cancels the siblings when one fails (no orphan requests)."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
