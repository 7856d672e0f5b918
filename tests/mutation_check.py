"""Mutation check for rStar's answer pipeline: every mutation must make a test fail.

Each mutation is one small change to extraction, reward, masking or selection code — the kind of
bug that changes which answer users get without crashing. The script copies the package, the
prompt packs and the tests into a temporary directory, applies one mutation there, runs the tests
that guard that code, and reports whether they failed ("killed") or passed ("SURVIVED"). The
working tree is never modified.

    python tests/mutation_check.py            # all mutations (about 10-20 minutes on 2 cores)
    python tests/mutation_check.py --only reward_ignores_terminal,mutual_count_only

Exit status 0 when every mutation was killed. Not collected by pytest (no ``test_`` prefix).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PKG = "langgraph_rstar"
FAST = [
    "tests/test_actions.py",
    "tests/test_selection.py",
    "tests/test_discriminator.py",
    "tests/test_search.py",
    "tests/test_answers.py",
    "tests/test_surfaces.py",
]
WORLD = ["tests/test_statistical_world.py"]


@dataclass(frozen=True)
class Mutation:
    name: str
    area: str  # extraction | reward | masking | selection
    file: str
    find: str
    replace: str
    tests: tuple[str, ...] = tuple(FAST)


MUTATIONS = [
    # ---- extraction: an answer comes only from the model's own, stated words
    Mutation(
        "number_fallback_to_last_number",
        "extraction",
        "answers.py",
        "    if require_marker:\n        return None\n    numbers = _numbers_in(text)",
        "    numbers = _numbers_in(text)",
    ),
    Mutation(
        "labels_not_stripped",
        "extraction",
        "prompts.py",
        'return re.sub(r"[ \\t]{2,}", " ", self._label_re.sub(" ", text)).strip()',
        "return text.strip()",
    ),
    Mutation(
        "answer_without_marker",
        "extraction",
        "prompts.py",
        "return extract_answer(self.strip_labels(text), task, require_marker=True)",
        "return extract_answer(self.strip_labels(text), task, require_marker=False)",
    ),
    Mutation(
        "node_text_is_first_sample",
        "extraction",
        "actions.py",
        "samples=len(answers), index=result.groups[0][2][0]",
        "samples=len(answers), index=0",
    ),
    Mutation(
        "a1_answer_steps_never_terminal",
        "reward",
        "actions.py",
        "terminal=cfg.a1_answer_terminal,",
        "terminal=False,",
    ),
    Mutation(
        "a1_answer_steps_always_terminal",
        "reward",
        "actions.py",
        "terminal=cfg.a1_answer_terminal,",
        "terminal=True,",
    ),
    # ---- reward: only finished solutions earn their confidence
    Mutation(
        "reward_ignores_terminal",
        "reward",
        "search.py",
        'if not node.get("terminal") or node.get("answer") is None:',
        'if node.get("answer") is None:',
    ),
    Mutation(
        "duplicate_trajectories_counted_twice",
        "reward",
        "search.py",
        '            seen[key]["copies"] += 1\n            continue\n',
        '            seen[key]["copies"] += 1\n',
    ),
    Mutation(
        "path_value_is_terminal_value",
        "reward",
        "search.py",
        "values = [node_value(n) for n in path_to(nodes, node_id)[1:]]",
        'values = [float(node.get("value") or 0.0)]',
    ),
    # ---- masking: the discriminator never sees the answer
    Mutation(
        "no_answer_limit",
        "masking",
        "discriminator.py",
        "        if mentions_answer(step, answer, task):\n            return i",
        "        if False:\n            return i",
    ),
    Mutation(
        "paper_masks_ignore_limit",
        "masking",
        "discriminator.py",
        "keep = min(round(r * len(steps)), limit, max(len(steps) - 1, 0))",
        "keep = min(round(r * len(steps)), max(len(steps) - 1, 0))",
    ),
    Mutation(
        "word_masks_ignore_limit",
        "masking",
        "discriminator.py",
        'prefix = " ".join(words[: min(math.ceil(len(words) * r), cap)])',
        'prefix = " ".join(words[: math.ceil(len(words) * r)])',
    ),
    Mutation(
        "every_completion_agrees",
        "masking",
        "discriminator.py",
        "answers = [pack.answer(text, config.task) for text in completions]",
        'answers = [cand["answer"] for text in completions]',
    ),
    Mutation(
        "majority_is_half",
        "masking",
        "discriminator.py",
        "ok = 2 * hits > total",
        "ok = 2 * hits >= total",
    ),
    # ---- selection: label-free rules
    Mutation(
        "mutual_count_only",
        "selection",
        "selection.py",
        "scored.append((len(members) * (hits + 1) / (masks + 2), -order, members, hits))",
        "scored.append((len(members), -order, members, hits))",
        tuple(FAST + WORLD),
    ),
    Mutation(
        "mutual_agreement_only",
        "selection",
        "selection.py",
        "scored.append((len(members) * (hits + 1) / (masks + 2), -order, members, hits))",
        "scored.append(((hits + 1) / (masks + 2), -order, members, hits))",
        tuple(FAST + WORLD),
    ),
    Mutation(
        "mutual_no_fallback",
        "selection",
        "selection.py",
        "if not any(h for *_, h in scored):",
        "if False:",
    ),
    Mutation(
        "no_shrinkage",
        "selection",
        "selection.py",
        'return c.get("agree", 0) / (samples + prior)',
        'return c.get("agree", 0) / samples',
    ),
    Mutation(
        "paper_rule_sums_raw_confidence",
        "selection",
        "selection.py",
        'score = sum(c["reward"] * shrunk_confidence(c, prior) for c in members)',
        'score = sum(c["reward"] * c["confidence"] for c in members)',
    ),
    Mutation(
        "reference_code_survival_rate_over_survivors",
        "selection",
        "selection.py",
        "total = sum(1 for c in checked if answers_equal",
        "total = sum(1 for c in survivors if answers_equal",
    ),
    Mutation(
        "trajectory_key_ignores_answer",
        "selection",
        "selection.py",
        'return "\\n".join(c["steps"]) + "\\x00" + str(c["answer"])',
        'return "\\n".join(c["steps"])',
    ),
]


def run_one(mutation: Mutation, python: str, timeout: float) -> tuple[str, float, str]:
    with tempfile.TemporaryDirectory(prefix="rstar-mutant-") as tmp:
        root = Path(tmp)
        for name in (PKG, "prompts", "tests"):
            shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
        target = root / PKG / mutation.file
        text = target.read_text(encoding="utf-8")
        if text.count(mutation.find) != 1:
            return "STALE", 0.0, f"pattern found {text.count(mutation.find)} times"
        target.write_text(text.replace(mutation.find, mutation.replace), encoding="utf-8")
        env = {**os.environ, "PYTHONPATH": str(root), "RSTAR_REQUIRE_LLM": "0"}
        cmd = [python, "-m", "pytest", "-x", "-q", "-m", "not llm", "-p", "no:cacheprovider"]
        start = time.perf_counter()
        try:
            proc = subprocess.run(
                [*cmd, *mutation.tests],
                cwd=root,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return "killed (timeout)", time.perf_counter() - start, ""
        elapsed = time.perf_counter() - start
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("FAILED")]
        if proc.returncode == 1:
            return "killed", elapsed, lines[0] if lines else ""
        if proc.returncode == 0:
            return "SURVIVED", elapsed, ""
        return f"error (pytest exit {proc.returncode})", elapsed, proc.stdout[-300:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated mutation names")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per mutation")
    args = parser.parse_args(argv)
    chosen = MUTATIONS
    if args.only:
        names = set(args.only.split(","))
        chosen = [m for m in MUTATIONS if m.name in names]
    print(f"{'area':10s} {'mutation':46s} {'result':18s} {'s':>5s}  first failing test")
    survived = 0
    for m in chosen:
        result, elapsed, detail = run_one(m, sys.executable, args.timeout)
        survived += result != "killed"
        print(f"{m.area:10s} {m.name:46s} {result:18s} {elapsed:5.0f}  {detail[:90]}", flush=True)
    print(f"\n{len(chosen) - survived} of {len(chosen)} mutations killed")
    return 1 if survived else 0


if __name__ == "__main__":
    raise SystemExit(main())
