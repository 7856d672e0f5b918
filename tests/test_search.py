"""The pure MCTS core: grammar, UCT, virtual loss, back-propagation, voting. No I/O."""

from __future__ import annotations

import math

import pytest

from langgraph_rstar.search import (
    UNVISITED_UCT,
    SearchSettings,
    advance,
    allowed_actions,
    child_id,
    collect_candidates,
    generator_vote,
    is_expanded,
    make_root,
    merge_nodes,
    new_node,
    path_context,
    select_child,
    simulate_child,
    trajectory,
    uct,
)


def fake_expand(nodes, node_id, actions, rollout):
    """A deterministic stand-in for the model: children depend only on the node id."""
    parent = nodes[node_id]
    depth = parent["depth"] + 1
    out = {}
    children = {}
    for action in actions:
        kids = []
        if action == "a1_one_step":
            for i in range(2):
                cid = child_id(node_id, action, i)
                answer = str(len(cid) % 3) if depth >= 3 and i == 0 else None
                out[cid] = new_node(
                    cid,
                    node_id,
                    depth,
                    "one_step",
                    action,
                    text=f"step {cid}",
                    answer=answer,
                    terminal=answer is not None,
                    value=0.5 if answer else None,
                    rollout=rollout,
                )
                kids.append(cid)
        elif action == "a2_remaining_steps":
            cid = child_id(node_id, action, 0)
            value = (sum(map(ord, cid)) % 7) / 7 + 0.1
            out[cid] = new_node(
                cid,
                node_id,
                depth,
                "direct_answer",
                action,
                text="Step 1: x\nStep 2: The answer is 4.",
                answer=str(sum(map(ord, cid)) % 2 + 4),
                value=value,
                terminal=True,
                rollout=rollout,
            )
            kids.append(cid)
        elif action == "a3_subquestion":
            for i in range(2):
                cid = child_id(node_id, action, i)
                final = i == 1
                out[cid] = new_node(
                    cid,
                    node_id,
                    depth,
                    "subquestion",
                    action,
                    subquestion=f"sq {cid}",
                    subanswer="so 2. The answer is 2.",
                    answer="2" if final else "1",
                    value=0.6,
                    terminal=final,
                    rollout=rollout,
                )
                kids.append(cid)
        elif action == "a4_reanswer_subquestion":
            cid = child_id(node_id, action, 0)
            out[cid] = new_node(
                cid,
                node_id,
                depth,
                "re_subanswer",
                action,
                subquestion=parent["subquestion"],
                subanswer="re. The answer is 3.",
                answer="3",
                value=0.9,
                terminal=False,
                rollout=rollout,
            )
            kids.append(cid)
        elif action == "a5_rephrase_question":
            cid = child_id(node_id, action, 0)
            out[cid] = new_node(
                cid, node_id, depth, "rephrased", action, text="Given ...", rollout=rollout
            )
            kids.append(cid)
        children[action] = kids
    out[node_id] = {"children": children}
    return out


def run_controller(settings, *, max_waves=500):
    """Drive `advance` like the graph does; returns the tree and the expansion order."""
    nodes = {"0": make_root("Q?")}
    rollouts = {}
    order = []
    waves = []
    for _ in range(max_waves):
        step = advance(nodes, rollouts, settings)
        nodes = merge_nodes(nodes, step.nodes)
        rollouts = step.rollouts
        if not step.expansions:
            assert step.done
            return nodes, rollouts, order, waves
        waves.append([e["node_id"] for e in step.expansions])
        updates = {}
        for exp in step.expansions:
            order.append(exp["node_id"])
            updates = merge_nodes(
                updates, fake_expand(nodes, exp["node_id"], exp["actions"], exp["rollout"])
            )
        nodes = merge_nodes(nodes, updates)
    raise AssertionError("search did not finish")


def sequential_reference(settings):
    """The paper code's loop, written plainly: select -> expand -> simulate -> backprop."""
    nodes = {"0": make_root("Q?")}
    order = []

    def expand(node_id, rollout):
        node = nodes[node_id]
        if is_expanded(node):
            return
        acts = allowed_actions(node, enable_a1=settings.enable_a1, enable_a5=settings.enable_a5)
        node["expanding"] = list(acts)
        order.append(node_id)
        for k, v in fake_expand(nodes, node_id, acts, rollout).items():
            nodes.update(merge_nodes(nodes, {k: v}))

    def terminal(node):
        return node.get("terminal") or node["depth"] >= settings.max_depth

    for rollout in range(settings.num_rollouts):
        path = ["0"]
        # select
        while True:
            node = nodes[path[-1]]
            if terminal(node) or not is_expanded(node):
                break
            child, stop = select_child(
                nodes, path[-1], settings.exploration_weight, settings.seed, rollout
            )
            path.append(child)
            if stop:
                break
        # expand + simulate
        while not terminal(nodes[path[-1]]):
            expand(path[-1], rollout)
            node = nodes[path[-1]]
            if not any(node["children"].values()):
                break
            path.append(simulate_child(nodes, path[-1], settings.seed, rollout))
        end = nodes[path[-1]]
        reward = (end.get("value") or 0.0) if terminal(end) and end.get("answer") else 0.0
        for nid in path:
            nodes[nid] = {**nodes[nid], "N": nodes[nid]["N"] + 1, "Q": nodes[nid]["Q"] + reward}
    return nodes, order


@pytest.mark.parametrize("seed", [1, 7, 42])
def test_k1_reproduces_the_sequential_algorithm(seed):
    settings = SearchSettings(num_rollouts=12, rollouts_in_flight=1, max_depth=4, seed=seed)
    nodes, rollouts, order, _ = run_controller(settings)
    ref_nodes, ref_order = sequential_reference(settings)
    assert order == ref_order
    assert {k: (v["N"], round(v["Q"], 9)) for k, v in nodes.items()} == {
        k: (v["N"], round(v["Q"], 9)) for k, v in ref_nodes.items()
    }
    assert all(v["VL"] == 0 for v in nodes.values())
    assert len(rollouts) == 12 and all(r["done"] for r in rollouts.values())
    assert nodes["0"]["N"] == 12


def test_k_in_flight_spreads_rollouts_and_batches_expansions():
    settings = SearchSettings(num_rollouts=8, rollouts_in_flight=4, max_depth=4, seed=3)
    nodes, rollouts, order, waves = run_controller(settings)
    assert nodes["0"]["N"] == 8
    assert all(v["VL"] == 0 for v in nodes.values())
    assert len(order) == len(set(order)), "a node was expanded twice"
    # After the root's wave, the 4 rollouts claim different unexplored children (virtual loss).
    assert waves[0] == ["0"]
    assert len(waves[1]) >= 3
    assert max(len(w) for w in waves) > 1
    serial = run_controller(SearchSettings(num_rollouts=8, max_depth=4, seed=3))[3]
    assert len(waves) < len(serial)


def test_backprop_adds_terminal_reward_along_path():
    settings = SearchSettings(num_rollouts=1, max_depth=4, seed=5)
    nodes, rollouts, _, _ = run_controller(settings)
    run = rollouts["0"]
    end = nodes[run["path"][-1]]
    expected = (end["value"] or 0.0) if end.get("answer") is not None else 0.0
    assert run["reward"] == pytest.approx(expected)
    for nid in run["path"]:
        assert nodes[nid]["N"] == 1
        assert nodes[nid]["Q"] == pytest.approx(expected)
    off_path = [n for k, n in nodes.items() if k not in run["path"]]
    assert all(n["N"] == 0 for n in off_path)


def test_depth_limit_ends_rollouts_with_zero_reward():
    """A rollout cut off by the depth limit scores 0, even on a node that holds an intermediate
    sub-answer with a confident vote; only a finished solution (terminal) earns its value."""
    settings = SearchSettings(num_rollouts=8, max_depth=1, seed=2, enable_a5=False)
    nodes, rollouts, order, _ = run_controller(settings)
    assert order == ["0"]  # nothing below depth 1 is ever expanded
    ends = {run["path"][-1]: run["reward"] for run in rollouts.values()}
    assert "0.q0" in ends  # the intermediate sub-question (answer "1", value 0.6) was reached
    assert nodes["0.q0"]["answer"] == "1" and nodes["0.q0"]["value"] == 0.6
    assert ends["0.q0"] == 0.0 and nodes["0.q0"]["Q"] == 0.0
    for node_id, reward in ends.items():
        node = nodes[node_id]
        assert reward == (node["value"] if node["terminal"] else 0.0), node_id
    assert any(reward > 0 for reward in ends.values())  # terminal ones were rewarded
    # ... and none of the cut-off nodes is a candidate answer
    assert "0.q0" not in {c["node_id"] for c in collect_candidates(nodes)}


def test_grammar():
    root = make_root("q")
    assert allowed_actions(root) == [
        "a1_one_step",
        "a2_remaining_steps",
        "a3_subquestion",
        "a5_rephrase_question",
    ]
    assert "a5_rephrase_question" not in allowed_actions(root, enable_a5=False)
    assert "a1_one_step" not in allowed_actions(root, enable_a1=False)
    sub = new_node("0.q0", "0", 1, "subquestion", "a3_subquestion")
    assert "a4_reanswer_subquestion" in allowed_actions(sub)
    for kind in ("question", "rephrased", "re_subanswer", "one_step"):
        assert "a4_reanswer_subquestion" not in allowed_actions(new_node("x", "0", 1, kind, None))
    for kind in ("rephrased", "subquestion", "re_subanswer", "one_step"):
        assert "a5_rephrase_question" not in allowed_actions(new_node("x", "0", 1, kind, None))
    assert allowed_actions(new_node("x", "0", 1, "one_step", None)) == [
        "a1_one_step",
        "a2_remaining_steps",
    ]
    assert allowed_actions(new_node("x", "0", 1, "direct_answer", None)) == []
    terminal_sub = new_node("y", "0", 1, "subquestion", None, terminal=True)
    assert allowed_actions(terminal_sub) == []


def test_grammar_holds_in_a_searched_tree():
    nodes, *_ = run_controller(SearchSettings(num_rollouts=20, rollouts_in_flight=3, max_depth=5))
    for node in nodes.values():
        for action, kids in node["children"].items():
            assert action in allowed_actions({**node, "terminal": False})
            for kid in kids:
                assert nodes[kid]["parent"] == node["id"]
                assert nodes[kid]["depth"] == node["depth"] + 1
        if node["kind"] == "rephrased":
            assert node["parent"] == "0"


def test_uct_and_virtual_loss():
    a = new_node("a", "0", 1, "one_step", None, N=2, Q=1.0)
    assert uct(a, 10, 2.0) == pytest.approx(0.5 + 2.0 * math.sqrt(math.log(10) / 2))
    assert uct(new_node("b", "0", 1, "one_step", None), 10, 2.0) == UNVISITED_UCT
    with_vl = {**a, "VL": 2}
    assert uct(with_vl, 10, 2.0) == pytest.approx(1.0 / 4 + 2.0 * math.sqrt(math.log(10) / 4))
    assert uct(with_vl, 10, 2.0) < uct(a, 10, 2.0)


def test_select_prefers_unexplored_then_uct():
    nodes = {
        "0": {
            **make_root("q"),
            "N": 3,
            "children": {"a1_one_step": ["0.s0", "0.s1"]},
            "expanding": ["a1_one_step"],
        },
        "0.s0": new_node("0.s0", "0", 1, "one_step", "a1_one_step", N=2, Q=2.0),
        "0.s1": new_node("0.s1", "0", 1, "one_step", "a1_one_step"),
    }
    assert select_child(nodes, "0", 2.0, 0, 0) == ("0.s1", True)
    nodes["0.s1"] = {**nodes["0.s1"], "N": 1, "Q": 0.0}
    assert select_child(nodes, "0", 2.0, 0, 0) == ("0.s0", False)
    # a child claimed by another rollout is not "unexplored" for this one
    nodes["0.s2"] = new_node("0.s2", "0", 1, "one_step", "a1_one_step", VL=1)
    nodes["0"]["children"]["a1_one_step"].append("0.s2")
    child, stop = select_child(nodes, "0", 2.0, 0, 0)
    assert not stop


def test_merge_nodes_keeps_children_from_concurrent_actions():
    left = {"0": make_root("q")}
    merged = merge_nodes(left, {"0": {"children": {"a1_one_step": ["0.s0"]}}})
    merged = merge_nodes(merged, {"0": {"children": {"a2_remaining_steps": ["0.d0"]}}})
    assert merged["0"]["children"] == {"a1_one_step": ["0.s0"], "a2_remaining_steps": ["0.d0"]}
    assert left["0"]["children"] == {}  # inputs are not mutated


def test_path_context_and_trajectory():
    nodes = {
        "0": make_root("Tom has 3 apples. He buys 2 more. How many apples does he have?"),
        "0.p0": new_node("0.p0", "0", 1, "rephrased", "a5_rephrase_question", text="Given ..."),
        "0.p0.q0": new_node(
            "0.p0.q0",
            "0.p0",
            2,
            "subquestion",
            "a3_subquestion",
            subquestion="How many at first?",
            subanswer="3 apples. The answer is 3.",
        ),
        "0.p0.q0.r0": new_node(
            "0.p0.q0.r0",
            "0.p0.q0",
            3,
            "re_subanswer",
            "a4_reanswer_subquestion",
            subquestion="How many at first?",
            subanswer="He had 3. The answer is 3.",
        ),
        "0.p0.q0.r0.s0": new_node(
            "0.p0.q0.r0.s0", "0.p0.q0.r0", 4, "one_step", "a1_one_step", text="3 + 2 = 5."
        ),
        "0.p0.q0.r0.s0.d0": new_node(
            "0.p0.q0.r0.s0.d0",
            "0.p0.q0.r0.s0",
            5,
            "direct_answer",
            "a2_remaining_steps",
            text="Step 3: The answer is 5.",
            answer="5",
            value=1.0,
        ),
    }
    ctx = path_context(nodes, "0.p0.q0.r0.s0")
    assert ctx["active_question"] == "Given ..."
    assert ctx["question"].startswith("Tom has")
    assert ctx["subqas"] == [["How many at first?", "He had 3. The answer is 3."]]
    assert ctx["steps"] == ["He had 3.", "3 + 2 = 5."]
    assert ctx["last_subquestion"] == "How many at first?"
    assert trajectory(nodes, "0.p0.q0.r0.s0.d0") == ["He had 3.", "3 + 2 = 5.", "The answer is 5."]
    [cand] = collect_candidates(nodes)
    assert cand["node_id"] == "0.p0.q0.r0.s0.d0" and cand["answer"] == "5"


def test_final_subquestion_detection():
    from langgraph_rstar.prompts import load_prompts

    q = "Tom has 3 apples and buys 2 more. How many apples does Tom have now?"
    for style in ("compact", "reference"):
        pack = load_prompts(task="gsm8k", style=style)
        assert pack.is_final_subquestion("Now we can answer the question: how many apples?", q)
        assert pack.is_final_subquestion("So, how many apples does Tom have now?", q)
        assert not pack.is_final_subquestion("How many apples did Tom buy?", q)


def test_generator_vote_and_rollout_truncation():
    nodes, *_ = run_controller(SearchSettings(num_rollouts=10, max_depth=4, seed=9))
    cands = collect_candidates(nodes)
    assert cands, "the fake world always yields answers"
    vote = generator_vote(cands, "gsm8k")
    answers = [c["answer"] for c in cands]
    assert answers.count(vote.answer) == max(answers.count(a) for a in set(answers))
    assert vote.confidence == pytest.approx(answers.count(vote.answer) / len(answers))
    early = generator_vote(cands, "gsm8k", max_rollout=1)
    assert early.count <= vote.count
    assert all(c["rollout"] < 10 for c in cands)


def _solution_tree():
    """root -> A1 "a" (visited twice) -> two identical A1 answer steps (not merged) + an A2."""
    nodes = {"0": make_root("Q?")}
    nodes["0"].update(N=4, Q=2.0)
    a = new_node("0.s0", "0", 1, "one_step", "a1_one_step", text="a", steps=["a"], N=2, Q=1.5)
    twin = dict(text="The answer is 5.", steps=["The answer is 5."], answer="5", terminal=True)
    s0 = new_node("0.s0.s0", "0.s0", 2, "one_step", "a1_one_step", value=0.5, N=1, Q=0.5, **twin)
    s0.update(agree=2, samples=4)
    s1 = new_node("0.s0.s1", "0.s0", 2, "one_step", "a1_one_step", value=0.5, **twin)
    s1.update(agree=2, samples=4)
    d0 = new_node(
        "0.s0.d0",
        "0.s0",
        2,
        "direct_answer",
        "a2_remaining_steps",
        text="b The answer is 6.",
        steps=["b", "The answer is 6."],
        answer="6",
        value=0.75,
        agree=3,
        samples=4,
    )
    nodes.update({"0.s0": a, "0.s0.s0": s0, "0.s0.s1": s1, "0.s0.d0": d0})
    nodes["0"]["children"] = {"a1_one_step": ["0.s0"]}
    nodes["0.s0"]["children"] = {
        "a1_one_step": ["0.s0.s0", "0.s0.s1"],
        "a2_remaining_steps": ["0.s0.d0"],
    }
    return nodes


def test_identical_trajectories_are_one_candidate_with_copies():
    cands = collect_candidates(_solution_tree())
    assert [c["node_id"] for c in cands] == ["0.s0.d0", "0.s0.s0"]  # id order: d < s
    assert [c["copies"] for c in cands] == [1, 2]
    assert cands[1]["steps"] == ["a", "The answer is 5."]
    assert generator_vote(cands, "gsm8k").confidence == pytest.approx(0.5)  # 1 of 2, not 2 of 3


def test_a_candidates_reward_is_the_mean_value_along_its_path():
    """Q/N of each visited node below the root; an unvisited terminal adds its own value."""
    six, five = collect_candidates(_solution_tree())
    assert five["path_values"] == [0.75, 0.5]  # 1.5/2 for "0.s0", 0.5/1 for the visited twin
    assert five["reward"] == pytest.approx(0.625)
    assert six["path_values"] == [0.75, 0.75]  # unvisited A2: its vote share
    assert six["reward"] == pytest.approx(0.75)
    assert (six["agree"], six["samples"], six["confidence"]) == (3, 4, 0.75)
    assert five["visits"] == 1 and six["visits"] == 0


def test_a_rollout_cut_off_by_depth_reports_no_answer():
    from langgraph_rstar import events

    cut = new_node("0.q0", "0", 1, "subquestion", "a3_subquestion", answer="3", value=1.0)
    done = new_node("0.d0", "0", 1, "direct_answer", "a2_remaining_steps", answer="5", value=0.5)
    run = {"id": 0, "path": ["0", "0.q0"], "phase": "simulate", "done": True, "reward": 0.0}
    assert events.rollout_finished(run, cut)["answer"] is None
    assert events.rollout_finished({**run, "reward": 0.5}, done)["answer"] == "5"


def run_barrier_free(settings, rng):
    """Drive `advance` like the barrier-free controller: one action returns at a time, in a
    random order, and the controller runs after each. Returns (tree, expanded node ids)."""
    nodes = {"0": make_root("Q?")}
    rollouts = {}
    in_flight = []  # (node id, action, rollout)
    expanded = []
    for _ in range(5000):
        step = advance(nodes, rollouts, settings)
        nodes = merge_nodes(nodes, step.nodes)
        rollouts = step.rollouts
        for exp in step.expansions:
            expanded.append(exp["node_id"])
            in_flight.extend((exp["node_id"], a, exp["rollout"]) for a in exp["actions"])
        if not in_flight:
            assert step.done
            return nodes, expanded
        node_id, action, rollout = in_flight.pop(rng.randrange(len(in_flight)))
        nodes = merge_nodes(nodes, fake_expand(nodes, node_id, [action], rollout))
    raise AssertionError("search did not finish")


@pytest.mark.parametrize("seed", [1, 7])
def test_k1_in_any_completion_order_is_the_sequential_algorithm(seed):
    import random

    settings = SearchSettings(num_rollouts=12, rollouts_in_flight=1, max_depth=4, seed=seed)
    nodes, expanded = run_barrier_free(settings, random.Random(seed))
    ref_nodes, ref_order = sequential_reference(settings)
    assert expanded == ref_order
    assert {k: (v["N"], round(v["Q"], 9)) for k, v in nodes.items()} == {
        k: (v["N"], round(v["Q"], 9)) for k, v in ref_nodes.items()
    }


def test_rollouts_in_flight_do_the_work_of_one():
    """Nodes expanded at K = 4 / 16 / 32 stay within 15 % of K = 1 (mean over seeds): a rollout
    starts only while the tree holds an unclaimed unexplored node for each one in flight."""
    import random

    def mean_expansions(k: int) -> float:
        runs = []
        for seed in range(24):
            settings = SearchSettings(num_rollouts=32, rollouts_in_flight=k, max_depth=5, seed=seed)
            _, expanded = run_barrier_free(settings, random.Random(seed))
            assert len(expanded) == len(set(expanded)), "a node was expanded twice"
            runs.append(len(expanded))
        return sum(runs) / len(runs)

    base = mean_expansions(1)
    for k in (4, 16, 32):
        assert abs(mean_expansions(k) / base - 1) <= 0.15, k
