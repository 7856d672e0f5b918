"""rStar on the embedded 0.5B llama.cpp server: wall, tokens, requests, tok/s, prompt-cache hits.

    python benchmarks/bench_cpu_cache.py [--questions 3] [--compare]

The first GSM8K dev questions, one after another (``--together``: all at once, like
``rstar eval --concurrency N``), with 4 rollouts, 2 A1 steps, 2 sub-questions,
3/4 votes, 256 max tokens and depth 5 (the preset's K). The prompt-cache hit rate is read from
the server's log: for every task llama.cpp logs the prompt tokens it computed ("prompt eval
time = ... / N tokens"), the tokens it generated ("eval time = ... / G tokens") and the tokens
in the slot when it stopped ("n_tokens = T"), so the task's prompt had T - G + 1 tokens and
T - G + 1 - N of them came from the cache; a request for n samples counts once (llama.cpp's
child tasks copy the parent's prompt state). ``--prefix-wait`` takes one or more values of the
backend's ``prefix_wait`` (0 = off) and ``--batch-prompts`` its ``batch_prompts``; each value
runs the same questions on a fresh server (empty caches), side by side. ``--compare`` runs the
backend as shipped (requests sharing half their prompt with one in flight wait for it, one
prompt per request) beside everything sent at once (no waiting, a call's prompts batched).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parents[1]))

from langgraph_rstar import OpenAICompatibleLLM, RStarConfig, asolve  # noqa: E402
from langgraph_rstar.local import LocalServer  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k"
TASK_RE = re.compile(r"id\s+\d+ \| task (\d+) \| (.*)")


def questions(n: int) -> list[str]:
    for root in (DATA, Path("/work/shared/data/gsm8k")):
        for name in ("dev.jsonl", "test.jsonl"):
            path = root / name
            if path.exists():
                rows = [json.loads(line) for line in path.open() if line.strip()]
                return [r.get("question") or r.get("problem") for r in rows[:n]]
    raise SystemExit("GSM8K dev data not found under shared/data/gsm8k")


def cache_stats(log: str) -> dict[str, float]:
    """Prompt tokens, computed prompt tokens and generated tokens per task from llama.cpp's log."""
    tasks: dict[str, dict[str, int]] = {}
    for line in log.splitlines():
        m = TASK_RE.search(line)
        if not m:
            continue
        t = tasks.setdefault(m.group(1), {})
        text = m.group(2)
        if "is_child = 1" in text:
            t["child"] = 1
        elif p := re.search(r"prompt eval time =\s*[\d.]+ ms /\s*(\d+) tokens", text):
            t["computed"] = int(p.group(1))
        elif (e := re.search(r"\beval time =\s*[\d.]+ ms /\s*(\d+) tokens", text)) is not None:
            t["generated"] = int(e.group(1))
        elif (s := re.search(r"stop processing: n_tokens = (\d+)", text)) is not None:
            t["n_tokens"] = int(s.group(1))
    done = [t for t in tasks.values() if {"computed", "generated", "n_tokens"} <= set(t)]
    generated = sum(t["generated"] for t in done)
    # n > 1: child tasks copy the parent's prompt state (llama.cpp PR 17775) and log the
    # parent's prompt timings; the prompt was sent and computed once, by the parent.
    done = [t for t in done if not t.get("child")]
    prompt = sum(t["n_tokens"] - t["generated"] + 1 for t in done)
    computed = sum(t["computed"] for t in done)
    return {
        "tasks": len(done),
        "prompt_tokens": prompt,
        "computed": computed,
        "generated": generated,
        "hit_rate": 1 - computed / prompt if prompt else 0.0,
    }


def _trace_requests(llm: OpenAICompatibleLLM, path: Path) -> None:
    """Append each request (send and reply times, n, prompts) to ``path`` as JSON lines."""
    request = llm._request
    out = path.open("a")

    async def traced(prompts: list[str], k: int, params: Any) -> Any:
        sent = time.time()
        try:
            return await request(prompts, k, params)
        finally:
            rec = {"sent": sent, "done": time.time(), "n": k, "prompts": prompts}
            out.write(json.dumps(rec) + "\n")
            out.flush()

    llm._request = traced  # type: ignore[method-assign]


async def run(
    server: LocalServer,
    qs: list[str],
    cfg: RStarConfig,
    wait: float | None,
    batch: bool | None,
    trace: Path | None = None,
    together: bool = False,
) -> dict[str, Any]:
    llm = OpenAICompatibleLLM(
        server.base_url,
        server.alias,
        dialect="llamacpp",
        max_n=server.parallel,
        timeout=3600,
        prefix_wait=wait,
        batch_prompts=batch,
    )
    if trace is not None:
        _trace_requests(llm, trace)
    start = time.perf_counter()
    if together:  # like `rstar eval --concurrency N`
        results = list(await asyncio.gather(*(asolve(q, target=llm, config=cfg) for q in qs)))
    else:
        results = [await asolve(q, target=llm, config=cfg) for q in qs]
    wall = time.perf_counter() - start
    await llm.aclose()
    tokens = sum(u.get("completion_tokens", 0) for r in results for u in r.usage.values())
    requests = sum(u.get("requests", 0) for r in results for u in r.usage.values())
    stats = cache_stats(Path(server.log_path).read_text(errors="replace"))
    return {
        "wait": llm.prefix_wait,
        "batch": llm.batch_prompts,
        "wall": wall,
        "tokens": tokens,
        "requests": requests,
        "server_tok_s": stats["generated"] / wall,
        **stats,
        "answers": [r.answer for r in results],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=3)
    ap.add_argument("--parallel", type=int, default=8, help="server slots")
    ap.add_argument(
        "--prefix-wait", type=float, nargs="+", default=[0.5], help="prefix_wait values"
    )
    ap.add_argument("--compare", action="store_true", help="as shipped, then all sent at once")
    ap.add_argument("--trace", type=Path, help="write each request (times, n, prompts) here")
    ap.add_argument("--together", action="store_true", help="all questions at once, not in turn")
    ap.add_argument(
        "--batch-prompts",
        choices=["auto", "on", "off"],
        default="auto",
        help="several prompts per request (auto: the backend's default, off for llama.cpp)",
    )
    args = ap.parse_args()
    qs = questions(args.questions)
    cfg = RStarConfig.preset(
        "fast",
        num_rollouts=4,
        num_a1_steps=2,
        num_subquestions=2,
        num_votes=3,
        num_last_votes=4,
        max_depth=5,
        **{
            f: 256
            for f in (
                "max_tokens_cot",
                "max_tokens_step",
                "max_tokens_subquestion",
                "max_tokens_subanswer",
                "max_tokens_rephrase",
                "discriminator_max_tokens",
            )
        },
    )
    batch = {"auto": None, "on": True, "off": False}[args.batch_prompts]
    runs = [(None, None), (0.0, True)] if args.compare else [(w, batch) for w in args.prefix_wait]
    rows = []
    for wait, batched in runs:
        with LocalServer(parallel=args.parallel) as server:  # a fresh server: empty caches
            rows.append(asyncio.run(run(server, qs, cfg, wait, batched, args.trace, args.together)))
    order = "at once" if args.together else "one after another"
    print(
        f"# bench_cpu_cache: {len(qs)} GSM8K dev questions {order}, embedded 0.5B llama.cpp server "
        f"({args.parallel} slots), 4 rollouts, 2 A1 steps, 2 sub-questions, 3/4 votes, "
        f"256 max tokens, depth 5, K = {cfg.rollouts_in_flight}\n"
    )
    print(
        "| prefix_wait | prompts per request | wall s | generated tokens | requests | "
        "server tok/s | prompt tokens | computed | cache hit rate | answers |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['wait']:g} | {'several' if r['batch'] else 'one'} | {r['wall']:.0f} | "
            f"{r['tokens']:,} | {r['requests']} | {r['server_tok_s']:.1f} | "
            f"{r['prompt_tokens']:,} | {r['computed']:,} | {r['hit_rate']:.1%} | {r['answers']} |"
        )


if __name__ == "__main__":
    main()
