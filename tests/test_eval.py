"""`rstar eval` / `rstar report` against the scripted server: resume, stats, plots, errors."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from langgraph_rstar import eval as rstar_eval
from langgraph_rstar.cli import main
from langgraph_rstar.eval import (
    accuracy_by_rollouts,
    load_records,
    summarize,
    wilson_interval,
)
from tests.conftest import QUESTIONS, rstar_responder
from tests.scripted_server import ScriptedServer

REPO = Path(__file__).resolve().parent.parent
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_data(tmp_path: Path, n: int = 3, *, gold: dict[str, str] | None = None) -> Path:
    """The conftest questions (then filler ones, which the responder answers with "1")."""
    rows = [
        {"id": f"q{i}", "question": q, "answer": right}
        for i, (q, (right, _)) in enumerate(QUESTIONS.items())
    ]
    for i in range(len(rows), n):
        rows.append(
            {"id": f"q{i}", "question": f"Filler puzzle {i}: how much is one?", "answer": "1"}
        )
    rows = rows[:n]
    for row in rows:
        row["answer"] = (gold or {}).get(row["id"], row["answer"])
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def eval_args(data: Path, out: Path, url: str, method: str, *extra: str) -> list[str]:
    return [
        "eval",
        "--dataset",
        "gsm8k",
        "--data",
        str(data),
        "--method",
        method,
        "--out",
        str(out),
        "--base-url",
        url,
        "--quiet",
        *extra,
    ]


def complete_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


# --------------------------------------------------------------------------------------------
# (1) resume after SIGKILL
# --------------------------------------------------------------------------------------------


@pytest.mark.fault("valid", risk="loss")
def test_resume_after_sigkill_keeps_every_id_exactly_once(tmp_path):
    data = write_data(tmp_path, 6)
    out = tmp_path / "run"
    results = out / "results.jsonl"
    with ScriptedServer(rstar_responder, delay=0.3) as server:
        cmd = [
            sys.executable,
            "-m",
            "langgraph_rstar.cli",
            *eval_args(data, out, server.base_url, "sc", "--concurrency", "1"),
        ]
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while complete_lines(results) < 2:
                assert proc.poll() is None, proc.communicate()[1].decode()
                assert time.monotonic() < deadline, "no records after 60 s"
                time.sleep(0.01)
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        before = results.read_bytes()
        kept = before.count(b"\n")
        assert 2 <= kept < 6, "the run must be killed half-way"
        # Simulate dying in the middle of a write: a torn, unterminated last line.
        with results.open("ab") as f:
            f.write(b'{"id": "q5", "method": "sc", "predic')
        posts_before = len(server.posts)

        done = subprocess.run(cmd, cwd=REPO, capture_output=True, timeout=120)
        assert done.returncode == 0, done.stderr.decode()
        # Only the unfinished questions were asked again (plus the one cut off by the kill).
        assert len(server.posts) - posts_before <= 6 - kept + 1

        text = results.read_text(encoding="utf-8")
        assert text.startswith(before.decode()), "finished records must be kept as they were"
        assert text.endswith("\n")
        records = [json.loads(line) for line in text.splitlines()]
        ids = [r["id"] for r in records]
        assert sorted(ids) == [f"q{i}" for i in range(6)]
        assert all(r["correct"] and r["error"] is None for r in records)
        assert all(len(r["candidates"]) == 8 for r in records)

        # A third run has nothing to do: no request, no new line.
        posts_before = len(server.posts)
        again = subprocess.run(cmd, cwd=REPO, capture_output=True, timeout=120)
        assert again.returncode == 0, again.stderr.decode()
        assert len(server.posts) == posts_before
        assert results.read_text(encoding="utf-8") == text
    settings = json.loads((out / "settings.json").read_text())
    assert settings["method"] == "sc" and settings["dataset"] == "gsm8k"
    assert settings["sc_k"] == 8 and len(settings["sessions"]) == 2


@pytest.mark.fault("valid", risk="loss")
def test_failed_question_is_recorded_then_retried(scripted, tmp_path):
    data = write_data(tmp_path, 3)
    out = tmp_path / "run"
    scripted.fail_next(1, status=400)
    assert main(eval_args(data, out, scripted.base_url, "cot", "--concurrency", "1")) == 1
    records = load_records(out)
    errors = [r for r in records if r["error"]]
    assert len(records) == 3 and len(errors) == 1
    assert errors[0]["prediction"] is None and errors[0]["correct"] is False
    assert "400" in errors[0]["error"]
    assert summarize(records)["errors"] == 1

    assert main(eval_args(data, out, scripted.base_url, "cot")) == 0
    lines = (out / "results.jsonl").read_text().splitlines()
    assert sorted(json.loads(x)["id"] for x in lines) == ["q0", "q1", "q2"]
    assert all(json.loads(x)["correct"] for x in lines)


@pytest.mark.fault("clear")
def test_endpoint_down_stops_after_consecutive_failures(scripted, tmp_path, capsys):
    data = write_data(tmp_path, 3)
    scripted.fail_next(50, status=400)
    args = eval_args(
        data,
        tmp_path / "run",
        scripted.base_url,
        "cot",
        "--concurrency",
        "1",
        "--max-consecutive-errors",
        "2",
    )
    assert main(args) == 2
    assert "2 questions in a row failed" in capsys.readouterr().err
    assert len(load_records(tmp_path / "run")) == 2  # the third was never started


@pytest.mark.fault("clear", risk="loss")
def test_a_second_process_on_the_same_run_dir_is_refused(scripted, tmp_path, capsys):
    data = write_data(tmp_path, 1)
    out = tmp_path / "run"
    out.mkdir()
    with rstar_eval._run_lock(out):
        assert main(eval_args(data, out, scripted.base_url, "cot")) == 2
    assert "another `rstar eval`" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# (2) statistics
# --------------------------------------------------------------------------------------------


def test_wilson_interval_matches_hand_computed_values():
    # p = 0.7, n = 10: center (0.7 + 0.19208) / 1.38416, margin 1.96 * sqrt(0.030604) / 1.38416
    low, high = wilson_interval(7, 10)
    assert low == pytest.approx(0.39677, abs=1e-4) and high == pytest.approx(0.89222, abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.27753), abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.72247, 1.0), abs=1e-4)
    assert wilson_interval(50, 100) == pytest.approx((0.40383, 0.59617), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def usage(requests: int, prompt: int, completion: int, disc: tuple[int, int, int] = (0, 0, 0)):
    return {
        "target": {"requests": requests, "prompt_tokens": prompt, "completion_tokens": completion},
        "discriminator": dict(
            zip(("requests", "prompt_tokens", "completion_tokens"), disc, strict=True)
        ),
    }


def test_summarize_counts_accuracy_cost_and_errors():
    records = [
        {
            "id": "a",
            "method": "rstar",
            "dataset": "gsm8k",
            "correct": True,
            "generator_correct": True,
            "usage": usage(10, 1000, 200, (2, 300, 40)),
            "wall_seconds": 3.0,
            "error": None,
        },
        {
            "id": "b",
            "method": "rstar",
            "dataset": "gsm8k",
            "correct": True,
            "generator_correct": False,
            "usage": usage(6, 600, 100),
            "wall_seconds": 2.0,
            "error": None,
        },
        {
            "id": "c",
            "method": "rstar",
            "dataset": "gsm8k",
            "correct": False,
            "generator_correct": True,
            "usage": usage(4, 400, 60),
            "wall_seconds": 1.0,
            "error": None,
        },
        {
            "id": "d",
            "method": "rstar",
            "dataset": "gsm8k",
            "correct": False,
            "prediction": None,
            "usage": usage(0, 0, 0),
            "wall_seconds": 2.0,
            "error": "BackendError: down",
        },
    ]
    s = summarize(records)
    assert (s["method"], s["dataset"], s["n"], s["correct"], s["errors"]) == (
        "rstar",
        "gsm8k",
        4,
        2,
        1,
    )
    assert s["accuracy"] == 0.5
    assert (s["ci_low"], s["ci_high"]) == pytest.approx((0.15004, 0.84996), abs=1e-4)
    assert s["generator_maj_accuracy"] == 0.5  # a and c
    assert s["requests_per_question"] == (12 + 6 + 4) / 4
    assert s["prompt_tokens_per_question"] == (1300 + 600 + 400) / 4
    assert s["generated_tokens_per_question"] == (240 + 100 + 60) / 4
    assert s["generated_tokens"] == 400
    assert s["wall_seconds_per_question"] == 2.0
    assert summarize([])["n"] == 0
    cot = summarize([{**records[0], "method": "cot"}])
    assert cot["generator_maj_accuracy"] is None


def cand(answer: str | None, rollout: int) -> dict:
    return {"answer": answer, "rollout": rollout, "confidence": 1.0, "reward": 1.0}


def test_accuracy_by_rollouts_truncates_candidates():
    records = [
        # k=1: "6" (wrong); k=2: "6" vs "5" tie -> first occurrence "6"; k=3: "5" wins.
        {"id": "a", "gold": "5", "candidates": [cand("6", 0), cand("5", 1), cand("5.0", 2)]},
        {"id": "b", "gold": "3", "candidates": [cand("3", 0)]},
        {"id": "c", "gold": "7", "candidates": []},  # nothing found: always wrong
        {"id": "d", "gold": "8", "candidates": [cand("8", 2)]},  # right from k=3 on
    ]
    assert accuracy_by_rollouts(records, "gsm8k") == [(1, 0.25), (2, 0.25), (3, 0.75)]
    # The configured budget extends the curve past the last rollout that found something.
    assert accuracy_by_rollouts(records, "gsm8k", 4)[-1] == (4, 0.75)
    assert accuracy_by_rollouts([], "gsm8k") == []
    assert accuracy_by_rollouts([{"id": "x", "gold": "1", "candidates": []}], "gsm8k") == []


def test_load_records_tolerates_torn_lines_and_prefers_successes(tmp_path):
    ok = {"id": "a", "method": "cot", "correct": True, "error": None}
    err = {"id": "a", "method": "cot", "correct": False, "error": "boom"}
    other = {"id": "b", "method": "cot", "correct": False, "error": "boom"}
    lines = [json.dumps(ok), "{not json", json.dumps(err), json.dumps(other), '{"id": "c", "me']
    (tmp_path / "results.jsonl").write_text("\n".join(lines))
    records = load_records(tmp_path)
    assert [(r["id"], r["error"]) for r in records] == [("a", None), ("b", "boom")]


# --------------------------------------------------------------------------------------------
# (3) report: table and plots
# --------------------------------------------------------------------------------------------


def make_run(root: Path, name: str, method: str, records: list[dict]) -> Path:
    run = root / name
    run.mkdir()
    (run / "settings.json").write_text(json.dumps({"method": method, "dataset": "gsm8k"}))
    with (run / "results.jsonl").open("w") as f:
        for rec in records:
            f.write(json.dumps({"method": method, "dataset": "gsm8k", "error": None, **rec}) + "\n")
    return run


def test_report_prints_the_table_and_writes_both_plots(tmp_path, capsys):
    rstar_records = [
        {
            "id": "a",
            "gold": "5",
            "prediction": "5",
            "correct": True,
            "generator_correct": True,
            "candidates": [cand("6", 0), cand("5", 1), cand("5", 2)],
            "usage": usage(20, 9000, 800),
            "wall_seconds": 10.0,
        },
        {
            "id": "b",
            "gold": "3",
            "prediction": "4",
            "correct": False,
            "generator_correct": False,
            "candidates": [cand("4", 0), cand("3", 1), cand("4", 3)],
            "usage": usage(22, 9900, 900),
            "wall_seconds": 12.0,
        },
    ]
    cot_records = [
        {
            "id": "a",
            "gold": "5",
            "prediction": "5",
            "correct": True,
            "candidates": ["5"],
            "usage": usage(1, 500, 60),
            "wall_seconds": 1.0,
        },
        {
            "id": "b",
            "gold": "3",
            "prediction": "3",
            "correct": True,
            "candidates": ["3"],
            "usage": usage(1, 500, 70),
            "wall_seconds": 1.0,
        },
    ]
    runs = [
        make_run(tmp_path, "r1", "rstar", rstar_records),
        make_run(tmp_path, "r2", "cot", cot_records),
    ]
    plots = tmp_path / "plots"
    assert main(["report", *map(str, runs), "--plots-dir", str(plots)]) == 0
    out = capsys.readouterr().out
    assert "rstar" in out and "cot" in out and "50.0" in out and "100.0" in out
    assert "9.5-90.5" in out  # Wilson 95 % interval of 1/2
    for name in (rstar_eval.PLOT_ROLLOUTS, rstar_eval.PLOT_TOKENS):
        data = (plots / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000

    assert main(["report", str(runs[0]), "--json"]) == 0
    [summary] = json.loads(capsys.readouterr().out)
    assert summary["n"] == 2 and summary["accuracy"] == 0.5
    assert (runs[0] / rstar_eval.PLOT_ROLLOUTS).is_file()  # default: next to the single run


def test_report_on_a_missing_run_dir_exits_2(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "not found" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# (4) bad input
# --------------------------------------------------------------------------------------------


def test_unknown_dataset_exits_2(tmp_path, capsys):
    data = write_data(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "eval",
                "--dataset",
                "gsm9k",
                "--data",
                str(data),
                "--method",
                "cot",
                "--out",
                str(tmp_path / "run"),
            ]
        )
    assert exc.value.code == 2
    assert "invalid choice: 'gsm9k'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "not found"),
        ("", "has no questions"),
        ("\n\n", "has no questions"),
        ('{"id": "a", "question": "What is 1+1?"}\n', "missing field(s) answer"),
        ('{"id": "a", "answer": "2"}\n', "missing field(s) question"),
        ("not json\n", "not valid JSON"),
        ('["a", "b"]\n', "expected a JSON object"),
        ('{"id": "a", "question": "q?", "answer": "1"}\n' * 2, "duplicate id 'a'"),
    ],
)
def test_bad_data_file_exits_2_without_traceback(tmp_path, capsys, content, message):
    data = tmp_path / "data.jsonl"
    if content is not None:
        data.write_text(content)
    # No --base-url: the error must come before any server would be started.
    rc = main(
        [
            "eval",
            "--dataset",
            "gsm8k",
            "--data",
            str(data),
            "--method",
            "cot",
            "--out",
            str(tmp_path / "run"),
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "run" / "results.jsonl").exists()


def test_other_method_or_settings_in_the_same_run_dir_exit_2(scripted, tmp_path, capsys):
    data = write_data(tmp_path, 1)
    out = tmp_path / "run"
    assert main(eval_args(data, out, scripted.base_url, "cot")) == 0
    before = (out / "results.jsonl").read_bytes()
    assert main(eval_args(data, out, scripted.base_url, "sc")) == 2
    assert "method='cot'" in capsys.readouterr().err
    assert (
        main(
            [
                "eval",
                "--dataset",
                "svamp",
                "--data",
                str(data),
                "--method",
                "cot",
                "--out",
                str(out),
                "--base-url",
                scripted.base_url,
                "--quiet",
            ]
        )
        == 2
    )
    assert "dataset='gsm8k'" in capsys.readouterr().err
    assert main(eval_args(data, out, scripted.base_url, "cot", "--set", "max_tokens_cot=99")) == 2
    assert "max_tokens_cot: 256 -> 99" in capsys.readouterr().err
    assert main(eval_args(data, out, scripted.base_url, "cot", "--task", "math500")) == 2
    assert "conflicts with --dataset" in capsys.readouterr().err
    assert (out / "results.jsonl").read_bytes() == before


# --------------------------------------------------------------------------------------------
# (5) every method end to end, in process
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["cot", "sc", "rstar-generator", "rstar"])
def test_each_method_scores_the_scripted_questions(scripted, tmp_path, method, capsys):
    data = write_data(tmp_path, 3)
    out = tmp_path / method
    extra = ["--rollouts", "2", "--set", "max_depth=3", "--concurrency", "3"]
    assert main(eval_args(data, out, scripted.base_url, method, *extra)) == 0
    records = load_records(out)
    assert sorted(r["id"] for r in records) == ["q0", "q1", "q2"]
    s = summarize(records)
    assert s["accuracy"] == 1.0 and s["errors"] == 0
    assert s["generated_tokens_per_question"] > 0
    requests = sum(
        r["usage"]["target"]["requests"] + r["usage"]["discriminator"]["requests"] for r in records
    )
    assert requests == len(scripted.posts)
    by_id = {r["id"]: r for r in records}
    assert by_id["q1"]["prediction"] == "12" and by_id["q1"]["gold"] == "12"
    for rec in records:
        assert rec["method"] == method and rec["dataset"] == "gsm8k"
        assert rec["wall_seconds"] >= 0 and 0 < rec["confidence"] <= 1
    if method == "cot":
        assert all(r["usage"]["target"]["requests"] == 1 for r in records)
        assert all(p.body["temperature"] == 0.0 and p.n == 1 for p in scripted.posts)
        assert all(p.prompts[0].endswith("Step 1:") for p in scripted.posts)
    elif method == "sc":
        assert all(p.n == 8 for p in scripted.posts)
        # choice 1 of every request is scripted to be wrong: 7 of 8 agree
        assert all(len(r["candidates"]) == 8 and r["confidence"] == 7 / 8 for r in records)
    else:
        assert all(r["candidates"] and r["generator_correct"] for r in records)
        assert all(
            {"answer", "rollout", "confidence", "reward"} <= set(r["candidates"][0])
            for r in records
        )
        disc = sum(r["usage"]["discriminator"]["requests"] for r in records)
        assert (disc == 0) == (method == "rstar-generator")
        assert accuracy_by_rollouts(records, "gsm8k")[-1][1] == 1.0
    settings = json.loads((out / "settings.json").read_text())
    if method.startswith("rstar"):
        assert settings["config"]["use_discriminator"] == (method == "rstar")
    assert settings["endpoint"] == scripted.base_url


def test_the_gold_answer_never_reaches_the_model(scripted, tmp_path):
    data = write_data(tmp_path, 3, gold={"q0": "424242"})
    out = tmp_path / "run"
    assert main(eval_args(data, out, scripted.base_url, "sc", "--sc-k", "4")) == 0
    assert not any("424242" in json.dumps(p.body) for p in scripted.posts)
    by_id = {r["id"]: r for r in load_records(out)}
    assert by_id["q0"]["prediction"] == "5" and by_id["q0"]["correct"] is False
    assert summarize(list(by_id.values()))["correct"] == 2


def test_report_rescore_reruns_every_selection_rule_from_the_records(tmp_path, capsys):
    """Records keep candidates and verdicts; `report --rescore` needs no server at all."""
    from langgraph_rstar.selection import RULES
    from tests.statistical_world import StatisticalWorld, world_question

    world = StatisticalWorld(p=0.4, seed=3)
    rows = [
        {"id": f"w{i}", "question": world_question(i), "answer": world.right_answer(i)}
        for i in range(6)
    ]
    data = tmp_path / "world.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "rstar"
    with ScriptedServer(world.respond) as server:
        assert main(eval_args(data, out, server.base_url, "rstar", "--rollouts", "6")) == 0
        posts = len(server.posts)
    records = load_records(out)
    checked = [r for r in records if not r["verification"]["skipped"]]
    assert checked, "the discriminator ran on some question"
    for rec in records:
        assert rec["candidates"] and {"steps", "agree", "samples", "path_values"} <= set(
            rec["candidates"][0]
        )
    for rec in checked:
        assert all(len(ch["answers"]) == 3 for ch in rec["verification"]["checks"])

    capsys.readouterr()
    assert main(["report", str(out), "--rescore", "--json"]) == 0  # the server is gone
    [summary] = json.loads(capsys.readouterr().out)
    rescored = summary["rescore"]
    assert set(RULES) <= set(rescored) and "mutual@loose" in rescored
    assert all(v["n"] == 6 for v in rescored.values())
    # the run's own rule re-scored gives the run's accuracy; generator@maj its gen@maj column
    assert rescored["mutual"]["correct"] == summary["correct"]
    assert rescored["generator_maj"]["correct"] / 6 == pytest.approx(
        summary["generator_maj_accuracy"]
    )
    assert main(["report", str(out), "--rescore"]) == 0
    table = capsys.readouterr().out
    assert "every selection rule" in table and "reference_code" in table
    assert posts > 0
