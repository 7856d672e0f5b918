"""The command line a stranger meets first: version, help, settings errors, JSON failures, the
environment (OPENAI_API_KEY / OPENAI_BASE_URL), the model from /v1/models, --extra-body, the
library's silence on stderr, and the discriminator phase of the live view.

Everything runs against the scripted HTTP server of ``tests/scripted_server.py``.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

import langgraph_rstar
from langgraph_rstar import OpenAICompatibleLLM, RStarConfig, asolve
from langgraph_rstar.cli import build_parser
from langgraph_rstar.cli import main as cli_main
from langgraph_rstar.progress import SolveProgress
from tests.conftest import QUESTIONS, rstar_responder
from tests.scripted_server import ScriptedServer

Q_TOM, (TOM, _) = next(iter(QUESTIONS.items()))
ROOT = Path(__file__).resolve().parents[1]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli_main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ------------------------------------------------------------------- version and help text


def test_version_flag_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli_main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"rstar {langgraph_rstar.__version__}"
    # pyproject.toml takes its version from the package (one place to bump)
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject
    assert 'path = "langgraph_rstar/__init__.py"' in pyproject


def _parsers(parser: argparse.ArgumentParser, name: str = "rstar"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {sub_name}")


def test_every_flag_and_argument_of_every_command_has_help_text():
    seen = 0
    for name, parser in _parsers(build_parser()):
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            label = "/".join(action.option_strings) or action.dest
            assert action.help and action.help.strip(), f"{name} {label} has no help text"
            assert action.help != argparse.SUPPRESS, f"{name} {label} is hidden"
            seen += 1
    assert seen > 50  # solve, serve-local, eval and report were all walked


# --------------------------------------------------------------------- settings and --json


def test_a_misspelled_setting_is_a_clear_error_listing_the_valid_fields(capsys):
    code, out, err = run(
        ["solve", Q_TOM, "--base-url", "http://127.0.0.1:9/v1", "--set", "num_rolouts=3"], capsys
    )
    assert code == 2 and out == ""
    assert "Traceback" not in err
    assert "--set num_rolouts: unknown setting; did you mean 'num_rollouts'?" in err
    valid = err.split("valid fields:", 1)[1]
    for name in ("num_rollouts", "max_depth", "scoring", "temperature"):
        assert name in valid


def test_set_needs_field_equals_value(capsys):
    code, _, err = run(
        ["solve", Q_TOM, "--base-url", "http://127.0.0.1:9/v1", "--set", "num_rollouts"], capsys
    )
    assert code == 2 and "expected FIELD=VALUE" in err


@pytest.mark.parametrize(
    ("extra", "kind", "needle"),
    [
        (["--set", "num_rolouts=3"], "ValueError", "did you mean 'num_rollouts'"),
        (["--task", "nope"], "ValueError", "unknown task"),
        (["--preset", "nope"], "usage", "invalid choice: 'nope'"),
        (["--extra-body", "{not json"], "usage", "not valid JSON"),
    ],
)
def test_json_mode_prints_every_failure_as_one_json_object(capsys, extra, kind, needle):
    argv = ["solve", Q_TOM, "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--json"]
    code, out, err = run([*argv, *extra], capsys) if kind != "usage" else (None, "", "")
    if kind == "usage":  # argparse exits by itself
        with pytest.raises(SystemExit) as exit_:
            cli_main([*argv, *extra])
        captured = capsys.readouterr()
        code, out, err = exit_.value.code, captured.out, captured.err
    assert code == 2
    failure = json.loads(out)  # the whole of stdout is the error object
    assert failure["type"] == kind and needle in failure["error"]
    assert needle in err  # people reading the terminal see it too


def test_without_json_usage_errors_stay_plain_text(capsys):
    with pytest.raises(SystemExit):
        cli_main(["solve", Q_TOM, "--preset", "nope"])
    captured = capsys.readouterr()
    assert captured.out == "" and "invalid choice" in captured.err


# ------------------------------------------------------------ endpoints from the environment


def test_openai_environment_variables_and_the_single_listed_model_are_used(capsys, monkeypatch):
    with ScriptedServer(rstar_responder, models=["org/only-model"]) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
        for name in ("RSTAR_TARGET_BASE_URL", "RSTAR_TARGET_MODEL", "RSTAR_TARGET_API_KEY"):
            monkeypatch.delenv(name, raising=False)
        code, out, _ = run(["solve", Q_TOM, "--json", "--rollouts", "1"], capsys)
        posts = server.posts
    assert code == 0 and json.loads(out)["answer"] == TOM
    assert posts and {p.body["model"] for p in posts} == {"org/only-model"}
    assert {p.headers.get("authorization") for p in posts} == {"Bearer sk-from-env"}


async def test_the_backend_reads_openai_base_url_and_api_key_when_not_given(scripted, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", scripted.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-library")
    llm = OpenAICompatibleLLM(None, "m", max_retries=0)
    assert llm.base_url == scripted.base_url and llm.api_key == "sk-library"
    await llm.generate(["Question: x\nStep 1:"], max_tokens=4)
    assert scripted.posts[0].headers["authorization"] == "Bearer sk-library"
    assert await llm.list_models() == ["scripted"]
    await llm.aclose()
    monkeypatch.delenv("OPENAI_BASE_URL")
    with pytest.raises(ValueError, match="base_url is required"):
        OpenAICompatibleLLM(None, "m")


def test_explicit_options_win_over_the_environment(capsys, monkeypatch):
    with ScriptedServer(rstar_responder, models=["a", "b"]) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # would fail
        monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
        argv = ["solve", Q_TOM, "--base-url", server.base_url, "--model", "b"]
        code, _, _ = run([*argv, "--api-key", "sk-flag", "--json", "--rollouts", "1"], capsys)
        posts = server.posts
    assert code == 0
    assert {p.body["model"] for p in posts} == {"b"}
    assert {p.headers.get("authorization") for p in posts} == {"Bearer sk-flag"}


def test_without_model_a_server_with_several_models_asks_for_one(capsys, monkeypatch):
    monkeypatch.delenv("RSTAR_TARGET_MODEL", raising=False)
    with ScriptedServer(rstar_responder, models=["qwen-7b", "phi-3"]) as server:
        code, out, err = run(["solve", Q_TOM, "--base-url", server.base_url, "--json"], capsys)
        posts = server.posts
    assert code == 2 and posts == []  # nothing was generated with a guessed name
    failure = json.loads(out)
    assert "lists 2 models (qwen-7b, phi-3); pass --model NAME" in failure["error"]


def test_discriminator_on_its_own_server_takes_that_servers_model(capsys):
    with (
        ScriptedServer(rstar_responder, models=["gen"]) as gen,
        ScriptedServer(rstar_responder, models=["judge"]) as judge,
    ):
        argv = ["solve", Q_TOM, "--base-url", gen.base_url, "--json", "--rollouts", "2"]
        code, _, _ = run([*argv, "--discriminator-base-url", judge.base_url], capsys)
        assert code == 0
        assert {p.body["model"] for p in gen.posts} == {"gen"}
        assert {p.body["model"] for p in judge.posts} == {"judge"}


def test_extra_body_reaches_every_request(capsys, scripted):
    extra = '{"min_p": 0.05, "chat_template_kwargs": {"enable_thinking": false}}'
    argv = ["solve", Q_TOM, "--base-url", scripted.base_url, "--model", "m", "--json"]
    code, _, _ = run([*argv, "--rollouts", "2", "--extra-body", extra], capsys)
    assert code == 0
    bodies = [p.body for p in scripted.posts]
    assert bodies and all(b["min_p"] == 0.05 for b in bodies)
    assert all(b["chat_template_kwargs"] == {"enable_thinking": False} for b in bodies)


def test_extra_body_must_be_a_json_object(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli_main(["solve", Q_TOM, "--extra-body", "[1, 2]"])
    assert exit_.value.code == 2
    assert "expected a JSON object" in capsys.readouterr().err


# ------------------------------------------------------------------ a library stays silent

RETRYING_CLIENT = """
import asyncio, socket
from langgraph_rstar import BackendError, OpenAICompatibleLLM

s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
llm = OpenAICompatibleLLM(f"http://127.0.0.1:{port}/v1", "m", max_retries=3)
llm.retry_initial_wait = llm.retry_max_wait = 0.01
try:
    asyncio.run(llm.generate(["hi"], max_tokens=4))
except BackendError as exc:
    print("failed as expected:", "cannot reach" in str(exc))
"""


def test_retry_warnings_do_not_reach_stderr_unless_logging_is_configured():
    quiet = subprocess.run(
        [sys.executable, "-c", RETRYING_CLIENT], capture_output=True, text=True, timeout=60
    )
    assert quiet.stdout.strip() == "failed as expected: True"
    assert quiet.stderr == ""  # 3 retries happened, and nothing was printed
    loud = subprocess.run(
        [sys.executable, "-c", "import logging; logging.basicConfig()\n" + RETRYING_CLIENT],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert loud.stderr.count("Connection error.") == loud.stderr.count("; retrying") == 3


# ----------------------------------------------------------- the discriminator in the view


async def test_the_live_view_shows_the_discriminator_phase_as_soon_as_it_starts():
    events: list[dict] = []
    with ScriptedServer(rstar_responder) as server:
        llm = OpenAICompatibleLLM(server.base_url, "m", max_retries=0)
        config = RStarConfig.preset("fast", num_rollouts=4, max_depth=3)
        result = await asolve(Q_TOM, target=llm, config=config, on_event=events.append)
    kinds = [e["type"] for e in events]
    assert "rstar.verification_started" in kinds  # the scripted answers disagree: checked
    start = kinds.index("rstar.verification_started")
    assert max(i for i, k in enumerate(kinds) if k == "rstar.rollout_finished") < start
    assert min(i for i, k in enumerate(kinds) if k == "rstar.candidate_verified") > start
    checks = result.verification["checks"]
    assert events[start]["candidates"] == len(checks)
    assert events[start]["prompts"] == sum(len(c["answers"]) for c in checks)

    # Rendered up to the start event, the view already shows the discriminator at work.
    buffer = io.StringIO()
    console = Console(file=buffer, width=160, force_terminal=True)
    with SolveProgress(console, config) as view:
        for event in events[: start + 1]:
            view.on_event(event)
        view.progress.refresh()
        shown = buffer.getvalue()
    assert "verify" in shown
    assert f"{events[start]['prompts']} masked completions of {len(checks)} candidates" in shown


def test_readme_and_examples_stay_inside_the_repository():
    readme = (ROOT / "README.md").read_text()
    texts = [readme, *(p.read_text() for p in (ROOT / "examples").glob("*.py"))]
    assert not any("../shared" in t or "/work/" in t for t in texts)
    assert "pip install langgraph-rstar " not in readme  # not on PyPI: install from a checkout
    assert "pip wheel --no-deps -w dist ." in readme
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert (ROOT / "langgraph_rstar" / "py.typed").is_file()
    assert (ROOT / "docs" / "search-view.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
