"""Fault suite, model I/O: every way an OpenAI-compatible server can misbehave, on a real socket.

Each case ends within its bound with a clear :class:`BackendError` or a whole, correct result
(see tests/faults.py for the categories the suite counts).
"""

from __future__ import annotations

import json
import logging
import time
import tracemalloc
from collections.abc import Iterator
from email.utils import formatdate
from typing import Any

import pytest

from langgraph_rstar.backends import BackendError
from tests import faults
from tests.faults import DEADLINE, Timer, bounded, clear, fast_llm, free_port, valid
from tests.scripted_server import Fault, ScriptedServer

KEY = "sk-test-0123456789abcdefSECRET"


def echo(prompt: str, params: dict[str, Any]) -> str:
    return f"{prompt}|{params['n_index']}"


EXPECTED = [["a|0", "a|1"], ["b|0", "b|1"]]


@pytest.fixture(autouse=True, params=["httpx", "aiohttp"])
def transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every case under each of the SDK's HTTP transports (``http=`` of the backend)."""
    monkeypatch.setattr(faults, "HTTP", request.param)
    return request.param


@pytest.fixture
def srv() -> Iterator[ScriptedServer]:
    with ScriptedServer(echo) as server:
        yield server


async def two_by_two(llm) -> list[list[str]]:
    gen = await bounded(llm.generate(["a", "b"], n=2, max_tokens=16), 8)
    return [[c.text for c in cs] for cs in gen.choices]


def body(payload: Any) -> Fault:
    return Fault(
        "body", body=payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    )


# -- replies that never finish: the whole-request deadline ------------------------------------

NEVER_FINISHING = {
    "trickle-a-byte-every-50ms": Fault("trickle", seconds=0.05),
    "chunked-body-that-never-ends": Fault("chunked_forever", seconds=0.05),
    "silent-server": Fault("stall", seconds=15),
    "headers-then-silence": Fault("trickle", seconds=15),
}


@clear
@pytest.mark.parametrize("fault", NEVER_FINISHING.values(), ids=NEVER_FINISHING.keys())
async def test_a_reply_that_never_finishes_is_cut_at_the_deadline(srv, fault):
    srv.fault_next(fault, 10)
    with Timer() as t, pytest.raises(BackendError) as info:
        await bounded(fast_llm(srv.base_url, max_retries=1).generate(["a"]), 6)
    message = str(info.value)
    assert f"timed out: no complete reply within {DEADLINE:g} s" in message
    assert "after 2 attempt(s)" in message and srv.base_url in message
    assert len(srv.log) == 2
    assert t.seconds < 2 * DEADLINE + 1.5  # two deadlines, not the server's pace


# -- one bad reply, then a good one: retried, the result is whole ------------------------------

TRANSIENT = {
    "reset": Fault("reset"),
    "close-without-reply": Fault("close"),
    "partial-body": Fault("partial"),
    "stall": Fault("stall", seconds=15),
    "trickle": Fault("trickle", seconds=0.05),
    "chunked-forever": Fault("chunked_forever", seconds=0.05),
    "500": Fault("status", 500),
    "502": Fault("status", 502),
    "503": Fault("status", 503),
    "504": Fault("status", 504),
    "429": Fault("status", 429),
    "408": Fault("status", 408),
    "html-instead-of-json": body(b"<html>502 Bad Gateway</html>"),
    "empty-body": body(b""),
    "not-http-at-all": Fault("raw", body=b"SSH-2.0-OpenSSH_9.6\r\n"),
}


@valid
@pytest.mark.parametrize("fault", TRANSIENT.values(), ids=TRANSIENT.keys())
async def test_one_bad_reply_is_retried_and_the_result_is_whole(srv, fault):
    srv.fault_next(fault)
    llm = fast_llm(srv.base_url, max_retries=2)
    assert await two_by_two(llm) == EXPECTED
    assert len(srv.log) == 2
    assert llm.usage.requests >= 1


# -- a server that keeps failing: a clear error after the retries ------------------------------

PERSISTENT = {
    "reset": (Fault("reset"), "cannot reach"),
    "close-without-reply": (Fault("close"), "cannot reach"),
    "partial-body": (Fault("partial"), "cannot reach"),
    "500": (Fault("status", 500), "HTTP 500: scripted failure 500"),
    "502": (Fault("status", 502), "HTTP 502"),
    "503": (Fault("status", 503), "HTTP 503"),
    "504": (Fault("status", 504), "HTTP 504"),
    "429": (Fault("status", 429), "HTTP 429"),
    "408": (Fault("status", 408), "HTTP 408"),
}


@clear
@pytest.mark.parametrize(("fault", "says"), PERSISTENT.values(), ids=PERSISTENT.keys())
async def test_a_server_that_keeps_failing_is_reported(srv, fault, says):
    srv.fault_next(fault, 10)
    with pytest.raises(BackendError) as info:
        await bounded(fast_llm(srv.base_url, max_retries=2).generate(["a"]), 6)
    message = str(info.value)
    assert says in message and srv.base_url in message and "after 3 attempt(s)" in message
    assert len(srv.log) == 3


@clear
async def test_connection_refused_is_reported_at_once():
    url = f"http://127.0.0.1:{free_port()}/v1"
    with Timer() as t, pytest.raises(BackendError, match="cannot reach") as info:
        await bounded(fast_llm(url, max_retries=1).generate(["a"]), 5)
    assert url in str(info.value) and t.seconds < 2


# -- malformed replies: retried, then a clear error naming what is wrong -----------------------

MALFORMED = {
    "not-json": (b"<html>hello</html>", "not JSON"),
    "empty": (b"", "not JSON"),
    "truncated-json": (b'{"choices": [{"index": 0, "te', "not JSON"),
    "json-array": (b"[1, 2]", "no 'choices' list"),
    "json-null": (b"null", "no 'choices' list"),
    "no-choices": ({"object": "text_completion"}, "no 'choices' list"),
    "empty-choices": ({"choices": []}, "no 'choices' list"),
    "choices-not-a-list": ({"choices": {"0": "x"}}, "no 'choices' list"),
    "choice-not-an-object": ({"choices": ["text"]}, "choice 0 is not an object"),
    "choice-without-text": ({"choices": [{"index": 0}]}, "choice 0 has no text"),
    "text-is-a-number": ({"choices": [{"index": 0, "text": 42}]}, "choice 0 has no text"),
    "event-stream": (b'data: {"choices": []}\n\ndata: [DONE]\n\n', "not JSON"),
}


@clear
@pytest.mark.parametrize(("payload", "why"), MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_malformed_reply_is_a_clear_error(srv, payload, why):
    srv.fault_next(body(payload), 10)
    with pytest.raises(BackendError, match="malformed reply") as info:
        await bounded(fast_llm(srv.base_url).generate(["a"]), 5)
    assert why in str(info.value) and "after 2 attempt(s)" in str(info.value)
    assert len(srv.log) == 2


@clear
@pytest.mark.parametrize(
    "payload",
    [{"choices": [{"index": 0, "message": None}]}, {"choices": [{"message": {"content": None}}]}],
    ids=["chat-without-message", "chat-content-null"],
)
async def test_a_malformed_chat_reply_is_a_clear_error(srv, payload):
    srv.fault_next(body(payload), 10)
    with pytest.raises(BackendError, match="choice 0 has no text"):
        await bounded(fast_llm(srv.base_url, api="chat").generate(["a"]), 5)


@valid
async def test_garbage_usage_fields_do_not_spoil_the_samples(srv):
    payload = {
        "choices": [{"index": 0, "text": "a|0"}],
        "usage": {"prompt_tokens": "many", "completion_tokens": -4},
    }
    srv.fault_next(body(payload))
    gen = await bounded(fast_llm(srv.base_url).generate(["a"]), 5)
    assert gen.choices[0][0].text == "a|0"
    assert gen.usage.prompt_tokens == 0 and gen.usage.completion_tokens == 0


# -- samples go to their own prompt ------------------------------------------------------------


def choices(*entries: tuple[int | None, str]) -> Fault:
    out = []
    for index, text in entries:
        choice: dict[str, Any] = {"text": text, "finish_reason": "stop"}
        if index is not None:
            choice["index"] = index
        out.append(choice)
    return body({"choices": out})


@valid
@pytest.mark.parametrize(
    "fault",
    [
        # Prompt 1's choices omitted and the count still divides evenly: indices 0, 1 could be
        # "both for prompt 0" or "one each with n capped at 1". Re-asked one prompt per request.
        choices((0, "a|0"), (1, "a|1")),
        choices((None, "b|0"), (None, "a|0"), (None, "b|1"), (None, "a|1")),  # no index
        body({"choices": [{"index": "0", "text": "a|0"}, {"index": "1", "text": "b|0"}]}),
        choices((0, "a|0"), (1, "a|1"), (None, "b|0"), (3, "b|1")),  # one index missing
    ],
    ids=["one-prompt-omitted", "choices-without-index", "index-not-an-integer", "one-without"],
)
async def test_an_ambiguous_batched_reply_is_re_asked_per_prompt(srv, fault):
    srv.fault_next(fault)
    llm = fast_llm(srv.base_url)
    assert await two_by_two(llm) == EXPECTED
    assert [len(r.prompts) for r in srv.log] == [2, 1, 1]
    assert llm.batch_prompts is False  # learned: no more ambiguous batches


@valid
async def test_a_gap_in_the_indices_is_attributed_by_index(srv):
    # Index 3 (prompt 1's second sample) is missing: indices say who is who, order does not.
    srv.fault_next(choices((2, "b|0"), (0, "a|0"), (1, "a|1")))
    llm = fast_llm(srv.base_url)
    texts = await two_by_two(llm)
    assert texts[0] == ["a|0", "a|1"] and all(t.startswith("b|") for t in texts[1])
    assert len(texts[1]) == 2 and len(srv.log) == 2  # one request fills prompt 1's gap


@valid
async def test_extra_choices_are_not_used(srv):
    srv.fault_next(choices((0, "a|0"), (1, "a|1"), (2, "a|2")))
    gen = await bounded(fast_llm(srv.base_url).generate(["a"], n=2), 5)
    assert [c.text for c in gen.choices[0]] == ["a|0", "a|1"]


@clear
@pytest.mark.parametrize(
    ("fault", "why"),
    [
        (choices((0, "a|0"), (0, "a|1"), (2, "b|0"), (3, "b|1")), "duplicate choice index"),
        (choices((0, "a|0"), (1, "a|1"), (2, "b|0"), (9, "b|1")), "choice index 9 out of range"),
        (choices((0, "a|0"), (1, "a|1"), (2, "b|0"), (-1, "b|1")), "out of range"),
    ],
    ids=["duplicate-index", "index-too-large", "negative-index"],
)
async def test_impossible_indices_are_a_clear_error(srv, fault, why):
    srv.fault_next(fault, 10)
    with pytest.raises(BackendError, match=why):
        await two_by_two(fast_llm(srv.base_url))


# -- Retry-After: honoured, up to a cap --------------------------------------------------------


def limited(status: int = 429, **headers: str) -> Fault:
    return Fault("status", status, headers=tuple(headers.items()))


@valid
@pytest.mark.parametrize(
    ("fault", "cap", "low", "high"),
    [
        (limited(**{"Retry-After": "0.6"}), 60.0, 0.55, 2.0),
        (limited(503, **{"Retry-After": "3600"}), 0.3, 0.25, 1.5),
        (limited(**{"Retry-After": formatdate(time.time() + 3600, usegmt=True)}), 0.5, 0.45, 1.5),
        (limited(**{"retry-after-ms": "400"}), 60.0, 0.35, 1.5),
        (limited(**{"Retry-After": "soon"}), 60.0, 0.0, 1.0),
        (limited(**{"Retry-After": "-5"}), 60.0, 0.0, 1.0),
    ],
    ids=["seconds", "hour-capped", "http-date-capped", "retry-after-ms", "garbage", "negative"],
)
async def test_retry_after_is_honoured_up_to_the_cap(srv, fault, cap, low, high):
    srv.fault_next(fault)
    llm = fast_llm(srv.base_url, max_retry_after=cap, timeout=5)
    with Timer() as t:
        assert await two_by_two(llm) == EXPECTED
    assert low <= t.seconds < high
    assert len(srv.log) == 2


# -- rejections: reported at once, never retried -----------------------------------------------


@clear
@pytest.mark.parametrize("status", [400, 403, 404, 413, 422])
async def test_a_rejection_is_reported_without_retrying(srv, status):
    message = f"request refused for reason {status}"
    srv.fault_next(
        Fault("status", status, body=json.dumps({"error": {"message": message}}).encode())
    )
    with pytest.raises(BackendError, match=f"rejected the request with HTTP {status}") as info:
        await bounded(fast_llm(srv.base_url, max_retries=4).generate(["a"]), 5)
    assert message in str(info.value) and len(srv.log) == 1


@pytest.mark.fault("clear", risk="security")
async def test_a_key_echoed_in_an_error_is_masked(srv, caplog):
    caplog.set_level(logging.DEBUG)
    echoed = json.dumps({"error": {"message": f"invalid api key {KEY} (Bearer {KEY})"}}).encode()
    srv.fault_next(Fault("status", 401, body=echoed))
    srv.fault_next(Fault("status", 500, body=echoed), 3)
    llm = fast_llm(srv.base_url, api_key=KEY)
    for _ in range(2):  # the 401, then the retried 500s
        with pytest.raises(BackendError, match="invalid api key") as info:
            await bounded(llm.generate(["a"]), 5)
        assert KEY not in str(info.value) and "***" in str(info.value)
        assert info.value.__cause__ is None or KEY not in str(info.value.__cause__)
    assert srv.log and all(r.body for r in srv.log)
    assert KEY not in caplog.text and "attempt 1 failed" in caplog.text


def refused_under_aiohttp(url: str, transport: str) -> bool:
    """aiohttp will not send URL credentials beside the key's header: a clear error at once."""
    if transport != "aiohttp":
        return False
    with pytest.raises(ValueError, match="credentials in the base URL") as info:
        fast_llm(url)
    assert "pa55-word-xyz" not in str(info.value)
    return True


@pytest.mark.fault("clear", risk="security")
async def test_url_credentials_never_show(srv, transport):
    url = srv.base_url.replace("http://", "http://bob:pa55-word-xyz@")
    if refused_under_aiohttp(url, transport):
        return
    srv.fault_next(Fault("status", 500), 5)
    llm = fast_llm(url)
    assert "pa55-word-xyz" not in llm.name + repr(llm)
    with pytest.raises(BackendError) as info:
        await bounded(llm.generate(["a"]), 5)
    assert "pa55-word-xyz" not in str(info.value) and "***@127.0.0.1" in str(info.value)


@pytest.mark.fault("valid", risk="security")
async def test_traces_carry_no_url_credentials(srv, transport):
    from langgraph_rstar.backends import llm_run_context
    from tests.test_tracing import RunRecorder

    recorder = RunRecorder()
    url = srv.base_url.replace("http://", "http://bob:pa55-word-xyz@")
    if refused_under_aiohttp(url, transport):
        return
    with llm_run_context({"callbacks": [recorder]}):
        await bounded(fast_llm(url, api_key=KEY).generate(["a"]), 5)
    [run] = recorder.llm.values()
    assert run["params"]["base_url"] == srv.base_url.replace("http://", "http://***@")
    assert "pa55-word-xyz" not in repr(run) and KEY not in repr(run)


@pytest.mark.fault("clear", risk="security")
@pytest.mark.parametrize("status", [301, 307, 308])
async def test_a_redirect_is_not_followed_so_the_key_stays_home(srv, status):
    with ScriptedServer(echo) as elsewhere:
        location = ("Location", elsewhere.base_url + "/completions")
        srv.fault_next(Fault("status", status, body=b"", headers=(location,)))
        with pytest.raises(BackendError, match=f"redirected the request \\(HTTP {status}\\)"):
            await bounded(fast_llm(srv.base_url, api_key=KEY).generate(["a"]), 5)
        assert elsewhere.posts == []  # neither the request nor the key went there


# -- size: a runaway reply is refused while it is read -----------------------------------------


@clear
async def test_a_huge_reply_is_refused_without_reading_it_all(srv):
    text = "x" * (8 * 1024 * 1024)
    huge = json.dumps({"choices": [{"index": 0, "text": text}]}).encode()
    srv.fault_next(Fault("body", body=huge), 5)
    llm = fast_llm(srv.base_url, timeout=10)
    tracemalloc.start()
    try:
        with pytest.raises(BackendError, match="larger than") as info:
            await bounded(llm.generate(["a"], max_tokens=16), 10)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "max_response_bytes" in str(info.value)
    assert peak < 2 * 1024 * 1024  # not the 8 MB body
    assert len(srv.log) == 1  # not retried: the same request would do it again


@valid
async def test_a_larger_cap_lets_a_long_reply_through(srv):
    text = "y" * 300_000
    srv.fault_next(body({"choices": [{"index": 0, "text": text}]}))
    gen = await bounded(fast_llm(srv.base_url, max_response_bytes=1_000_000).generate(["a"]), 5)
    assert gen.choices[0][0].text == text
