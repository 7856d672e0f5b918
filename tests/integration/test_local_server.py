"""The real embedded server speaks the OpenAI protocol the way rStar uses it.

These tests check the protocol, not the model's intelligence: prompts are chosen so that even
the 0.5B model answers them deterministically under greedy decoding. ``max_tokens`` stays small
(the CPU generates about 40 tokens/s).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import openai
import pytest

from langgraph_rstar.local import LocalServer, LocalServerError

GREEDY = {"temperature": 0.0, "seed": 0}
REPO = Path(__file__).resolve().parents[2]


def _root(base_url: str) -> str:
    return base_url.removesuffix("/v1")


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def test_health_and_models(local_server: LocalServer) -> None:
    assert local_server.base_url == f"http://127.0.0.1:{local_server.port}/v1"
    assert _get_json(_root(local_server.base_url) + "/health") == {"status": "ok"}
    client = openai.OpenAI(base_url=local_server.base_url, api_key="local", max_retries=0)
    with client:
        assert "local" in [m.id for m in client.models.list().data]


async def test_list_of_prompts_times_n(openai_client: openai.AsyncOpenAI) -> None:
    resp = await openai_client.completions.create(
        model="local",
        prompt=["Count: 1, 2, 3,", "Letters: a, b, c,"],
        n=2,
        max_tokens=6,
        **GREEDY,
    )
    assert len(resp.choices) == 4
    choices = sorted(resp.choices, key=lambda c: c.index)
    assert [c.index for c in choices] == [0, 1, 2, 3]
    # Flattened prompt-major like vLLM: choices 0..n-1 continue the first prompt.
    assert [c.text.lstrip()[:1] for c in choices] == ["4", "4", "d", "d"], choices


async def test_stop_strings_are_honoured(openai_client: openai.AsyncOpenAI) -> None:
    # rStar sends many stop strings; the OpenAI API caps them at 4, llama.cpp does not.
    stops = ["\nQuestion", "\n\n", "###", " 8", "Answer:", "<|im_end|>"]
    resp = await openai_client.completions.create(
        model="local", prompt="1, 2, 3, 4, 5,", stop=stops, max_tokens=24, **GREEDY
    )
    [choice] = resp.choices
    assert choice.finish_reason == "stop"
    assert "6" in choice.text and "8" not in choice.text  # The stop string is not included.


async def test_max_tokens_gives_length(openai_client: openai.AsyncOpenAI) -> None:
    resp = await openai_client.completions.create(
        model="local", prompt="1, 2, 3, 4, 5,", max_tokens=3, **GREEDY
    )
    assert resp.choices[0].finish_reason == "length"


async def test_chat_endpoint(openai_client: openai.AsyncOpenAI) -> None:
    resp = await openai_client.chat.completions.create(
        model="local",
        messages=[{"role": "user", "content": "What is 2+3? Reply with only the number."}],
        n=2,
        max_tokens=8,
        **GREEDY,
    )
    assert len(resp.choices) == 2
    for choice in resp.choices:
        assert choice.message.role == "assistant"
        assert "5" in (choice.message.content or "")


async def test_n_up_to_parallel_and_above(
    openai_client: openai.AsyncOpenAI, local_server: LocalServer
) -> None:
    n = local_server.parallel
    resp = await openai_client.completions.create(
        model="local", prompt="Once upon a time", n=n, max_tokens=4, temperature=1.0, seed=1
    )
    assert len(resp.choices) == n
    with pytest.raises(openai.BadRequestError) as err:
        await openai_client.completions.create(
            model="local", prompt="Once upon a time", n=n + 1, max_tokens=4
        )
    assert err.value.status_code == 400
    assert "'n'" in str(err.value)


async def test_concurrent_requests(openai_client: openai.AsyncOpenAI) -> None:
    prompts = [f"{k}, {k + 1}, {k + 2}," for k in (1, 10, 20, 30)]
    results = await asyncio.gather(
        *(
            openai_client.completions.create(model="local", prompt=p, n=2, max_tokens=4, **GREEDY)
            for p in prompts
        )
    )
    for k, resp in zip((1, 10, 20, 30), results, strict=True):
        assert len(resp.choices) == 2
        assert str(k + 3) in resp.choices[0].text


def test_port_of_a_running_server_is_in_use(local_server: LocalServer) -> None:
    t0 = time.monotonic()
    with pytest.raises(LocalServerError, match=f"port {local_server.port} .* already in use"):
        LocalServer(port=local_server.port).start()
    assert time.monotonic() - t0 < 2


async def test_async_context_manager_lifecycle(local_server: LocalServer) -> None:
    # `local_server` only to share its skip/fail decision when the extra is missing.
    async with LocalServer(parallel=1, ctx=2048) as server:
        assert server.running
        assert _get_json(_root(server.base_url) + "/health") == {"status": "ok"}
        pid, port = server.pid, server.port
    assert not server.running and pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # Gone and reaped.
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):
        s.connect(("127.0.0.1", port))


def test_serve_in_the_foreground(local_server: LocalServer, tmp_path: Path) -> None:
    """`python -m langgraph_rstar.local` (what `rstar serve-local` runs) and SIGTERM."""
    log = tmp_path / "server.log"
    with log.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "langgraph_rstar.local", "--port", "0", "--parallel", "1"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # Blocks until READY, or "" if the server died.
        assert line.startswith("READY http://127.0.0.1:"), log.read_text()
        base_url = line.split()[1]
        assert _get_json(_root(base_url) + "/health") == {"status": "ok"}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (an orphan may wait a while for reaping)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in {"Z", "X"}


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_server_dies_with_a_crashed_parent(local_server: LocalServer) -> None:
    # os._exit skips atexit: only the child's parent watchdog can stop the server.
    script = (
        "import os; from langgraph_rstar.local import LocalServer; "
        "s = LocalServer(parallel=1, ctx=2048); s.start(); print(s.pid, flush=True); os._exit(0)"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    pid = int(out.stdout.split()[-1])
    deadline = time.monotonic() + 15
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(pid), f"server {pid} outlived its parent"


def test_llm_or_local_serves_for_the_block_then_stops(local_server: LocalServer) -> None:
    from langgraph_rstar.local import llm_or_local

    async def ask(llm) -> tuple[str, int]:
        out = await llm.generate(["1, 2, 3, 4,"], n=2, max_tokens=4, temperature=0.0)
        await llm.aclose()
        return out.choices[0][0].text, len(out.choices[0])

    with llm_or_local(parallel=2, max_in_flight=4) as llm:
        assert llm.dialect == "llamacpp" and llm.max_n == 2  # set for the embedded server
        text, n = asyncio.run(ask(llm))
        port = int(llm.base_url.rsplit(":", 1)[1].split("/")[0])
    assert n == 2 and "5" in text
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):
        s.connect(("127.0.0.1", port))  # stopped when the block ended
    with llm_or_local(local_server.base_url, "local") as remote:  # a URL: no server started
        assert remote.base_url.rstrip("/") == local_server.base_url.rstrip("/")
