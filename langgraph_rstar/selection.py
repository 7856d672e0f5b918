"""Label-free rules that choose the final answer from rStar's candidates and verdicts.

Every rule here is a pure function of what a search produced — the candidate trajectories (with
their answers, terminal confidences and path values) and the discriminator's per-mask answers —
and never of a gold label. Because they are pure, one stored run can be re-scored under every rule
(``rstar report --rescore``) without a model call.

The rules (``RStarConfig.scoring``):

* ``mutual`` (default of ``fast`` and ``paper``): per answer, the number of candidates that reach
  it times the discriminator's agreement rate for it, ``(hits + 1) / (masks + 2)`` over its
  distinct trajectories. Two independent estimates of how likely the answer is — the generator's
  and the discriminator's on leak-free prefixes — multiplied. No confidence or reward enters:
  in the statistical world a search's confidences are inflated by *commitment* (once a step
  computes a result every continuation copies it, so a single sample looks like 32 of 32) and
  every rule that weights by them loses to plain counting (README, "Choosing the answer").
* ``paper``: the paper's "reward x confidence", made sound: among the mutually consistent
  candidates each answer scores the sum of its trajectories' mean Q/N along the path times the
  terminal vote share shrunk by ``confidence_prior`` pseudo-samples (``agree / (samples +
  prior)``), so a 2-of-2 A1 step no longer outranks a 28-of-32 A2 vote.
* ``paper_argmax``: the paper's rule read literally: the single consistent trajectory with the
  highest reward x raw confidence.
* ``reference_code`` (default of ``reference_code``): the released code's rule, per answer the
  share of survivors + the survival rate.
* ``consistent_maj``: majority vote among the consistent candidates.
* ``generator_maj``: majority vote over all candidates (rStar generator@maj, no discriminator).

Without a consistent candidate (or with the check skipped) every rule falls back to
generator@maj.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from typing_extensions import TypedDict

from langgraph_rstar.answers import answers_equal, group_answers, majority_vote
from langgraph_rstar.search import Candidate


class Final(TypedDict):
    answer: str | None
    confidence: float
    node_id: str | None
    trajectory: list[str]
    method: str  # unanimous | discriminator | generator_maj | generator_maj_fallback | none


class Verdict(TypedDict):
    """The discriminator's verdict on one trajectory: agreeing masks of all masks."""

    consistent: bool
    agreements: int
    masks: int


def trajectory_key(c: Mapping[str, Any]) -> str:
    """Candidates with the same steps and answer are one trajectory (checked once)."""
    return "\n".join(c["steps"]) + "\x00" + str(c["answer"])


def shrunk_confidence(c: Candidate, prior: float) -> float:
    """Vote share with ``prior`` pseudo-samples that disagree: ``agree / (samples + prior)``."""
    samples = c.get("samples") or 0
    if samples <= 0:  # records without counts: fall back to the raw share
        return float(c["confidence"])
    return c.get("agree", 0) / (samples + prior)


def _final(answer: str | None, confidence: float, best: Candidate | None, method: str) -> Final:
    return Final(
        answer=answer,
        confidence=confidence,
        node_id=best["node_id"] if best else None,
        trajectory=list(best["steps"]) if best else [],
        method=method,
    )


def _best_trajectory(pool: Sequence[Candidate], answer: str | None, task: str, prior: float):
    same = [c for c in pool if answers_equal(c["answer"], answer, task)] or list(pool)
    return max(same, key=lambda c: (c["reward"] * shrunk_confidence(c, prior), c["confidence"]))


def generator_majority(candidates: Sequence[Candidate], task: str, prior: float, method: str):
    vote = majority_vote([c["answer"] for c in candidates], task)
    best = _best_trajectory(candidates, vote.answer, task, prior) if candidates else None
    return _final(vote.answer, vote.confidence, best, method)


def _per_answer(pool: Sequence[Candidate], task: str) -> list[list[Candidate]]:
    return [[pool[i] for i in g] for g in group_answers([c["answer"] for c in pool], task)]


def _paper(survivors, checked, task, prior) -> Final:
    scored = []
    for order, members in enumerate(_per_answer(survivors, task)):
        score = sum(c["reward"] * shrunk_confidence(c, prior) for c in members)
        scored.append((score, -order, members))
    total = sum(s for s, _, _ in scored) or 1.0
    score, _, members = max(scored, key=lambda t: (t[0], t[1]))
    best = _best_trajectory(members, members[0]["answer"], task, prior)
    return _final(members[0]["answer"], score / total, best, "discriminator")


def _paper_argmax(survivors, checked, task, prior) -> Final:
    best = max(survivors, key=lambda c: (c["reward"] * c["confidence"], c["confidence"]))
    return _final(best["answer"], best["reward"] * best["confidence"], best, "discriminator")


def _reference_code(survivors, checked, task, prior) -> Final:
    scored = []
    for order, members in enumerate(_per_answer(survivors, task)):
        answer = members[0]["answer"]
        total = sum(1 for c in checked if answers_equal(c["answer"], answer, task))
        score = len(members) / len(survivors) + len(members) / max(1, total)
        scored.append((score, -order, members))
    score, _, members = max(scored, key=lambda t: (t[0], t[1]))
    best = _best_trajectory(members, members[0]["answer"], task, prior)
    return _final(members[0]["answer"], score / 2, best, "discriminator")


def _mutual(candidates, verdicts, task, prior) -> Final:
    """Per answer: how many candidates reach it x how often the discriminator reproduces it.

    Both factors estimate how likely the answer is, from two independent sources: the
    generator's candidates and the discriminator's completions of leak-free prefixes (Laplace
    smoothed: (hits + 1) / (masks + 2), summed over the answer's distinct trajectories).
    """
    scored = []
    for order, members in enumerate(_per_answer(candidates, task)):
        seen: set[str] = set()
        hits = masks = 0
        for c in members:
            key = trajectory_key(c)
            v = verdicts.get(key)
            if v is not None and key not in seen:
                seen.add(key)
                hits, masks = hits + v["agreements"], masks + v["masks"]
        scored.append((len(members) * (hits + 1) / (masks + 2), -order, members, hits))
    if not any(h for *_, h in scored):  # the discriminator backed nothing: generator@maj
        return generator_majority(candidates, task, prior, "generator_maj_fallback")
    total = sum(s for s, *_ in scored) or 1.0
    score, _, members, _ = max(scored, key=lambda t: (t[0], t[1]))

    def shown(c: Candidate) -> tuple[bool, float, float]:
        # The trajectory users see: a consistent one if there is, the best-backed first.
        v = verdicts.get(trajectory_key(c))
        backed = v["agreements"] / v["masks"] if v and v["masks"] else 0.0
        return bool(v and v["consistent"]), backed, c["reward"] * shrunk_confidence(c, prior)

    return _final(members[0]["answer"], score / total, max(members, key=shown), "discriminator")


def _consistent_maj(survivors, checked, task, prior) -> Final:
    vote = majority_vote([c["answer"] for c in survivors], task)
    best = _best_trajectory(survivors, vote.answer, task, prior)
    return _final(vote.answer, vote.confidence, best, "discriminator")


Rule = Callable[[Sequence[Candidate], Sequence[Candidate], str, float], Final]
RULES: dict[str, Rule | None] = {
    "mutual": None,  # all candidates x agreement rates (handled in select)
    "paper": _paper,
    "paper_argmax": _paper_argmax,
    "reference_code": _reference_code,
    "consistent_maj": _consistent_maj,
    "generator_maj": None,  # no discriminator
}


def select(
    candidates: Sequence[Candidate],
    verdicts: Mapping[str, Verdict] | None,
    *,
    rule: str,
    task: str,
    prior: float = 2.0,
    skipped_reason: str | None = None,
) -> Final:
    """Choose the final answer under ``rule``, without any label.

    Args:
        candidates: every candidate trajectory of the search (duplicates included: a duplicate
            is extra evidence for its answer).
        verdicts: the discriminator's verdict per :func:`trajectory_key`; ``None`` when the
            check was skipped.
        rule: one of :data:`RULES`.
        task: task or answer family, for answer equivalence.
        prior: pseudo-samples that shrink small-sample confidences (``paper`` rule).
        skipped_reason: why the check was skipped ("unanimous", "disabled", ...), if it was.
    """
    if rule not in RULES:
        raise ValueError(f"unknown selection rule {rule!r}; known: {', '.join(RULES)}")
    if not candidates:
        return _final(None, 0.0, None, "none")
    if verdicts is None or rule == "generator_maj":
        method = "unanimous" if skipped_reason == "unanimous" else "generator_maj"
        return generator_majority(candidates, task, prior, method)
    if rule == "mutual":
        return _mutual(candidates, verdicts, task, prior)
    checked = [c for c in candidates if trajectory_key(c) in verdicts]
    survivors = [c for c in checked if verdicts[trajectory_key(c)]["consistent"]]
    if not survivors:
        return generator_majority(candidates, task, prior, "generator_maj_fallback")
    fn = RULES[rule]
    assert fn is not None
    return fn(survivors, checked, task, prior)
