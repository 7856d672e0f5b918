"""Mutual consistency: a second SLM completes masked trajectories; the answer is picked label-free.

For each distinct candidate trajectory the discriminator gets the question and a prefix of the
trajectory and writes the rest. A candidate whose answer the discriminator reproduces often
enough (the agreement rule) is "mutually consistent"; the final answer is chosen among those by a
rule of :mod:`langgraph_rstar.selection`. Nothing here reads a gold answer: only the question and
the candidates go in.

A prefix never shows the candidate's answer: masks are cut before the first step that mentions
it (in a GSM8K trajectory the step before "The answer is 360." usually says "... = 360"), so an
agreement is the discriminator's own finding, not a copy.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Any

from typing_extensions import TypedDict

from langgraph_rstar.answers import answers_equal, majority_vote, mentions_answer
from langgraph_rstar.backends import LLMBackend, Usage
from langgraph_rstar.config import RStarConfig
from langgraph_rstar.prompts import PromptPack
from langgraph_rstar.search import Candidate
from langgraph_rstar.selection import Final, Verdict, select, trajectory_key

MAX_ANSWER_CHARS = 100  # longer "answers" are extraction failures, not answers
AGREEMENT_RULES = ("loose", "mid", "majority", "strict", "plurality")


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


def skipped_verification(reason: str, usage: dict[str, int] | None = None) -> Verification:
    """A verification that did not check anything (``reason`` says why)."""
    return Verification(
        skipped=True, reason=reason, checks=[], usage=dict(usage or Usage().as_dict())
    )


def answer_limit(steps: Sequence[str], answer: str | None, task: str) -> int:
    """How many leading steps may be shown: those before the first one mentioning the answer."""
    for i, step in enumerate(steps):
        if mentions_answer(step, answer, task):
            return i
    return len(steps)


def mask_ratios(mode: str, num_masks: int, left: float, right: float, rng: random.Random):
    """Split ratios: random in [left, right] (paper) or evenly spaced from left to right (code)."""
    if mode == "paper":
        return [rng.uniform(left, right) for _ in range(num_masks)]
    if num_masks == 1:
        return [left]
    return [left + (right - left) * i / (num_masks - 1) for i in range(num_masks)]


def masked_prompts(
    question: str,
    steps: Sequence[str],
    pack: PromptPack,
    *,
    mode: str,
    ratios: Sequence[float],
    limit: int | None = None,
) -> list[tuple[str, str]]:
    """(prompt, visible prefix) per ratio; no prefix reaches past step ``limit``.

    ``paper`` keeps the first ⌊r·S⌉ whole steps and asks for the next; ``reference_code`` keeps
    the first ⌈r·W⌉ words of the rendered trajectory and lets the model continue mid-sentence.
    """
    limit = len(steps) if limit is None else max(0, min(limit, len(steps)))
    out = []
    for r in ratios:
        if mode == "paper":
            keep = min(round(r * len(steps)), limit, max(len(steps) - 1, 0))
            kept = list(steps[:keep])
            out.append((pack.solve_prompt(question, kept), pack.render_solution(kept)))
            continue
        words = pack.render_solution(steps).split(" ")
        cap = len(pack.render_solution(steps[:limit]).split(" ")) if limit else 0
        prefix = " ".join(words[: min(math.ceil(len(words) * r), cap)])
        if not prefix:
            out.append((pack.solve_prompt(question), ""))
        elif pack.solve_style == "paragraph":
            out.append((pack.solve_prompt(question) + " " + prefix, prefix))
        else:  # the prefix starts with "Step 1:": put it where the prompt's cue was
            head = pack.solve_prompt(question)[: -len(pack.label("step", 1))]
            out.append((head + prefix, prefix))
    return out


def agrees(rule: str, answer: str, answers: Sequence[str | None], task: str) -> tuple[int, bool]:
    """How many completions reproduce ``answer`` and whether that satisfies the rule.

    ``loose`` >= 1; ``mid`` at least half, rounded up (the reference code's default: 2 of 4);
    ``majority`` more than half (2 of 3, 3 of 4); ``strict`` all; ``plurality`` the completions'
    own majority vote is ``answer``.
    """
    hits = sum(1 for a in answers if answers_equal(a, answer, task))
    total = len(answers)
    if rule == "loose":
        ok = hits >= 1
    elif rule == "strict":
        ok = hits == total and total > 0
    elif rule == "majority":
        ok = 2 * hits > total
    elif rule == "plurality":
        vote = majority_vote(list(answers), task)
        ok = vote.answer is not None and answers_equal(vote.answer, answer, task)
    elif rule == "mid":
        ok = hits >= 1 and 2 * hits >= total
    else:
        raise ValueError(f"unknown agreement rule {rule!r}; known: {', '.join(AGREEMENT_RULES)}")
    return hits, ok


def distinct_candidates(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Candidates with identical trajectories and answers are checked once."""
    seen: set[str] = set()
    out = []
    for c in candidates:
        key = trajectory_key(c)
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
    on_start: Callable[[int, int], Any] | None = None,
) -> Verification:
    """Run the mutual-consistency check on every distinct candidate (all prompts at once).

    ``on_start(candidates, prompts)`` is called before the requests go out (progress views).
    """
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
        limit = answer_limit(cand["steps"], cand["answer"], config.task)
        for prompt, prefix in masked_prompts(
            question, cand["steps"], pack, mode=config.mask_mode, ratios=ratios, limit=limit
        ):
            jobs.append((i, prompt, prefix))
    if on_start is not None:
        on_start(len(pool), len(jobs))
    gen = await llm.generate(
        [p for _, p, _ in jobs],
        n=1,
        max_tokens=config.discriminator_max_tokens,
        stop=list(pack.stops["solve"]),
        temperature=config.discriminator_temperature,
        top_p=config.top_p,
        top_k=config.top_k,
        repetition_penalty=config.repetition_penalty,
    )
    usage.add(gen.usage)

    checks: list[Check] = []
    for i, cand in enumerate(pool):
        mine = [(job, gen.choices[j][0].text) for j, job in enumerate(jobs) if job[0] == i]
        completions = [text for _, text in mine]
        # Only the discriminator's own words count, read like any sample (labels stripped).
        answers = [pack.answer(text, config.task) for text in completions]
        hits, ok = agrees(config.agreement, cand["answer"], answers, config.task)
        check = Check(
            node_id=cand["node_id"],
            answer=cand["answer"],
            prefixes=[prefix for (_, _, prefix), _ in mine],
            completions=completions,
            answers=answers,
            agreements=hits,
            consistent=ok,
        )
        checks.append(check)
        if on_check is not None:
            on_check(check)
    return Verification(skipped=False, reason="checked", checks=checks, usage=usage.as_dict())


def verdicts_of(
    candidates: Sequence[Candidate],
    verification: Verification,
    *,
    agreement: str | None = None,
    task: str = "gsm8k",
) -> dict[str, Verdict] | None:
    """Verdict per trajectory key (``None`` if the check was skipped).

    A check covers every candidate with the same trajectory (they were deduplicated before
    checking), so duplicates share its verdict. ``agreement`` re-judges the stored per-mask
    answers under another rule (re-scoring without model calls).
    """
    if verification["skipped"]:
        return None
    by_id = {c["node_id"]: c for c in candidates}
    out: dict[str, Verdict] = {}
    for ch in verification["checks"]:
        if ch["node_id"] not in by_id:
            continue
        consistent = ch["consistent"]
        if agreement is not None:
            _, consistent = agrees(agreement, ch["answer"], ch["answers"], task)
        out[trajectory_key(by_id[ch["node_id"]])] = Verdict(
            consistent=consistent, agreements=ch["agreements"], masks=len(ch["answers"])
        )
    return out


def select_final(
    candidates: Sequence[Candidate], verification: Verification, config: RStarConfig
) -> Final:
    """Choose the answer without any label, under ``config.scoring`` (see :mod:`selection`)."""
    return select(
        candidates,
        verdicts_of(candidates, verification, task=config.task),
        rule=config.scoring,
        task=config.task,
        prior=config.confidence_prior,
        skipped_reason=verification["reason"] if verification["skipped"] else None,
    )


def rescore(
    candidates: Sequence[Candidate],
    verification: Verification,
    *,
    task: str,
    prior: float = 2.0,
    rules: Sequence[str] | None = None,
    agreements: Sequence[str | None] = (None,),
) -> dict[str, Final]:
    """The final answer under every selection rule (and agreement rule), without model calls.

    Keys are ``rule`` for the agreement the run used and ``rule@agreement`` for others, e.g.
    ``{"paper": ..., "reference_code": ..., "paper@loose": ...}``. This is what ``rstar report
    --rescore`` and the statistical-world benchmark print from stored runs.
    """
    from langgraph_rstar.selection import RULES

    out: dict[str, Final] = {}
    reason = verification["reason"] if verification["skipped"] else None
    for agreement in agreements:
        verdicts = verdicts_of(candidates, verification, agreement=agreement, task=task)
        for rule in rules or list(RULES):
            key = rule if agreement is None else f"{rule}@{agreement}"
            out[key] = select(
                candidates, verdicts, rule=rule, task=task, prior=prior, skipped_reason=reason
            )
    return out
