"""Tests for answer extraction, equivalence and voting (langgraph_rstar.answers)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from langgraph_rstar import answers
from langgraph_rstar.answers import (
    TASK_FAMILIES,
    Vote,
    answers_equal,
    extract_answer,
    group_answers,
    majority_vote,
    task_family,
)

DATA_DIR = Path(
    os.environ.get("RSTAR_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data")
)


def _gold_answers(dataset: str) -> list[str]:
    path = DATA_DIR / dataset / "dev.jsonl"
    if not path.exists():
        pytest.skip(f"{path} not available")
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line)["answer"] for line in lines if line.strip()]


# ---------------------------------------------------------------------------------------------
# task names
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "family"),
    [
        ("gsm8k", "number"),
        ("gsmhard", "number"),
        ("svamp", "number"),
        ("math500", "math"),
        ("strategyqa", "yesno"),
        ("number", "number"),
        ("math", "math"),
        ("yesno", "yesno"),
        ("GSM8K", "number"),
    ],
)
def test_task_family(task: str, family: str) -> None:
    assert task_family(task) == family


def test_unknown_task_raises_everywhere() -> None:
    with pytest.raises(ValueError, match=r"unknown task 'mmlu'; known: .*gsm8k"):
        task_family("mmlu")
    with pytest.raises(ValueError, match="unknown task"):
        extract_answer("The answer is 3.", "mmlu")
    with pytest.raises(ValueError, match="unknown task"):
        answers_equal("3", "3", "mmlu")
    with pytest.raises(ValueError, match="unknown task"):
        majority_vote(["3"], "mmlu")
    with pytest.raises(ValueError, match="unknown task"):
        group_answers([], "mmlu")


def test_task_families_table() -> None:
    assert set(TASK_FAMILIES.values()) == {"number", "math", "yesno"}


# ---------------------------------------------------------------------------------------------
# number family
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Step 1: 29 + 17 = 46 bags.\nStep 2: 46 * 7 = 322 kg.\nStep 3: The answer is 322.", "322"),
        ("She pays 3 * $411.50 = $1,234.50 in total. The answer is $1,234.50.", "1234.5"),
        ("The farm has 1,000 sheep and 20 dogs. The answer is 1,000.", "1000"),
        ("He is 3 floors below ground. The answer is -3.", "-3"),
        ("The answer is \u22127 degrees.", "-7"),
        ("The answer is 3.", "3"),
        ("The answer is 18.0.", "18"),
        ("The answer is 0.50 dollars.", "0.5"),
        ("The price went up by 50%. The answer is 50%.", "50"),
        ("Each gets half. The answer is 1/2.", "0.5"),
        ("The answer is \\frac{3}{4}.", "0.75"),
        ("So the total is \\boxed{12}. The answer is \\boxed{12}.", "12"),
        ("The answer is 18 dollars.", "18"),
        ("The answer is: 42", "42"),
        ("Therefore:\nThe answer is:\n\n**42**", "42"),
        ("Answer: 72", "72"),
        ("The answer is $-5.", "-5"),
        ("The answer is -$5.", "-5"),
        ("The answer is 1.95766e-05.", "1.95766e-05"),
        ("The answer is 15383937.600000001.", "15383937.600000001"),
        # first "answer is" that is followed by a number; later ones are hallucinated follow-ups
        ("The answer is not obvious yet. 3 + 5 = 8. The answer is 8.", "8"),
        ("The answer is 18.\n\nQuestion: Tom has 5 apples. The answer is 5.", "18"),
        # no marker: the last number of the text; a minus after an operand is a subtraction
        ("He had 10 - 4 = 6 apples left", "6"),
        ("She bought 3 packs of 12 eggs, 3 * 12 = 36 eggs in total", "36"),
        ("The temperature dropped to -5 degrees", "-5"),
        ("So the final answer is $\\boxed{-9867630}$", "-9867630"),
        ("I think it is \\boxed{7}, since 7 * 2 = 14", "7"),
        ("I cannot solve this.", None),
        ("", None),
    ],
)
def test_extract_number(text: str, expected: str | None) -> None:
    assert extract_answer(text, "gsm8k") == expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("18", "18", True),
        ("18", "18.0", True),
        ("18", "$18", True),
        ("1,000", "1000", True),
        ("1/2", "0.5", True),
        ("15383937.600000001", "15383937.6", True),
        ("55938720.00000001", "55938720", True),
        ("-9867630", "-9867630.0", True),
        ("1.95766e-05", "0.0000195766", True),
        ("-25.0000871029", "-25.0000871029", True),
        ("18", "18.5", False),
        ("1000", "1001", False),
        ("-3", "3", False),
        ("0.0023646621", "0.0023", False),
        # two exact integers must match exactly even where rel_tol=1e-6 would accept them
        ("109844510400", "109844510401", False),
    ],
)
def test_number_equivalence(a: str, b: str, expected: bool) -> None:
    assert answers_equal(a, b, "gsmhard") is expected
    assert answers_equal(b, a, "gsmhard") is expected


@pytest.mark.parametrize("dataset", ["gsm8k", "gsmhard", "svamp"])
def test_number_gold_round_trip(dataset: str) -> None:
    failures = []
    for gold in _gold_answers(dataset):
        extracted = extract_answer(f"The answer is {gold}.", dataset)
        if not (answers_equal(extracted, gold, dataset) and answers_equal(gold, gold, dataset)):
            failures.append((gold, extracted))
    assert failures == []


def test_number_canonical_form_of_integer_golds() -> None:
    # gsm8k and svamp golds are plain integers: extraction must reproduce them verbatim
    for gold in ["360", "0", "14000", "574664", "-4"]:
        assert extract_answer(f"The answer is {gold}.", "gsm8k") == gold


# ---------------------------------------------------------------------------------------------
# math family
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("So $x = 1/2$. The answer is \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),
        (
            "First \\boxed{6} was wrong. The answer is "
            "$\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}$.",
            "\\left( 3, \\frac{\\pi}{2} \\right)",
        ),
        ("The answer is \\boxed{\\frac{\\sqrt{3}}{2}} and \\boxed{2}.", "2"),
        ("Hence \\boxed{4}. The answer is 5.", "4"),  # any \boxed beats marker text
        ("The answer is $\\frac{14}{3}$.", "\\frac{14}{3}"),
        ("The answer is $x \\in [-2,7]$.", "x \\in [-2,7]"),
        ("The answer is \\boxed{\\text{(B)}}.", "\\text{(B)}"),
        ("The answer is:\n$$\n\\frac{1}{2}\n$$", "\\frac{1}{2}"),
        (
            "The answer is \\boxed{\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}}.",
            "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}",
        ),
        ("The answer is \\boxed{\\{1, 2\\}}.", "\\{1, 2\\}"),  # escaped braces do not nest
        ("The answer is 3.5.", "3.5"),
        ("The answer is \\boxed 5.", "5"),
        ("The answer is $10\\%$.", "10\\%"),
        ("The answer is \\boxed{12", None),  # truncated generation
        ("I give up.", None),
    ],
)
def test_extract_math(text: str, expected: str | None) -> None:
    assert extract_answer(text, "math500") == expected


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("\\frac{1}{2}", "0.5"),
        ("\\frac{1}{2}", "\\dfrac12"),
        ("\\dfrac{1}{2}", "1/2"),
        ("\\sqrt{2}/2", "\\frac{\\sqrt2}{2}"),
        ("2\\sqrt{5}", "\\sqrt{20}"),
        ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\pi/2)"),
        ("(2,12) \\cup (12,102)", "(12,102)\\cup(2,12)"),
        ("(-\\infty, 0]", "(-\\infty,0]"),
        ("x \\in [-2,7]", "[-2,7]"),
        ("x=5", "5"),
        ("5", "x=5"),
        ("(6,31,-1)", "(6, 31, -1)"),
        ("\\text{(B)}", "B"),
        ("\\text{(C)}", "(C)"),
        ("\\text{Devon}", "Devon"),
        ("10\\%", "10"),
        ("120^\\circ", "120"),
        ("36^{\\circ}", "36"),
        ("864 \\mbox{ inches}^2", "864"),
        ("15\\mbox{ cm}^2", "15"),
        ("6 - 5i", "6-5i"),
        ("\\cot x", "\\frac{\\cos x}{\\sin x}"),
        ("x^5 - x^4 + x^3 - x^2 + x - 1", "x^5-x^4+x^3-x^2+x-1"),
        ("\\$32", "32"),
        ("1,000", "1000"),
    ],
)
def test_math_equivalent(a: str, b: str) -> None:
    assert answers_equal(a, b, "math500")
    assert answers_equal(b, a, "math500")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("\\frac{1}{2}", "\\frac{1}{3}"),
        ("\\frac{14}{3}", "4.67"),
        ("(-\\infty, 0]", "(-\\infty, 0)"),
        ("[1,2)", "[1,2]"),
        ("(1,2)", "(2,1)"),
        ("6-5i", "6+5i"),
        ("\\text{(B)}", "C"),
        ("2k", "2j"),
        ("18", "18.5"),
        ("\\sqrt{2}", "2"),
    ],
)
def test_math_not_equivalent(a: str, b: str) -> None:
    assert not answers_equal(a, b, "math500")
    assert not answers_equal(b, a, "math500")


TRICKY_MATH_GOLDS = [
    "\\begin{pmatrix} 16/49 \\\\ 48/49 \\\\ 24/49 \\end{pmatrix}",
    "\\left( 3, \\frac{\\pi}{2} \\right)",
    "\\left[ \\frac{\\pi^2}{8}, \\frac{5 \\pi^2}{4} \\right]",
    "(2,12) \\cup (12,102)",
    "864 \\mbox{ inches}^2",
    "\\text{(B)}",
    "4343_6",
    "x \\in [-2,7]",
    "120^\\circ",
]


def _check_math_gold_round_trip(golds: list[str]) -> list[tuple[str, str | None]]:
    failures = []
    for gold in golds:
        extracted = extract_answer(f"The answer is \\boxed{{{gold}}}.", "math500")
        ok = (
            extracted == gold
            and answers_equal(gold, gold, "math500")
            and answers_equal(extracted, gold, "math500")
        )
        if not ok:
            failures.append((gold, extracted))
    return failures


def test_math_tricky_golds_round_trip() -> None:
    assert _check_math_gold_round_trip(TRICKY_MATH_GOLDS) == []


def test_math500_gold_round_trip() -> None:
    assert _check_math_gold_round_trip(_gold_answers("math500")) == []


def test_math500_gold_round_trip_from_inline_math() -> None:
    failures = []
    for gold in _gold_answers("math500"):
        extracted = extract_answer(f"Thus the answer is ${gold}$.", "math500")
        if not answers_equal(extracted, gold, "math500"):
            failures.append((gold, extracted))
    assert failures == []


def test_model_output_is_never_evaluated() -> None:
    # sympy.parse_expr would eval() this and raise SystemExit, which nothing would catch.
    assert not answers_equal("__import__('sys').exit(3)", "3", "math")


# ---------------------------------------------------------------------------------------------
# math family: time bounds
# ---------------------------------------------------------------------------------------------

# Expanding/simplifying these takes SymPy many seconds; each test uses its own exponent so the
# verdict cache never answers for it.
SLOW_BUDGET = 0.3
SLOW_LIMIT = 3.0


def _slow_pair(n: int) -> tuple[str, str]:
    return f"(x+1)^{{{n}}}", f"(x+2)^{{{n}}}"


@pytest.fixture
def small_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    answers_equal("1", "\\frac{2}{2}", "math")  # import math-verify/SymPy before timing
    monkeypatch.setattr(answers, "MATH_VERIFY_TIMEOUT", SLOW_BUDGET)


def test_math_timeout_in_worker_threads(small_budget: None) -> None:
    def compare_then_keep_working(n: int) -> tuple[bool, float, int]:
        started = time.monotonic()
        verdict = answers_equal(*_slow_pair(n), "math")
        elapsed = time.monotonic() - started
        # No stray timeout exception may reach the worker after answers_equal returned.
        total = 0
        deadline = time.monotonic() + 2 * SLOW_BUDGET
        while time.monotonic() < deadline:
            total += sum(range(100))
        return verdict, elapsed, total

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(compare_then_keep_working, [2001, 2002, 2003]))
    for verdict, elapsed, total in results:
        assert verdict is False
        assert elapsed < SLOW_LIMIT
        assert total > 0


def test_math_verify_works_in_worker_threads() -> None:
    pairs = [("\\frac{3}{6}", "\\sqrt{1/4}"), ("2\\sqrt{2}", "\\sqrt{8}"), ("\\frac{1}{3}", "0.5")]
    with ThreadPoolExecutor(max_workers=3) as pool:
        verdicts = list(pool.map(lambda pair: answers_equal(*pair, "math"), pairs))
    assert verdicts == [True, True, False]


def test_math_timeout_in_main_thread_restores_outer_timer(small_budget: None) -> None:
    if (
        not hasattr(signal, "setitimer")
        or threading.current_thread() is not threading.main_thread()
    ):
        pytest.skip("needs SIGALRM in the main thread")
    fired: list[int] = []

    def outer_handler(signum: int, frame: object) -> None:
        fired.append(signum)

    previous_handler = signal.signal(signal.SIGALRM, outer_handler)
    previous_timer = signal.setitimer(signal.ITIMER_REAL, 30.0)  # e.g. pytest-timeout's
    try:
        started = time.monotonic()
        assert answers_equal(*_slow_pair(2004), "math") is False
        assert time.monotonic() - started < SLOW_LIMIT
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 30.0 - SLOW_LIMIT < remaining < 30.0
        assert signal.getsignal(signal.SIGALRM) is outer_handler
        assert fired == []
    finally:
        signal.setitimer(signal.ITIMER_REAL, *previous_timer)
        signal.signal(signal.SIGALRM, previous_handler)


def test_math_timeout_inside_asyncio(small_budget: None) -> None:
    async def run() -> tuple[bool, bool]:
        in_loop = answers_equal(*_slow_pair(2005), "math")
        in_thread = await asyncio.to_thread(answers_equal, *_slow_pair(2006), "math")
        return in_loop, in_thread

    started = time.monotonic()
    assert asyncio.run(run()) == (False, False)
    assert time.monotonic() - started < 2 * SLOW_LIMIT


def test_power_towers_never_reach_sympy() -> None:
    # 10**(10**10) is one C call that no watchdog thread can interrupt.
    started = time.monotonic()
    assert not answers_equal("10^{10^{10}}", "5", "math")
    assert not answers_equal("9^{9^9}", "9^{9^9}+1", "math")
    assert answers_equal("10^{10^{10}}", "10^{10^{10}}", "math")  # fast path still works
    assert time.monotonic() - started < 1.0


# ---------------------------------------------------------------------------------------------
# yesno family
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Kane lasted 53:46; Benoit lasted over an hour. The answer is yes.", "yes"),
        ("The answer is: No.", "no"),
        ("The answer is **Yes**", "yes"),
        ("The answer is true.", "yes"),
        ("The answer is False.", "no"),
        ("The answer is correct.", "yes"),
        ("The answer is incorrect.", "no"),
        ("So no. But is that true? Yes", "yes"),  # no marker: the last yes/no/true/false word
        ("This is incorrect", None),  # without a marker correct/incorrect do not count
        ("Maybe.", None),
    ],
)
def test_extract_yesno(text: str, expected: str | None) -> None:
    assert extract_answer(text, "strategyqa") == expected


def test_yesno_equivalence() -> None:
    assert answers_equal("yes", "yes", "strategyqa")
    assert answers_equal("Yes", "true", "strategyqa")
    assert answers_equal("no", "False", "strategyqa")
    assert not answers_equal("yes", "no", "strategyqa")
    for gold in _gold_answers("strategyqa"):
        assert answers_equal(extract_answer(f"The answer is {gold}.", "strategyqa"), gold, "yesno")


# ---------------------------------------------------------------------------------------------
# None handling, grouping and voting
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["gsm8k", "math500", "strategyqa"])
def test_none_never_equals_anything(task: str) -> None:
    assert not answers_equal(None, None, task)
    assert not answers_equal(None, "1", task)
    assert not answers_equal("1", None, task)


def test_group_answers_number() -> None:
    groups = group_answers(["18", None, "18.0", "20", "$18", "20", "19"], "gsm8k")
    assert groups == [[0, 2, 4], [3, 5], [6]]


def test_majority_vote_counts_none_in_denominator() -> None:
    vote = majority_vote(["18", None, "18.0", "20", None], "gsm8k")
    assert vote.answer == "18"
    assert vote.count == 2
    assert vote.confidence == pytest.approx(2 / 5)
    assert vote.groups == [("18", 2, [0, 2]), ("20", 1, [3])]


def test_majority_vote_all_none_and_empty() -> None:
    for votes in ([None, None, None], []):
        vote = majority_vote(votes, "gsm8k")
        assert vote == Vote(answer=None, confidence=0.0, count=0, groups=[])


def test_majority_vote_tie_goes_to_first_occurrence() -> None:
    vote = majority_vote(["7", "5", "5", "7", "3"], "svamp")
    assert vote.answer == "7"
    assert vote.count == 2
    assert [rep for rep, _, _ in vote.groups] == ["7", "5", "3"]
    assert majority_vote(["5", "7", "7", "5"], "svamp").answer == "5"


def test_majority_vote_math_uses_symbolic_equivalence() -> None:
    vote = majority_vote(["0.5", "\\frac{1}{3}", "\\dfrac12", "\\frac{1}{2}", None], "math500")
    assert vote.answer == "0.5"
    assert vote.count == 3
    assert vote.confidence == pytest.approx(3 / 5)
    assert vote.groups == [("0.5", 3, [0, 2, 3]), ("\\frac{1}{3}", 1, [1])]


def test_majority_vote_yesno() -> None:
    vote = majority_vote(["yes", "no", "no", None], "strategyqa")
    assert (vote.answer, vote.count, vote.confidence) == ("no", 2, 0.5)


def test_vote_is_frozen() -> None:
    vote = majority_vote(["1"], "gsm8k")
    assert vote == Vote(answer="1", confidence=1.0, count=1, groups=[("1", 1, [0])])
    with pytest.raises(dataclasses.FrozenInstanceError):
        vote.answer = "2"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is 60 * 6 = 360 hours.", "360"),
        ("The answer is $5 + $3 = $8.", "8"),
        ("So the answer is 2 + 2 = 4 apples, which is even.", "4"),
        ("The answer is 12.", "12"),
    ],
)
def test_number_after_an_equation_in_the_answer_sentence(text, expected):
    assert extract_answer(text, "gsm8k") == expected
