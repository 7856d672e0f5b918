"""The pure rStar search core: tree records, action grammar, UCT with virtual loss, rollouts.

No I/O here. The tree is a flat ``dict[node_id, TreeNode]`` of JSON-native values, so it lives in
LangGraph state under any checkpointer. The controller (:func:`advance`) moves every in-flight
rollout as far as it can without a model call and returns the expansions it needs; the graph runs
those as action nodes and calls :func:`advance` again. With one rollout in flight this is exactly
the sequential loop of the paper's code: select (UCT, unexplored children first) -> expand ->
simulate (uniformly random children, expanding on the way) -> back-propagate the terminal reward.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from typing_extensions import TypedDict

from langgraph_rstar.answers import majority_vote

Action = Literal[
    "a1_one_step",
    "a2_remaining_steps",
    "a3_subquestion",
    "a4_reanswer_subquestion",
    "a5_rephrase_question",
]
ACTIONS: tuple[Action, ...] = (
    "a1_one_step",
    "a2_remaining_steps",
    "a3_subquestion",
    "a4_reanswer_subquestion",
    "a5_rephrase_question",
)
NodeKind = Literal[
    "question", "rephrased", "one_step", "direct_answer", "subquestion", "re_subanswer"
]

# Short codes make readable, deterministic child ids such as "0.q1.s0.d0".
ACTION_CODES: dict[str, str] = {
    "a1_one_step": "s",
    "a2_remaining_steps": "d",
    "a3_subquestion": "q",
    "a4_reanswer_subquestion": "r",
    "a5_rephrase_question": "p",
}

# The action grammar of rStar (which action may follow which node kind).
GRAMMAR: dict[str, tuple[Action, ...]] = {
    "question": ("a1_one_step", "a2_remaining_steps", "a3_subquestion", "a5_rephrase_question"),
    "rephrased": ("a1_one_step", "a2_remaining_steps", "a3_subquestion"),
    "subquestion": (
        "a1_one_step",
        "a2_remaining_steps",
        "a3_subquestion",
        "a4_reanswer_subquestion",
    ),
    "re_subanswer": ("a1_one_step", "a2_remaining_steps", "a3_subquestion"),
    "one_step": ("a1_one_step", "a2_remaining_steps"),
    "direct_answer": (),
}
UNVISITED_UCT = 999.0  # the reference value for a child never visited


class TreeNode(TypedDict, total=False):
    """One node of the search tree (JSON-native)."""

    id: str
    parent: str | None
    depth: int
    kind: NodeKind
    action: Action | None  # the action that created it
    text: str  # question / rephrased question / step / full remaining steps (plain text)
    steps: list[str]  # the reasoning steps this node adds to its path (labels removed)
    subquestion: str | None
    subanswer: str | None
    answer: str | None  # the answer the node states (a sub-answer for sub-questions)
    value: float | None  # majority-vote confidence of the samples behind the node: agree/samples
    samples: int  # how many samples voted on the node's answer
    agree: int  # how many of them gave the node's answer
    terminal: bool  # a finished solution (by kind): its answer is a final answer
    rollout: int  # the rollout whose expansion created the node
    children: dict[str, list[str]]  # action -> child ids, filled when that action finished
    expanding: list[str]  # actions dispatched for this node
    N: int  # visits (back-propagated rollouts)
    Q: float  # total reward
    VL: int  # virtual loss: rollouts in flight through this node


class Rollout(TypedDict):
    """One rollout's progress, kept in state so a resumed run continues it."""

    id: int
    path: list[str]
    phase: Literal["select", "simulate"]
    done: bool
    reward: float


class Expansion(TypedDict):
    node_id: str
    actions: list[Action]
    rollout: int


def merge_nodes(
    left: Mapping[str, TreeNode] | None, right: Mapping[str, TreeNode] | None
) -> dict[str, TreeNode]:
    """Reducer for the tree: per-node field merge; `children` maps are merged per action.

    Several action nodes finish concurrently and each adds its own `children[action]` to the
    same parent, so a plain per-node overwrite would lose children.
    """
    merged = dict(left or {})
    for node_id, update in (right or {}).items():
        if node_id not in merged:
            merged[node_id] = dict(update)  # type: ignore[assignment]
            continue
        node = dict(merged[node_id])
        for key, value in update.items():
            if key == "children":
                node["children"] = {**node.get("children", {}), **value}  # type: ignore[dict-item]
            else:
                node[key] = value
        merged[node_id] = node  # type: ignore[assignment]
    return merged


def make_root(question: str) -> TreeNode:
    return new_node("0", None, 0, "question", None, text=question)


def new_node(
    node_id: str,
    parent: str | None,
    depth: int,
    kind: NodeKind,
    action: Action | None,
    **fields: Any,
) -> TreeNode:
    node: TreeNode = {
        "id": node_id,
        "parent": parent,
        "depth": depth,
        "kind": kind,
        "action": action,
        "text": "",
        "steps": [],
        "subquestion": None,
        "subanswer": None,
        "answer": None,
        "value": None,
        "samples": 0,
        "agree": 0,
        "terminal": kind == "direct_answer",
        "rollout": 0,
        "children": {},
        "expanding": [],
        "N": 0,
        "Q": 0.0,
        "VL": 0,
    }
    node.update(fields)  # type: ignore[typeddict-item]
    return node


def child_id(parent_id: str, action: str, index: int) -> str:
    return f"{parent_id}.{ACTION_CODES[action]}{index}"


# --------------------------------------------------------------------------- grammar & rewards


def allowed_actions(
    node: TreeNode, *, enable_a1: bool = True, enable_a5: bool = True
) -> list[Action]:
    """The actions rStar may take from ``node`` (empty for terminal nodes)."""
    if node.get("terminal"):
        return []
    actions = list(GRAMMAR[node["kind"]])
    if not enable_a1:
        actions = [a for a in actions if a != "a1_one_step"]
    if not enable_a5:
        actions = [a for a in actions if a != "a5_rephrase_question"]
    return actions


def is_expanded(node: TreeNode) -> bool:
    expanding = node.get("expanding") or []
    return bool(expanding) and all(a in node.get("children", {}) for a in expanding)


def reward_of(node: TreeNode) -> float:
    """A rollout's reward at ``node``: the self-consistency confidence of a finished solution.

    Only a terminal node (a direct answer, a final sub-question or its re-answer, an A1 step
    that states the answer when those end a path) with an answer earns it. A node where the
    depth limit cut the path off, an intermediate sub-answer included, scores 0.
    """
    if not node.get("terminal") or node.get("answer") is None:
        return 0.0
    return float(node.get("value") or 0.0)


def children_of(node: TreeNode) -> list[str]:
    out: list[str] = []
    for action in ACTIONS:  # fixed order keeps random choices reproducible
        out.extend(node.get("children", {}).get(action, []))
    return out


def uct(child: TreeNode, parent_visits: int, c: float) -> float:
    """UCT = Q/N + c*sqrt(ln N_parent / N), with in-flight rollouts counted as zero-reward visits.

    The parent's count uses real visits only, so with a single rollout in flight (whose own
    virtual loss never sits on the siblings it compares) the choice equals the sequential one.
    """
    visits = child.get("N", 0) + child.get("VL", 0)
    if visits == 0:
        return UNVISITED_UCT
    exploit = child.get("Q", 0.0) / visits
    explore = c * math.sqrt(math.log(parent_visits) / visits) if parent_visits > 0 else 0.0
    return exploit + explore


def _rng(seed: int, *parts: object) -> random.Random:
    # A fresh RNG per decision keyed by (seed, rollout, node, phase): the same state always makes
    # the same choice, so a run resumed from a checkpoint retraces its steps.
    return random.Random(f"{seed}|" + "|".join(map(str, parts)))


def select_child(
    nodes: Mapping[str, TreeNode], node_id: str, c: float, seed: int, rollout: int
) -> tuple[str, bool]:
    """Selection step. Returns (child id, stop_selecting).

    Unexplored children (never back-propagated and not claimed by another rollout) come first,
    one picked uniformly at random, and selection stops there; otherwise descend by UCT.
    """
    node = nodes[node_id]
    kids = children_of(node)
    unexplored = [k for k in kids if nodes[k].get("N", 0) == 0 and nodes[k].get("VL", 0) == 0]
    if unexplored:
        return _rng(seed, rollout, node_id, "unexplored").choice(unexplored), True
    parent_visits = node.get("N", 0)
    best = max(kids, key=lambda k: (uct(nodes[k], parent_visits, c), -kids.index(k)))
    return best, False


def simulate_child(nodes: Mapping[str, TreeNode], node_id: str, seed: int, rollout: int) -> str:
    """Simulation step: a uniformly random child, avoiding ones other rollouts have claimed.

    With one rollout in flight no sibling is ever claimed, so this is the plain random choice.
    """
    kids = children_of(nodes[node_id])
    free = [k for k in kids if nodes[k].get("VL", 0) == 0]
    return _rng(seed, rollout, node_id, "simulate").choice(free or kids)


# --------------------------------------------------------------------------- the controller


def free_frontier(nodes: Mapping[str, TreeNode]) -> int:
    """Nodes below the root that no rollout has visited or claimed yet."""
    return sum(1 for k, n in nodes.items() if k != "0" and not n.get("N") and not n.get("VL"))


@dataclass
class Spent:
    """What a search has used so far, to compare with its budget."""

    requests: int = 0
    generated_tokens: int = 0
    seconds: float = 0.0

    @classmethod
    def from_usage(cls, usage: Mapping[str, Mapping[str, int]] | None, seconds: float) -> Spent:
        """Sum the per-role usage counters (``{"target": {...}, "discriminator": {...}}``)."""
        roles = (usage or {}).values()
        return cls(
            requests=sum(int(u.get("requests", 0)) for u in roles),
            generated_tokens=sum(int(u.get("completion_tokens", 0)) for u in roles),
            seconds=seconds,
        )


@dataclass
class SearchSettings:
    num_rollouts: int
    rollouts_in_flight: int = 1
    max_depth: int = 5
    exploration_weight: float = 2.0
    seed: int = 42
    enable_a1: bool = True
    enable_a5: bool = True
    # Budget (None: no limit). Once one is reached no rollout starts or continues.
    max_requests: int | None = None
    max_generated_tokens: int | None = None
    max_seconds: float | None = None
    frontier_margin: int = 0

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SearchSettings:
        return cls(
            num_rollouts=config["num_rollouts"],
            rollouts_in_flight=config["rollouts_in_flight"],
            max_depth=config["max_depth"],
            exploration_weight=config["exploration_weight"],
            seed=config["seed"],
            enable_a1=config["enable_a1"],
            enable_a5=config["enable_a5"],
            max_requests=config.get("max_requests"),
            max_generated_tokens=config.get("max_generated_tokens"),
            max_seconds=config.get("max_seconds"),
        )

    def exhausted(self, spent: Spent | None) -> str | None:
        """The name of the first budget limit ``spent`` has reached, or ``None``."""
        if spent is None:
            return None
        limits = (
            ("max_requests", self.max_requests, spent.requests),
            ("max_generated_tokens", self.max_generated_tokens, spent.generated_tokens),
            ("max_seconds", self.max_seconds, spent.seconds),
        )
        for name, limit, used in limits:
            if limit is not None and used >= limit:
                return name
        return None


@dataclass
class Step:
    """What one controller call decided."""

    nodes: dict[str, TreeNode] = field(default_factory=dict)  # changed nodes (whole records)
    rollouts: dict[str, Rollout] = field(default_factory=dict)  # all rollouts after the call
    expansions: list[Expansion] = field(default_factory=list)
    started: list[int] = field(default_factory=list)
    finished: list[Rollout] = field(default_factory=list)
    stopped: list[int] = field(default_factory=list)  # rollouts cut short by the budget
    exhausted: str | None = None  # the budget limit that stopped the search, if one did
    done: bool = False


def advance(
    nodes: Mapping[str, TreeNode],
    rollouts: Mapping[str, Rollout],
    settings: SearchSettings,
    spent: Spent | None = None,
) -> Step:
    """Move every rollout forward until it needs an expansion or ends; start new ones.

    Expansions requested this call are dispatched together; a rollout that needs a node another
    rollout is already expanding simply waits for the next call.

    With ``spent`` at or over a budget limit of ``settings``, nothing moves: rollouts in flight
    are stopped where they are (their virtual loss released, nothing back-propagated, since they
    reached no reward), none starts, and the step is ``done`` with ``exhausted`` naming the limit.
    """
    tree: dict[str, TreeNode] = {k: v for k, v in nodes.items()}
    changed: set[str] = set()
    # (a rollout's only nested value is its path: a copy of that list is a deep copy)
    runs: dict[str, Rollout] = {k: {**v, "path": list(v["path"])} for k, v in rollouts.items()}
    step = Step()
    pending: dict[str, Expansion] = {}

    def edit(node_id: str) -> TreeNode:
        if node_id not in changed:
            tree[node_id] = copy.deepcopy(tree[node_id])
            changed.add(node_id)
        return tree[node_id]

    def terminal(node: TreeNode) -> bool:
        return bool(node.get("terminal")) or node["depth"] >= settings.max_depth

    def finish(run: Rollout) -> None:
        reward = reward_of(tree[run["path"][-1]])
        for node_id in run["path"]:
            node = edit(node_id)
            node["N"] = node.get("N", 0) + 1
            node["Q"] = node.get("Q", 0.0) + reward
            node["VL"] = max(0, node.get("VL", 0) - 1)
        run["done"] = True
        run["reward"] = reward
        step.finished.append({**run, "path": list(run["path"])})

    def visit(run: Rollout, node_id: str) -> None:
        run["path"].append(node_id)
        node = edit(node_id)
        node["VL"] = node.get("VL", 0) + 1

    def walk(run: Rollout) -> None:
        """Advance one rollout; returns when it waits on an expansion or has finished."""
        while True:
            node_id = run["path"][-1]
            node = tree[node_id]
            if terminal(node):
                finish(run)
                return
            if not is_expanded(node):
                # A node another rollout is expanding (asked for in this call or an earlier
                # one whose actions have not all returned): wait for it.
                if node_id not in pending and not node.get("expanding"):
                    actions = allowed_actions(
                        node, enable_a1=settings.enable_a1, enable_a5=settings.enable_a5
                    )
                    if not actions:
                        finish(run)
                        return
                    pending[node_id] = Expansion(
                        node_id=node_id, actions=actions, rollout=run["id"]
                    )
                run["phase"] = "simulate"
                return
            if not children_of(node):  # every action came back empty: a dead end
                finish(run)
                return
            if run["phase"] == "select":
                child, stop = select_child(
                    tree, node_id, settings.exploration_weight, settings.seed, run["id"]
                )
                if stop:
                    run["phase"] = "simulate"
            else:
                child = simulate_child(tree, node_id, settings.seed, run["id"])
            visit(run, child)

    started_count = len(runs)
    step.exhausted = settings.exhausted(spent)
    if step.exhausted is not None:
        for run in sorted(runs.values(), key=lambda r: r["id"]):
            if not run["done"]:
                for node_id in run["path"]:
                    node = edit(node_id)
                    node["VL"] = max(0, node.get("VL", 0) - 1)
                run["done"] = True
                step.stopped.append(run["id"])
        step.nodes = {k: tree[k] for k in changed}
        step.rollouts = runs
        step.done = True
        return step
    while True:
        for run in sorted(runs.values(), key=lambda r: r["id"]):
            if not run["done"]:
                walk(run)
        in_flight = sum(1 for r in runs.values() if not r["done"])
        if in_flight >= settings.rollouts_in_flight or started_count >= settings.num_rollouts:
            break
        if in_flight and free_frontier(tree) < in_flight + settings.frontier_margin:
            break  # no unexplored node of its own for another rollout: keep the slot for later
        # Start a rollout only after back-propagating finished ones, as the sequential loop does.
        rid = started_count
        started_count += 1
        run = Rollout(id=rid, path=[], phase="select", done=False, reward=0.0)
        runs[str(rid)] = run
        visit(run, "0")
        step.started.append(rid)

    for node_id, exp in pending.items():
        edit(node_id)["expanding"] = list(exp["actions"])
    step.expansions = list(pending.values())
    step.nodes = {k: tree[k] for k in changed}
    step.rollouts = runs
    step.done = started_count >= settings.num_rollouts and all(r["done"] for r in runs.values())
    return step


# --------------------------------------------------------------------------- reading the tree


def path_to(nodes: Mapping[str, TreeNode], node_id: str) -> list[TreeNode]:
    path = []
    current: str | None = node_id
    while current is not None:
        path.append(nodes[current])
        current = nodes[current]["parent"]
    return list(reversed(path))


def strip_answer_sentence(text: str) -> str:
    """Drop a trailing "The answer is ..." so an intermediate sub-answer reads as a step."""
    idx = text.lower().rfind("the answer is")
    return text[:idx].strip() if idx > 0 else text.strip()


class PathContext(TypedDict):
    """What an action needs from the path to its node: small, so it travels in a Send."""

    node_id: str
    question: str  # the user's question
    active_question: str  # the rephrased question when A5 was taken on the path
    steps: list[str]  # step texts so far (sub-answers re-expressed as steps, then A1 steps)
    subqas: list[list[str]]  # answered sub-questions so far: [question, answer]
    last_subquestion: str | None
    depth: int
    rollout: int


def path_context(nodes: Mapping[str, TreeNode], node_id: str, rollout: int = 0) -> PathContext:
    path = path_to(nodes, node_id)
    question = path[0]["text"]
    active = question
    steps: list[str] = []
    subqas: list[list[str]] = []
    last_subq: str | None = None
    for node in path[1:]:
        kind = node["kind"]
        if kind == "rephrased":
            active = node["text"]
        elif kind == "subquestion":
            subqas.append([node["subquestion"] or "", node["subanswer"] or ""])
            steps.append(strip_answer_sentence(node["subanswer"] or ""))
            last_subq = node["subquestion"]
        elif kind == "re_subanswer":
            # A re-answer replaces the answer of the sub-question it re-answers.
            if subqas:
                subqas[-1][1] = node["subanswer"] or ""
                steps[-1] = strip_answer_sentence(node["subanswer"] or "")
        elif kind == "one_step":
            steps.append(node["text"])
    return PathContext(
        node_id=node_id,
        question=question,
        active_question=active,
        steps=steps,
        subqas=subqas,
        last_subquestion=last_subq,
        depth=path[-1]["depth"],
        rollout=rollout,
    )


def trajectory(nodes: Mapping[str, TreeNode], node_id: str) -> list[str]:
    """The reasoning steps of the path ending at ``node_id``, as plain step sentences."""
    ctx = path_context(nodes, node_id)
    steps = [s for s in ctx["steps"] if s]
    end = nodes[node_id]
    if end["kind"] in ("subquestion", "re_subanswer") and end.get("answer") is not None:
        steps[-1:] = [(end.get("subanswer") or "").strip()]  # keep the final "The answer is"
    elif end["kind"] == "direct_answer":
        steps.extend(end.get("steps") or split_steps(end["text"]))
    return steps


def split_steps(text: str) -> list[str]:
    """Split "Step 1: ...\\nStep 2: ..." into step sentences (prefixes removed)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.lower().startswith("step ") and ":" in line[:10]:
            line = line.split(":", 1)[1].strip()
        out.append(line)
    return out


class Candidate(TypedDict):
    """A trajectory that reached an answer: what the discriminator checks and selection scores."""

    node_id: str
    rollout: int
    kind: str
    answer: str
    steps: list[str]
    confidence: float  # the terminal node's majority-vote confidence (agree / samples)
    agree: int
    samples: int
    path_values: list[float]  # Q/N of each node below the root on the path (value if unvisited)
    reward: float  # the trajectory's reward: mean of path_values
    visits: int
    copies: int  # nodes of the tree with this same trajectory and answer (counted once)


def is_solution(node: TreeNode) -> bool:
    """A node whose answer is a final answer: a terminal one, or an A1 step that states the
    answer when such steps do not end a path (the reference code harvests those too)."""
    return node.get("answer") is not None and (
        bool(node.get("terminal")) or node["kind"] == "one_step"
    )


def node_value(node: TreeNode) -> float:
    """Q/N of a visited node; the confidence of its samples if no rollout went through it."""
    visits = node.get("N", 0)
    return node.get("Q", 0.0) / visits if visits else float(node.get("value") or 0.0)


def collect_candidates(nodes: Mapping[str, TreeNode]) -> list[Candidate]:
    """The distinct trajectories of the final tree that state a final answer, in id order.

    Nodes with the same steps and answer (identical A1 samples kept apart, for instance) are one
    candidate whose ``copies`` says how many there were: a copy is no new evidence, so votes and
    selection count each trajectory once.
    """
    out: list[Candidate] = []
    seen: dict[tuple[str, str], Candidate] = {}
    for node_id in sorted(nodes, key=_id_key):
        node = nodes[node_id]
        if not is_solution(node):
            continue
        steps = trajectory(nodes, node_id)
        key = ("\n".join(steps), node["answer"] or "")
        if key in seen:
            seen[key]["copies"] += 1
            continue
        values = [node_value(n) for n in path_to(nodes, node_id)[1:]]
        out.append(
            Candidate(
                node_id=node_id,
                rollout=node.get("rollout", 0),
                kind=node["kind"],
                answer=node["answer"] or "",
                steps=steps,
                confidence=float(node.get("value") or 0.0),
                agree=int(node.get("agree", 0)),
                samples=int(node.get("samples", 0)),
                path_values=values,
                reward=sum(values) / len(values) if values else 0.0,
                visits=node.get("N", 0),
                copies=1,
            )
        )
        seen[key] = out[-1]
    return out


def _id_key(node_id: str) -> tuple[Any, ...]:
    return tuple(
        (p[0], int(p[1:]) if p[1:].isdigit() else 0) if p[0].isalpha() else ("", int(p))
        for p in node_id.split(".")
    )


def generator_vote(candidates: Iterable[Candidate], task: str, max_rollout: int | None = None):
    """rStar generator@maj: majority vote over candidate answers (optionally rollouts < k)."""
    answers = [c["answer"] for c in candidates if max_rollout is None or c["rollout"] < max_rollout]
    return majority_vote(answers, task)
