"""Typed progress events, written to LangGraph's ``custom`` stream and passed to ``on_event``.

Every event is a plain dict with a ``type`` key, so it survives any transport (SSE, JSON logs).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeGuard, Union

from typing_extensions import TypedDict


class RolloutStarted(TypedDict):
    type: Literal["rstar.rollout_started"]
    rollout: int
    num_rollouts: int


class RolloutFinished(TypedDict):
    type: Literal["rstar.rollout_finished"]
    rollout: int
    node_id: str
    depth: int
    answer: str | None
    reward: float


class ExpandedChild(TypedDict):
    id: str
    kind: str
    answer: str | None
    value: float | None
    terminal: bool


class NodeExpanded(TypedDict):
    type: Literal["rstar.node_expanded"]
    action: str
    node_id: str
    children: list[ExpandedChild]


class VerificationStarted(TypedDict):
    """The discriminator starts: ``prompts`` masked prefixes of ``candidates`` trajectories."""

    type: Literal["rstar.verification_started"]
    candidates: int
    prompts: int


class CandidateVerified(TypedDict):
    type: Literal["rstar.candidate_verified"]
    node_id: str
    answer: str
    agreements: int
    masks: int
    consistent: bool


class FinalAnswer(TypedDict):
    type: Literal["rstar.final_answer"]
    answer: str | None
    confidence: float
    method: str
    budget_exhausted: str | None  # the budget limit that cut the search short, if one did
    discriminator_error: str | None  # set when the generator's vote replaced a dead discriminator


class BudgetExhausted(TypedDict):
    """A budget limit was reached: nothing new starts; the answer comes from what exists."""

    type: Literal["rstar.budget_exhausted"]
    limit: str  # max_requests | max_generated_tokens | max_seconds
    requests: int
    generated_tokens: int
    seconds: float
    rollouts_finished: int
    rollouts_stopped: list[int]  # rollouts cut short where they were
    num_rollouts: int


class DiscriminatorFailed(TypedDict):
    """The discriminator's endpoint failed: the answer is the generator's majority vote."""

    type: Literal["rstar.discriminator_failed"]
    error: str
    fallback: str


RStarEvent = Union[  # noqa: UP007 - a runtime alias that must work on Python 3.10
    RolloutStarted,
    RolloutFinished,
    NodeExpanded,
    VerificationStarted,
    CandidateVerified,
    FinalAnswer,
    BudgetExhausted,
    DiscriminatorFailed,
]
EVENT_TYPES = (
    "rstar.rollout_started",
    "rstar.rollout_finished",
    "rstar.node_expanded",
    "rstar.verification_started",
    "rstar.candidate_verified",
    "rstar.final_answer",
    "rstar.budget_exhausted",
    "rstar.discriminator_failed",
)


def rollout_started(rollout: int, num_rollouts: int) -> RolloutStarted:
    return {"type": "rstar.rollout_started", "rollout": rollout, "num_rollouts": num_rollouts}


def rollout_finished(run: Mapping[str, Any], end: Mapping[str, Any]) -> RolloutFinished:
    return {
        "type": "rstar.rollout_finished",
        "rollout": run["id"],
        "node_id": end["id"],
        "depth": end["depth"],
        # A node the depth limit cut off may hold an intermediate sub-answer: not an answer.
        "answer": end.get("answer") if end.get("terminal") else None,
        "reward": run["reward"],
    }


def node_expanded(action: str, node_id: str, nodes: Mapping[str, Any]) -> NodeExpanded:
    children = [
        ExpandedChild(
            id=n["id"],
            kind=n["kind"],
            answer=n.get("answer"),
            value=n.get("value"),
            terminal=bool(n.get("terminal")),
        )
        for key, n in nodes.items()
        if key != node_id
    ]
    return {
        "type": "rstar.node_expanded",
        "action": action,
        "node_id": node_id,
        "children": children,
    }


def verification_started(candidates: int, prompts: int) -> VerificationStarted:
    return {"type": "rstar.verification_started", "candidates": candidates, "prompts": prompts}


def candidate_verified(check: Mapping[str, Any]) -> CandidateVerified:
    return {
        "type": "rstar.candidate_verified",
        "node_id": check["node_id"],
        "answer": check["answer"],
        "agreements": check["agreements"],
        "masks": len(check["answers"]),
        "consistent": check["consistent"],
    }


def final_answer(final: Mapping[str, Any], state: Mapping[str, Any] | None = None) -> FinalAnswer:
    return {
        "type": "rstar.final_answer",
        "answer": final["answer"],
        "confidence": final["confidence"],
        "method": final["method"],
        "budget_exhausted": (state or {}).get("budget_exhausted"),
        "discriminator_error": (state or {}).get("discriminator_error"),
    }


def budget_exhausted(
    limit: str, spent: Any, state: Mapping[str, Any], stopped: list[int]
) -> BudgetExhausted:
    """``spent`` is a :class:`~langgraph_rstar.search.Spent`; ``state`` the run state."""
    rollouts = (state.get("rollouts") or {}).values()
    return {
        "type": "rstar.budget_exhausted",
        "limit": limit,
        "requests": spent.requests,
        "generated_tokens": spent.generated_tokens,
        "seconds": round(spent.seconds, 3),
        "rollouts_finished": sum(1 for r in rollouts if r["done"]),
        "rollouts_stopped": list(stopped),
        "num_rollouts": (state.get("config") or {}).get("num_rollouts", 0),
    }


def discriminator_failed(error: str) -> DiscriminatorFailed:
    return {"type": "rstar.discriminator_failed", "error": error, "fallback": "generator_maj"}


def is_rstar_event(obj: Any) -> TypeGuard[RStarEvent]:
    return isinstance(obj, Mapping) and obj.get("type") in EVENT_TYPES
