"""A simulated vLLM: an OpenAI-compatible server on 127.0.0.1 whose timing is a latency model.

The model is vLLM's continuous batching, reduced to the few numbers that decide rStar's speed:

* every engine step decodes one token for each active sequence and takes
  ``step_ms + per_seq_ms * active`` milliseconds (12 ms + 0.04 ms per sequence by default);
* at most ``max_active`` sequences (256) are active; more wait in FIFO order;
* a sequence joins the batch at the next step, whose time grows by ``prefill_ms`` (0.02 ms) per
  prompt token it must compute; with the prefix cache on, prompt tokens whose block-aligned
  prefix an earlier prompt already computed are free, and ``n`` samples of one prompt share
  one prefill (as in vLLM);
* a sequence leaves when it has produced its tokens; a request answers when all of its
  sequences are done.

Answers come from a responder (by default the test suite's statistical world: samples differ,
so rStar grows a branching tree). Their text is what the responder wrote, cut at stop strings
and ``max_tokens`` like a real server; the *token count* of each sample is padded to a
realistic length drawn per sample (``--step-tokens`` mean/sd per sentence), deterministic in
the prompt and the choice index, and capped at ``max_tokens``. Usage reports that count, and
decoding takes that many steps.

Each ``model`` name gets its own virtual GPU (a *lane*): a benchmark can run 20 single
questions at once, each on an idle GPU of its own. ``GET /stats`` returns each lane's counters
(busy seconds, steps, tokens, prompt tokens computed and cached, peak active sequences).

    python benchmarks/sim_server.py --port 8000 [--step-ms 12 --per-seq-ms 0.04 ...]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import json
import random
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import uvicorn  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

from tests.scripted_server import ScriptedServer, count_tokens, responder_params  # noqa: E402

Responder = Callable[[str, dict[str, Any]], str]
BLOCK = 16  # prefix-cache block size in tokens (vLLM's default)
_TOKEN_RE = re.compile(r"\s*\S+|\s+")


@dataclass(frozen=True)
class LatencyModel:
    """The cost of one engine step (all times in milliseconds)."""

    step_ms: float = 12.0
    per_seq_ms: float = 0.04
    prefill_ms: float = 0.02  # per prompt token computed
    max_active: int = 256
    step_tokens_mean: float = 40.0  # padded tokens per sentence of a sample
    step_tokens_sd: float = 15.0
    prefix_cache: bool = True

    def step_seconds(self, active: int, prefill_tokens: int = 0) -> float:
        """Duration of one step with ``active`` sequences decoding and ``prefill_tokens`` new."""
        ms = self.step_ms + self.per_seq_ms * active + self.prefill_ms * prefill_tokens
        return ms / 1000.0

    def sample_tokens(self, text: str, key: str, max_tokens: int | None) -> int:
        """A sample's length in tokens: per sentence ~ N(mean, sd), at least the text's own."""
        rng = random.Random(key)
        sentences = max(1, len(re.findall(r"[.?!](?:\s|$)", text)))
        padded = sum(
            max(4, round(rng.gauss(self.step_tokens_mean, self.step_tokens_sd)))
            for _ in range(sentences)
        )
        tokens = max(padded, count_tokens(text))
        return min(tokens, max_tokens) if max_tokens else tokens


@dataclass
class _Seq:
    tokens: int  # to generate
    prefill: int  # prompt tokens to compute when it joins
    done: asyncio.Future[None]
    produced: int = 0


@dataclass
class LaneStats:
    busy_s: float = 0.0  # time with at least one active sequence
    steps: int = 0
    generated_tokens: int = 0
    prompt_tokens: int = 0  # prompt tokens of every sequence
    prefill_tokens: int = 0  # prompt tokens actually computed (after the prefix cache)
    requests: int = 0
    sequences: int = 0
    peak_active: int = 0
    active_seq_s: float = 0.0  # integral of active sequences over time

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class PrefixCache:
    """Block-aligned prefix cache: which leading blocks of a prompt were computed before."""

    def __init__(self) -> None:
        self._blocks: set[bytes] = set()

    def uncached(self, prompt: str) -> int:
        """Tokens of ``prompt`` that must be computed; remembers its blocks."""
        toks = _TOKEN_RE.findall(prompt)
        h = hashlib.sha1()
        cached = 0
        hit = True
        for start in range(0, len(toks) - len(toks) % BLOCK, BLOCK):
            h.update("".join(toks[start : start + BLOCK]).encode())
            digest = h.digest()
            if hit and digest in self._blocks:
                cached += BLOCK
            else:
                hit = False
                self._blocks.add(digest)
        return len(toks) - cached


class Engine:
    """One virtual GPU: a continuous-batching loop over sequences."""

    def __init__(self, model: LatencyModel) -> None:
        self.model = model
        self.stats = LaneStats()
        self.cache = PrefixCache()
        self._waiting: deque[_Seq] = deque()
        self._active: list[_Seq] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def submit(self, seqs: list[_Seq]) -> None:
        self._waiting.extend(seqs)
        self.stats.sequences += len(seqs)
        self._wake.set()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        clock = loop.time()
        while True:
            if not self._active and not self._waiting:
                self._wake.clear()
                await self._wake.wait()
                clock = loop.time()  # idle time is not owed to anyone
            prefill = 0
            while self._waiting and len(self._active) < self.model.max_active:
                seq = self._waiting.popleft()
                prefill += seq.prefill
                self._active.append(seq)
            active = len(self._active)
            duration = self.model.step_seconds(active, prefill)
            clock += duration
            # Absolute deadlines: a late wake-up shortens the next sleep instead of adding up.
            await asyncio.sleep(max(0.0, clock - loop.time()))
            st = self.stats
            st.steps += 1
            st.busy_s += duration
            st.active_seq_s += active * duration
            st.peak_active = max(st.peak_active, active)
            st.generated_tokens += active
            still = []
            for seq in self._active:
                seq.produced += 1
                if seq.produced >= seq.tokens:
                    if not seq.done.done():
                        seq.done.set_result(None)
                else:
                    still.append(seq)
            self._active = still


class SimServer:
    """The HTTP face: ``/v1/completions``, ``/v1/models``, ``/health``, ``/stats``."""

    def __init__(self, responder: Responder, model: LatencyModel | None = None) -> None:
        self.responder = responder
        self.model = model or LatencyModel()
        self.engines: dict[str, Engine] = {}
        self.app = Starlette(
            routes=[
                Route("/v1/completions", self.completions, methods=["POST"]),
                Route("/v1/models", self.models, methods=["GET"]),
                Route("/health", self.health, methods=["GET"]),
                Route("/stats", self.stats, methods=["GET"]),
                Route("/model", self.latency_model, methods=["GET"]),
                Route("/stats/reset", self.reset, methods=["POST"]),
            ]
        )

    def engine(self, lane: str) -> Engine:
        if lane not in self.engines:
            self.engines[lane] = Engine(self.model)
        return self.engines[lane]

    async def health(self, request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def models(self, request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [{"id": "sim", "object": "model"}]})

    async def latency_model(self, request: Request) -> JSONResponse:
        return JSONResponse(dataclasses.asdict(self.model))

    async def stats(self, request: Request) -> JSONResponse:
        return JSONResponse({lane: e.stats.as_dict() for lane, e in self.engines.items()})

    async def reset(self, request: Request) -> JSONResponse:
        for e in self.engines.values():
            e.stats = LaneStats()
            e.cache = PrefixCache()
        return JSONResponse({"reset": len(self.engines)})

    async def completions(self, request: Request) -> JSONResponse:
        body = json.loads(await request.body())
        prompt = body.get("prompt", "")
        prompts = [str(p) for p in prompt] if isinstance(prompt, list) else [str(prompt)]
        n = int(body.get("n") or 1)
        stop = body.get("stop") or []
        stop = [stop] if isinstance(stop, str) else list(stop)
        max_tokens = body.get("max_tokens")
        lane = str(body.get("model", "sim"))
        engine = self.engine(lane)
        loop = asyncio.get_running_loop()
        choices, seqs = [], []
        prompt_tokens = completion_tokens = 0
        for p_i, text_prompt in enumerate(prompts):
            size = count_tokens(text_prompt)
            fresh = engine.cache.uncached(text_prompt) if self.model.prefix_cache else size
            prompt_tokens += size
            engine.stats.prompt_tokens += size * n
            engine.stats.prefill_tokens += fresh
            digest = hashlib.sha1(text_prompt.encode()).hexdigest()
            for j in range(n):
                params = responder_params(body, "/v1/completions", p_i, j, n, stop)
                out = ScriptedServer._generate(
                    self.responder(text_prompt, params), stop, max_tokens
                )
                tokens = self.model.sample_tokens(out.text, f"{digest}|{p_i}|{j}", max_tokens)
                completion_tokens += tokens
                # n samples of one prompt share its prefill (the first one pays it)
                seqs.append(_Seq(tokens, fresh if j == 0 else 0, loop.create_future()))
                choices.append(
                    {
                        "index": p_i * n + j,
                        "text": out.text,
                        "finish_reason": "length" if tokens == max_tokens else "stop",
                        "logprobs": None,
                    }
                )
        engine.stats.requests += 1
        engine.submit(seqs)
        await asyncio.gather(*(s.done for s in seqs))
        return JSONResponse(
            {
                "id": f"cmpl-{time.monotonic_ns()}",
                "object": "text_completion",
                "model": lane,
                "choices": choices,
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            }
        )


class ThreadedSimServer:
    """Run a :class:`SimServer` in a background thread (for tests): ``with ... as srv:``."""

    def __init__(self, server: SimServer) -> None:
        self.server = server
        config = uvicorn.Config(server.app, host="127.0.0.1", port=0, log_level="warning")
        self._uv = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._uv.run, daemon=True)
        self.base_url = ""

    def __enter__(self) -> ThreadedSimServer:
        self._thread.start()
        while not self._uv.started:
            time.sleep(0.01)
        port = self._uv.servers[0].sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self

    def __exit__(self, *exc: object) -> None:
        self._uv.should_exit = True
        self._thread.join(timeout=5)


def world_responder(p: float, seed: int) -> Responder:
    from tests.statistical_world import StatisticalWorld

    return StatisticalWorld(p=p, seed=seed).respond


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--step-ms", type=float, default=12.0, help="fixed cost of a decode step")
    ap.add_argument("--per-seq-ms", type=float, default=0.04, help="step cost per active seq")
    ap.add_argument("--prefill-ms", type=float, default=0.02, help="cost per prompt token")
    ap.add_argument("--max-active", type=int, default=256, help="most sequences in a batch")
    ap.add_argument(
        "--step-tokens",
        type=float,
        nargs=2,
        default=(40.0, 15.0),
        metavar=("MEAN", "SD"),
        help="padded tokens per sentence of a sample",
    )
    ap.add_argument("--no-prefix-cache", action="store_true")
    ap.add_argument("--p", type=float, default=0.3, help="statistical world: P(right sample)")
    ap.add_argument("--seed", type=int, default=0, help="statistical world seed")
    args = ap.parse_args(argv)
    model = LatencyModel(
        step_ms=args.step_ms,
        per_seq_ms=args.per_seq_ms,
        prefill_ms=args.prefill_ms,
        max_active=args.max_active,
        step_tokens_mean=args.step_tokens[0],
        step_tokens_sd=args.step_tokens[1],
        prefix_cache=not args.no_prefix_cache,
    )
    server = SimServer(world_responder(args.p, args.seed), model)
    print(f"sim server on http://127.0.0.1:{args.port}/v1", flush=True)
    uvicorn.run(
        server.app,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        backlog=4096,
        timeout_keep_alive=60,
    )


if __name__ == "__main__":
    main()
