"""Benchmark evaluation: ``rstar eval`` runs one method over a dataset, ``rstar report`` sums up.

Methods (all on the same backend):

* ``cot``: one greedy chain of thought (temperature 0) from the few-shot steps prompt.
* ``sc``: self-consistency, ``K`` samples at the config temperature in one request, majority vote.
* ``rstar-generator``: rStar's MCTS without the discriminator (prediction = generator@maj).
* ``rstar``: full rStar, generator plus discriminator (prediction = the final answer).

Run directory layout (``--out RUN_DIR``):

* ``results.jsonl``: one JSON record per finished question, appended, flushed and fsync'ed as
  each question finishes (see :func:`run_eval` for the fields).
* ``settings.json``: method, dataset, data file, effective config, endpoint, start time and
  one entry per session (each resume adds one).
* ``.lock``: an advisory lock so that two processes never write the same run.

Resume design: rerunning the same command skips every id that already has a successful record.
On start the results file is re-read line by line; a torn last line (the process was killed in
the middle of a write) or any other unparsable line is dropped and the file is rewritten
atomically (temp file, fsync, rename), so appends never glue onto a fragment. A question whose
solving raised (endpoint down, malformed reply, ...) is written as an *error record*
(``prediction`` null, ``correct`` false, ``error`` the message) so that reports show it; the
next run removes error records and retries those questions. Finished work is never redone or
lost; an rStar question interrupted mid-search restarts from scratch on the next run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as _dt
import hashlib
import json
import math
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    from rich.console import Console
    from rich.table import Table

    from langgraph_rstar.config import RStarConfig
    from langgraph_rstar.endpoints import Endpoints

__all__ = [
    "DATASETS",
    "METHODS",
    "EvalError",
    "Item",
    "RunReport",
    "accuracy_by_rollouts",
    "load_dataset",
    "load_records",
    "load_run",
    "load_settings",
    "register_cli",
    "report",
    "run_eval",
    "summarize",
    "wilson_interval",
    "write_plots",
]

DATASETS: tuple[str, ...] = ("gsm8k", "gsmhard", "math500", "svamp", "strategyqa")
METHODS: tuple[str, ...] = ("cot", "sc", "rstar-generator", "rstar")
RSTAR_METHODS: tuple[str, ...] = ("rstar-generator", "rstar")

RESULTS_FILE = "results.jsonl"
SETTINGS_FILE = "settings.json"
LOCK_FILE = ".lock"
PLOT_ROLLOUTS = "accuracy_vs_rollouts.png"
PLOT_TOKENS = "accuracy_vs_tokens.png"

_ROLES = ("target", "discriminator")
_COUNTERS = ("requests", "prompt_tokens", "completion_tokens")


class EvalError(ValueError):
    """Bad input or setup for ``rstar eval`` / ``rstar report`` (the CLI exits with code 2)."""


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Item:
    """One evaluation question.

    Attributes:
        id: Stable id, unique within the file.
        question: The problem text given to the model.
        gold: The gold answer; only read after the prediction is made, to score it.
    """

    id: str
    question: str
    gold: str


def load_dataset(path: str | os.PathLike[str], limit: int | None = None) -> list[Item]:
    """Read a JSONL data file (``id``, ``question``, ``answer`` per line; extra fields ignored).

    Args:
        path: The ``.jsonl`` file.
        limit: Keep only the first ``limit`` questions (file order).

    Returns:
        The questions in file order.

    Raises:
        EvalError: The file is missing or empty, a line is not a JSON object, lacks a field,
            has an empty question, or repeats an id.
    """
    file = Path(path)
    if not file.is_file():
        raise EvalError(f"data file {str(file)!r} not found")
    items: list[Item] = []
    seen: set[str] = set()
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalError(f"cannot read data file {str(file)!r}: {exc}") from exc
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalError(f"{file}:{lineno}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise EvalError(f"{file}:{lineno}: expected a JSON object with id, question, answer")
        missing = [k for k in ("id", "question", "answer") if row.get(k) in (None, "")]
        if missing:
            raise EvalError(
                f"{file}:{lineno}: missing field(s) {', '.join(missing)} "
                "(every line needs id, question and answer)"
            )
        if not isinstance(row["question"], str) or not row["question"].strip():
            raise EvalError(f"{file}:{lineno}: 'question' must be a non-empty string")
        item_id = str(row["id"])
        if item_id in seen:
            raise EvalError(f"{file}:{lineno}: duplicate id {item_id!r}")
        seen.add(item_id)
        items.append(Item(item_id, row["question"], str(row["answer"])))
        if limit is not None and len(items) >= limit:
            break
    if not items:
        raise EvalError(f"data file {str(file)!r} has no questions")
    return items


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# The results log (append-only, fsync'ed, crash-tolerant)
# --------------------------------------------------------------------------------------------


def _parse_lines(data: bytes) -> tuple[list[dict[str, Any]], int]:
    """Parse JSONL bytes; returns the valid records and the number of dropped lines."""
    records: list[dict[str, Any]] = []
    bad = 0
    for raw in data.split(b"\n"):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            bad += 1  # a torn write: the process died mid-line
            continue
        if isinstance(rec, dict) and "id" in rec:
            records.append(rec)
        else:
            bad += 1
    return records, bad


def _dump(record: Mapping[str, Any]) -> bytes:
    return (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")


def _fsync_dir(directory: Path) -> None:
    # Makes a rename durable; not every platform lets you open a directory.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class ResultsLog:
    """``RUN_DIR/results.jsonl``: repaired on open, then one fsync'ed ``write`` per record.

    Args:
        path: The results file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self.dropped_lines = 0
        self.retried_errors = 0

    def open(self) -> dict[str, dict[str, Any]]:
        """Repair the file if needed and open it for appending.

        Returns:
            The successful records by id (error records are removed: they will be retried).
        """
        data = self.path.read_bytes() if self.path.exists() else b""
        records, bad = _parse_lines(data)
        done: dict[str, dict[str, Any]] = {}
        errors: set[str] = set()
        duplicates = 0
        for rec in records:
            rid = str(rec["id"])
            if rec.get("error"):
                errors.add(rid)
            elif rid in done:
                duplicates += 1
            else:
                done[rid] = rec
        self.dropped_lines = bad
        self.retried_errors = len(errors - done.keys())
        torn_end = bool(data) and not data.endswith(b"\n")
        dirty = bad or duplicates or len(done) != len(records) or torn_end
        if dirty:
            # Rewrite rather than append: a torn fragment would corrupt the next record.
            _atomic_write(self.path, b"".join(_dump(r) for r in done.values()))
        self.path.with_name(self.path.name + ".tmp").unlink(missing_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        return done

    def append(self, record: Mapping[str, Any]) -> None:
        """Append one record durably (a single ``write`` of the whole line, then ``fsync``)."""
        if self._fd is None:
            raise RuntimeError("ResultsLog.append() before open()")
        data = _dump(record)
        written = 0
        while written < len(data):  # os.write may be partial on some file systems
            written += os.write(self._fd, data[written:])
        os.fsync(self._fd)

    def close(self) -> None:
        """Close the file (safe to call twice)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@contextlib.contextmanager
def _run_lock(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on the run directory (released even on SIGKILL)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no locking
        yield
        return
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise EvalError(
                f"another `rstar eval` is writing to {str(run_dir)!r}; wait for it to finish"
            ) from None
        yield
    finally:
        os.close(fd)


def load_records(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a run's records, tolerating a torn last line.

    Args:
        run_dir: The run directory (or its ``results.jsonl``).

    Returns:
        One record per id, in file order; if an id has several, the last successful one wins
        (an error record only when there is nothing better).

    Raises:
        EvalError: There is no results file.
    """
    path = Path(run_dir)
    if path.is_dir():
        path = path / RESULTS_FILE
    if not path.is_file():
        raise EvalError(f"no results in {str(run_dir)!r} (missing {RESULTS_FILE})")
    records, _ = _parse_lines(path.read_bytes())
    best: dict[str, dict[str, Any]] = {}
    for rec in records:
        rid = str(rec["id"])
        if rid not in best or not rec.get("error") or best[rid].get("error"):
            best[rid] = rec
    return list(best.values())


def load_settings(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """``RUN_DIR/settings.json`` as a dict (empty if the file is missing or unreadable)."""
    try:
        data = json.loads((Path(run_dir) / SETTINGS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# --------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``k / n``.

    Args:
        k: Successes.
        n: Trials.
        z: Normal quantile (1.96 for 95 %).

    Returns:
        ``(low, high)`` in [0, 1]; ``(0.0, 1.0)`` when ``n == 0`` (nothing is known).
    """
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    p = k / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    margin = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, center - margin), min(1.0, center + margin)


def _usage_totals(record: Mapping[str, Any]) -> dict[str, int]:
    usage = record.get("usage") or {}
    totals = dict.fromkeys(_COUNTERS, 0)
    for role in _ROLES:
        counters = usage.get(role) or {}
        for key in _COUNTERS:
            totals[key] += int(counters.get(key) or 0)
    return totals


def summarize(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Accuracy and cost of one run.

    Error records count as answered wrongly (they are in ``n``); rerunning the eval retries them.

    Args:
        records: The run's records (see :func:`load_records`).

    Returns:
        ``method``, ``dataset``, ``n``, ``correct``, ``errors``, ``accuracy``, ``ci_low``,
        ``ci_high`` (95 % Wilson), ``generator_maj_accuracy`` (rStar runs: accuracy of the
        generator's majority answer, else ``None``), and per question means
        ``requests_per_question`` (target + discriminator), ``prompt_tokens_per_question``,
        ``generated_tokens_per_question`` and ``wall_seconds_per_question``, plus the totals
        ``generated_tokens`` and ``wall_seconds``.
    """
    n = len(records)
    correct = sum(1 for r in records if r.get("correct") is True)
    errors = sum(1 for r in records if r.get("error"))
    low, high = wilson_interval(correct, n)
    totals = dict.fromkeys(_COUNTERS, 0)
    for rec in records:
        for key, value in _usage_totals(rec).items():
            totals[key] += value
    wall = sum(float(r.get("wall_seconds") or 0.0) for r in records)
    methods = {r.get("method") for r in records}
    datasets = {r.get("dataset") for r in records}
    gen_maj = None
    if records and methods <= set(RSTAR_METHODS):
        gen_maj = sum(1 for r in records if r.get("generator_correct") is True) / n

    def per_q(value: float) -> float:
        return value / n if n else 0.0

    return {
        "method": next(iter(methods)) if len(methods) == 1 else ",".join(sorted(map(str, methods))),
        "dataset": next(iter(datasets))
        if len(datasets) == 1
        else ",".join(sorted(map(str, datasets))),
        "n": n,
        "correct": correct,
        "errors": errors,
        "accuracy": per_q(correct),
        "ci_low": low,
        "ci_high": high,
        "generator_maj_accuracy": gen_maj,
        "requests_per_question": per_q(totals["requests"]),
        "prompt_tokens_per_question": per_q(totals["prompt_tokens"]),
        "generated_tokens_per_question": per_q(totals["completion_tokens"]),
        "wall_seconds_per_question": per_q(wall),
        "generated_tokens": totals["completion_tokens"],
        "wall_seconds": wall,
    }


def accuracy_by_rollouts(
    records: Sequence[Mapping[str, Any]], task: str, max_rollouts: int | None = None
) -> list[tuple[int, float]]:
    """generator@maj accuracy if the search had stopped after ``k`` rollouts (paper, Fig. 5).

    For each ``k`` the answer is the majority vote over the candidates with ``rollout < k``.
    Questions without a candidate by then (and error records) count as wrong.

    Args:
        records: Records of an ``rstar`` or ``rstar-generator`` run (with ``candidates``).
        task: Task name for answer equivalence (e.g. ``"gsm8k"``).
        max_rollouts: The run's ``num_rollouts``; default: the last rollout with a candidate.

    Returns:
        ``[(k, accuracy)]`` for ``k = 1 .. max_rollouts``; empty if no record has candidates.
    """
    from langgraph_rstar.answers import answers_equal
    from langgraph_rstar.search import generator_vote

    if not records:
        return []
    rollouts = [
        int(c["rollout"])
        for r in records
        for c in (r.get("candidates") or [])
        if isinstance(c, Mapping) and c.get("rollout") is not None
    ]
    if not rollouts:
        return []
    last = max(max(rollouts) + 1, max_rollouts or 0)
    out: list[tuple[int, float]] = []
    for k in range(1, last + 1):
        correct = 0
        for rec in records:
            cands = [c for c in (rec.get("candidates") or []) if isinstance(c, Mapping)]
            vote = generator_vote(cands, task, max_rollout=k)  # type: ignore[arg-type]
            if vote.answer is not None and answers_equal(vote.answer, rec.get("gold"), task):
                correct += 1
        out.append((k, correct / len(records)))
    return out


# --------------------------------------------------------------------------------------------
# Methods
# --------------------------------------------------------------------------------------------


def _empty_usage() -> dict[str, dict[str, int]]:
    return {role: dict.fromkeys(_COUNTERS, 0) for role in _ROLES}


def _usage_from(raw: Mapping[str, Any] | None) -> dict[str, dict[str, int]]:
    usage = _empty_usage()
    for role in _ROLES:
        for key in _COUNTERS:
            usage[role][key] = int(((raw or {}).get(role) or {}).get(key) or 0)
    return usage


async def _predict_samples(
    question: str, ends: Endpoints, cfg: RStarConfig, *, n: int, greedy: bool
) -> dict[str, Any]:
    """cot (one greedy sample) and sc (``n`` samples in one request, majority vote)."""
    from langgraph_rstar.answers import majority_vote

    pack = cfg.prompt_pack()
    gen = await ends.target.generate(
        [pack.solve_prompt(question)],
        n=n,
        max_tokens=cfg.max_tokens_cot,
        stop=list(pack.stops["solve"]),
        temperature=0.0 if greedy else cfg.temperature,
        top_p=cfg.top_p,
        top_k=cfg.top_k,
        repetition_penalty=cfg.repetition_penalty,
    )
    texts = [c.text for c in gen.choices[0]]
    # Read like rStar's samples: labels stripped, an answer must be stated.
    answers = [pack.answer(t, cfg.task) for t in texts]
    # Symbolic comparisons (math500) can take a while: keep them off the event loop.
    vote = await asyncio.to_thread(majority_vote, answers, cfg.task)
    return {
        "prediction": vote.answer,
        "confidence": vote.confidence,
        "candidates": answers,
        "outputs": texts,
        "usage": {"target": gen.usage.as_dict(), "discriminator": dict.fromkeys(_COUNTERS, 0)},
    }


async def _predict_rstar(
    question: str, ends: Endpoints, cfg: RStarConfig, *, discriminator: bool
) -> dict[str, Any]:
    from langgraph_rstar.api import RStarError, asolve

    try:
        result = await asolve(
            question,
            target=ends.target,
            discriminator=ends.discriminator,
            config=cfg.replace(use_discriminator=discriminator),
        )
    except RStarError as exc:
        usage = exc.partial.usage if exc.partial is not None else None
        raise _QuestionFailed(str(exc), _usage_from(usage)) from exc
    candidates = [
        {
            "answer": c.get("answer"),
            "rollout": c.get("rollout"),
            "confidence": c.get("confidence"),
            "reward": c.get("reward"),
        }
        for c in result.candidates
    ]
    return {
        "prediction": result.answer if discriminator else result.generator_answer,
        "confidence": result.confidence if discriminator else result.generator_confidence,
        "candidates": candidates,
        "generator_answer": result.generator_answer,
        "generator_confidence": result.generator_confidence,
        "selection": result.selection if discriminator else "generator_maj",
        "trajectory": result.trajectory,
        "usage": _usage_from(result.usage),
    }


class _QuestionFailed(Exception):
    """A question failed after spending some requests (kept for the error record)."""

    def __init__(self, message: str, usage: dict[str, dict[str, int]]) -> None:
        super().__init__(message)
        self.usage = usage


async def _predict(
    method: str, question: str, ends: Endpoints, cfg: RStarConfig, sc_k: int
) -> dict[str, Any]:
    if method == "cot":
        return await _predict_samples(question, ends, cfg, n=1, greedy=True)
    if method == "sc":
        return await _predict_samples(question, ends, cfg, n=sc_k, greedy=False)
    return await _predict_rstar(question, ends, cfg, discriminator=method == "rstar")


async def _evaluate_item(
    item: Item, method: str, dataset: str, ends: Endpoints, cfg: RStarConfig, sc_k: int
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
        error = f"{type(exc).__name__}: {exc}"
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
    if "outputs" in out:
        record["outputs"] = out["outputs"]
    return record


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds")


# --------------------------------------------------------------------------------------------
# rstar eval
# --------------------------------------------------------------------------------------------


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
    """Refuse to mix two different experiments in one run directory."""
    previous = dict(settings)
    for rec in done.values():  # settings.json may be missing; the records still tell
        previous.setdefault("method", rec.get("method"))
        previous.setdefault("dataset", rec.get("dataset"))
        break
    for key in ("method", "dataset", "sc_k"):
        if key in previous and previous[key] != wanted.get(key):
            raise EvalError(
                f"{str(run_dir)!r} holds a run with {key}={previous[key]!r}, not "
                f"{wanted.get(key)!r}; use another --out directory"
            )
    old_cfg, new_cfg = previous.get("config") or {}, wanted["config"]
    changed = sorted(k for k in old_cfg.keys() & new_cfg.keys() if old_cfg[k] != new_cfg[k])
    if changed:
        diffs = ", ".join(f"{k}: {old_cfg[k]!r} -> {new_cfg[k]!r}" for k in changed)
        raise EvalError(
            f"{str(run_dir)!r} was run with other search settings ({diffs}); use the same "
            "options to resume, or another --out directory"
        )


def _public_options(args: argparse.Namespace) -> dict[str, Any]:
    hidden = {"func", "api_key", "discriminator_api_key"}
    return {k: v for k, v in vars(args).items() if k not in hidden}


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
                f"[{self.done}/{self.total}] {record['id']}: {mark} "
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
    ``generator_confidence``, ``generator_correct``, ``selection`` and ``trajectory``.

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

    from langgraph_rstar.endpoints import open_endpoints

    err = console or Console(stderr=True, soft_wrap=True)
    if args.limit is not None and args.limit < 1:
        raise EvalError("--limit must be >= 1")
    if args.concurrency < 1:
        raise EvalError("--concurrency must be >= 1")
    if args.sc_k < 1:
        raise EvalError("--sc-k must be >= 1")
    items = load_dataset(args.data, args.limit)
    cfg = _eval_config(args)
    sc_k = args.sc_k if args.method == "sc" else None
    run_dir = Path(args.out)
    if run_dir.exists() and not run_dir.is_dir():
        raise EvalError(f"--out {str(run_dir)!r} is a file, not a directory")
    run_dir.mkdir(parents=True, exist_ok=True)

    with _run_lock(run_dir):
        log = ResultsLog(run_dir / RESULTS_FILE)
        settings = load_settings(run_dir)
        wanted = {
            "method": args.method,
            "dataset": args.dataset,
            "sc_k": sc_k,
            "config": cfg.to_dict(),
        }
        # Check before repairing anything, so that a wrong --out never touches the file.
        _check_same_run(run_dir, settings, {r["id"]: r for r in _peek(log.path)}, wanted)
        done = log.open()
        try:
            if log.dropped_lines:
                err.print(
                    f"[yellow]dropped {log.dropped_lines} torn line(s) from {log.path}[/yellow]"
                )
            ids = {it.id for it in items}
            todo = [it for it in items if it.id not in done]
            finished = [r for rid, r in done.items() if rid in ids]
            quiet = getattr(args, "quiet", False)
            if not quiet:
                retry = f", retrying {log.retried_errors} failed" if log.retried_errors else ""
                err.print(
                    f"[dim]{args.method} on {args.dataset}: {len(items)} questions, "
                    f"{len(finished)} already done{retry}; results in {log.path}[/dim]"
                )
            if todo:
                async with contextlib.AsyncExitStack() as stack:
                    ends = endpoints or await stack.enter_async_context(
                        open_endpoints(args, status=None if quiet else err.print)
                    )
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


def _peek(path: Path) -> list[dict[str, Any]]:
    return _parse_lines(path.read_bytes())[0] if path.is_file() else []


def _write_settings(
    run_dir: Path,
    settings: Mapping[str, Any],
    wanted: Mapping[str, Any],
    args: argparse.Namespace,
    ends: Endpoints,
    items: Sequence[Item],
) -> None:
    from langgraph_rstar import __version__

    data_path = Path(args.data).resolve()
    session = {
        "started": _now(),
        "endpoint": ends.description,
        "questions": len(items),
        "options": _public_options(args),
    }
    new = {
        "method": wanted["method"],
        "dataset": wanted["dataset"],
        "sc_k": wanted["sc_k"],
        "data": str(data_path),
        "data_sha256": _sha256(data_path),
        "config": wanted["config"],
        "endpoint": ends.description,
        "model": getattr(args, "model", None),
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
    sem = asyncio.Semaphore(args.concurrency)
    max_in_a_row = args.max_consecutive_errors
    state = {"in_a_row": 0, "last_error": ""}
    abort = asyncio.Event()
    label = f"{args.method}/{args.dataset}"

    with _Progress(err, total, finished, label, enabled=not quiet) as progress:

        async def one(item: Item) -> None:
            async with sem:
                if abort.is_set():
                    return
                record = await _evaluate_item(item, args.method, args.dataset, ends, cfg, sc_k or 1)
            log.append(record)  # durable before it is counted anywhere
            progress.add(record)
            if record["error"]:
                state["in_a_row"] += 1
                state["last_error"] = record["error"]
                if max_in_a_row and state["in_a_row"] >= max_in_a_row:
                    abort.set()
            else:
                state["in_a_row"] = 0

        await asyncio.gather(*(one(it) for it in todo))
    if abort.is_set():
        raise EvalError(
            f"{state['in_a_row']} questions in a row failed (last: {state['last_error']}); "
            "stopped. Finished results are kept: fix the endpoint and rerun the same command."
        )


def _eval_command(args: argparse.Namespace) -> int:
    return asyncio.run(run_eval(args))


# --------------------------------------------------------------------------------------------
# rstar report
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class RunReport:
    """One run directory, loaded for reporting.

    Attributes:
        path: The run directory.
        settings: Its ``settings.json`` (possibly empty).
        records: Its records (see :func:`load_records`).
        summary: :func:`summarize` of the records.
        label: Short name for tables and plot legends.
    """

    path: Path
    settings: dict[str, Any]
    records: list[dict[str, Any]]
    summary: dict[str, Any]
    label: str = ""

    @property
    def method(self) -> str:
        return str(self.settings.get("method") or self.summary["method"])

    @property
    def task(self) -> str:
        return str(self.settings.get("dataset") or self.summary["dataset"])


def load_run(run_dir: str | os.PathLike[str]) -> RunReport:
    """Load a run directory (records, settings and summary).

    Raises:
        EvalError: The directory or its results are missing.
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise EvalError(f"run directory {str(path)!r} not found")
    records = load_records(path)
    run = RunReport(path, load_settings(path), records, summarize(records))
    run.label = run.method
    return run


def _label_runs(runs: Sequence[RunReport]) -> None:
    """Method names as labels; add the dataset or directory only where needed to tell apart."""
    datasets = {r.task for r in runs}
    for run in runs:
        run.label = run.method + (f" · {run.task}" if len(datasets) > 1 else "")
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.label] = counts.get(run.label, 0) + 1
    for run in runs:
        if counts[run.label] > 1:
            run.label += f" ({run.path.name})"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def render_table(runs: Sequence[RunReport]) -> Table:
    """A rich table with one row per run."""
    from rich.table import Table

    table = Table(title="rStar evaluation")
    for name, justify in (
        ("run", "left"),
        ("method", "left"),
        ("dataset", "left"),
        ("n", "right"),
        ("acc %", "right"),
        ("95% CI", "right"),
        ("gen@maj %", "right"),
        ("errors", "right"),
        ("req/q", "right"),
        ("gen tok/q", "right"),
        ("wall s/q", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for run in runs:
        s = run.summary
        table.add_row(
            run.path.name,
            run.method,
            run.task,
            str(s["n"]),
            _pct(s["accuracy"]),
            f"{_pct(s['ci_low'])}-{_pct(s['ci_high'])}",
            _pct(s["generator_maj_accuracy"]),
            str(s["errors"]),
            f"{s['requests_per_question']:.1f}",
            f"{s['generated_tokens_per_question']:.0f}",
            f"{s['wall_seconds_per_question']:.1f}",
        )
    return table


def write_plots(
    runs: Sequence[RunReport], plots_dir: str | os.PathLike[str], *, prefix: str = ""
) -> dict[str, Path]:
    """Write the two report plots as PNG (matplotlib, Agg canvas; no GUI needed).

    * ``accuracy_vs_rollouts``: generator@maj accuracy after ``k`` rollouts for every rStar run
      (:func:`accuracy_by_rollouts`), the final rStar accuracy as a marker, and the cot / sc
      accuracies as horizontal reference lines.
    * ``accuracy_vs_tokens``: accuracy (with its 95 % interval) against mean generated tokens
      per question, one point per run, log x-axis.

    Args:
        runs: Loaded runs (see :func:`load_run`).
        plots_dir: Output directory (created if needed).
        prefix: Prepended to both file names.

    Returns:
        ``{"rollouts": path, "tokens": path}``.

    Raises:
        EvalError: matplotlib is not installed (``pip install 'langgraph-rstar[eval]'``).
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        raise EvalError("plots need matplotlib: pip install 'langgraph-rstar[eval]'") from None
    out = Path(plots_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"rollouts": out / f"{prefix}{PLOT_ROLLOUTS}", "tokens": out / f"{prefix}{PLOT_TOKENS}"}
    datasets = ", ".join(sorted({r.task for r in runs}))

    # (a) accuracy vs number of rollouts (the paper's Fig. 5 style).
    fig = Figure(figsize=(7, 4.5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    plotted = False
    for run in runs:
        if run.method not in RSTAR_METHODS:
            continue
        configured = (run.settings.get("config") or {}).get("num_rollouts")
        curve = accuracy_by_rollouts(run.records, run.task, configured)
        if not curve:
            continue
        ks, accs = zip(*curve, strict=True)
        line = ax.plot(ks, [100 * a for a in accs], marker="o", label=f"{run.label}: generator@maj")
        if run.method == "rstar":
            ax.plot(
                [ks[-1]],
                [100 * run.summary["accuracy"]],
                marker="*",
                markersize=14,
                linestyle="none",
                color=line[0].get_color(),
                label=f"{run.label}: with discriminator",
            )
        plotted = True
    for run in runs:
        if run.method in ("cot", "sc"):
            ax.axhline(
                100 * run.summary["accuracy"],
                linestyle="--",
                linewidth=1,
                color="gray" if run.method == "cot" else "black",
                label=run.label,
            )
    if not plotted:
        ax.text(
            0.5,
            0.5,
            "no rStar runs with candidates",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(-3, 103)
    ax.set_xlabel("number of rollouts")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"Accuracy vs rollouts ({datasets})")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(paths["rollouts"])

    # (b) accuracy vs cost.
    fig = Figure(figsize=(7, 4.5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for run in runs:
        s = run.summary
        x = max(1.0, s["generated_tokens_per_question"])  # log axis: keep zero-cost runs visible
        y = 100 * s["accuracy"]
        ax.errorbar(
            [x],
            [y],
            yerr=[[y - 100 * s["ci_low"]], [100 * s["ci_high"] - y]],
            fmt="o",
            capsize=4,
            label=run.label,
        )
    ax.set_xscale("log")
    ax.margins(x=0.15)
    ax.set_ylim(-3, 103)
    if runs:
        ax.legend(fontsize=8, loc="lower right")
    ax.set_xlabel("generated tokens per question (log)")
    ax.set_ylabel("accuracy (%, 95% Wilson interval)")
    ax.set_title(f"Accuracy vs generated tokens ({datasets})")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(paths["tokens"])
    return paths


def report(
    run_dirs: Sequence[str | os.PathLike[str]],
    plots_dir: str | os.PathLike[str] | None = None,
    *,
    console: Console | None = None,
    as_json: bool = False,
) -> list[RunReport]:
    """Print the table for some runs and write the plots.

    Args:
        run_dirs: Run directories.
        plots_dir: Where the PNGs go; default: the run directory if there is one, else the
            runs' common parent directory.
        console: Where the table goes (default: stdout).
        as_json: Print the summaries as JSON instead of a table.

    Returns:
        The loaded runs.
    """
    from rich.console import Console

    if not run_dirs:
        raise EvalError("give at least one run directory")
    runs = [load_run(d) for d in run_dirs]
    _label_runs(runs)
    out = console or Console()
    if not out.is_terminal:
        out.width = max(out.width, 140)  # pipes and logs: do not squeeze the table to 80 columns
    if as_json:
        print(json.dumps([{"run": str(r.path), **r.summary} for r in runs], indent=2))
    else:
        out.print(render_table(runs))
    if plots_dir is None:
        plots_dir = (
            runs[0].path
            if len(runs) == 1
            else Path(os.path.commonpath([str(r.path.resolve()) for r in runs]))
        )
    paths = write_plots(runs, plots_dir)
    if not as_json:
        for path in paths.values():
            out.print(f"plot: {path}")
    return runs


def _report_command(args: argparse.Namespace) -> int:
    report(args.run_dirs, args.plots_dir, as_json=args.json)
    return 0


# --------------------------------------------------------------------------------------------
# CLI wiring
# --------------------------------------------------------------------------------------------


def register_cli(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
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
        metavar="FILE.jsonl",
        help="JSONL with id, question, answer per line",
    )
    p.add_argument("--method", required=True, choices=METHODS)
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N questions")
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

    r = subparsers.add_parser("report", help="summarise eval runs: table and plots")
    r.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    r.add_argument(
        "--plots-dir",
        metavar="DIR",
        help="where the PNGs go (default: the run dir, or the runs' common parent)",
    )
    r.add_argument("--json", action="store_true", help="print the summaries as JSON")
    r.set_defaults(func=_report_command)
