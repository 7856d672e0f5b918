"""``rstar report``: load run directories, print the summary table, write the plots."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langgraph_rstar.eval.errors import EvalError
from langgraph_rstar.eval.plots import write_plots
from langgraph_rstar.eval.records import RESULTS_FILE, load_settings, read_records
from langgraph_rstar.eval.scoring import summarize
from langgraph_rstar.eval.shards import merge_shards
from langgraph_rstar.terminal import markup_safe, plain

if TYPE_CHECKING:  # pragma: no cover - typing only
    from rich.console import Console
    from rich.table import Table

__all__ = ["RunReport", "load_run", "render_rescore", "render_table", "report", "write_html"]


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
    problems: list[str] = dataclasses.field(default_factory=list)  # lines left out, and why

    @property
    def method(self) -> str:
        return str(self.settings.get("method") or self.summary["method"])

    @property
    def task(self) -> str:
        return str(self.settings.get("dataset") or self.summary["dataset"])


def load_run(run_dir: str | os.PathLike[str]) -> RunReport:
    """Load a run directory (records, settings and summary).

    Lines that are not usable records are left out and listed in ``problems`` (the summary
    counts them as ``skipped_records``).

    Raises:
        EvalError: The directory or its results are missing, or not one line of the results is
            a usable record (a report of n = 0 would hide that).
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise EvalError(f"run directory {str(path)!r} not found")
    records, problems = read_records(path)
    if not records:
        detail = f": {'; '.join(problems[:3])}" if problems else ""
        raise EvalError(
            f"no usable records in {str(path / RESULTS_FILE)!r} "
            f"({len(problems)} unusable line(s){detail})"
        )
    summary = {**summarize(records), "skipped_records": len(problems)}
    run = RunReport(path, load_settings(path), records, summary, problems=problems)
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


def _json_row(run: RunReport) -> dict[str, Any]:
    row = {"run": str(run.path), **run.summary, "problems": run.problems}
    if run.settings.get("merged_shards"):
        row["shards"] = run.settings["merged_shards"]
    return row


def _shards_note(run: RunReport) -> str:
    """For merged shards: which shards, and how many of their questions have records."""
    info = run.settings.get("merged_shards")
    if not info:
        return ""
    count, present = info["count"], info["present"]
    shards = (
        f"all {count} shards"
        if len(present) == count
        else (f"shards {', '.join(f'{i}/{count}' for i in present)} only")
    )
    return (
        f"{run.path.name}: {shards} merged; {run.summary['n']} of {info['questions']} selected "
        "questions have records"
    )


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def render_table(runs: Sequence[RunReport]) -> Table:
    """A rich table with one row per run."""
    from rich.table import Table
    from rich.text import Text

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
        ("degraded", "right"),
        ("req/q", "right"),
        ("gen tok/q", "right"),
        ("wall s/q", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for run in runs:
        s = run.summary
        table.add_row(  # names come from files: plain Text, never markup
            Text(plain(run.path.name)),
            Text(plain(run.method)),
            Text(plain(run.task)),
            str(s["n"]),
            _pct(s["accuracy"]),
            f"{_pct(s['ci_low'])}-{_pct(s['ci_high'])}",
            _pct(s["generator_maj_accuracy"]),
            str(s["errors"]),
            str(s.get("degraded", 0)),
            f"{s['requests_per_question']:.1f}",
            f"{s['generated_tokens_per_question']:.0f}",
            f"{s['wall_seconds_per_question']:.1f}",
        )
    return table


RESCORE_AGREEMENTS = ("loose", "mid", "majority", "strict")


def rescored(run: RunReport) -> dict[str, tuple[int, int]]:
    """Every selection rule's accuracy on an rStar run (see :func:`rescore_records`)."""
    from langgraph_rstar.eval.scoring import rescore_records

    prior = float((run.settings.get("config") or {}).get("confidence_prior", 2.0))
    return rescore_records(run.records, run.task, prior=prior, agreements=RESCORE_AGREEMENTS)


def render_rescore(runs: Sequence[RunReport]) -> Table:
    """One row per rStar run, one column per selection rule: accuracy % (and 95 % CI)."""
    from rich.table import Table
    from rich.text import Text

    from langgraph_rstar.eval.scoring import wilson_interval
    from langgraph_rstar.selection import RULES

    table = Table(title="every selection rule, re-scored from the stored searches")
    table.add_column("run")
    table.add_column("agreement")
    for rule in RULES:
        table.add_column(rule, justify="right")
    for run in runs:
        scores = rescored(run)
        if not scores:
            continue
        used = str((run.settings.get("config") or {}).get("agreement", "run's"))
        for agreement in (None, *RESCORE_AGREEMENTS):
            cells = []
            for rule in RULES:
                key = rule if agreement is None else f"{rule}@{agreement}"
                k, n = scores.get(key, (0, 0))
                low, high = wilson_interval(k, n)
                cells.append(f"{_pct(k / n if n else None)} ({_pct(low)}-{_pct(high)})")
            name = Text(plain(run.label))  # from files: never markup
            table.add_row(name, f"{used} (run)" if agreement is None else agreement, *cells)
    return table


def report(
    run_dirs: Sequence[str | os.PathLike[str]],
    plots_dir: str | os.PathLike[str] | None = None,
    *,
    console: Console | None = None,
    as_json: bool = False,
    rescore: bool = False,
    html_dir: str | os.PathLike[str] | None = None,
    allow_partial: bool = False,
) -> list[RunReport]:
    """Print the table for some runs and write the plots.

    The shards of a sharded run (``rstar eval --shard i/N``) are merged into one run first
    (:func:`~langgraph_rstar.eval.shards.merge_shards`).

    Args:
        run_dirs: Run directories.
        plots_dir: Where the PNGs go; default: the run directory if there is one, else the
            runs' common parent directory.
        console: Where the table goes (default: stdout).
        as_json: Print the summaries as JSON instead of a table.
        rescore: Also show the accuracy of rStar runs under every selection rule (and
            agreement rule), re-scored from the stored candidates and verdicts.
        html_dir: Also write the HTML search views of the runs there (see :func:`write_html`).
        allow_partial: Merge the shards of a run even if some are missing.

    Returns:
        The loaded runs.
    """
    from rich.console import Console

    if not run_dirs:
        raise EvalError("give at least one run directory")
    runs = merge_shards([load_run(d) for d in run_dirs], allow_partial=allow_partial)
    _label_runs(runs)
    out = console or Console()
    if not out.is_terminal:
        out.width = max(out.width, 140)  # pipes and logs: do not squeeze the table to 80 columns
    if as_json:
        summaries = []
        for r in runs:
            entry = _json_row(r)
            if rescore:
                entry["rescore"] = {k: {"correct": c, "n": n} for k, (c, n) in rescored(r).items()}
            summaries.append(entry)
        print(json.dumps(summaries, indent=2))
    else:
        out.print(render_table(runs))
        for run in runs:
            note = _shards_note(run)
            if note:
                out.print(markup_safe(note))
        if rescore:
            out.print(render_rescore(runs))
    warn = out if not as_json else Console(stderr=True)
    for run in runs:
        if run.problems:
            warn.print(
                f"[yellow]warning:[/yellow] {markup_safe(run.path)}: left out "
                f"{len(run.problems)} unusable line(s): {markup_safe('; '.join(run.problems[:5]))}"
                + (" ..." if len(run.problems) > 5 else ""),
                soft_wrap=True,
            )
    if plots_dir is None:  # the run directories given, not a merged run's made-up name
        given = [Path(d) for d in run_dirs]
        plots_dir = (
            given[0]
            if len(given) == 1
            else Path(os.path.commonpath([str(d.resolve()) for d in given]))
        )
    try:
        paths = write_plots(runs, plots_dir)
    except OSError as exc:  # e.g. --plots-dir under a regular file, or not writable
        raise EvalError(
            f"cannot write the plots to {str(plots_dir)!r}: {exc.strerror or exc}"
        ) from None
    if not as_json:
        for path in paths.values():
            out.print(f"plot: {markup_safe(path)}")
    if html_dir is not None:
        for index in write_html(runs, html_dir):
            if not as_json:
                out.print(f"search views: {markup_safe(index)}")
    return runs


def write_html(runs: Sequence[RunReport], out_dir: str | os.PathLike[str]) -> list[Path]:
    """One HTML page per question of each run (rStar runs keep their trees) and an index.

    A single run goes to ``out_dir``; several go to ``out_dir/<run directory name>``.

    Returns:
        The index file of each run.
    """
    from langgraph_rstar.view import write_records_html

    base = Path(out_dir)
    if base.exists() and not base.is_dir():
        raise EvalError(f"--html {str(base)!r} is a file, not a directory")
    indexes = []
    for run in runs:
        target = base if len(runs) == 1 else base / run.path.name
        title = f"{run.label} on {run.task} ({run.path.name})"
        indexes.append(write_records_html(run.records, target, title=title))
    return indexes
