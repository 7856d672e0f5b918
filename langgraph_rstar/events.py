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


RStarEvent = Union[  # noqa: UP007 - a runtime alias that must work on Python 3.10
    RolloutStarted,
    RolloutFinished,
    NodeExpanded,
    VerificationStarted,
    CandidateVerified,
    FinalAnswer,
]
EVENT_TYPES = (
    "rstar.rollout_started",
    "rstar.rollout_finished",
    "rstar.node_expanded",
    "rstar.verification_started",
    "rstar.candidate_verified",
    "rstar.final_answer",
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


def final_answer(final: Mapping[str, Any]) -> FinalAnswer:
    return {
        "type": "rstar.final_answer",
        "answer": final["answer"],
        "confidence": final["confidence"],
        "method": final["method"],
    }


def is_rstar_event(obj: Any) -> TypeGuard[RStarEvent]:
    return isinstance(obj, Mapping) and obj.get("type") in EVENT_TYPES
