"""Several replicas of one model behind one :class:`LLMBackend`: affine, least-loaded, health-aware.

:class:`RoutedLLM` sends each ``generate`` call to one replica (a call's prompts and samples stay
together):

* **Affinity.** Calls made under one :func:`~langgraph_rstar.backends.affinity_key` (rStar sets
  one per question) prefer one replica, picked by rendezvous (highest random weight) hashing of
  the key over the replicas' URLs, so that replica's prefix cache holds the question's prompt and
  tree. The key's replica is passed over while it is ejected or saturated, and the next replica
  in the key's order takes the call; removing a replica only moves the keys that preferred it.
  Saturated means: its sequences in flight would exceed ``balance`` times the mean load
  (consistent hashing with bounded loads) and, when given, ``capacity`` (how many sequences a
  replica decodes at once, e.g. vLLM's ``--max-num-seqs``: below it a call never waits).
* **Least loaded.** Calls without a key (or with ``affinity=False``) go to the replica with the
  fewest sequences in flight (prompts x ``n`` of the calls it is serving).
* **Retries that move.** A call that fails transiently (unreachable, timed out, HTTP 429/5xx:
  :attr:`BackendError.transient`) is sent again at once to a replica it has not tried; once it
  has tried them all, with jittered exponential backoff (tenacity). Errors that are the
  request's own (HTTP 400, an unusable reply) are raised at once.
* **Ejection and re-admission.** ``eject_after`` transient failures in a row take a replica out
  of rotation. It is probed every ``probe_interval`` seconds with its ``health()`` (``GET
  /health``, else ``/v1/models``) and re-admitted once it answers; a replica without
  ``health()`` gets one trial call instead. If every replica is ejected, calls go to all of them
  anyway, so an outage that ends heals without a restart.

The knobs are a :class:`RoutingPolicy`.

Probes run as tasks of the event loop that is routing calls; nothing runs between calls.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from langgraph_rstar.backends.base import (
    BackendError,
    Generation,
    LLMBackend,
    Usage,
    current_affinity_key,
)

__all__ = ["RoutedLLM", "RoutingPolicy"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoutingPolicy:
    """How :class:`RoutedLLM` spreads calls over replicas and treats failing ones.

    Attributes:
        affinity: Route calls that carry an affinity key by the key (else least-loaded only).
        balance: A key's replica is passed over while its load would exceed ``balance`` times
            the mean load of the replicas in rotation (>= 1; larger keeps affinity longer, at
            the cost of balance) ...
        capacity: ... unless it stays within ``capacity`` sequences (those a replica serves at
            once without queueing, e.g. vLLM's ``--max-num-seqs``; ``None``: no such floor).
        eject_after: Transient failures in a row that take a replica out of rotation.
        probe_interval: Seconds between health probes of an ejected replica.
        max_attempts: Attempts per call, spread over replicas (default: one per replica plus
            four with backoff).

    Example:
        >>> RoutingPolicy(capacity=256).balance
        1.25
    """

    affinity: bool = True
    balance: float = 1.25
    capacity: int | None = None
    eject_after: int = 3
    probe_interval: float = 2.0
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        if self.balance < 1.0:
            raise ValueError(f"balance must be >= 1, got {self.balance}")
        if self.capacity is not None and self.capacity < 1:
            raise ValueError(f"capacity must be >= 1 or None, got {self.capacity}")
        if self.eject_after < 1:
            raise ValueError(f"eject_after must be >= 1, got {self.eject_after}")
        if self.probe_interval <= 0:
            raise ValueError(f"probe_interval must be > 0, got {self.probe_interval}")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")


@dataclass(eq=False)
class _Replica:
    """One replica and what the router knows about it."""

    backend: LLMBackend
    ident: str  # stable across processes (its URL): what keys hash against
    in_flight: int = 0  # sequences of the calls it is serving
    calls: int = 0  # calls sent (retries included)
    served: int = 0  # calls it answered
    failures: int = 0  # transient failures, all told
    in_a_row: int = 0  # transient failures since its last answer
    ejected: bool = False
    ejections: int = 0
    readmissions: int = 0
    next_probe: float = 0.0
    last_pick: int = 0  # tie-breaker: the least recently picked of equally loaded replicas
    probe: asyncio.Task[None] | None = None


def _rank(key: str, ident: str) -> int:
    """Rendezvous weight of ``ident`` for ``key`` (the same in every process)."""
    digest = hashlib.blake2b(f"{key}\0{ident}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, BackendError) and exc.transient


class RoutedLLM:
    """An :class:`LLMBackend` over several replicas of one model (see the module docstring).

    Example:
        >>> llm = RoutedLLM.from_urls(
        ...     ["http://gpu1:8000/v1", "http://gpu2:8000/v1", "http://gpu3:8000/v1"],
        ...     "Qwen/Qwen2.5-Math-7B-Instruct",
        ...     policy=RoutingPolicy(capacity=256),  # vLLM's --max-num-seqs
        ... )
        >>> # result = await asolve(question, target=llm)  # one question stays on one replica
        >>> # llm.replica_stats()  # calls, failures, ejections and load per replica

    Args:
        replicas: Backends serving the same model, e.g. :class:`OpenAICompatibleLLM` instances
            (a replica's ``base_url``, else its ``name``, identifies it for hashing). Give them
            few retries of their own: the router retries elsewhere.
        name: Display name.
        policy: How calls are routed (default :class:`RoutingPolicy`).
    """

    #: First and longest backoff once every replica failed a call, in seconds (plus jitter).
    retry_initial_wait: float = 0.5
    retry_max_wait: float = 8.0

    def __init__(
        self,
        replicas: Sequence[LLMBackend],
        *,
        name: str = "routed",
        policy: RoutingPolicy | None = None,
    ) -> None:
        if not replicas:
            raise ValueError("RoutedLLM needs at least one replica")
        idents = [str(getattr(r, "base_url", None) or r.name) for r in replicas]
        if len(set(idents)) != len(idents):
            raise ValueError(f"replicas must be distinct, got {idents}")
        self._replicas = [_Replica(r, ident) for r, ident in zip(replicas, idents, strict=True)]
        self._by_ident = {r.ident: r for r in self._replicas}
        self.name = name
        self.policy = policy or RoutingPolicy()
        self.max_attempts = self.policy.max_attempts or len(replicas) + 4
        self.usage = Usage()
        self._picks = 0

    @classmethod
    def from_urls(
        cls,
        base_urls: Sequence[str],
        model: str,
        *,
        name: str | None = None,
        policy: RoutingPolicy | None = None,
        **backend_kwargs: Any,
    ) -> RoutedLLM:
        """One :class:`OpenAICompatibleLLM` per URL behind a router.

        ``backend_kwargs`` go to every replica (``api``, ``dialect``, ``max_in_flight``,
        ``timeout``, ``affinity_header``, ...); ``max_retries`` defaults to 0 because the router
        retries on another replica instead.
        """
        from langgraph_rstar.backends.openai_compat import OpenAICompatibleLLM

        if isinstance(base_urls, str):
            raise TypeError("base_urls must be a sequence of URLs, not a single str")
        backend_kwargs.setdefault("max_retries", 0)
        label = name or model
        replicas = [
            OpenAICompatibleLLM(url, model, name=f"{label}@{url}", **backend_kwargs)
            for url in base_urls
        ]
        return cls(replicas, name=label, policy=policy)

    def __repr__(self) -> str:
        return f"RoutedLLM({[r.ident for r in self._replicas]!r}, name={self.name!r})"

    @property
    def replicas(self) -> list[LLMBackend]:
        """The replica backends, in the order given."""
        return [r.backend for r in self._replicas]

    def replica_stats(self) -> list[dict[str, Any]]:
        """Per replica: ``replica`` (its URL), ``admitted``, ``in_flight`` (sequences),
        ``calls`` (sent, retries included), ``served``, ``failures`` (transient),
        ``ejections`` and ``readmissions``."""
        return [
            {
                "replica": r.ident,
                "admitted": not r.ejected,
                "in_flight": r.in_flight,
                "calls": r.calls,
                "served": r.served,
                "failures": r.failures,
                "ejections": r.ejections,
                "readmissions": r.readmissions,
            }
            for r in self._replicas
        ]

    def preference(self, key: str) -> list[str]:
        """The replicas (URLs) in the order ``key`` prefers them: the first holds its prefix
        cache while it is up and not saturated. The same in every process."""
        return sorted((r.ident for r in self._replicas), key=lambda i: _rank(key, i), reverse=True)

    # -- routing -----------------------------------------------------------------------------

    def _pick(self, weight: int, key: str | None, tried: Sequence[_Replica]) -> _Replica:
        self._start_due_probes()
        pool = [r for r in self._replicas if not r.ejected] or self._replicas  # all out: try all
        fresh = [r for r in pool if r not in tried] or pool
        choice = None
        if key is not None and self.policy.affinity:
            bound = self.policy.balance * (sum(r.in_flight for r in fresh) + weight) / len(fresh)
            bound = max(bound, self.policy.capacity or 0)
            for ident in self.preference(key):
                r = self._by_ident[ident]
                if r not in fresh:
                    continue
                if r.in_flight == 0 or r.in_flight + weight <= bound:
                    choice = r
                    break
        if choice is None:
            choice = min(fresh, key=lambda r: (r.in_flight, r.last_pick))
        self._picks += 1
        choice.last_pick = self._picks
        return choice

    def _backoff(self, state: RetryCallState, tried: Sequence[_Replica]) -> float:
        """No wait while a replica in rotation has not tried this call; then exponential."""
        admitted = [r for r in self._replicas if not r.ejected]
        if any(r not in tried for r in admitted):
            return 0.0
        rounds = max(0, state.attempt_number - len(self._replicas))
        base = self.retry_initial_wait * 2**rounds
        return min(base + random.uniform(0, self.retry_initial_wait), self.retry_max_wait)

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
        """Sample ``n`` completions per prompt from one replica (see :meth:`LLMBackend.generate`).

        Raises:
            BackendError: The request was refused or answered with garbage (at once), or no
                replica could serve it within ``max_attempts`` attempts (``transient``).
        """
        if isinstance(prompts, str):
            raise TypeError("prompts must be a sequence of strings, not a single str")
        prompts = list(prompts)
        params: dict[str, Any] = {
            "n": n,
            "max_tokens": max_tokens,
            "stop": stop,
            "temperature": temperature,
            "top_p": top_p,
            "top_k": top_k,
            "repetition_penalty": repetition_penalty,
            "seed": seed,
        }
        weight = max(1, len(prompts)) * max(1, n)
        key = current_affinity_key()
        tried: list[_Replica] = []
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=lambda state: self._backoff(state, tried),
            retry=retry_if_exception(_is_transient),
            before_sleep=lambda rs: logger.info(
                "%s: attempt %d failed (%s); retrying",
                self.name,
                rs.attempt_number,
                rs.outcome.exception() if rs.outcome else None,
            ),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    replica = self._pick(weight, key, tried)
                    tried.append(replica)
                    gen = await self._call(replica, prompts, weight, params)
        except BackendError as exc:
            if not exc.transient:
                raise
            names = ", ".join(dict.fromkeys(r.ident for r in tried))
            raise BackendError(
                f"{self.name}: no replica served the call in {len(tried)} attempt(s) "
                f"(tried {names}); last error: {exc}",
                transient=True,
            ) from exc
        return gen

    async def _call(
        self, replica: _Replica, prompts: list[str], weight: int, params: dict[str, Any]
    ) -> Generation:
        replica.in_flight += weight
        replica.calls += 1
        try:
            gen = await replica.backend.generate(prompts, **params)
        except BackendError as exc:
            if exc.transient:
                self._failed(replica, exc)
            raise
        finally:
            replica.in_flight -= weight
        self._answered(replica)
        self.usage.add(gen.usage)
        return gen

    # -- health ------------------------------------------------------------------------------

    def _failed(self, replica: _Replica, exc: BackendError) -> None:
        replica.failures += 1
        replica.in_a_row += 1
        if not replica.ejected and replica.in_a_row >= self.policy.eject_after:
            replica.ejected = True
            replica.ejections += 1
            replica.next_probe = time.monotonic() + self.policy.probe_interval
            logger.warning(
                "%s: ejected %s after %d failures in a row (%s)",
                self.name,
                replica.ident,
                replica.in_a_row,
                exc,
            )

    def _answered(self, replica: _Replica) -> None:
        replica.served += 1
        replica.in_a_row = 0
        if replica.ejected:  # it answered a call while out of rotation: it is back
            self._readmit(replica)

    def _readmit(self, replica: _Replica, *, on_trial: bool = False) -> None:
        replica.ejected = False
        replica.readmissions += 1
        # A replica let back without a health check gets one call to prove itself.
        replica.in_a_row = self.policy.eject_after - 1 if on_trial else 0
        logger.warning("%s: re-admitted %s", self.name, replica.ident)

    def _start_due_probes(self) -> None:
        now = time.monotonic()
        for r in self._replicas:
            if r.ejected and now >= r.next_probe and (r.probe is None or r.probe.done()):
                r.next_probe = now + self.policy.probe_interval
                r.probe = asyncio.ensure_future(self._probe(r))

    @staticmethod
    async def _healthy(replica: _Replica) -> bool | None:
        """The replica's ``health()``; ``None`` when it has none."""
        health = getattr(replica.backend, "health", None)
        if health is None:
            return None
        try:
            return bool(await health())
        except Exception:  # noqa: BLE001 - a probe that raises is a failed probe
            return False

    async def _probe(self, replica: _Replica) -> None:
        ok = await self._healthy(replica)
        if ok is not False and replica.ejected:
            self._readmit(replica, on_trial=ok is None)

    async def check_health(self) -> dict[str, bool]:
        """Probe every replica now: eject those that fail, re-admit those that answer.

        Returns:
            ``{replica URL: healthy}``. Replicas without ``health()`` count as healthy.
        """
        probes = await asyncio.gather(*(self._healthy(r) for r in self._replicas))
        results = [ok is not False for ok in probes]
        for r, ok in zip(self._replicas, results, strict=True):
            if ok and r.ejected:
                self._readmit(r)
            elif not ok and not r.ejected:
                r.ejected = True
                r.ejections += 1
                r.in_a_row = max(r.in_a_row, self.policy.eject_after)
                r.next_probe = time.monotonic() + self.policy.probe_interval
                logger.warning("%s: %s fails its health check; ejected", self.name, r.ident)
        return {r.ident: ok for r, ok in zip(self._replicas, results, strict=True)}

    async def aclose(self) -> None:
        """Stop pending probes and close every replica's client."""
        loop = asyncio.get_running_loop()
        for r in self._replicas:
            if r.probe is not None and not r.probe.done() and r.probe.get_loop() is loop:
                r.probe.cancel()
            r.probe = None
        for r in self._replicas:
            close = getattr(r.backend, "aclose", None)
            if close is not None:
                await close()

    async def __aenter__(self) -> RoutedLLM:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
