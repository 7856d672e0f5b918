"""Where the client's CPU per model request goes, layer by layer, against the 1 % budget.

    python benchmarks/bench_client_floor.py [--questions 20] [--repeats 2]

Runs ``--questions`` ``paper`` questions at once against the simulated vLLM (``sim_server.py``,
sped up: only the client's CPU is measured) and records every request the backend sent. Then
it replays the same requests (same bodies, so the same reply sizes; all at once, at most 256
in flight) through thinner and thinner stacks and prints process CPU per request for each:

* ``full search``: the whole rStar run (search, actions as graph nodes, votes, discriminator);
* ``backend request``: ``OpenAICompatibleLLM._request`` (tenacity, trace hook, the size-capped
  streamed read, parsing);
* ``openai SDK``: ``AsyncOpenAI...with_streaming_response.create`` and reading the body, as the
  backend sends it (the package's required HTTP client);
* ``HTTP library``: a bare POST with the httpx client the SDK uses underneath;

the first three under each of the SDK's transports (``http="httpx"``, its default, and
``http="aiohttp"``, ``openai[aiohttp]``);

and, without any model call, what making each action a LangGraph node costs:
``LangGraph action task`` runs one ``task`` per action inside a graph node, each running a
compiled one-node subgraph (as the controller does), per action taken, scaled to per request.

The 1 % budget per request is 1 % of the batch's wall time per request, taken from
``bench_sim.py``'s batch (``--batch-json``, default: the committed after-results) and the
requests per question measured here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.append(str(HERE.parent))  # after PYTHONPATH: a checkout given there wins

import openai  # noqa: E402
from langchain_core.runnables import RunnableConfig  # noqa: E402
from langgraph.func import task  # noqa: E402
from langgraph.graph import END, START, StateGraph  # noqa: E402
from typing_extensions import TypedDict  # noqa: E402

from langgraph_rstar import OpenAICompatibleLLM, RStarConfig, asolve, controller  # noqa: E402
from langgraph_rstar.backends import openai_compat  # noqa: E402
from tests.statistical_world import world_question  # noqa: E402

sys.path.insert(0, str(HERE))
from bench_client_cpu import SPEED  # noqa: E402
from bench_sim import Server  # noqa: E402

IN_FLIGHT = 256


class Recorder:
    """Records each request ``_request`` makes (prompts, k, params, the SDK kwargs)."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], int, Any, dict[str, Any]]] = []
        self.actions = 0
        self._request = OpenAICompatibleLLM._request
        self._merge = controller.Controller._merge

    def __enter__(self) -> Recorder:
        rec = self

        async def request(self: Any, prompts: list[str], k: int, params: Any) -> Any:
            kwargs = self._request_kwargs(prompts, k, params)
            rec.calls.append((list(prompts), k, params, kwargs))
            return await rec._request(self, prompts, k, params)

        def merge(self: Any, out: Any) -> None:
            rec.actions += 1
            rec._merge(self, out)

        OpenAICompatibleLLM._request = request  # type: ignore[method-assign]
        controller.Controller._merge = merge  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        OpenAICompatibleLLM._request = self._request  # type: ignore[method-assign]
        controller.Controller._merge = self._merge  # type: ignore[method-assign]


async def full_search(url: str, n: int, offset: int, http: str = "httpx") -> tuple[float, Recorder]:
    llm = OpenAICompatibleLLM(
        url, "cpu", max_retries=2, max_in_flight=IN_FLIGHT, timeout=3600, http=http
    )
    cfg = RStarConfig.preset("paper")
    with Recorder() as rec:
        cpu0 = time.process_time()
        await asyncio.gather(
            *(asolve(world_question(offset + i), target=llm, config=cfg) for i in range(n))
        )
        cpu = time.process_time() - cpu0
    await llm.aclose()
    return cpu, rec


async def _all(jobs: list[Any]) -> float:
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def one(job: Any) -> None:
        async with gate:
            await job()

    cpu0 = time.process_time()
    await asyncio.gather(*(one(j) for j in jobs))
    return time.process_time() - cpu0


async def backend_layer(url: str, calls: list[Any], http: str = "httpx") -> float:
    llm = OpenAICompatibleLLM(
        url, "cpu", max_retries=2, max_in_flight=IN_FLIGHT, timeout=3600, http=http
    )
    fresh = [(p, k, openai_compat._Params(**_param_fields(params))) for p, k, params, _ in calls]
    cpu = await _all([lambda c=c: llm._request(*c) for c in fresh])
    await llm.aclose()
    return cpu


def _param_fields(params: Any) -> dict[str, Any]:
    keep = ("max_tokens", "stop", "temperature", "top_p", "top_k", "repetition_penalty", "seed")
    return {f: getattr(params, f) for f in keep}


async def sdk_layer(url: str, calls: list[Any], aiohttp: bool = False) -> float:
    """The SDK as the backend uses it: httpx pools of 32 connections taken in turn, or one
    aiohttp-transport client (``openai[aiohttp]``)."""
    if aiohttp:
        https = [openai.DefaultAioHttpClient(timeout=3600)]
    else:
        pools = IN_FLIGHT // openai_compat._POOL_CONNECTIONS
        https = [openai.DefaultAsyncHttpxClient(timeout=3600) for _ in range(pools)]
    clients = [
        openai.AsyncOpenAI(base_url=url, api_key="x", max_retries=0, http_client=h) for h in https
    ]

    async def send(client: openai.AsyncOpenAI, kwargs: dict[str, Any]) -> None:
        async with client.completions.with_streaming_response.create(**kwargs) as response:
            b"".join([chunk async for chunk in response.iter_bytes()])

    turns = [clients[i % len(clients)] for i in range(len(calls))]  # pools taken in turn
    jobs = [lambda c=c, kw=call[-1]: send(c, kw) for c, call in zip(turns, calls, strict=True)]
    cpu = await _all(jobs)
    for client in clients:
        await client.close()
    return cpu


async def http_layer(url: str, calls: list[Any]) -> float:
    lib = openai_compat._http_library()
    limits = lib.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
    async with lib.AsyncClient(timeout=3600, limits=limits) as http:

        async def send(kwargs: dict[str, Any]) -> None:
            body = {k: v for k, v in kwargs.items() if k != "extra_body"}
            body.update(kwargs.get("extra_body", {}))
            (await http.post(f"{url}/completions", json=body)).read()

        return await _all([lambda kw=kw: send(kw) for *_, kw in calls])


class _S(TypedDict):
    x: int


async def langgraph_layer(actions: int) -> float:
    """CPU of ``actions`` action tasks (a task running a one-node subgraph) in one graph node."""
    sub = StateGraph(_S)
    sub.add_node("a1_one_step", lambda s: {"x": s["x"] + 1})
    sub.add_edge(START, "a1_one_step")
    sub.add_edge("a1_one_step", END)
    expand = sub.compile(name="expand")

    @task(name="a1_one_step")
    async def act(request: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        return await expand.ainvoke(request, config)

    async def search(state: _S) -> _S:
        futures = [act({"x": i}) for i in range(actions)]
        await asyncio.gather(*futures)
        return {"x": actions}

    outer = StateGraph(_S)
    outer.add_node("search", search)
    outer.add_edge(START, "search")
    outer.add_edge("search", END)
    graph = outer.compile()
    cpu0 = time.process_time()
    await graph.ainvoke({"x": 0})
    return time.process_time() - cpu0


def budget_ms(batch_json: Path, requests_per_q: float) -> tuple[float, dict[str, Any]]:
    batch = json.loads(batch_json.read_text())["batch"]
    n = batch.get("answered") or 50
    return 1000 * 0.01 * batch["wall"] / (n * requests_per_q), batch


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--batch-json", type=Path, default=HERE / "results" / "bench_sim-after.json")
    args = ap.parse_args()
    server = Server(argparse.Namespace(p=0.3, seed=0), *SPEED)
    url = server.url
    rows: dict[str, list[float]] = {}
    try:
        await server.wait()
        await full_search(url, 2, 0)  # warm-up: imports, first compiles
        for r in range(args.repeats):
            offset = 1000 + 100 * r  # the same questions under both transports in a repeat
            for http in ("httpx", "aiohttp"):
                cpu, rec = await full_search(url, args.questions, offset, http)
                n = len(rec.calls)
                rows.setdefault(f"full search, {http}", []).append(1000 * cpu / n)
                if http == "httpx":
                    calls, actions = rec.calls, rec.actions
            n = len(calls)
            for http in ("httpx", "aiohttp"):
                cpu = await backend_layer(url, calls, http)
                rows.setdefault(f"backend request, {http}", []).append(1000 * cpu / n)
            for http in ("httpx", "aiohttp"):
                cpu = await sdk_layer(url, calls, aiohttp=http == "aiohttp")
                rows.setdefault(f"openai SDK, {http}", []).append(1000 * cpu / n)
            rows.setdefault("HTTP library (httpx POST)", []).append(
                1000 * await http_layer(url, calls) / n
            )
            lg = await langgraph_layer(actions)
            rows.setdefault("LangGraph action task", []).append(1000 * lg / n)
            rows.setdefault("_requests_per_q", []).append(n / args.questions)
            rows.setdefault("_actions_per_request", []).append(actions / n)
    finally:
        server.stop()
    per_q = statistics.fmean(rows.pop("_requests_per_q"))
    per_req = statistics.fmean(rows.pop("_actions_per_request"))
    budget, batch = budget_ms(args.batch_json, per_q)
    print(
        f"# client CPU per model request, layer by layer: {args.questions} paper questions at "
        f"once, {args.repeats} repeats; {per_q:.1f} requests and {per_q * per_req:.1f} actions "
        "per question\n"
    )
    print(
        f"1 % budget: {budget:.2f} ms per request (batch of {batch.get('answered', 50)} "
        f"questions in {batch['wall']:.0f} s, {args.batch_json.name})\n"
    )
    print("| layer | CPU ms per request | x the 1 % budget |")
    print("|---|---|---|")
    for name, values in rows.items():
        ms = statistics.fmean(values)
        print(f"| {name} | {ms:.2f} | {ms / budget:.1f}x |")


if __name__ == "__main__":
    asyncio.run(main())
