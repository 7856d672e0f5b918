"""Requests and wall time per question with K=1 vs K=4 rollouts in flight (issue 2).

The model is the scripted OpenAI-compatible server of the test suite (real HTTP on 127.0.0.1)
with a fixed delay per request, so the numbers isolate the controller's scheduling from model
speed. Both settings run side by side in one process on the same questions.

    python benchmarks/bench_inflight.py [--delay 0.2] [--rollouts 8] [--questions 3]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from langgraph_rstar import OpenAICompatibleLLM, RStarConfig, asolve  # noqa: E402
from tests.conftest import QUESTIONS, rstar_responder  # noqa: E402
from tests.scripted_server import ScriptedServer  # noqa: E402


async def measure(server: ScriptedServer, k: int, rollouts: int, questions: list[str]) -> dict:
    llm = OpenAICompatibleLLM(server.base_url, "scripted", max_retries=1)
    cfg = RStarConfig.preset("fast", num_rollouts=rollouts, rollouts_in_flight=k)
    walls, requests, answers = [], [], []
    for q in questions:
        server.log.clear()
        start = time.perf_counter()
        result = await asolve(q, target=llm, config=cfg)
        walls.append(time.perf_counter() - start)
        requests.append(len(server.posts))
        answers.append(result.answer)
    await llm.aclose()
    return {
        "k": k,
        "wall": sum(walls) / len(walls),
        "requests": sum(requests) / len(requests),
        "peak": server.peak_concurrency(),
        "answers": answers,
    }


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--delay", type=float, default=0.2, help="seconds per request")
    ap.add_argument("--rollouts", type=int, default=8)
    ap.add_argument("--questions", type=int, default=3)
    args = ap.parse_args()
    questions = list(QUESTIONS)[: args.questions]
    with ScriptedServer(rstar_responder, delay=args.delay) as server:
        rows = [await measure(server, k, args.rollouts, questions) for k in (1, 4)]
    print(
        f"fast preset, {args.rollouts} rollouts, discriminator on, {args.delay * 1000:.0f} ms "
        f"per request, mean over {len(questions)} questions"
    )
    print(f"{'K':>3} {'requests/q':>11} {'wall s/q':>9} {'peak in flight':>15}  answers")
    for r in rows:
        row = f"{r['k']:>3} {r['requests']:>11.1f} {r['wall']:>9.2f} {r['peak']:>15}"
        print(f"{row}  {r['answers']}")
    print(f"speed-up K=4 vs K=1: {rows[0]['wall'] / rows[1]['wall']:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
