"""What the HTML view shows, read from a finished search: nodes, candidates, verdicts, the choice.

A *search* here is any mapping with a ``tree`` (the flat node map of a run) and, when known, the
run's ``question``, ``answer``, ``confidence``, ``trajectory``, ``selection``, ``verification``,
``generator_answer``, ``generator_confidence``, ``usage`` and ``config`` — the fields of
:meth:`RStarResult.to_dict` and of an ``rstar eval`` record (which adds ``gold`` and ``correct``).
Candidates are always re-read from the tree with :func:`collect_candidates` (a pure function), so
an eval record that stores only a summary of them still shows every candidate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from langgraph_rstar.search import (
    ACTIONS,
    Candidate,
    TreeNode,
    children_of,
    collect_candidates,
    is_solution,
    trajectory,
)
from langgraph_rstar.selection import trajectory_key

__all__ = ["ACTION_LABELS", "NodeView", "SearchView", "VerdictView", "build_view"]

#: Short labels of the five actions, as the paper names them.
ACTION_LABELS: dict[str, str] = {
    "a1_one_step": "A1 one step",
    "a2_remaining_steps": "A2 remaining steps",
    "a3_subquestion": "A3 sub-question",
    "a4_reanswer_subquestion": "A4 re-answer",
    "a5_rephrase_question": "A5 rephrase",
}
_ACTION_CODES: dict[str, str] = {action: f"a{i}" for i, action in enumerate(ACTIONS, 1)}


@dataclass
class VerdictView:
    """The discriminator's check of one trajectory: per mask, prefix, completion and answer."""

    consistent: bool
    agreements: int
    masks: int
    checked_node: str  # the candidate the check ran on (copies share it)
    prefixes: list[str] = field(default_factory=list)
    completions: list[str] = field(default_factory=list)
    answers: list[str | None] = field(default_factory=list)


@dataclass
class NodeView:
    """One tree node, ready to print: every string here is model text or derived from it."""

    id: str
    kind: str
    action: str | None
    action_code: str  # "a1".."a5", "root"
    action_label: str
    depth: int
    rollout: int
    visits: int
    q: float
    q_over_n: float | None  # None when never visited
    value: float | None  # majority-vote share of the samples behind the node
    agree: int
    samples: int
    answer: str | None
    terminal: bool
    solution: bool  # states a final answer (a candidate or a copy of one)
    chosen: bool  # the node the final answer's trajectory ends at
    on_chosen_path: bool
    text: str  # the node's own text (step, solution, rephrased question)
    subquestion: str | None
    subanswer: str | None
    verdict: VerdictView | None
    children: list[NodeView] = field(default_factory=list)

    @property
    def snippet(self) -> str:
        """One line for the node's summary row."""
        raw = self.subquestion if self.kind == "subquestion" else self.text or self.subanswer
        line = " ".join((raw or "").split())
        return line if len(line) <= 140 else line[:139] + "…"


@dataclass
class SearchView:
    """A whole search: its root node (with children), candidates, verdicts and the final choice."""

    question: str
    answer: str | None
    confidence: float | None
    selection: str
    generator_answer: str | None
    generator_confidence: float | None
    trajectory: list[str]
    chosen_node: str | None
    root: NodeView
    nodes: int
    candidates: list[Candidate]
    verdicts: dict[str, VerdictView]  # by candidate node id
    verification_reason: str  # "checked", "unanimous", "disabled", "no candidates", "not recorded"
    answers: list[tuple[str, int, int]]  # (answer, candidates, consistent candidates)
    usage: dict[str, dict[str, int]]
    config: dict[str, Any]
    gold: str | None = None
    correct: bool | None = None
    title: str = "rStar search"


def _verdicts(
    nodes: Mapping[str, TreeNode],
    candidates: list[Candidate],
    verification: Mapping[str, Any] | None,
) -> tuple[dict[str, VerdictView], str]:
    """Verdicts by trajectory key (a check covers every copy of its trajectory)."""
    if not verification:
        return {}, "not recorded"
    if verification.get("skipped"):
        return {}, str(verification.get("reason") or "skipped")
    by_id = {c["node_id"]: c for c in candidates}
    out: dict[str, VerdictView] = {}
    for check in verification.get("checks") or []:
        node_id = check.get("node_id")
        cand = by_id.get(node_id) if isinstance(node_id, str) else None
        if cand is None:
            continue
        answers = list(check.get("answers") or [])
        out[trajectory_key(cand)] = VerdictView(
            consistent=bool(check.get("consistent")),
            agreements=int(check.get("agreements") or 0),
            masks=len(answers),
            checked_node=str(node_id),
            prefixes=[str(p) for p in check.get("prefixes") or []],
            completions=[str(c) for c in check.get("completions") or []],
            answers=[None if a is None else str(a) for a in answers],
        )
    return out, str(verification.get("reason") or "checked")


def _chosen_node(candidates: list[Candidate], answer: Any, steps: list[str]) -> str | None:
    """The candidate whose trajectory the final answer came with (selection keeps its steps)."""
    if answer is None:
        return None
    for cand in candidates:
        if cand["answer"] == str(answer) and list(cand["steps"]) == list(steps):
            return cand["node_id"]
    return None


def build_view(search: Mapping[str, Any], *, title: str | None = None) -> SearchView:
    """Read a search (an ``RStarResult.to_dict()`` or an eval record) into a :class:`SearchView`.

    Raises:
        ValueError: the mapping holds no tree (``--full`` results and rStar eval records do).
    """
    tree = search.get("tree")
    if not isinstance(tree, Mapping) or "0" not in tree:
        raise ValueError("this result has no search tree (need a full result or an rStar record)")
    nodes: Mapping[str, TreeNode] = tree
    candidates = collect_candidates(nodes)
    by_key, reason = _verdicts(nodes, candidates, search.get("verification"))
    steps = [str(s) for s in search.get("trajectory") or []]
    chosen = _chosen_node(candidates, search.get("answer"), steps)
    chosen_path: set[str] = set()
    current: str | None = chosen
    while current is not None:
        chosen_path.add(current)
        current = nodes[current].get("parent")

    def node_view(node_id: str) -> NodeView:
        node = nodes[node_id]
        solution = is_solution(node)
        verdict = None
        if solution and by_key:
            key = trajectory_key({"steps": trajectory(nodes, node_id), "answer": node["answer"]})
            verdict = by_key.get(key)
        action = node.get("action")
        visits = int(node.get("N", 0))
        q = float(node.get("Q", 0.0))
        view = NodeView(
            id=node_id,
            kind=str(node.get("kind", "")),
            action=action,
            action_code=_ACTION_CODES.get(action or "", "root"),
            action_label=ACTION_LABELS.get(action or "", "question"),
            depth=int(node.get("depth", 0)),
            rollout=int(node.get("rollout", 0)),
            visits=visits,
            q=q,
            q_over_n=q / visits if visits else None,
            value=node.get("value"),
            agree=int(node.get("agree", 0)),
            samples=int(node.get("samples", 0)),
            answer=None if node.get("answer") is None else str(node.get("answer")),
            terminal=bool(node.get("terminal")),
            solution=solution,
            chosen=node_id == chosen,
            on_chosen_path=node_id in chosen_path,
            text=str(node.get("text") or ""),
            subquestion=node.get("subquestion"),
            subanswer=node.get("subanswer"),
            verdict=verdict,
        )
        view.children = [node_view(kid) for kid in children_of(node) if kid in nodes]
        return view

    verdicts = {c["node_id"]: by_key[k] for c in candidates if (k := trajectory_key(c)) in by_key}
    tally: dict[str, list[int]] = {}
    for cand in candidates:
        counts = tally.setdefault(cand["answer"], [0, 0])
        counts[0] += 1
        v = verdicts.get(cand["node_id"])
        counts[1] += bool(v and v.consistent)
    answers = sorted(((a, n, ok) for a, (n, ok) in tally.items()), key=lambda t: (-t[1], t[0]))
    confidence = search.get("confidence")
    gen_conf = search.get("generator_confidence")
    return SearchView(
        question=str(search.get("question") or nodes["0"].get("text") or ""),
        answer=None if search.get("answer") is None else str(search.get("answer")),
        confidence=None if confidence is None else float(confidence),
        selection=str(search.get("selection") or ""),
        generator_answer=search.get("generator_answer"),
        generator_confidence=None if gen_conf is None else float(gen_conf),
        trajectory=steps,
        chosen_node=chosen,
        root=node_view("0"),
        nodes=len(nodes),
        candidates=candidates,
        verdicts=verdicts,
        verification_reason=reason,
        answers=answers,
        usage={k: dict(v) for k, v in (search.get("usage") or {}).items()},
        config=dict(search.get("config") or {}),
        gold=None if search.get("gold") is None else str(search.get("gold")),
        correct=search.get("correct"),
        title=title or "rStar search",
    )
