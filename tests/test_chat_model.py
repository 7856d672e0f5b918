"""LangChain chat models and LLMs as rStar's target or discriminator (``ChatModelLLM``).

Real parts: a chat model that answers by prompt content (``tests/scripted_chat_model.py``), and
``langchain_openai``'s ``ChatOpenAI`` / ``OpenAI`` talking HTTP to the scripted server.
"""

from __future__ import annotations

import sys

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_openai import ChatOpenAI, OpenAI

from langgraph_rstar import (
    BackendError,
    ChatModelLLM,
    OpenAICompatibleLLM,
    RStarConfig,
    asolve,
    create_rstar_graph,
)
from langgraph_rstar.backends import as_backend
from langgraph_rstar.tool import create_rstar_tool
from tests.conftest import QUESTIONS, rstar_responder
from tests.scripted_chat_model import ScriptedChatModel
from tests.scripted_server import ScriptedServer

(Q_TOM, (TOM, _)), (Q_PENS, (PENS, _)), _ = QUESTIONS.items()


def chat_openai(server: ScriptedServer, **kwargs) -> ChatOpenAI:
    return ChatOpenAI(
        base_url=server.base_url, api_key="k", model="scripted", max_retries=0, **kwargs
    )


async def test_a_chat_model_without_n_is_the_target_end_to_end(tiny_config):
    model = ScriptedChatModel()
    result = await asolve(Q_TOM, target=model, config=tiny_config)
    assert result.answer == TOM and result.trajectory
    calls = model.calls
    usage = result.usage
    # one call per sample: every model call is counted as one request, target and discriminator
    assert usage["target"]["requests"] + usage["discriminator"]["requests"] == len(calls)
    assert usage["target"]["completion_tokens"] > 0 and usage["target"]["prompt_tokens"] > 0
    # n > 1 went out as several calls of the same prompt (the model has no `n` field)
    prompts = [p for p, _ in calls]
    assert max(prompts.count(p) for p in set(prompts)) >= tiny_config.num_votes
    # stop strings were passed on (OpenAI's limit of 4 by default)
    assert all(stop and len(stop) <= 4 for _, stop in calls)


async def test_generate_cuts_at_stop_strings_the_model_ignored():
    llm = ChatModelLLM(ScriptedChatModel())
    prompt = "Question: Tom has 3 apples and buys 2 more. How many apples?\nStep 1:"
    gen = await llm.generate([prompt], n=3, stop=["\n"], max_tokens=50)
    texts = [c.text for c in gen.choices[0]]
    assert texts == [" We work it out."] * 3  # the model wrote on to "Step 2: ..."
    assert all(c.finish_reason == "stop" for c in gen.choices[0])
    assert gen.usage.requests == 3 and llm.usage.requests == 3
    assert sum(c.tokens for c in gen.choices[0]) == gen.usage.completion_tokens > 0


async def test_chat_openai_target_uses_n_and_counts_every_request(scripted, tiny_config):
    model = chat_openai(scripted)
    result = await asolve(Q_PENS, target=model, config=tiny_config)
    assert result.answer == PENS
    posts = scripted.posts
    assert {rec.path for rec in posts} == {"/v1/chat/completions"}
    assert max(rec.n for rec in posts) == tiny_config.num_last_votes  # n in one request
    assert all(len(rec.stop) <= 4 for rec in posts)
    usage = result.usage
    assert usage["target"]["requests"] + usage["discriminator"]["requests"] == len(posts)
    sent = {k: v for k, v in posts[0].body.items() if k in ("temperature", "top_p", "seed")}
    assert sent["temperature"] == tiny_config.temperature and sent["top_p"] == tiny_config.top_p


async def test_a_completions_llm_and_a_chat_discriminator(scripted, tiny_config):
    target = OpenAI(base_url=scripted.base_url, api_key="k", model="scripted", max_retries=0)
    disc = chat_openai(scripted)
    result = await asolve(Q_TOM, target=target, discriminator=disc, config=tiny_config)
    assert result.answer == TOM
    paths = [rec.path for rec in scripted.posts]
    assert paths.count("/v1/completions") == result.usage["target"]["requests"]
    assert paths.count("/v1/chat/completions") == result.usage["discriminator"]["requests"] > 0


async def test_a_server_that_ignores_n_gets_one_call_per_missing_sample(tiny_config):
    with ScriptedServer(rstar_responder, ignore_n=True) as server:
        llm = ChatModelLLM(chat_openai(server))
        assert llm.use_n
        gen = await llm.generate(["Question: Tom has 3 apples.\nStep 1:"], n=3, stop=["\n"])
        assert len(gen.choices[0]) == 3 and not llm.use_n
        assert [rec.n for rec in server.posts] == [3, 1, 1]
        assert gen.usage.requests == 3


async def test_seeded_calls_of_one_prompt_get_distinct_seeds(scripted):
    llm = ChatModelLLM(chat_openai(scripted), use_n=False)
    await llm.generate(["Question: Tom?\nStep 1:"], n=3, seed=10)
    assert sorted(rec.body["seed"] for rec in scripted.posts) == [10, 11, 12]


async def test_a_model_string_goes_through_init_chat_model(scripted, tiny_config, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    monkeypatch.setenv("OPENAI_BASE_URL", scripted.base_url)
    result = await asolve(Q_TOM, target="openai:scripted", config=tiny_config)
    assert result.answer == TOM
    assert {rec.body["model"] for rec in scripted.posts} == {"scripted"}


def test_a_model_string_without_langchain_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "langchain.chat_models", None)
    with pytest.raises(ImportError, match=r"pip install 'langgraph-rstar\[langchain\]'"):
        ChatModelLLM("openai:gpt-4o-mini")


async def test_the_issue_symptom_a_generic_fake_chat_model_target_runs():
    # Was: "'str' object has no attribute 'content'" in the middle of the run.
    replies = iter(lambda: AIMessage(content=" The answer is 5."), None)
    result = await asolve(
        Q_TOM,
        target=GenericFakeChatModel(messages=replies),
        config=RStarConfig.preset("fast", num_rollouts=1, use_discriminator=False),
    )
    assert result.answer == "5"


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (object(), "target must be an LLMBackend"),
        ("http://localhost:8000/v1", "Unable to infer model provider"),
        (ChatOpenAI(api_key="k", model="m").bind(temperature=0), "not a model itself"),
    ],
)
def test_anything_else_fails_when_the_graph_is_built(bad, message):
    with pytest.raises((TypeError, ValueError), match=message):
        create_rstar_graph(bad)


def test_the_tool_and_the_discriminator_check_their_models_at_build_time(llm):
    with pytest.raises(TypeError, match="discriminator must be"):
        create_rstar_graph(llm, discriminator=42)
    with pytest.raises(TypeError, match="target must be"):
        create_rstar_tool(42)  # type: ignore[arg-type]


async def test_asolve_rejects_a_non_model_before_any_request(scripted):
    with pytest.raises(TypeError, match="target must be"):
        await asolve(Q_TOM, target=scripted)  # type: ignore[arg-type]
    assert scripted.posts == []


def test_as_backend_keeps_backends_and_wraps_models(llm):
    assert as_backend(llm) is llm
    wrapped = as_backend(ScriptedChatModel())
    assert isinstance(wrapped, ChatModelLLM) and wrapped.chat
    assert isinstance(as_backend(OpenAI(api_key="k", model="m")), ChatModelLLM)
    assert not isinstance(wrapped, OpenAICompatibleLLM)


async def test_a_failing_model_is_a_backend_error(tiny_config):
    class Broken(ScriptedChatModel):
        async def _agenerate(self, messages, stop=None, run_manager=None, **kwargs):
            raise ConnectionError("provider is down")

    with pytest.raises(BackendError, match="provider is down"):
        await ChatModelLLM(Broken()).generate(["Question: x\nStep 1:"])
