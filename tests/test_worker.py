"""CPU work runs on the worker loop, model calls on the caller's loop, and neither blocks it."""

from __future__ import annotations

import asyncio
import collections
import threading
import time

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from langgraph_rstar import OpenAICompatibleLLM, asolve
from langgraph_rstar.backends import Generation
from langgraph_rstar.worker import HomeLoopBackend, run_on_worker
from tests.conftest import QUESTIONS


async def test_cpu_work_on_the_worker_leaves_the_loop_responsive():
    def grind(seconds: float) -> int:  # pure-Python CPU work, like a SymPy comparison
        end, n = time.perf_counter() + seconds, 0
        while time.perf_counter() < end:
            n += 1
        return n

    async def work() -> tuple[int, str]:
        return grind(0.6), threading.current_thread().name

    lags: list[float] = []

    async def ticker() -> None:
        loop = asyncio.get_running_loop()
        for _ in range(40):
            t = loop.time()
            await asyncio.sleep(0.01)
            lags.append(loop.time() - t - 0.01)

    (count, thread), _ = await asyncio.gather(run_on_worker(work), ticker())
    assert count > 0 and thread == "rstar-worker"
    # on the loop itself the grind would stall it for 0.6 s (room left for a loaded machine)
    assert max(lags) < 0.3, f"the event loop stalled for {max(lags):.3f} s"


class RecordingBackend:
    name = "rec"

    def __init__(self) -> None:
        self.usage = None
        self.threads: list[str] = []

    async def generate(self, prompts, **kwargs) -> Generation:
        self.threads.append(threading.current_thread().name)
        await asyncio.sleep(0.05)
        return Generation(choices=[[] for _ in prompts])


async def test_model_calls_from_the_worker_run_on_the_callers_loop():
    inner = RecordingBackend()
    llm = HomeLoopBackend(inner)

    async def work() -> int:
        gen = await llm.generate(["a", "b"], n=1)
        return len(gen.choices)

    assert await run_on_worker(work) == 2
    assert inner.threads == [threading.current_thread().name]


async def test_cancelling_the_caller_cancels_the_work_on_the_worker():
    started, cancelled = threading.Event(), threading.Event()

    async def work() -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    task = asyncio.ensure_future(run_on_worker(work))
    while not started.is_set():
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(cancelled.wait, 5)


async def test_asolve_without_a_checkpointer_stores_nothing(monkeypatch, scripted, tiny_config):
    stored: list[str] = []
    for name in ("put", "aput", "put_writes", "aput_writes"):
        original = getattr(InMemorySaver, name)

        def spy(self, *args, _name=name, _original=original, **kwargs):
            stored.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(InMemorySaver, name, spy)
    llm = OpenAICompatibleLLM(scripted.base_url, "m", max_retries=0)
    question = next(iter(QUESTIONS))
    result = await asolve(question, target=llm, config=tiny_config)
    assert result.answer == "5" and result.tree["0"]["N"] == tiny_config.num_rollouts
    assert result.usage["target"]["requests"] > 0 and result.candidates
    assert stored == []
    saver = InMemorySaver()
    again = await asolve(question, target=llm, config=tiny_config, checkpointer=saver)
    assert again.answer == "5" and stored  # the same run with a checkpointer does store


@pytest.mark.parametrize(("task", "where"), [("math500", "rstar-worker"), ("gsm8k", "caller")])
async def test_votes_run_on_the_worker_only_where_comparing_can_be_slow(
    monkeypatch, scripted, tiny_config, task, where
):
    """Math answers (SymPy) are voted on the worker loop, in the actions and the discriminator;
    numbers on the caller's loop (cheap: no thread hop per model call)."""
    import langgraph_rstar.actions
    import langgraph_rstar.answers

    caller = threading.current_thread().name
    threads: list[str] = []

    def spy(original):
        def vote(*args, **kwargs):
            name = threading.current_thread().name
            # (finalize's selection runs in asyncio's thread pool, for every family)
            threads.append("caller" if name == caller else name.split("_")[0])
            return original(*args, **kwargs)

        return vote

    monkeypatch.setattr(
        langgraph_rstar.actions, "majority_vote", spy(langgraph_rstar.actions.majority_vote)
    )
    monkeypatch.setattr(
        langgraph_rstar.answers, "answers_equal", spy(langgraph_rstar.answers.answers_equal)
    )
    llm = OpenAICompatibleLLM(scripted.base_url, "m", max_retries=0)
    await asolve(next(iter(QUESTIONS)), target=llm, config=tiny_config.replace(task=task))
    assert len(threads) > 5 and set(threads) - {"asyncio"} == {where}, collections.Counter(threads)
