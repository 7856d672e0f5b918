"""A run's records on disk: the append-only results log, settings, the run lock.

``RUN_DIR/results.jsonl`` is appended, flushed and fsync'ed one record at a time; on open a torn
last line or any other unparsable line is dropped and the file is rewritten atomically (temp file,
fsync, rename), so appends never glue onto a fragment. Error records are removed on open so that
their questions are retried.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pydantic
from pydantic import NonNegativeInt

from langgraph_rstar.eval.errors import EvalError

__all__ = [
    "LOCK_FILE",
    "RESULTS_FILE",
    "SETTINGS_FILE",
    "ResultsLog",
    "load_records",
    "load_settings",
    "read_records",
    "record_problem",
]

RESULTS_FILE = "results.jsonl"
SETTINGS_FILE = "settings.json"
LOCK_FILE = ".lock"

# Usage in a record: these counters for each of these roles.
_ROLES = ("target", "discriminator")
_COUNTERS = ("requests", "prompt_tokens", "completion_tokens")


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
            The successful records by id (error records and records with wrong-typed fields
            are removed: their questions will be asked again).
        """
        data = self.path.read_bytes() if self.path.exists() else b""
        records, bad = _parse_lines(data)
        usable = [r for r in records if record_problem(r) is None]  # wrong types: redo those
        bad += len(records) - len(usable)
        records = usable
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


class _Usage(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="allow", strict=True)
    requests: NonNegativeInt = 0
    prompt_tokens: NonNegativeInt = 0
    completion_tokens: NonNegativeInt = 0


class _Candidate(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="allow", strict=True, allow_inf_nan=False)
    answer: str | None = None
    rollout: NonNegativeInt | None = None
    node_id: str | None = None
    steps: list[str] | None = None
    confidence: float | None = None
    agree: NonNegativeInt | None = None
    samples: NonNegativeInt | None = None
    path_values: list[float] | None = None
    reward: float | None = None


class _Check(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="allow", strict=True)
    node_id: str
    answer: str
    answers: list[str | None]
    agreements: NonNegativeInt
    consistent: bool


class _Verification(pydantic.BaseModel):
    """What ``rstar report --rescore`` reads of the discriminator's work."""

    model_config = pydantic.ConfigDict(extra="allow", strict=True)
    skipped: bool = False
    reason: str = ""
    checks: list[_Check] = []


class _Record(pydantic.BaseModel):
    """The fields a report reads, with their types (other fields are kept as they are)."""

    model_config = pydantic.ConfigDict(extra="allow", strict=True, allow_inf_nan=False)
    id: str | int
    method: str | None = None
    dataset: str | None = None
    prediction: str | None = None
    correct: bool = False
    generator_correct: bool | None = None
    error: str | None = None
    usage: dict[str, _Usage] | None = None
    gold: str | None = None
    wall_seconds: pydantic.NonNegativeFloat | None = None
    candidates: list[_Candidate | str | None] | None = None
    verification: _Verification | None = None
    budget_exhausted: str | None = None
    discriminator_error: str | None = None


def record_problem(record: Mapping[str, Any]) -> str | None:
    """What is wrong with a record's fields (``None`` when a report can use it)."""
    try:
        _Record.model_validate(record)
    except pydantic.ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = ".".join(map(str, err["loc"])) or "record"
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        return f"{where}: {err['msg']}, got {err.get('input')!r:.60}{more}"
    return None


def read_records(
    run_dir: str | os.PathLike[str],
) -> tuple[list[dict[str, Any]], list[str]]:
    """A run's usable records (as :func:`load_records`) and what was wrong with the others.

    Returns:
        The records, and one problem per line that is not a usable record (``"line 3: not
        JSON"``, ``"line 7 (id 'q2'): usage.target.requests: Input should be a valid
        integer, got 'many'"``).

    Raises:
        EvalError: There is no results file.
    """
    path = Path(run_dir)
    if path.is_dir():
        path = path / RESULTS_FILE
    if not path.is_file():
        raise EvalError(f"no results in {str(run_dir)!r} (missing {RESULTS_FILE})")
    records: list[dict[str, Any]] = []
    problems: list[str] = []
    lines = path.read_bytes().split(b"\n")
    for lineno, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            torn = lineno == len(lines)  # a torn last line: the writer was killed mid-write
            problems.append(f"line {lineno}: {'torn last line' if torn else 'not JSON'}")
            continue
        if not isinstance(rec, dict) or "id" not in rec:
            problems.append(f"line {lineno}: not a record (a JSON object with an 'id')")
            continue
        problem = record_problem(rec)
        if problem is not None:
            problems.append(f"line {lineno} (id {rec['id']!r:.40}): {problem}")
            continue
        records.append(rec)
    return _best_per_id(records), problems


def load_records(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a run's records, tolerating a torn last line and skipping unusable ones.

    Args:
        run_dir: The run directory (or its ``results.jsonl``).

    Returns:
        One record per id, in file order; if an id has several, the last successful one wins
        (an error record only when there is nothing better). Lines that are not records with
        the right field types are left out (:func:`read_records` says which and why).

    Raises:
        EvalError: There is no results file.
    """
    return read_records(run_dir)[0]


def _best_per_id(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
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


def _peek(path: Path) -> list[dict[str, Any]]:
    return _parse_lines(path.read_bytes())[0] if path.is_file() else []


def _usage_totals(record: Mapping[str, Any]) -> dict[str, int]:
    usage = record.get("usage") or {}
    totals = dict.fromkeys(_COUNTERS, 0)
    for role in _ROLES:
        counters = usage.get(role) or {}
        for key in _COUNTERS:
            totals[key] += int(counters.get(key) or 0)
    return totals
