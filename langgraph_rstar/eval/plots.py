"""The report's plots: accuracy vs rollouts and vs generated tokens (matplotlib, loaded lazily)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from langgraph_rstar.eval.errors import EvalError
from langgraph_rstar.eval.methods import RSTAR_METHODS
from langgraph_rstar.eval.scoring import accuracy_by_rollouts

if TYPE_CHECKING:  # pragma: no cover - typing only
    from langgraph_rstar.eval.reporting import RunReport

__all__ = ["PLOT_ROLLOUTS", "PLOT_TOKENS", "write_plots"]

PLOT_ROLLOUTS = "accuracy_vs_rollouts.png"
PLOT_TOKENS = "accuracy_vs_tokens.png"


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
            # max(0, ...): at 100 % the Wilson bound can round a hair below the point
            yerr=[[max(0.0, y - 100 * s["ci_low"])], [max(0.0, 100 * s["ci_high"] - y)]],
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
