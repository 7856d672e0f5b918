"""Every script under examples/ runs against the scripted server and prints the right answer.

Each example runs once as a real script (a subprocess with ``--base-url``) and its ``main(argv)``
is also imported for the finer checks. Nothing here starts the embedded llama.cpp server.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from langgraph_rstar import local
from tests.conftest import QUESTIONS, rstar_responder
from tests.scripted_server import ScriptedServer

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NAMES = ("solve_one", "agent_with_rstar_node", "asyncio_batch", "tool_agent", "openai_sdk")
(Q_TOM, (TOM, _)), (Q_PENS, (PENS, _)), (Q_PAGES, (PAGES, _)) = QUESTIONS.items()


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"rstar_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def endpoint(server: ScriptedServer) -> list[str]:
    return ["--base-url", server.base_url, "--model", "m", "--rollouts", "2"]


@pytest.mark.parametrize("name", NAMES)
def test_every_example_documents_itself_and_takes_an_endpoint(name):
    module = load(name)
    doc = module.__doc__ or ""
    assert "What it shows:" in doc
    assert f"examples/{name}.py" in doc and "--base-url" in doc  # how to run it
    assert "embedded" in doc  # what happens without --base-url
    args = module.parse_args([])
    assert args.base_url is None and args.model  # no --base-url: the embedded server
    assert callable(module.main)


@pytest.mark.parametrize(
    ("name", "extra", "expected"),
    [
        ("solve_one", ["--question", Q_PENS], f"Answer: {PENS}"),
        ("agent_with_rstar_node", ["--question", Q_TOM], f"The answer is {TOM}"),
        ("asyncio_batch", ["--question", Q_TOM, "--question", Q_PAGES], f"answer: {PAGES}"),
        ("tool_agent", ["--question", Q_TOM], f"Answer: {TOM}"),
        ("openai_sdk", ["--question", Q_PENS], f"Answer: {PENS} (confidence"),
    ],
)
def test_example_runs_as_a_script(scripted, name, extra, expected):
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), *endpoint(scripted), *extra],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=EXAMPLES.parent,
    )
    assert proc.returncode == 0, proc.stderr
    assert expected in proc.stdout
    assert "Traceback" not in proc.stderr


def test_solve_one_prints_the_tree_and_the_answer(scripted, capsys):
    module = load("solve_one")
    assert module.main([*endpoint(scripted), "--question", Q_TOM]) == 0
    out = capsys.readouterr().out
    tree, _, rest = out.partition("Trajectory")
    assert "Search tree" in tree and "0 question (N=2" in tree and "direct_answer" in tree
    assert "Step 1:" in rest and f"Answer: {TOM}" in rest
    # the root's actions go out concurrently, so look for the question in any request
    sent = [prompt for rec in scripted.posts for prompt in rec.prompts]
    assert any(f"Question: {Q_TOM}\n" in prompt for prompt in sent)


def test_examples_take_questions_from_a_data_file_without_its_labels(tmp_path, capsys):
    data = tmp_path / "dev.jsonl"
    rows = [
        {"id": "a", "question": "First question?", "answer": "42", "solution": "#### 42"},
        {"id": "b", "question": "Second question?", "answer": "7"},
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    solve_one, batch = load("solve_one"), load("asyncio_batch")
    assert solve_one.default_question(data) == "First question?"
    assert solve_one.default_question() == solve_one.BUILTIN_QUESTION
    assert batch.default_questions(5, data) == ["First question?", "Second question?"]
    assert batch.default_questions(2) == batch.BUILTIN_QUESTIONS[:2]
    for module in (solve_one, batch):  # nothing outside the repository is looked for
        assert "../shared" not in Path(module.__file__).read_text()
    assert solve_one.main(["--data", str(tmp_path / "missing.jsonl")]) == 2
    assert "not found" in capsys.readouterr().err


def test_agent_example_routes_small_talk_and_math_on_one_thread(scripted, capsys):
    module = load("agent_with_rstar_node")
    argv = [*endpoint(scripted), "--question", "Hello!", "--question", Q_PAGES]
    assert module.main(argv) == 0
    out = capsys.readouterr().out
    assert "Ask me a math word problem" in out
    assert "--- rstar" in out and f"Final answer: {PAGES}" in out
    assert out.rstrip().endswith("=== state keys: ['answer', 'confidence', 'messages']")
    assert f"The answer is {PAGES} (confidence" in out


def test_asyncio_batch_solves_all_questions_on_one_backend(scripted, capsys):
    module = load("asyncio_batch")
    argv = [*endpoint(scripted), "--question", Q_TOM, "--question", Q_PENS, "--question", Q_PAGES]
    assert module.main(argv) == 0
    out = capsys.readouterr().out
    for answer in (TOM, PENS, PAGES):
        assert f"answer: {answer}  confidence: " in out
    assert "3 questions in " in out and f"{len(scripted.posts)} requests, one backend" in out


def test_tool_agent_calls_the_tool_once_with_the_stand_in_model(scripted, capsys):
    module = load("tool_agent")
    assert module.main([*endpoint(scripted), "--question", Q_PENS]) == 0
    captured = capsys.readouterr()
    assert "scripted tool-calling stand-in" in captured.err
    assert captured.out.count("--- ai calls rstar_reason(") == 1
    assert f"--- tool rstar_reason\nAnswer: {PENS} (confidence" in captured.out
    assert f"rStar worked it out. Answer: {PENS}" in captured.out


def test_openai_sdk_example_streams_progress_then_the_text(scripted, capsys):
    module = load("openai_sdk")
    assert module.main([*endpoint(scripted), "--question", Q_TOM]) == 0
    out = capsys.readouterr().out
    assert out.startswith("models: rstar-fast, rstar-paper, rstar-reference_code, rstar\n")
    plain, _, streamed = out.partition("streamed:\n")
    assert plain.count(f"Final answer: {TOM}") == 1 and f"Answer: {TOM} (confidence" in plain
    # (the preset runs rollouts side by side: they may finish in either order)
    head = streamed.splitlines()[:3]
    assert sorted(head[:2]) == [f"  rollout 1: answer {TOM}", f"  rollout 2: answer {TOM}"]
    assert head[2].startswith("Step 1:")
    assert streamed.rstrip().endswith(f"Final answer: {TOM}")


def test_openai_sdk_example_uses_a_running_server(scripted, capsys):
    from langgraph_rstar import OpenAICompatibleLLM
    from langgraph_rstar.serve import create_app, running

    app = create_app(OpenAICompatibleLLM(scripted.base_url, "m"), api_key="k")
    module = load("openai_sdk")
    with running(app) as url:
        argv = ["--rstar-url", url, "--api-key", "k", "--question", Q_PENS, "--rollouts", "2"]
        assert module.main(argv) == 0
        assert module.main([*argv[:2], "--api-key", "wrong", "--question", Q_PENS]) == 2
    captured = capsys.readouterr()
    assert f"Answer: {PENS}" in captured.out and "Incorrect API key" in captured.err
    assert app.state.stats.finished == 2


def test_tool_agent_needs_langchain_openai_for_a_real_chat_model(scripted, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "langchain_openai", None)  # as if it were not installed
    module = load("tool_agent")
    code = module.main([*endpoint(scripted), "--chat-base-url", "http://127.0.0.1:9/v1"])
    assert code == 2 and "pip install langchain-openai" in capsys.readouterr().err


@pytest.mark.parametrize("name", NAMES)
def test_examples_exit_2_on_a_dead_endpoint(name, capsys, monkeypatch):
    from langgraph_rstar import OpenAICompatibleLLM

    monkeypatch.setattr(OpenAICompatibleLLM, "retry_initial_wait", 0.01)
    monkeypatch.setattr(OpenAICompatibleLLM, "retry_max_wait", 0.02)
    module = load(name)
    argv = ["--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--rollouts", "1"]
    if name != "asyncio_batch":
        code = module.main([*argv, "--question", Q_TOM])
        assert code == 2
        assert "error:" in capsys.readouterr().err
    else:  # a failed question is reported in the batch, and the exit code says so
        code = module.main([*argv, "--question", Q_TOM])
        assert code == 1
        assert "error after" in capsys.readouterr().out


class FakeLocalServer:
    """Stands in for ``langgraph_rstar.local.LocalServer``: a scripted server, no llama.cpp."""

    instances: list[FakeLocalServer] = []

    def __init__(self, model: str = "qwen2.5-coder-0.5b", *, parallel: int = 8, **kwargs):
        self.parallel = parallel
        self.server = ScriptedServer(rstar_responder, max_n=parallel)
        self.entered = self.exited = False
        FakeLocalServer.instances.append(self)

    def __enter__(self) -> FakeLocalServer:
        self.entered = True
        self.base_url = self.server.start().base_url
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()
        self.exited = True


@pytest.mark.parametrize(
    ("name", "question", "expected"),
    [
        ("solve_one", Q_TOM, f"Answer: {TOM}"),
        ("agent_with_rstar_node", Q_PENS, f"The answer is {PENS}"),
        ("asyncio_batch", Q_PAGES, f"answer: {PAGES}"),
        ("tool_agent", Q_TOM, f"Answer: {TOM}"),
        ("openai_sdk", Q_PAGES, f"Answer: {PAGES}"),
    ],
)
def test_without_base_url_the_examples_start_the_embedded_server(
    name, question, expected, capsys, monkeypatch
):
    module = load(name)
    monkeypatch.setattr(local, "LocalServer", FakeLocalServer)
    FakeLocalServer.instances.clear()
    assert module.main(["--question", question, "--rollouts", "2"]) == 0
    assert expected in capsys.readouterr().out
    (fake,) = FakeLocalServer.instances
    assert fake.entered and fake.exited  # started for the run, stopped afterwards
    posts = fake.server.posts
    assert posts and all(rec.n <= fake.parallel for rec in posts)
    assert all(rec.body.get("logprobs") for rec in posts)  # the llama.cpp dialect
