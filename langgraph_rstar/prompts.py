"""Prompt packs: the whole prompt format as data, and the one renderer/parser for it.

A pack is a folder under ``prompts/`` (or any directory) holding few-shot templates and a
``pack.json`` that names them and carries the format: the labels the code writes ("Step k:",
"Sub-question k:", "Question 5.k:", ...), the stop strings of each prompt kind, the rephrase
prefix, the hint wording and the style of a full solution ("steps": one "Step k:" line per step;
"paragraph": free text after an opener such as "Let's think step by step."). Code never spells a
label: it asks the pack to render one, and it asks the pack to strip every label before it reads
an answer, so a number in "Step 3:" can never become an answer.

Two pack styles ship per task family: ``<family>`` (compact, for CPU budgets) and
``<family>_reference`` (the format of the paper's released code: Alpaca-style instruction /
response template, a separate one-step prompt, RAP-style "Question 5.k" decomposition).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from langgraph_rstar.answers import extract_answer, states_answer, task_family

PLACEHOLDER = "{{question}}"
PromptStyle = Literal["compact", "reference"]
PROMPT_STYLES: tuple[str, ...] = ("compact", "reference")
SolutionStyle = Literal["steps", "paragraph"]

# Defaults = the compact format, so a pack.json without a "format" (0.1 packs) still loads.
_DEFAULT_PROMPTS: dict[str, dict[str, Any]] = {
    "solve": {"file": "steps.txt", "style": "steps", "stop": ["\n\n", "Question:"]},
    "one_step": {"file": "steps.txt", "stop": ["\n", "Question:"]},
    "continue": {"stop": ["\n\n", "Question:", "Original question:", "Sub-question"]},
    "decompose": {
        "file": "decompose.txt",
        "stop_subquestion": ["\n", "Answer"],
        "stop_subanswer": ["\n", "Sub-question", "Question:"],
    },
    "rephrase": {"file": "rephrase.txt", "stop": ["\n"]},
}
_DEFAULT_LABELS: dict[str, Any] = {
    "step": "Step {i}:",
    "subquestion": "Sub-question {i}:",
    "subanswer": "Answer {i}:",
    "final_subquestion": "Now we can answer the question:",
    "rephrase_prefix": "Given a list of conditions, please answer the question. Condition 1:",
    "hint_steps": "Hint: {steps}",
    "hint_subquestion": "Hint {i}: {subquestion} {subanswer}",
    "strip": [],
}
_SENTENCE_SPLIT_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\\$])")


def prompts_root() -> Path:
    """Where the packaged prompt packs live (inside the wheel, or the source checkout)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "prompts", here.parent / "prompts"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("prompt packs not found: the installation is incomplete")


def available_packs() -> list[str]:
    return sorted(p.name for p in prompts_root().iterdir() if (p / "pack.json").is_file())


def _label_regex(template: str) -> str:
    """'Question 5.{i}:' -> a regex matching it for any index."""
    head, _, tail = template.partition("{i}")
    return re.escape(head) + (r"\s*\d+" + re.escape(tail) if "{i}" in template else "")


# Actions, votes and the discriminator read the same sample's answer several times (trim,
# vote, candidates): remembered per (pack labels, text, task). Bounded; thread-safe.
# (4096 samples of a few KB at most: a few MB.)
@functools.lru_cache(maxsize=4096)
def _stated_answer(label_re: re.Pattern[str], text: str, task: str) -> str | None:
    return extract_answer(_strip_labels(label_re, text), task, require_marker=True)


def _strip_labels(label_re: re.Pattern[str], text: str) -> str:
    return re.sub(r"[ \t]{2,}", " ", label_re.sub(" ", text)).strip()


@dataclass(frozen=True)
class PromptPack:
    """One pack: templates, labels, stops, and the renderer/parser every action uses.

    Example:
        >>> pack = load_prompts(task="gsm8k")
        >>> pack.step_prompt("What is 2 + 3?", ["2 + 3 = 5."]).endswith("Step 2:")
        True
        >>> pack.answer("Step 2: The answer is 5.", "gsm8k")
        '5'
        >>> pack.answer("Step 7:", "gsm8k") is None  # a label is never an answer
        True
    """

    name: str
    directory: str
    family: str
    templates: Mapping[str, str]  # prompt kind -> template text with {{question}}
    stops: Mapping[str, tuple[str, ...]]
    solve_style: SolutionStyle
    labels: Mapping[str, Any]
    meta: Mapping[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ labels and rendering

    def label(self, kind: str, i: int) -> str:
        """The label the code writes: ``label("step", 3)`` -> ``"Step 3:"``."""
        return str(self.labels[kind]).format(i=i)

    def render_steps(self, steps: Sequence[str], first: int = 1) -> str:
        """The one renderer of step lists: ``"Step 1: a\\nStep 2: b"`` (no trailing newline)."""
        return "\n".join(f"{self.label('step', i)} {s}" for i, s in enumerate(steps, first))

    def render_solution(self, steps: Sequence[str]) -> str:
        """A whole trajectory in the pack's solution style (what the discriminator continues)."""
        if self.solve_style == "paragraph":
            return " ".join(s.strip() for s in steps)
        return self.render_steps(steps)

    @functools.cached_property
    def _label_re(self) -> re.Pattern[str]:
        parts = [_label_regex(str(self.labels[k])) for k in ("step", "subquestion", "subanswer")]
        parts += [re.escape(s) for s in self.labels.get("strip") or []]
        return re.compile(r"(?:" + "|".join(parts) + r")\s*", re.IGNORECASE)

    def strip_labels(self, text: str) -> str:
        """Remove every label the code writes (and the pack's openers), wherever they appear."""
        return _strip_labels(self._label_re, text)

    def answer(self, text: str, task: str) -> str | None:
        """The answer a model's own words state, or ``None``. Labels are removed first and an
        answer must be stated ("The answer is ...", ``\\boxed{}``): a bare number is not one."""
        return _stated_answer(self._label_re, text, task)

    def states_answer(self, text: str) -> bool:
        """Whether the text has an answer statement ("answer is", ``\\boxed{}``)."""
        return states_answer(self.strip_labels(text))

    # ------------------------------------------------------------------ prompts

    def _fill(self, kind: str, question: str) -> str:
        return self.templates[kind].replace(PLACEHOLDER, question.strip())

    def step_prompt(self, question: str, steps: Sequence[str]) -> str:
        """A1 (and A2 in ``continue`` mode): the one-step template, the steps so far, "Step k:"."""
        body = "".join(f"{self.label('step', i)} {s}\n" for i, s in enumerate(steps, 1))
        return self._fill("one_step", question) + body + self.label("step", len(steps) + 1)

    def solve_prompt(self, question: str, steps: Sequence[str] = (), hint: str | None = None):
        """A full solution from the solve template (A2 ``resolve``, A4, CoT/SC baselines, and the
        discriminator): the question (plus a hint), then the steps already shown, then the cue
        for the rest."""
        instruction = f"{question.strip()}\n\n{hint}" if hint else question
        head = self._fill("solve", instruction)
        if self.solve_style == "paragraph":
            return head + "".join(f" {s.strip()}" for s in steps)
        body = "".join(f"{self.label('step', i)} {s}\n" for i, s in enumerate(steps, 1))
        return head + body + self.label("step", len(steps) + 1)

    def hint(self, steps: Sequence[str], subqas: Sequence[Sequence[str]]) -> str | None:
        """What A2 ``resolve`` adds to the question: the sub-questions or the steps so far."""
        if subqas and len(steps) <= len(subqas):
            return "\n".join(
                str(self.labels["hint_subquestion"]).format(i=i, subquestion=q, subanswer=a)
                for i, (q, a) in enumerate(subqas, 1)
            )
        if steps:
            return str(self.labels["hint_steps"]).format(steps=" ".join(steps))
        return None

    def decompose_prompt(self, question: str, subqas: Sequence[Sequence[str]]) -> str:
        """A3: the decomposition template, the answered pairs, then the next sub-question label."""
        body = "".join(
            f"{self.label('subquestion', i)} {q}\n{self.label('subanswer', i)} {a}\n"
            for i, (q, a) in enumerate(subqas, 1)
        )
        return self._fill("decompose", question) + body + self.label("subquestion", len(subqas) + 1)

    def subanswer_prompt(
        self, question: str, subqas: Sequence[Sequence[str]], subquestion: str
    ) -> str:
        k = len(subqas) + 1
        return (
            self.decompose_prompt(question, subqas)
            + f" {subquestion.strip()}\n{self.label('subanswer', k)}"
        )

    def rephrase_prompt(self, question: str) -> str:
        return self._fill("rephrase", question)

    def rephrased(self, completion: str) -> str:
        """The rephrased question: the prefix the prompt ends with, then the model's text."""
        return f"{self.labels['rephrase_prefix']} {completion.strip()}"

    def is_final_subquestion(self, subquestion: str, question: str) -> bool:
        """A sub-question that restates the question ends the decomposition (rStar's rule)."""
        text = subquestion.lower()
        if str(self.labels["final_subquestion"]).lower().rstrip(":") in text:
            return True
        sentences = [s.strip() for s in question.replace("?", "?.").split(".") if s.strip()]
        last = sentences[-1].lower() if sentences else ""
        return len(last) > 10 and last in text

    # ------------------------------------------------------------------ parsing completions

    def parse_steps(self, completion: str) -> list[str]:
        """A completion that continues after a "Step k:" label -> its step texts, unlabeled."""
        lines = [self.strip_labels(line) for line in completion.split("\n")]
        return [line for line in lines if line]

    def parse_solution(self, completion: str) -> list[str]:
        """A completion of the solve prompt -> step texts in order, labels removed."""
        if self.solve_style == "steps":
            return self.parse_steps(completion)
        text = self.strip_labels(" ".join(completion.split()))
        return [s.strip() for s in _SENTENCE_SPLIT_RE.split(text) if s.strip()]


def load_prompts(
    name_or_dir: str | Path | None = None,
    *,
    task: str = "gsm8k",
    style: str = "compact",
) -> PromptPack:
    """Load a pack by name (``math_word``, ``math_word_reference``, ...) or from a directory.

    With no name the task's family pack in ``style`` ("compact" or "reference") is used.
    """
    if name_or_dir is None:
        name_or_dir = family_pack(task, style)
    return _load(str(name_or_dir))


def family_pack(task: str, style: str = "compact") -> str:
    if style not in PROMPT_STYLES:
        raise ValueError(f"unknown prompt style {style!r}; known: {', '.join(PROMPT_STYLES)}")
    family = {"number": "math_word", "math": "math", "yesno": "yesno"}[task_family(task)]
    return family if style == "compact" else f"{family}_reference"


def _merged(defaults: Mapping[str, Any], given: Mapping[str, Any] | None) -> dict[str, Any]:
    out = {k: dict(v) if isinstance(v, Mapping) else v for k, v in defaults.items()}
    for key, value in (given or {}).items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key].update(value)
        else:
            out[key] = value
    return out


@functools.lru_cache(maxsize=32)
def _load(name_or_dir: str) -> PromptPack:
    path = Path(name_or_dir)
    if not path.is_dir():
        path = prompts_root() / name_or_dir
        if not path.is_dir():
            raise ValueError(
                f"unknown prompt pack {name_or_dir!r}: not a directory and not one of "
                f"{', '.join(available_packs())}"
            )
    meta_file = path / "pack.json"
    meta = json.loads(meta_file.read_text(encoding="utf-8")) if meta_file.is_file() else {}
    fmt = meta.get("format") or {}
    prompts = _merged(_DEFAULT_PROMPTS, fmt.get("prompts"))
    labels = _merged(_DEFAULT_LABELS, fmt.get("labels"))
    for kind in ("step", "subquestion", "subanswer"):
        if "{i}" not in str(labels[kind]):
            raise ValueError(f"{meta_file}: label {kind!r} needs an {{i}} placeholder")
    templates: dict[str, str] = {}
    for kind in ("solve", "one_step", "decompose", "rephrase"):
        file = path / str(prompts[kind]["file"])
        if not file.is_file():
            raise ValueError(f"prompt pack {path} lacks {file.name} (its {kind!r} template)")
        text = file.read_text(encoding="utf-8")
        if PLACEHOLDER not in text:
            raise ValueError(f"{file} has no {PLACEHOLDER} placeholder")
        templates[kind] = text
    style = prompts["solve"].get("style", "steps")
    if style not in ("steps", "paragraph"):
        raise ValueError(f"{meta_file}: solve style must be 'steps' or 'paragraph', not {style!r}")
    stops = {
        "solve": tuple(prompts["solve"]["stop"]),
        "one_step": tuple(prompts["one_step"]["stop"]),
        "continue": tuple(prompts["continue"]["stop"]),
        "subquestion": tuple(prompts["decompose"]["stop_subquestion"]),
        "subanswer": tuple(prompts["decompose"]["stop_subanswer"]),
        "rephrase": tuple(prompts["rephrase"]["stop"]),
    }
    return PromptPack(
        name=path.name,
        directory=str(path),
        family=str(meta.get("family", "")),
        templates=templates,
        stops=stops,
        solve_style=style,
        labels=labels,
        meta=meta,
    )
