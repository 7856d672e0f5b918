"""Endpoint plumbing shared by the ``rstar`` commands: options, config and backends from them.

``rstar solve`` (:mod:`langgraph_rstar.cli`) and ``rstar eval`` (:mod:`langgraph_rstar.eval`) both
take the same endpoint and search options and open the same backends; this module holds that
once so that neither imports the other.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from langgraph_rstar.backends import LLMBackend, OpenAICompatibleLLM
from langgraph_rstar.config import PRESETS, RStarConfig

__all__ = [
    "DIALECTS",
    "Endpoints",
    "add_endpoint_args",
    "config_from_args",
    "open_endpoints",
    "search_overrides",
]

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
    return RStarConfig.preset(args.preset, task=args.task, **search_overrides(args))


def search_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The RStarConfig fields the search options set (on top of the preset)."""
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
    return overrides


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
