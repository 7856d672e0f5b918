"""Endpoint plumbing shared by the ``rstar`` commands: options, config and backends from them.

``rstar solve`` (:mod:`langgraph_rstar.cli`) and ``rstar eval`` (:mod:`langgraph_rstar.eval`) both
take the same endpoint and search options and open the same backends; this module holds that
once so that neither imports the other.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import difflib
import json
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from langgraph_rstar.backends import (
    BackendError,
    LLMBackend,
    OpenAICompatibleLLM,
    RoutedLLM,
    RoutingPolicy,
)
from langgraph_rstar.backends.openai_compat import Dialect, _normalize_base_url
from langgraph_rstar.backends.redaction import redact_url
from langgraph_rstar.config import PRESETS, RStarConfig
from langgraph_rstar.settings import SettingsError

__all__ = [
    "DIALECTS",
    "Endpoints",
    "add_endpoint_args",
    "api_keys",
    "config_from_args",
    "endpoint_identity",
    "open_endpoints",
    "requested_identity",
    "search_overrides",
]

DIALECTS = ("vllm", "llamacpp", "tgi", "openai")


def _json_object(text: str) -> dict[str, Any]:
    """argparse type for --extra-body: a JSON object."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc.msg}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object such as '{\"min_p\": 0.05}'")
    return value


def _number(kind: type, low: float, *, strict: bool, what: str) -> Callable[[str], Any]:
    """An argparse ``type`` for numbers above ``low`` (or at least, when not ``strict``)."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        if value < low or (strict and value == low):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


_SECONDS = _number(float, 0, strict=True, what="a number of seconds > 0")
_COUNT = _number(int, 1, strict=False, what="an integer >= 1")
_RETRIES = _number(int, 0, strict=False, what="an integer >= 0")
DEFAULT_TIMEOUT = 300.0
DEFAULT_MAX_RETRIES = 4


def add_endpoint_args(parser: argparse.ArgumentParser) -> None:
    """Endpoint options shared by `solve` and `eval` (no --base-url = the embedded model)."""
    g = parser.add_argument_group("target model (generator)")
    g.add_argument(
        "--base-url",
        action="append",
        default=None,
        metavar="URL",
        help="OpenAI-compatible base URL, e.g. http://localhost:8000/v1; repeat it for replicas "
        "of the same model (each question stays on one replica, failed calls move to another) "
        "(default: $RSTAR_TARGET_BASE_URL, else $OPENAI_BASE_URL, else start the embedded "
        "llama.cpp server)",
    )
    g.add_argument(
        "--model",
        default=None,
        help="model name sent with every request (default: $RSTAR_TARGET_MODEL, else the "
        "server's model when /v1/models lists exactly one)",
    )
    g.add_argument(
        "--api-key",
        default=None,
        help="API key (default: $RSTAR_TARGET_API_KEY, else $OPENAI_API_KEY, else 'EMPTY'); "
        "visible to other users in `ps`: prefer the variables or --api-key-file",
    )
    g.add_argument(
        "--api-key-file", metavar="FILE", help="read the API key from FILE (its first line)"
    )
    g.add_argument(
        "--api",
        choices=("completions", "chat"),
        default="completions",
        help="completions: raw few-shot prompts, like the paper (default); chat: each prompt "
        "as one user message, for chat-only servers",
    )
    g.add_argument(
        "--dialect",
        choices=DIALECTS,
        default=None,
        help="sampling-extras dialect (default: vllm; llamacpp for the embedded server)",
    )
    g.add_argument(
        "--max-in-flight", type=_COUNT, default=32, help="requests in flight per endpoint"
    )
    g.add_argument(
        "--timeout",
        type=_SECONDS,
        default=os.environ.get("RSTAR_TIMEOUT", str(DEFAULT_TIMEOUT)),
        metavar="SECONDS",
        help="deadline for one whole HTTP request, body included (env RSTAR_TIMEOUT; "
        f"default {DEFAULT_TIMEOUT:g})",
    )
    g.add_argument(
        "--max-retries",
        type=_RETRIES,
        default=os.environ.get("RSTAR_MAX_RETRIES", str(DEFAULT_MAX_RETRIES)),
        metavar="N",
        help="retries of a failed request (5xx, 429, timeout, reset, malformed reply); a dead "
        "server is reported after (N+1) x --timeout at most (env RSTAR_MAX_RETRIES; "
        f"default {DEFAULT_MAX_RETRIES})",
    )
    g.add_argument(
        "--extra-body",
        type=_json_object,
        default=None,
        metavar="JSON",
        help="extra JSON fields merged into every request body, e.g. '{\"min_p\": 0.05}'",
    )
    d = parser.add_argument_group("discriminator model (default: the target)")
    d.add_argument(
        "--discriminator-base-url",
        action="append",
        metavar="URL",
        help="base URL, repeatable for replicas (default: the target's)",
    )
    d.add_argument(
        "--discriminator-model",
        help="model name (default: the target's; with its own --discriminator-base-url, the "
        "server's only model)",
    )
    d.add_argument(
        "--discriminator-api-key",
        help="API key (default: $RSTAR_DISCRIMINATOR_API_KEY, else the target's when the "
        "discriminator is on the target's host, else 'EMPTY')",
    )
    d.add_argument(
        "--discriminator-api-key-file", metavar="FILE", help="read its API key from FILE"
    )
    d.add_argument(
        "--discriminator-api", choices=("completions", "chat"), help="API (default: the target's)"
    )
    d.add_argument(
        "--discriminator-dialect", choices=DIALECTS, help="dialect (default: the target's)"
    )
    d.add_argument(
        "--discriminator-extra-body",
        type=_json_object,
        metavar="JSON",
        help="extra JSON fields for the discriminator's requests (default: the target's)",
    )
    r = parser.add_argument_group("replicas (several --base-url) and routers in front of them")
    r.add_argument(
        "--affinity-header",
        default="X-Session-ID",
        metavar="NAME",
        help="header that carries each question's key, so that a router in front of replicas "
        "keeps a question on one of them (vLLM production-stack router: --routing-logic session "
        "--session-key NAME); '' sends none (default: X-Session-ID)",
    )
    r.add_argument(
        "--replica-capacity",
        type=int,
        metavar="SEQS",
        help="sequences one replica serves at once (vLLM's --max-num-seqs): below it a question "
        "never leaves its replica (default: only balance the load)",
    )
    r.add_argument(
        "--probe-interval",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="how often a replica taken out of rotation (3 failures in a row) is probed to let "
        "it back in (default 2)",
    )
    e = parser.add_argument_group("embedded model (used when no base URL is given)")
    e.add_argument(
        "--local-model",
        default="qwen2.5-coder-0.5b",
        help="qwen2.5-coder-0.5b | qwen2.5-coder-1.5b | PATH.gguf",
    )
    e.add_argument(
        "--local-parallel", type=_COUNT, default=8, help="server slots (max n per request)"
    )
    s = parser.add_argument_group("search settings")
    s.add_argument(
        "--preset", choices=PRESETS, default="fast", help="settings preset (default fast)"
    )
    s.add_argument(
        "--task",
        default="gsm8k",
        help="answer type and prompt pack: gsm8k, gsmhard, svamp, math500, strategyqa",
    )
    s.add_argument("--rollouts", type=int, help="override num_rollouts")
    s.add_argument("--in-flight", type=int, help="rollouts in flight (K)")
    s.add_argument("--prompts", help="prompt pack name or directory")
    s.add_argument(
        "--no-discriminator",
        action="store_true",
        help="skip the mutual-consistency check (the answer is generator@maj)",
    )
    s.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override any RStarConfig field (JSON value), repeatable",
    )
    b = parser.add_argument_group(
        "budgets per search (the search stops cleanly and answers from what it has)"
    )
    b.add_argument("--max-requests", type=int, metavar="N", help="most HTTP requests")
    b.add_argument("--max-generated-tokens", type=int, metavar="N", help="most generated tokens")
    b.add_argument("--max-seconds", type=float, metavar="S", help="most wall-clock seconds")


# CLI option -> RStarConfig field, for the options that are plain overrides.
_OVERRIDES = {
    "rollouts": "num_rollouts",
    "in_flight": "rollouts_in_flight",
    "prompts": "prompts",
    "max_requests": "max_requests",
    "max_generated_tokens": "max_generated_tokens",
    "max_seconds": "max_seconds",
}


def _config_field(name: str) -> str:
    """``name`` if it is an RStarConfig field, else a ValueError naming the valid ones."""
    fields = sorted(f.name for f in dataclasses.fields(RStarConfig) if f.name != "preset_name")
    if name in fields:
        return name
    close = difflib.get_close_matches(name, fields, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ValueError(f"--set {name}: unknown setting; {hint}valid fields: {', '.join(fields)}")


def config_from_args(args: argparse.Namespace) -> RStarConfig:
    try:
        return RStarConfig.preset(args.preset, task=args.task, **search_overrides(args))
    except SettingsError:  # already says which field and why
        raise
    except TypeError as exc:  # a value of the wrong type that the dataclass could not take
        raise ValueError(f"invalid setting: {exc}") from exc


def search_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The RStarConfig fields the search options set (on top of the preset)."""
    overrides: dict[str, Any] = {}
    for option, name in _OVERRIDES.items():
        value = getattr(args, option, None)
        if value is not None:  # 0 is a value (and an error), not "not given"
            overrides[name] = value
    if args.no_discriminator:
        overrides["use_discriminator"] = False
    for item in args.set:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"--set {item!r}: expected FIELD=VALUE, e.g. --set num_rollouts=8")
        key = _config_field(key.strip())
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
    # What results depend on about the endpoints, without secrets (see endpoint_identity).
    identity: dict[str, Any] = field(default_factory=dict)


def _env(*names: str) -> str | None:
    """The first of these environment variables that is set and not empty."""
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


def _read_key_file(path: str, option: str) -> str:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise ValueError(f"{option}: cannot read {path!r}: {why}") from None
    key = lines[0].strip() if lines else ""
    if not key:
        raise ValueError(f"{option}: {path!r} is empty (expected the key on its first line)")
    return key


def _given_key(args: argparse.Namespace, option: str, *env_names: str) -> str:
    """The key from ``--OPTION-file``, ``--OPTION`` or the first set variable ("" if none)."""
    path = getattr(args, f"{option}_file", None)
    if path:
        return _read_key_file(path, "--" + f"{option}_file".replace("_", "-"))
    return getattr(args, option, None) or _env(*env_names) or ""


def _origin(url: str | None) -> tuple[str, str, int | None] | None:
    if not url:
        return None
    parts = urlsplit(url if "://" in url else f"http://{url}")
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def api_keys(args: argparse.Namespace, base_urls: list[str] | None = None) -> tuple[str, str]:
    """The target's and the discriminator's API keys from the options and the environment.

    Each from its file, its option or its environment variables, in that order. The target's
    key is reused for the discriminator only when every discriminator URL is on one of the
    target's hosts (scheme, host and port of ``base_urls``, the target's resolved URLs): a key
    goes only to the hosts it was given for.
    """
    target = _given_key(args, "api_key", "RSTAR_TARGET_API_KEY", "OPENAI_API_KEY") or "EMPTY"
    disc = _given_key(args, "discriminator_api_key", "RSTAR_DISCRIMINATOR_API_KEY")
    if not disc:
        others = {_origin(u) for u in _urls(args.discriminator_base_url)}
        homes = {_origin(u) for u in (base_urls or _urls(args.base_url))}
        disc = target if others <= homes else "EMPTY"
    return target, disc


def _target_url_and_model(args: argparse.Namespace) -> tuple[list[str], str | None]:
    """The target's base URLs and model from the options, else the environment."""
    urls = _urls(args.base_url) or _urls(_env("RSTAR_TARGET_BASE_URL", "OPENAI_BASE_URL"))
    return urls, args.model or _env("RSTAR_TARGET_MODEL")


def _shown(urls: list[str]) -> str | list[str]:
    """URLs for an identity: normalized as the backend does, without credentials; one as a
    string, several sorted."""
    shown = []
    for url in urls:
        try:
            url = _normalize_base_url(url)
        except ValueError:  # reported when the backend is built
            pass
        shown.append(redact_url(url))
    shown.sort()
    return shown[0] if len(shown) == 1 else shown


def requested_identity(args: argparse.Namespace) -> dict[str, Any]:
    """:func:`endpoint_identity` as far as the options tell before any server is asked
    (``None`` where only the server can say, e.g. a model picked from ``/v1/models``)."""
    urls, model = _target_url_and_model(args)
    target = {
        "base_url": _shown(urls) if urls else f"embedded:{args.local_model}",
        "model": model,
        "api": args.api,
        "dialect": args.dialect or ("vllm" if urls else "llamacpp"),
    }
    if not (args.discriminator_base_url or args.discriminator_model):
        return {"target": target, "discriminator": dict(target)}
    other = _urls(args.discriminator_base_url)
    disc = {
        "base_url": _shown(other) if other else target["base_url"],
        "model": args.discriminator_model or (None if other else model),
        "api": args.discriminator_api or args.api,
        "dialect": args.discriminator_dialect or target["dialect"],
    }
    return {"target": target, "discriminator": disc}


def endpoint_identity(
    target: LLMBackend, discriminator: LLMBackend, local: tuple[str, str] | None = None
) -> dict[str, Any]:
    """What a run's results depend on about its endpoints, without secrets: URLs without
    credentials (``embedded:<model>`` for the embedded server, whose port changes; all replicas
    of a router), models, APIs and dialects of the target and the discriminator."""

    def one(llm: LLMBackend) -> dict[str, Any]:
        replicas = llm.replicas if isinstance(llm, RoutedLLM) else [llm]
        known = [r for r in replicas if isinstance(r, OpenAICompatibleLLM)]
        if not known:
            return {"base_url": None, "model": None, "api": None, "dialect": None}
        urls = [
            f"embedded:{local[0]}" if local and r.base_url == local[1].rstrip("/") else r.base_url
            for r in known
        ]
        return {
            "base_url": _shown(urls) if not urls[0].startswith("embedded:") else urls[0],
            "model": known[0].model,
            "api": known[0].api,
            "dialect": known[0].dialect,
        }

    return {"target": one(target), "discriminator": one(discriminator)}


async def _pick_model(llm: OpenAICompatibleLLM, option: str) -> str:
    """The server's model when ``/v1/models`` lists exactly one (vLLM rejects made-up names)."""
    models = await llm.list_models()
    if len(models) == 1:
        return models[0]
    listed = ", ".join(models[:20]) or "none"
    raise ValueError(
        f"{option} is not set and {llm.display_url}/models lists {len(models)} models ({listed}); "
        f"pass {option} NAME"
    )


def _connect(
    urls: list[str], model: str, *, name: str, policy: RoutingPolicy, **kwargs: Any
) -> OpenAICompatibleLLM | RoutedLLM:
    """One backend for one URL; a router over one backend per URL for several."""
    if len(urls) == 1:
        return OpenAICompatibleLLM(urls[0], model, name=name, **kwargs)
    return RoutedLLM.from_urls(urls, model, name=name, policy=policy, **kwargs)


async def _check_replicas(backend: LLMBackend, role: str, status: Any) -> None:
    """Probe a router's replicas up front: say which are down; fail if all are."""
    if not isinstance(backend, RoutedLLM):
        return
    health = await backend.check_health()
    down = [url for url, ok in health.items() if not ok]
    if len(down) == len(health):
        raise BackendError(
            f"none of the {len(health)} {role} replicas answers its health check: "
            + ", ".join(down),
            transient=True,
        )
    if down and status:
        status(f"{role}: {len(down)} of {len(health)} replicas down for now: {', '.join(down)}")


def _describe(urls: list[str]) -> str:
    shown = [redact_url(u) for u in urls]  # printed and stored: no URL credentials
    return shown[0] if len(shown) == 1 else f"{len(shown)} replicas: {', '.join(shown)}"


def _urls(value: str | list[str] | None) -> list[str]:
    """``--base-url`` values (one string from older callers), duplicates dropped."""
    if not value:
        return []
    return list(dict.fromkeys([value] if isinstance(value, str) else value))


async def _name_model(backend: OpenAICompatibleLLM | RoutedLLM, option: str) -> str:
    """The model name, asked from the server when none was given (every replica alike)."""
    replicas = [
        r
        for r in (backend.replicas if isinstance(backend, RoutedLLM) else [backend])
        if isinstance(r, OpenAICompatibleLLM)
    ]
    if replicas[0].model:
        return replicas[0].model
    failure: BackendError | None = None
    for replica in replicas:  # the first replica that answers names it
        try:
            name = await _pick_model(replica, option)
        except BackendError as exc:
            failure = exc
            continue
        for r in replicas:
            r.model = name
        return name
    assert failure is not None
    raise failure


@contextlib.asynccontextmanager
async def open_endpoints(
    args: argparse.Namespace, *, status: Callable[[str], Any] | None = None
) -> AsyncIterator[Endpoints]:
    """Backends from the CLI options; starts (and stops) the embedded server when needed.

    Unset options fall back to the environment: ``RSTAR_TARGET_BASE_URL`` / ``OPENAI_BASE_URL``,
    ``RSTAR_TARGET_MODEL``, ``RSTAR_TARGET_API_KEY`` / ``OPENAI_API_KEY``. Without a model name the
    server's single listed model is used.
    """
    server = None
    urls, model = _target_url_and_model(args)
    dialect: Dialect = args.dialect or "vllm"
    api_key, disc_key = api_keys(args, urls)  # bad key files fail before a server starts
    if not urls:
        from langgraph_rstar.local import LocalServer

        if status:
            status(f"starting the embedded model {args.local_model} ...")
        server = LocalServer(args.local_model, parallel=args.local_parallel)
        urls = [await asyncio.to_thread(server.start)]
        dialect = args.dialect or "llamacpp"
        model = model or server.alias
    target: OpenAICompatibleLLM | RoutedLLM | None = None
    disc: OpenAICompatibleLLM | RoutedLLM | None = None
    try:
        common = {
            "max_in_flight": args.max_in_flight,
            "max_n": args.local_parallel if server else None,
            "affinity_header": getattr(args, "affinity_header", "X-Session-ID") or None,
            "policy": RoutingPolicy(
                capacity=getattr(args, "replica_capacity", None),
                probe_interval=getattr(args, "probe_interval", 2.0),
            ),
            "timeout": getattr(args, "timeout", DEFAULT_TIMEOUT),
            "max_retries": getattr(args, "max_retries", DEFAULT_MAX_RETRIES),
        }
        target = _connect(
            urls,
            model or "",
            api_key=api_key,
            api=args.api,
            dialect=dialect,
            extra_body=args.extra_body,
            name="target",
            **common,
        )
        await _check_replicas(target, "target", status)
        model = await _name_model(target, "--model")
        if args.discriminator_base_url or args.discriminator_model:
            disc = _connect(
                _urls(args.discriminator_base_url) or urls,
                args.discriminator_model or ("" if args.discriminator_base_url else model),
                api_key=disc_key,
                api=args.discriminator_api or args.api,
                dialect=args.discriminator_dialect or dialect,
                extra_body=(
                    args.discriminator_extra_body
                    if args.discriminator_extra_body is not None
                    else args.extra_body
                ),
                name="discriminator",
                **common,
            )
            await _check_replicas(disc, "discriminator", status)
            await _name_model(disc, "--discriminator-model")
        where = f"embedded {args.local_model} at {urls[0]}" if server else _describe(urls)
        local = (args.local_model, urls[0]) if server else None
        identity = endpoint_identity(target, disc or target, local)
        yield Endpoints(target, disc or target, where, identity)
    finally:  # close the clients on errors too, then stop the server
        for client in (target, disc):
            if client is not None:
                await client.aclose()
        if server is not None:
            await asyncio.to_thread(server.stop)
