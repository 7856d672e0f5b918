"""Fault suite, evaluation runs: resume provenance, secrets on disk, hostile or broken records.

A resumed run holds one experiment (same data, endpoints, models and settings) or is refused
with what differs and how to start a new one; nothing written is lost or leaks a key; ``rstar
report`` reads what it can and says what it could not.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from langgraph_rstar.cli import main
from langgraph_rstar.eval import load_records
from tests.conftest import rstar_responder
from tests.faults import clear, flagged, valid
from tests.scripted_server import Fault, ScriptedServer
from tests.test_eval import eval_args, make_run, write_data

KEY = "sk-eval-key-0123456789abcdef"


@pytest.fixture
def finished_run(scripted, tmp_path) -> tuple[Path, Path, bytes]:
    """A cot run over 2 questions: (data file, run dir, its results as written)."""
    data = write_data(tmp_path, 2)
    out = tmp_path / "run"
    assert main(eval_args(data, out, scripted.base_url, "cot")) == 0
    return data, out, (out / "results.jsonl").read_bytes()


def refused(capsys, out: Path, before: bytes, *says: str) -> None:
    err = capsys.readouterr().err
    for text in says:
        assert text in err, err
    assert f"--out {out}-2" in err and "Traceback" not in err
    assert (out / "results.jsonl").read_bytes() == before  # untouched


# -- resume provenance -------------------------------------------------------------------------


@pytest.mark.fault("clear", risk="loss")
def test_resume_with_another_data_file_is_refused(scripted, finished_run, tmp_path, capsys):
    data, out, before = finished_run
    other = tmp_path / "other" / "data.jsonl"
    other.parent.mkdir()
    other.write_text(data.read_text().replace('"answer": "5"', '"answer": "6"'))
    assert main(eval_args(other, out, scripted.base_url, "cot")) == 2
    refused(capsys, out, before, "another data file", "scored against those gold answers")


@pytest.mark.fault("clear", risk="loss")
def test_resume_after_the_data_file_changed_is_refused(scripted, finished_run, capsys):
    data, out, before = finished_run
    data.write_text(data.read_text().replace('"answer": "12"', '"answer": "13"'))
    assert main(eval_args(data, out, scripted.base_url, "cot")) == 2
    refused(capsys, out, before, "another data file")


@pytest.mark.fault("clear", risk="loss")
@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--model", "another-model"], "target.model: 'scripted' -> 'another-model'"),
        (["--api", "chat"], "target.api: 'completions' -> 'chat'"),
        (["--discriminator-model", "judge"], "discriminator.model: 'scripted' -> 'judge'"),
        (["--dialect", "llamacpp"], "target.dialect: 'vllm' -> 'llamacpp'"),
    ],
    ids=["model", "api", "discriminator", "dialect"],
)
def test_resume_with_other_endpoints_is_refused(scripted, finished_run, capsys, extra, says):
    data, out, before = finished_run
    assert main(eval_args(data, out, scripted.base_url, "cot", *extra)) == 2
    refused(capsys, out, before, "other endpoints", says)


@pytest.mark.fault("clear", risk="loss")
def test_resume_on_another_server_is_refused(finished_run, capsys):
    data, out, before = finished_run
    with ScriptedServer(rstar_responder) as elsewhere:
        assert main(eval_args(data, out, elsewhere.base_url, "cot")) == 2
        assert elsewhere.posts == []
    refused(capsys, out, before, "target.base_url: ")


@pytest.mark.fault("valid", risk="loss")
def test_resume_with_the_same_options_adds_only_the_missing(scripted, tmp_path):
    data = write_data(tmp_path, 3)
    out = tmp_path / "run"
    assert main(eval_args(data, out, scripted.base_url, "cot", "--limit", "2")) == 0
    before = (out / "results.jsonl").read_text()
    scripted.log.clear()
    assert main(eval_args(data, out, scripted.base_url, "cot")) == 0
    text = (out / "results.jsonl").read_text()
    assert text.startswith(before) and len(scripted.posts) == 1
    assert sorted(r["id"] for r in load_records(out)) == ["q0", "q1", "q2"]
    settings = json.loads((out / "settings.json").read_text())
    assert settings["endpoints"]["target"]["base_url"] == scripted.base_url
    assert len(settings["data_sha256"]) == 64 and len(settings["sessions"]) == 2


@pytest.mark.fault("valid", risk="loss")
def test_invalid_records_are_asked_again_on_resume(scripted, finished_run, capsys):
    data, out, _ = finished_run
    records = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    records[0]["correct"] = "yes"  # hand-edited garbage
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    scripted.log.clear()
    assert main(eval_args(data, out, scripted.base_url, "cot")) == 0
    assert len(scripted.posts) == 1  # that question only
    fixed = load_records(out)
    assert sorted(r["id"] for r in fixed) == ["q0", "q1"]
    assert all(r["correct"] is True for r in fixed)


@flagged
def test_budget_limited_answers_stay_marked_in_records_and_report(scripted, tmp_path, capsys):
    data = write_data(tmp_path, 2)
    out = tmp_path / "run"
    assert main(eval_args(data, out, scripted.base_url, "rstar", "--max-requests", "2")) == 0
    records = load_records(out)
    assert [r["budget_exhausted"] for r in records] == ["max_requests"] * 2
    assert all(r["prediction"] == r["gold"] for r in records)  # answered from what it had
    capsys.readouterr()
    assert main(["report", str(out), "--json"]) == 0
    [summary] = json.loads(capsys.readouterr().out)
    assert summary["degraded"] == 2 and summary["errors"] == 0


# -- secrets on disk ---------------------------------------------------------------------------


@pytest.mark.fault("valid", risk="security")
def test_settings_hold_no_key_and_no_url_credentials(scripted, tmp_path):
    data = write_data(tmp_path, 1)
    out = tmp_path / "run"
    url = scripted.base_url.replace("http://", "http://alice:url-secret-pw@")
    assert main(eval_args(data, out, url, "cot", "--api-key", KEY)) == 0
    on_disk = (out / "settings.json").read_text() + (out / "results.jsonl").read_text()
    assert KEY not in on_disk and "url-secret-pw" not in on_disk
    assert "http://***@127.0.0.1" in on_disk and scripted.posts


@pytest.mark.fault("clear", risk="security")
def test_a_key_echoed_by_the_server_is_not_stored(scripted, tmp_path):
    data = write_data(tmp_path, 1)
    out = tmp_path / "run"
    echoed = json.dumps({"error": {"message": f"key {KEY} is not allowed"}}).encode()
    scripted.fault_next(Fault("status", 403, body=echoed), 10)
    assert main(eval_args(data, out, scripted.base_url, "cot", "--api-key", KEY)) == 1
    [record] = load_records(out)
    assert "key *** is not allowed" in record["error"]
    assert KEY not in (out / "results.jsonl").read_text()


# -- rstar report on broken or hostile runs ----------------------------------------------------


def good(rid: str) -> dict:
    return {
        "id": rid,
        "gold": "5",
        "prediction": "5",
        "correct": True,
        "wall_seconds": 1.0,
        "usage": {"target": {"requests": 1, "prompt_tokens": 9, "completion_tokens": 5}},
    }


@flagged
@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ({"correct": "yes"}, "correct: Input should be a valid boolean"),
        ({"usage": {"target": {"requests": "many"}}}, "usage.target.requests"),
        ({"usage": "lots"}, "usage: Input should be a valid dictionary"),
        ({"wall_seconds": "slow"}, "wall_seconds"),
        ({"candidates": [{"answer": "5", "rollout": "first"}]}, "candidates.0"),
        ({"prediction": 5}, "prediction"),
        ({"candidates": [{"answer": "5", "steps": "one step"}]}, "candidates.0"),
        ({"verification": {"skipped": False, "checks": [{"node_id": "0.d0"}]}}, "verification"),
    ],
    ids=[
        "correct",
        "usage-counter",
        "usage",
        "wall",
        "candidate-rollout",
        "prediction",
        "candidate-steps",
        "verification-check",
    ],
)
def test_report_leaves_out_a_wrong_typed_record_and_says_so(tmp_path, capsys, bad, says):
    run = make_run(tmp_path, "r1", "rstar", [good("a"), {**good("b"), **bad}, good("c")])
    assert main(["report", str(run), "--json"]) == 0
    captured = capsys.readouterr()
    [summary] = json.loads(captured.out)
    assert summary["n"] == 2 and summary["skipped_records"] == 1
    assert "line 2 (id 'b')" in summary["problems"][0] and says in summary["problems"][0]
    assert "left out 1 unusable line(s)" in captured.err
    assert main(["report", str(run), "--rescore"]) == 0
    assert "left out 1 unusable line(s)" in capsys.readouterr().out


@clear
@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("garbage\n{not json\n", "no usable records"),
        ('[1, 2]\n"text"\n', "not a record"),
        ("", "no usable records"),
        ('{"id": "a", "correct": "yes"}\n', "correct: Input should be a valid boolean"),
    ],
    ids=["garbage", "not-records", "empty", "all-wrong-typed"],
)
def test_report_refuses_a_run_with_nothing_usable(tmp_path, capsys, content, says):
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.jsonl").write_text(content)
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err


@valid
def test_report_prints_hostile_names_as_written(tmp_path, capsys):
    run = make_run(tmp_path, "run[red]", "cot[/bold]", [good("a")])
    assert main(["report", str(run), "--plots-dir", str(tmp_path / "plots")]) == 0
    out = capsys.readouterr().out
    assert "run[red]" in out and "cot[/bold]" in out


@clear
def test_eval_out_under_a_regular_file_is_refused(scripted, tmp_path, capsys):
    data = write_data(tmp_path, 1)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(eval_args(data, blocker / "run", scripted.base_url, "cot")) == 2
    err = capsys.readouterr().err
    assert "cannot create it" in err and "Traceback" not in err and scripted.posts == []


@clear
def test_report_plots_dir_under_a_regular_file_is_refused(tmp_path, capsys):
    run = make_run(tmp_path, "r1", "cot", [good("a")])
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["report", str(run), "--plots-dir", str(blocker / "plots")]) == 2
    err = capsys.readouterr().err
    assert "cannot write the plots" in err and "Traceback" not in err
