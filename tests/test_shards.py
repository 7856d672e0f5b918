"""`rstar eval --shard i/N` and merging the shards' runs in `rstar report`, over real HTTP."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

from langgraph_rstar.cli import main
from langgraph_rstar.eval import EvalError, Shard, load_records, shard_of
from tests.test_eval import eval_args, write_data


def run_shards(data: Path, root: Path, url: str, count: int, *extra: str) -> list[Path]:
    dirs = []
    for i in range(1, count + 1):
        out = root / f"sc-{i}of{count}"
        assert main(eval_args(data, out, url, "sc", "--shard", f"{i}/{count}", *extra)) == 0
        dirs.append(out)
    return dirs


def report_json(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict]:
    capsys.readouterr()
    assert main(["report", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


# -- splitting -------------------------------------------------------------------------------


def test_shards_split_any_order_of_a_dataset_without_overlap_or_gap() -> None:
    ids = [f"gsm8k-{i}" for i in range(600)]
    for count in (1, 2, 3, 5, 8):
        shards = [Shard(i, count) for i in range(1, count + 1)]
        parts = [set(s.select(ids, key=str)) for s in shards]
        assert set().union(*parts) == set(ids)
        assert sum(len(p) for p in parts) == len(ids)  # disjoint
        assert min(len(p) for p in parts) >= 0.7 * len(ids) / count  # roughly equal shares
        shuffled = random.Random(count).sample(ids, len(ids))
        assert [set(s.select(shuffled, key=str)) for s in shards] == parts  # order-free
        grown = [*ids, *(f"new-{i}" for i in range(50))]
        for s, part in zip(shards, parts, strict=True):
            assert part <= set(s.select(grown, key=str))  # added questions move nothing
    assert Shard(2, 4).select(["a", "b"], key=str) == [x for x in "ab" if shard_of(x, 4) == 2]


@pytest.mark.parametrize(
    ("text", "message"),
    [("0/4", "count from 1"), ("5/4", "1 <= i <= N"), ("2-4", "i/N"), ("a/b", "i/N"), ("", "i/N")],
)
def test_bad_shards_are_clear_errors(text: str, message: str, tmp_path, capsys) -> None:
    with pytest.raises(EvalError, match=message):
        Shard.parse(text)
    with pytest.raises(SystemExit) as info:
        main(eval_args(write_data(tmp_path, 2), tmp_path / "r", "http://x", "sc", "--shard", text))
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_shard_with_no_question_is_refused(scripted, tmp_path, capsys) -> None:
    data = write_data(tmp_path, 1)
    empty = next(i for i in (1, 2) if shard_of("q0", 2) != i)
    assert main(eval_args(data, tmp_path / "r", scripted.base_url, "sc", "--shard", f"{empty}/2"))
    assert "selects none of the 1 questions" in capsys.readouterr().err
    assert not scripted.posts


# -- running and merging ---------------------------------------------------------------------


def test_shards_merge_into_the_unsharded_run(scripted, tmp_path, capsys) -> None:
    data = write_data(tmp_path, 10)
    full = tmp_path / "full"
    assert main(eval_args(data, full, scripted.base_url, "sc")) == 0
    posts_full = len(scripted.posts)
    dirs = run_shards(data, tmp_path, scripted.base_url, 3)
    assert len(scripted.posts) == 2 * posts_full  # nothing done twice, nothing left out
    per_shard = [sorted(r["id"] for r in load_records(d)) for d in dirs]
    assert all(
        ids == sorted(i for i in ids if shard_of(i, 3) == k) for k, ids in enumerate(per_shard, 1)
    )
    settings = json.loads((dirs[1] / "settings.json").read_text())
    assert settings["shard"] == {"index": 2, "count": 3}

    [merged, whole] = report_json(capsys, *map(str, reversed(dirs)), str(full))
    assert merged["shards"]["present"] == [1, 2, 3] and merged["shards"]["questions"] == 10
    for key in ("n", "correct", "errors", "accuracy", "generated_tokens"):
        assert merged[key] == whole[key], key
    assert merged["n"] == 10
    assert merged["run"].endswith("sc[3 shards]")

    capsys.readouterr()
    assert main(["report", *map(str, dirs)]) == 0
    assert "all 3 shards merged; 10 of 10 selected questions have records" in (
        capsys.readouterr().out
    )
    assert (tmp_path / "accuracy_vs_tokens.png").is_file()  # beside the shards' directories
    assert not Path("sc[3 shards]").exists()


def test_each_shard_resumes_on_its_own_and_keeps_its_shard(scripted, tmp_path, capsys) -> None:
    data = write_data(tmp_path, 8)
    [first, second] = run_shards(data, tmp_path, scripted.base_url, 2)
    results = second / "results.jsonl"
    lines = results.read_text().splitlines()
    results.write_text("\n".join(lines[:-1]) + "\n")  # the last question was cut off
    before = len(scripted.posts)
    assert main(eval_args(data, second, scripted.base_url, "sc", "--shard", "2/2")) == 0
    assert len(scripted.posts) - before == 1  # only the missing question
    assert len(load_records(second)) == len(lines)
    # A run directory belongs to its shard.
    capsys.readouterr()
    assert main(eval_args(data, second, scripted.base_url, "sc", "--shard", "1/2")) == 2
    assert "shard" in capsys.readouterr().err
    assert main(eval_args(data, first, scripted.base_url, "sc")) == 2  # nor an unsharded run


def test_report_refuses_shards_that_do_not_belong_together(scripted, tmp_path, capsys) -> None:
    data = write_data(tmp_path, 8)
    dirs = run_shards(data, tmp_path / "a", scripted.base_url, 2)

    def refused(*paths: Path | str, message: str) -> None:
        capsys.readouterr()
        assert main(["report", *map(str, paths)]) == 2
        err = capsys.readouterr().err
        assert message in err, err

    # other search settings
    other = run_shards(data, tmp_path / "b", scripted.base_url, 2, "--sc-k", "4")
    refused(dirs[0], other[1], message="has sc_k 4")
    # another data file (same ids, other gold answers)
    moved = write_data(tmp_path / "b", 8, gold={"q3": "999"})
    [_, wrong] = run_shards(moved, tmp_path / "c", scripted.base_url, 2)
    refused(dirs[0], wrong, message="has data_sha256")
    # a shard given twice, and a missing shard
    copy = tmp_path / "copy"
    shutil.copytree(dirs[1], copy)
    refused(*dirs, copy, message="shard 2/2 is given twice")
    refused(dirs[0], message="shard(s) 2/2 missing")
    # records in the wrong shard (a run directory mislabelled by hand)
    bad = tmp_path / "bad"
    shutil.copytree(dirs[1], bad)
    with (bad / "results.jsonl").open("a") as f:
        f.write((dirs[0] / "results.jsonl").read_text().splitlines()[0] + "\n")
    refused(dirs[0], bad, message="is in shard 1/2 and shard 2/2")  # done twice
    refused(bad, "--allow-partial", message="holds question 'q")  # in the wrong shard

    # --allow-partial reports what is there, and says so
    capsys.readouterr()
    assert main(["report", str(dirs[0]), "--allow-partial"]) == 0
    n = len(load_records(dirs[0]))
    assert f"shards 1/2 only merged; {n} of {n} selected" in capsys.readouterr().out.replace(
        "\n", " "
    )
    assert (dirs[0] / "accuracy_vs_tokens.png").is_file()  # plots go to the directory given
