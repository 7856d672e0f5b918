"""``rstar eval``: run (or resume) one method over a dataset, one durable record per question."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as _dt
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langgraph_rstar.backends.redaction import redact, redact_url, url_secrets
from langgraph_rstar.eval.data import Item, _sha256, load_dataset
from langgraph_rstar.eval.errors import EvalError
from langgraph_rstar.eval.methods import RSTAR_METHODS, _empty_usage, _predict, _QuestionFailed
from langgraph_rstar.eval.records import (
    RESULTS_FILE,
    SETTINGS_FILE,
    ResultsLog,
    _atomic_write,
    _peek,
    _run_lock,
    _usage_totals,
    load_records,
    load_settings,
    record_problem,
)
from langgraph_rstar.eval.scoring import summarize
from langgraph_rstar.eval.shards import Shard
from langgraph_rstar.terminal import markup_safe, plain  # rich.markup only

if TYPE_CHECKING:  # pragma: no cover - typing only
    from rich.console import Console

    from langgraph_rstar.config import RStarConfig
    from langgraph_rstar.endpoints import Endpoints

__all__ = ["run_eval"]


async def _evaluate_item(
    item: Item,
    method: str,
    dataset: str,
    ends: Endpoints,
    cfg: RStarConfig,
    sc_k: int,
    secrets: Sequence[str] = (),
) -> dict[str, Any]:
    """Solve one question (the solver sees only the question), then score it against the gold."""
    from langgraph_rstar.answers import answers_equal

    t0 = time.monotonic()
    error: str | None = None
    try:
        out = await _predict(method, item.question, ends, cfg, sc_k)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure becomes an error record, retried later
        # Backends mask their own keys; this also covers any other key the run was given.
        error = redact(f"{type(exc).__name__}: {exc}", secrets)
        usage = exc.usage if isinstance(exc, _QuestionFailed) else _empty_usage()
        out = {"prediction": None, "confidence": 0.0, "candidates": [], "usage": usage}
    wall = time.monotonic() - t0
    # Only now is the gold answer read.
    gold = item.gold
    prediction = out["prediction"]
    correct = prediction is not None and await asyncio.to_thread(
        answers_equal, prediction, gold, cfg.task
    )
    record: dict[str, Any] = {
        "id": item.id,
        "method": method,
        "dataset": dataset,
        "question": item.question,
        "gold": gold,
        "prediction": prediction,
        "correct": bool(correct),
        "confidence": out.get("confidence"),
        "candidates": out.get("candidates", []),
        "usage": out["usage"],
        "wall_seconds": round(wall, 3),
        "error": error,
        "finished": _now(),
    }
    if method in RSTAR_METHODS and error is None:
        gen = out.get("generator_answer")
        record["generator_answer"] = gen
        record["generator_confidence"] = out.get("generator_confidence")
        record["generator_correct"] = gen is not None and await asyncio.to_thread(
            answers_equal, gen, gold, cfg.task
        )
        record["selection"] = out.get("selection")
        record["trajectory"] = out.get("trajectory")
        # The whole search, for `rstar report --html`.
        record["tree"] = out.get("tree")
        record["verification"] = out.get("verification")
        # A degraded answer stays marked in the record (reports count them).
        record["budget_exhausted"] = out.get("budget_exhausted")
        record["discriminator_error"] = out.get("discriminator_error")
    if "outputs" in out:
        record["outputs"] = out["outputs"]
    return record


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds")


def _eval_config(args: argparse.Namespace) -> RStarConfig:
    from langgraph_rstar.endpoints import config_from_args

    if args.task is not None and args.task != args.dataset:
        raise EvalError(
            f"--task {args.task} conflicts with --dataset {args.dataset}; "
            "the dataset sets the task, drop --task"
        )
    args.task = args.dataset
    cfg = config_from_args(args)
    if args.method == "rstar" and not cfg.use_discriminator:
        raise EvalError(
            "--method rstar uses the discriminator; for the generator alone use "
            "--method rstar-generator"
        )
    if args.method == "rstar-generator":
        cfg = cfg.replace(use_discriminator=False)
    return cfg


def _check_same_run(
    run_dir: Path,
    settings: Mapping[str, Any],
    done: Mapping[str, Mapping[str, Any]],
    wanted: Mapping[str, Any],
) -> None:
    """Refuse to mix two experiments in one run directory: a resume must have the same method,
    dataset, data file (by content hash) and search settings (endpoints: see below)."""
    previous = dict(settings)
    for rec in done.values():  # settings.json may be missing; the records still tell
        previous.setdefault("method", rec.get("method"))
        previous.setdefault("dataset", rec.get("dataset"))
        break
    for key in ("method", "dataset", "sc_k", "shard"):
        if key in previous and previous[key] != wanted.get(key):
            _refuse(run_dir, f"{key}={previous[key]!r}, not {wanted.get(key)!r}")
    if "data_sha256" in previous and previous["data_sha256"] != wanted["data_sha256"]:
        _refuse(
            run_dir,
            f"another data file: {previous.get('data')!r} (sha256 "
            f"{str(previous['data_sha256'])[:12]}...), not {wanted['data']!r} (sha256 "
            f"{wanted['data_sha256'][:12]}...); its records were scored against those gold answers",
        )
    old_cfg, new_cfg = previous.get("config") or {}, wanted["config"]
    changed = sorted(k for k in old_cfg.keys() & new_cfg.keys() if old_cfg[k] != new_cfg[k])
    if changed:
        diffs = ", ".join(f"{k}: {old_cfg[k]!r} -> {new_cfg[k]!r}" for k in changed)
        _refuse(run_dir, f"other search settings ({diffs})")


def _check_same_endpoints(
    run_dir: Path, settings: Mapping[str, Any], identity: Mapping[str, Any]
) -> None:
    """Refuse to resume a run on other endpoints or models (URLs compared without credentials)."""
    old = settings.get("endpoints")
    if isinstance(old, Mapping) and identity:
        diffs = _diff(old, identity)
        if diffs:
            _refuse(run_dir, f"other endpoints ({diffs})")
    target = identity.get("target") or {}
    if not isinstance(old, Mapping) and "model" in settings and target.get("model"):
        if settings["model"] != target["model"]:  # a run from before endpoints were recorded
            _refuse(run_dir, f"model {settings['model']!r}, not {target['model']!r}")


def _diff(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> str:
    """``role.key: old -> new`` for every leaf that differs between two nested mappings
    (a ``None`` in ``new`` is not known yet and differs from nothing)."""
    out = []
    for key in sorted(old.keys() | new.keys()):
        a, b = old.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            sub = _diff(a, b, f"{prefix}{key}.")
            if sub:
                out.append(sub)
        elif b is not None and a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return ", ".join(out)


def _refuse(run_dir: Path, what: str) -> None:
    fresh = next(
        p for i in range(2, 10_000) if not (p := run_dir.with_name(f"{run_dir.name}-{i}")).exists()
    )
    raise EvalError(
        f"{str(run_dir)!r} holds a run with {what}. To resume it, rerun with the options it was "
        f"started with (see {run_dir / SETTINGS_FILE}); to start a new run, use another "
        f"directory, e.g. --out {fresh}"
    )


def _public_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options, for settings.json: no keys, URLs without credentials."""
    hidden = {"func", "api_key", "discriminator_api_key"}
    out = {k: v for k, v in vars(args).items() if k not in hidden}
    for key in ("base_url", "discriminator_base_url"):
        value = out.get(key)
        if value:  # one URL, or one per replica
            out[key] = (
                redact_url(value) if isinstance(value, str) else [redact_url(u) for u in value]
            )
    if isinstance(out.get("shard"), Shard):
        out["shard"] = str(out["shard"])  # as typed: "2/4"
    return out


class _Progress:
    """Live bar (done/total, accuracy so far, generated tokens, ETA); plain lines off a TTY."""

    def __init__(
        self,
        console: Console,
        total: int,
        done: Iterable[Mapping[str, Any]],
        label: str,
        *,
        enabled: bool,
    ) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.console = console
        self.enabled = enabled
        self.total = total
        finished = list(done)
        self.done = len(finished)
        self.correct = sum(1 for r in finished if r.get("correct") is True)
        self.errors = 0
        self.tokens = 0  # generated in this session
        self.live = enabled and console.is_terminal
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            disable=not self.live,
        )
        self.task = self.progress.add_task(
            label, total=total, completed=self.done, stats=self._stats()
        )

    def _stats(self) -> str:
        acc = f"{100 * self.correct / self.done:.1f}%" if self.done else "-"
        errors = f", [red]{self.errors} errors[/red]" if self.errors else ""
        return f"acc {acc} ({self.correct}/{self.done}), {self.tokens:,} gen tok{errors}"

    def __enter__(self) -> _Progress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)  # type: ignore[arg-type]

    def add(self, record: Mapping[str, Any]) -> None:
        self.done += 1
        self.correct += record.get("correct") is True
        self.errors += bool(record.get("error"))
        self.tokens += _usage_totals(record)["completion_tokens"]
        self.progress.update(self.task, advance=1, stats=self._stats())
        if self.enabled and not self.live:  # logs and pipes: one line per question
            mark = "error" if record.get("error") else ("ok" if record.get("correct") else "wrong")
            self.console.print(
                f"[{self.done}/{self.total}] {plain(record['id'])}: {mark} "
                f"(pred {record.get('prediction')!r}, gold {record.get('gold')!r}, "
                f"{record.get('wall_seconds', 0):.1f}s) {self._stats()}",
                markup=False,
                highlight=False,
            )


async def run_eval(
    args: argparse.Namespace, endpoints: Endpoints | None = None, *, console: Console | None = None
) -> int:
    """Run (or resume) one evaluation as described by the ``rstar eval`` options.

    Each finished question appends one record to ``RUN_DIR/results.jsonl``: ``id``, ``method``,
    ``dataset``, ``question``, ``gold``, ``prediction``, ``correct``, ``confidence``,
    ``candidates`` (rStar: ``{answer, rollout, confidence, reward}`` per candidate; sc/cot: the
    sampled answers), ``usage`` (``target`` / ``discriminator``: requests, prompt_tokens,
    completion_tokens), ``wall_seconds``, ``error`` (null, or the failure message), ``finished``;
    cot/sc add ``outputs`` (the raw solutions); rStar methods add ``generator_answer``,
    ``generator_confidence``, ``generator_correct``, ``selection``, ``trajectory``, ``tree``
    (the search tree: node id -> node, as in ``RStarResult.tree``), ``verification`` (the
    discriminator's checks, as in ``RStarResult.verification``), and ``budget_exhausted`` /
    ``discriminator_error`` (set when the answer is degraded).

    Args:
        args: Parsed ``rstar eval`` options.
        endpoints: Backends to use instead of opening them from ``args`` (the benchmark script
            shares one embedded server across methods this way).
        console: Where progress goes (default: stderr).

    Returns:
        0 when every selected question has a successful record, 1 when error records remain
        (rerun to retry them).

    Raises:
        EvalError: Bad input, a run directory that holds another experiment, or too many
            failures in a row (the endpoint is probably down).
    """
    from rich.console import Console

    from langgraph_rstar.endpoints import open_endpoints, requested_identity

    err = console or Console(stderr=True, soft_wrap=True)
    if args.limit is not None and args.limit < 1:
        raise EvalError("--limit must be >= 1")
    if args.concurrency < 1:
        raise EvalError("--concurrency must be >= 1")
    if args.sc_k < 1:
        raise EvalError("--sc-k must be >= 1")
    items = load_dataset(args.data, args.limit, dataset=args.dataset)
    shard: Shard | None = getattr(args, "shard", None)
    if shard is not None:
        total = len(items)
        items = shard.select(items)
        if not items:
            raise EvalError(
                f"shard {shard} selects none of the {total} questions of {args.data}; "
                "use fewer shards"
            )
    cfg = _eval_config(args)
    sc_k = args.sc_k if args.method == "sc" else None
    run_dir = Path(args.out)
    if run_dir.exists() and not run_dir.is_dir():
        raise EvalError(f"--out {str(run_dir)!r} is a file, not a directory")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # e.g. a parent is a regular file
        raise EvalError(f"--out {str(run_dir)!r}: cannot create it ({exc.strerror})") from None
    data_path = Path(args.data).resolve()

    with _run_lock(run_dir):
        log = ResultsLog(run_dir / RESULTS_FILE)
        settings = load_settings(run_dir)
        wanted = {
            "method": args.method,
            "dataset": args.dataset,
            "sc_k": sc_k,
            "config": cfg.to_dict(),
            "shard": shard.to_settings() if shard else None,
            "data": str(data_path),
            "data_sha256": _sha256(data_path),
        }
        # Check before repairing anything, so that a wrong --out never touches the file.
        peeked = _peek(log.path)
        _check_same_run(run_dir, settings, {r["id"]: r for r in peeked}, wanted)
        if endpoints is None:  # what the options say now; the servers are asked below
            _check_same_endpoints(run_dir, settings, requested_identity(args))
        usable = {str(r["id"]) for r in peeked if not r.get("error") and not record_problem(r)}
        quiet = getattr(args, "quiet", False)
        async with contextlib.AsyncExitStack() as stack:
            ends: Endpoints | None = endpoints
            if ends is None and any(it.id not in usable for it in items):
                status = None if quiet else lambda t: err.print(markup_safe(t))
                ends = await stack.enter_async_context(open_endpoints(args, status=status))
            if ends is not None:  # the endpoints are part of the experiment too
                _check_same_endpoints(run_dir, settings, ends.identity)
            done = log.open()
            try:
                if log.dropped_lines:
                    err.print(
                        f"[yellow]dropped {log.dropped_lines} torn or invalid line(s) from "
                        f"{markup_safe(log.path)}[/yellow]"
                    )
                ids = {it.id for it in items}
                todo = [it for it in items if it.id not in done]
                finished = [r for rid, r in done.items() if rid in ids]
                if not quiet:
                    retry = f", retrying {log.retried_errors} failed" if log.retried_errors else ""
                    part = f" (shard {shard})" if shard else ""
                    err.print(
                        f"[dim]{args.method} on {args.dataset}{part}: {len(items)} questions, "
                        f"{len(finished)} already done{retry}; results in "
                        f"{markup_safe(log.path)}[/dim]"
                    )
                if todo and ends is not None:
                    _write_settings(run_dir, settings, wanted, args, ends, items)
                    await _run_items(
                        todo, finished, len(items), args, cfg, sc_k, ends, log, err, quiet
                    )
            finally:
                log.close()

    selected = {it.id for it in items}
    records = [r for r in load_records(run_dir) if r["id"] in selected]
    s = summarize(records)
    if not getattr(args, "quiet", False):
        print(
            f"{args.method} on {args.dataset}: {s['correct']}/{s['n']} correct = "
            f"{100 * s['accuracy']:.1f}% (95% CI {100 * s['ci_low']:.1f}-"
            f"{100 * s['ci_high']:.1f}), {s['generated_tokens_per_question']:.0f} generated "
            f"tokens/question; {s['errors']} errors -> {run_dir / RESULTS_FILE}"
        )
    return 1 if s["errors"] else 0


def _write_settings(
    run_dir: Path,
    settings: Mapping[str, Any],
    wanted: Mapping[str, Any],
    args: argparse.Namespace,
    ends: Endpoints,
    items: Sequence[Item],
) -> None:
    from langgraph_rstar import __version__

    session = {
        "started": _now(),
        "endpoint": redact_url(ends.description),
        "questions": len(items),
        "options": _public_options(args),
    }
    new = {
        "method": wanted["method"],
        "dataset": wanted["dataset"],
        "sc_k": wanted["sc_k"],
        "shard": wanted["shard"],
        "limit": args.limit,
        "data": wanted["data"],
        "data_sha256": wanted["data_sha256"],
        "config": wanted["config"],
        "endpoints": ends.identity,
        "endpoint": redact_url(ends.description),
        "model": getattr(ends.target, "model", None),
        "started": settings.get("started", session["started"]),
        "package_version": __version__,
        "sessions": [*settings.get("sessions", []), session],
    }
    _atomic_write(run_dir / SETTINGS_FILE, json.dumps(new, indent=2).encode("utf-8") + b"\n")


async def _run_items(
    todo: Sequence[Item],
    finished: Sequence[Mapping[str, Any]],
    total: int,
    args: argparse.Namespace,
    cfg: RStarConfig,
    sc_k: int | None,
    ends: Endpoints,
    log: ResultsLog,
    err: Console,
    quiet: bool,
) -> None:
    from langgraph_rstar.endpoints import api_keys

    sem = asyncio.Semaphore(args.concurrency)
    urls = [args.base_url, getattr(args, "discriminator_base_url", None)]
    secrets = [
        *api_keys(args),
        *(
            secret
            for value in urls
            for url in ([value] if isinstance(value, str) else value or [])
            for secret in url_secrets(url)
        ),
    ]
    max_in_a_row = args.max_consecutive_errors
    in_a_row, last_error = 0, ""
    abort = asyncio.Event()
    label = f"{args.method}/{args.dataset}"

    with _Progress(err, total, finished, label, enabled=not quiet) as progress:

        async def one(item: Item) -> None:
            nonlocal in_a_row, last_error
            async with sem:
                if abort.is_set():
                    return
                record = await _evaluate_item(
                    item, args.method, args.dataset, ends, cfg, sc_k or 1, secrets
                )
            log.append(record)  # durable before it is counted anywhere
            progress.add(record)
            if record["error"]:
                in_a_row += 1
                last_error = record["error"]
                if max_in_a_row and in_a_row >= max_in_a_row:
                    abort.set()
            else:
                in_a_row = 0

        await asyncio.gather(*(one(it) for it in todo))
    if abort.is_set():
        raise EvalError(
            f"{in_a_row} questions in a row failed (last: {last_error}); "
            "stopped. Finished results are kept: fix the endpoint and rerun the same command."
        )
