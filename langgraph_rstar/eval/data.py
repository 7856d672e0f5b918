"""Evaluation datasets: this package's JSONL format, and the public datasets' own files.

The native format is JSONL, one object per line with ``id``, ``question`` and ``answer`` (the
gold final answer as a string: a plain number for GSM8K / GSM-Hard / SVAMP, the LaTeX answer for
MATH-500, ``yes`` / ``no`` for StrategyQA); other fields are ignored. The public releases load
as they are, from ``.jsonl``, ``.json`` (a list of objects), ``.parquet`` or a directory written
by ``datasets.Dataset.save_to_disk`` (the last two need ``pip install datasets``):

===============  ==================================  ===========================================
dataset          file                                fields read
===============  ==================================  ===========================================
GSM8K            grade-school-math ``test.jsonl``,   ``question``; ``answer`` after ``####``
                 HF ``openai/gsm8k``
GSM-Hard         PAL ``gsmhardv2.jsonl``,            ``input``; ``target`` (a number)
                 HF ``reasoning-machines/gsm-hard``
MATH-500         prm800k ``test.jsonl``,             ``problem``; ``answer`` (else the last
                 HF ``HuggingFaceH4/MATH-500``       ``\\boxed{}`` of ``solution``); ``unique_id``
SVAMP            ``SVAMP.json``, HF ``ChilleD/SVAMP``  ``Body`` + ``Question``; ``Answer``; ``ID``
StrategyQA       official ``train.json``             ``term: description. question``; ``answer``
                                                     (true/false); ``qid``
any (rStar)      ``data/<DS>/test_all.json``         ``problem``; ``solution`` (``#### N``, a
                                                     number, true/false, or ``extra_info.answer``)
===============  ==================================  ===========================================

Rows without an id get ``<dataset>-<row index>`` (row order of the file), as in the dev files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from langgraph_rstar.eval.errors import EvalError

__all__ = ["DATASETS", "Item", "load_dataset", "normalize_row"]

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


def _number(value: Any) -> str:
    """A gold number as the dev files write it: no ``.0``, no commas, 10 decimals at most."""
    if isinstance(value, str):
        value = value.replace(",", "").strip()
        try:
            value = float(value)
        except ValueError:
            return str(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if float(value).is_integer():
        return str(int(value))
    return f"{round(float(value), 10):.10f}".rstrip("0").rstrip(".")


def _yesno(value: Any) -> str | None:
    text = str(value).strip().lower()
    if text in ("true", "yes"):
        return "yes"
    if text in ("false", "no"):
        return "no"
    return None


def _gold(row: Mapping[str, Any], dataset: str | None) -> str | None:
    """The gold answer of a row in any of the supported layouts (``None``: no answer field)."""
    from langgraph_rstar.answers import extract_answer

    for key in ("answer", "Answer", "target", "solution"):
        value = row.get(key)
        if value is None or value == "":
            continue
        if key == "solution":
            info = row.get("extra_info")
            if isinstance(info, Mapping) and info.get("answer") not in (None, ""):
                return str(info["answer"])  # rStar's MATH layout
        if isinstance(value, bool) or dataset == "strategyqa":
            yn = _yesno(value)
            if yn is not None:
                return yn
        if isinstance(value, (int, float)):
            return _number(value)
        text = str(value).strip()
        if "####" in text:  # GSM8K's worked solution ends with "#### 72"
            return _number(text.rsplit("####", 1)[1])
        if key == "solution":
            if "\\boxed" in text:
                return extract_answer(text, "math500")
            if dataset == "math500":
                continue  # a worked solution without a box holds no gold answer
        if key != "answer" and dataset in ("gsm8k", "gsmhard", "svamp"):
            return _number(text)  # "23.0" in SVAMP / rStar files
        return text  # this package's own format: kept exactly as written
    return None


def _question(row: Mapping[str, Any]) -> str | None:
    if isinstance(row.get("Body"), str) and isinstance(row.get("Question"), str):
        return f"{row['Body'].strip()} {row['Question'].strip()}"  # SVAMP
    if isinstance(row.get("question"), str) and row.get("term") and row.get("description"):
        # StrategyQA's official records: rStar gives the model "term: description. question"
        if isinstance(row.get("answer"), bool):
            return f"{row['term']}: {row['description']}. {row['question']}"
    for key in ("question", "problem", "input"):
        if isinstance(row.get(key), str):
            return str(row[key])
    return None


def normalize_row(
    row: Mapping[str, Any], index: int, dataset: str | None = None
) -> tuple[str | None, str | None, str | None]:
    """(id, question, gold answer) of one row in any supported layout; ``None`` where missing.

    Example:
        >>> normalize_row({"question": "2+2?", "answer": "2+2=4\\n#### 4"}, 0, "gsm8k")
        ('gsm8k-0', '2+2?', '4')
    """
    row_id = next(
        (row[k] for k in ("id", "unique_id", "ID", "qid") if row.get(k) not in (None, "")), None
    )
    if row_id is None:
        row_id = f"{dataset or 'item'}-{index}"
    return str(row_id), _question(row), _gold(row, dataset)


def _rows(file: Path) -> Iterator[tuple[str, Any]]:
    """(where, row) pairs of a data file or a saved HF dataset, in file order."""
    if file.is_dir() or file.suffix in (".parquet", ".arrow"):
        yield from _hf_rows(file)
        return
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalError(f"cannot read data file {str(file)!r}: {exc}") from exc
    if file.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise EvalError(f"{file}: not valid JSON ({exc.msg})") from None
        if isinstance(data, Mapping):  # {"data": [...]} / {"test": [...]}
            lists = [v for v in data.values() if isinstance(v, list)]
            data = lists[0] if len(lists) == 1 else data
        if not isinstance(data, list):
            raise EvalError(f"{file}: expected a JSON list of objects")
        for i, row in enumerate(data):
            yield f"{file}[{i}]", row
        return
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalError(f"{file}:{lineno}: not valid JSON ({exc.msg})") from None
        yield f"{file}:{lineno}", row


def _hf_rows(path: Path) -> Iterator[tuple[str, Any]]:
    try:
        import datasets
    except ImportError:
        raise EvalError(
            f"{str(path)!r} is a Hugging Face dataset file or folder: `pip install datasets` "
            "to read it, or convert it to JSONL"
        ) from None
    try:
        if path.is_dir():
            data = datasets.load_from_disk(str(path))
        elif path.suffix == ".arrow":
            data = datasets.Dataset.from_file(str(path))
        else:
            data = datasets.Dataset.from_parquet(str(path))
    except Exception as exc:  # noqa: BLE001 - any reader failure is bad input here
        raise EvalError(f"cannot read {str(path)!r} with datasets: {exc}") from exc
    if isinstance(data, datasets.DatasetDict):
        splits = list(data)
        if len(splits) != 1 and "test" not in data:
            raise EvalError(f"{path} holds splits {splits}; save the one to evaluate on its own")
        data = data["test"] if "test" in data else data[splits[0]]
    for i, row in enumerate(data):
        yield f"{path}[{i}]", row


def load_dataset(
    path: str | os.PathLike[str], limit: int | None = None, *, dataset: str | None = None
) -> list[Item]:
    """Read a data file in this package's JSONL format or a public dataset's own layout.

    Args:
        path: A ``.jsonl`` / ``.json`` file, a ``.parquet`` file or a ``save_to_disk`` folder.
        limit: Keep only the first ``limit`` questions (file order).
        dataset: The dataset name (see :data:`DATASETS`): how to read answers and name ids.

    Returns:
        The questions in file order.

    Raises:
        EvalError: The file is missing or empty, a row is not an object, lacks a question or an
            answer, has an empty question, or repeats an id.
    """
    file = Path(path)
    if not file.exists():
        raise EvalError(f"data file {str(file)!r} not found")
    items: list[Item] = []
    seen: set[str] = set()
    for index, (where, row) in enumerate(_rows(file)):
        if not isinstance(row, Mapping):
            raise EvalError(f"{where}: expected a JSON object with id, question, answer")
        item_id, question, gold = normalize_row(row, index, dataset)
        missing = [k for k, v in (("question", question), ("answer", gold)) if v in (None, "")]
        if missing:
            raise EvalError(
                f"{where}: missing field(s) {', '.join(missing)} (every row needs a question "
                "and its answer; see langgraph_rstar.eval.data for the layouts read)"
            )
        assert question is not None and gold is not None and item_id is not None
        if not question.strip():
            raise EvalError(f"{where}: 'question' must be a non-empty string")
        if item_id in seen:
            raise EvalError(f"{where}: duplicate id {item_id!r}")
        seen.add(item_id)
        items.append(Item(item_id, question, gold))
        if limit is not None and len(items) >= limit:
            break
    if not items:
        raise EvalError(f"data file {str(file)!r} has no questions")
    return items


def _sha256(path: Path) -> str:
    """The file's sha256; for a saved dataset folder, of its files' names and bytes in order."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode() + b"\0")
        with file.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
