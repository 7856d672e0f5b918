"""Every model call is an LLM run in LangChain callbacks, under the node that made it.

A callback handler records the runs of a whole search while the scripted server logs the
requests it received; the two must match one to one, with prompts, completions, token usage and
rStar's metadata (action, node id, rollout).
"""

from __future__ import annotations

import sys
import threading
from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_openai import ChatOpenAI

from langgraph_rstar import ACTIONS, OpenAICompatibleLLM, create_rstar_graph
from langgraph_rstar.backends import llm_run_context
from langgraph_rstar.backends.tracing import start_llm_run
from tests.conftest import QUESTIONS
from tests.scripted_chat_model import ScriptedChatModel

(Q_TOM, (TOM, _)), _, _ = QUESTIONS.items()


class RunRecorder(BaseCallbackHandler):
    """Records chain runs (graph nodes) and LLM / chat-model runs with what they carried."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.chains: dict[UUID, str] = {}
        self.parents: dict[UUID, UUID | None] = {}
        self.llm: dict[UUID, dict[str, Any]] = {}

    def on_chain_start(self, serialized, inputs, *, run_id, parent_run_id=None, **kwargs):
        with self.lock:
            self.chains[run_id] = kwargs.get("name") or ""
            self.parents[run_id] = parent_run_id

    def on_tool_start(self, serialized, input_str, *, run_id, parent_run_id=None, **kwargs):
        with self.lock:
            self.chains[run_id] = f"tool {kwargs.get('name') or serialized.get('name')}"
            self.parents[run_id] = parent_run_id

    def _start(self, kind, prompts, run_id, parent_run_id, tags, metadata, kwargs):
        with self.lock:
            self.llm[run_id] = {
                "kind": kind,
                "prompts": prompts,
                "parent": self.chains.get(parent_run_id),
                "tags": tags or [],
                "metadata": metadata or {},
                "params": kwargs.get("invocation_params") or {},
                "end": None,
                "error": None,
            }

    def on_llm_start(self, serialized, prompts, *, run_id, parent_run_id=None, **kwargs):
        tags, metadata = kwargs.pop("tags", None), kwargs.pop("metadata", None)
        self._start("llm", prompts, run_id, parent_run_id, tags, metadata, kwargs)

    def on_chat_model_start(self, serialized, messages, *, run_id, parent_run_id=None, **kwargs):
        tags, metadata = kwargs.pop("tags", None), kwargs.pop("metadata", None)
        prompts = [m.content for batch in messages for m in batch]
        self._start("chat", prompts, run_id, parent_run_id, tags, metadata, kwargs)

    def on_llm_end(self, response, *, run_id, **kwargs):
        with self.lock:
            self.llm[run_id]["end"] = response

    def on_llm_error(self, error, *, run_id, **kwargs):
        with self.lock:
            self.llm[run_id]["error"] = error


def check_runs_match_requests(recorder: RunRecorder, server, kind: str) -> list[dict[str, Any]]:
    runs = list(recorder.llm.values())
    posts = server.posts
    assert len(runs) == len(posts) > 0
    assert all(r["kind"] == kind and r["end"] is not None and r["error"] is None for r in runs)
    # the same prompts, request for run
    assert sorted(tuple(r["prompts"]) for r in runs) == sorted(tuple(p.prompts) for p in posts)
    for run in runs:
        meta = run["metadata"]
        # nested under the graph node that made the call, with rStar's metadata
        assert run["parent"] == meta["rstar_action"] == meta["langgraph_node"]
        if meta["rstar_action"] in ACTIONS:
            assert isinstance(meta["rstar_node_id"], str) and meta["rstar_rollout"] >= 0
        else:
            assert meta["rstar_action"] == "discriminate" and meta["rstar_node_ids"]
    return runs


@pytest.mark.parametrize("mode", ["async", "sync"])
async def test_one_llm_run_per_request_of_a_whole_search(scripted, tiny_config, mode):
    llm = OpenAICompatibleLLM(scripted.base_url, "scripted", name="target")
    app = create_rstar_graph(llm, config=tiny_config).compile()
    recorder = RunRecorder()
    config = {"callbacks": [recorder]}
    if mode == "async":
        out = await app.ainvoke({"question": Q_TOM}, config)
    else:
        out = app.invoke({"question": Q_TOM}, config)
    assert out["answer"] == TOM
    runs = check_runs_match_requests(recorder, scripted, "llm")
    print(f"\n{mode}: {len(runs)} LLM runs, {len(scripted.posts)} requests logged by the server")
    assert {r["metadata"]["rstar_action"] for r in runs} >= {"a1_one_step", "discriminate"}
    # the runs' token usage adds up to the search's own accounting
    tokens = sum(r["end"].llm_output["token_usage"]["completion_tokens"] for r in runs)
    usage = out["usage"]
    assert (
        tokens == usage["target"]["completion_tokens"] + usage["discriminator"]["completion_tokens"]
    )
    one = runs[0]
    assert one["metadata"]["ls_model_name"] == "scripted" and one["params"]["n"] >= 1
    assert len(one["end"].generations) == len(one["prompts"])


async def test_a_failed_attempt_is_an_errored_run_then_the_retry_a_good_one(scripted):
    llm = OpenAICompatibleLLM(scripted.base_url, "scripted", max_retries=1)
    llm.retry_initial_wait = 0.01
    recorder = RunRecorder()
    scripted.fail_next(1, 503)
    with llm_run_context({"callbacks": [recorder]}, metadata={"why": "test"}):
        gen = await llm.generate(["Question: Tom?\nStep 1:", "Question: Tom?\nStep 2:"], n=2)
    runs = list(recorder.llm.values())
    assert len(runs) == len(scripted.posts) == 2
    assert [r["error"] is not None for r in runs] == [True, False]
    good = runs[1]
    assert good["prompts"] == ["Question: Tom?\nStep 1:", "Question: Tom?\nStep 2:"]
    texts = [[g.text for g in gens] for gens in good["end"].generations]
    assert texts == [[c.text for c in choices] for choices in gen.choices]
    assert good["metadata"]["why"] == "test"


async def test_a_chat_openai_search_traces_the_models_own_runs(scripted, tiny_config):
    model = ChatOpenAI(base_url=scripted.base_url, api_key="k", model="scripted", max_retries=0)
    app = create_rstar_graph(model, config=tiny_config).compile()
    recorder = RunRecorder()
    out = await app.ainvoke({"question": Q_TOM}, {"callbacks": [recorder]})
    assert out["answer"] == TOM
    runs = check_runs_match_requests(recorder, scripted, "chat")
    # token usage is the model's own; "nostream" keeps samples out of a messages stream
    assert all("nostream" in r["tags"] for r in runs)
    assert all(r["end"].llm_output["token_usage"]["completion_tokens"] > 0 for r in runs)


async def test_a_chat_model_target_streams_no_sample_into_the_messages_stream(tiny_config):
    app = create_rstar_graph(ScriptedChatModel(), config=tiny_config).compile()
    names = []
    async for message, _meta in app.astream({"question": Q_TOM}, stream_mode="messages"):
        names.append(getattr(message, "name", None))
    assert names == ["rstar"]  # only the final answer message


async def test_nobody_listening_costs_no_run():
    assert await start_llm_run("x", ["p"], model="m") is None
    with llm_run_context({"callbacks": [RunRecorder()]}):
        assert await start_llm_run("x", ["p"], model="m") is not None


@pytest.mark.skipif(
    sys.version_info < (3, 11), reason="LangChain's run context reaches tools on 3.11+"
)
async def test_a_tool_call_traces_the_search_under_the_tool(scripted, tiny_config):
    from langgraph_rstar.tool import create_rstar_tool

    tool = create_rstar_tool(OpenAICompatibleLLM(scripted.base_url, "scripted"), config=tiny_config)
    recorder = RunRecorder()
    call = {"name": tool.name, "args": {"question": Q_TOM}, "id": "call-1", "type": "tool_call"}
    message = await tool.ainvoke(call, {"callbacks": [recorder]})
    assert f"Answer: {TOM}" in message.content
    runs = check_runs_match_requests(recorder, scripted, "llm")
    (graph,) = [rid for rid, name in recorder.chains.items() if name == "LangGraph"]
    assert recorder.chains[recorder.parents[graph]] == "tool rstar_reason"  # graph under tool
    assert all(r["metadata"].get("rstar_action") for r in runs)
