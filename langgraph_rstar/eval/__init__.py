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

Modules: :mod:`~langgraph_rstar.eval.data` (datasets), :mod:`~langgraph_rstar.eval.records`
(results log, settings, run lock), :mod:`~langgraph_rstar.eval.methods` (cot, sc, rStar),
:mod:`~langgraph_rstar.eval.runner` (``run_eval``), :mod:`~langgraph_rstar.eval.scoring`
(accuracy, Wilson intervals), :mod:`~langgraph_rstar.eval.shards` (``--shard i/N`` and merging
the shards' runs), :mod:`~langgraph_rstar.eval.reporting` (``rstar report``),
:mod:`~langgraph_rstar.eval.plots` and :mod:`~langgraph_rstar.eval.cli` (the subcommands). Every
name is re-exported here. Heavy dependencies (rich, matplotlib, the solver) load lazily.
"""

from langgraph_rstar.eval.cli import register_cli
from langgraph_rstar.eval.data import DATASETS, Item, load_dataset
from langgraph_rstar.eval.errors import EvalError
from langgraph_rstar.eval.methods import METHODS
from langgraph_rstar.eval.methods import RSTAR_METHODS as RSTAR_METHODS
from langgraph_rstar.eval.plots import PLOT_ROLLOUTS as PLOT_ROLLOUTS
from langgraph_rstar.eval.plots import PLOT_TOKENS as PLOT_TOKENS
from langgraph_rstar.eval.plots import write_plots
from langgraph_rstar.eval.records import LOCK_FILE as LOCK_FILE
from langgraph_rstar.eval.records import RESULTS_FILE as RESULTS_FILE
from langgraph_rstar.eval.records import SETTINGS_FILE as SETTINGS_FILE
from langgraph_rstar.eval.records import ResultsLog as ResultsLog
from langgraph_rstar.eval.records import _run_lock as _run_lock
from langgraph_rstar.eval.records import load_records, load_settings
from langgraph_rstar.eval.reporting import RunReport, load_run, report
from langgraph_rstar.eval.reporting import render_table as render_table
from langgraph_rstar.eval.runner import run_eval
from langgraph_rstar.eval.scoring import accuracy_by_rollouts, summarize, wilson_interval
from langgraph_rstar.eval.shards import Shard, merge_shards, shard_of

# The names marked "X as X" above are importable from here too, as before, but not in __all__.
__all__ = [
    "DATASETS",
    "METHODS",
    "EvalError",
    "Item",
    "RunReport",
    "Shard",
    "accuracy_by_rollouts",
    "load_dataset",
    "load_records",
    "load_run",
    "load_settings",
    "merge_shards",
    "register_cli",
    "report",
    "run_eval",
    "shard_of",
    "summarize",
    "wilson_interval",
    "write_plots",
]
