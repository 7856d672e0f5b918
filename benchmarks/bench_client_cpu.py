"""Client CPU per model request: the ``expand`` subgraph against calling the action node directly.

    python benchmarks/bench_client_cpu.py [--questions 20] [--repeats 2]

Each action the search takes runs the compiled ``expand`` graph (so that the five actions are
graph nodes: drawn, streamed and traced under their names). This script measures what that
costs the client: ``--questions`` ``paper`` questions at once against the simulated vLLM
(``sim_server.py``, sped up: only the client's CPU is measured), once as shipped and once with
each action task calling the action's node directly (no subgraph run: a measurement-only
variant), interleaved ``--repeats`` times in one process. It prints process CPU seconds (all
threads) per model request and per question for each variant and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.append(str(HERE.parent))  # after PYTHONPATH: a checkout given there wins

from langchain_core.runnables import RunnableConfig  # noqa: E402
from langgraph.func import task  # noqa: E402

from langgraph_rstar import OpenAICompatibleLLM, RStarConfig, asolve, controller  # noqa: E402
from tests.statistical_world import world_question  # noqa: E402

sys.path.insert(0, str(HERE))
from bench_sim import Server  # noqa: E402

SHIPPED = controller._ActionTasks
SPEED = ("--step-ms", "3", "--per-seq-ms", "0.01", "--prefill-ms", "0.005")


class DirectActionTasks:
    """The measurement-only variant: each action task calls the action's node runnable."""

    def __init__(self, expand: Any) -> None:
        self.tasks: dict[str, Any] = {}
        self.sync_tasks: dict[str, Any] = {}
        for action in controller.ACTIONS:
            bound = expand.nodes[action].bound

            async def arun(request: Any, config: RunnableConfig, bound: Any = bound) -> Any:
                return await bound.ainvoke(request, config)

            arun.__name__ = action
            self.tasks[action] = task(name=action)(arun)


async def run_batch(url: str, n: int, offset: int) -> tuple[float, int]:
    llm = OpenAICompatibleLLM(url, "cpu", max_retries=2, max_in_flight=256, timeout=3600)
    cfg = RStarConfig.preset("paper")
    cpu0 = time.process_time()
    results = await asyncio.gather(
        *(asolve(world_question(offset + i), target=llm, config=cfg) for i in range(n))
    )
    cpu = time.process_time() - cpu0
    await llm.aclose()
    requests = sum(role.get("requests", 0) for r in results for role in r.usage.values())
    return cpu, requests


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    # (sped up: only the client's CPU is measured)
    server = Server(argparse.Namespace(p=0.3, seed=0), *SPEED)
    url = server.url
    try:
        await server.wait()
        await run_batch(url, 2, 0)  # warm-up: imports, first compiles
        seen: dict[str, list[tuple[float, int]]] = {"expand subgraph": [], "node called": []}
        for r in range(args.repeats):
            for name, tasks in (("expand subgraph", SHIPPED), ("node called", DirectActionTasks)):
                controller._ActionTasks = tasks  # type: ignore[misc]
                # the same questions for both variants within a repeat
                seen[name].append(await run_batch(url, args.questions, 1000 + 100 * r))
        controller._ActionTasks = SHIPPED  # type: ignore[misc]
    finally:
        server.stop()
    print(f"# client CPU, {args.questions} paper questions at once, {args.repeats} repeats\n")
    print("| variant | CPU ms per request | CPU s per question | requests per question |")
    print("|---|---|---|---|")
    per_request = {}
    for name, runs in seen.items():
        per_request[name] = statistics.fmean(1000 * cpu / req for cpu, req in runs)
        per_q = statistics.fmean(cpu / args.questions for cpu, _ in runs)
        reqs = statistics.fmean(req / args.questions for _, req in runs)
        print(f"| {name} | {per_request[name]:.2f} | {per_q:.3f} | {reqs:.1f} |")
    ratio = per_request["expand subgraph"] / per_request["node called"]
    print(f"\nexpand subgraph / node called: {ratio:.2f}x CPU per request")


if __name__ == "__main__":
    asyncio.run(main())
