"""Solve several questions at once with ``asolve`` + ``asyncio.gather`` on one shared backend.

What it shows: one ``OpenAICompatibleLLM`` serving many concurrent searches (its
``max_in_flight`` bounds the open requests; the server batches them), and per-question answer,
confidence and wall time next to the total wall time.

Questions: ``--question`` (repeatable), else the first ``--limit`` questions of ``--data FILE``
(any dataset file ``rstar eval`` reads; only the questions are read), else three built-in ones.

Run it against an OpenAI-compatible completions endpoint::

    python examples/asyncio_batch.py --base-url http://localhost:8000/v1 --model M --limit 8

or with no ``--base-url`` to start the embedded CPU model (``langgraph-rstar[local]``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from langgraph_rstar import RStarConfig, RStarError, RStarResult, asolve
from langgraph_rstar.backends import LLMBackend
from langgraph_rstar.eval import EvalError, load_dataset
from langgraph_rstar.local import LocalServerError, llm_or_local

BUILTIN_QUESTIONS = [
    "Tom has 3 apples and buys 2 more. How many apples does Tom have now?",
    "A box holds 4 pens. How many pens are in 3 boxes?",
    "Sara reads 10 pages a day. How many pages does she read in 7 days?",
]


def default_questions(limit: int, data: Path | None = None) -> list[str]:
    """The first ``limit`` questions of a dataset file (answers unread), else built-in ones."""
    if data is None:
        return BUILTIN_QUESTIONS[:limit]
    return [item.question for item in load_dataset(data, limit=limit)]


async def timed_solve(
    question: str, llm: LLMBackend, config: RStarConfig
) -> tuple[RStarResult | BaseException, float]:
    start = time.perf_counter()
    try:
        result: RStarResult | BaseException = await asolve(question, target=llm, config=config)
    except RStarError as exc:  # one failed question does not sink the batch
        result = exc
    return result, time.perf_counter() - start


async def solve_all(
    questions: Sequence[str], llm: LLMBackend, config: RStarConfig
) -> list[tuple[RStarResult | BaseException, float]]:
    return await asyncio.gather(*(timed_solve(q, llm, config) for q in questions))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Solve several questions concurrently.")
    parser.add_argument("--base-url", help="OpenAI-compatible URL (default: embedded model)")
    parser.add_argument("--model", default="default", help="model name sent to the endpoint")
    parser.add_argument("--question", action="append", help="a question (repeatable)")
    parser.add_argument("--data", type=Path, help="a dataset file (JSONL: id, question, answer)")
    parser.add_argument("--limit", type=int, default=3, help="questions to take (default 3)")
    parser.add_argument("--rollouts", type=int, default=4, help="MCTS rollouts (default 4)")
    parser.add_argument("--max-in-flight", type=int, default=16, help="open requests at most")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        questions = args.question or default_questions(args.limit, args.data)
    except EvalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    config = RStarConfig.preset("fast", num_rollouts=args.rollouts)
    start = time.perf_counter()
    try:
        if not args.base_url:
            print("starting the embedded model (no --base-url given) ...", file=sys.stderr)
        with llm_or_local(args.base_url, args.model, max_in_flight=args.max_in_flight) as llm:
            outcomes = asyncio.run(solve_all(questions, llm, config))
            requests = llm.usage.requests
    except LocalServerError as exc:  # e.g. the embedded model is not installed
        print(f"error: {exc}", file=sys.stderr)
        return 2
    wall = time.perf_counter() - start
    failed = 0
    for i, (question, (outcome, seconds)) in enumerate(zip(questions, outcomes, strict=True), 1):
        short = question if len(question) <= 70 else question[:69] + "…"
        print(f"[{i}] {short}")
        if isinstance(outcome, BaseException):
            failed += 1
            print(f"    error after {seconds:.1f}s: {outcome}")
        else:
            print(
                f"    answer: {outcome.answer}  confidence: {outcome.confidence:.2f}  "
                f"({outcome.selection}, {seconds:.1f}s)"
            )
    print(f"{len(questions)} questions in {wall:.1f}s wall time, {requests} requests, one backend")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
