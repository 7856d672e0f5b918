"""rStar's answer pipeline in a statistical world, side by side with CoT and self-consistency.

Every sample is right with probability p, whatever the prompt (``tests/statistical_world.py``):
content gives the tree no advantage, so the table isolates aggregation — votes, rewards, masks and
the selection rules. All requests are real HTTP to a scripted OpenAI-compatible server on
127.0.0.1; a run is reproducible (samples are a pure function of the request and the seed).

For each p and preset it prints: CoT (one sample), SC with as many samples as rStar has
candidates, SC with as many generated tokens as rStar spent (it may win in a world without
content), rStar generator@maj, the full pipeline (the preset's selection rule), and every other
selection rule re-scored from the same searches; then the rules under each agreement rule. The
search runs one rollout at a time (``rollouts_in_flight=1``), so every figure is reproducible.

    python benchmarks/statistical_world.py --questions 200 --p 0.3
    python benchmarks/statistical_world.py            # p = 0.2, 0.3, 0.5; all presets
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from langgraph_rstar import RStarConfig  # noqa: E402
from langgraph_rstar.selection import RULES  # noqa: E402
from tests.scripted_server import ScriptedServer  # noqa: E402
from tests.statistical_world import StatisticalWorld, accuracy, run_world  # noqa: E402

AGREEMENTS = ("loose", "mid", "majority", "strict")


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


async def run(args: argparse.Namespace) -> dict:
    out: dict = {"questions": args.questions, "seed": args.seed, "results": []}
    items = list(range(args.questions))
    for p in args.p:
        world = StatisticalWorld(p=p, seed=args.seed)
        with ScriptedServer(world.respond) as server:
            for preset in args.presets:
                # One rollout in flight: the search is then exactly reproducible (with K > 1 the
                # tree depends on which action returns first).
                cfg = RStarConfig.preset(preset, rollouts_in_flight=1)
                started = time.perf_counter()
                runs = await run_world(
                    world,
                    server.base_url,
                    cfg,
                    items,
                    concurrency=args.concurrency,
                    agreements=AGREEMENTS,
                )
                wall = time.perf_counter() - started
                methods = sorted({m for r in runs for m in r.answers})
                out["results"].append(
                    {
                        "p": p,
                        "preset": preset,
                        "scoring": cfg.scoring,
                        "agreement": cfg.agreement,
                        "wall_s": round(wall, 1),
                        "candidates": sum(r.candidates for r in runs) / len(runs),
                        "sc_tokens_k": sum(r.sc_tokens_k for r in runs) / len(runs),
                        "generated_tokens": sum(r.generated_tokens for r in runs) / len(runs),
                        "accuracy": {m: accuracy(runs, m) for m in methods},
                    }
                )
                print(f"  p={p} {preset}: {wall:.0f} s", file=sys.stderr, flush=True)
    return out


def render(out: dict) -> str:
    lines = [
        f"Statistical world: {out['questions']} questions per cell, seed {out['seed']}; "
        "accuracy in %.",
        "",
    ]
    for p in sorted({r["p"] for r in out["results"]}):
        rows = [r for r in out["results"] if r["p"] == p]
        lines += [
            f"### p = {p}",
            "",
            "| preset (rule, agreement) | CoT | SC@k, k = candidates | SC at rStar's tokens "
            "| generator@maj | **full pipeline** | pipeline > gen@maj > SC@k |",
            "|---|---:|---:|---:|---:|---:|:---:|",
        ]
        for r in rows:
            a = r["accuracy"]
            ok = a["pipeline"] > a["generator_maj"] > a["sc@candidates"]
            lines.append(
                f"| {r['preset']} ({r['scoring']}, {r['agreement']}) | {_pct(a['cot'])} "
                f"| {_pct(a['sc@candidates'])} (k̄ = {r['candidates']:.1f}) "
                f"| {_pct(a['sc@tokens'])} (k̄ = {r['sc_tokens_k']:.0f}) "
                f"| {_pct(a['generator_maj'])} | **{_pct(a['pipeline'])}** "
                f"| {'yes' if ok else 'NO'} |"
            )
        lines += [
            "",
            "Every selection rule, re-scored from the same searches (agreement rule of the "
            "preset / loose / mid / majority / strict):",
            "",
            "| preset | " + " | ".join(RULES) + " |",
            "|---|" + "---:|" * len(RULES),
        ]
        for r in rows:
            a = r["accuracy"]
            cells = []
            for rule in RULES:
                per = "/".join(_pct(a[f"{rule}@{ag}"]) for ag in AGREEMENTS)
                cells.append(f"{_pct(a[rule])} ({per})")
            lines.append(f"| {r['preset']} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=200, help="questions per (p, preset)")
    parser.add_argument(
        "--p",
        type=float,
        action="append",
        help="probability that a sample is right (repeat; default 0.2, 0.3, 0.5)",
    )
    parser.add_argument(
        "--presets",
        default="fast,paper,reference_code",
        help="comma-separated presets (default: all three)",
    )
    parser.add_argument("--seed", type=int, default=0, help="world seed")
    parser.add_argument("--concurrency", type=int, default=4, help="questions in flight")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    parser.add_argument("--markdown", type=Path, help="also write the tables here")
    args = parser.parse_args(argv)
    args.p = args.p or [0.2, 0.3, 0.5]
    args.presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    out = asyncio.run(run(args))
    text = render(out)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    if args.markdown:
        args.markdown.write_text(text + "\n", encoding="utf-8")
    failed = [
        r
        for r in out["results"]
        if r["p"] == 0.3
        and r["preset"] in ("paper", "reference_code")
        and not (
            r["accuracy"]["pipeline"]
            > r["accuracy"]["generator_maj"]
            > r["accuracy"]["sc@candidates"]
        )
    ]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
