"""rStar's full pipeline truncated to its first k rollouts, from a finished eval run.

    python benchmarks/rstar_by_rollouts.py benchmarks/runs/<run>/rstar/results.jsonl

For k = 1..rollouts: the candidates of rollouts < k with their stored discriminator verdicts,
re-scored with the `mutual` rule, and an estimate of the generated tokens those rollouts cost
(the target's tokens × the share of samples in nodes those rollouts created, plus the
discriminator's tokens × the share of its checks on those candidates). Puts rStar beside SC at
about equal tokens.
"""

import json
import sys

from langgraph_rstar.answers import answers_equal
from langgraph_rstar.discriminator import rescore

recs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
print("rollouts | mutual correct | est. generated tokens/q")
rollouts = max(c["rollout"] for r in recs for c in r.get("candidates") or []) + 1
for k in range(1, rollouts + 1):
    hit = 0
    toks = 0.0
    for r in recs:
        nodes = r["tree"]
        allsamp = sum(n.get("samples") or 1 for i, n in nodes.items() if i != "0")
        ksamp = sum(
            n.get("samples") or 1
            for i, n in nodes.items()
            if i != "0" and (n.get("rollout") or 0) < k
        )
        cands = [c for c in r["candidates"] if c["rollout"] < k]
        ids = {c["node_id"] for c in cands}
        ver = dict(r["verification"])
        ver["checks"] = [c for c in ver["checks"] if c["node_id"] in ids]
        ntot = len(r["verification"]["checks"]) or 1
        u = r["usage"]
        toks += (
            u["target"]["completion_tokens"] * ksamp / allsamp
            + u["discriminator"]["completion_tokens"] * len(ver["checks"]) / ntot
        )
        if not cands:
            continue
        f = rescore(cands, ver, task=r["dataset"], prior=2.0, agreements=(None,))
        a = f["mutual"]["answer"]
        hit += a is not None and answers_equal(a, r["gold"], r["dataset"])
    print(f"{k} | {hit}/{len(recs)} | {round(toks / len(recs)):,}")
