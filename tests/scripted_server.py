"""A real OpenAI-compatible HTTP server on 127.0.0.1 with scripted answers, for fast tests.

Stdlib only. It speaks enough of the vLLM / llama.cpp dialect to exercise a client over real
HTTP: ``/v1/completions`` (one prompt or a list, choices flattened with ``index``),
``/v1/chat/completions``, ``/v1/models``, ``/health`` and llama.cpp's ``/tokenize``. Every
completion request is recorded in ``ScriptedServer.log`` with its headers and its start and
finish time so tests can measure concurrency. ``kill()`` drops the listener and every open
connection at once, like a crashed process; ``start(port=...)`` brings it back at the same URL.

Example:
    >>> with ScriptedServer(lambda prompt, params: f"answer {params['n_index']}") as srv:
    ...     url = srv.base_url  # "http://127.0.0.1:PORT/v1"
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Responder = Callable[[str, dict[str, Any]], "str | Sequence[str]"]
# Longest a misbehaving handler keeps its connection busy (stalls, trickles, endless bodies).
FAULT_MAX_SECONDS = 20.0


@dataclass(frozen=True)
class Fault:
    """One misbehaviour, acted out on the socket in place of a normal reply.

    Kinds:
        ``status``: HTTP ``status`` with ``headers`` and ``body`` (default: an error object).
        ``body``: HTTP 200 with ``body`` as given (malformed, huge, wrong shapes).
        ``reset``: close with a TCP reset before any reply.
        ``close``: close cleanly before any reply.
        ``stall``: accept the request and say nothing for ``seconds``, then close.
        ``trickle``: send the headers of a 200 with a long ``Content-Length``, then one byte every
            ``seconds``, never finishing.
        ``chunked_forever``: a chunked 200 whose chunks (a space each, every ``seconds``) never end.
        ``partial``: headers promising more bytes than are sent, part of the body, then close.
        ``raw``: ``body`` written to the socket as is (not even HTTP, if you like), then close.
    """

    kind: str
    status: int = 200
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    seconds: float = 0.05


# Whitespace "tokens": a run of non-space characters with the whitespace in front of it
# (trailing whitespace is a token of its own).
_TOKEN_RE = re.compile(r"\s*\S+|\s+")
EOS_TOKEN = ""  # llama.cpp reports the end-of-generation token as an empty string in logprobs


def count_tokens(text: str) -> int:
    """Rough token count used by the server: whitespace-separated words."""
    return len(_TOKEN_RE.findall(text))


def responder_params(
    body: dict[str, Any], path: str, prompt_index: int, n_index: int, n: int, stop: list[str]
) -> dict[str, Any]:
    """What a responder learns about the choice it writes (see :class:`ScriptedServer`)."""
    return {
        "n_index": n_index,
        "prompt_index": prompt_index,
        "n": n,
        "temperature": body.get("temperature"),
        "stop": stop,
        "max_tokens": body.get("max_tokens"),
        "path": path,
    }


@dataclass
class RequestRecord:
    """One request as the server saw it."""

    path: str
    body: dict[str, Any]
    prompts: list[str]
    n: int
    stop: list[str]
    max_tokens: int | None
    started: float
    finished: float | None = None
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names


@dataclass
class _Choice:
    text: str
    finish_reason: str
    tokens: int  # generated tokens, as llama.cpp counts them (stop / EOS token included)
    logprob_tokens: list[str] = field(default_factory=list)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256  # the default backlog of 5 drops connections under load
    scripted: ScriptedServer

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        self.killed = False  # a dead process reads nothing more

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out close the socket before we answer; that is expected here.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers do
    timeout = 10  # idle keep-alive connections give their thread back
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def _send(self, status: int, payload: Any, *, raw: bytes | None = None) -> None:
        data = raw if raw is not None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        path = self.path.split("?")[0].rstrip("/")
        if path == "/health":
            self._send(200, {"status": "ok"})
        elif path in ("/v1/models", "/models"):
            models = [{"id": m, "object": "model"} for m in self.server.scripted.models]
            self._send(200, {"object": "list", "data": models})
        else:
            self._send(404, {"error": {"message": f"no route {path}", "code": 404}})

    def do_POST(self) -> None:
        if self.server.killed:
            self.close_connection = True  # hang up without a reply
            return
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._send(400, {"error": {"message": "body is not JSON", "code": 400}})
            return
        path = self.path.split("?")[0]
        if path == "/tokenize" and self.server.scripted.tokenize_endpoint:
            self.server.scripted.tokenize_calls += 1
            n_tokens = count_tokens(str(body.get("content", "")))
            self._send(200, {"tokens": list(range(1, n_tokens + 1))})
            return
        self.server.scripted._request_headers.value = {
            k.lower(): v for k, v in self.headers.items()
        }
        status, payload, raw_out = self.server.scripted._handle(path, body)
        if isinstance(payload, Fault):
            self._act_out(payload)
            return
        self._send(status, payload, raw=raw_out)

    # -- misbehaviour on the socket ------------------------------------------------------------

    def _act_out(self, fault: Fault) -> None:
        stopping = self.server.scripted._stopping
        deadline = time.monotonic() + FAULT_MAX_SECONDS
        self.close_connection = True
        try:
            if fault.kind in ("status", "body"):
                data = fault.body
                if data is None:
                    message = {"message": f"scripted failure {fault.status}", "code": fault.status}
                    data = json.dumps({"error": message}).encode()
                self.send_response(fault.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")  # this handler closes it after
                for name, value in fault.headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            elif fault.kind == "reset":
                # SO_LINGER with a zero timeout: close() sends RST instead of FIN.
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.connection.close()
            elif fault.kind == "close":
                self.connection.shutdown(socket.SHUT_RDWR)
            elif fault.kind == "stall":
                stopping.wait(min(fault.seconds, FAULT_MAX_SECONDS))
            elif fault.kind in ("trickle", "chunked_forever"):
                # A body promised long (or chunked) and dripped out, never finished.
                trickle = fault.kind == "trickle"
                framing = b"Content-Length: 100000" if trickle else b"Transfer-Encoding: chunked"
                self.wfile.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + framing + b"\r\n\r\n"
                )
                while time.monotonic() < deadline and not stopping.wait(fault.seconds):
                    self.wfile.write(b" " if trickle else b"1\r\n \r\n")
                    self.wfile.flush()
            elif fault.kind == "partial":
                data = fault.body or b'{"choices": [{"index": 0, "text": "cut'
                self.wfile.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(data) + 1000}\r\n\r\n".encode()
                    + data
                )
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
            elif fault.kind == "raw":
                self.wfile.write(fault.body or b"")
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
            else:
                raise ValueError(f"unknown fault kind {fault.kind!r}")
        except OSError:
            pass  # the client gave up (deadline, reset): that is the point


class ScriptedServer:
    """OpenAI-compatible server whose completions come from ``responder``.

    Args:
        responder: ``responder(prompt, params) -> text`` called once per choice. ``params`` holds
            ``n_index`` (which choice, 0..n-1), ``prompt_index`` (which prompt of a batched
            request), ``n``, ``temperature``, ``stop``, ``max_tokens`` and ``path``. A returned
            sequence is indexed with ``n_index % len``.
        delay: Seconds each request sleeps in its handler thread (requests overlap in time), or
            a function of the :class:`RequestRecord` returning them (a latency model).
        max_n: Reject ``n > max_n`` with llama.cpp's HTTP 400 "Field 'n'" error.
        ignore_n: Always answer one choice per prompt (like TGI's chat endpoint).
        usage_counts_one_choice: Report usage of the first prompt / first choice only, like
            llama.cpp does for batched or ``n > 1`` requests.
        apply_stop: Cut at stop strings server-side (turn off to test client-side cutting).
        reverse_choices: List the choices in reverse order (clients must regroup by ``index``).
        tokenize_endpoint: Serve llama.cpp's ``/tokenize`` (calls are counted in
            ``tokenize_calls``, not logged).
        models: The model ids ``/v1/models`` lists.
        fault_hook: ``fault_hook(record) -> Fault | None`` decides, for every POST that
            :meth:`fault_next` has no queued fault for, whether to misbehave (the soak test's
            random faults).

    Token accounting follows llama.cpp: a natural end counts (and lists in logprobs) one
    end-of-generation token ``""``; a stop-string hit counts the stop string's tokens but leaves
    them out of logprobs; ``max_tokens`` cuts with finish_reason ``"length"``.
    """

    def __init__(
        self,
        responder: Responder,
        *,
        delay: float | Callable[[RequestRecord], float] = 0.0,
        max_n: int | None = None,
        ignore_n: bool = False,
        usage_counts_one_choice: bool = False,
        apply_stop: bool = True,
        reverse_choices: bool = False,
        tokenize_endpoint: bool = True,
        models: Sequence[str] = ("scripted",),
        fault_hook: Callable[[RequestRecord], Fault | None] | None = None,
    ) -> None:
        self.responder = responder
        self.delay = delay
        self.max_n = max_n
        self.ignore_n = ignore_n
        self.usage_counts_one_choice = usage_counts_one_choice
        self.apply_stop = apply_stop
        self.reverse_choices = reverse_choices
        self.tokenize_endpoint = tokenize_endpoint
        self.models = list(models)
        self.tokenize_calls = 0
        self.fault_hook = fault_hook
        self.log: list[RequestRecord] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._request_headers = threading.local()  # the headers of each handler's request
        self._faults: list[tuple[str, int, str | None] | Fault] = []
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, port: int = 0) -> ScriptedServer:
        """Listen on 127.0.0.1:``port`` (0: any free port)."""
        self._stopping.clear()  # a revived server misbehaves for as long as it is told to
        httpd = self._httpd = _Server(("127.0.0.1", port), _Handler)
        httpd.scripted = self
        self.base_url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
        # A short poll interval makes stop() (shutdown) return quickly.
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # ends stalls, trickles and endless bodies
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1].split("/")[0])

    def kill(self) -> None:
        """Die like a crashed process: stop listening and reset every open connection (requests
        in progress never get their reply). ``start(port=self.port)`` revives it."""
        httpd = self._httpd
        if httpd is not None:
            httpd.killed = True
        self.stop()
        if httpd is not None:
            with httpd.connections_lock:
                conns = list(httpd.connections)
            for conn in conns:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # already closed by its handler

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- scripting ---------------------------------------------------------------------------

    def fail_next(self, count: int, status: int = 503, body: str | None = None) -> None:
        """Answer the next ``count`` POST requests with HTTP ``status`` (and ``body`` if given)."""
        with self._lock:
            self._faults.extend([("status", status, body)] * count)

    def malformed_next(self, count: int = 1, kind: str = "no_choices") -> None:
        """Answer the next ``count`` POST requests with HTTP 200 and a broken body.

        ``kind`` is ``"no_choices"`` (JSON without choices), ``"not_json"`` or ``"no_text"``
        (choices whose text is missing).
        """
        with self._lock:
            self._faults.extend([("malformed", 200, kind)] * count)

    def fault_next(self, fault: Fault, count: int = 1) -> None:
        """Act out ``fault`` on the socket for the next ``count`` POST requests."""
        with self._lock:
            self._faults.extend([fault] * count)

    @property
    def posts(self) -> list[RequestRecord]:
        """Recorded POST requests (a snapshot)."""
        with self._lock:
            return list(self.log)

    def peak_concurrency(self) -> int:
        """Most requests that were being handled at the same time."""
        events: list[tuple[float, int]] = []
        for rec in self.posts:
            events.append((rec.started, 1))
            events.append((rec.finished if rec.finished is not None else float("inf"), -1))
        peak = cur = 0
        for _, step in sorted(events):  # at equal times -1 sorts first: touching is not overlap
            cur += step
            peak = max(peak, cur)
        return peak

    # -- request handling (runs in handler threads) ------------------------------------------

    def _handle(self, path: str, body: dict[str, Any]) -> tuple[int, Any, bytes | None]:
        chat = path.rstrip("/").endswith("/chat/completions")
        if chat:
            messages = body.get("messages") or []
            prompts = ["\n".join(str(m.get("content", "")) for m in messages)]
        else:
            prompt = body.get("prompt", "")
            prompts = [str(p) for p in prompt] if isinstance(prompt, list) else [str(prompt)]
        stop = body.get("stop") or []
        stop = [stop] if isinstance(stop, str) else list(stop)
        n = int(body.get("n") or 1)
        max_tokens = body.get("max_tokens")
        rec = RequestRecord(path, body, prompts, n, stop, max_tokens, time.monotonic())
        rec.headers = dict(getattr(self._request_headers, "value", {}))
        with self._lock:
            self.log.append(rec)
            fault = self._faults.pop(0) if self._faults else None
        if fault is None and self.fault_hook is not None:
            fault = self.fault_hook(rec)
        if isinstance(fault, Fault):
            rec.status = -1  # not a normal reply
            rec.finished = time.monotonic()
            return 0, fault, None
        try:
            delay = self.delay(rec) if callable(self.delay) else self.delay
            if delay:
                time.sleep(delay)
            status, payload, raw = self._answer(path, body, chat, prompts, n, stop, fault)
        except Exception as exc:  # a broken responder is a server error, not a crash
            status, payload, raw = 500, {"error": {"message": repr(exc), "code": 500}}, None
        rec.status = status
        rec.finished = time.monotonic()
        return status, payload, raw

    def _answer(
        self,
        path: str,
        body: dict[str, Any],
        chat: bool,
        prompts: list[str],
        n: int,
        stop: list[str],
        fault: tuple[str, int, str | None] | Fault | None,
    ) -> tuple[int, Any, bytes | None]:
        if fault is not None and not isinstance(fault, Fault):
            kind, status, detail = fault
            if kind == "status":
                if detail is not None:
                    return status, None, detail.encode()
                error = {"message": f"scripted failure {status}", "code": status}
                return status, {"error": error}, None
            if detail == "not_json":
                return 200, None, b"<html>upstream proxy says hello</html>"
            if detail == "no_text":
                return 200, {"object": "text_completion", "choices": [{"index": 0}]}, None
            return 200, {"object": "text_completion", "id": "x", "model": "scripted"}, None
        if not (path.rstrip("/").endswith("/completions")):
            return 404, {"error": {"message": f"no route {path}", "code": 404}}, None
        if self.max_n is not None and n > self.max_n:
            msg = f"Field 'n': Value must be between 1 <= value <= {self.max_n}, but got {n}"
            error = {"code": 400, "message": msg, "type": "invalid_request_error"}
            return 400, {"error": error}, None

        n_eff = 1 if self.ignore_n else n
        max_tokens = body.get("max_tokens")
        want_logprobs = bool(body.get("logprobs"))
        choices: list[dict[str, Any]] = []
        per_choice: list[_Choice] = []
        for p_i, prompt in enumerate(prompts):
            for j in range(n_eff):
                params = responder_params(body, path, p_i, j, n, stop)
                out = self.responder(prompt, params)
                text = out if isinstance(out, str) else out[j % len(out)]
                c = self._generate(text, stop if self.apply_stop else [], max_tokens)
                per_choice.append(c)
                entry: dict[str, Any] = {"index": p_i * n_eff + j, "finish_reason": c.finish_reason}
                if chat:
                    entry["message"] = {"role": "assistant", "content": c.text}
                else:
                    entry["text"] = c.text
                entry["logprobs"] = (
                    {"content": [{"token": t, "logprob": -0.5} for t in c.logprob_tokens]}
                    if want_logprobs
                    else None
                )
                choices.append(entry)

        if self.usage_counts_one_choice:
            prompt_tokens = count_tokens(prompts[0])
            completion_tokens = per_choice[0].tokens if per_choice else 0
        else:
            prompt_tokens = sum(count_tokens(p) for p in prompts)
            completion_tokens = sum(c.tokens for c in per_choice)
        payload = {
            "id": f"cmpl-{time.monotonic_ns()}",
            "object": "chat.completion" if chat else "text_completion",
            "model": body.get("model", "scripted"),
            "choices": choices[::-1] if self.reverse_choices else choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        return 200, payload, None

    @staticmethod
    def _generate(text: str, stop: list[str], max_tokens: int | None) -> _Choice:
        """Play the scripted text through stop strings and max_tokens like a real server."""
        hits = [(i, s) for s in stop if s and (i := text.find(s)) >= 0]
        cut, word = min(hits) if hits else (-1, "")
        kept = text[:cut] if cut >= 0 else text
        toks = _TOKEN_RE.findall(kept)
        if max_tokens is not None and len(toks) > max_tokens:
            toks = toks[:max_tokens]
            return _Choice("".join(toks), "length", len(toks), list(toks))
        if cut >= 0:
            # llama.cpp counts the stop string's tokens but leaves them out of logprobs.
            return _Choice(kept, "stop", len(toks) + count_tokens(word), list(toks))
        # Natural end: the end-of-generation token is counted and shows up in logprobs.
        return _Choice(text, "stop", len(toks) + 1, [*toks, EOS_TOKEN])


def main() -> None:
    """``python -m tests.scripted_server``: serve the conftest responder until killed.

    Prints ``READY <base_url>`` once listening (CI's installed-wheel check uses it).
    """
    from tests.conftest import rstar_responder

    with ScriptedServer(rstar_responder) as server:
        print(f"READY {server.base_url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()  # SIGTERM ends the process; SIGINT ends the wait


if __name__ == "__main__":
    main()
