"""Sync ``invoke``/``stream``, JSON schemas on any Python, and ``langgraph dev`` serving the graphs.

The last test starts the real LangGraph dev server (``langgraph dev``, langgraph-cli's in-memory
runtime) on ``langgraph.json``, reads the schemas endpoint Studio reads, and runs one question
on each graph against the scripted server.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import pkgutil
import shutil
import signal
import subprocess
import sys
import time
import typing
from pathlib import Path

import httpx
import pytest
import typing_extensions
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from pydantic import TypeAdapter

import langgraph_rstar
from langgraph_rstar import create_rstar_graph
from langgraph_rstar.graph import RStarState
from tests.conftest import QUESTIONS
from tests.test_surfaces import free_port

(Q_TOM, (TOM, _)), (Q_PENS, (PENS, _)), (Q_PAGES, (PAGES, _)) = QUESTIONS.items()
REPO = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------- sync


def test_sync_invoke_and_stream(llm, tiny_config, scripted):
    app = create_rstar_graph(llm, config=tiny_config).compile()
    out = app.invoke({"question": Q_TOM})
    assert out["answer"] == TOM and out["messages"][-1].name == "rstar"
    requests = len(scripted.posts)
    assert requests > 0
    seen: dict[str, set] = {"custom": set(), "updates": set()}
    for mode, chunk in app.stream({"question": Q_PENS}, stream_mode=["custom", "updates"]):
        seen[mode].add(chunk["type"] if mode == "custom" else next(iter(chunk)))
    assert {"rstar.rollout_finished", "rstar.final_answer"} <= seen["custom"]
    assert {"init", "search", "a1_one_step", "discriminate", "finalize"} <= seen["updates"]


def test_sync_invoke_of_a_checkpointed_parent_graph(llm, tiny_config):
    builder = StateGraph(MessagesState)
    builder.add_node("rstar", create_rstar_graph(llm, config=tiny_config).compile())
    builder.add_edge(START, "rstar")
    agent = builder.compile(checkpointer=InMemorySaver())
    thread = {"configurable": {"thread_id": "t"}}
    out = agent.invoke({"messages": [("user", Q_PAGES)]}, thread)
    assert out["messages"][-1].content.endswith(f"Final answer: {PAGES}")
    assert not agent.get_state(thread).next  # finished, and the sync checkpointer saw it


async def test_nodes_put_the_run_config_in_context_where_langgraph_does_not(
    monkeypatch, llm, tiny_config
):
    # Python 3.10: LangGraph cannot hand its config to async nodes through the context, and its
    # custom stream writer then fails. nodes.node() sets it; checked here on any Python.
    from langchain_core.runnables.config import var_child_runnable_config

    from langgraph_rstar import nodes

    async def peek(state: dict) -> dict:
        return {"seen": var_child_runnable_config.get()}

    wrapped = nodes._in_run_context(peek)
    assert "config" in inspect.signature(wrapped).parameters
    marker = {"configurable": {"thread_id": "x"}}
    assert (await wrapped({}, config=marker))["seen"] is marker
    assert var_child_runnable_config.get() is None  # and unset afterwards

    monkeypatch.setattr(nodes, "_CONTEXT_FROM_LANGGRAPH", False)  # the 3.10 path, end to end
    app = create_rstar_graph(llm, config=tiny_config).compile()
    kinds = [e["type"] async for e in app.astream({"question": Q_TOM}, stream_mode="custom")]
    assert kinds[0] == "rstar.rollout_started" and kinds[-1] == "rstar.final_answer"
    assert app.invoke({"question": Q_PENS})["answer"] == PENS


# ----------------------------------------------------------------------------- schemas


def test_json_schemas_build(llm):
    app = create_rstar_graph(llm).compile()
    assert set(app.get_input_jsonschema()["properties"]) == {"question", "messages"}
    assert {"answer", "confidence", "trajectory"} <= set(app.get_output_jsonschema()["properties"])
    assert "num_rollouts" in app.get_context_jsonschema()["properties"]
    state = TypeAdapter(RStarState).json_schema()
    assert {"nodes", "rollouts"} <= set(state["properties"])


def package_typeddicts():
    for info in pkgutil.walk_packages(langgraph_rstar.__path__, "langgraph_rstar."):
        if info.name.endswith((".local", ".serve")) or ".eval" in info.name:
            continue  # heavy optional imports; they define no state schema
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and typing_extensions.is_typeddict(obj):
                if obj.__module__ == module.__name__:
                    yield f"{info.name}.{name}", obj


def test_every_typeddict_comes_from_typing_extensions():
    found = dict(package_typeddicts())
    assert (
        "langgraph_rstar.search.TreeNode" in found
        and "langgraph_rstar.config.RStarContext" in found
    )
    if typing_extensions.TypedDict is typing.TypedDict:
        pytest.skip("typing_extensions re-exports typing's TypedDict on this Python")
    plain = [name for name, cls in found.items() if type(cls).__module__ == "typing"]
    assert plain == []  # pydantic refuses typing.TypedDict before Python 3.12


# ----------------------------------------------------------------------------- langgraph dev


@pytest.fixture
def langgraph_dev(scripted, tmp_path):
    if sys.version_info < (3, 11):
        pytest.skip("langgraph dev's server (langgraph-api) needs Python >= 3.11")
    exe = shutil.which("langgraph", path=os.path.dirname(sys.executable))
    if exe is None:
        pytest.fail("langgraph-cli is not installed (it is in the test extra)")
    port = free_port()
    env = {
        **os.environ,
        "RSTAR_TARGET_BASE_URL": scripted.base_url,
        "RSTAR_TARGET_MODEL": "scripted",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        "LANGSMITH_TRACING": "false",
    }
    # The repository's langgraph.json, with its "./" paths made absolute so that the server's
    # scratch directory (.langgraph_api/, relative to the cwd) lands in tmp_path.
    spec = json.loads((REPO / "langgraph.json").read_text())
    for name, where in spec["graphs"].items():
        if where.startswith("./"):
            spec["graphs"][name] = str(REPO / where[2:])
    spec["dependencies"] = [str(REPO)]
    config = tmp_path / "langgraph.json"
    config.write_text(json.dumps(spec))
    log = (tmp_path / "langgraph-dev.log").open("w")
    proc = subprocess.Popen(
        [exe, "dev", "--config", str(config), "--port", str(port)]
        + ["--no-browser", "--no-reload"],
        cwd=tmp_path,  # its .langgraph_api/ scratch directory lands here
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"langgraph dev exited: {(tmp_path / 'langgraph-dev.log').read_text()}")
            try:
                if httpx.get(f"{base}/ok", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("langgraph dev did not start in 90 s")
            time.sleep(0.5)
        yield httpx.Client(base_url=base, timeout=60)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def assistant(client: httpx.Client, graph_id: str) -> str:
    found = client.post("/assistants/search", json={"graph_id": graph_id}).json()
    assert len(found) == 1, found
    return found[0]["assistant_id"]


def test_langgraph_dev_serves_schemas_and_runs_a_question(langgraph_dev, scripted):
    client = langgraph_dev
    rstar = assistant(client, "rstar")
    resp = client.get(f"/assistants/{rstar}/schemas")
    assert resp.status_code == 200, resp.text
    schemas = resp.json()
    assert {"question", "messages"} <= set(schemas["input_schema"]["properties"])
    assert {"answer", "confidence"} <= set(schemas["output_schema"]["properties"])
    assert "num_rollouts" in schemas["context_schema"]["properties"]

    body = {"assistant_id": rstar, "input": {"question": Q_TOM}, "context": {"num_rollouts": 2}}
    out = client.post("/runs/wait", json=body).json()
    assert out["answer"] == TOM, out
    assert out["messages"][-1]["name"] == "rstar"
    assert scripted.posts  # the search ran against the scripted server

    agent = assistant(client, "agent")
    assert client.get(f"/assistants/{agent}/schemas").status_code == 200
    turn = {"messages": [{"role": "user", "content": Q_PENS}]}
    out = client.post("/runs/wait", json={"assistant_id": agent, "input": turn}).json()
    assert out["messages"][-1]["content"].startswith(f"The answer is {PENS}"), out
