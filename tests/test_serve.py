"""``rstar serve``: the real ``openai`` client against the real server on 127.0.0.1.

The server (uvicorn in a thread, or the ``rstar serve`` command in a subprocess) searches with
the scripted OpenAI-compatible server as its target model.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from langgraph_rstar import OpenAICompatibleLLM, RStarConfig, asolve
from langgraph_rstar.serve import create_app, running
from tests.conftest import QUESTIONS
from tests.test_surfaces import free_port

(Q_TOM, (TOM, _)), (Q_PENS, (PENS, _)), (Q_PAGES, (PAGES, _)) = QUESTIONS.items()
KEY = "sk-rstar-test"
SMALL = {"rstar": {"num_rollouts": 2}}


def ask(question: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": question},
    ]


def backend(server) -> OpenAICompatibleLLM:
    return OpenAICompatibleLLM(server.base_url, "scripted", max_retries=0, timeout=10)


@pytest.fixture
def served(scripted) -> Iterator[tuple[openai.OpenAI, object]]:
    app = create_app(backend(scripted), api_key=KEY)
    with running(app) as url:
        yield openai.OpenAI(base_url=url, api_key=KEY, max_retries=0), app


def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


# ----------------------------------------------------------------------------- plain


def test_models_are_the_presets(served):
    client, _ = served
    ids = [m.id for m in client.models.list()]
    assert ids == ["rstar-fast", "rstar-paper", "rstar-reference_code", "rstar"]
    assert client.models.retrieve("rstar-paper").id == "rstar-paper"


def test_chat_completion_is_the_python_apis_result(served, scripted):
    client, _ = served
    reply = client.chat.completions.create(
        model="rstar-fast", messages=ask(Q_TOM), extra_body=SMALL
    )
    served_posts = len(scripted.posts)
    expected = asyncio.run(
        asolve(Q_TOM, target=backend(scripted), config=RStarConfig.preset("fast", num_rollouts=2))
    )
    text = reply.choices[0].message.content
    assert text.endswith(f"\n\nFinal answer: {TOM}") and text.startswith("Step 1: ")
    assert reply.choices[0].finish_reason == "stop" and reply.model == "rstar-fast"
    extra = reply.model_extra["rstar"]
    assert extra["answer"] == expected.answer == TOM
    assert extra["trajectory"] == expected.trajectory
    assert extra["confidence"] == pytest.approx(expected.confidence)
    assert extra["usage"] == expected.usage  # the same search, request for request
    assert extra["settings"]["num_rollouts"] == 2
    spent = expected.usage["target"]["completion_tokens"]
    spent += expected.usage["discriminator"]["completion_tokens"]
    assert reply.usage.completion_tokens == spent
    assert served_posts == len(scripted.posts) - served_posts  # asolve sent as many requests


def test_chat_streaming_sends_progress_then_the_same_text(served):
    client, _ = served
    plain = client.chat.completions.create(model="rstar", messages=ask(Q_PENS), extra_body=SMALL)
    chunks = list(
        client.chat.completions.create(
            model="rstar",
            messages=ask(Q_PENS),
            extra_body=SMALL,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    progress = [
        c.model_extra["rstar"]["type"]
        for c in chunks
        if "type" in (c.model_extra or {}).get("rstar", {})
    ]
    assert progress[0] == "rstar.rollout_started"
    assert progress.count("rstar.rollout_finished") == 2 and progress[-1] == "rstar.final_answer"
    # progress comes before any content
    first_text = next(i for i, c in enumerate(chunks) if c.choices and c.choices[0].delta.content)
    assert all(not c.model_extra.get("rstar", {}).get("type") for c in chunks[first_text:])
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finish) == 1 and finish[0].model_extra["rstar"]["answer"] == PENS
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == plain.usage.total_tokens


def test_completions_plain_and_streaming(served):
    client, _ = served
    plain = client.completions.create(model="rstar-fast", prompt=Q_PAGES, extra_body=SMALL)
    assert plain.choices[0].text.endswith(f"Final answer: {PAGES}")
    stream = client.completions.create(
        model="rstar-fast", prompt=Q_PAGES, extra_body=SMALL, stream=True
    )
    chunks = list(stream)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == plain.choices[0].text
    assert any((c.model_extra or {}).get("rstar", {}).get("type") for c in chunks)


def test_knobs_reach_the_search(served, scripted):
    client, _ = served
    knobs = {"rstar": {"num_rollouts": 1, "use_discriminator": False, "max_tokens_cot": 17}}
    reply = client.chat.completions.create(
        model="rstar-paper", messages=ask(Q_TOM), extra_body=knobs
    )
    extra = reply.model_extra["rstar"]
    assert extra["settings"] == {
        "preset_name": "paper",
        "task": "gsm8k",
        "num_rollouts": 1,
        "scoring": RStarConfig.preset("paper").scoring,
    }
    assert extra["usage"]["target"]["requests"] == len(scripted.posts)  # no discriminator call
    sizes = {p.max_tokens for p in scripted.posts}
    assert 17 in sizes and 1024 not in sizes  # paper's 1024 for whole solutions became 17


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("kwargs", "error", "code"),
    [
        ({"model": "gpt-4"}, openai.NotFoundError, "model_not_found"),
        ({"extra_body": {"rstar": {"num_rolouts": 3}}}, openai.BadRequestError, "unknown_setting"),
        ({"extra_body": {"rstar": {"thread_id": "x"}}}, openai.BadRequestError, "unknown_setting"),
        ({"extra_body": {"rstar": {"num_rollouts": 0}}}, openai.BadRequestError, "invalid_setting"),
        ({"extra_body": {"rstar": {"task": "chess"}}}, openai.BadRequestError, "invalid_setting"),
        ({"n": 2}, openai.BadRequestError, None),
        ({"messages": [{"role": "system", "content": "hi"}]}, openai.BadRequestError, None),
    ],
)
def test_bad_requests_get_openai_shaped_errors(served, scripted, kwargs, error, code):
    client, _ = served
    args = {"model": "rstar-fast", "messages": ask(Q_TOM), **kwargs}
    with pytest.raises(error) as info:
        client.chat.completions.create(**args)
    body = info.value.body
    assert set(body) == {"message", "type", "param", "code"} and body["code"] == code
    assert body["message"]
    if kwargs.get("extra_body", {}).get("rstar", {}).get("num_rolouts"):
        assert "did you mean 'num_rollouts'" in body["message"]
    assert scripted.posts == []  # nothing was searched


def test_api_key(served):
    client, _ = served
    stranger = client.with_options(api_key="wrong")
    with pytest.raises(openai.AuthenticationError) as info:
        stranger.models.list()
    assert info.value.body["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        stranger.chat.completions.create(model="rstar-fast", messages=ask(Q_TOM))
    assert httpx.get(str(client.base_url).removesuffix("v1/") + "health").status_code == 200


def test_raw_http_errors_are_json(served):
    client, _ = served
    base = str(client.base_url)
    headers = {"Authorization": f"Bearer {KEY}"}
    bad = httpx.post(base + "chat/completions", content=b"{not json", headers=headers)
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"
    missing = httpx.post(base + "chat/completions", json={"model": "rstar"}, headers=headers)
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "messages"
    nowhere = httpx.get(base + "embeddings", headers=headers)
    assert nowhere.status_code == 404 and nowhere.json()["error"]["code"] == "not_found"


def test_a_dead_model_endpoint_is_a_502_and_a_stream_error(tiny_config):
    dead = OpenAICompatibleLLM(f"http://127.0.0.1:{free_port()}/v1", "m", max_retries=0)
    with running(create_app(dead)) as url:
        client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
        with pytest.raises(openai.APIStatusError) as info:
            client.chat.completions.create(model="rstar-fast", messages=ask(Q_TOM))
        assert info.value.status_code == 502 and info.value.body["code"] == "backend_error"
        assert "cannot reach" in info.value.body["message"]
        stream = client.chat.completions.create(
            model="rstar-fast", messages=ask(Q_TOM), stream=True
        )
        with pytest.raises(openai.APIError, match="cannot reach"):
            for _ in stream:  # progress first, then the failure inside the stream
                pass


# ----------------------------------------------------------------------------- limits


def test_concurrency_limit_and_queue(slow_scripted):
    app = create_app(backend(slow_scripted), max_concurrent=1, max_waiting=1)
    with running(app) as url:
        client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
        replies: list = []

        def solve(question: str) -> None:
            replies.append(
                client.chat.completions.create(
                    model="rstar-fast", messages=ask(question), extra_body=SMALL
                )
            )

        first = threading.Thread(target=solve, args=(Q_TOM,))
        first.start()
        wait_until(lambda: app.state.stats.active == 1)
        queued = threading.Thread(target=solve, args=(Q_PENS,))
        queued.start()
        wait_until(lambda: app.state.stats.waiting == 1)
        with pytest.raises(openai.RateLimitError) as info:
            client.chat.completions.create(model="rstar-fast", messages=ask(Q_PAGES))
        assert info.value.body["code"] == "too_many_searches"
        first.join()
        queued.join()
        answers = sorted(r.model_extra["rstar"]["answer"] for r in replies)
        assert answers == sorted([TOM, PENS])
        assert slow_scripted.peak_concurrency() >= 1 and app.state.stats.finished == 2


def test_deadline_cancels_the_search(slow_scripted):
    app = create_app(backend(slow_scripted), deadline=0.7)
    with running(app) as url:
        client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
        started = time.monotonic()
        with pytest.raises(openai.InternalServerError) as info:
            client.chat.completions.create(model="rstar-paper", messages=ask(Q_TOM))
        assert info.value.status_code == 504 and info.value.body["code"] == "deadline_exceeded"
        assert time.monotonic() - started < 3
        assert app.state.stats.timed_out == 1 and app.state.stats.active == 0
        assert_no_more_requests(slow_scripted)


def assert_no_more_requests(server) -> None:
    time.sleep(0.5)  # requests already on the wire may still be logged
    seen = len(server.posts)
    time.sleep(1.0)
    assert len(server.posts) == seen, "the search went on after it was cancelled"


def test_a_client_that_leaves_a_stream_cancels_its_search(slow_scripted):
    app = create_app(backend(slow_scripted), api_key=KEY)
    with running(app) as url:
        body = {"model": "rstar-paper", "messages": ask(Q_TOM), "stream": True}
        headers = {"Authorization": f"Bearer {KEY}"}
        with httpx.stream("POST", url + "/chat/completions", json=body, headers=headers) as resp:
            assert resp.status_code == 200
            for line in resp.iter_lines():
                if "rstar.node_expanded" in line:
                    break  # leave after the first expansion
        wait_until(lambda: app.state.stats.cancelled == 1)
        assert app.state.stats.active == 0 and app.state.stats.finished == 0
        assert_no_more_requests(slow_scripted)


def test_a_client_that_leaves_a_plain_request_cancels_its_search(slow_scripted):
    app = create_app(backend(slow_scripted))
    with running(app) as url:
        body = {"model": "rstar-paper", "messages": ask(Q_TOM)}
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(url + "/chat/completions", json=body, timeout=0.6)
        wait_until(lambda: app.state.stats.cancelled == 1)
        assert app.state.stats.active == 0
        assert_no_more_requests(slow_scripted)


# ----------------------------------------------------------------------------- the command


def test_rstar_serve_command(scripted):
    port = free_port()
    env = {**os.environ, "RSTAR_SERVE_API_KEY": KEY}
    cmd = [sys.executable, "-m", "langgraph_rstar.cli", "serve", "--base-url", scripted.base_url]
    cmd += ["--model", "scripted", "--port", str(port), "--rollouts", "2", "--preset", "paper"]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}/v1"
        wait_until(lambda: _up(url), timeout=60)
        client = openai.OpenAI(base_url=url, api_key=KEY, max_retries=0)
        reply = client.chat.completions.create(model="rstar", messages=ask(Q_PAGES))
        extra = reply.model_extra["rstar"]
        assert extra["answer"] == PAGES
        assert (
            extra["settings"]["preset_name"] == "paper" and extra["settings"]["num_rollouts"] == 2
        )
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "Traceback" not in err, err  # Ctrl-C: a clean stop
    assert "models rstar-fast, rstar-paper, rstar-reference_code, rstar" in err
    assert "API key required" in err


def _up(url: str) -> bool:
    try:
        return httpx.get(url.removesuffix("/v1") + "/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_bad_server_settings_fail_at_start_up(llm):
    with pytest.raises(ValueError, match="unknown preset"):
        create_app(llm, default_preset="turbo")
    with pytest.raises(
        ValueError, match="num_rollouts: Input should be greater than or equal to 1"
    ):
        create_app(llm, overrides={"num_rollouts": -1})
    with pytest.raises(TypeError, match="target must be"):
        create_app(object())


@pytest.mark.timeout(60)
def test_without_the_serve_extra_the_command_says_what_to_install(monkeypatch, capsys):
    import langgraph_rstar
    from langgraph_rstar import cli

    # as if sse-starlette were not installed: serve.py is imported afresh and fails
    monkeypatch.delattr(langgraph_rstar, "serve", raising=False)
    monkeypatch.delitem(sys.modules, "langgraph_rstar.serve", raising=False)
    monkeypatch.setitem(sys.modules, "sse_starlette", None)
    assert cli.main(["serve", "--base-url", "http://127.0.0.1:9/v1"]) == 2
    err = capsys.readouterr().err
    assert "rstar serve needs sse_starlette: pip install 'langgraph-rstar[serve]'" in err
