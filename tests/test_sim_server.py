"""The simulated vLLM of benchmarks/ keeps its latency model honest (real HTTP on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from sim_server import LatencyModel, PrefixCache, SimServer, ThreadedSimServer  # noqa: E402

TOKENS = 20  # every sample: one sentence padded to exactly 20 tokens (sd 0)


def fixed(prompt: str, params: dict) -> str:
    return " The answer is 7."


def model(**kw) -> LatencyModel:
    base = dict(step_ms=10.0, per_seq_ms=1.0, prefill_ms=0.0, max_active=256)
    return LatencyModel(step_tokens_mean=TOKENS, step_tokens_sd=0.0, **{**base, **kw})


def test_step_time_arithmetic():
    lm = LatencyModel()
    assert lm.step_seconds(0) == pytest.approx(0.012)
    assert lm.step_seconds(256) == pytest.approx(0.02224)
    assert lm.step_seconds(10, prefill_tokens=1000) == pytest.approx(0.012 + 0.0004 + 0.02)
    # lengths: at least the text's own tokens, at most max_tokens, deterministic per key
    text = "One. Two. Three."
    assert lm.sample_tokens(text, "k", None) == lm.sample_tokens(text, "k", None)
    assert lm.sample_tokens(text, "k", 5) == 5
    assert model().sample_tokens(text, "x", None) == 3 * TOKENS


def test_prefix_cache_counts_block_aligned_hits():
    cache = PrefixCache()
    prompt = " ".join(f"w{i}" for i in range(40))  # 40 tokens: 2 whole blocks of 16
    assert cache.uncached(prompt) == 40
    assert cache.uncached(prompt) == 40 - 32
    longer = prompt + " extra words here"
    assert cache.uncached(longer) == 43 - 32
    assert cache.uncached("other " + prompt) == 41


async def post(client: httpx.AsyncClient, url: str, lane: str, n: int = 1) -> float:
    start = time.perf_counter()
    r = await client.post(
        f"{url}/completions", json={"model": lane, "prompt": "Q?", "n": n, "max_tokens": 64}
    )
    r.raise_for_status()
    body = r.json()
    assert len(body["choices"]) == n
    assert body["usage"]["completion_tokens"] == n * TOKENS
    return time.perf_counter() - start


async def test_continuous_batching_over_http():
    """Concurrent requests share decode steps; a full batch queues the rest."""
    server = SimServer(fixed, model(max_active=4))
    with ThreadedSimServer(server) as srv:
        async with httpx.AsyncClient(timeout=30) as client:
            alone = await post(client, srv.base_url, "a")
            together = await asyncio.gather(*(post(client, srv.base_url, "b") for _ in range(4)))
            queued = await asyncio.gather(*(post(client, srv.base_url, "c") for _ in range(8)))
            stats = (await client.get(srv.base_url.removesuffix("/v1") + "/stats")).json()
    one = model().step_seconds(1) * TOKENS  # 20 steps of 11 ms
    four = model().step_seconds(4) * TOKENS  # 20 steps of 14 ms, all four at once
    # lower bounds are the model's; upper bounds leave room for a loaded machine but stay far
    # below what serving the four one after another would take (4 x 0.28 s)
    assert one * 0.95 <= alone < 2 * one
    assert four * 0.95 <= max(together) < 2 * four, "requests were not batched"
    assert stats["b"]["peak_active"] == 4 and stats["b"]["steps"] == pytest.approx(TOKENS, abs=2)
    # 8 requests, at most 4 active: two rounds
    assert max(queued) >= 2 * four * 0.95
    assert stats["c"]["peak_active"] == 4
    assert stats["a"]["generated_tokens"] == TOKENS
    assert stats["b"]["busy_s"] == pytest.approx(four, rel=0.15)


async def test_prefill_costs_time_and_the_prefix_cache_saves_it():
    prompt = " ".join(f"w{i}" for i in range(4000))  # 4000 tokens at 0.1 ms: 0.4 s of prefill
    server = SimServer(fixed, model(prefill_ms=0.1))
    with ThreadedSimServer(server) as srv:
        async with httpx.AsyncClient(timeout=30) as client:
            times = []
            for _ in range(2):
                start = time.perf_counter()
                body = {"model": "p", "prompt": prompt, "n": 3, "max_tokens": 64}
                (await client.post(f"{srv.base_url}/completions", json=body)).raise_for_status()
                times.append(time.perf_counter() - start)
            stats = (await client.get(srv.base_url.removesuffix("/v1") + "/stats")).json()["p"]
    decode = model().step_seconds(3) * TOKENS
    assert times[0] >= decode + 0.4 * 0.95  # n=3 samples pay the prompt once
    assert times[1] < times[0] - 0.2  # the second time the prompt is cached
    assert stats["prefill_tokens"] == 4000
    assert stats["prompt_tokens"] == 2 * 3 * 4000
