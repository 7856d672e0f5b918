"""The ``rstar eval`` and ``rstar report`` subcommands (wired into :mod:`langgraph_rstar.cli`)."""

from __future__ import annotations

import argparse
import asyncio

from langgraph_rstar.eval.data import DATASETS
from langgraph_rstar.eval.errors import EvalError
from langgraph_rstar.eval.methods import METHODS
from langgraph_rstar.eval.reporting import report
from langgraph_rstar.eval.runner import run_eval
from langgraph_rstar.eval.shards import Shard

__all__ = ["register_cli"]


def _eval_command(args: argparse.Namespace) -> int:
    return asyncio.run(run_eval(args))


def _report_command(args: argparse.Namespace) -> int:
    report(
        args.run_dirs,
        args.plots_dir,
        as_json=args.json,
        rescore=args.rescore,
        html_dir=args.html,
        allow_partial=args.allow_partial,
    )
    return 0


def _shard_arg(text: str) -> Shard:
    try:
        return Shard.parse(text)
    except EvalError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add ``rstar eval`` and ``rstar report`` to the ``rstar`` command."""
    from langgraph_rstar.endpoints import add_endpoint_args

    p = subparsers.add_parser(
        "eval",
        help="evaluate a method on a dataset (resumable)",
        description="Run cot, sc, rstar-generator or rstar over a JSONL dataset. Results are "
        "appended to RUN_DIR/results.jsonl as each question finishes; rerun the same command to "
        "resume (finished ids are skipped, failed ones retried).",
    )
    p.add_argument(
        "--dataset",
        required=True,
        choices=DATASETS,
        help="dataset name (sets the task: answer type and prompt pack)",
    )
    p.add_argument(
        "--data",
        required=True,
        metavar="FILE",
        help="JSONL with id, question, answer per line, or the dataset's public release as "
        "downloaded (.jsonl/.json/.parquet, or a datasets.save_to_disk folder); see README",
    )
    p.add_argument(
        "--method",
        required=True,
        choices=METHODS,
        help="cot (one greedy chain of thought), sc (self-consistency, --sc-k samples), "
        "rstar-generator (MCTS, generator@maj) or rstar (MCTS + discriminator)",
    )
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N questions")
    p.add_argument(
        "--shard",
        type=_shard_arg,
        metavar="I/N",
        help="only shard I of N (1 <= I <= N; by a hash of the question id, after --limit): "
        "run I = 1..N on N machines, each into its own RUN_DIR, then `rstar report` them all",
    )
    p.add_argument(
        "--concurrency",
        type=int,
        default=4,
        metavar="Q",
        help="questions solved at the same time (default 4)",
    )
    p.add_argument(
        "--sc-k",
        type=int,
        default=8,
        metavar="K",
        help="samples per question for --method sc (default 8)",
    )
    p.add_argument(
        "--max-consecutive-errors",
        type=int,
        default=5,
        metavar="N",
        help="stop after N failed questions in a row (0: never; default 5)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")
    add_endpoint_args(p)
    p.set_defaults(func=_eval_command, task=None)  # task=None: taken from --dataset

    r = subparsers.add_parser(
        "report",
        help="summarise eval runs: table and plots",
        description="One row per run; the shards of a sharded run (rstar eval --shard) are "
        "merged into one row, after checking that they belong together.",
    )
    r.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories of rstar eval")
    r.add_argument(
        "--plots-dir",
        metavar="DIR",
        help="where the PNGs go (default: the run dir, or the runs' common parent)",
    )
    r.add_argument("--json", action="store_true", help="print the summaries as JSON")
    r.add_argument(
        "--rescore",
        action="store_true",
        help="also print rStar runs' accuracy under every selection rule (no model calls)",
    )
    r.add_argument(
        "--html",
        metavar="DIR",
        help="also write one HTML page per question of rStar runs (the search tree, candidates "
        "and verdicts) and an index.html; several runs go to DIR/<run name>/",
    )
    r.add_argument(
        "--allow-partial",
        action="store_true",
        help="merge the shards of a run even if some are missing (they are named in the table)",
    )
    r.set_defaults(func=_report_command)
