"""The ways in: a subgraph node, a tool in an agent, asyncio, events, errors, and the CLI.

Everything runs against the scripted HTTP server of ``tests/scripted_server.py``.
"""

from __future__ import annotations

import asyncio
import collections
import json
import socket
import threading
import time

import pytest
from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph

from langgraph_rstar import (
    ACTIONS,
    BackendError,
    OpenAICompatibleLLM,
    RStarConfig,
    RStarError,
    asolve,
    create_rstar_graph,
    solve,
)
from langgraph_rstar.cli import main as cli_main
from langgraph_rstar.tool import create_rstar_tool
from tests.conftest import QUESTIONS, rstar_responder
from tests.scripted_server import ScriptedServer

(Q_TOM, (TOM, _)), (Q_PENS, (PENS, _)), (Q_PAGES, (PAGES, _)) = QUESTIONS.items()
PRIVATE_KEYS = {"nodes", "rollouts", "expansions", "config"}


def free_port() -> int:
    """A port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def small(config: RStarConfig, **changes) -> RStarConfig:
    return config.replace(num_rollouts=2, **changes)


# ------------------------------------------------------------------------- as a subgraph


class AgentState(MessagesState):
    reply: str


def build_agent(rstar_app, *, checkpointer=None):
    """ask (turns the request into a question) -> rstar (the compiled graph) -> read."""

    def ask(state: AgentState) -> dict:
        request = state["messages"][-1].content
        return {"messages": [HumanMessage(request.removeprefix("Please solve: "))]}

    def read(state: AgentState) -> dict:
        last = state["messages"][-1]
        assert isinstance(last, AIMessage) and last.name == "rstar"
        return {"reply": last.content.rsplit("Final answer:", 1)[-1].strip()}

    builder = StateGraph(AgentState)
    builder.add_node("ask", ask)
    builder.add_node("rstar", rstar_app)
    builder.add_node("read", read)
    builder.add_edge(START, "ask")
    builder.add_edge("ask", "rstar")
    builder.add_edge("rstar", "read")
    builder.add_edge("read", END)
    return builder.compile(checkpointer=checkpointer)


async def test_rstar_graph_is_a_node_of_a_messages_state_agent(llm, tiny_config):
    agent = build_agent(create_rstar_graph(llm, config=tiny_config).compile())
    out = await agent.ainvoke({"messages": [HumanMessage(f"Please solve: {Q_TOM}")]})
    assert set(out) == {"messages", "reply"}  # nothing private leaks into the parent
    messages = out["messages"]
    assert [type(m).__name__ for m in messages] == ["HumanMessage", "HumanMessage", "AIMessage"]
    assert messages[1].content == Q_TOM
    last = messages[-1]
    assert last.name == "rstar" and last.content.endswith(f"Final answer: {TOM}")
    assert f"The answer is {TOM}" in last.content
    assert out["reply"] == TOM


async def test_rstar_node_in_a_checkpointed_agent_thread(llm, tiny_config):
    saver = InMemorySaver()
    agent = build_agent(create_rstar_graph(llm, config=tiny_config).compile(), checkpointer=saver)
    thread = {"configurable": {"thread_id": "agent-1"}}
    first = await agent.ainvoke({"messages": [HumanMessage(f"Please solve: {Q_TOM}")]}, thread)
    assert first["reply"] == TOM
    # second turn on the same thread: the rStar node answers the newest question
    events = []
    async for _, event in agent.astream(
        {"messages": [HumanMessage(f"Please solve: {Q_PENS}")]},
        thread,
        stream_mode="custom",
        subgraphs=True,
    ):
        events.append(event)
    assert events[-1]["type"] == "rstar.final_answer" and events[-1]["answer"] == PENS
    state = await agent.aget_state(thread)
    assert set(state.values) == {"messages", "reply"}
    assert state.values["reply"] == PENS
    ais = [m for m in state.values["messages"] if isinstance(m, AIMessage)]
    assert [m.name for m in ais] == ["rstar", "rstar"]
    assert ais[0].content.endswith(f"Final answer: {TOM}")
    assert ais[1].content.endswith(f"Final answer: {PENS}")
    assert state.values["messages"][-1] == ais[1]
    async for snapshot in agent.aget_state_history(thread):
        assert not PRIVATE_KEYS & set(snapshot.values)


# ------------------------------------------------------------------------------ as a tool


class FakeToolCallingModel(GenericFakeChatModel):
    """Replays scripted messages; binding tools changes nothing."""

    def bind_tools(self, tools, **kwargs):
        return self


def tool_call_then_answer(question: str) -> FakeToolCallingModel:
    call = {"name": "rstar_reason", "args": {"question": question}, "id": "call_1"}
    return FakeToolCallingModel(
        messages=iter([AIMessage(content="", tool_calls=[call]), AIMessage(content="Done.")])
    )


async def test_rstar_tool_inside_create_agent(llm, tiny_config):
    tool = create_rstar_tool(llm, config=small(tiny_config))
    agent = create_agent(tool_call_then_answer(Q_TOM), tools=[tool])
    out = await agent.ainvoke({"messages": [HumanMessage(f"Help me: {Q_TOM}")]})
    kinds = [type(m).__name__ for m in out["messages"]]
    assert kinds == ["HumanMessage", "AIMessage", "ToolMessage", "AIMessage"]
    result = out["messages"][2]
    assert isinstance(result, ToolMessage) and result.tool_call_id == "call_1"
    assert result.name == "rstar_reason"
    assert result.content.startswith(f"Answer: {TOM} (confidence ")
    artifact = result.artifact
    assert isinstance(artifact, dict)
    assert artifact["answer"] == TOM and artifact["question"] == Q_TOM
    assert artifact["candidates"] and all("steps" in c for c in artifact["candidates"])
    assert artifact["usage"]["target"]["requests"] > 0
    assert artifact["config"]["num_rollouts"] == 2
    json.dumps(artifact)  # the artifact is plain JSON
    assert out["messages"][-1].content == "Done."


def test_rstar_tool_sync_invoke_and_args_schema(llm, tiny_config):
    tool = create_rstar_tool(llm, config=small(tiny_config))
    assert tool.name == "rstar_reason"
    assert set(tool.args) == {"question", "num_rollouts"}
    schema = tool.tool_call_schema.model_json_schema()
    assert set(schema["properties"]) == {"question", "num_rollouts"}
    assert schema["required"] == ["question"]
    # plain input: the content only
    content = tool.invoke({"question": Q_PENS})
    assert isinstance(content, str) and content.startswith(f"Answer: {PENS} ")
    # a tool call: a ToolMessage with the artifact; num_rollouts reaches the search
    call = {
        "name": "rstar_reason",
        "args": {"question": Q_PAGES, "num_rollouts": 1},
        "id": "call_9",
        "type": "tool_call",
    }
    message = tool.invoke(call)
    assert isinstance(message, ToolMessage) and message.tool_call_id == "call_9"
    assert message.artifact["answer"] == PAGES
    assert message.artifact["config"]["num_rollouts"] == 1
    assert message.artifact["tree"]["0"]["N"] == 1
    with pytest.raises(ValueError):
        tool.invoke({"question": Q_PAGES, "num_rollouts": 0})
    # and a synchronous agent run uses the sync path
    agent = create_agent(tool_call_then_answer(Q_TOM), tools=[tool])
    out = agent.invoke({"messages": [HumanMessage(Q_TOM)]})
    assert out["messages"][2].artifact["answer"] == TOM


# ------------------------------------------------------------------------------- asyncio


async def test_asolve_runs_questions_concurrently_on_one_backend(tiny_config):
    with ScriptedServer(rstar_responder, delay=0.02) as server:
        llm = OpenAICompatibleLLM(server.base_url, "m", max_retries=0)
        questions = [Q_TOM, Q_PENS, Q_PAGES]
        results = await asyncio.gather(
            *(asolve(q, target=llm, config=small(tiny_config)) for q in questions)
        )
        posts = server.posts
        peak = server.peak_concurrency()
    assert [r.answer for r in results] == [TOM, PENS, PAGES]
    assert [r.question for r in results] == questions
    assert peak > 1  # the three searches overlapped on the shared backend
    assert (
        llm.usage.requests
        == len(posts)
        == sum(
            r.usage["target"]["requests"] + r.usage.get("discriminator", {}).get("requests", 0)
            for r in results
        )
    )


def test_solve_is_synchronous_and_can_run_twice(llm, tiny_config):
    first = solve(Q_TOM, target=llm, config=small(tiny_config))
    second = solve(Q_PENS, target=llm, config=small(tiny_config))
    assert (first.answer, second.answer) == (TOM, PENS)
    again = solve(Q_TOM, target=llm, config=small(tiny_config))
    assert again.answer == TOM and again.candidates == first.candidates


async def test_solve_inside_a_running_loop_is_refused(llm):
    with pytest.raises(RuntimeError, match="running event loop"):
        solve(Q_TOM, target=llm)


def check_event_sequence(events, num_rollouts: int, answer: str) -> None:
    types = [e["type"] for e in events]
    assert types[0] == "rstar.rollout_started"
    assert types[-1] == "rstar.final_answer" and types.count("rstar.final_answer") == 1
    assert events[-1]["answer"] == answer
    expanded = [e for e in events if e["type"] == "rstar.node_expanded"]
    assert expanded and all(e["action"] in ACTIONS for e in expanded)
    assert {"a1_one_step", "a2_remaining_steps"} <= {e["action"] for e in expanded}
    assert types.count("rstar.rollout_started") == num_rollouts
    assert types.count("rstar.rollout_finished") == num_rollouts
    verified = [e for e in events if e["type"] == "rstar.candidate_verified"]
    assert verified and types.index("rstar.candidate_verified") > max(
        i for i, t in enumerate(types) if t == "rstar.rollout_finished"
    )
    assert all(e["masks"] == 3 and 0 <= e["agreements"] <= 3 for e in verified)


def event_multiset(events) -> collections.Counter:
    return collections.Counter(json.dumps(e, sort_keys=True) for e in events)


async def test_on_event_sequence_matches_the_graph_custom_stream(llm, tiny_config):
    events = []
    result = await asolve(Q_TOM, target=llm, config=tiny_config, on_event=events.append)
    check_event_sequence(events, tiny_config.num_rollouts, TOM)
    verified = [e for e in events if e["type"] == "rstar.candidate_verified"]
    assert len(verified) == len(result.verification["checks"])
    assert events[-1]["method"] == result.selection == "discriminator"

    app = create_rstar_graph(llm, config=tiny_config).compile()
    streamed = [c async for c in app.astream({"question": Q_TOM}, stream_mode="custom")]
    check_event_sequence(streamed, tiny_config.num_rollouts, TOM)
    assert event_multiset(streamed) == event_multiset(events)


async def test_async_on_event_callback_is_awaited(llm, tiny_config):
    seen = []

    async def handler(event):
        await asyncio.sleep(0)
        seen.append(event["type"])

    result = await asolve(Q_PENS, target=llm, config=small(tiny_config), on_event=handler)
    assert result.answer == PENS
    assert seen[0] == "rstar.rollout_started" and seen[-1] == "rstar.final_answer"
    assert seen.count("rstar.rollout_finished") == 2


async def test_every_rollout_is_announced_before_it_finishes(llm, tiny_config):
    events = []
    await asolve(Q_TOM, target=llm, config=tiny_config, on_event=events.append)
    started: set[int] = set()
    for event in events:
        if event["type"] == "rstar.rollout_started":
            started.add(event["rollout"])
        elif event["type"] == "rstar.rollout_finished":
            assert event["rollout"] in started, f"rollout {event['rollout']} finished unannounced"


# -------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("max_retries", [0, 1])
async def test_a_dead_endpoint_fails_fast_with_a_clear_error(max_retries):
    url = f"http://127.0.0.1:{free_port()}/v1"
    llm = OpenAICompatibleLLM(url, "m", max_retries=max_retries, timeout=2)
    start = time.perf_counter()
    with pytest.raises(RStarError) as info:
        await asolve(Q_TOM, target=llm, num_rollouts=2)
    assert time.perf_counter() - start < 4
    message = str(info.value)
    assert "cannot reach" in message and url in message
    assert f"after {max_retries + 1} attempt(s)" in message
    assert isinstance(info.value.__cause__, BackendError)
    assert info.value.thread_id.startswith("rstar-")
    partial = info.value.partial
    assert partial is not None and partial.question == Q_TOM and partial.answer is None
    assert set(partial.tree) == {"0"}  # only the root: no model call ever succeeded


@pytest.mark.parametrize("kind", ["no_choices", "not_json", "no_text"])
async def test_a_malformed_reply_raises_rstar_error(scripted, llm, tiny_config, kind):
    scripted.malformed_next(20, kind=kind)  # the llm fixture retries once; 4 calls at once
    with pytest.raises(RStarError, match="malformed reply") as info:
        await asolve(Q_TOM, target=llm, config=small(tiny_config))
    assert isinstance(info.value.__cause__, BackendError)
    assert info.value.partial is not None and info.value.partial.answer is None


class BreakingServer(ScriptedServer):
    """Answers normally until ``fail_after`` requests were seen, then sends malformed replies."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fail_after: int | None = None
        self.injected = 0
        self._count_lock = threading.Lock()

    def _handle(self, path, body):
        if self.fail_after is not None and len(self.posts) >= self.fail_after:
            with self._count_lock:
                self.injected += 1
            self.malformed_next()
        return super()._handle(path, body)


async def test_a_mid_run_failure_keeps_the_partial_tree_and_the_thread_resumes(tiny_config):
    with ScriptedServer(rstar_responder) as server:
        llm = OpenAICompatibleLLM(server.base_url, "m", max_retries=0)
        baseline = await asolve(Q_TOM, target=llm, config=tiny_config)
        baseline_posts = len(server.posts)

    saver = InMemorySaver()
    with BreakingServer(rstar_responder) as server:
        server.fail_after = baseline_posts // 3
        # one request at a time, so no sibling is cancelled with its reply already in hand
        llm = OpenAICompatibleLLM(server.base_url, "m", max_retries=0, max_in_flight=1)
        with pytest.raises(RStarError, match="malformed reply") as info:
            await asolve(Q_TOM, target=llm, config=tiny_config, checkpointer=saver, thread_id="t9")
        error = info.value
        assert error.thread_id == "t9"
        partial = error.partial
        assert partial is not None and partial.answer is None
        assert len(partial.tree) > 1 and partial.tree["0"]["children"]
        assert partial.question == Q_TOM
        assert server.injected >= 1
        posts_at_failure = len(server.posts)

        server.fail_after = None  # the server recovers
        resumed = await asolve(
            Q_TOM, target=llm, config=tiny_config, checkpointer=saver, thread_id="t9"
        )
        total_posts = len(server.posts)
    assert resumed.answer == baseline.answer == TOM
    assert set(partial.tree) <= set(resumed.tree)
    assert resumed.tree == baseline.tree and resumed.candidates == baseline.candidates
    # resumed, not restarted: the finished tasks' requests were not sent again. LangGraph
    # checkpoints whole tasks, so an action that failed on its second request (A3 asks a
    # sub-question, then answers it) re-sends its first one; nothing else is repeated.
    assert total_posts - posts_at_failure < baseline_posts
    assert 0 <= total_posts - baseline_posts - server.injected <= 2


async def test_a_new_question_on_an_unfinished_thread_is_not_answered_with_the_old_one(
    tiny_config,
):
    saver = InMemorySaver()
    with BreakingServer(rstar_responder) as server:
        server.fail_after = 4
        llm = OpenAICompatibleLLM(server.base_url, "m", max_retries=0)
        with pytest.raises(RStarError):
            await asolve(Q_TOM, target=llm, config=tiny_config, checkpointer=saver, thread_id="t")
        server.fail_after = None
        try:
            result = await asolve(
                Q_PENS, target=llm, config=tiny_config, checkpointer=saver, thread_id="t"
            )
        except ValueError:
            return  # refusing to mix two questions on one thread is fine too
    assert result.question == Q_PENS
    assert result.answer == PENS


# ----------------------------------------------------------------------------------- CLI


def solve_argv(server: ScriptedServer, *extra: str, question: str = Q_TOM) -> list[str]:
    return ["solve", question, "--base-url", server.base_url, "--model", "m", *extra]


def test_cli_json_prints_one_object(scripted, capsys):
    code = cli_main(solve_argv(scripted, "--json", "--rollouts", "2"))
    captured = capsys.readouterr()
    assert code == 0
    payload = json.loads(captured.out)  # the whole of stdout is one JSON object
    assert payload["answer"] == TOM
    assert 0 < payload["confidence"] <= 1
    assert payload["usage"]["target"]["requests"] > 0
    assert payload["config"]["num_rollouts"] == 2
    assert "tree" not in payload
    code = cli_main(solve_argv(scripted, "--json", "--full", "--rollouts", "1"))
    assert code == 0 and "0" in json.loads(capsys.readouterr().out)["tree"]


def test_cli_text_mode_prints_answer_trajectory_and_tree(scripted, capsys):
    code = cli_main(solve_argv(scripted, "--rollouts", "2", "--quiet"))
    out = capsys.readouterr().out
    assert code == 0
    assert "Trajectory" in out and "Step 1:" in out
    assert f"Answer: {TOM}" in out
    assert "question" not in out.split("Trajectory")[0]  # no tree without --tree
    code = cli_main(solve_argv(scripted, "--rollouts", "2", "--tree"))
    captured = capsys.readouterr()
    assert code == 0
    tree, _, rest = captured.out.partition("Trajectory")
    assert tree.startswith("0 question (N=2")
    assert "0.d0 direct_answer" in tree or "0.s0 one_step" in tree
    assert f"Answer: {TOM}" in rest
    assert "rollouts" in captured.err  # the progress view goes to stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["", "--base-url", "http://127.0.0.1:9/v1"], "non-empty question"),
        (["   ", "--base-url", "http://127.0.0.1:9/v1"], "non-empty question"),
        ([Q_TOM, "--base-url", "http://127.0.0.1:9/v1", "--task", "nope"], "unknown task"),
    ],
)
def test_cli_bad_input_exits_2(capsys, argv, message):
    code = cli_main(["solve", *argv, "--model", "m"])
    captured = capsys.readouterr()
    assert code == 2
    assert "rstar: error:" in captured.err and message in captured.err
    assert captured.out == ""


def test_cli_dead_base_url_exits_2_without_a_traceback(capsys, monkeypatch):
    monkeypatch.setattr(OpenAICompatibleLLM, "retry_initial_wait", 0.01)
    monkeypatch.setattr(OpenAICompatibleLLM, "retry_max_wait", 0.02)
    url = f"http://127.0.0.1:{free_port()}/v1"
    start = time.perf_counter()
    code = cli_main(["solve", Q_TOM, "--base-url", url, "--model", "m", "--json"])
    captured = capsys.readouterr()
    assert time.perf_counter() - start < 4
    assert code == 2
    assert "error" in captured.err and "cannot reach" in captured.err
    assert "Traceback" not in captured.err + captured.out
    failure = json.loads(captured.out)  # with --json the failure is one JSON object too
    assert failure["type"] == "run_failed" and "cannot reach" in failure["error"]
    assert failure["partial"]["question"] == Q_TOM and "tree" not in failure["partial"]


async def test_cli_endpoints_close_their_clients_when_the_body_fails(scripted):
    from langgraph_rstar.cli import build_parser, open_endpoints

    args = build_parser().parse_args(
        solve_argv(scripted, "--discriminator-model", "judge", "--max-in-flight", "4")
    )
    with pytest.raises(RuntimeError, match="boom"):
        async with open_endpoints(args) as ends:
            await ends.target.generate(["Question: x\nStep 1:"], max_tokens=8)
            await ends.discriminator.generate(["Question: x\nStep 1:"], max_tokens=8)
            assert ends.target._loops and ends.discriminator._loops  # both hold a client
            raise RuntimeError("boom")
    assert not ends.target._loops and not ends.discriminator._loops  # closed anyway


def test_cli_solve_against_a_server_that_cannot_solve_prints_no_answer(capsys):
    """The labels in the prompt ("Step 1:", "Sub-question 1:") never become an answer."""
    from tests.statistical_world import cannot_solve_responder

    with ScriptedServer(cannot_solve_responder) as server:
        argv = ["solve", Q_TOM, "--base-url", server.base_url, "--model", "m", "--rollouts", "3"]
        assert cli_main(argv) == 0
        captured = capsys.readouterr()
        assert "No answer" in captured.out and "Answer:" not in captured.out
        assert cli_main([*argv, "--json"]) == 0
        payload = json.loads(capsys.readouterr().out)
    assert payload["answer"] is None and payload["candidates"] == []
    assert payload["trajectory"] == [] and payload["selection"] == "none"
