"""Sharded evaluation: `rstar eval --shard i/N` runs a share of a dataset, `rstar report` merges.

A question belongs to shard ``1 + (hash(id) mod N)`` (blake2b of its id): the same on every
machine and in every session, whatever the order of the file, and an id keeps its shard when
questions are added. So N machines given the same data file and ``--shard 1/N`` ... ``N/N`` split
it with nothing done twice and nothing left out, and each resumes its own run directory. Shares
are equal up to hashing noise (about ``sqrt(questions / N)``).

Merging (:func:`merge_shards`) takes run directories whose settings name a shard, groups those of
one experiment, and refuses a group whose shards differ in anything but the endpoint (method,
dataset, data file by content hash, search settings, ``--limit``, model), that repeats a shard,
lacks one (unless partial merges are allowed), or whose records overlap or sit in the wrong shard.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from langgraph_rstar.eval.errors import EvalError
from langgraph_rstar.eval.scoring import summarize

if TYPE_CHECKING:  # pragma: no cover - typing only
    from langgraph_rstar.eval.reporting import RunReport

__all__ = ["Shard", "merge_shards", "shard_of"]

_T = TypeVar("_T")

# What shards of one experiment must agree on (settings.json keys); the endpoint may differ.
_SAME = ("method", "dataset", "sc_k", "data_sha256", "config", "limit", "model")


def shard_of(item_id: str, count: int) -> int:
    """The shard (1..count) that question ``item_id`` belongs to.

    Example:
        >>> shard_of("gsm8k-17", 4) == shard_of("gsm8k-17", 4)
        True
    """
    digest = hashlib.blake2b(str(item_id).encode("utf-8"), digest_size=8).digest()
    return 1 + int.from_bytes(digest, "big") % count


@dataclasses.dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (both counted from 1, as in ``--shard 2/4``)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 1 <= self.index <= self.count:
            raise EvalError(
                f"shard {self.index}/{self.count} does not exist: use i/N with 1 <= i <= N "
                "(shards count from 1)"
            )

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"2/4"`` -> ``Shard(2, 4)``.

        Example:
            >>> Shard.parse("2/4")
            Shard(index=2, count=4)
        """
        index, sep, count = text.strip().partition("/")
        try:
            numbers = (int(index), int(count)) if sep else None
        except ValueError:
            numbers = None
        if numbers is None:
            raise EvalError(f"--shard expects i/N (e.g. 2/4), got {text!r}")
        return cls(*numbers)

    @classmethod
    def from_settings(cls, value: Any) -> Shard | None:
        """The shard recorded in a run's settings (``None``: not a sharded run)."""
        if not isinstance(value, dict):
            return None
        return cls(int(value["index"]), int(value["count"]))

    def to_settings(self) -> dict[str, int]:
        return {"index": self.index, "count": self.count}

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def contains(self, item_id: str) -> bool:
        return shard_of(item_id, self.count) == self.index

    def select(self, items: Sequence[_T], *, key: Any = lambda item: item.id) -> list[_T]:
        """The items of this shard, in their order."""
        return [item for item in items if self.contains(key(item))]


def merge_shards(runs: Sequence[RunReport], *, allow_partial: bool = False) -> list[RunReport]:
    """Replace the shards of each experiment by one merged run (unsharded runs pass through).

    Args:
        runs: Loaded runs, in the order given.
        allow_partial: Merge a group that lacks shards (its label says which it has) instead of
            refusing it.

    Returns:
        The runs, each group of shards merged into one at the place of its first shard.

    Raises:
        EvalError: Shards that belong together but differ in their settings, a shard given
            twice, missing shards, or records that overlap or belong to another shard.
    """
    from langgraph_rstar.eval.reporting import RunReport

    groups: dict[tuple[Any, ...], list[tuple[Shard, RunReport]]] = {}
    out: list[RunReport | tuple[Any, ...]] = []
    for run in runs:
        shard = Shard.from_settings(run.settings.get("shard"))
        if shard is None:
            out.append(run)
            continue
        group = (run.method, run.task, shard.count)
        if group not in groups:
            groups[group] = []
            out.append(group)
        groups[group].append((shard, run))

    merged: dict[tuple[Any, ...], RunReport] = {}
    for group, members in groups.items():
        method, task, count = group
        what = f"{method} on {task} in {count} shards"
        first_shard, first = members[0]
        for shard, run in members[1:]:
            for key in _SAME:
                a, b = first.settings.get(key), run.settings.get(key)
                if a != b:
                    raise EvalError(
                        f"cannot merge {what}: shard {shard} ({run.path}) has {key} "
                        f"{_short(b)}, shard {first_shard} ({first.path}) has {_short(a)}; shards "
                        "of one run must use the same data, settings and model"
                    )
        seen: dict[int, Path] = {}
        for shard, run in members:
            if shard.index in seen:
                raise EvalError(
                    f"cannot merge {what}: shard {shard} is given twice ({seen[shard.index]} and "
                    f"{run.path})"
                )
            seen[shard.index] = run.path
        missing = [i for i in range(1, count + 1) if i not in seen]
        if missing and not allow_partial:
            raise EvalError(
                f"cannot merge {what}: shard(s) {', '.join(f'{i}/{count}' for i in missing)} "
                "missing; give every shard's run directory (or --allow-partial to report what "
                "is there)"
            )
        owner: dict[str, Shard] = {}
        records: list[dict[str, Any]] = []
        for shard, run in members:
            for rec in run.records:
                rid = str(rec["id"])
                if rid in owner:
                    raise EvalError(
                        f"cannot merge {what}: question {rid!r} is in shard {owner[rid]} and "
                        f"shard {shard}"
                    )
                if not shard.contains(rid):
                    raise EvalError(
                        f"cannot merge {what}: {run.path} (shard {shard}) holds question {rid!r} "
                        f"of shard {shard_of(rid, count)}/{count}"
                    )
                owner[rid] = shard
                records.append(rec)
        have = sorted(seen)
        settings = dict(first.settings)
        settings["shard"] = None
        settings["merged_shards"] = {
            "count": count,
            "present": have,
            "runs": [str(run.path) for _, run in sorted(members, key=lambda m: m[0].index)],
            "questions": sum(_selected(run) for _, run in members),
        }
        label_path = Path(_common_name([run.path for _, run in members]))
        merged[group] = RunReport(label_path, settings, records, summarize(records))
    return [merged[item] if isinstance(item, tuple) else item for item in out]


def _selected(run: RunReport) -> int:
    """How many questions the shard's run selected (its last session says)."""
    sessions = run.settings.get("sessions") or [{}]
    return int(sessions[-1].get("questions") or 0)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _common_name(paths: Sequence[Path]) -> str:
    """A name for merged shards: their common directory and name prefix, e.g. ``runs/rstar``."""
    names = [p.name for p in paths]
    prefix = names[0]
    for name in names[1:]:
        while not name.startswith(prefix):
            prefix = prefix[:-1]
    prefix = prefix.rstrip("-_.") or "shards"
    parents = {p.parent for p in paths}
    parent = parents.pop() if len(parents) == 1 else Path(".")
    return str(parent / f"{prefix}[{len(paths)} shards]")
