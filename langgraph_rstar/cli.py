"""The ``rstar`` command: solve a question, serve the embedded model, evaluate, report."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from langgraph_rstar.backends import BackendError, LLMBackend, OpenAICompatibleLLM
from langgraph_rstar.config import PRESETS, RStarConfig

DIALECTS = ("vllm", "llamacpp", "tgi", "openai")


def add_endpoint_args(parser: argparse.ArgumentParser) -> None:
    """Endpoint options shared by `solve` and `eval` (no --base-url = the embedded model)."""
    g = parser.add_argument_group("target model (generator)")
    g.add_argument(
        "--base-url",
        help="OpenAI-compatible base URL, e.g. http://localhost:8000/v1 "
        "(default: start the embedded llama.cpp server)",
    )
    g.add_argument("--model", default=os.environ.get("RSTAR_TARGET_MODEL", "default"))
    g.add_argument("--api-key", default=os.environ.get("RSTAR_TARGET_API_KEY", "EMPTY"))
    g.add_argument("--api", choices=("completions", "chat"), default="completions")
    g.add_argument(
        "--dialect",
        choices=DIALECTS,
        default=None,
        help="sampling-extras dialect (default: vllm; llamacpp for the embedded server)",
    )
    g.add_argument("--max-in-flight", type=int, default=32, help="requests in flight per endpoint")
    d = parser.add_argument_group("discriminator model (default: the target)")
    d.add_argument("--discriminator-base-url")
    d.add_argument("--discriminator-model")
    d.add_argument("--discriminator-api-key")
    d.add_argument("--discriminator-api", choices=("completions", "chat"))
    d.add_argument("--discriminator-dialect", choices=DIALECTS)
    e = parser.add_argument_group("embedded model (used when --base-url is not given)")
    e.add_argument(
        "--local-model",
        default="qwen2.5-coder-0.5b",
        help="qwen2.5-coder-0.5b | qwen2.5-coder-1.5b | PATH.gguf",
    )
    e.add_argument("--local-parallel", type=int, default=8, help="server slots (max n per request)")
    s = parser.add_argument_group("search settings")
    s.add_argument("--preset", choices=PRESETS, default="fast")
    s.add_argument(
        "--task",
        default="gsm8k",
        help="answer type and prompt pack: gsm8k, gsmhard, svamp, math500, strategyqa",
    )
    s.add_argument("--rollouts", type=int, help="override num_rollouts")
    s.add_argument("--in-flight", type=int, help="rollouts in flight (K)")
    s.add_argument("--prompts", help="prompt pack name or directory")
    s.add_argument("--no-discriminator", action="store_true")
    s.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override any RStarConfig field (JSON value), repeatable",
    )


def config_from_args(args: argparse.Namespace) -> RStarConfig:
    overrides: dict[str, Any] = {}
    if args.rollouts:
        overrides["num_rollouts"] = args.rollouts
    if args.in_flight:
        overrides["rollouts_in_flight"] = args.in_flight
    if args.prompts:
        overrides["prompts"] = args.prompts
    if args.no_discriminator:
        overrides["use_discriminator"] = False
    for item in args.set:
        key, _, raw = item.partition("=")
        try:
            overrides[key] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[key] = raw
    return RStarConfig.preset(args.preset, task=args.task, **overrides)


@dataclass
class Endpoints:
    target: LLMBackend
    discriminator: LLMBackend
    description: str


@contextlib.asynccontextmanager
async def open_endpoints(args: argparse.Namespace, *, status=None) -> AsyncIterator[Endpoints]:
    """Backends from the CLI options; starts (and stops) the embedded server when needed."""
    server = None
    base_url, dialect = args.base_url, args.dialect or "vllm"
    if not base_url:
        from langgraph_rstar.local import LocalServer

        if status:
            status(f"starting the embedded model {args.local_model} ...")
        server = LocalServer(args.local_model, parallel=args.local_parallel)
        base_url = await asyncio.to_thread(server.start)
        dialect = args.dialect or "llamacpp"
    target: OpenAICompatibleLLM | None = None
    disc: OpenAICompatibleLLM | None = None
    try:
        max_n = args.local_parallel if server else None
        target = OpenAICompatibleLLM(
            base_url,
            args.model,
            api_key=args.api_key,
            api=args.api,
            dialect=dialect,
            max_in_flight=args.max_in_flight,
            max_n=max_n,
            name="target",
        )
        if args.discriminator_base_url or args.discriminator_model:
            disc = OpenAICompatibleLLM(
                args.discriminator_base_url or base_url,
                args.discriminator_model or args.model,
                api_key=args.discriminator_api_key or args.api_key,
                api=args.discriminator_api or args.api,
                dialect=args.discriminator_dialect or dialect,
                max_in_flight=args.max_in_flight,
                max_n=max_n,
                name="discriminator",
            )
        where = f"embedded {args.local_model} at {base_url}" if server else base_url
        yield Endpoints(target, disc or target, where)
    finally:  # close the clients on errors too, then stop the server
        for client in (target, disc):
            if client is not None:
                await client.aclose()
        if server is not None:
            await asyncio.to_thread(server.stop)


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
