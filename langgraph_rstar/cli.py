"""The ``rstar`` command: solve a question, serve the embedded model, evaluate, report."""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from langgraph_rstar import __version__
from langgraph_rstar.backends import BackendError

# Re-exported: the endpoint plumbing lived here before it moved to langgraph_rstar.endpoints.
from langgraph_rstar.endpoints import DIALECTS as DIALECTS
from langgraph_rstar.endpoints import Endpoints as Endpoints
from langgraph_rstar.endpoints import add_endpoint_args, config_from_args, open_endpoints
from langgraph_rstar.terminal import markup_safe, plain

# Set while the command line asks for --json: every failure is then one JSON object on stdout.
_JSON_ERRORS: contextvars.ContextVar[bool] = contextvars.ContextVar("json_errors", default=False)


def _print_error(message: str, kind: str, **extra: Any) -> None:
    """A failure for the terminal (stderr) and, with --json, as ``{"error": ...}`` on stdout."""
    print(f"rstar: error: {plain(message)}", file=sys.stderr)  # server text: no control codes
    if _JSON_ERRORS.get():
        print(json.dumps({"error": message, "type": kind, **extra}, indent=2))


class _ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are JSON too when --json was given."""

    def error(self, message: str) -> NoReturn:
        if _JSON_ERRORS.get():
            self.print_usage(sys.stderr)
            _print_error(message, "usage")
            self.exit(2)
        super().error(message)


async def _solve(args: argparse.Namespace) -> int:
    from rich.console import Console

    from langgraph_rstar.api import RStarError, asolve
    from langgraph_rstar.progress import SolveProgress

    cfg = config_from_args(args)
    err = Console(stderr=True)
    out = Console()
    quiet = args.json or args.quiet
    progress = SolveProgress(err, cfg, enabled=not quiet)
    async with open_endpoints(args, status=None if quiet else _status(err)) as ends:
        if not quiet:
            err.print(
                f"[dim]target: {markup_safe(ends.description)}; preset {cfg.preset_name}, "
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
                partial = exc.partial.to_dict() if exc.partial is not None else None
                if partial is not None and args.html and partial.get("tree"):
                    _write_html(partial, args.html, err)
                if partial is not None and not args.full:
                    partial.pop("tree")
                _print_error(str(exc), "run_failed", thread_id=exc.thread_id, partial=partial)
                if exc.partial is not None and exc.partial.tree:
                    err.print(
                        f"[dim]{len(exc.partial.tree)} tree nodes were computed before "
                        "the failure[/dim]"
                    )
                return 2
    if args.html:
        _write_html(result.to_dict(), args.html, None if quiet else err)
    if args.json:
        payload = result.to_dict()
        if not args.full:
            payload.pop("tree")
        print(json.dumps(payload, indent=2))
        return 0
    if args.tree:
        from langgraph_rstar.progress import render_tree

        out.print(render_tree(result.tree))
    # Model text is data: escaped, so "[/INST]" or "[a,b]" print as written.
    out.print("[bold]Trajectory[/bold]")
    for i, step in enumerate(result.trajectory, 1):
        out.print(f"  Step {i}: {markup_safe(step)}")
    if result.answer is None:
        out.print(
            "[bold yellow]No answer:[/bold yellow] no trajectory of the search stated one "
            f"({len(result.candidates)} candidates)"
        )
    else:
        out.print(
            f"[bold green]Answer: {markup_safe(result.answer)}[/bold green]  (confidence "
            f"{result.confidence:.2f}, chosen by {result.selection}; generator@maj "
            f"{markup_safe(result.generator_answer)} at {result.generator_confidence:.2f})"
        )
    for warning in result.warnings:
        err.print(f"[yellow]warning:[/yellow] {markup_safe(warning)}")
    t = result.usage.get("target", {})
    d = result.usage.get("discriminator", {})
    out.print(
        f"[dim]target: {t.get('requests', 0)} requests, {t.get('completion_tokens', 0)} "
        f"generated tokens; discriminator: {d.get('requests', 0)} requests, "
        f"{d.get('completion_tokens', 0)} tokens[/dim]"
    )
    return 0


def _status(console: Any) -> Any:
    """A status callback that prints its (possibly user-given) text as plain text."""
    return lambda text: console.print(markup_safe(text), style="dim")


def _write_html(search: dict[str, Any], path: str, console: Any) -> None:
    from langgraph_rstar.view import write_search_html

    out = write_search_html(search, path)
    if console is not None:
        console.print(f"[dim]search view: {markup_safe(out)}[/dim]")


def _serve_local(args: argparse.Namespace) -> int:
    from langgraph_rstar.local import serve_from_args

    serve_from_args(args)
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
    parser = _ArgumentParser(prog="rstar", description=__doc__)
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}", help="print the version"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("solve", help="solve one question with rStar")
    p.add_argument("question", help="the question to solve (quote it)")
    add_endpoint_args(p)
    p.add_argument(
        "--json",
        action="store_true",
        help='print the result as one JSON object (failures too: {"error": ...})',
    )
    p.add_argument("--full", action="store_true", help="with --json, include the whole tree")
    p.add_argument("--tree", action="store_true", help="print the search tree")
    p.add_argument(
        "--html",
        metavar="FILE",
        help="write the search as a self-contained HTML page (tree, candidates, verdicts)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress view")
    p.set_defaults(func=lambda a: asyncio.run(_solve(a)))

    from langgraph_rstar.local import add_server_args  # no heavy imports: xllamacpp loads lazily

    p = sub.add_parser("serve-local", help="run the embedded llama.cpp server in the foreground")
    add_server_args(p, port=8089)
    p.set_defaults(func=_serve_local)

    from langgraph_rstar import eval as rstar_eval  # imports its heavy deps lazily

    rstar_eval.register_cli(sub)
    _register_serve(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    token = _JSON_ERRORS.set("--json" in argv)
    try:
        args = build_parser().parse_args(argv)
        try:
            return int(args.func(args) or 0)
        except (ValueError, BackendError) as exc:
            _print_error(str(exc), type(exc).__name__)
            return 2
        except KeyboardInterrupt:
            return 130
        except Exception as exc:  # noqa: BLE001 - last-resort message for the terminal
            from langgraph_rstar.local import LocalServerError

            if isinstance(exc, LocalServerError):
                _print_error(str(exc), type(exc).__name__)
                return 2
            raise
    finally:
        _JSON_ERRORS.reset(token)


if __name__ == "__main__":
    raise SystemExit(main())
