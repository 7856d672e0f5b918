"""Evaluation datasets: JSONL files of ``id``, ``question``, ``answer``."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

from langgraph_rstar.eval.errors import EvalError

__all__ = ["DATASETS", "Item", "load_dataset"]

DATASETS: tuple[str, ...] = ("gsm8k", "gsmhard", "math500", "svamp", "strategyqa")


@dataclasses.dataclass(frozen=True)
class Item:
    """One evaluation question.

    Attributes:
        id: Stable id, unique within the file.
        question: The problem text given to the model.
        gold: The gold answer; only read after the prediction is made, to score it.
    """

    id: str
    question: str
    gold: str


def load_dataset(path: str | os.PathLike[str], limit: int | None = None) -> list[Item]:
    """Read a JSONL data file (``id``, ``question``, ``answer`` per line; extra fields ignored).

    Args:
        path: The ``.jsonl`` file.
        limit: Keep only the first ``limit`` questions (file order).

    Returns:
        The questions in file order.

    Raises:
        EvalError: The file is missing or empty, a line is not a JSON object, lacks a field,
            has an empty question, or repeats an id.
    """
    file = Path(path)
    if not file.is_file():
        raise EvalError(f"data file {str(file)!r} not found")
    items: list[Item] = []
    seen: set[str] = set()
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalError(f"cannot read data file {str(file)!r}: {exc}") from exc
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalError(f"{file}:{lineno}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise EvalError(f"{file}:{lineno}: expected a JSON object with id, question, answer")
        missing = [k for k in ("id", "question", "answer") if row.get(k) in (None, "")]
        if missing:
            raise EvalError(
                f"{file}:{lineno}: missing field(s) {', '.join(missing)} "
                "(every line needs id, question and answer)"
            )
        if not isinstance(row["question"], str) or not row["question"].strip():
            raise EvalError(f"{file}:{lineno}: 'question' must be a non-empty string")
        item_id = str(row["id"])
        if item_id in seen:
            raise EvalError(f"{file}:{lineno}: duplicate id {item_id!r}")
        seen.add(item_id)
        items.append(Item(item_id, row["question"], str(row["answer"])))
        if limit is not None and len(items) >= limit:
            break
    if not items:
        raise EvalError(f"data file {str(file)!r} has no questions")
    return items


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
