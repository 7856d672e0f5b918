"""Evaluation data: this package's JSONL and the public datasets' own releases, read as they are.

Each fixture row copies the layout of the public file it stands for (field names and value types),
with a made-up problem; ``datasets`` writes the Hugging Face forms for real.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from langgraph_rstar.eval import EvalError, Item, load_dataset
from langgraph_rstar.eval.data import _sha256

GSM8K_TEST = [  # grade-school-math test.jsonl: no id, the worked solution ends with "#### N"
    {"question": "Ann has 3 bags of 4 pens. How many pens?", "answer": "3*4=<<3*4=12>>12\n#### 12"},
    {"question": "A farm sells 1,250 eggs twice. How many?", "answer": "2*1250=2500\n#### 2,500"},
]
GSMHARD = [  # PAL gsmhardv2.jsonl
    {
        "input": "Tom buys 1234567 apples and eats half.",
        "code": "def solution(): ...",
        "target": 617283.5,
    },
    {"input": "Sue has 4000000 coins and loses 1.", "code": "...", "target": 3999999.0},
]
MATH500 = [  # prm800k test.jsonl / HuggingFaceH4/MATH-500
    {
        "problem": "What is $\\frac{1}{2}+\\frac{1}{3}$?",
        "solution": "... $\\boxed{\\frac{5}{6}}$.",
        "answer": "\\frac{5}{6}",
        "subject": "Prealgebra",
        "level": 2,
        "unique_id": "test/prealgebra/1.json",
    },
]
SVAMP = [  # SVAMP.json: a JSON list
    {
        "ID": "chal-1",
        "Body": "Jack had 8 pens . He gave 3 away .",
        "Question": " How many left ?",
        "Equation": "( 8.0 - 3.0 )",
        "Answer": 5.0,
        "Type": "Subtraction",
    },
]
STRATEGYQA = [  # the official train.json
    {
        "qid": "abc123",
        "term": "Kane (wrestler)",
        "description": "American wrestler",
        "question": "Did Kane ever win a title?",
        "answer": True,
        "facts": [],
        "decomposition": [],
    },
    {
        "qid": "def456",
        "term": "Moon",
        "description": "Natural satellite",
        "question": "Is the Moon a planet?",
        "answer": False,
        "facts": [],
        "decomposition": [],
    },
]
RSTAR = {  # rStar's data/<DS>/test_all.json
    "gsm8k": [{"id": "0", "problem": "1+1?", "solution": "1+1=2\n#### 2"}],
    "gsmhard": [{"id": 0, "problem": "2.5*2?", "solution": -9867630.0}],
    "math500": [
        {
            "source": "MATH500",
            "id": "test-algebra-1",
            "problem": "x?",
            "solution": "so \\boxed{3}",
            "extra_info": {"answer": "3", "level": 1},
        }
    ],
    "svamp": [{"id": 0, "problem": "Body question", "solution": 23.0}],
    "strategyqa": [{"id": 0, "problem": "Moon: satellite. Is it a planet?", "solution": "false"}],
}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_the_native_jsonl_format_is_read_exactly(tmp_path):
    rows = [
        {"id": "a", "question": "q1", "answer": "1,000", "extra": 1},
        {"id": 7, "question": "q2", "answer": "\\frac{1}{2}"},
    ]
    items = load_dataset(write_jsonl(tmp_path / "d.jsonl", rows), dataset="math500")
    assert items == [Item("a", "q1", "1,000"), Item("7", "q2", "\\frac{1}{2}")]


def test_public_releases_load_as_they_are(tmp_path):
    gsm = load_dataset(write_jsonl(tmp_path / "test.jsonl", GSM8K_TEST), dataset="gsm8k")
    assert [(i.id, i.gold) for i in gsm] == [("gsm8k-0", "12"), ("gsm8k-1", "2500")]
    assert gsm[0].question == GSM8K_TEST[0]["question"]

    hard = load_dataset(write_jsonl(tmp_path / "gsmhardv2.jsonl", GSMHARD), dataset="gsmhard")
    assert [(i.id, i.question, i.gold) for i in hard] == [
        ("gsmhard-0", GSMHARD[0]["input"], "617283.5"),
        ("gsmhard-1", GSMHARD[1]["input"], "3999999"),
    ]

    math = load_dataset(write_jsonl(tmp_path / "m.jsonl", MATH500), dataset="math500")
    assert math == [Item("test/prealgebra/1.json", MATH500[0]["problem"], "\\frac{5}{6}")]

    svamp_file = tmp_path / "SVAMP.json"
    svamp_file.write_text(json.dumps(SVAMP))
    assert load_dataset(svamp_file, dataset="svamp") == [
        Item("chal-1", "Jack had 8 pens . He gave 3 away . How many left ?", "5")
    ]

    stg_file = tmp_path / "train.json"
    stg_file.write_text(json.dumps(STRATEGYQA))
    stg = load_dataset(stg_file, dataset="strategyqa")
    assert stg == [
        Item("abc123", "Kane (wrestler): American wrestler. Did Kane ever win a title?", "yes"),
        Item("def456", "Moon: Natural satellite. Is the Moon a planet?", "no"),
    ]


@pytest.mark.parametrize(
    ("dataset", "gold"),
    [
        ("gsm8k", "2"),
        ("gsmhard", "-9867630"),
        ("math500", "3"),
        ("svamp", "23"),
        ("strategyqa", "no"),
    ],
)
def test_rstar_reference_files_load(tmp_path, dataset, gold):
    path = tmp_path / "test_all.json"
    path.write_text(json.dumps(RSTAR[dataset]))
    [item] = load_dataset(path, dataset=dataset)
    assert item.gold == gold and item.question == RSTAR[dataset][0]["problem"]


def test_a_math_solution_without_a_box_has_no_gold(tmp_path):
    path = write_jsonl(tmp_path / "m.jsonl", [{"problem": "x?", "solution": "it is 3"}])
    with pytest.raises(EvalError, match="missing field.*answer"):
        load_dataset(path, dataset="math500")


def test_hugging_face_datasets_forms(tmp_path):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_list(MATH500 * 1)
    ds.save_to_disk(str(tmp_path / "saved"))
    datasets.DatasetDict({"train": ds, "test": ds}).save_to_disk(str(tmp_path / "splits"))
    ds.to_parquet(str(tmp_path / "test.parquet"))
    expected = [Item("test/prealgebra/1.json", MATH500[0]["problem"], "\\frac{5}{6}")]
    for form in ("saved", "splits", "test.parquet"):
        assert load_dataset(tmp_path / form, dataset="math500") == expected, form
    assert _sha256(tmp_path / "saved") == _sha256(tmp_path / "saved")  # folders hash too
    datasets.DatasetDict({"a": ds, "b": ds}).save_to_disk(str(tmp_path / "ambiguous"))
    with pytest.raises(EvalError, match="holds splits"):
        load_dataset(tmp_path / "ambiguous", dataset="math500")


def test_bad_rows_are_clear_errors(tmp_path):
    with pytest.raises(EvalError, match=r"d.jsonl:2: missing field\(s\) answer"):
        load_dataset(write_jsonl(tmp_path / "d.jsonl", [GSM8K_TEST[0], {"question": "q"}]))
    bad = tmp_path / "bad.json"
    bad.write_text('{"a": 1}')
    with pytest.raises(EvalError, match="expected a JSON list"):
        load_dataset(bad)
    dup = write_jsonl(tmp_path / "dup.jsonl", [{"id": 1, "question": "q", "answer": "1"}] * 2)
    with pytest.raises(EvalError, match="duplicate id '1'"):
        load_dataset(dup)
