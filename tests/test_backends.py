"""OpenAICompatibleLLM against a real HTTP server (tests/scripted_server.py) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from langgraph_rstar.backends import (
    BackendError,
    Completion,
    Generation,
    LLMBackend,
    OpenAICompatibleLLM,
    Usage,
    apply_stop,
)
from tests.scripted_server import ScriptedServer


def echo(prompt: str, params: dict[str, Any]) -> str:
    """``<prompt>|<choice index>``: tells exactly which prompt and choice a text belongs to."""
    return f"{prompt}|{params['n_index']}"


_created: list[OpenAICompatibleLLM] = []


def make_llm(server: ScriptedServer | str, **kwargs: Any) -> OpenAICompatibleLLM:
    url = server if isinstance(server, str) else server.base_url
    kwargs.setdefault("timeout", 10)
    llm = OpenAICompatibleLLM(url, "scripted", **kwargs)
    llm.retry_initial_wait = 0.01  # keep retry tests fast
    llm.retry_max_wait = 0.05
    _created.append(llm)
    return llm


@pytest.fixture(autouse=True)
async def _close_backends() -> AsyncIterator[None]:
    """Close the HTTP clients the test opened (on the test's own event loop)."""
    yield
    while _created:
        await _created.pop().aclose()


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer(echo) as srv:
        yield srv


# -- sampling and regrouping ----------------------------------------------------------------


@pytest.mark.parametrize("reverse", [False, True])
async def test_n_choices_regrouped_by_prompt(reverse: bool) -> None:
    with ScriptedServer(echo, reverse_choices=reverse) as srv:
        llm = make_llm(srv)
        gen = await llm.generate(["a", "b", "c"], n=3, max_tokens=8)
    assert isinstance(gen, Generation)
    assert [[c.text for c in cs] for cs in gen.choices] == [
        [f"{p}|{j}" for j in range(3)] for p in "abc"
    ]
    # One batched request carrying the list of prompts.
    assert len(srv.log) == 1
    assert srv.log[0].path == "/v1/completions"
    assert srv.log[0].body["prompt"] == ["a", "b", "c"]
    assert srv.log[0].n == 3
    assert gen.usage.requests == 1 and llm.usage.requests == 1


async def test_single_prompt_sent_as_string(server: ScriptedServer) -> None:
    gen = await make_llm(server).generate(["only"], n=2)
    assert server.log[0].body["prompt"] == "only"
    assert [c.text for c in gen.choices[0]] == ["only|0", "only|1"]


async def test_unbatched_prompts_one_request_each(server: ScriptedServer) -> None:
    llm = make_llm(server, batch_prompts=False)
    gen = await llm.generate(["x", "y", "z"], n=2)
    assert [[c.text for c in cs] for cs in gen.choices] == [
        [f"{p}|{j}" for j in range(2)] for p in "xyz"
    ]
    assert sorted(r.body["prompt"] for r in server.log) == ["x", "y", "z"]
    assert gen.usage.requests == 3


async def test_empty_prompt_list_makes_no_request(server: ScriptedServer) -> None:
    gen = await make_llm(server).generate([], n=3)
    assert gen.choices == [] and server.log == []


async def test_rejects_a_bare_string(server: ScriptedServer) -> None:
    with pytest.raises(TypeError):
        await make_llm(server).generate("not a list", n=1)  # type: ignore[arg-type]


async def test_chat_api() -> None:
    with ScriptedServer(lambda p, params: f"chat:{p}:{params['n_index']}") as srv:
        llm = make_llm(srv, api="chat")
        gen = await llm.generate(["hello", "bye"], n=2)
    assert [[c.text for c in cs] for cs in gen.choices] == [
        ["chat:hello:0", "chat:hello:1"],
        ["chat:bye:0", "chat:bye:1"],
    ]
    assert {r.path for r in srv.log} == {"/v1/chat/completions"}
    assert sorted(json.dumps(r.body["messages"]) for r in srv.log) == [
        json.dumps([{"role": "user", "content": "bye"}]),
        json.dumps([{"role": "user", "content": "hello"}]),
    ]
    assert gen.usage.requests == 2


async def test_base_url_without_path_gets_v1(server: ScriptedServer) -> None:
    root = server.base_url.removesuffix("/v1")
    gen = await make_llm(root).generate(["p"])
    assert gen.choices[0][0].text == "p|0"


# -- stop strings ----------------------------------------------------------------------------


def test_apply_stop_cuts_at_earliest() -> None:
    assert apply_stop("a STOP b END c", ["END", "STOP"]) == ("a ", True)
    assert apply_stop("nothing", ["x"]) == ("nothing", False)
    assert apply_stop("abc", []) == ("abc", False)


async def test_stop_applied_client_side_when_server_ignores_it() -> None:
    with ScriptedServer(lambda p, _: "step one\n\nstep two", apply_stop=False) as srv:
        gen = await make_llm(srv).generate(["q"], n=2, stop=["\n\n"])
    assert srv.log[0].stop == ["\n\n"]  # sent, but the server did not apply it
    assert [c.text for c in gen.choices[0]] == ["step one", "step one"]
    assert all(c.finish_reason == "stop" for c in gen.choices[0])


async def test_stop_applied_client_side_with_max_stop_zero() -> None:
    with ScriptedServer(lambda p, _: "The answer is 4. Question: next") as srv:
        gen = await make_llm(srv, max_stop=0).generate(["q"], stop=["Question:"])
    assert srv.log[0].stop == []
    assert "stop" not in srv.log[0].body
    assert gen.choices[0][0].text == "The answer is 4. "
    assert gen.choices[0][0].finish_reason == "stop"


@pytest.mark.parametrize(
    ("dialect", "max_stop", "sent"),
    [("tgi", None, 4), ("openai", None, 4), ("vllm", None, 6), ("llamacpp", 2, 2)],
)
async def test_max_stop_truncates_sent_list(dialect: str, max_stop: int | None, sent: int) -> None:
    stops = ["<a>", "<b>", "<c>", "<d>", "<e>", "<f>"]
    with ScriptedServer(lambda p, _: "keep this<f>drop this") as srv:
        llm = make_llm(srv, dialect=dialect, max_stop=max_stop)
        gen = await llm.generate(["q"], stop=stops)
    assert srv.log[0].stop == stops[:sent]
    # The last stop string was maybe not sent, but the text is cut at it anyway.
    assert gen.choices[0][0].text == "keep this"


# -- dialects --------------------------------------------------------------------------------


async def test_dialect_vllm_extras(server: ScriptedServer) -> None:
    await make_llm(server, dialect="vllm").generate(
        ["q"], top_k=20, repetition_penalty=1.2, seed=7, temperature=0.5, top_p=0.9
    )
    body = server.log[0].body
    assert body["top_k"] == 20 and body["repetition_penalty"] == 1.2
    assert body["seed"] == 7 and body["temperature"] == 0.5 and body["top_p"] == 0.9
    assert "repeat_penalty" not in body and "min_p" not in body and "logprobs" not in body


async def test_dialect_llamacpp_extras(server: ScriptedServer) -> None:
    await make_llm(server, dialect="llamacpp").generate(["q"], top_k=30, repetition_penalty=1.3)
    body = server.log[0].body
    assert body["top_k"] == 30
    assert body["repeat_penalty"] == 1.3
    assert "repetition_penalty" not in body  # llama.cpp ignores that name silently
    assert body["min_p"] == 0
    assert body["logprobs"] == 1  # for per-choice token counts


async def test_dialect_tgi_extras(server: ScriptedServer) -> None:
    await make_llm(server, dialect="tgi").generate(["q"], top_k=5, repetition_penalty=1.05)
    body = server.log[0].body
    assert body["top_k"] == 5 and body["repetition_penalty"] == 1.05


async def test_dialect_openai_sends_neither(server: ScriptedServer) -> None:
    await make_llm(server, dialect="openai").generate(["q"], seed=3)
    body = server.log[0].body
    for key in ("top_k", "repetition_penalty", "repeat_penalty", "min_p"):
        assert key not in body
    assert body["seed"] == 3


async def test_none_extras_not_sent_and_user_extra_body_wins(server: ScriptedServer) -> None:
    llm = make_llm(server, dialect="vllm", extra_body={"top_k": 99, "min_tokens": 2})
    await llm.generate(["q"], top_k=10, repetition_penalty=None)
    body = server.log[0].body
    assert body["top_k"] == 99 and body["min_tokens"] == 2
    assert "repetition_penalty" not in body


# -- n fallbacks -----------------------------------------------------------------------------


async def test_fan_out_when_server_ignores_n() -> None:
    with ScriptedServer(echo, ignore_n=True) as srv:
        llm = make_llm(srv)
        gen = await llm.generate(["a", "b"], n=4, seed=100)
        assert [len(cs) for cs in gen.choices] == [4, 4]
        assert all(
            c.text.startswith(p) for p, cs in zip("ab", gen.choices, strict=True) for c in cs
        )
        # The batched request asks n=4 and gets 2 choices numbered 0 and 1: one per prompt
        # (n capped), or both for prompt 0 (prompt 1 omitted)? Ambiguous, so the backend asks
        # again one prompt per request (n=4 -> 1 choice each) and then fills the gap with n=1.
        assert srv.log[0].prompts == ["a", "b"] and srv.log[0].n == 4
        assert all(len(r.prompts) == 1 for r in srv.log[1:])
        assert sorted(r.n for r in srv.log[1:]) == [1] * 6 + [4, 4]
        assert gen.usage.requests == len(srv.log) == 9
        assert llm.batch_prompts is False
        # Extra requests get their own seeds, or they would return copies of the same sample.
        assert len({r.body["seed"] for r in srv.log}) == len(srv.log)
        # The cap is remembered: the next call asks for one choice per request right away.
        srv.log.clear()
        gen = await llm.generate(["a"], n=3)
        assert [len(cs) for cs in gen.choices] == [3]
        assert [r.n for r in srv.log] == [1, 1, 1]


async def test_fan_out_chat_ignoring_n() -> None:
    with ScriptedServer(echo, ignore_n=True) as srv:
        gen = await make_llm(srv, api="chat").generate(["hi"], n=3)
    assert len(gen.choices[0]) == 3
    assert len(srv.log) == 3 and gen.usage.requests == 3


async def test_max_n_splits_requests(server: ScriptedServer) -> None:
    llm = make_llm(server, max_n=2)
    gen = await llm.generate(["a", "b"], n=5, seed=10)
    assert [len(cs) for cs in gen.choices] == [5, 5]
    assert sorted(r.n for r in server.log) == [1, 2, 2]
    # llama.cpp seeds choice j with seed + j: split requests get disjoint seed ranges.
    assert sorted((r.body["seed"], r.n) for r in server.log) == [(10, 2), (12, 2), (14, 1)]
    assert all(r.prompts == ["a", "b"] for r in server.log)
    texts = sorted(c.text for c in gen.choices[0])
    assert texts == ["a|0", "a|0", "a|0", "a|1", "a|1"]


async def test_n_limit_400_is_learned_and_split() -> None:
    with ScriptedServer(echo, max_n=4) as srv:
        llm = make_llm(srv)
        gen = await llm.generate(["a", "b"], n=10)
        assert [len(cs) for cs in gen.choices] == [10, 10]
        assert srv.log[0].n == 10 and srv.log[0].status == 400
        assert sorted(r.n for r in srv.log[1:]) == [2, 4, 4]
        assert llm.max_n == 4
        assert gen.usage.requests == 4  # the rejected request got a response too
        srv.log.clear()
        await llm.generate(["a"], n=6)
        assert sorted(r.n for r in srv.log) == [2, 4]  # no second 400


async def test_n_limit_without_a_number_halves(server: ScriptedServer) -> None:
    server.fail_next(1, 400, json.dumps({"error": {"message": "'n' is too large"}}))
    llm = make_llm(server)
    gen = await llm.generate(["a"], n=8)
    assert len(gen.choices[0]) == 8
    assert [r.n for r in server.log] == [8, 4, 4]
    assert llm.max_n == 4


# -- errors and retries ----------------------------------------------------------------------


@pytest.mark.parametrize("status", [503, 500, 429])
async def test_retry_then_success(server: ScriptedServer, status: int) -> None:
    server.fail_next(2, status)
    llm = make_llm(server, max_retries=3)
    gen = await llm.generate(["a"], n=2)
    assert [c.text for c in gen.choices[0]] == ["a|0", "a|1"]
    assert len(server.log) == 3
    assert gen.usage.requests == 3 and llm.usage.requests == 3


async def test_gives_up_after_max_retries(server: ScriptedServer) -> None:
    server.fail_next(10, 503)
    llm = make_llm(server, max_retries=2)
    with pytest.raises(BackendError, match="cannot reach") as info:
        await llm.generate(["a"])
    assert server.base_url in str(info.value)
    assert len(server.log) == 3
    assert llm.usage.requests == 3  # counted even though the call failed


async def test_no_retry_on_400(server: ScriptedServer) -> None:
    body = json.dumps({"error": {"message": "prompt is too long for the context", "code": 400}})
    server.fail_next(1, 400, body)
    llm = make_llm(server, max_retries=4)
    with pytest.raises(BackendError) as info:
        await llm.generate(["a"], n=1)
    msg = str(info.value)
    assert "prompt is too long for the context" in msg
    assert "400" in msg and server.base_url in msg and "scripted" in msg
    assert len(server.log) == 1


async def test_no_retry_on_404_plain_text(server: ScriptedServer) -> None:
    server.fail_next(1, 404, "model not found here")
    with pytest.raises(BackendError, match="model not found here"):
        await make_llm(server).generate(["a"])
    assert len(server.log) == 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_dead_endpoint_fails_fast_with_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    llm = OpenAICompatibleLLM(url, "nothing-here", max_retries=1, timeout=5)
    t0 = time.monotonic()
    with pytest.raises(BackendError) as info:
        await llm.generate(["a"])
    assert time.monotonic() - t0 < 5
    assert url in str(info.value) and "cannot reach" in str(info.value)
    assert info.value.__cause__ is not None
    assert llm.usage.requests == 0  # nothing answered


@pytest.mark.parametrize("kind", ["no_choices", "not_json", "no_text"])
async def test_malformed_reply(server: ScriptedServer, kind: str) -> None:
    server.malformed_next(3, kind=kind)
    with pytest.raises(BackendError, match="malformed reply") as info:
        await make_llm(server, max_retries=2).generate(["a"])
    assert server.base_url in str(info.value) and "after 3 attempt(s)" in str(info.value)
    assert len(server.log) == 3


async def test_malformed_reply_once_is_retried(server: ScriptedServer) -> None:
    server.malformed_next(1, kind="not_json")  # a proxy's glitch: the retry gets the real reply
    gen = await make_llm(server, max_retries=1).generate(["a"])
    assert gen.choices[0][0].text == "a|0" and len(server.log) == 2


async def test_timeout() -> None:
    with ScriptedServer(echo, delay=1.5) as srv:
        llm = make_llm(srv, timeout=0.3, max_retries=1)
        t0 = time.monotonic()
        with pytest.raises(BackendError, match="(?i)timed? ?out"):
            await llm.generate(["a"])
        elapsed = time.monotonic() - t0
        assert elapsed < 1.4  # two 0.3 s attempts, not the server's 1.5 s
        assert len(srv.log) == 2  # the timed-out attempt was retried once


# -- usage and token counting ----------------------------------------------------------------


STEP_END = "<END OF STEP>"  # three whitespace tokens for the scripted server


def varied(prompt: str, params: dict[str, Any]) -> str:
    # choice 0: natural end (3 tokens + EOS); 1: hits the 3-token stop string after 2 tokens;
    # 2: cut by max_tokens=8
    texts = ["one two three", f"alpha beta{STEP_END} gamma", " ".join(["w"] * 20)]
    return texts[params["n_index"] % 3]


VARIED_TEXTS = ["one two three", "alpha beta", " ".join(["w"] * 8)]
VARIED_TOKENS = [3 + 1, 2 + 3, 8]  # as llama.cpp counts: + EOS token, + stop string tokens


async def test_per_choice_tokens_llamacpp_when_usage_counts_one_choice() -> None:
    with ScriptedServer(varied, usage_counts_one_choice=True) as srv:
        llm = make_llm(srv, dialect="llamacpp")
        gen = await llm.generate(["p q", "r s"], n=3, max_tokens=8, stop=[STEP_END])
        for cs in gen.choices:
            assert [c.text for c in cs] == VARIED_TEXTS
            assert [c.finish_reason for c in cs] == ["stop", "stop", "length"]
            assert [c.tokens for c in cs] == VARIED_TOKENS
        # The server reported the first choice only; per-choice counting recovers the rest.
        assert gen.usage.completion_tokens == 2 * sum(VARIED_TOKENS)
        assert srv.log[0].body["logprobs"] == 1
        assert gen.usage.prompt_tokens == 4  # "p q" reported, "r s" scaled by length
        # The stop string's length in tokens is asked once and cached.
        await llm.generate(["p q"], n=3, max_tokens=8, stop=[STEP_END])
        assert srv.tokenize_calls == 1


async def test_llamacpp_chat_counts_per_choice() -> None:
    with ScriptedServer(varied, usage_counts_one_choice=True) as srv:
        gen = await make_llm(srv, dialect="llamacpp", api="chat").generate(
            ["p"], n=3, max_tokens=8, stop=[STEP_END]
        )
    assert [c.tokens for c in gen.choices[0]] == VARIED_TOKENS
    assert srv.log[0].body["logprobs"] is True


async def test_llamacpp_token_count_lower_bound_and_fallback() -> None:
    # Several stop strings of different lengths: which one matched is unknown -> the smallest.
    with ScriptedServer(varied, usage_counts_one_choice=True) as srv:
        llm = make_llm(srv, dialect="llamacpp")
        gen = await llm.generate(["p"], n=3, max_tokens=8, stop=[STEP_END, "\n"])
    assert [c.tokens for c in gen.choices[0]] == [4, 2 + 1, 8]
    # No /tokenize (not llama.cpp after all): one token per stop-string hit.
    with ScriptedServer(varied, usage_counts_one_choice=True, tokenize_endpoint=False) as srv:
        llm = make_llm(srv, dialect="llamacpp")
        gen = await llm.generate(["p"], n=3, max_tokens=8, stop=[STEP_END])
    assert [c.tokens for c in gen.choices[0]] == [4, 2 + 1, 8]


async def test_vllm_usage_is_summed_exactly() -> None:
    with ScriptedServer(varied) as srv:
        llm = make_llm(srv, dialect="vllm")
        gen = await llm.generate(["p q r", "s"], n=3, max_tokens=8, stop=[STEP_END])
        await llm.generate(["t"], n=1, max_tokens=8)
    total = 2 * sum(VARIED_TOKENS)
    assert gen.usage == Usage(requests=1, prompt_tokens=4, completion_tokens=total)
    assert sum(c.tokens for cs in gen.choices for c in cs) == gen.usage.completion_tokens
    assert all(c.tokens > 0 for cs in gen.choices for c in cs)
    assert llm.usage == Usage(requests=2, prompt_tokens=5, completion_tokens=total + 4)
    assert srv.tokenize_calls == 0  # only the llamacpp dialect needs it


def test_usage_add_and_as_dict() -> None:
    u = Usage(1, 2, 3)
    u.add(Usage(10, 20, 30))
    assert u.as_dict() == {"requests": 11, "prompt_tokens": 22, "completion_tokens": 33}


def test_completion_is_frozen() -> None:
    c = Completion("x", "stop", 1)
    with pytest.raises(AttributeError):
        c.text = "y"  # type: ignore[misc]


# -- concurrency and event loops -------------------------------------------------------------


async def test_max_in_flight_respected() -> None:
    with ScriptedServer(echo, delay=0.2) as srv:
        llm = make_llm(srv, max_in_flight=3, batch_prompts=False)
        t0 = time.monotonic()
        gen = await llm.generate([f"p{i}" for i in range(9)], n=1)
        elapsed = time.monotonic() - t0
    assert len(gen.choices) == 9
    assert srv.peak_concurrency() == 3
    assert elapsed >= 0.55  # 9 requests, 3 at a time, 0.2 s each


async def test_requests_run_concurrently() -> None:
    with ScriptedServer(echo, delay=0.3) as srv:
        llm = make_llm(srv, batch_prompts=False)
        t0 = time.monotonic()
        await llm.generate([f"p{i}" for i in range(8)], n=1)
        elapsed = time.monotonic() - t0
    assert srv.peak_concurrency() == 8
    assert elapsed < 1.5


def test_same_instance_across_asyncio_run_calls(server: ScriptedServer) -> None:
    llm = make_llm(server, max_in_flight=2)
    first = asyncio.run(llm.generate(["a", "b"], n=2))
    second = asyncio.run(llm.generate(["c"], n=3))

    async def close_after() -> Generation:
        try:
            return await llm.generate(["d"], n=1)
        finally:
            await llm.aclose()

    third = asyncio.run(close_after())
    assert [c.text for c in first.choices[1]] == ["b|0", "b|1"]
    assert [c.text for c in second.choices[0]] == ["c|0", "c|1", "c|2"]
    assert third.choices[0][0].text == "d|0"
    assert llm.usage.requests == 3


# -- construction ----------------------------------------------------------------------------


def test_protocol_and_name(server: ScriptedServer) -> None:
    llm = make_llm(server)
    assert isinstance(llm, LLMBackend)
    assert "scripted" in llm.name and server.base_url in llm.name
    assert make_llm(server, name="target").name == "target"


def test_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RSTAR_TARGET_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("RSTAR_TARGET_MODEL", "m")
    monkeypatch.setenv("RSTAR_TARGET_API", "chat")
    monkeypatch.setenv("RSTAR_TARGET_DIALECT", "llamacpp")
    llm = OpenAICompatibleLLM.from_env()
    assert (llm.base_url, llm.model, llm.api, llm.dialect) == (
        "http://127.0.0.1:9/v1",
        "m",
        "chat",
        "llamacpp",
    )
    monkeypatch.setenv("RSTAR_TARGET_DIALECT", "bogus")
    with pytest.raises(ValueError, match="DIALECT"):
        OpenAICompatibleLLM.from_env()
    with pytest.raises(ValueError, match="OTHER_BASE_URL"):
        OpenAICompatibleLLM.from_env("OTHER")


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        OpenAICompatibleLLM("http://x/v1", "m", api="bogus")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        OpenAICompatibleLLM("http://x/v1", "m", max_in_flight=0)


def _overlap(a, b) -> bool:
    return a.started < b.finished and b.started < a.finished


@pytest.mark.parametrize("dialect,serial", [("llamacpp", True), ("vllm", False)])
async def test_requests_with_one_prompt_go_one_after_another_on_llamacpp(dialect, serial):
    """Same prompt: the second request waits for the first (it reuses the slot's prompt cache
    on llama.cpp); other prompts still go out at once."""
    with ScriptedServer(lambda p, params: " ok", delay=0.2) as srv:
        llm = OpenAICompatibleLLM(srv.base_url, "m", dialect=dialect, max_retries=0)
        await asyncio.gather(
            llm.generate(["same prompt"], n=2, max_tokens=4),
            llm.generate(["same prompt"], n=4, max_tokens=8),
            llm.generate(["another prompt"], n=1, max_tokens=4),
        )
        await llm.aclose()
        posts = srv.posts
    same = [r for r in posts if r.prompts == ["same prompt"]]
    [other] = [r for r in posts if r.prompts == ["another prompt"]]
    assert len(same) == 2
    assert _overlap(*same) is not serial
    assert any(_overlap(s, other) for s in same)


async def test_a_prompt_sharing_half_its_prefix_with_one_in_flight_waits_for_it():
    """llamacpp: a request whose prompt shares at least half its prefix with one in flight
    waits for it (so that it lands on the slot holding the prefix); prompts sharing less, or
    nothing, go out at once."""
    few_shot = "Question: two plus two? Answer: four. " * 40  # the shared few-shot part
    with ScriptedServer(lambda p, params: " ok", delay=0.2) as srv:
        llm = OpenAICompatibleLLM(srv.base_url, "m", dialect="llamacpp", max_retries=0)
        assert llm.prefix_wait == 0.5
        await asyncio.gather(
            llm.generate([few_shot + "Q: 3 + 4? Step 1"], n=1, max_tokens=4),
            llm.generate([few_shot + "Q: 3 + 4? Step 2"], n=2, max_tokens=4),
            llm.generate([few_shot[:300] + "x" * 1000], n=1, max_tokens=4),  # shares < half
            llm.generate(["An unrelated prompt"], n=1, max_tokens=4),
        )
        await llm.aclose()
        posts = srv.posts
    shared = [r for r in posts if r.prompts[0].startswith(few_shot)]
    others = [r for r in posts if not r.prompts[0].startswith(few_shot)]
    assert len(shared) == 2 and not _overlap(*shared)
    assert len(others) == 2
    assert all(any(_overlap(s, o) for s in shared) for o in others)


@pytest.mark.parametrize("dialect,requests", [("llamacpp", 2), ("vllm", 1)])
async def test_llamacpp_gets_one_prompt_per_request(dialect, requests):
    with ScriptedServer(lambda p, params: f" {p}") as srv:
        llm = OpenAICompatibleLLM(srv.base_url, "m", dialect=dialect, max_retries=0)
        gen = await llm.generate(["a", "b"], n=1, max_tokens=4)
        await llm.aclose()
        assert [[c.text for c in cs] for cs in gen.choices] == [[" a"], [" b"]]
        assert len(srv.posts) == requests


@pytest.mark.parametrize(
    "options", [{"dialect": "vllm"}, {"dialect": "llamacpp", "prefix_wait": 0}]
)
async def test_prefix_wait_off_sends_shared_prefixes_together(options):
    few_shot = "Question: two plus two? Answer: four. " * 40
    with ScriptedServer(lambda p, params: " ok", delay=0.2) as srv:
        llm = OpenAICompatibleLLM(srv.base_url, "m", max_retries=0, **options)
        await asyncio.gather(
            *(llm.generate([few_shot + f"Q{i}"], n=1, max_tokens=4) for i in range(2))
        )
        await llm.aclose()
        assert _overlap(*srv.posts)


def test_prefix_wait_must_be_a_fraction():
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="prefix_wait"):
            OpenAICompatibleLLM("http://x/v1", "m", prefix_wait=bad)


def test_common_prefix():
    from langgraph_rstar.backends.openai_compat import common_prefix

    assert common_prefix("", "abc") == 0
    assert common_prefix("abc", "abd") == 2
    assert common_prefix("abc", "abc") == 3
    assert common_prefix("abcdef", "abc") == 3
    assert common_prefix("xbc", "abc") == 0
    assert all(common_prefix("a" * n + "x", "a" * n + "y") == n for n in range(0, 70))


def test_the_http_transport_is_checked(monkeypatch):
    from langgraph_rstar.backends import openai_compat

    with pytest.raises(ValueError, match="http must be"):
        OpenAICompatibleLLM("http://x/v1", "m", http="requests")  # type: ignore[arg-type]
    monkeypatch.setattr(openai_compat, "_AIOHTTP", False)
    with pytest.raises(ValueError, match="langgraph-rstar\\[aiohttp\\]"):
        OpenAICompatibleLLM("http://x/v1", "m", http="aiohttp")


async def test_the_aiohttp_transport_serves_the_same_samples():
    """http="aiohttp" (the SDK's aiohttp transport): same requests, same samples as httpx."""
    with ScriptedServer(lambda p, params: f" {p}|{params['n_index']}") as srv:
        got = {}
        for http in ("httpx", "aiohttp"):
            llm = OpenAICompatibleLLM(srv.base_url, "m", http=http, max_retries=0)
            gen = await llm.generate(["a", "b"], n=2, max_tokens=4)
            await llm.aclose()
            got[http] = [[c.text for c in cs] for cs in gen.choices]
        assert got["aiohttp"] == got["httpx"] == [[" a|0", " a|1"], [" b|0", " b|1"]]
        assert len(srv.posts) == 2
