"""Throughput over 1, 2 and 3 model replicas, and how well affinity keeps a question on one.

The servers are the test suite's scripted OpenAI-compatible server (real HTTP on 127.0.0.1)
answering as the statistical world (``tests/statistical_world.py``: branching trees of realistic
shape), each behind a latency model of one GPU:

* **continuous batching with a limit**: at most ``--slots`` sequences decode at once (a request
  of ``p`` prompts x ``n`` samples takes ``p * n`` slots); later requests queue in arrival order;
* **decode**: every request takes ``--decode`` seconds once it has its slots;
* **prefill with an automatic prefix cache**: prompts are cut into ``--block``-character blocks
  hashed with everything before them (vLLM's scheme); a block found in the server's LRU cache of
  ``--cache-blocks`` blocks costs nothing, a new one costs ``--prefill`` seconds per 1000
  characters, added to the request's time.

One batch of ``--questions`` questions (all in flight at once, rStar ``fast`` preset) runs through
:class:`RoutedLLM` over 1, 2 and 3 fresh servers with the default policy, then over 3 servers
least-loaded only (no affinity), with ``balance`` 1.5, and with ``capacity`` = the slots, side by
side in one process, ``--repeats`` times interleaved (the row shows the run of median wall time).
Reported per run: wall time, questions and requests per second, the speed-up over one replica,
the **affinity rate** (share of a question's requests served by the replica that served most of
them, summed over questions), the prefix cache's hit rate (share of prompt characters served from
cache) and the prompt characters the servers had to prefill per question. Results go to
``benchmarks/results/replicas.md``.

    python benchmarks/bench_replicas.py [--questions 48] [--slots 16] [--decode 0.25] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import platform
import sys
import threading
import time
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from langgraph_rstar import RoutedLLM, RStarConfig, asolve  # noqa: E402
from langgraph_rstar.backends import RoutingPolicy  # noqa: E402
from tests.scripted_server import RequestRecord, ScriptedServer  # noqa: E402
from tests.statistical_world import StatisticalWorld, world_question  # noqa: E402

HEADER = "x-session-id"
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class GpuModel:
    """The latency of one GPU server: slots, decode time, prefill of uncached prompt blocks.

    Used as a :class:`ScriptedServer` ``delay``: it waits for its slots and sleeps itself.
    """

    slots: int
    decode: float
    prefill_per_kchar: float
    block: int
    cache_blocks: int
    free: int = 0
    queue: deque[object] = field(default_factory=deque)
    cache: OrderedDict[bytes, None] = field(default_factory=OrderedDict)
    prompt_chars: int = 0
    cached_chars: int = 0
    cond: threading.Condition = field(default_factory=threading.Condition)

    def __post_init__(self) -> None:
        self.free = self.slots

    def _prefill_seconds(self, prompts: list[str]) -> float:
        """Look every prompt's blocks up in the LRU prefix cache; new blocks cost prefill."""
        new_chars = 0
        with self.cond:
            for prompt in prompts:
                digest = hashlib.blake2b(digest_size=16)
                for start in range(0, len(prompt), self.block):
                    chunk = prompt[start : start + self.block]
                    digest.update(chunk.encode())
                    key = digest.copy().digest()
                    self.prompt_chars += len(chunk)
                    if key in self.cache:
                        self.cache.move_to_end(key)
                        self.cached_chars += len(chunk)
                    else:
                        new_chars += len(chunk)
                        self.cache[key] = None
                        if len(self.cache) > self.cache_blocks:
                            self.cache.popitem(last=False)
        return self.prefill_per_kchar * new_chars / 1000

    def __call__(self, rec: RequestRecord) -> float:
        need = min(self.slots, max(1, len(rec.prompts) * rec.n))
        ticket = object()
        with self.cond:
            self.queue.append(ticket)
            while self.queue[0] is not ticket or self.free < need:
                self.cond.wait()
            self.queue.popleft()
            self.free -= need
            self.cond.notify_all()
        try:
            time.sleep(self.decode + self._prefill_seconds(rec.prompts))
        finally:
            with self.cond:
                self.free += need
                self.cond.notify_all()
        return 0.0


def affinity_rate(servers: list[ScriptedServer]) -> float:
    """Share of each question's requests served by the replica that served most of them."""
    per_key: dict[str, Counter[int]] = {}
    for i, server in enumerate(servers):
        for rec in server.posts:
            per_key.setdefault(rec.headers.get(HEADER, ""), Counter())[i] += 1
    total = sum(sum(c.values()) for c in per_key.values())
    return sum(max(c.values()) for c in per_key.values()) / total if total else 0.0


def policy(router_kwargs: dict) -> str:
    if router_kwargs.get("affinity") is False:
        return "least loaded"
    extra = f", capacity {router_kwargs['capacity']}" if "capacity" in router_kwargs else ""
    return f"affinity, balance {router_kwargs.get('balance', 1.25)}{extra}"


async def run_batch(args: argparse.Namespace, replicas: int, **router_kwargs: object) -> dict:
    world = StatisticalWorld(p=0.3, seed=args.seed)
    models = [
        GpuModel(args.slots, args.decode, args.prefill, args.block, args.cache_blocks)
        for _ in range(replicas)
    ]
    servers = [ScriptedServer(world.respond, delay=m).start() for m in models]
    router = RoutedLLM.from_urls(
        [s.base_url for s in servers],
        "world",
        max_in_flight=256,
        policy=RoutingPolicy(**router_kwargs),  # type: ignore[arg-type]
    )
    cfg = RStarConfig.preset("fast", num_rollouts=args.rollouts, rollouts_in_flight=args.in_flight)
    questions = [world_question(i) for i in range(args.questions)]
    try:
        started, cpu = time.perf_counter(), time.process_time()
        results = await asyncio.gather(*(asolve(q, target=router, config=cfg) for q in questions))
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu  # client and the three servers: all in this process
    finally:
        await router.aclose()
        for s in servers:
            s.stop()
    requests = sum(len(s.posts) for s in servers)
    prompt_chars = sum(m.prompt_chars for m in models)
    return {
        "replicas": replicas,
        "policy": policy(router_kwargs),
        "wall_s": wall,
        "cpu_s": cpu,
        "questions_per_s": len(questions) / wall,
        "requests_per_s": requests / wall,
        "requests": requests,
        "per_replica": [len(s.posts) for s in servers],
        "affinity_rate": affinity_rate(servers),
        "prefix_hit_rate": sum(m.cached_chars for m in models) / prompt_chars,
        "prefilled_chars_per_q": (prompt_chars - sum(m.cached_chars for m in models))
        / len(questions),
        "answered": sum(r.answer is not None for r in results),
    }


def median_run(runs: list[dict]) -> dict:
    """The run with the median wall time (its own figures, not a blend of runs)."""
    ordered = sorted(runs, key=lambda r: r["wall_s"])
    row = dict(ordered[len(ordered) // 2])
    row["walls"] = [round(r["wall_s"], 2) for r in runs]
    return row


def render(args: argparse.Namespace, rows: list[dict]) -> str:
    base = rows[0]["questions_per_s"]
    lines = [
        f"{args.questions} questions in flight at once, rStar fast preset ({args.rollouts} "
        f"rollouts, K={args.in_flight}), statistical world; each server: {args.slots} slots, "
        f"{args.decode * 1000:.0f} ms decode per request, {args.prefill * 1000:.0f} ms prefill "
        f"per 1000 uncached prompt chars, prefix cache {args.cache_blocks} blocks of "
        f"{args.block} chars. Median of {args.repeats} run(s) by wall time (all walls listed).",
        "",
        "| replicas | routing | wall s | questions/s | requests/s | speed-up | requests per "
        "replica | affinity rate | prefix-cache hit rate | prefilled chars/q | CPU s | walls |",
        "| ---: | :--- | ---: | ---: | ---: | ---: | :--- | ---: | ---: | ---: | ---: | :--- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['replicas']} | {r['policy']} | {r['wall_s']:.1f} | "
            f"{r['questions_per_s']:.2f} | {r['requests_per_s']:.1f} | "
            f"{r['questions_per_s'] / base:.2f}x | {r['per_replica']} | "
            f"{100 * r['affinity_rate']:.1f} % | {100 * r['prefix_hit_rate']:.1f} % | "
            f"{r['prefilled_chars_per_q']:,.0f} | {r['cpu_s']:.1f} | {r['walls']} |"
        )
    return "\n".join(lines)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=48, help="questions in the batch")
    ap.add_argument("--rollouts", type=int, default=4)
    ap.add_argument("--in-flight", type=int, default=2, help="rollouts in flight per question")
    ap.add_argument("--slots", type=int, default=16, help="sequences a server decodes at once")
    ap.add_argument("--decode", type=float, default=0.25, help="seconds per request")
    ap.add_argument("--prefill", type=float, default=0.01, help="seconds per 1000 new chars")
    ap.add_argument("--block", type=int, default=64, help="prefix-cache block (chars)")
    ap.add_argument("--cache-blocks", type=int, default=2000, help="prefix-cache size per server")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3, help="runs per setting (median shown)")
    ap.add_argument("--out", type=Path, default=RESULTS / "replicas.md")
    args = ap.parse_args()
    settings: list[tuple[int, dict]] = [
        (1, {}),
        (2, {}),
        (3, {}),
        (3, {"affinity": False}),
        (3, {"balance": 1.5}),
        (3, {"capacity": args.slots}),
    ]
    runs: dict[int, list[dict]] = {i: [] for i in range(len(settings))}
    for rep in range(args.repeats):  # interleaved, so a slow spell of the machine hits all
        for i, (replicas, kwargs) in enumerate(settings):
            runs[i].append(await run_batch(args, replicas, **kwargs))
            print(
                f"  run {rep + 1}: {replicas} replica(s), {policy(kwargs)}: "
                f"{runs[i][-1]['wall_s']:.1f} s",
                file=sys.stderr,
            )
    rows = [median_run(runs[i]) for i in range(len(settings))]
    table = render(args, rows)
    print(table)
    command = "python benchmarks/bench_replicas.py " + " ".join(sys.argv[1:])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        f"# Replicas: throughput and affinity\n\n`{command.strip()}` on {platform.node()} "
        f"({platform.processor() or platform.machine()}, Python {platform.python_version()})\n\n"
        f"{table}\n\n```json\n{json.dumps(rows, indent=1)}\n```\n",
        encoding="utf-8",
    )


if __name__ == "__main__":
    asyncio.run(main())
