"""The ``rstar`` command: solve a question, serve the embedded model, evaluate, report."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence

from langgraph_rstar.backends import BackendError

# Re-exported: the endpoint plumbing lived here before it moved to langgraph_rstar.endpoints.
from langgraph_rstar.endpoints import DIALECTS as DIALECTS
from langgraph_rstar.endpoints import Endpoints as Endpoints
from langgraph_rstar.endpoints import add_endpoint_args, config_from_args, open_endpoints


async def _solve(args: argparse.Namespace) -> int:
    from rich.console import Console

    from langgraph_rstar.api import RStarError, asolve
    from langgraph_rstar.progress import SolveProgress

    cfg = config_from_args(args)
    err = Console(stderr=True)
    out = Console()
    quiet = args.json or args.quiet
    progress = SolveProgress(err, cfg, enabled=not quiet)
    async with open_endpoints(args, status=None if quiet else err.print) as ends:
        if not quiet:
            err.print(
                f"[dim]target: {ends.description}; preset {cfg.preset_name}, "
                f"{cfg.num_rollouts} rollouts[/dim]"
            )
        with progress:
            try:
                result = await asolve(
                    args.question,
                    target=ends.target,
                    discriminator=ends.discriminator,
                    config=cfg,
                    on_event=progress.on_event,
                )
            except RStarError as exc:
                err.print(f"[red]error:[/red] {exc}")
                if exc.partial is not None and exc.partial.tree:
                    err.print(
                        f"[dim]{len(exc.partial.tree)} tree nodes were computed before "
                        "the failure[/dim]"
                    )
                return 2
    if args.json:
        payload = result.to_dict()
        if not args.full:
            payload.pop("tree")
        print(json.dumps(payload, indent=2))
        return 0
    if args.tree:
        from langgraph_rstar.progress import render_tree

        out.print(render_tree(result.tree))
    out.print("[bold]Trajectory[/bold]")
    for i, step in enumerate(result.trajectory, 1):
        out.print(f"  Step {i}: {step}")
    if result.answer is None:
        out.print(
            "[bold yellow]No answer:[/bold yellow] no trajectory of the search stated one "
            f"({len(result.candidates)} candidates)"
        )
    else:
        out.print(
            f"[bold green]Answer: {result.answer}[/bold green]  (confidence "
            f"{result.confidence:.2f}, chosen by {result.selection}; generator@maj "
            f"{result.generator_answer} at {result.generator_confidence:.2f})"
        )
    t = result.usage.get("target", {})
    d = result.usage.get("discriminator", {})
    out.print(
        f"[dim]target: {t.get('requests', 0)} requests, {t.get('completion_tokens', 0)} "
        f"generated tokens; discriminator: {d.get('requests', 0)} requests, "
        f"{d.get('completion_tokens', 0)} tokens[/dim]"
    )
    return 0


def _serve_local(args: argparse.Namespace) -> int:
    from langgraph_rstar.local import serve

    serve(args.model, port=args.port, parallel=args.parallel, ctx=args.ctx, threads=args.threads)
    return 0


def _register_serve(sub: argparse._SubParsersAction) -> None:
    """``rstar serve`` needs the [serve] extra; without it the command says how to get it."""
    try:
        from langgraph_rstar import serve
    except ImportError as exc:
        missing = exc.name or "starlette"

        def explain(args: argparse.Namespace) -> int:
            raise ValueError(f"rstar serve needs {missing}: pip install 'langgraph-rstar[serve]'")

        # Options are not parsed here: whatever was typed, the answer is the install line.
        p = sub.add_parser(
            "serve",
            help="serve rStar as an OpenAI-compatible API ([serve] extra)",
            prefix_chars="+",
        )
        p.add_argument("ignored", nargs="*")
        p.set_defaults(func=explain)
        return
    serve.register_cli(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rstar", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("solve", help="solve one question with rStar")
    p.add_argument("question")
    add_endpoint_args(p)
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--full", action="store_true", help="with --json, include the whole tree")
    p.add_argument("--tree", action="store_true", help="print the search tree")
    p.add_argument("--quiet", action="store_true", help="no progress view")
    p.set_defaults(func=lambda a: asyncio.run(_solve(a)))

    p = sub.add_parser("serve-local", help="run the embedded llama.cpp server in the foreground")
    p.add_argument(
        "--model",
        default="qwen2.5-coder-0.5b",
        help="qwen2.5-coder-0.5b | qwen2.5-coder-1.5b | PATH.gguf",
    )
    p.add_argument("--port", type=int, default=8089)
    p.add_argument("--parallel", type=int, default=8)
    p.add_argument("--ctx", type=int, default=None)
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=_serve_local)

    from langgraph_rstar import eval as rstar_eval  # imports its heavy deps lazily

    rstar_eval.register_cli(sub)
    _register_serve(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, BackendError) as exc:
        print(f"rstar: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - last-resort message for the terminal
        from langgraph_rstar.local import LocalServerError

        if isinstance(exc, LocalServerError):
            print(f"rstar: error: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    raise SystemExit(main())
