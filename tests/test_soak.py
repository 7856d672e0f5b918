"""The soak: 50 questions while 20 % of the server's replies fail, against a fault-free run.

The statistical world (tests/statistical_world.py) answers as a pure function of the request, so
a retried request gets the same completion it would have got the first time: a search that
survives every fault by retrying ends exactly where the fault-free one does. Faults: 5xx, 429
with Retry-After, resets, closed connections, stalls past the deadline, bodies that trickle or
break off, and malformed bodies; none hits the same request more than 3 times (the client
retries 6), so every request eventually goes through.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import threading
import time
from collections import Counter

from langgraph_rstar import OpenAICompatibleLLM, RStarConfig, asolve
from tests.conftest import SOAK_REPORT
from tests.scripted_server import Fault, RequestRecord, ScriptedServer
from tests.statistical_world import StatisticalWorld, world_question

QUESTIONS = 50
FAULT_RATE = 0.2
FAULTS = (
    Fault("status", 500),
    Fault("status", 502),
    Fault("status", 503),
    Fault("status", 429, headers=(("Retry-After", "0.05"),)),
    Fault("reset"),
    Fault("close"),
    Fault("stall", seconds=5),  # past the client's 1 s deadline
    Fault("trickle", seconds=0.05),
    Fault("partial"),
    Fault("body", body=b"<html>502 Bad Gateway</html>"),
    Fault("body", body=b'{"object": "text_completion"}'),
)


def label(fault: Fault) -> str:
    return f"{fault.kind} {fault.status}" if fault.kind == "status" else fault.kind


class FaultPlan:
    """Fails a request with probability ``rate``, at most ``most`` times for the same body.

    Decisions are a pure function of (seed, request body, attempt), so the plan is the same
    whatever the concurrency.
    """

    def __init__(self, rate: float, seed: int, most: int = 3) -> None:
        self.rate, self.seed, self.most = rate, seed, most
        self.attempts: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, rec: RequestRecord) -> Fault | None:
        key = hashlib.sha256(json.dumps(rec.body, sort_keys=True).encode()).hexdigest()
        with self._lock:
            attempt = self.attempts[key]
            self.attempts[key] += 1
        rng = random.Random(f"{self.seed}|{key}|{attempt}")
        if attempt >= self.most or rng.random() >= self.rate:
            return None
        fault = rng.choice(FAULTS)
        with self._lock:
            self.injected[
                f"{fault.kind} {fault.status}" if fault.kind == "status" else fault.kind
            ] += 1
        return fault


async def solve_all(world: StatisticalWorld, plan: FaultPlan | None) -> tuple[list, int]:
    config = RStarConfig.preset("fast")
    with ScriptedServer(world.respond, fault_hook=plan) as server:
        llm = OpenAICompatibleLLM(
            server.base_url, "world", timeout=1.0, max_retries=6, max_in_flight=64
        )
        llm.retry_initial_wait, llm.retry_max_wait = 0.01, 0.1
        gate = asyncio.Semaphore(10)

        async def one(i: int):
            async with gate:
                return await asolve(world_question(i), target=llm, config=config)

        results = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(QUESTIONS))), 240)
        await llm.aclose()
        return results, len(server.posts)


async def test_soak_20_percent_faults_give_the_fault_free_answers():
    world = StatisticalWorld(p=0.4, seed=5)
    t0 = time.monotonic()
    clean, clean_posts = await solve_all(world, None)
    t1 = time.monotonic()
    plan = FaultPlan(FAULT_RATE, seed=2024)
    faulty, faulty_posts = await solve_all(world, plan)
    t2 = time.monotonic()

    same = sum(a.answer == b.answer for a, b in zip(clean, faulty, strict=True))
    same_trees = sum(a.tree == b.tree for a, b in zip(clean, faulty, strict=True))
    injected = sum(plan.injected.values())
    SOAK_REPORT.update(
        questions=QUESTIONS,
        clean_seconds=round(t1 - t0, 1),
        faulty_seconds=round(t2 - t1, 1),
        requests=faulty_posts,
        faults=injected,
        fault_share=round(injected / faulty_posts, 3),
        by_kind=dict(plan.injected),
        same_answers=same,
        same_trees=same_trees,
        right_answers=sum(r.answer == world.right_answer(i) for i, r in enumerate(faulty)),
    )
    assert same == QUESTIONS, [(a.answer, b.answer) for a, b in zip(clean, faulty, strict=True)]
    assert same_trees == QUESTIONS  # not just the answers: the very same searches
    assert not any(r.degraded for r in faulty)
    # The faults really happened: about one reply in five, of every kind.
    # Every fault cost one more request (a reply slower than the deadline on a loaded
    # machine may add a retry of its own).
    assert clean_posts + injected <= faulty_posts <= (clean_posts + injected) * 1.02
    assert 0.15 <= injected / faulty_posts <= 0.25
    assert set(plan.injected) == {label(f) for f in FAULTS}
