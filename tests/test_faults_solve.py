"""Fault suite, whole searches: dead discriminators, budgets, busy threads, interrupted runs,
hostile text on the terminal, and where keys go.

A search ends with a clear error or an answer, and a degraded answer says so in the result and
the events.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from langgraph_rstar import OpenAICompatibleLLM, RStarError, ThreadBusyError, asolve
from langgraph_rstar.cli import main
from tests.conftest import QUESTIONS, rstar_responder
from tests.faults import Timer, bounded, clear, fast_llm, flagged, free_port, valid
from tests.scripted_server import Fault, ScriptedServer

Q_TOM = next(iter(QUESTIONS))
KEY = "sk-target-key-0123456789abcdef"


def solve_args(url: str, *extra: str) -> list[str]:
    """``rstar solve`` of the Tom question with 2 rollouts against ``url``."""
    return ["solve", Q_TOM, "--base-url", url, "--rollouts", "2", *extra]


def events_of(kind: str, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == kind]


# -- a dead discriminator: the generator's vote, flagged ---------------------------------------

DEAD_DISCRIMINATORS = {
    "refused": None,
    "http-500": Fault("status", 500),
    "malformed": Fault("body", body=b"<html>oops</html>"),
    "never-finishes": Fault("trickle", seconds=0.05),
    "reset": Fault("reset"),
}


@flagged
@pytest.mark.parametrize("fault", DEAD_DISCRIMINATORS.values(), ids=DEAD_DISCRIMINATORS.keys())
async def test_a_dead_discriminator_falls_back_to_the_generators_vote(
    scripted, llm, tiny_config, fault
):
    events: list[dict[str, Any]] = []
    with ScriptedServer(rstar_responder) as judge_server:
        url = judge_server.base_url if fault else f"http://127.0.0.1:{free_port()}/v1"
        if fault:
            judge_server.fault_next(fault, 50)
        judge = fast_llm(url)
        with Timer() as t:
            result = await bounded(
                asolve(
                    Q_TOM,
                    target=llm,
                    discriminator=judge,
                    config=tiny_config,
                    on_event=events.append,
                ),
                20,
            )
    assert result.answer == "5" and result.selection == "generator_maj"
    assert result.answer == result.generator_answer
    assert result.discriminator_error.startswith("BackendError: ")
    assert url in result.discriminator_error  # says which endpoint failed
    assert result.degraded and "generator's majority vote" in result.warnings[0]
    assert result.verification["reason"] == "discriminator failed"
    [failed] = events_of("rstar.discriminator_failed", events)
    assert failed["fallback"] == "generator_maj" and failed["error"] == result.discriminator_error
    [final] = events_of("rstar.final_answer", events)
    assert final["discriminator_error"] == result.discriminator_error
    assert t.seconds < 10
    if fault is not None and fault.kind == "status":  # what the failed calls spent is counted
        assert result.usage["discriminator"]["requests"] == 2


@clear
async def test_a_dead_target_is_a_clear_error_with_the_partial_tree(tiny_config):
    with ScriptedServer(rstar_responder) as server:
        server.fault_next(Fault("status", 503), 100)
        with pytest.raises(RStarError, match="HTTP 503") as info:
            await bounded(asolve(Q_TOM, target=fast_llm(server.base_url), config=tiny_config), 10)
    assert info.value.partial is not None and info.value.partial.question == Q_TOM


# -- budgets: stop cleanly, answer from what there is, say so ----------------------------------


@flagged
@pytest.mark.parametrize(
    ("budget", "limit"),
    [({"max_requests": 3}, "max_requests"), ({"max_generated_tokens": 40}, "max_generated_tokens")],
    ids=["requests", "tokens"],
)
async def test_a_spent_budget_stops_the_search_and_flags_the_answer(
    scripted, llm, tiny_config, budget, limit
):
    full = await asolve(Q_TOM, target=llm, config=tiny_config.replace(num_rollouts=8))
    events: list[dict[str, Any]] = []
    scripted.log.clear()
    result = await bounded(
        asolve(
            Q_TOM,
            target=llm,
            config=tiny_config.replace(num_rollouts=8, **budget),
            on_event=events.append,
        ),
        20,
    )
    assert result.budget_exhausted == limit and result.degraded
    assert result.answer == "5"  # answered from the candidates found before the stop
    assert result.verification["reason"] == "budget" and result.selection == "generator_maj"
    assert "exhausted" in result.warnings[0] and "discriminator was skipped" in result.warnings[0]
    [event] = events_of("rstar.budget_exhausted", events)
    assert event["limit"] == limit and event["num_rollouts"] == 8
    assert event["rollouts_finished"] < 8
    assert events_of("rstar.final_answer", events)[0]["budget_exhausted"] == limit
    assert len(scripted.posts) < sum(u["requests"] for u in full.usage.values())
    assert len(events_of("rstar.rollout_started", events)) < 8


@flagged
async def test_a_budget_limited_answer_is_flagged_to_agents(scripted, llm, tiny_config):
    from langgraph_rstar import create_rstar_graph
    from langgraph_rstar.tool import create_rstar_tool

    tight = tiny_config.replace(num_rollouts=8, max_requests=2)
    message = await create_rstar_tool(llm, config=tight).ainvoke(
        {"type": "tool_call", "id": "1", "name": "rstar_reason", "args": {"question": Q_TOM}}
    )
    assert "Answer: 5" in message.content
    assert "Note: budget max_requests=2 exhausted" in message.content
    out = await create_rstar_graph(llm, config=tight).compile().ainvoke({"question": Q_TOM})
    assert out["budget_exhausted"] == "max_requests"
    assert out["messages"][-1].response_metadata["budget_exhausted"] == "max_requests"


@flagged
async def test_a_time_budget_bounds_a_slow_search(slow_scripted, tiny_config):
    llm = OpenAICompatibleLLM(slow_scripted.base_url, "m", max_retries=0, timeout=5)
    with Timer() as t:
        result = await bounded(
            asolve(Q_TOM, target=llm, config=tiny_config.replace(num_rollouts=16, max_seconds=0.5)),
            10,
        )
    assert result.budget_exhausted == "max_seconds"
    assert t.seconds < 0.5 + 3 * 0.2 + 1.0  # the limit plus the wave in flight (0.2 s a call)


@flagged
def test_the_budget_from_the_command_line(scripted, capsys):
    code = main(solve_args(scripted.base_url, "--quiet", "--max-requests", "2", "--json"))
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert code == 0 and out["budget_exhausted"] == "max_requests"
    assert out["warnings"] and out["answer"] == "5"
    assert captured.err == ""  # quiet means quiet: the flag is in the JSON
    code = main(solve_args(scripted.base_url, "--max-requests", "2"))
    captured = capsys.readouterr()
    assert code == 0 and "budget max_requests reached" in captured.err
    assert "warning: budget max_requests=2 exhausted" in captured.err


@valid
async def test_an_unspent_budget_changes_nothing(scripted, llm, tiny_config):
    plain = await asolve(Q_TOM, target=llm, config=tiny_config)
    roomy = await asolve(
        Q_TOM, target=llm, config=tiny_config.replace(max_requests=10_000, max_seconds=600)
    )
    assert roomy.budget_exhausted is None and not roomy.degraded and roomy.warnings == []
    assert roomy.answer == plain.answer and roomy.tree == plain.tree


# -- one search per thread at a time -----------------------------------------------------------


@clear
async def test_a_second_search_on_a_busy_thread_is_refused(slow_scripted, tiny_config):
    llm = OpenAICompatibleLLM(slow_scripted.base_url, "m", max_retries=0)
    saver = InMemorySaver()
    first = asyncio.create_task(
        asolve(Q_TOM, target=llm, config=tiny_config, checkpointer=saver, thread_id="shared")
    )
    await asyncio.sleep(0.1)
    with pytest.raises(ThreadBusyError, match="already running a search"):
        await asolve(Q_TOM, target=llm, config=tiny_config, checkpointer=saver, thread_id="shared")
    result = await bounded(first, 30)
    assert result.answer == "5"
    again = await asolve(
        Q_TOM, target=llm, config=tiny_config, checkpointer=saver, thread_id="shared"
    )
    assert again.answer == "5"  # free again once the first one finished


@valid
async def test_the_same_thread_id_on_two_checkpointers_is_two_threads(scripted, llm, tiny_config):
    runs = [
        asolve(Q_TOM, target=llm, config=tiny_config, checkpointer=InMemorySaver(), thread_id="t")
        for _ in range(2)
    ]
    results = await bounded(asyncio.gather(*runs), 30)
    assert [r.answer for r in results] == ["5", "5"]


# -- interrupted runs --------------------------------------------------------------------------


@clear
async def test_a_cancelled_search_stops_sending(slow_scripted, tiny_config):
    llm = OpenAICompatibleLLM(slow_scripted.base_url, "m", max_retries=0)
    task = asyncio.create_task(asolve(Q_TOM, target=llm, config=tiny_config))
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await bounded(task, 5)
    sent = len(slow_scripted.posts)
    await asyncio.sleep(0.6)
    assert len(slow_scripted.posts) == sent  # no orphan requests after the cancel


@pytest.mark.fault("valid", risk="loss")
async def test_a_search_cut_by_a_dying_server_resumes_to_the_same_answer(tiny_config):
    with ScriptedServer(rstar_responder) as server:
        baseline = await asolve(Q_TOM, target=fast_llm(server.base_url), config=tiny_config)
        server.log.clear()
        saver = InMemorySaver()
        server.fault_next(Fault("reset"), 0)
        llm = fast_llm(server.base_url, max_retries=0, max_in_flight=1)
        server.fault_hook = lambda rec: Fault("reset") if len(server.posts) > 6 else None
        with pytest.raises(RStarError) as info:
            await bounded(
                asolve(Q_TOM, target=llm, config=tiny_config, checkpointer=saver, thread_id="t"), 10
            )
        assert info.value.partial is not None and len(info.value.partial.tree) > 1
        server.fault_hook = None  # the server comes back
        resumed = await bounded(
            asolve(Q_TOM, target=llm, config=tiny_config, checkpointer=saver, thread_id="t"), 20
        )
    assert resumed.answer == baseline.answer and resumed.tree == baseline.tree


# -- hostile text on the terminal --------------------------------------------------------------

HOSTILE = {
    "inst-tag": ("[/INST]", "[/INST]"),
    "closing-tag": ("[/]", "[/]"),
    "dim-tag": ("[/dim]", "[/dim]"),
    "list": ("[a,b]", "[a,b]"),
    "link": ("[link=http://evil.example]here[/link]", "[link=http://evil.example]here[/link]"),
    "style": ("[bold red]", "[bold red]"),
    "osc-hyperlink": ("\x1b]8;;http://evil\x07x\x1b]8;;\x07", "\\x1b]8;;http://evil\\x07x"),
    "carriage-return": ("ok\rEVIL", "ok\\rEVIL"),
}


def hostile_responder(marker: str):
    def respond(prompt: str, params: dict) -> str:
        text = rstar_responder(prompt, params)
        return text.replace("We work it out.", f"We work it out {marker}.").replace(
            "We compute it.", f"We compute it {marker}."
        )

    return respond


@valid
@pytest.mark.parametrize(("marker", "shown"), HOSTILE.values(), ids=HOSTILE.keys())
def test_model_text_is_printed_as_written(marker, shown, capsys):
    with ScriptedServer(hostile_responder(marker)) as server:
        code = main(solve_args(server.base_url, "--no-discriminator", "--tree"))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    steps = [line for line in captured.out.splitlines() if line.lstrip().startswith("Step ")]
    assert any(shown in line for line in steps), captured.out
    assert "Answer: 5" in captured.out
    assert "\x1b" not in captured.out + captured.err and "\r" not in captured.out


@clear
@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_a_server_error_with_markup_is_reported(as_json, capsys):
    message = "bad [/red] request [bold]\x1b[31m"
    with ScriptedServer(rstar_responder) as server:
        error = json.dumps({"error": {"message": message}}).encode()
        server.fault_next(Fault("status", 400, body=error), 100)
        code = main(solve_args(server.base_url, *(["--json"] if as_json else [])))
    err = capsys.readouterr().err
    assert code == 2 and "bad [/red] request [bold]\\x1b[31m" in err
    assert "Traceback" not in err and "\x1b" not in err


@flagged
def test_the_cli_warns_about_a_dead_discriminator(scripted, capsys):
    dead = f"http://127.0.0.1:{free_port()}/v1"
    code = main(
        solve_args(
            scripted.base_url,
            "--discriminator-base-url",
            dead,
            "--discriminator-model",  # named: else it is asked of the (dead) server
            "judge",
            "--max-retries",
            "0",
        )
    )
    captured = capsys.readouterr()
    assert code == 0 and "Answer: 5" in captured.out
    assert "warning:" in captured.err and "generator's majority vote" in captured.err


# -- where keys go -----------------------------------------------------------------------------


@pytest.fixture
def two_servers() -> Iterator[tuple[ScriptedServer, ScriptedServer]]:
    with ScriptedServer(rstar_responder) as target, ScriptedServer(rstar_responder) as judge:
        yield target, judge


def auth_of(server: ScriptedServer) -> set[str]:
    return {r.headers.get("authorization", "") for r in server.posts}


@pytest.mark.fault("valid", risk="security")
def test_the_targets_key_never_goes_to_another_host(two_servers, tmp_path, capsys):
    target, judge = two_servers
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    code = main(
        solve_args(
            target.base_url,
            "--api-key-file",
            str(key_file),
            "--discriminator-base-url",
            judge.base_url,
            "--quiet",
        )
    )
    assert code == 0, capsys.readouterr().err
    assert auth_of(target) == {f"Bearer {KEY}"}
    assert judge.posts and auth_of(judge) == {"Bearer EMPTY"}


@valid
def test_a_discriminator_on_the_same_host_shares_the_key(scripted, monkeypatch, capsys):
    monkeypatch.setenv("RSTAR_TARGET_API_KEY", KEY)
    code = main(solve_args(scripted.base_url, "--discriminator-model", "judge", "--quiet"))
    assert code == 0
    assert {r.body["model"] for r in scripted.posts} == {"scripted", "judge"}
    assert auth_of(scripted) == {f"Bearer {KEY}"}


@valid
def test_the_discriminators_own_key_goes_to_it(two_servers, monkeypatch, capsys):
    target, judge = two_servers
    monkeypatch.setenv("RSTAR_DISCRIMINATOR_API_KEY", "sk-judge-key-98765432")
    code = main(
        solve_args(
            target.base_url, "--api-key", KEY, "--discriminator-base-url", judge.base_url, "--quiet"
        )
    )
    assert code == 0
    assert auth_of(judge) == {"Bearer sk-judge-key-98765432"} and auth_of(target) == {
        f"Bearer {KEY}"
    }


@pytest.mark.fault("clear", risk="security")
@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_a_key_echoed_by_the_server_never_reaches_the_terminal(scripted, as_json, capsys):
    echoed = json.dumps({"error": {"message": f"Incorrect API key provided: {KEY}"}}).encode()
    scripted.fault_next(Fault("status", 401, body=echoed), 100)
    code = main(solve_args(scripted.base_url, "--api-key", KEY, *(["--json"] if as_json else [])))
    captured = capsys.readouterr()
    assert code == 2 and "Incorrect API key provided: ***" in captured.err
    assert KEY not in captured.out + captured.err


@pytest.mark.fault("clear", risk="security")
def test_url_credentials_are_not_printed(capsys):
    url = f"http://admin:hunter2-secret@127.0.0.1:{free_port()}/v1"
    code = main(solve_args(url, "--max-retries", "0", "--model", "m"))
    captured = capsys.readouterr()
    assert code == 2 and "cannot reach http://***@127.0.0.1" in captured.err
    assert "hunter2-secret" not in captured.out + captured.err
    assert re.search(r"target: http://\*\*\*@127\.0\.0\.1:\d+/v1", captured.err)
