"""rStar's speed on a simulated vLLM (benchmarks/sim_server.py), side by side in one run.

    python benchmarks/bench_sim.py [--questions 20] [--ks 1 4 8 16 32] [--batch 50]

Three tables, all with the ``paper`` preset and the discriminator on, against the statistical
world (samples right with probability p: a branching tree, not one path):

1. **One question at K = 1 ... 32 rollouts in flight.** ``--questions`` questions per K; each
   question runs on its own virtual GPU (a lane of the server), ``--parallel`` at a time.
   *chain* is the question's dependency-chain bound: the critical path of its expansions at
   the server's step time, discriminator included. An expansion of node ``n`` asked for by
   rollout ``r`` can start once ``n``'s parent expansion has returned and ``r`` has started;
   it lasts as long as its slowest action took on the server (A3's two requests in a row
   count as one action); rollout ``r`` (r >= K) starts when the rollout whose slot it took
   finished, i.e. when every expansion on that rollout's path had returned; the discriminator
   starts when the last rollout finished. *tree chain* drops the rollout-slot dependency (the
   bound with unlimited K). *idle* = 1 - chain / wall, the share of the wall lost to
   scheduling (barriers, controller). *busy* = the share of the wall the lane's GPU had a
   sequence active. Tokens are generated tokens (target + discriminator) as the server
   counted them; nodes = nodes expanded. Ratios are against K = 1.
2. **A batch of ``--batch`` questions at once** on one GPU (like ``rstar eval --concurrency``)
   at the preset's default K: wall against the server's limit (every generated token decoded
   in full 256-sequence batches, plus the prompt tokens it had to compute), client CPU share
   of the wall, RSS growth per question, event-loop lag p99 (a 10 ms ticker).
3. **Checkpoint bytes** of a question under ``InMemorySaver`` (every checkpoint, blob and
   pending write of the thread) against the final tree's JSON, over ``--ckpt-questions``.

To measure another checkout's code (e.g. main, for "before" figures) put it first on
PYTHONPATH; this script and the server come from this directory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.append(str(HERE.parent))  # after PYTHONPATH: a checkout given there wins

import httpx  # noqa: E402

import langgraph_rstar  # noqa: E402
from langgraph_rstar import OpenAICompatibleLLM, RStarConfig, asolve, create_rstar_graph  # noqa: E402
from langgraph_rstar.search import ACTIONS, merge_nodes  # noqa: E402


def _saver_bytes() -> Any:
    """``saver_bytes`` of this checkout's tests (``tests`` may come from PYTHONPATH's checkout)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_conftest", HERE.parent / "tests/conftest.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.saver_bytes


saver_bytes = _saver_bytes()
from tests.statistical_world import world_question  # noqa: E402

try:  # the tree's records travel compact in this checkout's updates
    from langgraph_rstar.controller import expand_nodes  # noqa: E402
except ImportError:  # main before the barrier-free controller

    def expand_nodes(nodes):  # type: ignore[no-redef]
        return nodes

# ------------------------------------------------------------------------------ the server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """The simulated server in its own process (its CPU is not the client's)."""

    def __init__(self, args: argparse.Namespace, *flags: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        cmd = [sys.executable, str(HERE / "sim_server.py"), "--port", str(self.port)]
        cmd += ["--p", str(args.p), "--seed", str(args.seed), *flags]
        env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)

    async def wait(self) -> None:
        async with httpx.AsyncClient() as c:
            for _ in range(300):
                try:
                    if (await c.get(f"http://127.0.0.1:{self.port}/health")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.05)
        raise RuntimeError("sim server did not start")

    async def stats(self) -> dict[str, Any]:
        async with httpx.AsyncClient() as c:
            return (await c.get(f"http://127.0.0.1:{self.port}/stats")).json()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


# ------------------------------------------------------------------------------ one question


def _node_id_of(task_input: Any) -> str | None:
    """The node an action task works on, from a LangGraph ``tasks`` stream input."""
    stack = [task_input]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            ctx = item.get("context")
            if isinstance(ctx, Mapping) and "node_id" in ctx:
                return str(ctx["node_id"])
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return None


def chain_bounds(
    tree: Mapping[str, Any],
    costs: Mapping[str, float],
    started: list[int],
    finished: list[tuple[int, str]],
    k: int,
    disc_cost: float,
) -> tuple[float, float]:
    """(chain, tree chain) in seconds; see the module docstring for the dependencies."""

    def ends(with_slots: bool) -> float:
        end: dict[str, float] = {}
        start_of: dict[int, float] = {}
        finish_of: dict[int, float] = {}

        def expansion_end(nid: str) -> float:
            if nid in end:
                return end[nid]
            node = tree[nid]
            parent = node.get("parent")
            ready = expansion_end(parent) if parent is not None else 0.0
            kids = [c for ks in (node.get("children") or {}).values() for c in ks]
            r = tree[kids[0]].get("rollout", 0) if kids else 0
            ready = max(ready, start_of.get(r, 0.0))
            end[nid] = ready + costs.get(nid, 0.0)
            return end[nid]

        def path(nid: str) -> list[str]:
            out = []
            cur: str | None = nid
            while cur is not None:
                out.append(cur)
                cur = tree[cur].get("parent")
            return out

        later = iter(r for r in started if r >= k) if with_slots else iter(())
        for rid, last in finished:
            start_of.setdefault(rid, 0.0)
            finish = max([start_of[rid]] + [expansion_end(n) for n in path(last) if n in costs])
            finish_of[rid] = finish
            nxt = next(later, None)
            if nxt is not None:
                start_of[nxt] = finish
        search_end = max([0.0, *finish_of.values()] + [expansion_end(n) for n in costs])
        return search_end + disc_cost

    return ends(True), ends(False)


async def one_question(
    url: str, lane: str, question: str, cfg: RStarConfig, server: Server
) -> dict[str, Any]:
    llm = OpenAICompatibleLLM(url, lane, max_retries=2, max_in_flight=512, timeout=600)
    app = create_rstar_graph(llm, config=cfg).compile()
    task_start: dict[str, tuple[str, str | None, float]] = {}
    action_cost: dict[str, float] = {}
    disc_cost = 0.0
    started: list[int] = []
    finished: list[tuple[int, str]] = []
    tree: dict[str, Any] = {}
    t0 = time.perf_counter()
    async for mode, chunk in app.astream(
        {"question": question}, stream_mode=["tasks", "custom", "updates"]
    ):
        now = time.perf_counter() - t0
        if mode == "tasks":
            name = chunk.get("name")
            if "input" in chunk:
                nid = _node_id_of(chunk["input"]) if name in ACTIONS else None
                task_start[chunk["id"]] = (name, nid, now)
            elif chunk["id"] in task_start:
                name, nid, begun = task_start.pop(chunk["id"])
                if name in ACTIONS and nid is not None:
                    action_cost[nid] = max(action_cost.get(nid, 0.0), now - begun)
                elif name == "discriminate":
                    disc_cost = now - begun
        elif mode == "custom" and isinstance(chunk, Mapping):
            if chunk.get("type") == "rstar.rollout_started":
                started.append(int(chunk["rollout"]))
            elif chunk.get("type") == "rstar.rollout_finished":
                finished.append((int(chunk["rollout"]), str(chunk["node_id"])))
        elif mode == "updates" and isinstance(chunk, Mapping):
            for name, update in chunk.items():
                if name in ACTIONS or not isinstance(update, Mapping):
                    continue  # graph nodes' updates only (their last one holds every node)
                nodes = getattr(update.get("nodes"), "value", update.get("nodes"))  # Overwrite
                if isinstance(nodes, Mapping):
                    tree = merge_nodes(tree, expand_nodes(nodes))
    wall = time.perf_counter() - t0
    await llm.aclose()
    chain, tree_chain = chain_bounds(
        tree, action_cost, started, finished, cfg.rollouts_in_flight, disc_cost
    )
    lane_stats = (await server.stats()).get(lane, {})
    return {
        "wall": wall,
        "chain": chain,
        "tree_chain": tree_chain,
        "tokens": lane_stats.get("generated_tokens", 0),
        "nodes": sum(1 for n in tree.values() if n.get("expanding")),
        "busy": lane_stats.get("busy_s", 0.0) / wall,
        "requests": lane_stats.get("requests", 0),
    }


async def single_questions(args: argparse.Namespace, server: Server) -> list[dict[str, Any]]:
    rows = []
    for k in args.ks:
        cfg = RStarConfig.preset(args.preset, rollouts_in_flight=k)
        gate = asyncio.Semaphore(args.parallel)

        async def run(
            i: int, k: int = k, cfg: RStarConfig = cfg, gate: asyncio.Semaphore = gate
        ) -> dict[str, Any]:
            async with gate:
                return await one_question(server.url, f"k{k}-q{i}", world_question(i), cfg, server)

        runs = await asyncio.gather(*(run(i) for i in range(args.questions)))
        mean = {key: statistics.fmean(r[key] for r in runs) for key in runs[0]}
        mean["k"] = k
        mean["over_chain"] = statistics.fmean(r["wall"] / r["chain"] for r in runs)
        rows.append(mean)
        print(f"  K={k}: done ({mean['wall']:.1f} s/question)", file=sys.stderr, flush=True)
    return rows


def print_single(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    base = rows[0]
    print(
        f"\n## One question, {args.preset} preset, discriminator on: mean over {args.questions} "
        f"questions (statistical world p={args.p}), each on its own simulated GPU\n"
    )
    print(
        "| K | wall s | chain s | wall/chain | tree chain s | speed-up vs K=1 | tokens | "
        "tokens vs K=1 | nodes | nodes vs K=1 | requests | GPU busy | idle (1-chain/wall) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['k']} | {r['wall']:.2f} | {r['chain']:.2f} | {r['over_chain']:.2f} | "
            f"{r['tree_chain']:.2f} | {base['wall'] / r['wall']:.2f}x | {r['tokens']:,.0f} | "
            f"{r['tokens'] / base['tokens'] - 1:+.0%} | {r['nodes']:.1f} | "
            f"{r['nodes'] / base['nodes'] - 1:+.0%} | {r['requests']:.0f} | {r['busy']:.0%} | "
            f"{1 - r['chain'] / r['wall']:.0%} |"
        )


# ------------------------------------------------------------------------------ the batch


async def loop_lag(samples: list[float], stop: asyncio.Event, tick: float = 0.01) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        t = loop.time()
        await asyncio.sleep(tick)
        samples.append(loop.time() - t - tick)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _http(args: argparse.Namespace) -> dict[str, Any]:
    # (passed only when asked for: a checkout from before the option runs unchanged)
    return {"http": args.http} if args.http else {}


async def batch(args: argparse.Namespace, server: Server) -> dict[str, Any]:
    cfg = RStarConfig.preset(args.preset)
    # 256 requests in flight keep 256 sequences busy (requests ask for up to 32 samples); more
    # only grows the client's connection pool, which it scans on every request
    llm = OpenAICompatibleLLM(
        server.url, "batch", max_retries=2, max_in_flight=256, timeout=3600, **_http(args)
    )
    lags: list[float] = []
    stop = asyncio.Event()
    ticker = asyncio.create_task(loop_lag(lags, stop))
    rss0 = rss_mb()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    results = await asyncio.gather(
        *(asolve(world_question(1000 + i), target=llm, config=cfg) for i in range(args.batch))
    )
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    stop.set()
    await ticker
    await llm.aclose()
    st = (await server.stats())["batch"]
    async with httpx.AsyncClient() as c:
        m = (await c.get(f"http://127.0.0.1:{server.port}/model")).json()
    # every generated token decoded in full batches, plus every prompt token the server computed
    full_step_s = (m["step_ms"] + m["per_seq_ms"] * m["max_active"]) / 1000.0
    decode_limit = st["generated_tokens"] / m["max_active"] * full_step_s
    limit = decode_limit + st["prefill_tokens"] * m["prefill_ms"] / 1000.0
    lags.sort()
    return {
        "k": cfg.rollouts_in_flight,
        "http": args.http,
        "wall": wall,
        "decode_limit": decode_limit,
        "limit": limit,
        "cpu_share": cpu / wall,
        "rss_per_q": (rss_mb() - rss0) / args.batch,
        "lag_p99_ms": 1000 * lags[int(0.99 * (len(lags) - 1))] if lags else 0.0,
        "lag_max_ms": 1000 * lags[-1] if lags else 0.0,
        "busy": st["busy_s"] / wall,
        "mean_active": st["active_seq_s"] / max(st["busy_s"], 1e-9),
        "answered": sum(1 for r in results if r.answer is not None),
    }


def print_batch(b: dict[str, Any], n: int) -> None:
    http = b.get("http") or "httpx"
    print(f"\n## {n} questions at once on one simulated GPU, default K = {b['k']}, {http}\n")
    print(
        "| wall s | limit s (decode-only) | wall / limit | GPU busy | mean active seqs | "
        "client CPU / wall | RSS MB per question | loop lag p99 ms | loop lag max ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {b['wall']:.1f} | {b['limit']:.1f} ({b['decode_limit']:.1f}) | "
        f"{b['wall'] / b['limit']:.3f} | {b['busy']:.0%} | {b['mean_active']:.0f} | "
        f"{b['cpu_share']:.2%} | {b['rss_per_q']:.1f} | {b['lag_p99_ms']:.1f} | "
        f"{b['lag_max_ms']:.1f} |"
    )


# ------------------------------------------------------------------------------ checkpoints


async def checkpoint_size(args: argparse.Namespace, server: Server) -> dict[str, Any]:
    """Stored bytes / tree bytes for ``--ckpt-questions`` questions (each on its own lane)."""
    from langgraph.checkpoint.memory import InMemorySaver

    cfg = RStarConfig.preset(args.preset)

    async def one(i: int) -> tuple[int, int]:
        llm = OpenAICompatibleLLM(server.url, f"ckpt-{i}", max_retries=2, max_in_flight=512)
        saver = InMemorySaver()
        result = await asolve(world_question(500 + i), target=llm, config=cfg, checkpointer=saver)
        await llm.aclose()
        return saver_bytes(saver), len(json.dumps(result.tree))

    sizes = await asyncio.gather(*(one(i) for i in range(args.ckpt_questions)))
    ratios = [stored / tree for stored, tree in sizes]
    return {
        "k": cfg.rollouts_in_flight,
        "n": len(sizes),
        "stored": statistics.fmean(s for s, _ in sizes),
        "tree": statistics.fmean(t for _, t in sizes),
        "mean_ratio": statistics.fmean(ratios),
        "max_ratio": max(ratios),
    }


def print_checkpoint(c: dict[str, Any]) -> None:
    print(f"\n## Checkpoints of a search (InMemorySaver, K = {c['k']}, {c['n']} questions)\n")
    print("| stored bytes (mean) | final tree JSON bytes (mean) | stored / tree: mean | max |")
    print("|---|---|---|---|")
    print(
        f"| {c['stored']:,.0f} | {c['tree']:,.0f} | {c['mean_ratio']:.2f}x | "
        f"{c['max_ratio']:.2f}x |"
    )


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=20, help="questions per K")
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 4, 8, 16, 32])
    ap.add_argument("--parallel", type=int, default=5, help="single questions run at once")
    ap.add_argument("--batch", type=int, default=50, help="questions of the batch (0: skip)")
    ap.add_argument("--p", type=float, default=0.3, help="P(a sample is right)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--preset", default="paper", help="fast | paper | reference_code")
    ap.add_argument("--ckpt-questions", type=int, default=5)
    ap.add_argument("--json", default="/tmp/bench_sim.json", help="raw results go here too")
    ap.add_argument("--http", choices=["httpx", "aiohttp"], help="the batch's HTTP transport")
    args = ap.parse_args()
    server = Server(args)
    try:
        await server.wait()
        print(f"code under test: {Path(langgraph_rstar.__file__).parent}", file=sys.stderr)
        ckpt = await checkpoint_size(args, server)
        rows = await single_questions(args, server) if args.questions else []
        b = await batch(args, server) if args.batch else None
    finally:
        server.stop()
    raw = {"args": vars(args), "single": rows, "batch": b, "checkpoint": ckpt}
    Path(args.json).write_text(json.dumps(raw, indent=1, default=str))
    print(
        "# bench_sim: simulated vLLM (12 ms + 0.04 ms x active per step, <= 256 active, "
        f"0.02 ms per prompt token, prefix cache), {args.preset} preset, discriminator on"
    )
    if rows:
        print_single(rows, args)
    if b:
        print_batch(b, args.batch)
    print_checkpoint(ckpt)


if __name__ == "__main__":
    asyncio.run(main())
