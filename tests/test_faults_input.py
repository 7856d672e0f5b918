"""Fault suite, bad input: questions, settings (Python, context and CLI), endpoints, key files.

Each is refused up front with a message that names the problem, before any model call and
without a traceback on the command line.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from langgraph_rstar import (
    OpenAICompatibleLLM,
    RStarConfig,
    SettingsError,
    asolve,
    create_rstar_graph,
)
from langgraph_rstar.cli import main
from tests.faults import bounded, clear, valid

# -- questions ---------------------------------------------------------------------------------


@clear
@pytest.mark.parametrize("question", ["", "   \n\t ", None, 123, ["What is 2+2?"]], ids=repr)
async def test_a_bad_question_is_refused_before_any_request(scripted, llm, question):
    with pytest.raises(ValueError, match="non-empty question"):
        await bounded(asolve(question, target=llm), 5)
    assert scripted.posts == []


@clear
async def test_a_graph_input_without_a_question_is_refused(scripted, llm):
    app = create_rstar_graph(llm).compile()
    with pytest.raises(ValueError, match="non-empty question"):
        await bounded(app.ainvoke({"messages": []}), 5)
    assert scripted.posts == []


@valid
@pytest.mark.parametrize(
    "question",
    [
        "Tom has 3 apples and buys 2 more. How many apples does Tom have now? [/INST] [a,b]",
        "Tom has 3 apples and buys 2 more. How many apples does Tom have now?\x00\x1b[31m",
        "Tom has 3 apples and buys 2 more. How many apples does Tom have now? " + "x " * 20_000,
    ],
    ids=["markup", "control-characters", "40-kB"],
)
async def test_an_odd_but_valid_question_is_solved(scripted, llm, tiny_config, question):
    result = await bounded(asolve(question, target=llm, config=tiny_config), 20)
    assert result.answer == "5" and not result.degraded
    assert any(question.strip()[:40] in p for r in scripted.posts for p in r.prompts)


@clear
async def test_a_question_too_long_for_the_server_is_its_clear_error(scripted, llm, tiny_config):
    from langgraph_rstar import RStarError
    from tests.scripted_server import Fault

    message = b'{"error": {"message": "prompt is longer than the context (9000 > 4096 tokens)"}}'
    scripted.fault_next(Fault("status", 400, body=message), 20)
    with pytest.raises(RStarError, match=r"HTTP 400: prompt is longer than the context"):
        await bounded(asolve("Tom has 3 apples. " * 500, target=llm, config=tiny_config), 10)


# -- settings in Python: typed and bounded -----------------------------------------------------

BAD_SETTINGS: dict[str, tuple[dict[str, Any], str]] = {
    "temperature-word": ({"temperature": "hot"}, "temperature: Input should be a valid number"),
    "temperature-negative": ({"temperature": -0.5}, "temperature: Input should be greater"),
    "temperature-nan": ({"temperature": math.nan}, "temperature: Input should be a finite"),
    "temperature-inf": ({"temperature": math.inf}, "temperature: Input should be a finite"),
    "top_p-zero": ({"top_p": 0}, "top_p: Input should be greater than 0"),
    "top_p-above-one": ({"top_p": 1.5}, "top_p: Input should be less than or equal to 1"),
    "rollouts-zero": ({"num_rollouts": 0}, "num_rollouts: Input should be greater than or"),
    "rollouts-negative": ({"num_rollouts": -3}, "num_rollouts: Input should be greater"),
    "rollouts-fraction": ({"num_rollouts": 2.5}, "num_rollouts: Input should be a valid integer"),
    "rollouts-bool": ({"num_rollouts": True}, "num_rollouts: Input should be a valid integer"),
    "rollouts-string": ({"num_rollouts": "4"}, "num_rollouts: Input should be a valid integer"),
    "in-flight-zero": ({"rollouts_in_flight": 0}, "rollouts_in_flight: Input should be"),
    "bool-as-word": ({"use_discriminator": "no"}, "use_discriminator: Input should be a valid"),
    "bool-as-int": ({"use_discriminator": 1}, "use_discriminator: Input should be a valid"),
    "agreement-unknown": ({"agreement": "bogus"}, "agreement: Input should be 'loose'"),
    "scoring-unknown": ({"scoring": "bogus"}, "unknown scoring 'bogus'"),
    "mask-left-zero": ({"mask_left": 0.0}, "mask_left: Input should be greater than 0"),
    "masks-crossed": ({"mask_left": 0.7, "mask_right": 0.6}, "mask_left <= mask_right"),
    "depth-zero": ({"max_depth": 0}, "max_depth: Input should be greater than or equal to 1"),
    "top_k-word": ({"top_k": "x"}, "top_k: Input should be a valid integer"),
    "penalty-zero": ({"repetition_penalty": 0}, "repetition_penalty: Input should be greater"),
    "tokens-zero": ({"max_tokens_cot": 0}, "max_tokens_cot: Input should be greater"),
    "budget-requests-zero": ({"max_requests": 0}, "max_requests: Input should be greater"),
    "budget-seconds-negative": ({"max_seconds": -1}, "max_seconds: Input should be greater"),
    "budget-tokens-fraction": ({"max_generated_tokens": 1.5}, "max_generated_tokens: Input"),
    "extra-not-a-dict": ({"extra": "x"}, "extra: Input should be a valid dictionary"),
    "unknown-name": ({"bogus": 1}, "unknown rStar setting 'bogus'; valid settings: "),
    "typo": ({"num_rolouts": 3}, "'num_rolouts' (did you mean 'num_rollouts'?)"),
    "task-unknown": ({"task": "nope"}, "nope"),
}


@clear
@pytest.mark.parametrize(("changes", "says"), BAD_SETTINGS.values(), ids=BAD_SETTINGS.keys())
def test_a_bad_setting_is_refused_with_what_is_wrong(changes, says):
    with pytest.raises(ValueError) as info:
        RStarConfig.preset("fast", **changes)
    assert says in str(info.value)


@clear
def test_an_unknown_preset_is_refused():
    with pytest.raises(SettingsError, match="unknown preset 'slow'; known: fast, paper"):
        RStarConfig.preset("slow")


@clear
async def test_bad_overrides_to_asolve_send_nothing(scripted, llm):
    with pytest.raises(SettingsError, match="temperature"):
        await asolve("What is 2+2?", target=llm, temperature="hot")
    with pytest.raises(TypeError, match="did you mean 'num_rollouts'"):  # also a TypeError
        await asolve("What is 2+2?", target=llm, num_rolouts=3)
    assert scripted.posts == []


@clear
@pytest.mark.parametrize(
    ("context", "says"),
    [({"temperature": "hot"}, "temperature"), ({"num_rolouts": 3}, "did you mean")],
    ids=["wrong-type", "typo"],
)
async def test_a_bad_run_context_is_refused(scripted, llm, context, says):
    app = create_rstar_graph(llm).compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "t"}}
    with pytest.raises(SettingsError, match=says):
        await bounded(app.ainvoke({"question": "What is 2+2?"}, config, context=context), 5)
    assert scripted.posts == []


@valid
def test_an_unrelated_parent_context_key_is_ignored():
    from langgraph_rstar.config import resolve_config

    base = RStarConfig.preset("fast")
    context = {"user_id": "u1", "max_tokens": 512, "model": "gpt", "num_rollouts": 6}
    assert resolve_config(base, context).num_rollouts == 6


# -- backends ----------------------------------------------------------------------------------

BAD_BACKENDS: dict[str, tuple[dict[str, Any], str]] = {
    "ftp-scheme": ({"base_url": "ftp://example.org/v1"}, "use an http:// or https:// URL"),
    "no-scheme": ({"base_url": "localhost:8000/v1"}, "did you mean 'http://localhost:8000/v1'"),
    "no-host": ({"base_url": "http:///v1"}, "with a host"),
    "empty-url": ({"base_url": ""}, "base_url is required"),
    "bad-port": ({"base_url": "http://127.0.0.1:99999/v1"}, "not a valid URL"),
    "timeout-zero": ({"timeout": 0}, "timeout must be a number of seconds > 0"),
    "timeout-nan": ({"timeout": math.nan}, "timeout must be"),
    "timeout-string": ({"timeout": "5"}, "timeout must be"),
    "retries-negative": ({"max_retries": -1}, "max_retries must be an integer >= 0"),
    "retries-fraction": ({"max_retries": 1.5}, "max_retries must be"),
}


@clear
@pytest.mark.parametrize(("kwargs", "says"), BAD_BACKENDS.values(), ids=BAD_BACKENDS.keys())
def test_a_bad_backend_argument_fails_at_construction(kwargs, says):
    kwargs = {"base_url": "http://127.0.0.1:8000/v1", **kwargs}
    with pytest.raises(ValueError) as info:
        OpenAICompatibleLLM(kwargs.pop("base_url"), "m", **kwargs)
    assert says in str(info.value)


# -- the command line: exit 2, a message, no traceback -----------------------------------------

CLI_ERRORS: dict[str, tuple[list[str], str]] = {
    "set-unknown": (["--set", "bogus=1"], "--set bogus: unknown setting; valid fields: "),
    "set-typo": (["--set", "num_rolouts=3"], "did you mean 'num_rollouts'"),
    "set-wrong-type": (["--set", "temperature=hot"], "temperature: Input should be a valid"),
    "set-bool-word": (["--set", "use_discriminator=no"], "use_discriminator"),
    "set-without-value": (["--set", "novalue"], "expected FIELD=VALUE"),
    "rollouts-zero": (["--rollouts", "0"], "num_rollouts: Input should be greater"),
    "in-flight-zero": (["--in-flight", "0"], "rollouts_in_flight: Input should be greater"),
    "max-requests-zero": (["--max-requests", "0"], "max_requests: Input should be greater"),
    "max-seconds-zero": (["--max-seconds", "0"], "max_seconds: Input should be greater"),
    "ftp-url": (["--base-url", "ftp://x/v1"], "use an http:// or https:// URL"),
    "missing-key-file": (["--api-key-file", "/nonexistent/key"], "--api-key-file: cannot read"),
}


@clear
@pytest.mark.parametrize(("extra", "says"), CLI_ERRORS.values(), ids=CLI_ERRORS.keys())
def test_the_cli_refuses_bad_options_without_a_traceback(extra, says, capsys):
    args = ["solve", "What is 2+2?", "--quiet", *extra]
    if "--base-url" not in extra:
        args += ["--base-url", "http://127.0.0.1:9/v1"]  # never reached
    assert main(args) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err


@clear
@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--timeout", "0"], "--timeout: expected a number of seconds > 0"),
        (["--timeout", "soon"], "--timeout: expected a number of seconds > 0"),
        (["--max-retries", "-1"], "--max-retries: expected an integer >= 0"),
        (["--max-in-flight", "0"], "--max-in-flight: expected an integer >= 1"),
    ],
    ids=["timeout-zero", "timeout-word", "retries-negative", "in-flight-zero"],
)
def test_bad_numbers_are_refused_by_the_parser(extra, says, capsys):
    with pytest.raises(SystemExit) as info:
        main(["solve", "q", "--base-url", "http://127.0.0.1:9/v1", *extra])
    assert info.value.code == 2 and says in capsys.readouterr().err


@clear
def test_a_bad_timeout_in_the_environment_is_refused(monkeypatch, capsys):
    monkeypatch.setenv("RSTAR_TIMEOUT", "-3")
    with pytest.raises(SystemExit) as info:
        main(["solve", "q", "--base-url", "http://127.0.0.1:9/v1"])
    assert info.value.code == 2 and "--timeout: expected a number" in capsys.readouterr().err


@clear
def test_an_empty_key_file_is_refused(tmp_path, capsys):
    key_file = tmp_path / "key"
    key_file.write_text("\n")
    assert (
        main(["solve", "q", "--base-url", "http://127.0.0.1:9/v1", "--api-key-file", str(key_file)])
        == 2
    )
    assert "is empty" in capsys.readouterr().err


@valid
def test_timeout_and_retries_reach_the_backends(monkeypatch):
    import argparse

    from langgraph_rstar.endpoints import add_endpoint_args

    monkeypatch.setenv("RSTAR_MAX_RETRIES", "7")
    parser = argparse.ArgumentParser()
    add_endpoint_args(parser)
    args = parser.parse_args(["--timeout", "2.5"])
    assert (args.timeout, args.max_retries) == (2.5, 7)


@valid
def test_every_numeric_setting_has_a_range():
    import dataclasses
    from typing import get_type_hints

    from langgraph_rstar.settings import BOUNDS, is_numeric

    hints = get_type_hints(RStarConfig)
    numeric = {f.name for f in dataclasses.fields(RStarConfig) if is_numeric(hints[f.name])}
    assert numeric - BOUNDS.keys() == set(), "add a range to langgraph_rstar.settings.BOUNDS"
    assert BOUNDS.keys() - numeric == set()


@valid
def test_ints_for_floats_are_accepted_as_floats():
    cfg = RStarConfig.preset("fast", temperature=1, top_p=1, max_seconds=30)
    assert (cfg.temperature, cfg.top_p, cfg.max_seconds) == (1.0, 1.0, 30.0)
    assert isinstance(cfg.temperature, float)
