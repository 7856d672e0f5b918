"""The rStar graph against a real HTTP server on 127.0.0.1 that answers by prompt content."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import sqlite3
import time

import aiosqlite
import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from langgraph_rstar import OpenAICompatibleLLM, RStarConfig, asolve, create_rstar_graph
from langgraph_rstar.prompts import load_prompts
from langgraph_rstar.search import ACTIONS, allowed_actions
from tests.conftest import QUESTIONS, byte_size, rstar_responder, saver_bytes
from tests.scripted_server import ScriptedServer

QUESTION = next(iter(QUESTIONS))  # Tom's apples: right answer 5


def request_key(record) -> tuple:
    return (record.path, tuple(record.prompts), record.n, tuple(record.stop or ()))


async def test_full_run_builds_a_grammatical_tree_and_sends_the_right_requests(
    scripted, llm, tiny_config
):
    app = create_rstar_graph(llm, config=tiny_config).compile(checkpointer=InMemorySaver())
    cfg = {"configurable": {"thread_id": "t1"}}
    out = await app.ainvoke({"question": QUESTION}, cfg)
    assert out["answer"] == "5"
    assert out["generator_answer"] == "5"
    assert 0 < out["confidence"] <= 1
    assert out["trajectory"] and "answer is 5" in out["trajectory"][-1]
    assert isinstance(out["messages"][-1], AIMessage) and out["messages"][-1].name == "rstar"
    assert "nodes" not in out  # the tree stays private to the graph
    state = (await app.aget_state(cfg)).values
    nodes = state["nodes"]
    assert nodes["0"]["N"] == tiny_config.num_rollouts
    for node in nodes.values():
        for action, kids in node["children"].items():
            assert action in allowed_actions({**node, "terminal": False})
            for kid in kids:
                assert nodes[kid]["depth"] == node["depth"] + 1 <= tiny_config.max_depth
        if node["kind"] == "rephrased":
            assert node["parent"] == "0"
        if node["kind"] == "re_subanswer":
            assert nodes[node["parent"]]["kind"] == "subquestion"
    assert set(nodes["0"]["children"]) == {
        "a1_one_step",
        "a2_remaining_steps",
        "a3_subquestion",
        "a5_rephrase_question",
    }
    # every candidate carries its trajectory, answer, confidence and rollout id
    for cand in out["candidates"]:
        assert cand["steps"] and cand["answer"] and 0 <= cand["rollout"] < 4

    posts = scripted.posts
    assert out["usage"]["target"]["requests"] + out["usage"].get("discriminator", {}).get(
        "requests", 0
    ) == len(posts)
    by_stop = collections.defaultdict(list)
    for rec in posts:
        by_stop[tuple(rec.stop or ())].append(rec)
    stops = load_prompts(task="gsm8k").stops
    a1 = by_stop[stops["one_step"]]
    assert a1 and all(r.n == tiny_config.num_a1_steps for r in a1)
    a3 = by_stop[stops["subquestion"]]
    assert a3 and all(r.n == tiny_config.num_subquestions for r in a3)
    solutions = by_stop[stops["continue"]] + by_stop[stops["solve"]]
    # A2 samples num_last_votes; the discriminator sends n=1 prompts; A4 num_votes/num_last_votes
    assert any(r.n == tiny_config.num_last_votes for r in solutions)
    for rec in posts:
        # every prompt works on this question (A4 keeps its context, A5's child its conditions)
        assert "Tom has 3 apples" in rec.prompts[0] or "The first fact" in rec.prompts[0]


async def test_messages_in_messages_out_and_context_overrides(llm, tiny_config):
    app = create_rstar_graph(llm, config=tiny_config).compile()
    out = await app.ainvoke(
        {"messages": [HumanMessage(QUESTION)]},
        context={"num_rollouts": 2, "use_discriminator": False},
    )
    assert out["answer"] == "5"
    assert out["selection"] in ("generator_maj", "unanimous")
    assert out["messages"][0].content == QUESTION
    assert out["messages"][-1].content.endswith("Final answer: 5")


async def test_empty_question_is_rejected(llm):
    app = create_rstar_graph(llm).compile()
    with pytest.raises(ValueError, match="non-empty question"):
        await app.ainvoke({"question": "   "})
    with pytest.raises(ValueError, match="non-empty question"):
        await asolve("", target=llm)


async def test_rollouts_in_flight_overlap_in_time(slow_scripted):
    """K=4 rollouts expand different nodes in the same wave: more overlap, less wall time."""
    llm = OpenAICompatibleLLM(slow_scripted.base_url, "m", max_retries=1, timeout=30)
    measured = {}
    for k in (1, 4):
        slow_scripted.log.clear()
        cfg = RStarConfig.preset(
            "fast", num_rollouts=8, max_depth=3, rollouts_in_flight=k, use_discriminator=False
        )
        start = time.perf_counter()
        result = await asolve(QUESTION, target=llm, config=cfg)
        measured[k] = (
            time.perf_counter() - start,
            slow_scripted.peak_concurrency(),
            len(slow_scripted.posts),
            result,
        )
    (t1, peak1, _, r1), (t4, peak4, _, r4) = measured[1], measured[4]
    assert r1.answer == r4.answer == "5"
    assert peak4 > peak1
    assert t4 < t1
    # distinct tree nodes were being expanded concurrently: a wave held >1 node
    assert r4.tree["0"]["N"] == r1.tree["0"]["N"] == 8


@contextlib.asynccontextmanager
async def sqlite_saver(path: str):
    """An AsyncSqliteSaver whose connection waits up to 60 s for a lock (sqlite's default, 5 s,
    is too short on a loaded CI machine while the cancelled run's last write finishes)."""
    async with aiosqlite.connect(path, timeout=60) as conn:
        yield AsyncSqliteSaver(conn)


async def test_a_crashed_checkpointed_run_resumes_without_resending_finished_actions(tmp_path):
    """The process dies mid-search (the run is cancelled, in-flight actions included); a new
    process resumes from the sqlite file and re-sends only what had not returned."""
    cfg = RStarConfig.preset("fast", num_rollouts=4, max_depth=3, rollouts_in_flight=1)
    with ScriptedServer(rstar_responder) as server:
        llm = OpenAICompatibleLLM(server.base_url, "m", max_retries=1)
        baseline = (
            await create_rstar_graph(llm, config=cfg).compile().ainvoke({"question": QUESTION})
        )
        expected = collections.Counter(request_key(r) for r in server.posts)

    db = str(tmp_path / "checkpoints.sqlite")
    with ScriptedServer(rstar_responder, delay=0.05) as server:
        # one request at a time: at the crash at most one request (and A3's first) is lost
        llm = OpenAICompatibleLLM(server.base_url, "m", max_retries=1, max_in_flight=1)
        thread = {"configurable": {"thread_id": "resume-me"}}
        returned = asyncio.Event()
        finished_actions = []

        async def run(app) -> None:
            # (with "custom" in the modes LangGraph streams task updates as they happen)
            modes = ["updates", "custom"]
            async for mode, chunk in app.astream({"question": QUESTION}, thread, stream_mode=modes):
                if mode == "updates":
                    finished_actions.extend(k for k in chunk if k in ACTIONS)
                if len(finished_actions) >= 6:
                    returned.set()

        async with sqlite_saver(db) as saver:
            app = create_rstar_graph(llm, config=cfg).compile(checkpointer=saver)
            runner = asyncio.create_task(run(app))
            await asyncio.wait_for(returned.wait(), 120)
            runner.cancel()  # the process "dies" with actions in flight
            # (a write cut off by the cancellation may find the file locked: lost, as in a crash)
            with contextlib.suppress(asyncio.CancelledError, sqlite3.OperationalError):
                await runner
        sent_before = len(server.posts)
        assert 0 < sent_before < sum(expected.values())
        # a new process: a fresh graph object and a fresh connection to the same file
        async with sqlite_saver(db) as saver:
            app = create_rstar_graph(llm, config=cfg).compile(checkpointer=saver)
            assert (await app.aget_state(thread)).next == ("search",)
            resumed = await app.ainvoke(None, thread)
        got = collections.Counter(request_key(r) for r in server.posts)
    assert not expected - got, "a request of the search was skipped"
    resent = sum((got - expected).values())
    assert resent <= 2, f"{resent} requests were sent twice: finished actions were re-run"
    assert resumed["answer"] == baseline["answer"]
    assert resumed["candidates"] == baseline["candidates"]


async def test_graph_topology_and_action_tasks_in_the_stream(llm, tiny_config):
    app = create_rstar_graph(llm, config=tiny_config).compile()
    graph = app.get_graph()
    assert {"init", "search", "discriminate", "finalize"} <= set(graph.nodes)
    edges = {(e.source, e.target) for e in graph.edges}
    assert {("init", "search"), ("search", "discriminate"), ("discriminate", "finalize")} <= edges
    # every action runs as a LangGraph task under its own name, visible in the task stream
    started, returned = collections.Counter(), collections.Counter()
    async for chunk in app.astream({"question": QUESTION}, stream_mode="tasks"):
        if chunk["name"] in ACTIONS:
            (started if "input" in chunk else returned)[chunk["name"]] += 1
    assert set(started) == set(ACTIONS) - {"a4_reanswer_subquestion"} or set(started) == set(
        ACTIONS
    )
    assert started == returned


def test_the_five_actions_are_nodes_of_the_drawn_graph(llm):
    """``get_graph(xray=True)`` draws the ``expand`` subgraph the search runs: START -> one of
    the five action nodes -> END, between ``init`` and ``discriminate``."""
    graph = create_rstar_graph(llm).compile().get_graph(xray=True)
    actions = {f"search:{a}" for a in ACTIONS}
    assert actions <= set(graph.nodes)
    edges = {(e.source, e.target) for e in graph.edges}
    for action in actions:
        assert ("search:__start__", action) in edges and (action, "search:__end__") in edges
    assert ("init", "search:__start__") in edges and ("search:__end__", "discriminate") in edges


async def test_subgraph_stream_shows_updates_from_the_action_nodes(llm, tiny_config):
    app = create_rstar_graph(llm, config=tiny_config).compile()
    nested: collections.Counter = collections.Counter()
    top = set()
    async for ns, chunk in app.astream(
        {"question": QUESTION}, stream_mode="updates", subgraphs=True
    ):
        if not ns:
            top.update(chunk)
            continue
        # (search node, the action's task, then the expand graph's node of the same name)
        assert len(ns) == 2 and ns[0].startswith("search:"), ns
        [name] = chunk
        assert ns[1].split(":")[0] == name and set(chunk[name]) >= {"node_id", "nodes", "usage"}
        nested[name] += 1
    assert {"a1_one_step", "a2_remaining_steps", "a3_subquestion"} <= set(nested)
    assert set(nested) <= set(ACTIONS) and sum(nested.values()) >= 10
    assert {"init", "search", "discriminate", "finalize"} <= top


async def test_model_runs_nest_under_the_action_node_run(llm, tiny_config):
    """LangChain callbacks see each model request as an LLM run whose parent is the action's
    node run inside the ``expand`` graph, under the action's task, under ``search``."""
    from tests.test_tracing import RunRecorder

    class Recorder(RunRecorder):
        def on_llm_start(self, serialized, prompts, *, run_id, parent_run_id=None, **kwargs):
            super().on_llm_start(
                serialized, prompts, run_id=run_id, parent_run_id=parent_run_id, **kwargs
            )
            self.llm[run_id]["parent_id"] = parent_run_id

    recorder = Recorder()
    app = create_rstar_graph(llm, config=tiny_config).compile()
    await app.ainvoke({"question": QUESTION}, {"callbacks": [recorder]})
    chains = collections.Counter()
    for run in recorder.llm.values():
        chain, parent = [], run["parent_id"]
        while parent is not None:
            chain.append(recorder.chains[parent])
            parent = recorder.parents[parent]
        chains[tuple(chain)] += 1
        action = run["metadata"]["rstar_action"]
        if action in ACTIONS:
            assert chain[:4] == [action, "expand", action, "search"], chain
        else:
            assert chain[0] == "discriminate", chain
    assert sum(n for c, n in chains.items() if c[0] in ACTIONS) >= 10


async def test_text_a_model_writes_after_its_answer_is_not_kept():
    """A2 and A1 keep the trajectory up to "The answer is ..."; the vote is unchanged."""
    from langgraph_rstar.actions import one_step, remaining_steps
    from langgraph_rstar.prompts import load_prompts
    from langgraph_rstar.search import make_root, path_context

    def rambling(prompt: str, params: dict) -> str:
        if "Zorblax" in prompt:  # one long line that goes on after the answer sentence
            return " 2.5 + 2.5 = 5. The answer is 5.0. The total stays the same. It is 5.\n"
        return " The answer is 5. Step 2: I add this to double check.\nStep 3: 5 + 0 = 5.\n"

    cfg = RStarConfig.preset("fast", num_a1_steps=2, num_last_votes=2)
    ctx = path_context({"0": make_root("Tom has 3 apples and buys 2. How many?")}, "0")
    pack = load_prompts(task="gsm8k")
    with ScriptedServer(rambling) as server:
        llm = OpenAICompatibleLLM(server.base_url, "m", max_retries=0)
        a2 = await remaining_steps(ctx, llm, pack, cfg)
        a1 = await one_step(ctx, llm, pack, cfg)
    [a2_child] = [n for n in a2["nodes"].values() if n.get("kind") == "direct_answer"]
    assert a2_child["answer"] == "5" and a2_child["value"] == 1.0
    assert a2_child["text"] == "The answer is 5." and a2_child["steps"] == ["The answer is 5."]
    [a1_child] = [n for n in a1["nodes"].values() if n.get("kind") == "one_step"]
    assert a1_child["text"] == "The answer is 5." and a1_child["answer"] == "5"

    ctx = path_context({"0": make_root("Zorblax buys 2.5 apples twice. How many?")}, "0")
    with ScriptedServer(rambling) as server:
        llm = OpenAICompatibleLLM(server.base_url, "m", max_retries=0)
        a2 = await remaining_steps(ctx, llm, pack, cfg)
    [a2_child] = [n for n in a2["nodes"].values() if n.get("kind") == "direct_answer"]
    assert a2_child["steps"] == ["2.5 + 2.5 = 5. The answer is 5.0."]
    assert a2_child["answer"] == "5"


async def test_checkpoints_hold_the_tree_about_once_and_records_travel_compact(llm, tiny_config):
    """Every byte the saver holds for a run, against the final tree's JSON; compact records
    (task results, the search's write) restore to exactly the tree's records."""
    import json

    from langgraph_rstar.controller import compact_nodes, expand_nodes

    saver = InMemorySaver()
    cfg = tiny_config.replace(num_rollouts=8, max_depth=4)
    result = await asolve(QUESTION, target=llm, config=cfg, checkpointer=saver, thread_id="c")
    tree = result.tree
    assert expand_nodes(compact_nodes(tree)) == tree
    assert len(json.dumps(compact_nodes(tree))) < 0.6 * len(json.dumps(tree))

    stored = saver_bytes(saver)
    # What grows with the tree (writes and channel values) stays under twice the tree; each
    # checkpoint adds LangGraph's bookkeeping (channel versions: ~1.3 kB here, whatever the
    # tree), which a tiny search like this one does not amortize. bench_sim.py measures a
    # `paper` search's whole store.
    checkpoints = sum(len(c) for ns in saver.storage.values() for c in ns.values())
    bookkeeping = byte_size(saver.storage)
    assert stored - bookkeeping <= 2 * len(json.dumps(tree)), (stored, len(json.dumps(tree)))
    assert bookkeeping <= 1600 * checkpoints, (bookkeeping, checkpoints)
    # the tree read back from the checkpoint is the full tree
    state = (
        await create_rstar_graph(llm, config=cfg)
        .compile(checkpointer=saver)
        .aget_state({"configurable": {"thread_id": "c"}})
    ).values
    assert state["nodes"] == tree
