"""The evaluated methods: what each one predicts for a question (the gold is never seen here).

* ``cot``: one greedy chain of thought (temperature 0) from the few-shot steps prompt.
* ``sc``: self-consistency, ``K`` samples at the config temperature in one request, majority vote.
* ``rstar-generator``: rStar's MCTS without the discriminator (prediction = generator@maj).
* ``rstar``: full rStar, generator plus discriminator (prediction = the final answer).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from langgraph_rstar.eval.records import _COUNTERS, _ROLES

if TYPE_CHECKING:  # pragma: no cover - typing only
    from langgraph_rstar.config import RStarConfig
    from langgraph_rstar.endpoints import Endpoints

__all__ = ["METHODS", "RSTAR_METHODS"]

METHODS: tuple[str, ...] = ("cot", "sc", "rstar-generator", "rstar")
RSTAR_METHODS: tuple[str, ...] = ("rstar-generator", "rstar")


def _empty_usage() -> dict[str, dict[str, int]]:
    return {role: dict.fromkeys(_COUNTERS, 0) for role in _ROLES}


def _usage_from(raw: Mapping[str, Any] | None) -> dict[str, dict[str, int]]:
    usage = _empty_usage()
    for role in _ROLES:
        for key in _COUNTERS:
            usage[role][key] = int(((raw or {}).get(role) or {}).get(key) or 0)
    return usage


async def _predict_samples(
    question: str, ends: Endpoints, cfg: RStarConfig, *, n: int, greedy: bool
) -> dict[str, Any]:
    """cot (one greedy sample) and sc (``n`` samples in one request, majority vote)."""
    from langgraph_rstar.answers import majority_vote

    pack = cfg.prompt_pack()
    gen = await ends.target.generate(
        [pack.solve_prompt(question)],
        n=n,
        max_tokens=cfg.max_tokens_cot,
        stop=list(pack.stops["solve"]),
        temperature=0.0 if greedy else cfg.temperature,
        top_p=cfg.top_p,
        top_k=cfg.top_k,
        repetition_penalty=cfg.repetition_penalty,
    )
    texts = [c.text for c in gen.choices[0]]
    # Read like rStar's samples: labels stripped, an answer must be stated.
    answers = [pack.answer(t, cfg.task) for t in texts]
    # Symbolic comparisons (math500) can take a while: keep them off the event loop.
    vote = await asyncio.to_thread(majority_vote, answers, cfg.task)
    return {
        "prediction": vote.answer,
        "confidence": vote.confidence,
        "candidates": answers,
        "outputs": texts,
        "usage": {"target": gen.usage.as_dict(), "discriminator": dict.fromkeys(_COUNTERS, 0)},
    }


async def _predict_rstar(
    question: str, ends: Endpoints, cfg: RStarConfig, *, discriminator: bool
) -> dict[str, Any]:
    from langgraph_rstar.api import RStarError, asolve

    try:
        result = await asolve(
            question,
            target=ends.target,
            discriminator=ends.discriminator,
            config=cfg.replace(use_discriminator=discriminator),
        )
    except RStarError as exc:
        usage = exc.partial.usage if exc.partial is not None else None
        raise _QuestionFailed(str(exc), _usage_from(usage)) from exc
    # Everything selection needs, so `rstar report --rescore` can re-run every rule offline.
    candidates = [dict(c) for c in result.candidates]
    return {
        "prediction": result.answer if discriminator else result.generator_answer,
        "confidence": result.confidence if discriminator else result.generator_confidence,
        "candidates": candidates,
        "generator_answer": result.generator_answer,
        "generator_confidence": result.generator_confidence,
        "selection": result.selection if discriminator else "generator_maj",
        "trajectory": result.trajectory,
        "verification": dict(result.verification),
        "usage": _usage_from(result.usage),
        "tree": result.tree,  # for `rstar report --html`
        "budget_exhausted": result.budget_exhausted,
        "discriminator_error": result.discriminator_error,
    }


class _QuestionFailed(Exception):
    """A question failed after spending some requests (kept for the error record)."""

    def __init__(self, message: str, usage: dict[str, dict[str, int]]) -> None:
        super().__init__(message)
        self.usage = usage


async def _predict(
    method: str, question: str, ends: Endpoints, cfg: RStarConfig, sc_k: int
) -> dict[str, Any]:
    if method == "cot":
        return await _predict_samples(question, ends, cfg, n=1, greedy=True)
    if method == "sc":
        return await _predict_samples(question, ends, cfg, n=sc_k, greedy=False)
    return await _predict_rstar(question, ends, cfg, discriminator=method == "rstar")
