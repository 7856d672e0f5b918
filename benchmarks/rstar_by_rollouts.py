"""rStar's full pipeline truncated to its first k rollouts, from a finished eval run.

    python benchmarks/rstar_by_rollouts.py benchmarks/runs/<run>/rstar/results.jsonl

For k = 1..rollouts: each record cut to the candidates of rollouts < k and their stored
discriminator verdicts, re-scored with the `mutual` rule (``rescore_records``, no model call),
and an estimate of the generated tokens those rollouts cost (the target's tokens × the share of
samples in nodes those rollouts created, plus the discriminator's tokens × the share of its
checks on those candidates). Puts rStar beside SC at about equal tokens.
"""

import json
import sys
from typing import Any

from langgraph_rstar.eval.scoring import rescore_records


def truncated(rec: dict[str, Any], k: int) -> tuple[dict[str, Any], float]:
    """The record as if the search had stopped after ``k`` rollouts, and its estimated tokens."""
    nodes = [n for i, n in rec["tree"].items() if i != "0"]
    samples = sum(n.get("samples") or 1 for n in nodes)
    early = sum(n.get("samples") or 1 for n in nodes if (n.get("rollout") or 0) < k)
    cands = [c for c in rec["candidates"] if c["rollout"] < k]
    ids = {c["node_id"] for c in cands}
    checks = rec["verification"]["checks"]
    kept = [c for c in checks if c["node_id"] in ids]
    usage = rec["usage"]
    tokens = usage["target"]["completion_tokens"] * early / samples + usage["discriminator"][
        "completion_tokens"
    ] * len(kept) / max(len(checks), 1)
    return {
        **rec,
        "candidates": cands,
        "verification": {**rec["verification"], "checks": kept},
    }, tokens


recs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
rollouts = max(c["rollout"] for r in recs for c in r.get("candidates") or []) + 1
print("rollouts | mutual correct | est. generated tokens/q")
for k in range(1, rollouts + 1):
    cut = [truncated(r, k) for r in recs]
    correct, n = rescore_records([r for r, _ in cut], recs[0]["dataset"])["mutual"]
    print(f"{k} | {correct}/{n} | {round(sum(t for _, t in cut) / n):,}")
