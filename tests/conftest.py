"""Shared fixtures: a scripted OpenAI-compatible server that answers rStar's prompts by content."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterator

import pytest

from langgraph_rstar import OpenAICompatibleLLM, RStarConfig
from tests.scripted_server import ScriptedServer

# question -> (right answer, wrong answer); choice 1 of every sample is wrong, the rest right.
QUESTIONS = {
    "Tom has 3 apples and buys 2 more. How many apples does Tom have now?": ("5", "6"),
    "A box holds 4 pens. How many pens are in 3 boxes?": ("12", "13"),
    "Sara reads 10 pages a day. How many pages does she read in 7 days?": ("70", "71"),
}


def live_question(prompt: str) -> str:
    """The question being worked on: the last "Question:"/"Original question:" in the prompt."""
    match = list(re.finditer(r"(?:^|\n)(?:Original question|Question): (.*)", prompt))
    return match[-1].group(1).strip() if match else ""


def lookup(prompt: str) -> tuple[str, str]:
    text = live_question(prompt)
    for question, answers in QUESTIONS.items():
        if question[:20] in text or question[:20] in prompt[-800:]:
            return answers
    return ("1", "2")


def rstar_responder(prompt: str, params: dict) -> str:
    """Plausible, deterministic completions for every rStar action and the discriminator."""
    right, wrong = lookup(prompt)
    answer = wrong if params.get("n_index", 0) == 1 else right
    tail = prompt.rstrip()
    if tail.endswith("Condition 1:"):
        return " The first fact. Question: what is asked?"
    m = re.search(r"Sub-question (\d+):$", tail)
    if m:
        k = int(m.group(1))
        if k >= 2 or params.get("n_index", 0) % 2 == 1:
            return " Now we can answer the question: what is the total?"
        return f" What is part {params.get('n_index', 0)} of the problem?"
    m = re.search(r"Answer (\d+):$", tail)
    if m:
        return f" We compute it. The answer is {answer}."
    m = re.search(r"Step (\d+):$", tail)
    if m:
        k = int(m.group(1))
        if k >= 2:
            return f" The answer is {answer}.\n"
        return f" We work it out.\nStep {k + 1}: The answer is {answer}.\n"
    # reference_code masks end mid-sentence
    return f" so the result follows.\nStep 9: The answer is {answer}.\n"


def byte_size(obj) -> int:
    """The bytes held in ``obj``'s nested dicts, lists and tuples (a saver's serialized data)."""
    if isinstance(obj, (bytes, bytearray)):
        return len(obj)
    if isinstance(obj, dict):
        return sum(byte_size(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(byte_size(v) for v in obj)
    return 0


def saver_bytes(saver) -> int:
    """Every byte an ``InMemorySaver`` holds: checkpoints, channel blobs and pending writes."""
    return byte_size(saver.storage) + byte_size(saver.blobs) + byte_size(saver.writes)


@pytest.fixture
def scripted() -> Iterator[ScriptedServer]:
    with ScriptedServer(rstar_responder) as server:
        yield server


@pytest.fixture
def slow_scripted() -> Iterator[ScriptedServer]:
    with ScriptedServer(rstar_responder, delay=0.2) as server:
        yield server


@pytest.fixture
def llm(scripted: ScriptedServer) -> OpenAICompatibleLLM:
    return OpenAICompatibleLLM(scripted.base_url, "scripted", max_retries=1, timeout=10)


@pytest.fixture
def tiny_config() -> RStarConfig:
    # K = 1: the tree (and so the answer these tests expect) does not depend on timing
    return RStarConfig.preset("fast", num_rollouts=4, max_depth=3, rollouts_in_flight=1)


# --------------------------------------------------------------------------------------------
# The fault suite's outcome counts (tests marked @pytest.mark.fault(expect, risk=...))
# --------------------------------------------------------------------------------------------

EXPECTED = ("clear", "valid-flagged", "valid")  # what a passing case shows
FAILED_AS = ("silent", "crash", "hang", "loss", "security")  # what a failing case was
_FAULT_OUTCOMES: Counter[str] = Counter()
SOAK_REPORT: dict[str, object] = {}  # filled by tests/test_soak.py, printed at the end


class Hang(AssertionError):
    """A fault case did not finish within its bound (counted as "hang")."""


def fault_outcome(
    passed: bool, excinfo: pytest.ExceptionInfo[BaseException] | None, marker: pytest.Mark
) -> str:
    """The category of one fault case: its expected outcome, or what its failure means.

    A pytest-timeout or :class:`Hang` is a hang; a failed assertion (or a ``pytest.raises`` that
    saw nothing raised) is the case's ``risk`` (default "silent": a wrong result nobody was told
    about); any other exception is a crash.
    """
    if passed:
        return marker.args[0] if marker.args else marker.kwargs.get("expect", "clear")
    if excinfo is None:
        return "crash"
    if excinfo.errisinstance(Hang) or "Timeout >" in str(excinfo.value):
        return "hang"
    if excinfo.errisinstance((AssertionError, pytest.fail.Exception)):
        return marker.kwargs.get("risk", "silent")
    return "crash"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    marker = item.get_closest_marker("fault")
    if marker is None or report.skipped:
        return
    if report.when == "call" or (report.when == "setup" and report.failed):
        _FAULT_OUTCOMES[fault_outcome(report.passed, call.excinfo, marker)] += 1


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ANN001
    if SOAK_REPORT:
        terminalreporter.write_line(f"soak: {json.dumps(SOAK_REPORT)}")
    if not _FAULT_OUTCOMES:
        return
    total = sum(_FAULT_OUTCOMES.values())
    line = ", ".join(f"{k} {_FAULT_OUTCOMES.get(k, 0)}" for k in (*EXPECTED, *FAILED_AS))
    terminalreporter.write_line(f"fault suite: {total} cases: {line}")
    path = os.environ.get("RSTAR_FAULT_REPORT")
    if path:
        counts = {k: _FAULT_OUTCOMES.get(k, 0) for k in (*EXPECTED, *FAILED_AS)}
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"cases": total, **counts}, f)
