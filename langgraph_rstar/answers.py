"""Answer extraction, equivalence and majority voting for each task family.

rStar's prompts teach the model to end every answer with the sentence ``The answer is X.``.
This module turns such free-form model output into a short answer string, decides whether two
answers are the same, and votes over a list of answers. Three task families exist:

* ``number`` (GSM8K, GSM-Hard, SVAMP): a single real number, canonicalised (``"1,234.50"`` ->
  ``"1234.5"``, ``"18.0"`` -> ``"18"``) and compared with a small tolerance.
* ``math`` (MATH-500): a LaTeX expression, usually from ``\\boxed{...}``, compared by a cheap
  normalised-string check first and then by `math-verify`_ (symbolic, via SymPy).
* ``yesno`` (StrategyQA): ``"yes"`` or ``"no"``.

Timeouts for ``math``: SymPy can take arbitrarily long on hostile input, and math-verify's own
timeouts use ``signal.alarm``, which raises ``ValueError`` outside the main thread and, in the main
thread, cancels any alarm set by someone else (for example pytest-timeout). We therefore always
call math-verify with its timeouts disabled and bound each comparison ourselves, with a budget of
:data:`MATH_VERIFY_TIMEOUT` seconds:

* in the main thread, with a one-shot ``SIGALRM`` interval timer that saves and restores any
  timer that was already armed (and its handler);
* in any other thread (``ThreadPoolExecutor``, ``asyncio.to_thread``, LangGraph workers), with a
  watchdog thread that raises an exception in the working thread through CPython's
  ``PyThreadState_SetAsyncExc``.

Both interrupt Python code only between bytecodes. The signal also interrupts CPython's long
integer power loop, but the watchdog cannot interrupt a single long C call such as
``10**(10**10)``; such power towers and huge exponents are therefore refused before SymPy sees
them (they compare by normalised string only). A comparison that times out counts as "not
equal" and the verdict is cached. Calling :func:`answers_equal` from a coroutine blocks the event
loop for up to the budget; use ``asyncio.to_thread`` in latency-sensitive async code.

.. _math-verify: https://github.com/huggingface/Math-Verify
"""

from __future__ import annotations

import ctypes
import logging
import math
import re
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, Literal, TypeVar

__all__ = [
    "MATH_VERIFY_TIMEOUT",
    "TASK_FAMILIES",
    "Family",
    "Vote",
    "answers_equal",
    "extract_answer",
    "group_answers",
    "majority_vote",
    "mentions_answer",
    "states_answer",
    "task_family",
]

Family = Literal["number", "math", "yesno"]

TASK_FAMILIES: dict[str, str] = {
    "gsm8k": "number",
    "gsmhard": "number",
    "svamp": "number",
    "math500": "math",
    "strategyqa": "yesno",
    "number": "number",
    "math": "math",
    "yesno": "yesno",
}

#: Wall-clock budget in seconds for one math-verify comparison (both parses and both
#: verification directions). Read at call time, so it can be changed at run time.
MATH_VERIFY_TIMEOUT: float = 5.0

# Relative/absolute tolerance for numeric answers: GSM-Hard golds carry float noise
# ("15383937.600000001", "55938720.00000001").
_REL_TOL = 1e-6
_ABS_TOL = 1e-6

# Longer "answers" are model rambling; parsing them with SymPy is slow and never helps.
_MAX_MATH_VERIFY_LEN = 1000

_T = TypeVar("_T")


def task_family(task: str) -> str:
    """Return the answer family of a task or family name.

    Args:
        task: A task name (``"gsm8k"``, ``"math500"``, ...) or a family name
            (``"number"``, ``"math"``, ``"yesno"``); case-insensitive.

    Returns:
        ``"number"``, ``"math"`` or ``"yesno"``.

    Raises:
        ValueError: If the name is unknown.
    """
    family = TASK_FAMILIES.get(task.strip().lower()) if isinstance(task, str) else None
    if family is None:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(sorted(TASK_FAMILIES))}")
    return family


# --------------------------------------------------------------------------------------------
# Shared text helpers
# --------------------------------------------------------------------------------------------

# "The answer is", "the final answer is", "Answer:" (small models drift to the latter).
_MARKER_RE = re.compile(r"answer\s+is\b|answer\s*:", re.IGNORECASE)
# End of a sentence: a period not inside a number, "!"/"?", or a line break.
_SENTENCE_END_RE = re.compile(r"\.(?=\s|$)|[!?](?=\s|$)|\n")
_MATH_DELIMS = (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$"))


def _sentence_after(text: str, pos: int) -> str:
    """Return the sentence that starts at ``pos`` (the text right after an answer marker).

    A display-math block right after the marker is kept whole, even across line breaks.
    """
    rest = text[pos:].lstrip(" \t\r\n:*")
    for opening, closing in _MATH_DELIMS:
        if rest.startswith(opening):
            end = rest.find(closing, len(opening))
            if end != -1:
                return rest[: end + len(closing)]
            break
    match = _SENTENCE_END_RE.search(rest)
    return rest[: match.start()] if match else rest


def _boxed_contents(text: str) -> list[str]:
    """Return the contents of every ``\\boxed{...}`` / ``\\fbox{...}``, in order of appearance.

    Braces are matched with a depth counter (escaped ``\\{``/``\\}`` do not count), so nested
    groups such as ``\\boxed{\\frac{1}{2}}`` come out whole. Unclosed boxes (truncated
    generations) are skipped. ``\\boxed 5`` (no braces) yields its next token.
    """
    found: list[str] = []
    for match in re.finditer(r"\\(?:boxed|fbox)(?![A-Za-z])\s*", text):
        start = match.end()
        if start < len(text) and text[start] == "{":
            depth, i = 0, start
            while i < len(text):
                char = text[i]
                if char == "\\":
                    i += 2
                    continue
                if char == "{":
                    depth += 1
                elif char == "}":
                    depth -= 1
                    if depth == 0:
                        found.append(text[start + 1 : i])
                        break
                i += 1
        else:
            token = re.match(r"[^\s$]+", text[start:])
            if token:
                found.append(token.group(0))
    return found


# --------------------------------------------------------------------------------------------
# number family
# --------------------------------------------------------------------------------------------

_NUMBER_RE = re.compile(
    r"""
    \\[dt]?frac\s*\{\s*(?P<fsign>-)?\s*(?P<fnum>\d+(?:\.\d+)?)\s*\}\s*
        \{\s*(?P<fden>\d+(?:\.\d+)?)\s*\}
    |
    (?P<sign>-\s*)?                          # sign, before or after a currency symbol
    (?:\\?\$\s*)?
    (?P<sign2>-\s*)?
    (?P<num>(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+)
    (?:[eE](?P<exp>[-+]?\d+))?
    (?:\s*/\s*(?P<den>\d+(?:\.\d+)?)(?![\d.,/]))?
    """,
    re.VERBOSE,
)
_MINUS_CHARS = str.maketrans({"\u2212": "-", "\ufe63": "-", "\uff0d": "-"})


def _decimal_from_match(text: str, match: re.Match[str]) -> Decimal | None:
    """Turn one :data:`_NUMBER_RE` match into a finite Decimal (``None`` if unusable)."""
    try:
        if match.group("fnum") is not None:
            value = Decimal(match.group("fnum")) / Decimal(match.group("fden"))
            return -value if match.group("fsign") else value
        value = Decimal(match.group("num").replace(",", ""))
        if match.group("exp") is not None:
            exponent = int(match.group("exp"))
            if abs(exponent) > 300:  # beyond float range: not a real answer
                return None
            value = value.scaleb(exponent)
        if match.group("den") is not None:
            value = value / Decimal(match.group("den"))
    except (InvalidOperation, ZeroDivisionError, ValueError):
        return None
    if match.group("sign") or match.group("sign2"):
        # "10 - 4" is a subtraction, not a negative 4: a minus right after an operand is binary.
        before = text[: match.start()].rstrip()
        if not (before and (before[-1].isdigit() or before[-1] in ")]}%")):
            value = -value
    return value if math.isfinite(float(value)) else None


def _numbers_in(text: str) -> list[Decimal]:
    """Return every number in ``text`` in order of appearance."""
    text = text.translate(_MINUS_CHARS)
    values = (_decimal_from_match(text, m) for m in _NUMBER_RE.finditer(text))
    return [v for v in values if v is not None]


def _format_number(value: Decimal) -> str:
    """Canonical string: ``"18"`` for integers, else the shortest float repr (``"0.5"``)."""
    if value == value.to_integral_value() and abs(value) < 10**18:
        return str(int(value))
    return repr(float(value))


def _extract_number(text: str, require_marker: bool = False) -> str | None:
    # In word problems "$" is money, never a math delimiter ("$5 + $3 = $8").
    text = text.replace("$", "")
    markers = list(_MARKER_RE.finditer(text))
    # The first "answer is" that is followed by a number wins: later ones are often a
    # hallucinated continuation (the next few-shot question, a "check" paragraph, ...).
    for marker in markers:
        sentence = _sentence_after(text, marker.end())
        # "The answer is 60 * 6 = 360 hours": the result follows the last "=".
        numbers = _numbers_in(sentence.rsplit("=", 1)[-1]) or _numbers_in(sentence)
        if numbers:
            return _format_number(numbers[0])
    for boxed in reversed(_boxed_contents(text)):
        numbers = _numbers_in(boxed)
        if numbers:
            return _format_number(numbers[0])
    if require_marker:
        return None
    numbers = _numbers_in(text)
    return _format_number(numbers[-1]) if numbers else None


@lru_cache(maxsize=8192)
def _number_value(answer: str) -> Decimal | None:
    """Numeric value of an answer string: a bare number, or whatever extraction finds."""
    text = answer.strip().translate(_MINUS_CHARS)
    match = _NUMBER_RE.fullmatch(text.rstrip(". %"))
    value = _decimal_from_match(text, match) if match else None
    if value is None:
        extracted = _extract_number(text)
        value = Decimal(extracted) if extracted is not None else None
    return value


def _numbers_equal(a: str, b: str) -> bool:
    va, vb = _number_value(a), _number_value(b)
    if va is None or vb is None:
        return va is None and vb is None and a.strip().lower() == b.strip().lower()
    if va == va.to_integral_value() and vb == vb.to_integral_value():
        # Two exact integers carry no float noise: 109844510400 != 109844510401.
        return va == vb
    return math.isclose(float(va), float(vb), rel_tol=_REL_TOL, abs_tol=_ABS_TOL)


# --------------------------------------------------------------------------------------------
# yesno family
# --------------------------------------------------------------------------------------------

_YESNO_MAP = {
    "yes": "yes",
    "true": "yes",
    "correct": "yes",
    "no": "no",
    "false": "no",
    "incorrect": "no",
}
_YESNO_MARKED_RE = re.compile(r"\b(yes|no|true|false|correct|incorrect)\b", re.IGNORECASE)
# Without a marker, "correct"/"incorrect" are too common in reasoning to be trusted.
_YESNO_BARE_RE = re.compile(r"\b(yes|no|true|false)\b", re.IGNORECASE)


def _extract_yesno(text: str, require_marker: bool = False) -> str | None:
    for marker in _MARKER_RE.finditer(text):
        match = _YESNO_MARKED_RE.search(_sentence_after(text, marker.end()))
        if match:
            return _YESNO_MAP[match.group(1).lower()]
    if require_marker:
        return None
    matches = _YESNO_BARE_RE.findall(text)
    return _YESNO_MAP[matches[-1].lower()] if matches else None


def _yesno_value(answer: str) -> str | None:
    word = answer.strip().strip(" .!*\"'()").lower()
    return _YESNO_MAP.get(word) or _extract_yesno(answer)


# --------------------------------------------------------------------------------------------
# math family: extraction
# --------------------------------------------------------------------------------------------


def _strip_math_answer(answer: str) -> str:
    """Remove math delimiters, markdown bold and trailing punctuation around a LaTeX answer."""
    answer = answer.strip()
    for opening, closing in _MATH_DELIMS:
        if answer.startswith(opening) and answer.endswith(closing) and len(answer) > 1:
            answer = answer[len(opening) : len(answer) - len(closing)]
            break
    answer = re.sub(r"(?<!\\)\$", "", answer)  # inline-math dollars; keep "\$" (currency)
    answer = answer.strip().strip("*").strip()
    return re.sub(r"(?<!\\)[.:,;]+$", "", answer).strip()


def _extract_math(text: str) -> str | None:
    markers = list(_MARKER_RE.finditer(text))
    boxed: list[str] = []
    if markers:
        boxed = _boxed_contents(text[markers[-1].end() :])
    if not boxed:
        boxed = _boxed_contents(text)
    if boxed:
        answer = _strip_math_answer(boxed[-1])
    elif markers:
        sentence = _sentence_after(text, markers[-1].end())
        if re.search(r"\\(?:boxed|fbox)(?![A-Za-z])", sentence):
            return None  # an unclosed \boxed{: the generation was cut off mid-answer
        answer = _strip_math_answer(sentence)
    else:
        return None
    return answer or None


# --------------------------------------------------------------------------------------------
# math family: normalisation and the cheap fast path
# --------------------------------------------------------------------------------------------

_TEXT_CMD = r"\\(?:text|textrm|textnormal|textbf|textit|mbox|mathrm)\s*"
# A trailing unit such as "\text{ cm}^2" or "\mbox{ inches}" after a value.
_TRAILING_UNIT_RE = re.compile(
    rf"^(?P<body>.*\S)\s*{_TEXT_CMD}\{{\s*[A-Za-z][A-Za-z .]*\}}"
    r"\s*(?:\^\s*\{?\s*[23]\s*\}?)?\s*$",
    re.DOTALL,
)
_TEXT_GROUP_RE = re.compile(rf"{_TEXT_CMD}\{{([^{{}}]*)\}}")
_SIZING_RE = re.compile(r"\\(?:left|right|bigl|bigr|Bigl|Bigr|big|Big|bigg|Bigg)(?![A-Za-z])")
_SPACING_RE = re.compile(r"\\[!,;: ]|\\quad(?![A-Za-z])|\\qquad(?![A-Za-z])|~")
_DEGREE_RE = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°")
_THOUSANDS_RE = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_PLAIN_NUMBER_RE = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?")


@lru_cache(maxsize=8192)
def _clean_math(answer: str) -> str:
    """Meaning-preserving LaTeX clean-up shared by the fast path and math-verify.

    Drops delimiters, ``\\left``/``\\right``, spacing commands, degrees, percent signs,
    currency, a trailing ``\\text{unit}``, and unwraps other ``\\text{...}`` groups.
    """
    s = _strip_math_answer(answer)
    s = s.replace("\\$", "").replace("$", "")
    s = _SIZING_RE.sub("", s)
    s = _SPACING_RE.sub(" ", s)
    s = _DEGREE_RE.sub("", s)
    s = re.sub(r"\\[dt]frac(?![A-Za-z])", r"\\frac", s)
    s = s.replace("\\%", "").replace("%", "")
    for _ in range(3):  # "5 \text{ cm} \text{ long}"
        unit = _TRAILING_UNIT_RE.match(s)
        if not unit:
            break
        s = unit.group("body")
    s = _TEXT_GROUP_RE.sub(lambda m: m.group(1), s)
    s = s.strip().rstrip(".").strip()
    if _THOUSANDS_RE.fullmatch(s):
        s = s.replace(",", "")
    return s


@lru_cache(maxsize=8192)
def _squash_math(answer: str) -> str:
    """Whitespace-free form of :func:`_clean_math` for exact comparison (``\\frac12`` fixed)."""
    s = re.sub(r"\s+", "", _clean_math(answer))
    s = re.sub(r"\\frac(\w)(\w)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\frac(\{[^{}]*\})(\w)", r"\\frac\1{\2}", s)
    s = re.sub(r"\\frac(\w)(\{)", r"\\frac{\1}\2", s)
    s = re.sub(r"\\sqrt(\w)", r"\\sqrt{\1}", s)
    choice = re.fullmatch(r"\(?([A-E])\)?|\(([a-e])\)", s)  # multiple choice: "(B)" == "B"
    if choice:
        s = (choice.group(1) or choice.group(2)).upper()
    return s


def _looks_explosive(s: str) -> bool:
    """True for inputs whose SymPy evaluation can run inside one uninterruptible C call.

    ``10^{10^{10}}`` makes SymPy compute the integer exactly; a watchdog thread cannot stop
    that, so power towers and exponents above 10**4 never reach SymPy.
    """
    if re.search(r"\^\s*\{[^}]*\^", s) or re.search(r"\^\s*\w+\s*\^", s):
        return True
    for exponent in re.findall(r"\^\s*\{?\s*-?(\d[\d,]*)", s):
        if len(exponent.replace(",", "")) > 4:
            return True
    return re.search(r"\d{5,}\s*!", s) is not None  # large factorials


# --------------------------------------------------------------------------------------------
# math family: math-verify under a deadline
# --------------------------------------------------------------------------------------------


class _Deadline(BaseException):
    """Raised into a computation that ran out of time.

    A BaseException so that math-verify's and SymPy's ``except Exception`` blocks let it through
    instead of carrying on with the next strategy.
    """


class _DropTimeoutDisabledWarning(logging.Filter):
    """math-verify warns once that its timeout is disabled; we bound the time ourselves."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Timeout is disabled")


@lru_cache(maxsize=1)
def _math_verify() -> tuple[Callable[..., Any], Callable[..., Any], list[Any]]:
    """Import math-verify lazily (it pulls in SymPy, ~1 s) and outside any deadline.

    An import interrupted half-way would leave broken modules in ``sys.modules``.
    """
    from math_verify import LatexExtractionConfig, parse, verify

    for name in ("math_verify.parser", "math_verify.grader"):
        logging.getLogger(name).addFilter(_DropTimeoutDisabledWarning())
    # LaTeX extraction only: ExprExtractionConfig goes through sympy.parse_expr, i.e. eval().
    return parse, verify, [LatexExtractionConfig(boxed_match_priority=0)]


try:
    _set_async_exc: Callable[..., int] | None = ctypes.pythonapi.PyThreadState_SetAsyncExc
except AttributeError:  # not CPython
    _set_async_exc = None


def _call_with_deadline(fn: Callable[[], _T], seconds: float, default: _T) -> _T:
    """Run ``fn()``; return ``default`` if it has not finished after ``seconds``.

    Uses ``SIGALRM`` in the main thread and an async-exception watchdog elsewhere (see the
    module docstring). Without either mechanism (non-CPython worker threads) ``fn`` runs
    unbounded.
    """
    if seconds <= 0:
        return fn()
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
        try:
            return _call_with_sigalrm(fn, seconds, default)
        except _SignalUnavailable:
            pass
    if _set_async_exc is not None:
        return _call_with_watchdog(fn, seconds, default)
    return fn()


class _SignalUnavailable(Exception):
    """Signal handlers cannot be installed here (e.g. a sub-interpreter)."""


def _call_with_sigalrm(fn: Callable[[], _T], seconds: float, default: _T) -> _T:
    outer_delay, _ = signal.getitimer(signal.ITIMER_REAL)
    if 0 < outer_delay <= seconds:
        # Someone else's timer (e.g. pytest-timeout) fires first anyway: leave it alone.
        return fn()
    armed = [True]

    def on_alarm(signum: int, frame: Any) -> None:
        if armed[0]:  # one shot: a late signal during clean-up must not escape
            armed[0] = False
            raise _Deadline

    try:
        previous_handler = signal.signal(signal.SIGALRM, on_alarm)
    except ValueError as exc:
        raise _SignalUnavailable from exc
    outer_interval = 0.0
    started = time.monotonic()
    try:
        try:
            outer_delay, outer_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
            return fn()
        finally:
            armed[0] = False
    except _Deadline:
        return default
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_handler)
        if outer_delay > 0:  # give the outer timer back what is left of it
            remaining = max(outer_delay - (time.monotonic() - started), 1e-3)
            signal.setitimer(signal.ITIMER_REAL, remaining, outer_interval)


def _call_with_watchdog(fn: Callable[[], _T], seconds: float, default: _T) -> _T:
    assert _set_async_exc is not None
    thread_id = ctypes.c_ulong(threading.get_ident())
    lock = threading.Lock()
    finished = threading.Event()
    state = {"done": False, "fired": False}

    def watchdog() -> None:
        if finished.wait(seconds):
            return
        with lock:  # never fire once the caller has left the guarded region
            if not state["done"]:
                state["fired"] = True
                _set_async_exc(thread_id, ctypes.py_object(_Deadline))

    threading.Thread(target=watchdog, name="rstar-answers-deadline", daemon=True).start()
    try:
        try:
            return fn()
        finally:
            finished.set()
            with lock:
                state["done"] = True
                if state["fired"]:
                    # Fired but maybe not delivered yet: cancel it so it cannot hit later code.
                    _set_async_exc(thread_id, None)
    except _Deadline:
        return default


@lru_cache(maxsize=4096)
def _mv_parse(latex: str) -> tuple[Any, ...]:
    parse, _, config = _math_verify()
    return tuple(parse(f"${latex}$", extraction_config=config, parsing_timeout=None))


def _mv_compare(a: str, b: str) -> bool:
    _, verify, _ = _math_verify()
    parsed_a, parsed_b = list(_mv_parse(a)), list(_mv_parse(b))
    if not parsed_a or not parsed_b:
        return False
    # verify() is asymmetric (gold "x=5" accepts "5"); answers_equal is meant to be symmetric.
    return bool(
        verify(parsed_a, parsed_b, timeout_seconds=None)
        or verify(parsed_b, parsed_a, timeout_seconds=None)
    )


@lru_cache(maxsize=16384)
def _math_verify_equal(a: str, b: str) -> bool:
    """Symbolic equality of two cleaned answers; called with ``a <= b`` so the cache is shared.

    Timeouts and errors are cached as ``False`` on purpose: voting compares the same pairs
    many times, and re-running a slow comparison would only time out again.
    """
    if _looks_explosive(a) or _looks_explosive(b):
        return False
    if max(len(a), len(b)) > _MAX_MATH_VERIFY_LEN:
        return False
    _math_verify()  # import before the clock starts

    def compare() -> bool:
        try:
            return _mv_compare(a, b)
        except Exception:  # a parser bug must not break voting
            return False

    return _call_with_deadline(compare, MATH_VERIFY_TIMEOUT, False)


def _plain_float(s: str) -> float | None:
    if not _PLAIN_NUMBER_RE.fullmatch(s):
        return None
    value = float(s)
    return value if math.isfinite(value) else None


def _math_equal(a: str, b: str) -> bool:
    squashed_a, squashed_b = _squash_math(a), _squash_math(b)
    if not squashed_a or not squashed_b:
        return False
    if squashed_a == squashed_b:
        return True
    float_a, float_b = _plain_float(squashed_a), _plain_float(squashed_b)
    if float_a is not None and float_b is not None:
        # Two plain numbers: decide here, SymPy would only be slower.
        return math.isclose(float_a, float_b, rel_tol=_REL_TOL, abs_tol=_ABS_TOL)
    clean_a, clean_b = sorted((_clean_math(a), _clean_math(b)))
    return _math_verify_equal(clean_a, clean_b)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def extract_answer(text: str, task: str, *, require_marker: bool = False) -> str | None:
    """Extract the final answer from a model output.

    Args:
        text: Model output, normally ending with "The answer is X.".
        task: Task or family name, see :data:`TASK_FAMILIES`.
        require_marker: Only an answer the text *states* counts ("answer is ...", "Answer:",
            ``\\boxed{}``); without one the result is ``None`` instead of the last number (or
            yes/no word) in the text. rStar reads model samples this way.

    Returns:
        ``number``: a canonical number string (``"18"``, ``"0.5"``, ``"-3"``, ``"1234.5"``):
        the first number after the first "answer is" that has one, else the last
        ``\\boxed{}`` holding a number, else the last number in the text.
        ``math``: the LaTeX of the last ``\\boxed{}`` after the last "answer is" (else the last
        ``\\boxed{}`` anywhere, else the rest of that sentence), without ``$`` delimiters.
        ``yesno``: ``"yes"`` or ``"no"``.
        ``None`` if nothing answer-like is found.

    Raises:
        ValueError: If the task is unknown.
    """
    family = task_family(task)
    if not text:
        return None
    if family == "number":
        return _extract_number(text, require_marker)
    if family == "math":
        return _extract_math(text)
    return _extract_yesno(text, require_marker)


def states_answer(text: str) -> bool:
    """Whether ``text`` contains an answer statement ("answer is", "Answer:", ``\\boxed{}``)."""
    return bool(_MARKER_RE.search(text)) or bool(_boxed_contents(text))


def mentions_answer(text: str, answer: str | None, task: str) -> bool:
    """Whether ``text`` shows ``answer`` anywhere: any number equal to it (``number``), its
    normalised LaTeX or a stated equal answer (``math``), or the yes/no word (``yesno``).

    The discriminator's masks are cut before the first step that mentions the candidate's
    answer, so the discriminator must reach it on its own.
    """
    if answer is None or not text:
        return False
    family = task_family(task)
    squashed = _squash_math(answer) if family == "math" else ""
    if family == "number" or _plain_float(squashed) is not None:
        if _number_value(answer) is None:
            return False
        return any(
            _numbers_equal(_format_number(v), answer) for v in _numbers_in(text.replace("$", ""))
        )
    if family == "math":
        # A symbolic answer: its normalised LaTeX inside the text, or an equal stated answer.
        if len(squashed) >= 2 and squashed in re.sub(r"\s+", "", _clean_math(text)):
            return True
        stated = _extract_math(text)
        return stated is not None and _math_equal(stated, answer)
    value = _yesno_value(answer)
    return value is not None and any(
        _YESNO_MAP[w.lower()] == value for w in _YESNO_BARE_RE.findall(text)
    )


def answers_equal(a: str | None, b: str | None, task: str) -> bool:
    """Decide whether two answers (extracted answers or gold strings) are equivalent.

    Args:
        a: First answer; ``None`` (no answer) never equals anything, not even ``None``.
        b: Second answer.
        task: Task or family name, see :data:`TASK_FAMILIES`.

    Returns:
        ``number``: whether both values agree (exactly for two integers, else within
        ``rel_tol=abs_tol=1e-6``). ``math``: normalised-string equality, else numeric
        closeness of two plain numbers, else math-verify (either direction), bounded by
        :data:`MATH_VERIFY_TIMEOUT`. ``yesno``: same ``"yes"``/``"no"`` after mapping
        true/false/correct/incorrect.

    Raises:
        ValueError: If the task is unknown.
    """
    family = task_family(task)
    if a is None or b is None:
        return False
    if family == "number":
        return _numbers_equal(a, b)
    if family == "math":
        return _math_equal(a, b)
    va, vb = _yesno_value(a), _yesno_value(b)
    if va is None or vb is None:
        return va is None and vb is None and a.strip().lower() == b.strip().lower()
    return va == vb


def group_answers(answers: Sequence[str | None], task: str) -> list[list[int]]:
    """Partition answers into equivalence classes.

    Greedy: each answer joins the first existing group whose representative (its first member)
    it equals, otherwise it starts a new group. ``None`` answers belong to no group.

    Args:
        answers: Answers, e.g. from :func:`extract_answer`.
        task: Task or family name.

    Returns:
        Lists of indices into ``answers``, ascending within a group; groups are in order of
        their first member.

    Raises:
        ValueError: If the task is unknown.
    """
    task_family(task)
    groups: list[list[int]] = []
    by_text: dict[str, int] = {}  # identical strings skip the (possibly symbolic) comparison
    for index, answer in enumerate(answers):
        if answer is None:
            continue
        group_index = by_text.get(answer)
        if group_index is None:
            for candidate, group in enumerate(groups):
                if answers_equal(answers[group[0]], answer, task):
                    group_index = candidate
                    break
        if group_index is None:
            group_index = len(groups)
            groups.append([])
        groups[group_index].append(index)
        by_text[answer] = group_index
    return groups


@dataclass(frozen=True)
class Vote:
    """Outcome of :func:`majority_vote`.

    Attributes:
        answer: Representative (first occurrence) of the winning group; ``None`` if no answer
            was given at all.
        confidence: ``count / len(answers)``; ``None`` answers count in the denominator.
        count: Size of the winning group.
        groups: ``(representative, count, indices)`` per group, largest first, ties broken by
            first occurrence.
    """

    answer: str | None
    confidence: float
    count: int
    groups: list[tuple[str, int, list[int]]]


def majority_vote(answers: Sequence[str | None], task: str) -> Vote:
    """Vote over answers by equivalence class.

    Args:
        answers: Answers, ``None`` for paths that produced none.
        task: Task or family name.

    Returns:
        The winning group; on a tie the group whose first member comes first wins.

    Raises:
        ValueError: If the task is unknown.
    """
    groups = group_answers(answers, task)
    # Groups are already in first-occurrence order; sort() is stable.
    ranked = sorted(groups, key=len, reverse=True)
    summary = [(answers[g[0]], len(g), g) for g in ranked]
    if not summary:
        return Vote(answer=None, confidence=0.0, count=0, groups=[])
    representative, count, _ = summary[0]
    assert representative is not None
    return Vote(
        answer=representative,
        confidence=count / len(answers),
        count=count,
        groups=[(str(rep), n, idx) for rep, n, idx in summary],
    )
