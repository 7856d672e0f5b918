"""Overhead of the backend's request path (deadline, streamed capped read, attribution) against
the plain ``openai`` client, side by side on the embedded llama.cpp server.

    python benchmarks/bench_backend_overhead.py [--rounds 12]

Each round sends the same completion request (2 samples, 16 tokens) once through
``OpenAICompatibleLLM.generate`` and once through ``openai.AsyncOpenAI.completions.create``, in
alternating order, and prints the median latency of each and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import openai

from langgraph_rstar import OpenAICompatibleLLM
from langgraph_rstar.local import LocalServer

PROMPT = "Question: Tom has 3 apples and buys 2 more. How many apples?\nAnswer:"


async def measure(url: str, rounds: int) -> tuple[list[float], list[float]]:
    llm = OpenAICompatibleLLM(url, "local", dialect="llamacpp", timeout=300, max_retries=0)
    raw = openai.AsyncOpenAI(base_url=url, api_key="EMPTY", max_retries=0, timeout=300)
    ours: list[float] = []
    plain: list[float] = []

    async def via_backend() -> None:
        t = time.perf_counter()
        await llm.generate([PROMPT], n=2, max_tokens=16, stop=["\n"], seed=1, top_k=40)
        ours.append(time.perf_counter() - t)

    async def via_openai() -> None:
        t = time.perf_counter()
        await raw.completions.create(  # exactly the body the backend sends
            model="local",
            prompt=PROMPT,
            n=2,
            max_tokens=16,
            temperature=0.8,
            top_p=0.95,
            stop=["\n"],
            seed=1,
            logprobs=1,
            extra_body={"top_k": 40, "repeat_penalty": 1.1, "min_p": 0.0},
        )
        plain.append(time.perf_counter() - t)

    await via_backend()  # warm-up: the prompt cache and the connection
    await via_openai()
    ours.clear()
    plain.clear()
    for i in range(rounds):
        first, second = (via_backend, via_openai) if i % 2 == 0 else (via_openai, via_backend)
        await first()
        await second()
    await llm.aclose()
    await raw.close()
    return ours, plain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=12)
    args = parser.parse_args()
    server = LocalServer("qwen2.5-coder-0.5b", parallel=8)
    url = server.start()
    try:
        ours, plain = asyncio.run(measure(url, args.rounds))
    finally:
        server.stop()
    a, b = statistics.median(ours), statistics.median(plain)
    print(f"rounds: {args.rounds} (alternating order), request: n=2, 16 tokens")
    print("| path | median s | min s | max s |")
    print("|---|---|---|---|")
    print(f"| OpenAICompatibleLLM.generate | {a:.3f} | {min(ours):.3f} | {max(ours):.3f} |")
    print(f"| openai completions.create | {b:.3f} | {min(plain):.3f} | {max(plain):.3f} |")
    print(f"ratio backend / plain client: {a / b:.2f}")


if __name__ == "__main__":
    main()
