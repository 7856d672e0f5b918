"""CPU benchmark: cot, sc, rStar generator@maj and rStar on the first GSM8K dev questions.

Starts the embedded llama.cpp server once, runs every method through ``rstar eval``'s machinery
(each into its own resumable run directory), then writes a markdown report with the accuracy
table, timings, machine facts, settings and the two plots.

Usage (from the repository root)::

    .venv/bin/python benchmarks/run_cpu_benchmark.py                 # 10 questions, 1.5B model
    .venv/bin/python benchmarks/run_cpu_benchmark.py --resume        # continue the newest run
    .venv/bin/python benchmarks/run_cpu_benchmark.py --limit 1 --local-model qwen2.5-coder-0.5b \\
        --rollouts 2 --sc-k 2 --set max_tokens_cot=64 --results-dir /tmp/smoke   # smoke test

See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from langgraph_rstar.backends import OpenAICompatibleLLM
from langgraph_rstar.cli import Endpoints, build_parser
from langgraph_rstar.eval import (
    METHODS,
    EvalError,
    RunReport,
    load_dataset,
    load_records,
    load_run,
    run_eval,
    write_plots,
)
from langgraph_rstar.local import LocalServer

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_DATA = Path("/work/shared/data/gsm8k/dev.jsonl")
META_FILE = "benchmark.json"
# Config fields worth showing in the report's settings table (the full config is attached too).
SHOWN_FIELDS = (
    "preset_name",
    "preset",
    "num_rollouts",
    "rollouts_in_flight",
    "max_depth",
    "num_a1_steps",
    "num_subquestions",
    "num_votes",
    "num_last_votes",
    "exploration_weight",
    "temperature",
    "top_p",
    "top_k",
    "repetition_penalty",
    "max_tokens_cot",
    "max_tokens_step",
    "max_tokens_subquestion",
    "max_tokens_subanswer",
    "max_tokens_rephrase",
    "num_masks",
    "mask_mode",
    "agreement",
    "scoring",
    "discriminator_max_tokens",
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options of the benchmark."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=10, help="first N questions (default 10)")
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="GSM8K JSONL (default: dev split)")
    ap.add_argument(
        "--local-model",
        default="qwen2.5-coder-1.5b",
        help="qwen2.5-coder-1.5b (default) | qwen2.5-coder-0.5b | PATH.gguf",
    )
    ap.add_argument(
        "--methods",
        default=",".join(METHODS),
        help=f"comma-separated subset of {','.join(METHODS)}",
    )
    ap.add_argument(
        "--sc-k",
        default="auto",
        help="self-consistency samples, or 'auto' (default): as many as cost rStar's generated "
        "tokens per question, measured on this run's cot and rstar (so sc runs after them)",
    )
    ap.add_argument("--preset", default="fast", help="rStar preset (default fast)")
    ap.add_argument("--rollouts", type=int, help="override num_rollouts")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override an RStarConfig field for every method (repeatable)",
    )
    ap.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="questions in flight per method (default 1: wall s/q is latency)",
    )
    ap.add_argument("--parallel", type=int, default=8, help="server slots = max n per request")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    ap.add_argument("--ctx", type=int, default=None, help="server context (default: per slots)")
    ap.add_argument(
        "--runs-root",
        default=str(HERE / "runs"),
        help="where timestamped run directories go (default benchmarks/runs)",
    )
    ap.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        metavar="RUN_DIR",
        help="continue a run directory (no value: the newest one for this model)",
    )
    ap.add_argument(
        "--results-dir",
        default=str(HERE / "results"),
        help="where the markdown report and plots go (default benchmarks/results)",
    )
    args = ap.parse_args(argv)
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown or not args.methods:
        ap.error(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    if args.limit < 1:
        ap.error("--limit must be >= 1")
    if args.sc_k != "auto":
        try:
            args.sc_k = int(args.sc_k)
        except ValueError:
            ap.error("--sc-k must be an integer or 'auto'")
    elif "sc" in args.methods:  # sc needs cot's and rStar's token counts first
        need = [m for m in ("cot", "rstar") if m not in args.methods]
        if need:
            ap.error(f"--sc-k auto needs the method(s) {need} in --methods")
        args.methods = [m for m in args.methods if m != "sc"] + ["sc"]
    return args


def auto_sc_k(run_dir: Path) -> int:
    """SC samples whose tokens match rStar's: rStar's generated tokens per question (target and
    discriminator) divided by one greedy CoT's tokens per question, both from this run."""
    rstar = load_run(run_dir / "rstar").summary["generated_tokens_per_question"]
    cot = load_run(run_dir / "cot").summary["generated_tokens_per_question"]
    return max(1, round(rstar / max(cot, 1.0)))


def model_slug(model: str) -> str:
    """File-name friendly model name (a GGUF path becomes its stem)."""
    return Path(model).stem if model.endswith(".gguf") else model.replace("/", "_")


def pick_run_dir(args: argparse.Namespace) -> Path:
    """A new timestamped directory, or the one to resume."""
    root = Path(args.runs_root)
    slug = model_slug(args.local_model)
    if args.resume and args.resume != "latest":
        path = Path(args.resume)
        if not path.is_dir():
            raise SystemExit(f"error: --resume {path}: no such directory")
        return path
    if args.resume == "latest":
        found = sorted(root.glob(f"*-{slug}"), key=lambda p: p.name)
        if not found:
            raise SystemExit(f"error: nothing to resume under {root} for {slug}")
        return found[-1]
    return root / f"{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-{slug}"


def eval_argv(args: argparse.Namespace, method: str, out: Path, base_url: str) -> list[str]:
    """The ``rstar eval`` options of one method (the server is already running)."""
    argv = [
        "eval",
        "--dataset",
        "gsm8k",
        "--data",
        str(args.data),
        "--method",
        method,
        "--limit",
        str(args.limit),
        "--out",
        str(out),
        "--concurrency",
        str(args.concurrency),
        "--sc-k",
        str(args.sc_k_value),
        "--preset",
        args.preset,
        "--base-url",
        base_url,
        "--dialect",
        "llamacpp",
        "--model",
        "local",
        "--local-model",
        args.local_model,
        "--local-parallel",
        str(args.parallel),
    ]
    if args.rollouts:
        argv += ["--rollouts", str(args.rollouts)]
    for item in args.set:
        argv += ["--set", item]
    return argv


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (Linux), else platform.processor()."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return "unknown"


def version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_facts(server: LocalServer, load: float | None) -> dict[str, Any]:
    """What the numbers depend on: CPU, cores, memory, versions and the server's settings."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    model_path = server.model_path
    return {
        "cpu": cpu_model(),
        "nproc": affinity or os.cpu_count(),
        "cpu_count": os.cpu_count(),
        "memory": memory_gib(),
        # Other work on the machine slows every method down; the load shows whether it was idle.
        "load_average_1m_before_start": load,
        "os": platform.platform(),
        "python": platform.python_version(),
        "langgraph-rstar": version("langgraph-rstar"),
        "xllamacpp": version("xllamacpp"),
        "model": server.model,
        "model_file": str(model_path) if model_path else None,
        "model_bytes": model_path.stat().st_size if model_path and model_path.exists() else None,
        "server_slots": server.parallel,
        "server_ctx": server.ctx,
        "server_threads": server.threads,
        "server_startup_seconds": round(server.startup_seconds or 0.0, 1),
    }


def load_meta(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / META_FILE).read_text())
    except (OSError, ValueError):
        return {}


def save_meta(run_dir: Path, meta: dict[str, Any]) -> None:
    tmp = run_dir / (META_FILE + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2) + "\n")
    os.replace(tmp, run_dir / META_FILE)


def pending_methods(args: argparse.Namespace, run_dir: Path) -> list[str]:
    """Methods that still lack a successful record for some selected question."""
    wanted = {item.id for item in load_dataset(args.data, args.limit)}
    pending = []
    for method in args.methods:
        try:
            done = {r["id"] for r in load_records(run_dir / method) if not r.get("error")}
        except EvalError:  # no results yet
            done = set()
        if not wanted <= done:
            pending.append(method)
    return pending


async def run_methods(args: argparse.Namespace, run_dir: Path, meta: dict[str, Any]) -> int:
    """Start the server once and run every method against it; returns the worst exit code."""
    server = LocalServer(
        args.local_model, parallel=args.parallel, threads=args.threads, ctx=args.ctx
    )
    print(f"starting {args.local_model} ({args.parallel} slots) ...", file=sys.stderr, flush=True)
    worst = 0
    load = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    async with server:
        meta["machine"] = machine_facts(server, load)
        target = OpenAICompatibleLLM(
            server.base_url,
            "local",
            dialect="llamacpp",
            max_n=args.parallel,
            name="target",
        )
        ends = Endpoints(target, target, f"embedded {args.local_model} at {server.base_url}")
        parser = build_parser()
        try:
            for method in args.methods:
                if method == "sc":
                    meta["sc_k"] = auto_sc_k(run_dir) if args.sc_k == "auto" else args.sc_k
                args.sc_k_value = meta.get("sc_k", 8)
                eval_args = parser.parse_args(
                    eval_argv(args, method, run_dir / method, server.base_url)
                )
                print(f"\n== {method} ==", file=sys.stderr, flush=True)
                t0 = time.monotonic()
                try:
                    code = await run_eval(eval_args, endpoints=ends)
                except EvalError as exc:  # e.g. too many failures: keep going, report it
                    print(f"{method}: error: {exc}", file=sys.stderr, flush=True)
                    code = 2
                elapsed = time.monotonic() - t0
                timing = meta.setdefault("elapsed_seconds", {})
                timing[method] = round(timing.get(method, 0.0) + elapsed, 1)
                save_meta(run_dir, meta)
                worst = max(worst, code)
        finally:
            await target.aclose()
    return worst


# --------------------------------------------------------------------------------------------
# Markdown report
# --------------------------------------------------------------------------------------------


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def in_flight(run: RunReport) -> str:
    """Questions in flight as recorded by the run's sessions (e.g. ``"1"`` or ``"4,2"``)."""
    seen: list[str] = []
    for session in run.settings.get("sessions", []):
        value = str((session.get("options") or {}).get("concurrency", "?"))
        if value not in seen:
            seen.append(value)
    return ",".join(seen) or "?"


def results_table(runs: Sequence[RunReport], elapsed: dict[str, float]) -> list[str]:
    lines = [
        "| method | n | accuracy % | 95% CI (Wilson) | generator@maj % | requests/q "
        "| generated tokens/q | prompt tokens/q | wall s/q | in flight | total wall s | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        s = run.summary
        total = elapsed.get(run.method)
        lines.append(
            f"| {run.method} | {s['n']} | {_pct(s['accuracy'])} | {_pct(s['ci_low'])}–"
            f"{_pct(s['ci_high'])} | {_pct(s['generator_maj_accuracy'])} | "
            f"{s['requests_per_question']:.1f} | {s['generated_tokens_per_question']:.0f} | "
            f"{s['prompt_tokens_per_question']:.0f} | {s['wall_seconds_per_question']:.1f} | "
            f"{in_flight(run)} | {'-' if total is None else f'{total:.0f}'} | {s['errors']} |"
        )
    return lines


def rescore_table(runs: Sequence[RunReport]) -> list[str]:
    """Every selection rule re-scored from the rStar run's stored candidates and verdicts."""
    from langgraph_rstar.eval.reporting import RESCORE_AGREEMENTS, rescored
    from langgraph_rstar.eval.scoring import wilson_interval
    from langgraph_rstar.selection import RULES

    lines: list[str] = []
    for run in runs:
        scores = rescored(run) if run.method in ("rstar", "rstar-generator") else {}
        if not scores:
            continue
        used = (run.settings.get("config") or {}).get("agreement", "?")
        lines += [
            f"`{run.method}` run, agreement rule of the run = `{used}`; accuracy % (95 % CI):",
            "",
            "| agreement | " + " | ".join(RULES) + " |",
            "|---|" + "---:|" * len(RULES),
        ]
        for agreement in (None, *RESCORE_AGREEMENTS):
            cells = []
            for rule in RULES:
                k, n = scores.get(rule if agreement is None else f"{rule}@{agreement}", (0, 0))
                low, high = wilson_interval(k, n)
                cells.append(f"{_pct(k / n if n else None)} ({_pct(low)}–{_pct(high)})")
            label = f"{used} (run)" if agreement is None else agreement
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def per_question_table(runs: Sequence[RunReport]) -> list[str]:
    by_method = {run.method: {r["id"]: r for r in run.records} for run in runs}
    first = runs[0].records if runs else []
    ids = [r["id"] for r in first]
    for run in runs[1:]:
        ids += [r["id"] for r in run.records if r["id"] not in ids]
    golds = {r["id"]: r.get("gold") for run in runs for r in run.records}
    lines = [
        "| id | gold | " + " | ".join(by_method) + " |",
        "|---|---:|" + "---:|" * len(by_method),
    ]
    for qid in sorted(ids, key=_id_key):
        cells = []
        for records in by_method.values():
            rec = records.get(qid)
            if rec is None:
                cells.append("")
            elif rec.get("error"):
                cells.append("error")
            else:
                mark = "✓" if rec.get("correct") else "✗"
                cells.append(f"{mark} {rec.get('prediction')}")
        lines.append(f"| {qid} | {golds.get(qid)} | " + " | ".join(cells) + " |")
    return lines


def _id_key(qid: str) -> tuple[int, str]:
    tail = qid.rsplit("-", 1)[-1]
    return (int(tail), qid) if tail.isdigit() else (sys.maxsize, qid)


def settings_section(
    runs: Sequence[RunReport], args: argparse.Namespace, meta: dict[str, Any]
) -> list[str]:
    # The rStar run's config shows the search settings; cot/sc share the sampling fields.
    source = next((r for r in runs if r.method in ("rstar", "rstar-generator")), None)
    source = source or (runs[0] if runs else None)
    cfg = (source.settings.get("config") if source else None) or {}
    sc_k = meta.get("sc_k", args.sc_k)
    how = "as many as cost rStar's generated tokens" if args.sc_k == "auto" else "fixed"
    described = {
        "cot": "one greedy sample (temperature 0) of the few-shot steps prompt, max "
        f"{cfg.get('max_tokens_cot', '?')} tokens.",
        "sc": f"k = {sc_k} samples at temperature {cfg.get('temperature', '?')} ({how}), "
        "majority vote.",
        "rstar-generator": "rStar MCTS, prediction = majority vote over all candidate answers "
        "(generator@maj), no discriminator.",
        "rstar": "rStar MCTS + discriminator (mutual consistency), prediction = final answer; "
        "its generator@maj column is the majority vote over the same run's candidates.",
    }
    lines = [
        f"- {r.method}: {described.get(r.method, '')} In flight: {in_flight(r)}." for r in runs
    ]
    lines += [
        "",
        "| setting | value |",
        "|---|---|",
    ]
    lines += [f"| {k} | {cfg[k]} |" for k in SHOWN_FIELDS if k in cfg]
    if cfg:
        lines += [
            "",
            "<details><summary>Full RStarConfig</summary>",
            "",
            "```json",
            json.dumps(cfg, indent=2),
            "```",
            "",
            "</details>",
        ]
    return lines


def write_report(args: argparse.Namespace, run_dir: Path, meta: dict[str, Any]) -> Path:
    """Write ``<results-dir>/gsm8k-cpu-<model>.md`` and its two plots."""
    done = [m for m in args.methods if (run_dir / m / "results.jsonl").is_file()]
    runs = [load_run(run_dir / m) for m in done]
    results = Path(args.results_dir)
    results.mkdir(parents=True, exist_ok=True)
    slug = model_slug(args.local_model)
    stem = f"gsm8k-cpu-{slug}"
    plots = write_plots(runs, results, prefix=f"{stem}-") if runs else {}
    machine = meta.get("machine", {})
    elapsed = meta.get("elapsed_seconds", {})
    n = max((r.summary["n"] for r in runs), default=0)
    lines = [
        f"# GSM8K on CPU: {slug}",
        "",
        f"First {n} questions of the GSM8K dev split (`{args.data}`), embedded llama.cpp "
        f"server, generated {dt.datetime.now().astimezone().isoformat(timespec='seconds')}.",
        f"Run directories: `{_rel(run_dir)}/<method>/` (results.jsonl, settings.json).",
        "",
        "With this few questions the 95 % intervals are wide; differences inside them are noise.",
        "",
        "## Results",
        "",
        *results_table(runs, elapsed),
        "",
        "Per question means over the run; `wall s/q` is the mean time to solve one question "
        "with `in flight` questions sharing the server, `total wall s` the method's elapsed "
        "time over all sessions. Tokens are counted from llama.cpp's logprobs (generated tokens "
        "of every sample); requests include the discriminator's.",
        "",
    ]
    if plots:
        lines += [
            "## Plots",
            "",
            f"![accuracy vs rollouts]({plots['rollouts'].name})",
            "",
            "Accuracy vs number of rollouts: generator@maj over the candidates of the first k "
            "rollouts (the paper's Fig. 5 style), computed from one run by truncation.",
            "",
            f"![accuracy vs tokens]({plots['tokens'].name})",
            "",
            "Accuracy vs mean generated tokens per question (log x), one point per method.",
            "",
        ]
    rescore = rescore_table(runs)
    if rescore:
        lines += [
            "## Every selection rule, from the same searches",
            "",
            "Re-scored without model calls (`rstar report --rescore`) from the candidates and "
            "discriminator verdicts stored in the rStar run's records.",
            "",
            *rescore,
        ]
    lines += ["## Per question", "", *per_question_table(runs), ""]
    lines += ["## Settings", "", *settings_section(runs, args, meta), ""]
    lines += [
        "## Command",
        "",
        "```sh",
        f"cd {REPO} && .venv/bin/python {shlex.join(sys.argv)}",
        "```",
        "",
        "Sessions of this run directory:",
        "",
        *[f"- {s['started']}: `{s['command']}`" for s in meta.get("sessions", [])],
        "",
        "## Machine",
        "",
        "| fact | value |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in machine.items()],
        "",
    ]
    path = results / f"{stem}.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; returns 0 if every method finished without errors."""
    args = parse_args(argv)
    if not Path(args.data).is_file():
        print(f"error: data file {args.data} not found", file=sys.stderr)
        return 2
    run_dir = pick_run_dir(args)
    run_dir.mkdir(parents=True, exist_ok=True)
    meta = load_meta(run_dir)
    meta.setdefault("sessions", []).append(
        {
            "started": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        }
    )
    save_meta(run_dir, meta)
    print(f"run directory: {run_dir}", file=sys.stderr)
    t0 = time.monotonic()
    todo = pending_methods(args, run_dir)
    # Loading the model takes a while: skip it when a resumed run only needs its report.
    code = asyncio.run(run_methods(args, run_dir, meta)) if todo else 0
    if not todo:
        print("every method is complete; rewriting the report", file=sys.stderr)
    report = write_report(args, run_dir, meta)
    print(f"\nreport: {report} ({time.monotonic() - t0:.0f} s in all)", file=sys.stderr)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
