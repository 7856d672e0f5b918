"""Model I/O: sampling completions from any OpenAI-compatible endpoint.

The rest of the package only talks to :class:`LLMBackend`. :class:`OpenAICompatibleLLM` implements
it on top of the official ``openai`` async client, with the server quirks that matter for MCTS
rollouts smoothed over:

* ``n`` samples per prompt even when the server caps or ignores ``n`` (extra requests fill in),
* llama.cpp's ``Field 'n'`` limit learned from its HTTP 400 and honoured by splitting,
* stop strings always re-applied client-side (servers cap how many they accept),
* per-dialect sampling extras (``top_k``, repetition penalty, ``min_p``),
* bounded requests in flight, retries with jittered exponential backoff (``Retry-After`` honoured
  up to a cap),
* a whole-request deadline (connect, headers and the whole body) on every attempt, so a server that
  trickles bytes or never ends its body is retried or reported, never waited on forever,
* a size cap on replies, and samples attributed to their prompt by ``index`` (ambiguous batched
  replies are re-asked one prompt per request),
* keys and URL credentials masked in every message and log line,
* the caller's affinity key (:func:`~langgraph_rstar.backends.affinity_key`) sent as a header,
  for a router in front of several replicas,
* usage counted per choice (llama.cpp's ``usage`` only covers the first choice).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import importlib
import json
import logging
import os
import random
import re
import time
import weakref
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import openai
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from langgraph_rstar.backends.base import (
    BackendError,
    Completion,
    Generation,
    Usage,
    _gather_or_cancel,
    _split,
    apply_stop,
    checked_prompts,
    current_affinity_key,
    header_safe,
    split_by_length,
)
from langgraph_rstar.backends.redaction import redact, redact_url, url_secrets
from langgraph_rstar.backends.tracing import start_llm_run

__all__ = ["Api", "Dialect", "OpenAICompatibleLLM"]

logger = logging.getLogger(__name__)

Api = Literal["completions", "chat"]
Dialect = Literal["vllm", "llamacpp", "tgi", "openai"]
_APIS = ("completions", "chat")
_DIALECTS = ("vllm", "llamacpp", "tgi", "openai")
_TRANSPORTS = ("httpx", "aiohttp")  # the openai SDK's HTTP transports (``http=``)
# TGI's router defaults to --max-stop-sequences 4; the OpenAI API accepts at most 4 stop strings.
_DEFAULT_MAX_STOP: dict[str, int | None] = {"vllm": None, "llamacpp": None, "tgi": 4, "openai": 4}


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


_N_FIELD_RE = re.compile(r"""['"`]n['"`]|\bn\s*(?:must|should|cannot|can't|is|=|<|>)""")
_N_LIMIT_RES = (
    re.compile(r"value\s*<=\s*(\d+)"),
    re.compile(r"<=\s*(\d+)"),
    re.compile(r"(?:at most|maximum(?: of| is)?|less than or equal to|up to)\s*(\d+)", re.I),
)


def _parse_n_limit(message: str) -> int | None:
    for pattern in _N_LIMIT_RES:
        m = pattern.search(message)
        if m:
            return int(m.group(1))
    return None


def _error_text(exc: openai.APIStatusError) -> str:
    """The server's own error message, whatever shape the error body has."""
    body = exc.body
    if isinstance(body, dict):
        for key in ("message", "error", "detail"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                return value["message"]
        return json.dumps(body)[:500]
    if isinstance(body, str) and body:
        return body[:500]
    try:
        text = exc.response.text
    except Exception:  # the body may be unreadable; the status line still says something
        text = ""
    return text[:500] or str(exc)


def _is_retryable(exc: BaseException) -> bool:
    # APITimeoutError subclasses APIConnectionError.
    if isinstance(exc, (openai.APIConnectionError, _DeadlineExceeded, _BrokenReply, _Malformed)):
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in (408, 429) or exc.status_code >= 500
    return False


def _retry_after(exc: BaseException | None) -> float | None:
    """Seconds the server asked us to wait (``Retry-After`` / ``retry-after-ms``), if any."""
    if not isinstance(exc, openai.APIStatusError):
        return None
    headers = exc.response.headers
    try:
        if headers.get("retry-after-ms"):
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
    except ValueError:
        pass
    value = (headers.get("retry-after") or "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:  # an HTTP date
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time()) if when is not None else None


class _DeadlineExceeded(Exception):
    """No complete reply (headers and whole body) within the deadline."""


class _BrokenReply(Exception):
    """The connection failed while the body was being read (reset, closed early, bad encoding)."""


def _http_errors() -> tuple[type[BaseException], ...]:
    """The HTTP library's request errors (``httpx2`` or ``httpx``, whichever openai uses)."""
    found = []
    for name in ("httpx2", "httpx"):
        try:
            found.append(importlib.import_module(name).RequestError)
        except (ImportError, AttributeError):
            continue
    return tuple(found)


_HTTP_ERRORS = _http_errors()


try:  # openai[aiohttp]: the SDK's optional aiohttp transport (``http="aiohttp"``)
    import aiohttp

    _AIOHTTP = hasattr(openai, "DefaultAioHttpClient")  # openai >= 1.80
    # Errors its transport passes through unmapped (e.g. a reply that is not HTTP at all).
    _AIOHTTP_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError,)
except ImportError:
    _AIOHTTP = False
    _AIOHTTP_ERRORS = ()


def _http_library() -> Any:
    """The module (``httpx2`` or ``httpx``) of openai's default HTTP client."""
    bases = openai.DefaultAsyncHttpxClient.__mro__
    name = next(c.__module__ for c in bases if not c.__module__.startswith("openai"))
    return importlib.import_module(name.split(".")[0])


class _Malformed(BackendError):
    """A reply we cannot use (retried: proxies and overloaded servers send these transiently)."""


class _TooLarge(BackendError):
    """A reply larger than the size cap (not retried: the same request would do it again)."""


class _Ambiguous(Exception):
    """A batched reply whose choices cannot be attributed to their prompts with certainty."""


class _NLimitError(Exception):
    """The server refused the requested ``n`` (HTTP 400 naming the field ``n``)."""

    def __init__(self, limit: int | None, message: str) -> None:
        super().__init__(message)
        self.limit = limit


@dataclass
class _Params:
    """Sampling settings of one ``generate`` call plus its mutable bookkeeping."""

    max_tokens: int
    stop: list[str]
    temperature: float
    top_p: float
    top_k: int | None
    repetition_penalty: float | None
    seed: int | None
    usage: Usage = field(default_factory=Usage)
    choices_requested: int = 0

    def next_seed(self, k: int) -> int | None:
        # Each request of a call gets its own seed range: llama.cpp seeds choice j with
        # seed + j, so requests of k choices step the seed by k; the same seed on the extra
        # requests that fill up ``n`` would return copies of the same samples.
        seed = None if self.seed is None else self.seed + self.choices_requested
        self.choices_requested += k
        return seed


@dataclass
class _LoopState:
    loop: weakref.ref[asyncio.AbstractEventLoop]
    http: Any  # the httpx AsyncClient under ``client`` (httpx or httpx2, depending on openai)
    client: openai.AsyncOpenAI
    semaphore: asyncio.Semaphore
    # The prompts of the requests in flight, each with an event set when it is done
    # (see ``prefix_wait``).
    sending: list[tuple[str, asyncio.Event]] = field(default_factory=list)
    tokenizing: asyncio.Lock = field(default_factory=asyncio.Lock)  # see ``_stop_tokens``
    # Completion requests take these clients in turn (``client`` is the first). httpx's pool
    # checks every connection it holds on each request and each reply (a poll() per idle
    # one), so one pool of 256 connections costs the client far more CPU than 8 of 32.
    pools: list[openai.AsyncOpenAI] = field(default_factory=list)
    turn: int = 0

    def next_client(self) -> openai.AsyncOpenAI:
        self.turn += 1
        return self.pools[self.turn % len(self.pools)]


_POOL_CONNECTIONS = 32  # requests in flight per HTTP connection pool (see ``_LoopState.pools``)


def common_prefix(a: str, b: str) -> int:
    """Length of the longest common prefix of ``a`` and ``b`` (C-speed slice compares).

    Example:
        >>> common_prefix("few-shot + Q1", "few-shot + Q2"), common_prefix("ab", "ab")
        (12, 2)
    """
    lo, hi = 0, min(len(a), len(b)) + 1  # a[:lo] == b[:lo]; a[:hi] != b[:hi] (or past the end)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid
    return lo


# --------------------------------------------------------------------------------------------
# The backend
# --------------------------------------------------------------------------------------------


class OpenAICompatibleLLM:
    """An :class:`LLMBackend` for vLLM, llama.cpp, TGI or any OpenAI-compatible server.

    Example:
        >>> llm = OpenAICompatibleLLM("http://127.0.0.1:8000/v1", "Qwen/Qwen2.5-Math-1.5B")
        >>> gen = asyncio.run(llm.generate(["Q: 1+1?\\nA:", "Q: 2+2?\\nA:"], n=4, stop=["\\n"]))
        >>> [c.text for c in gen.choices[0]]  # 4 samples for the first prompt
        [' 2', ' 2', ' 2', ' 11']

    ``api="completions"`` posts raw prompts to ``/v1/completions`` (several prompts in one
    request when ``batch_prompts``); ``api="chat"`` posts each prompt as a single user message
    to ``/v1/chat/completions``. If a reply holds fewer than ``n`` choices for a prompt, the
    missing ones are fetched with extra concurrent requests, and the number the server
    delivered is remembered as a per-request cap for later calls.

    Token counting per choice: with ``dialect="llamacpp"`` logprobs are requested and a choice's
    count is ``len(logprobs.content)`` (the end-of-generation token included). When a choice ended
    on a stop string llama.cpp drops that string's tokens from the logprobs, so their number is
    added back, learned once per stop string from llama.cpp's ``/tokenize`` (which stop string
    matched is not reported: with several of different token lengths the smallest is added).
    llama.cpp's ``usage`` covers only the first prompt and first choice, so prompt tokens of the
    other prompts of a batched request are scaled from it by character length (an estimate).
    Other dialects report ``usage.completion_tokens`` summed over all choices; it is split over
    the choices in proportion to their text length (the sum is exact, the split an estimate).

    Event-loop safety: the HTTP client and the in-flight semaphore are created lazily for each
    running event loop, so one instance can serve many ``asyncio.run()`` calls in a row.

    Args:
        base_url: Server URL, e.g. ``http://127.0.0.1:8000/v1`` (``/v1`` is added when the URL
            has no path); ``None`` takes ``OPENAI_BASE_URL`` from the environment.
        model: Model name sent with every request.
        api_key: API key; by default ``OPENAI_API_KEY`` from the environment, else "EMPTY".
        api: ``"completions"`` (raw prompts) or ``"chat"`` (prompt as one user message).
        dialect: Which sampling extras the server understands: ``"vllm"``, ``"llamacpp"``,
            ``"tgi"`` or ``"openai"`` (plain OpenAI parameters only).
        max_in_flight: Most requests this backend has open at once (per event loop).
        timeout: Seconds for one whole HTTP request: connecting, the headers and the entire body
            (a server that trickles bytes or never ends its body is cut off there). Time spent
            waiting for a free slot under ``max_in_flight`` does not count.
        max_retries: Retries after a 408, 429, 5xx, deadline, connection error or malformed
            reply. Worst case before an error: ``(max_retries + 1) * timeout`` plus backoff.
        max_retry_after: Longest wait honoured from a server's ``Retry-After`` (seconds);
            longer requests are cut to this.
        max_response_bytes: Cap on one reply's body; ``None`` derives it from the request
            (64 KiB plus 64 bytes per requested token, 512 with llama.cpp's logprobs). A larger
            reply is an error, so a runaway server cannot exhaust memory.
        max_n: Most samples per request (e.g. llama.cpp's number of slots); larger ``n`` is split
            into concurrent requests. Learned automatically from llama.cpp's 400 error.
        batch_prompts: Send all prompts of a call in one completions request (``None``: yes,
            but one prompt per request for llama.cpp, which starts a batch's prompts on as many
            slots at once, each computing the shared prefix; see ``prefix_wait``).
        max_stop: Most stop strings sent to the server (``None``: all, but 4 for the tgi and
            openai dialects). The full list is always applied client-side.
        extra_body: Extra JSON fields merged into every request body last.
        prefix_wait: A request waits while one in flight shares at least this fraction of its
            prompt as a common prefix (``None``: 0.5 for llama.cpp, off for the other dialects;
            0 turns it off). llama.cpp computes a prompt on the idle slot holding its longest
            prefix, else on the least recently used one, and cannot copy a prefix from a busy
            slot: requests sharing a few-shot prefix and the question that go out together
            (rStar's A1 and A2 ask for the same prompt; rollouts and the discriminator's masks
            share the question) each compute the whole prompt on a slot of their own. Sent one
            after the other, each lands on the slot that holds the prefix. Sampling is
            unchanged: only the send time moves. On the embedded CPU server this raised the
            prompt-cache hit rate from 67 % to 94 % and cut the wall by 11 %
            (``benchmarks/bench_cpu_cache.py``); on a GPU llama.cpp with many slots, where
            prompt computation is cheap next to waiting, set it to 0.
        http: The openai SDK's HTTP transport: ``"httpx"`` (its default) or ``"aiohttp"``
            (``pip install 'langgraph-rstar[aiohttp]'``): about a fifth less client CPU in the
            request path (2.7 against 3.4 ms per request in the SDK, 8 % less for a whole
            search; ``benchmarks/bench_client_floor.py``), which counts with hundreds of
            requests in flight. Call :meth:`aclose` before the event loop
            ends, or aiohttp reports an unclosed session.
        name: Display name (default ``"<model>@<base_url>"``).
        affinity_header: Header that carries the caller's affinity key (set with
            :func:`~langgraph_rstar.backends.affinity_key`; rStar sets one per question), so
            that a router in front of replicas keeps a question on one of them: vLLM's
            production-stack router with ``--routing-logic session --session-key X-Session-ID``,
            or vllm-project/router's ``consistent_hash`` policy, which reads ``X-Session-ID``.
            ``None``: never sent. Keys that are not header-safe are sent as a digest.
    """

    #: First and longest backoff between retries, in seconds (jitter is added on top).
    retry_initial_wait: float = 0.5
    retry_max_wait: float = 8.0

    def __init__(
        self,
        base_url: str | None,
        model: str,
        *,
        api_key: str | None = None,
        api: Api = "completions",
        dialect: Dialect = "vllm",
        max_in_flight: int = 32,
        timeout: float = 300.0,
        max_retries: int = 4,
        max_retry_after: float = 60.0,
        max_response_bytes: int | None = None,
        max_n: int | None = None,
        batch_prompts: bool | None = None,
        max_stop: int | None = None,
        extra_body: dict[str, Any] | None = None,
        name: str | None = None,
        affinity_header: str | None = "X-Session-ID",
        prefix_wait: float | None = None,
        http: Literal["httpx", "aiohttp"] = "httpx",
    ) -> None:
        if api not in _APIS:
            raise ValueError(f"api must be one of {_APIS}, got {api!r}")
        if dialect not in _DIALECTS:
            raise ValueError(f"dialect must be one of {_DIALECTS}, got {dialect!r}")
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight}")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be an integer >= 0, got {max_retries!r}")
        if not _positive_number(timeout):
            raise ValueError(f"timeout must be a number of seconds > 0, got {timeout!r}")
        if not (_positive_number(max_retry_after) or max_retry_after == 0):
            raise ValueError(f"max_retry_after must be >= 0, got {max_retry_after!r}")
        if max_response_bytes is not None and max_response_bytes < 1:
            raise ValueError(f"max_response_bytes must be >= 1 or None, got {max_response_bytes}")
        if max_n is not None and max_n < 1:
            raise ValueError(f"max_n must be >= 1 or None, got {max_n}")
        if http not in _TRANSPORTS:
            raise ValueError(f"http must be one of {_TRANSPORTS}, got {http!r}")
        if http == "aiohttp" and not _AIOHTTP:
            raise ValueError(
                "http='aiohttp' needs openai's aiohttp transport: "
                "pip install 'langgraph-rstar[aiohttp]'"
            )
        if prefix_wait is not None and not 0 <= prefix_wait <= 1:
            raise ValueError(f"prefix_wait must be within [0, 1] or None, got {prefix_wait!r}")
        if max_stop is not None and max_stop < 0:
            raise ValueError(f"max_stop must be >= 0 or None, got {max_stop}")
        base_url = base_url or os.environ.get("OPENAI_BASE_URL")
        if not base_url:
            raise ValueError("base_url is required (or set OPENAI_BASE_URL)")
        self.base_url = _normalize_base_url(base_url)
        self.model = model
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY", "EMPTY")
        # What never appears in a message, log line or record: the key and URL credentials.
        self._secrets = [self.api_key, *url_secrets(self.base_url)]
        if http == "aiohttp" and url_secrets(self.base_url):
            raise ValueError(
                "http='aiohttp' cannot send credentials in the base URL (aiohttp refuses them "
                "beside the API key's Authorization header); use http='httpx'"
            )
        self.display_url = redact_url(self.base_url)
        self.api: Api = api
        self.dialect: Dialect = dialect
        self.max_in_flight = max_in_flight
        self.timeout = float(timeout)
        self.max_retries = max_retries
        self.max_retry_after = float(max_retry_after)
        self.max_response_bytes = max_response_bytes
        self.max_n = max_n
        self.batch_prompts = dialect != "llamacpp" if batch_prompts is None else batch_prompts
        self.max_stop = max_stop if max_stop is not None else _DEFAULT_MAX_STOP[dialect]
        self.extra_body = dict(extra_body or {})
        self.name = name or f"{model}@{self.display_url}"
        self.affinity_header = affinity_header or None
        if prefix_wait is None:
            prefix_wait = 0.5 if dialect == "llamacpp" else 0.0
        self.prefix_wait = float(prefix_wait)
        self.http = http
        self.usage = Usage()
        # Cap on choices per request learned from short replies (servers that cap/ignore n).
        self._served_n: int | None = None
        self._loops: dict[int, _LoopState] = {}
        self._stop_token_cache: dict[str, int | None] = {}  # llamacpp: tokens per stop string

    def __repr__(self) -> str:
        return (
            f"OpenAICompatibleLLM(base_url={self.display_url!r}, model={self.model!r}, "
            f"api={self.api!r}, dialect={self.dialect!r})"
        )

    def redact(self, text: str) -> str:
        """``text`` with this backend's key and URL credentials masked."""
        return redact(text, self._secrets)

    @classmethod
    def from_env(cls, prefix: str = "RSTAR_TARGET") -> OpenAICompatibleLLM:
        """Build a backend from ``{prefix}_BASE_URL``, ``_MODEL``, ``_API_KEY``, ``_API``,
        ``_DIALECT`` environment variables (the first two are required).

        Example:
            >>> os.environ["RSTAR_TARGET_BASE_URL"] = "http://127.0.0.1:8080/v1"
            >>> os.environ["RSTAR_TARGET_MODEL"] = "qwen2.5-0.5b"
            >>> os.environ["RSTAR_TARGET_DIALECT"] = "llamacpp"
            >>> llm = OpenAICompatibleLLM.from_env()
        """
        env = os.environ
        base_url = env.get(f"{prefix}_BASE_URL")
        model = env.get(f"{prefix}_MODEL")
        missing = [k for k, v in (("BASE_URL", base_url), ("MODEL", model)) if not v]
        if missing or base_url is None or model is None:
            names = ", ".join(f"{prefix}_{k}" for k in missing)
            raise ValueError(f"environment variable(s) {names} must be set")
        api = env.get(f"{prefix}_API", "completions")
        dialect = env.get(f"{prefix}_DIALECT", "vllm")
        if api not in _APIS:
            raise ValueError(f"{prefix}_API must be one of {_APIS}, got {api!r}")
        if dialect not in _DIALECTS:
            raise ValueError(f"{prefix}_DIALECT must be one of {_DIALECTS}, got {dialect!r}")
        return cls(
            base_url,
            model,
            api_key=env.get(f"{prefix}_API_KEY"),  # unset: OPENAI_API_KEY, else "EMPTY"
            api=api,  # type: ignore[arg-type]
            dialect=dialect,  # type: ignore[arg-type]
        )

    # -- per-event-loop resources ------------------------------------------------------------

    def _state(self) -> _LoopState:
        """Client and semaphore of the running event loop (both are bound to a loop)."""
        loop = asyncio.get_running_loop()
        state = self._loops.get(id(loop))
        if state is not None and state.loop() is loop:
            return state
        # Forget loops that are gone: their clients cannot be closed from here anyway.
        for key, old in list(self._loops.items()):
            old_loop = old.loop()
            if old_loop is None or old_loop.is_closed():
                del self._loops[key]
        # A plain httpx client: the SDK's default one schedules aclose() from __del__ on
        # whatever loop is running then, which fails ("Event loop is closed") when it belonged
        # to an earlier asyncio.run().
        # Redirects are not followed: the key goes only to the host it was given for, and a
        # redirected POST is an error to fix in the URL, not something to retry elsewhere.
        # One TLS context for all pools, made as each client would make its own (building
        # one loads the CA store: ~17 ms of CPU per pool otherwise).
        lib = _http_library()
        tls = lib.create_ssl_context()
        if self.http == "aiohttp":
            # aiohttp's connector keeps its idle connections apart: one client for all.
            limits = lib.Limits(
                max_connections=self.max_in_flight, max_keepalive_connections=self.max_in_flight
            )
            https = [
                openai.DefaultAioHttpClient(
                    timeout=self.timeout, follow_redirects=False, verify=tls, limits=limits
                )
            ]
        else:
            https = [
                openai.DefaultAsyncHttpxClient(
                    timeout=self.timeout, follow_redirects=False, verify=tls
                )
                for _ in range(-(-self.max_in_flight // _POOL_CONNECTIONS))
            ]
        pools = [
            openai.AsyncOpenAI(
                base_url=self.base_url,
                api_key=self.api_key,
                timeout=self.timeout,
                max_retries=0,  # tenacity owns retries
                http_client=http,
            )
            for http in https
        ]
        state = _LoopState(
            loop=weakref.ref(loop),
            http=https[0],
            client=pools[0],
            semaphore=asyncio.Semaphore(self.max_in_flight),
            pools=pools,
        )
        self._loops[id(loop)] = state
        return state

    async def aclose(self) -> None:
        """Close the HTTP client of the running event loop (others are dropped)."""
        loop = asyncio.get_running_loop()
        state = self._loops.pop(id(loop), None)
        self._loops.clear()
        if state is not None and state.loop() is loop:
            for client in state.pools:
                await client.close()

    async def list_models(self) -> list[str]:
        """The model ids the server lists at ``/models`` (one request, no retries).

        Raises:
            BackendError: the server cannot be reached or refuses the request.
        """
        try:
            page = await asyncio.wait_for(self._state().client.models.list(), self.timeout)
        except asyncio.TimeoutError:
            raise BackendError(
                f"{self.display_url}/models: timed out after {self.timeout:g} s"
            ) from None
        except openai.APIStatusError as exc:
            raise BackendError(
                self.redact(
                    f"{self.display_url}/models answered HTTP {exc.status_code}: {_error_text(exc)}"
                )
            ) from None
        except openai.OpenAIError as exc:
            raise BackendError(
                self.redact(f"cannot reach {self.display_url}: {_describe(exc)}")
            ) from None
        return [model.id for model in page.data]

    async def health(self, timeout: float = 5.0) -> bool:
        """Whether the server is up and serving.

        Asks ``GET /health`` (vLLM, llama.cpp, TGI): a 2xx is healthy; a 5xx (llama.cpp still
        loading its model, vLLM's engine dead), a timeout or a refused connection is not. A
        server without ``/health`` (404) is asked for ``GET /v1/models`` instead, where any reply
        below 500 counts (a 401 still proves the server is up).

        Example:
            >>> asyncio.run(OpenAICompatibleLLM("http://127.0.0.1:9/v1", "m").health())
            False
        """
        state = self._state()
        root = self.base_url.removesuffix("/v1")
        try:
            resp = await state.http.get(f"{root}/health", timeout=timeout)
            if resp.status_code not in (404, 405):
                return 200 <= resp.status_code < 300
            resp = await state.http.get(
                f"{self.base_url}/models",
                headers={"Authorization": f"Bearer {self.api_key}"},
                timeout=timeout,
            )
            return resp.status_code < 500
        except Exception:  # any transport error of the (httpx) client: the server is not there
            return False

    async def __aenter__(self) -> OpenAICompatibleLLM:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- generation --------------------------------------------------------------------------

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
        """Sample ``n`` completions for each prompt.

        Args:
            prompts: Raw prompt strings (no chat template is applied with ``api="completions"``).
            n: Samples per prompt.
            max_tokens: Most tokens generated per sample.
            stop: Stop strings; the text is cut at the earliest one client-side.
            temperature: Sampling temperature.
            top_p: Nucleus sampling mass.
            top_k: Top-k cut-off (``None``: not sent). Not sent with the openai dialect.
            repetition_penalty: Repetition penalty (``None``: not sent). Not sent with openai.
            seed: Sampling seed. Requests of one call get disjoint seeds (``seed`` plus the
                number of samples per prompt requested before), so split requests differ.

        Returns:
            A :class:`Generation` with ``n`` completions per prompt, in prompt order.

        Raises:
            BackendError: The server is unreachable, rejected the request, or replied garbage.
        """
        prompts = checked_prompts(prompts, n)
        params = _Params(
            max_tokens=max_tokens,
            stop=[s for s in stop if s],
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            repetition_penalty=repetition_penalty,
            seed=seed,
        )
        results: list[list[Completion]] = [[] for _ in prompts]
        try:
            while True:
                missing = {i: n - len(r) for i, r in enumerate(results) if len(r) < n}
                if not missing:
                    break
                jobs = self._plan(missing)
                outs = await _gather_or_cancel(
                    [self._fetch([prompts[i] for i in idx], k, params) for idx, k in jobs]
                )
                progress = 0
                for (idx, _k), per_prompt in zip(jobs, outs, strict=True):
                    for i, comps in zip(idx, per_prompt, strict=True):
                        take = comps[: n - len(results[i])]
                        results[i].extend(take)
                        progress += len(take)
                if progress == 0:
                    raise BackendError(f"{self._where()} returned no choices")
        except BackendError as exc:
            exc.usage = params.usage  # what the failed call spent, for the caller's accounts
            raise
        finally:
            self.usage.add(params.usage)
        return Generation(choices=results, usage=params.usage)

    def _where(self) -> str:
        return f"{self.display_url} (model {self.model!r})"

    def _cap(self) -> int | None:
        caps = [c for c in (self.max_n, self._served_n) if c is not None]
        return min(caps) if caps else None

    def _plan(self, missing: dict[int, int]) -> list[tuple[list[int], int]]:
        """Group the missing samples into requests: (prompt indices, samples per prompt)."""
        cap = self._cap()
        jobs: list[tuple[list[int], int]] = []
        if self.api == "completions" and self.batch_prompts:
            by_count: dict[int, list[int]] = {}
            for i, k in missing.items():
                by_count.setdefault(k, []).append(i)
            for k, idx in by_count.items():
                jobs.extend((idx, size) for size in _split(k, cap))
        else:
            for i, k in missing.items():
                jobs.extend(([i], size) for size in _split(k, cap))
        return jobs

    async def _fetch(self, prompts: list[str], k: int, params: _Params) -> list[list[Completion]]:
        """``k`` samples for each prompt (possibly fewer if the server delivers fewer)."""
        cap = self._cap()
        if cap is not None and k > cap:
            parts = await _gather_or_cancel(
                [self._fetch(prompts, size, params) for size in _split(k, cap)]
            )
            return [[c for part in parts for c in part[i]] for i in range(len(prompts))]
        try:
            out = await self._request(prompts, k, params)
        except _Ambiguous as exc:
            # Which prompt a choice belongs to cannot be told from this reply: ask again one
            # prompt per request (unambiguous), and from now on for this backend.
            logger.warning("%s: %s; sending one prompt per request from now on", self.name, exc)
            self.batch_prompts = False
            parts = await _gather_or_cancel([self._fetch([p], k, params) for p in prompts])
            return [part[0] for part in parts]
        except _NLimitError as exc:  # only raised for k > 1
            limit = exc.limit if exc.limit is not None and 1 <= exc.limit < k else max(1, k // 2)
            logger.info("%s: server limits n to %d; splitting requests", self.name, limit)
            self.max_n = limit if self.max_n is None else min(self.max_n, limit)
            return await self._fetch(prompts, k, params)
        got = [len(c) for c in out]
        if k > 1 and got and all(0 < g < k for g in got):
            # The server caps (or ignores) n: ask for at most what it delivers from now on.
            served = max(got)
            if self._served_n is None or served < self._served_n:
                logger.info("%s: server returned %d of %d choices per prompt", self.name, served, k)
                self._served_n = served
        return out

    def _backoff(self, state: RetryCallState) -> float:
        """Exponential backoff with jitter, or the server's ``Retry-After`` up to a cap."""
        base = self.retry_initial_wait * 2 ** (state.attempt_number - 1)
        wait = min(base + random.uniform(0, self.retry_initial_wait), self.retry_max_wait)
        asked = _retry_after(state.outcome.exception() if state.outcome else None)
        return wait if asked is None else min(max(asked, wait), self.max_retry_after)

    def _body_cap(self, choices: int, max_tokens: int) -> int:
        if self.max_response_bytes is not None:
            return self.max_response_bytes
        per_token = 512 if self.dialect == "llamacpp" else 64  # logprobs entries are bulky
        return 64 * 1024 + choices * max(1, max_tokens) * per_token

    # -- one HTTP request --------------------------------------------------------------------

    def _request_kwargs(self, prompts: list[str], k: int, params: _Params) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.dialect in ("vllm", "tgi"):
            if params.top_k is not None:
                extra["top_k"] = params.top_k
            if params.repetition_penalty is not None:
                extra["repetition_penalty"] = params.repetition_penalty
        elif self.dialect == "llamacpp":
            if params.top_k is not None:
                extra["top_k"] = params.top_k
            if params.repetition_penalty is not None:
                # llama.cpp silently ignores the name "repetition_penalty".
                extra["repeat_penalty"] = params.repetition_penalty
            extra["min_p"] = 0.0  # llama.cpp defaults to 0.05; vLLM and others to 0
        extra.update(self.extra_body)

        kwargs: dict[str, Any] = {
            "model": self.model,
            "n": k,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
        }
        # TGI rejects top_p >= 1.0 ("must be > 0.0 and < 1.0"); omitting it means no cut-off.
        if not (self.dialect == "tgi" and params.top_p >= 1.0):
            kwargs["top_p"] = params.top_p
        stop = params.stop if self.max_stop is None else params.stop[: self.max_stop]
        if stop:
            kwargs["stop"] = stop
        seed = params.next_seed(k)
        if seed is not None:
            kwargs["seed"] = seed
        if self.dialect == "llamacpp":
            # Per-choice token counts: llama.cpp's usage only covers the first choice.
            kwargs["logprobs"] = True if self.api == "chat" else 1
            if self.api == "chat":
                kwargs["top_logprobs"] = 1
        if self.api == "chat":
            kwargs["messages"] = [{"role": "user", "content": prompts[0]}]
        else:
            kwargs["prompt"] = prompts if len(prompts) > 1 else prompts[0]
        if extra:
            kwargs["extra_body"] = extra
        key = current_affinity_key()
        if key is not None and self.affinity_header:
            kwargs["extra_headers"] = {self.affinity_header: header_safe(key)}
        return kwargs

    async def _request(self, prompts: list[str], k: int, params: _Params) -> list[list[Completion]]:
        state = self._state()
        kwargs = self._request_kwargs(prompts, k, params)
        client = state.next_client()
        endpoint = client.chat.completions if self.api == "chat" else client.completions
        create = endpoint.with_streaming_response.create
        cap = self._body_cap(len(prompts) * k, params.max_tokens)

        async def read_reply() -> bytes:
            try:
                return await read_body()
            except _AIOHTTP_ERRORS as exc:
                raise _BrokenReply(f"the connection failed: {_describe(exc)}") from exc

        async def read_body() -> bytes:
            # Streamed so that the size cap holds while reading, not after.
            async with create(**kwargs) as response:
                chunks: list[bytes] = []
                size = 0
                try:
                    async for chunk in response.iter_bytes():
                        size += len(chunk)
                        if size > cap:
                            raise _TooLarge(
                                f"{self._where()} sent a reply larger than {cap:,} bytes for "
                                f"{len(prompts) * k} sample(s) of at most {params.max_tokens} "
                                "tokens; refusing it (set max_response_bytes to allow more)"
                            )
                        chunks.append(chunk)
                except _HTTP_ERRORS as exc:  # the body broke off: as retryable as a reset
                    raise _BrokenReply(f"the reply broke off: {_describe(exc)}") from exc
                return b"".join(chunks)

        async def attempt() -> list[list[Completion]]:
            async with self._prompt_turn(state, prompts), state.semaphore:
                # Every attempt is a request the server sees, so each is one LLM run.
                run = await start_llm_run(
                    self.name,
                    prompts,
                    model=self.model,
                    invocation_params=self._run_params(kwargs),
                    metadata=self._run_metadata(kwargs),
                )
                try:
                    # One deadline for connect, headers and the whole body: per-read timeouts
                    # never end a reply that trickles a byte at a time.
                    body = await asyncio.wait_for(read_reply(), self.timeout)
                except BaseException as exc:
                    if isinstance(exc, openai.APIStatusError):
                        params.usage.requests += 1
                    if run is not None:
                        await run.error(exc)
                    if isinstance(exc, asyncio.TimeoutError):
                        raise _DeadlineExceeded(
                            f"timed out: no complete reply within {self.timeout:g} s"
                        ) from None
                    raise
            params.usage.requests += 1
            try:
                stop_tokens = 1
                if self.dialect == "llamacpp" and kwargs.get("stop"):
                    stop_tokens = await self._stop_tokens(state, kwargs["stop"])
                before = Usage(0, params.usage.prompt_tokens, params.usage.completion_tokens)
                out = self._parse(body, prompts, k, params, stop_tokens)
            except BaseException as exc:  # a malformed reply is a failed run too (retried)
                if run is not None:
                    await run.error(exc)
                raise
            if run is not None:  # _parse adds this request's tokens (no await in between)
                spent = Usage(
                    1,
                    params.usage.prompt_tokens - before.prompt_tokens,
                    params.usage.completion_tokens - before.completion_tokens,
                )
                await run.end(out, spent)
            return out

        def log_retry(rs: RetryCallState) -> None:
            exc = rs.outcome.exception() if rs.outcome else None
            logger.warning(
                "%s: attempt %d failed (%s); retrying",
                self.name,
                rs.attempt_number,
                self.redact(_describe(exc)),
            )

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=self._backoff,
            retry=retry_if_exception(_is_retryable),
            before_sleep=log_retry,
            reraise=True,
        )
        attempts = f"after {self.max_retries + 1} attempt(s)"
        try:
            return await retrying(attempt)
        except _Malformed as exc:  # plain BackendErrors from here on: the kind is internal
            raise BackendError(self.redact(f"{exc} ({attempts})")) from None
        except BackendError as exc:
            raise BackendError(self.redact(str(exc))) from None
        except (_DeadlineExceeded, _BrokenReply) as exc:
            raise BackendError(
                self.redact(f"cannot reach {self._where()} {attempts}: {exc}"), transient=True
            ) from None
        except openai.APIStatusError as exc:
            message = self.redact(_error_text(exc))
            if _is_retryable(exc):
                raise BackendError(
                    f"cannot reach {self._where()} {attempts}: HTTP {exc.status_code}: {message}",
                    transient=True,
                ) from None
            if exc.status_code in (400, 422) and k > 1 and _N_FIELD_RE.search(message):
                raise _NLimitError(_parse_n_limit(message), message) from None
            if 300 <= exc.status_code < 400:
                where = redact_url(exc.response.headers.get("location") or "?")
                raise BackendError(
                    f"{self._where()} redirected the request (HTTP {exc.status_code}) to "
                    f"{where}; redirects are not followed, so that the key goes only to the "
                    "host it was given for: use the final URL as the base URL"
                ) from None
            raise BackendError(
                f"{self._where()} rejected the request with HTTP {exc.status_code}: {message}"
            ) from None
        except openai.APIConnectionError as exc:
            raise BackendError(
                self.redact(f"cannot reach {self._where()} {attempts}: {_describe(exc)}"),
                transient=True,
            ) from exc
        except openai.OpenAIError as exc:
            raise BackendError(
                self.redact(f"request to {self._where()} failed: {_describe(exc)}")
            ) from None

    def _run_params(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The request's settings for a trace (without the prompts, which are the inputs)."""
        skip = ("prompt", "messages", "extra_body")
        return {
            **{k: v for k, v in kwargs.items() if k not in skip},
            **kwargs.get("extra_body", {}),
            "base_url": self.display_url,  # traces leave the machine: no URL credentials
            "api": self.api,
            "dialect": self.dialect,
        }

    def _run_metadata(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """LangSmith's standard model fields (``ls_*``) for this request."""
        return {
            "ls_provider": self.dialect,
            "ls_model_name": self.model,
            "ls_model_type": "llm",
            "ls_temperature": kwargs.get("temperature"),
            "ls_max_tokens": kwargs.get("max_tokens"),
            "ls_stop": kwargs.get("stop"),
        }

    @contextlib.asynccontextmanager
    async def _prompt_turn(self, state: _LoopState, prompts: list[str]) -> AsyncIterator[None]:
        """Wait while a request in flight holds much of this prompt's prefix (``prefix_wait``)."""
        if not self.prefix_wait:
            yield
            return
        text = "\x00".join(prompts)
        while (holder := self._prefix_holder(state, text)) is not None:
            await holder.wait()
        entry = (text, asyncio.Event())
        state.sending.append(entry)
        try:
            yield
        finally:
            state.sending.remove(entry)
            entry[1].set()

    def _prefix_holder(self, state: _LoopState, text: str) -> asyncio.Event | None:
        """The request in flight sharing the longest prefix with ``text``, if that prefix is at
        least ``prefix_wait`` of it."""
        need = max(1, int(self.prefix_wait * len(text)))
        best, holder = need - 1, None
        for other, done in state.sending:
            # (one slice compare rules out most requests before the exact length is computed)
            if other[:need] == text[:need] and (shared := common_prefix(other, text)) > best:
                best, holder = shared, done
        return holder

    async def _stop_tokens(self, state: _LoopState, stops: list[str]) -> int:
        """llamacpp: fewest tokens of any sent stop string, via llama.cpp's ``/tokenize``.

        llama.cpp drops ``len(tokenize(stop))`` entries from the logprobs of a choice that ended
        on that stop string, so this many generated tokens are missing from the count. Which
        stop string matched is not reported; the smallest count is a lower bound (exact when
        all sent stop strings have the same length in tokens, e.g. a single one). Unknown: 1.
        """
        if any(s not in self._stop_token_cache for s in stops):
            async with state.tokenizing:  # concurrent first requests ask once
                await self._tokenize_stops(state, stops)
        known = [c for c in (self._stop_token_cache.get(s) for s in stops) if c is not None]
        return min(known) if known else 1

    async def _tokenize_stops(self, state: _LoopState, stops: list[str]) -> None:
        todo = [s for s in dict.fromkeys(stops) if s not in self._stop_token_cache]
        if todo:
            root = self.base_url.removesuffix("/v1")

            async def tokenize(text: str) -> int | None:
                try:
                    resp = await asyncio.wait_for(
                        state.http.post(
                            f"{root}/tokenize",
                            json={"content": text, "add_special": False, "parse_special": False},
                            timeout=min(self.timeout, 30.0),
                        ),
                        min(self.timeout, 30.0),
                    )
                    tokens = resp.json().get("tokens") if resp.status_code == 200 else None
                except Exception:  # not llama.cpp after all, or unreachable: fall back
                    return None
                return len(tokens) if isinstance(tokens, list) and tokens else None

            counts = await asyncio.gather(*(tokenize(s) for s in todo))
            self._stop_token_cache.update(zip(todo, counts, strict=True))

    # -- reply parsing -----------------------------------------------------------------------

    def _malformed(self, why: str, content: bytes | str) -> BackendError:
        snippet = content if isinstance(content, str) else content.decode("utf-8", "replace")
        return _Malformed(
            self.redact(
                f"malformed reply from {self._where()}: {why}; body starts with {snippet[:200]!r}"
            )
        )

    def _parse(
        self, content: bytes, prompts: list[str], k: int, params: _Params, stop_tokens: int = 1
    ) -> list[list[Completion]]:
        try:
            data = json.loads(content)
        except ValueError:
            raise self._malformed("not JSON", content) from None
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list) or not choices:
            raise self._malformed("no 'choices' list", content)

        # index, text, finish, tokens
        entries: list[tuple[int | None, str, str | None, int | None]] = []
        for pos, ch in enumerate(choices):
            if not isinstance(ch, dict):
                raise self._malformed(f"choice {pos} is not an object", content)
            if self.api == "chat":
                msg = ch.get("message")
                text = msg.get("content") if isinstance(msg, dict) else None
            else:
                text = ch.get("text")
            if not isinstance(text, str):
                raise self._malformed(f"choice {pos} has no text", content)
            index = ch.get("index")
            if not isinstance(index, int) or isinstance(index, bool):
                index = None
            finish = ch.get("finish_reason")
            finish = finish if isinstance(finish, str) else None
            entries.append((index, text, finish, self._logprob_tokens(ch, finish, stop_tokens)))

        p = len(prompts)
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        prompt_tokens = _int(usage.get("prompt_tokens"))
        completion_tokens = _int(usage.get("completion_tokens"))
        try:
            owners = self._owners([e[0] for e in entries], p, k, content)
        except _Ambiguous:
            # Unusable, but generated: count what the server says it spent.
            params.usage.prompt_tokens += prompt_tokens
            params.usage.completion_tokens += completion_tokens
            raise
        grouped: list[list[tuple[int | None, str, str | None, int | None]]] = [[] for _ in prompts]
        order = sorted(range(len(entries)), key=lambda i: (entries[i][0] or 0, i))
        for i in order:
            grouped[owners[i]].append(entries[i])

        if self.dialect == "llamacpp" and p > 1 and prompt_tokens:
            # llama.cpp's usage covers the first prompt only; scale the rest by length.
            ratio = prompt_tokens / max(1, len(prompts[0]))
            prompt_tokens += sum(round(len(q) * ratio) for q in prompts[1:])
        params.usage.prompt_tokens += prompt_tokens

        flat = [e for group in grouped for e in group]
        token_counts = self._token_counts(flat, completion_tokens)
        params.usage.completion_tokens += sum(token_counts)
        counts = iter(token_counts)

        out: list[list[Completion]] = []
        for group in grouped:
            comps = []
            for _, raw_text, finish, _ in group:
                text, stopped = apply_stop(raw_text, params.stop)
                comps.append(Completion(text, "stop" if stopped else finish, next(counts)))
            out.append(comps[:k])  # extra choices were generated (and counted), not used
        return out

    def _owners(self, indices: list[int | None], p: int, k: int, content: bytes) -> list[int]:
        """The prompt each choice belongs to, by its ``index`` (``prompt * k + sample``).

        Order is never trusted. A batched reply is ambiguous when a choice has no index, or when
        it holds ``p * s`` choices numbered ``0 .. p*s-1`` for some ``s < k``: a server that
        capped ``n`` at ``s`` numbers them that way, and so does one that answered the first
        prompts in full and omitted the rest. Those raise :class:`_Ambiguous` (re-asked one
        prompt per request) rather than credit a sample to the wrong prompt.
        """
        if p == 1:
            return [0] * len(indices)
        if any(i is None for i in indices):
            raise _Ambiguous(f"{self._where()} sent choices without 'index' for {p} prompts")
        known = [i for i in indices if i is not None]
        if len(set(known)) != len(known):
            raise self._malformed("duplicate choice index", content)
        bad = [i for i in known if not 0 <= i < p * k]
        if bad:
            raise self._malformed(f"choice index {bad[0]} out of range", content)
        count = len(known)
        if count < p * k and count % p == 0 and set(known) == set(range(count)):
            raise _Ambiguous(
                f"{self._where()} sent {count} choices for {p} prompts x {k} samples, "
                "numbered so that which prompt each belongs to is ambiguous"
            )
        return [i // k for i in known]

    def _logprob_tokens(
        self, choice: dict[str, Any], finish: str | None, stop_tokens: int
    ) -> int | None:
        """llama.cpp: generated tokens of one choice from its logprobs, else ``None``."""
        if self.dialect != "llamacpp":
            return None
        lp = choice.get("logprobs")
        content = lp.get("content") if isinstance(lp, dict) else None
        if isinstance(content, list):
            ended_on_eos = (
                bool(content) and isinstance(content[-1], dict) and (content[-1].get("token") == "")
            )
            # The end-of-generation token is listed (as ""), but on a stop string llama.cpp
            # drops as many entries as the stop string has tokens.
            stopped_on_word = finish == "stop" and not ended_on_eos
            return len(content) + (stop_tokens if stopped_on_word else 0)
        return None

    def _token_counts(
        self, entries: list[tuple[int | None, str, str | None, int | None]], usage_tokens: int
    ) -> list[int]:
        """Generated tokens per choice (see the class docstring for the method per dialect)."""
        if entries and all(e[3] is not None for e in entries):
            return [int(e[3] or 0) for e in entries]
        if not entries:
            return []
        lengths = [len(e[1]) for e in entries]
        if self.dialect == "llamacpp":
            # No logprobs: usage is the first choice's count; scale the others by text length.
            first = lengths[0]
            if first:
                return [usage_tokens] + [round(usage_tokens * ln / first) for ln in lengths[1:]]
            return [usage_tokens] + [max(1, round(ln / 4)) for ln in lengths[1:]]
        return split_by_length(usage_tokens, lengths)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _positive_number(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and value > 0
        and value != float("inf")
    )


def _describe(exc: BaseException | None) -> str:
    """``Type: message (cause)`` of an exception, for messages (callers redact it)."""
    if exc is None:
        return "unknown error"
    text = f"{type(exc).__name__}: {exc}"
    cause = exc.__cause__ or exc.__context__
    if cause is not None and str(cause) and str(cause) not in text:
        text += f" ({type(cause).__name__}: {cause})"
    return text


def _normalize_base_url(url: str) -> str:
    """Check the URL (http or https with a host: anything else fails here, not after retries)
    and add ``/v1`` when it has no path."""
    if not isinstance(url, str) or not url.strip():
        raise ValueError("base_url must be a non-empty http:// or https:// URL")
    url = url.strip().rstrip("/")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ValueError(f"base_url {redact_url(url)!r} is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not host:
        hint = f"; did you mean 'http://{url}'?" if "://" not in url else ""
        raise ValueError(
            f"base_url {redact_url(url)!r} is not supported: use an http:// or https:// URL "
            f"with a host{hint}"
        )
    if parts.path in ("", "/"):
        url += "/v1"  # vLLM serves the OpenAI routes under /v1 only
    return url
