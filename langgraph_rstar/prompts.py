"""Few-shot prompt packs (data files under ``prompts/<family>/``) and the text built from them."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langgraph_rstar.answers import task_family

PACK_FILES = ("steps.txt", "decompose.txt", "rephrase.txt")
PLACEHOLDER = "{{question}}"
REPHRASE_PREFIX = "Given a list of conditions, please answer the question. Condition 1:"


def prompts_root() -> Path:
    """Where the packaged prompt packs live (inside the wheel, or the source checkout)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "prompts", here.parent / "prompts"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("prompt packs not found: the installation is incomplete")


def available_packs() -> list[str]:
    return sorted(p.name for p in prompts_root().iterdir() if (p / "steps.txt").is_file())


@dataclass(frozen=True)
class PromptPack:
    """The templates of one task family. Placeholders are literal ``{{question}}`` markers."""

    name: str
    directory: str
    steps: str
    decompose: str
    rephrase: str
    meta: dict[str, Any]

    def steps_prompt(self, question: str, steps: list[str]) -> str:
        """Prompt for the next step(s): the few-shot template, the steps so far, "Step k:"."""
        body = "".join(f"Step {i}: {s}\n" for i, s in enumerate(steps, 1))
        return _fill(self.steps, question) + body + f"Step {len(steps) + 1}:"

    def decompose_prompt(self, question: str, subqas: list[list[str]]) -> str:
        """Prompt for the next sub-question, after the answered ones."""
        body = "".join(
            f"Sub-question {i}: {q}\nAnswer {i}: {a}\n" for i, (q, a) in enumerate(subqas, 1)
        )
        return _fill(self.decompose, question) + body + f"Sub-question {len(subqas) + 1}:"

    def subanswer_prompt(self, question: str, subqas: list[list[str]], subquestion: str) -> str:
        k = len(subqas) + 1
        return self.decompose_prompt(question, subqas) + f" {subquestion}\nAnswer {k}:"

    def rephrase_prompt(self, question: str) -> str:
        return _fill(self.rephrase, question)


def _fill(template: str, question: str) -> str:
    return template.replace(PLACEHOLDER, question.strip())


def load_prompts(name_or_dir: str | Path | None = None, *, task: str = "gsm8k") -> PromptPack:
    """Load a pack by family name (``math_word``, ``math``, ``yesno``) or from a directory.

    With no name the task's family is used. A user's directory needs the same files as the
    packaged ones (``steps.txt``, ``decompose.txt``, ``rephrase.txt``; ``pack.json`` optional).
    """
    if name_or_dir is None:
        name_or_dir = _family_pack(task)
    return _load(str(name_or_dir))


def _family_pack(task: str) -> str:
    return {"number": "math_word", "math": "math", "yesno": "yesno"}[task_family(task)]


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
    missing = [f for f in PACK_FILES if not (path / f).is_file()]
    if missing:
        raise ValueError(f"prompt pack {path} lacks {', '.join(missing)}")
    texts = {f: (path / f).read_text(encoding="utf-8") for f in PACK_FILES}
    for f in ("steps.txt", "decompose.txt", "rephrase.txt"):
        if PLACEHOLDER not in texts[f]:
            raise ValueError(f"{path / f} has no {PLACEHOLDER} placeholder")
    meta_file = path / "pack.json"
    meta = json.loads(meta_file.read_text(encoding="utf-8")) if meta_file.is_file() else {}
    return PromptPack(
        name=path.name,
        directory=str(path),
        steps=texts["steps.txt"],
        decompose=texts["decompose.txt"],
        rephrase=texts["rephrase.txt"],
        meta=meta,
    )
