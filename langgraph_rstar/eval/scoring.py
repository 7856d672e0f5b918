"""Scoring a run: accuracy with Wilson intervals, cost per question, accuracy by rollouts."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from langgraph_rstar.eval.methods import RSTAR_METHODS
from langgraph_rstar.eval.records import _COUNTERS, _usage_totals

__all__ = ["accuracy_by_rollouts", "rescore_records", "summarize", "wilson_interval"]


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


def summarize(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Accuracy and cost of one run.

    Error records count as answered wrongly (they are in ``n``); rerunning the eval retries them.

    Args:
        records: The run's records (see :func:`load_records`).

    Returns:
        ``method``, ``dataset``, ``n``, ``correct``, ``errors``, ``degraded`` (answers cut by
        a budget or chosen without the discriminator), ``accuracy``, ``ci_low``,
        ``ci_high`` (95 % Wilson), ``generator_maj_accuracy`` (rStar runs: accuracy of the
        generator's majority answer, else ``None``), and per question means
        ``requests_per_question`` (target + discriminator), ``prompt_tokens_per_question``,
        ``generated_tokens_per_question`` and ``wall_seconds_per_question``, plus the totals
        ``generated_tokens`` and ``wall_seconds``.
    """
    n = len(records)
    correct = sum(1 for r in records if r.get("correct") is True)
    errors = sum(1 for r in records if r.get("error"))
    degraded = sum(1 for r in records if r.get("budget_exhausted") or r.get("discriminator_error"))
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
        "degraded": degraded,
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


def rescore_records(
    records: Sequence[Mapping[str, Any]],
    task: str,
    *,
    prior: float = 2.0,
    agreements: Sequence[str] = (),
) -> dict[str, tuple[int, int]]:
    """Accuracy of an rStar run under every selection rule, without a model call.

    Uses what each record stored (candidates with their path values, the discriminator's
    per-mask answers); only then compares with the record's gold.

    Returns:
        ``{rule: (correct, n)}`` for every rule of :data:`langgraph_rstar.selection.RULES`,
        plus ``rule@agreement`` for each agreement rule in ``agreements``. Records without
        stored candidates/verification (older runs, error records) count as wrong.
    """
    from langgraph_rstar.answers import answers_equal
    from langgraph_rstar.discriminator import rescore

    scores: dict[str, int] = {}
    for rec in records:
        cands = [c for c in (rec.get("candidates") or []) if isinstance(c, Mapping)]
        verification = rec.get("verification")
        finals = {}
        if cands and isinstance(verification, Mapping) and "steps" in cands[0]:
            finals = rescore(
                cands,  # type: ignore[arg-type]
                verification,  # type: ignore[arg-type]
                task=task,
                prior=prior,
                agreements=(None, *agreements),
            )
        for key, final in finals.items():
            hit = final["answer"] is not None and answers_equal(
                final["answer"], rec.get("gold"), task
            )
            scores[key] = scores.get(key, 0) + int(hit)
    return {key: (correct, len(records)) for key, correct in scores.items()}
