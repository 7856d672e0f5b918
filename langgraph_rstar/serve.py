"""``rstar serve``: rStar behind an OpenAI-compatible HTTP API, for any client or language.

Every model this server lists is an rStar preset over the configured target and discriminator
endpoints: ``rstar-fast``, ``rstar-paper``, ``rstar-reference_code``, and ``rstar`` (the
server's default preset). A request runs :func:`~langgraph_rstar.api.asolve` on the question,
exactly as the Python API does, and answers with the chosen trajectory.

Routes: ``GET /v1/models`` (and ``/v1/models/{id}``), ``POST /v1/chat/completions`` (the question
is the last user message), ``POST /v1/completions`` (the question is the prompt), ``GET /health``.

Requests:

* **Knobs** per request under the body key ``rstar`` (``extra_body={"rstar": {...}}`` with the
  openai SDK): any :class:`~langgraph_rstar.config.RStarConfig` field, e.g.
  ``{"num_rollouts": 8, "task": "math500"}``. Unknown names and bad values are HTTP 400.
* OpenAI's sampling parameters (``temperature``, ``max_tokens``, ...) are accepted and ignored:
  the search samples with its preset's settings (set them through ``rstar``). ``n`` must be 1.

Responses: ``choices[0].message.content`` (``text`` for completions) is the trajectory and the
answer, ``"Step 1: ...\\nStep 2: ...\\n\\nFinal answer: 42"``; ``usage`` counts every token the
search spent on both models; the extra top-level field ``rstar`` holds ``answer``,
``confidence``, ``selection``, ``generator_answer``, ``generator_confidence``, ``trajectory``,
``usage`` per role and the ``settings`` used.

Streaming (``stream: true``): Server-Sent Events in OpenAI's chunk format. While the search runs,
each progress event (:mod:`langgraph_rstar.events`: ``rstar.rollout_started``,
``rstar.node_expanded``, ``rstar.rollout_finished``, ``rstar.candidate_verified``,
``rstar.final_answer``) arrives as a chunk with an empty delta and the event in the extra field
``rstar``; then the content arrives line by line, then a chunk with ``finish_reason: "stop"``
and the result block in ``rstar``, then (with ``stream_options.include_usage``) the usage chunk,
then ``data: [DONE]``. A failure after the stream started is sent as ``data: {"error": ...}``.

Limits: its own API key (``Authorization: Bearer ...``; none = open), at most
``max_concurrent`` searches at once and ``max_waiting`` queued (more: HTTP 429), a deadline per
request (HTTP 504 ``deadline_exceeded``), and a client that disconnects cancels its search.
Errors are OpenAI-shaped: ``{"error": {"message", "type", "param", "code"}}``; a failing model
endpoint is HTTP 502 ``backend_error``.

Example::

    rstar serve --base-url http://localhost:8000/v1 --model Qwen/Qwen2.5-7B-Instruct --port 8080

    from openai import OpenAI
    client = OpenAI(base_url="http://127.0.0.1:8080/v1", api_key="EMPTY")
    reply = client.chat.completions.create(
        model="rstar-fast",
        messages=[{"role": "user", "content": "What is 17 * 23?"}],
        extra_body={"rstar": {"num_rollouts": 8}},
    )
    print(reply.choices[0].message.content, reply.model_extra["rstar"]["confidence"])
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import difflib
import json
import secrets
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from langgraph_rstar.api import RStarError, RStarResult, asolve
from langgraph_rstar.backends import BackendError, BackendLike, as_backend
from langgraph_rstar.config import PRESETS, RStarConfig
from langgraph_rstar.graph import render_answer

__all__ = ["ServerStats", "create_app", "register_cli", "running"]

MODEL_PREFIX = "rstar"
KNOBS = frozenset({f.name for f in dataclasses.fields(RStarConfig)} | {"preset"})


# --------------------------------------------------------------------------------------------
# Errors and request bodies
# --------------------------------------------------------------------------------------------


class APIError(Exception):
    """An error answered as OpenAI does: ``{"error": {message, type, param, code}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",  # noqa: A002 - OpenAI's field name
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": type, "param": param, "code": code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body, status_code=self.status)


class _Body(BaseModel):
    """Fields shared by both endpoints; any other OpenAI parameter is accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    n: int = 1
    rstar: dict[str, Any] = Field(default_factory=dict)


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):  # content parts: keep the text ones
            return "\n".join(
                str(p.get("text", "")) for p in self.content if p.get("type") == "text"
            )
        return self.content or ""


class ChatBody(_Body):
    messages: list[_Message]

    def question(self) -> str:
        for message in reversed(self.messages):
            if message.role == "user":
                return message.text()
        return ""


class CompletionBody(_Body):
    prompt: str | list[str]

    def question(self) -> str:
        if isinstance(self.prompt, list):
            if len(self.prompt) != 1:
                raise APIError(400, "send one prompt per request", param="prompt")
            return self.prompt[0]
        return self.prompt


def _validation_error(exc: ValidationError) -> APIError:
    first = exc.errors()[0]
    param = ".".join(str(p) for p in first["loc"])
    return APIError(400, f"{param}: {first['msg']}", param=param)


def _check_knobs(knobs: Mapping[str, Any]) -> None:
    """Only RStarConfig fields (and ``preset``) may be set per request."""
    for name in knobs:
        if name not in KNOBS:
            close = difflib.get_close_matches(name, sorted(KNOBS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise APIError(
                400,
                f"unknown rStar setting {name!r}{hint} (settings are RStarConfig fields)",
                param=f"rstar.{name}",
                code="unknown_setting",
            )


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


@dataclass
class ServerStats:
    """Counters of the server's searches (``app.state.stats``)."""

    active: int = 0
    waiting: int = 0
    started: int = 0
    finished: int = 0
    failed: int = 0
    cancelled: int = 0  # the client went away (or the server is shutting down)
    timed_out: int = 0


class _Service:
    """What the routes share: backends, presets, limits, counters."""

    def __init__(
        self,
        target: BackendLike,
        discriminator: BackendLike | None,
        *,
        task: str,
        overrides: Mapping[str, Any],
        default_preset: str,
        api_key: str | None,
        max_concurrent: int,
        max_waiting: int,
        deadline: float,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError(f"max_concurrent must be >= 1, got {max_concurrent}")
        if max_waiting < 0:
            raise ValueError(f"max_waiting must be >= 0, got {max_waiting}")
        if deadline <= 0:
            raise ValueError(f"deadline must be > 0 seconds, got {deadline}")
        _check_knobs(overrides)
        self.target = as_backend(target, role="target")
        self.discriminator = (
            None if discriminator is None else as_backend(discriminator, role="discriminator")
        )
        # One base config per model, validated now: a bad server setting fails at start-up.
        self.models: dict[str, RStarConfig] = {
            f"{MODEL_PREFIX}-{p}": RStarConfig.preset(p, task=task, **overrides) for p in PRESETS
        }
        self.models[MODEL_PREFIX] = self.models[f"{MODEL_PREFIX}-{default_preset}"]
        self.api_key = api_key
        self.max_concurrent = max_concurrent
        self.max_waiting = max_waiting
        self.deadline = deadline
        self.stats = ServerStats()
        self.created = int(time.time())
        self._slots: asyncio.Semaphore | None = None

    # -- admission ---------------------------------------------------------------------------

    def authorize(self, request: Request) -> None:
        if not self.api_key:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(given, self.api_key):
            raise APIError(401, "Incorrect API key provided.", code="invalid_api_key")

    def config_for(self, model: str) -> RStarConfig:
        try:
            return self.models[model]
        except KeyError:
            known = ", ".join(self.models)
            raise APIError(
                404,
                f"The model {model!r} does not exist; this server has {known}",
                param="model",
                code="model_not_found",
            ) from None

    @contextlib.asynccontextmanager
    async def slot(self, deadline_at: float) -> AsyncIterator[None]:
        """One of ``max_concurrent`` search slots, waiting in a bounded queue (else 429)."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_concurrent)
        if self._slots.locked() and self.stats.waiting >= self.max_waiting:
            raise APIError(
                429,
                f"server busy: {self.stats.active} searches running, "
                f"{self.stats.waiting} waiting; retry later",
                type="rate_limit_error",
                code="too_many_searches",
            )
        self.stats.waiting += 1
        try:
            remaining = deadline_at - asyncio.get_running_loop().time()
            await asyncio.wait_for(self._slots.acquire(), max(0.0, remaining))
        except asyncio.TimeoutError:
            self.stats.timed_out += 1
            raise self.deadline_error("waiting for a free search slot") from None
        finally:
            self.stats.waiting -= 1
        self.stats.active += 1
        try:
            yield
        finally:
            self.stats.active -= 1
            self._slots.release()

    def deadline_error(self, during: str) -> APIError:
        return APIError(
            504,
            f"request deadline of {self.deadline:g} s exceeded while {during}",
            type="timeout_error",
            code="deadline_exceeded",
        )

    # -- one search --------------------------------------------------------------------------

    def start(
        self, question: str, config: RStarConfig, knobs: Mapping[str, Any]
    ) -> tuple[asyncio.Task[RStarResult], asyncio.Queue[Any]]:
        """Start ``asolve`` (the Python API's own path); progress events go to the queue."""
        events: asyncio.Queue[Any] = asyncio.Queue()
        task = asyncio.ensure_future(
            asolve(
                question,
                target=self.target,
                discriminator=self.discriminator,
                config=config,
                on_event=events.put_nowait,
                **knobs,
            )
        )
        task.add_done_callback(lambda _: events.put_nowait(None))  # end of events
        self.stats.started += 1
        return task, events

    def outcome(self, task: asyncio.Task[RStarResult]) -> RStarResult:
        """The finished search's result, or its failure as an :class:`APIError`."""
        try:
            result = task.result()
        except (TypeError, ValueError) as exc:  # settings rejected before any model call
            self.stats.failed += 1
            raise APIError(400, str(exc), param="rstar", code="invalid_setting") from exc
        except RStarError as exc:
            self.stats.failed += 1
            if isinstance(exc.__cause__, BackendError):
                raise APIError(502, str(exc), type="upstream_error", code="backend_error") from exc
            raise APIError(500, str(exc), type="server_error", code="search_failed") from exc
        self.stats.finished += 1
        return result

    async def stop(self, task: asyncio.Task[Any], *, timed_out: bool = False) -> None:
        if task.done():
            return
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        if timed_out:
            self.stats.timed_out += 1
        else:
            self.stats.cancelled += 1


# --------------------------------------------------------------------------------------------
# Response shapes
# --------------------------------------------------------------------------------------------


def _usage(result: RStarResult) -> dict[str, int]:
    prompt = sum(role.get("prompt_tokens", 0) for role in result.usage.values())
    completion = sum(role.get("completion_tokens", 0) for role in result.usage.values())
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _summary(result: RStarResult) -> dict[str, Any]:
    return {
        "answer": result.answer,
        "confidence": result.confidence,
        "selection": result.selection,
        "generator_answer": result.generator_answer,
        "generator_confidence": result.generator_confidence,
        "trajectory": result.trajectory,
        "usage": result.usage,
        "settings": {
            k: result.config.get(k) for k in ("preset_name", "task", "num_rollouts", "scoring")
        },
    }


def _text(result: RStarResult) -> str:
    pack = RStarConfig.from_dict(result.config).prompt_pack()
    return render_answer(pack, result.trajectory, result.answer)


@dataclass
class _Shape:
    """The two OpenAI endpoints differ only in object names and where the text goes."""

    kind: Literal["chat", "completion"]

    @property
    def id_prefix(self) -> str:
        return "chatcmpl-rstar-" if self.kind == "chat" else "cmpl-rstar-"

    def choice(self, text: str | None, finish: str | None, *, first: bool = False) -> dict:
        if self.kind == "completion":
            return {"index": 0, "text": text or "", "finish_reason": finish, "logprobs": None}
        delta: dict[str, Any] = {}
        if first:
            delta["role"] = "assistant"
        if text is not None:
            delta["content"] = text
        return {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}

    def whole(self, rid: str, created: int, model: str, result: RStarResult) -> dict[str, Any]:
        text = _text(result)
        if self.kind == "chat":
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
                "logprobs": None,
            }
            obj = "chat.completion"
        else:
            choice = {"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}
            obj = "text_completion"
        return {
            "id": rid,
            "object": obj,
            "created": created,
            "model": model,
            "choices": [choice],
            "usage": _usage(result),
            "rstar": _summary(result),
        }

    def chunk(self, rid: str, created: int, model: str, **fields: Any) -> str:
        obj = "chat.completion.chunk" if self.kind == "chat" else "text_completion"
        return json.dumps({"id": rid, "object": obj, "created": created, "model": model, **fields})


# --------------------------------------------------------------------------------------------
# Routes
# --------------------------------------------------------------------------------------------


async def _read(request: Request, model: type[_Body]) -> Any:
    try:
        raw = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise APIError(400, "the request body is not valid JSON") from None
    if not isinstance(raw, dict):
        raise APIError(400, "the request body must be a JSON object")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise _validation_error(exc) from None


async def _until_disconnect(request: Request) -> None:
    """Returns when the client goes away (call it after the body has been read)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


class _ClientGone(Exception):
    """The client disconnected; there is nobody left to answer."""


class _Endpoint:
    """``/v1/chat/completions`` or ``/v1/completions``: one search per request."""

    def __init__(self, service: _Service, shape: _Shape, body_model: type[_Body]) -> None:
        self.service = service
        self.shape = shape
        self.body_model = body_model

    async def handle(self, request: Request) -> Response:
        service, shape = self.service, self.shape
        deadline_at = asyncio.get_running_loop().time() + service.deadline
        service.authorize(request)
        body = await _read(request, self.body_model)
        config = service.config_for(body.model)
        if body.n != 1:
            raise APIError(400, "n must be 1 (one search gives one answer)", param="n")
        question = body.question().strip()
        if not question:
            what = (
                ("messages", "a user message") if shape.kind == "chat" else ("prompt", "a prompt")
            )
            raise APIError(400, f"no question: send {what[1]}", param=what[0])
        _check_knobs(body.rstar)
        rid = f"{shape.id_prefix}{uuid.uuid4().hex}"
        created = int(time.time())

        slot = contextlib.AsyncExitStack()
        await slot.enter_async_context(service.slot(deadline_at))
        try:
            task, events = service.start(question, config, body.rstar)
        except BaseException:
            await slot.aclose()
            raise
        if not body.stream:
            try:
                result = await self._wait(task, request, deadline_at)
            except _ClientGone:
                return Response(status_code=499)  # nginx's "client closed request"
            finally:
                await slot.aclose()
            return JSONResponse(shape.whole(rid, created, body.model, result))
        try:
            # A search rejected before it starts (bad settings) is still a plain HTTP error.
            first = await self._next(task, events, deadline_at)
            if first is None:
                service.outcome(task)
        except BaseException:
            await service.stop(task)
            await slot.aclose()
            raise
        include_usage = bool((body.stream_options or {}).get("include_usage"))
        chunks = self._chunks(
            task, events, first, slot, deadline_at, include_usage, rid, created, body.model
        )
        return EventSourceResponse(chunks, ping=15)

    async def _wait(
        self, task: asyncio.Task[RStarResult], request: Request, deadline_at: float
    ) -> RStarResult:
        """The search's result; cancels it if the client leaves or the deadline passes."""
        gone = asyncio.ensure_future(_until_disconnect(request))
        remaining = max(0.0, deadline_at - asyncio.get_running_loop().time())
        try:
            done, _ = await asyncio.wait(
                {task, gone}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
        except BaseException:  # the server is shutting down
            await self.service.stop(task)
            raise
        finally:
            gone.cancel()
        if task in done:
            return self.service.outcome(task)
        if gone in done:
            await self.service.stop(task)
            raise _ClientGone
        await self.service.stop(task, timed_out=True)
        raise self.service.deadline_error("searching")

    async def _next(
        self, task: asyncio.Task[Any], events: asyncio.Queue[Any], deadline_at: float
    ) -> Any:
        """The next progress event, or ``None`` when the search has ended."""
        remaining = max(0.0, deadline_at - asyncio.get_running_loop().time())
        try:
            return await asyncio.wait_for(events.get(), remaining)
        except asyncio.TimeoutError:
            await self.service.stop(task, timed_out=True)
            raise self.service.deadline_error("searching") from None

    async def _chunks(
        self,
        task: asyncio.Task[RStarResult],
        events: asyncio.Queue[Any],
        event: Any,
        slot: contextlib.AsyncExitStack,
        deadline_at: float,
        include_usage: bool,
        rid: str,
        created: int,
        model: str,
    ) -> AsyncIterator[ServerSentEvent]:
        shape = self.shape

        def chunk(**fields: Any) -> ServerSentEvent:
            return ServerSentEvent(data=shape.chunk(rid, created, model, **fields))

        try:
            yield chunk(choices=[shape.choice("", None, first=True)])
            while event is not None:
                yield chunk(choices=[shape.choice(None, None)], rstar=event)
                event = await self._next(task, events, deadline_at)
            result = self.service.outcome(task)
            for line in _text(result).splitlines(keepends=True):
                yield chunk(choices=[shape.choice(line, None)])
            yield chunk(choices=[shape.choice(None, "stop")], rstar=_summary(result))
            if include_usage:
                yield chunk(choices=[], usage=_usage(result))
            yield ServerSentEvent(data="[DONE]")
        except APIError as exc:  # the stream has started: the error goes in the stream
            yield ServerSentEvent(data=json.dumps(exc.body))
        finally:  # normal end, error, or the client went away (sse-starlette cancels us)
            await self.service.stop(task)
            await slot.aclose()


# --------------------------------------------------------------------------------------------
# The application
# --------------------------------------------------------------------------------------------


def create_app(
    target: BackendLike,
    *,
    discriminator: BackendLike | None = None,
    task: str = "gsm8k",
    overrides: Mapping[str, Any] | None = None,
    default_preset: str = "fast",
    api_key: str | None = None,
    max_concurrent: int = 4,
    max_waiting: int = 16,
    deadline: float = 600.0,
) -> Starlette:
    """The OpenAI-compatible ASGI app (serve it with any ASGI server, e.g. uvicorn).

    Args:
        target / discriminator: the models, as for :func:`~langgraph_rstar.api.asolve`.
        task: the task every preset is built for (requests may change it: ``rstar.task``).
        overrides: RStarConfig fields applied to every preset (e.g. ``{"num_rollouts": 8}``).
        default_preset: the preset behind the model name ``rstar``.
        api_key: required as ``Authorization: Bearer <key>``; ``None`` or "" leaves it open.
        max_concurrent: searches running at once; max_waiting: more may wait, then HTTP 429.
        deadline: seconds per request, waiting included (HTTP 504 after it).

    Example:
        >>> app = create_app(OpenAICompatibleLLM("http://127.0.0.1:8000/v1", "m"), api_key="s3")
        >>> # uvicorn.run(app, host="127.0.0.1", port=8080)
    """
    if default_preset not in PRESETS:
        raise ValueError(f"unknown preset {default_preset!r}; known: {', '.join(PRESETS)}")
    service = _Service(
        target,
        discriminator,
        task=task,
        overrides=dict(overrides or {}),
        default_preset=default_preset,
        api_key=api_key,
        max_concurrent=max_concurrent,
        max_waiting=max_waiting,
        deadline=deadline,
    )

    def model_card(name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": service.created, "owned_by": "rstar"}

    async def list_models(request: Request) -> Response:
        service.authorize(request)
        return JSONResponse({"object": "list", "data": [model_card(m) for m in service.models]})

    async def get_model(request: Request) -> Response:
        service.authorize(request)
        name = request.path_params["model"]
        service.config_for(name)
        return JSONResponse(model_card(name))

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", **dataclasses.asdict(service.stats)})

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, APIError)
        return exc.response()

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = "not_found" if exc.status_code == 404 else None
        message = f"{request.method} {request.url.path}: {exc.detail}"
        return APIError(exc.status_code, message, code=code).response()

    async def server_error(request: Request, exc: Exception) -> Response:
        message = f"internal error: {type(exc).__name__}: {exc}"
        return APIError(500, message, type="server_error").response()

    handlers: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
        APIError: api_error,
        HTTPException: http_error,
        Exception: server_error,
    }
    app = Starlette(
        routes=[
            Route("/health", health),
            Route("/v1/models", list_models),
            Route("/v1/models/{model:path}", get_model),
            Route(
                "/v1/chat/completions",
                _Endpoint(service, _Shape("chat"), ChatBody).handle,
                methods=["POST"],
            ),
            Route(
                "/v1/completions",
                _Endpoint(service, _Shape("completion"), CompletionBody).handle,
                methods=["POST"],
            ),
        ],
        exception_handlers=handlers,
    )
    app.state.stats = service.stats
    app.state.models = list(service.models)
    return app


@contextlib.contextmanager
def running(app: Starlette, *, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a background thread; yields its base URL (``.../v1``).

    ``port=0`` picks a free port. For notebooks, scripts and tests; ``rstar serve`` is the
    foreground way.

    Example:
        >>> with running(create_app(llm)) as base_url:
        ...     OpenAI(base_url=base_url, api_key="EMPTY").models.list()
    """
    import threading

    import uvicorn

    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="rstar-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"rstar serve could not start on {host}:{port}")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


# --------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------


def register_cli(sub: Any) -> None:
    """Add ``rstar serve`` to the ``rstar`` command's subparsers."""
    import os

    from langgraph_rstar.endpoints import add_endpoint_args

    p = sub.add_parser(
        "serve",
        help="serve rStar as an OpenAI-compatible API (models rstar-fast, rstar-paper, ...)",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    add_endpoint_args(p)
    g = p.add_argument_group("server")
    g.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    g.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    g.add_argument(
        "--serve-api-key",
        default=os.environ.get("RSTAR_SERVE_API_KEY"),
        help="key clients must send as 'Authorization: Bearer KEY' "
        "(default: $RSTAR_SERVE_API_KEY; unset = no key)",
    )
    g.add_argument(
        "--max-concurrent", type=int, default=4, help="searches running at once (default 4)"
    )
    g.add_argument(
        "--max-waiting",
        type=int,
        default=16,
        help="requests queued beyond that before HTTP 429 (default 16)",
    )
    g.add_argument(
        "--deadline",
        type=float,
        default=600.0,
        help="seconds per request, queueing included, before HTTP 504 (default 600)",
    )
    p.set_defaults(func=lambda a: asyncio.run(_serve(a)))


async def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from langgraph_rstar.endpoints import open_endpoints, search_overrides

    def status(message: str) -> None:
        print(f"rstar serve: {message}", file=sys.stderr, flush=True)

    async with open_endpoints(args, status=status) as ends:
        app = create_app(
            ends.target,
            discriminator=ends.discriminator,
            task=args.task,
            overrides=search_overrides(args),
            default_preset=args.preset,
            api_key=args.serve_api_key,
            max_concurrent=args.max_concurrent,
            max_waiting=args.max_waiting,
            deadline=args.deadline,
        )
        status(
            f"models {', '.join(app.state.models)} on http://{args.host}:{args.port}/v1 "
            f"(target: {ends.description}; API key {'required' if args.serve_api_key else 'off'})"
        )
        server = uvicorn.Server(
            uvicorn.Config(app, host=args.host, port=args.port, log_level="warning")
        )
        await server.serve()
        # uvicorn re-raises a captured Ctrl-C after shutting down, but asyncio delivers it as a
        # cancellation that a coroutine finishing at once never sees (exit 0 instead of 130).
        if signal.SIGINT in getattr(server, "_captured_signals", ()):
            raise KeyboardInterrupt
    return 0
