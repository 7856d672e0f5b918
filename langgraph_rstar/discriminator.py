"""Mutual consistency: a second SLM completes masked trajectories; the answer is picked label-free.

For each distinct candidate trajectory the discriminator gets the question and a prefix of the
trajectory and writes the rest. A candidate whose answer the discriminator reproduces often
enough (the agreement rule) is "mutually consistent"; the final answer is chosen among those.
Nothing here reads a gold answer: only the question and the candidates go in.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Any, TypedDict

from langgraph_rstar.actions import STOP_SOLUTION
from langgraph_rstar.answers import answers_equal, extract_answer, group_answers, majority_vote
from langgraph_rstar.backends import LLMBackend, Usage
from langgraph_rstar.config import RStarConfig
from langgraph_rstar.prompts import PromptPack
from langgraph_rstar.search import Candidate

MAX_ANSWER_CHARS = 100  # longer "answers" are extraction failures, not answers


class Check(TypedDict):
    node_id: str
    answer: str
    prefixes: list[str]
    completions: list[str]
    answers: list[str | None]
    agreements: int
    consistent: bool


class Verification(TypedDict):
    skipped: bool
    reason: str
    checks: list[Check]
    usage: dict[str, int]


class Final(TypedDict):
    answer: str | None
    confidence: float
    node_id: str | None
    trajectory: list[str]
    method: str  # unanimous | discriminator | generator_maj | generator_maj_fallback | none


def render_steps(steps: Sequence[str]) -> str:
    return "\n".join(f"Step {i}: {s}" for i, s in enumerate(steps, 1))


def mask_ratios(mode: str, num_masks: int, left: float, right: float, rng: random.Random):
    """Split ratios: random in [left, right] (paper) or evenly spaced from left to right (code)."""
    if mode == "paper":
        return [rng.uniform(left, right) for _ in range(num_masks)]
    if num_masks == 1:
        return [left]
    return [left + (right - left) * i / (num_masks - 1) for i in range(num_masks)]


def masked_prompts(
    question: str, steps: Sequence[str], pack: PromptPack, *, mode: str, ratios: Sequence[float]
) -> list[tuple[str, str]]:
    """(prompt, visible prefix) per ratio.

    ``paper`` keeps the first ⌊r·S⌉ whole steps (never the last, which states the answer) and asks
    for "Step k+1:"; ``reference_code`` keeps the first ⌈r·W⌉ words of the rendered trajectory
    and lets the model continue mid-sentence.
    """
    out = []
    for r in ratios:
        if mode == "paper":
            keep = min(max(round(r * len(steps)), 0), max(len(steps) - 1, 0))
            prompt = pack.steps_prompt(question, list(steps[:keep]))
            out.append((prompt, render_steps(steps[:keep])))
        else:
            words = render_steps(steps).split(" ")
            prefix = " ".join(words[: max(1, math.ceil(len(words) * r))])
            prompt = pack.steps_prompt(question, [])
            prompt = prompt[: -len("Step 1:")] + prefix  # the prefix starts with "Step 1:"
            out.append((prompt, prefix))
    return out


def agrees(rule: str, answer: str, answers: Sequence[str | None], task: str) -> tuple[int, bool]:
    """How many completions reproduce ``answer`` and whether that satisfies the rule."""
    hits = sum(1 for a in answers if answers_equal(a, answer, task))
    total = len(answers)
    if rule == "loose":
        ok = hits >= 1
    elif rule == "strict":
        ok = hits == total and total > 0
    elif rule == "majority":
        vote = majority_vote(list(answers), task)
        ok = vote.answer is not None and answers_equal(vote.answer, answer, task)
    else:  # "mid": at least half, rounded up (the code's default: 2 of 4; 2 of 3)
        ok = hits >= 1 and 2 * hits >= total
    return hits, ok


def _trajectory_key(c: Candidate) -> tuple[str, str | None]:
    return render_steps(c["steps"]), c["answer"]


def distinct_candidates(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Candidates with identical trajectories and answers are checked once."""
    seen: set[tuple[str, str | None]] = set()
    out = []
    for c in candidates:
        key = _trajectory_key(c)
        if key not in seen and c["answer"] and len(c["answer"]) <= MAX_ANSWER_CHARS:
            seen.add(key)
            out.append(c)
    return out


async def verify_candidates(
    question: str,
    candidates: Sequence[Candidate],
    *,
    llm: LLMBackend,
    pack: PromptPack,
    config: RStarConfig,
    on_check: Callable[[Check], Any] | None = None,
) -> Verification:
    """Run the mutual-consistency check on every distinct candidate (all prompts at once)."""
    usage = Usage()
    pool = distinct_candidates(candidates)
    if not config.use_discriminator:
        return Verification(skipped=True, reason="disabled", checks=[], usage=usage.as_dict())
    if not pool:
        return Verification(skipped=True, reason="no candidates", checks=[], usage=usage.as_dict())
    vote = majority_vote([c["answer"] for c in candidates], config.task)
    if vote.confidence >= config.skip_threshold:
        return Verification(skipped=True, reason="unanimous", checks=[], usage=usage.as_dict())

    jobs: list[tuple[int, str, str]] = []  # (candidate index, prompt, prefix)
    for i, cand in enumerate(pool):
        rng = random.Random(f"{config.discriminator_seed}|{cand['node_id']}")
        ratios = mask_ratios(
            config.mask_mode, config.num_masks, config.mask_left, config.mask_right, rng
        )
        for prompt, prefix in masked_prompts(
            question, cand["steps"], pack, mode=config.mask_mode, ratios=ratios
        ):
            jobs.append((i, prompt, prefix))
    gen = await llm.generate(
        [p for _, p, _ in jobs],
        n=1,
        max_tokens=config.discriminator_max_tokens,
        stop=STOP_SOLUTION,
        temperature=config.discriminator_temperature,
        top_p=config.top_p,
        top_k=config.top_k,
        repetition_penalty=config.repetition_penalty,
    )
    usage.add(gen.usage)

    checks: list[Check] = []
    for i, cand in enumerate(pool):
        mine = [(job, gen.choices[j][0].text) for j, job in enumerate(jobs) if job[0] == i]
        completions, answers, prefixes = [], [], []
        for (_, prompt, prefix), text in mine:
            continuation = text if config.mask_mode != "paper" else _as_step(prompt, text)
            completions.append(text)
            prefixes.append(prefix)
            # Only the discriminator's own words count: an answer inside the prefix would agree
            # trivially.
            answers.append(
                extract_answer(continuation, config.task)
                if "answer is" in continuation.lower()
                else None
            )
        hits, ok = agrees(config.agreement, cand["answer"], answers, config.task)
        check = Check(
            node_id=cand["node_id"],
            answer=cand["answer"],
            prefixes=prefixes,
            completions=completions,
            answers=answers,
            agreements=hits,
            consistent=ok,
        )
        checks.append(check)
        if on_check is not None:
            on_check(check)
    return Verification(skipped=False, reason="checked", checks=checks, usage=usage.as_dict())


def _as_step(prompt: str, text: str) -> str:
    # The paper-mode prompt ends with "Step k:"; keep that label so extraction sees full lines.
    label = prompt[prompt.rfind("Step ") :]
    return f"\n{label} {text.strip()}"


def select_final(
    candidates: Sequence[Candidate], verification: Verification, config: RStarConfig
) -> Final:
    """Choose the answer without any label.

    * ``paper`` scoring: among consistent candidates, argmax of reward x terminal confidence.
    * ``reference_code`` scoring: per answer, (share of survivors) + (survival rate); argmax.
    * No survivors (or the check skipped/disabled): generator@maj over all candidates.
    """
    task = config.task
    if not candidates:
        return Final(answer=None, confidence=0.0, node_id=None, trajectory=[], method="none")
    vote = majority_vote([c["answer"] for c in candidates], task)

    def best_for(answer: str | None, pool: Sequence[Candidate]) -> Candidate:
        same = [c for c in pool if answers_equal(c["answer"], answer, task)] or list(pool)
        return max(same, key=lambda c: (c["confidence"] * c["reward"], c["confidence"]))

    def by_majority(method: str) -> Final:
        best = best_for(vote.answer, candidates)
        return Final(
            answer=vote.answer,
            confidence=vote.confidence,
            node_id=best["node_id"],
            trajectory=list(best["steps"]),
            method=method,
        )

    if verification["skipped"]:
        return by_majority(
            "unanimous" if verification["reason"] == "unanimous" else "generator_maj"
        )
    # A check covers every candidate with the same trajectory (they were deduplicated
    # before checking), so duplicates share its verdict and are scored like it.
    by_id = {c["node_id"]: c for c in candidates}
    verdict = {
        _trajectory_key(by_id[ch["node_id"]]): ch["consistent"]
        for ch in verification["checks"]
        if ch["node_id"] in by_id
    }
    checked = [c for c in candidates if _trajectory_key(c) in verdict]
    survivors = [c for c in checked if verdict[_trajectory_key(c)]]
    if not survivors:
        return by_majority("generator_maj_fallback")
    if config.scoring == "paper":
        best = max(survivors, key=lambda c: (c["reward"] * c["confidence"], c["confidence"]))
        return Final(
            answer=best["answer"],
            confidence=best["reward"] * best["confidence"],
            node_id=best["node_id"],
            trajectory=list(best["steps"]),
            method="discriminator",
        )
    groups = group_answers([c["answer"] for c in survivors], task)
    scored = []
    for members in groups:
        answer = survivors[members[0]]["answer"]
        total = sum(1 for c in checked if answers_equal(c["answer"], answer, task))
        score = len(members) / len(survivors) + len(members) / max(1, total)
        scored.append((score, -members[0], answer))
    score, _, answer = max(scored)
    best = best_for(answer, survivors)
    return Final(
        answer=answer,
        confidence=score / 2,
        node_id=best["node_id"],
        trajectory=list(best["steps"]),
        method="discriminator",
    )
