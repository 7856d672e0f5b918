"""RoutedLLM over several real HTTP servers (tests/scripted_server.py) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from langgraph_rstar import RStarConfig, asolve
from langgraph_rstar.backends import (
    BackendError,
    LLMBackend,
    OpenAICompatibleLLM,
    RoutedLLM,
    RoutingPolicy,
    affinity_key,
    current_affinity_key,
)
from langgraph_rstar.graph import question_key
from tests.scripted_server import ScriptedServer
from tests.statistical_world import StatisticalWorld, world_question

HEADER = "x-session-id"


def named(name: str):
    """A responder that says which server answered."""
    return lambda prompt, params: f"{name}:{prompt}"


_created: list[RoutedLLM | OpenAICompatibleLLM] = []


def make_router(servers: list[ScriptedServer], **kwargs: Any) -> RoutedLLM:
    """A router over ``servers``; policy fields among ``kwargs`` go to its RoutingPolicy."""
    policy = {k: kwargs.pop(k) for k in list(kwargs) if k in RoutingPolicy.__dataclass_fields__}
    kwargs.setdefault("timeout", 10)
    router = RoutedLLM.from_urls(
        [s.base_url for s in servers], "scripted", policy=RoutingPolicy(**policy), **kwargs
    )
    router.retry_initial_wait = 0.01  # keep retry tests fast
    router.retry_max_wait = 0.05
    _created.append(router)
    return router


@pytest.fixture(autouse=True)
async def _close_backends() -> AsyncIterator[None]:
    yield
    while _created:
        await _created.pop().aclose()


def start_servers(count: int = 3, **kwargs: Any) -> list[ScriptedServer]:
    return [ScriptedServer(named("ABC"[i]), **kwargs).start() for i in range(count)]


@pytest.fixture
def trio() -> Iterator[list[ScriptedServer]]:
    servers = start_servers()
    yield servers
    for s in servers:
        s.stop()


@pytest.fixture
def slow_trio() -> Iterator[list[ScriptedServer]]:
    servers = start_servers(delay=0.3)
    yield servers
    for s in servers:
        s.stop()


def served_by(text: str) -> str:
    return text.split(":", 1)[0]


def stats_of(router: RoutedLLM, server: ScriptedServer) -> dict[str, Any]:
    return next(s for s in router.replica_stats() if s["replica"] == server.base_url)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- load balancing --------------------------------------------------------------------------


async def test_concurrent_calls_without_a_key_spread_evenly(slow_trio) -> None:
    router = make_router(slow_trio)
    gens = await asyncio.gather(*(router.generate([f"p{i}"]) for i in range(9)))
    assert Counter(served_by(g.choices[0][0].text) for g in gens) == {"A": 3, "B": 3, "C": 3}
    assert [len(s.posts) for s in slow_trio] == [3, 3, 3]
    assert [s.peak_concurrency() for s in slow_trio] == [3, 3, 3]  # all at the same time
    assert router.usage.requests == 9


async def test_load_is_counted_in_sequences_not_calls(slow_trio) -> None:
    router = make_router(slow_trio)
    big = asyncio.ensure_future(router.generate(["big"], n=8))
    await asyncio.sleep(0.05)
    small = await asyncio.gather(*(router.generate([f"s{i}"]) for i in range(3)))
    await big
    big_server = served_by((await big).choices[0][0].text)
    # The replica serving 8 sequences is busier than two serving one or two each.
    assert big_server not in {served_by(g.choices[0][0].text) for g in small}


# -- affinity --------------------------------------------------------------------------------


async def test_a_key_stays_on_one_replica_and_travels_as_a_header(trio) -> None:
    router = make_router(trio)
    keys = [f"question-{i}" for i in range(30)]
    home: dict[str, str] = {}
    for key in keys:
        with affinity_key(key):
            for _ in range(3):
                gen = await router.generate([key])
                assert home.setdefault(key, served_by(gen.choices[0][0].text)) == served_by(
                    gen.choices[0][0].text
                )
    assert len(set(home.values())) == 3  # keys are spread over the replicas
    for server in trio:
        for rec in server.posts:
            assert rec.headers[HEADER] == rec.prompts[0]  # the key, as a header
    # Another router (another process, replicas listed in another order) agrees on every key.
    other = make_router(trio[::-1])
    for key in keys:
        with affinity_key(key):
            gen = await other.generate([key])
        assert served_by(gen.choices[0][0].text) == home[key]


async def test_a_busy_replica_passes_the_key_to_the_next_one(slow_trio) -> None:
    router = make_router(slow_trio, balance=1.5)
    with affinity_key("hot"):
        preferred = served_by((await router.generate(["warm-up"])).choices[0][0].text)
        gens = await asyncio.gather(*(router.generate([f"p{i}"]) for i in range(4)))
    counts = Counter(served_by(g.choices[0][0].text) for g in gens)
    # Bounded load (balance 1.5): the key's replica takes the first and the fourth call (2 of
    # 4 sequences in flight is 1.5 x the mean); the other two spill over instead of queueing.
    assert counts[preferred] == 2
    assert sorted(counts.values()) == [1, 1, 2]


async def test_affinity_off_ignores_the_key(trio) -> None:
    router = make_router(trio, affinity=False)
    with affinity_key("same"):
        gens = [await router.generate(["x"]) for _ in range(6)]
    assert Counter(served_by(g.choices[0][0].text) for g in gens) == {"A": 2, "B": 2, "C": 2}


async def test_the_affinity_header_is_configurable_and_only_sent_under_a_key(trio) -> None:
    plain = OpenAICompatibleLLM(trio[0].base_url, "scripted", affinity_header="X-User-Id")
    silent = OpenAICompatibleLLM(trio[1].base_url, "scripted", affinity_header=None)
    _created.extend([plain, silent])
    await plain.generate(["no key"])
    with affinity_key("k1"):
        await plain.generate(["a"])
        await silent.generate(["b"])
    with affinity_key("ünïcode question?"):
        await plain.generate(["c"])
    first, second, third = trio[0].posts
    assert "x-user-id" not in first.headers
    assert second.headers["x-user-id"] == "k1"
    assert third.headers["x-user-id"].isalnum() and len(third.headers["x-user-id"]) == 24
    assert "x-user-id" not in trio[1].posts[0].headers
    assert HEADER not in trio[1].posts[0].headers
    assert current_affinity_key() is None  # the blocks restored the outer context


# -- failures: retries, ejection, re-admission -----------------------------------------------


async def test_a_transient_error_moves_to_another_replica_at_once(trio) -> None:
    router = make_router(trio)
    router.retry_initial_wait = router.retry_max_wait = 10.0  # a backoff would show
    trio[0].fail_next(1, 503)  # the first pick (all idle) is the first replica
    t0 = time.monotonic()
    gen = await router.generate(["x"])
    assert time.monotonic() - t0 < 5
    assert served_by(gen.choices[0][0].text) == "B"
    a = stats_of(router, trio[0])
    assert (a["failures"], a["admitted"]) == (1, True)  # one failure does not eject


async def test_a_failed_call_of_a_key_moves_to_the_keys_next_replica(trio) -> None:
    router = make_router(trio)
    key = "k-retry"
    first, second, _ = router.preference(key)
    by_url = {s.base_url: s for s in trio}
    by_url[first].fail_next(1, 503)
    with affinity_key(key):
        gen = await router.generate(["x"])
    assert served_by(gen.choices[0][0].text) == "ABC"[trio.index(by_url[second])]
    assert len(by_url[first].posts) == 1  # not asked again


async def test_when_every_replica_failed_the_router_backs_off_and_tries_again(trio) -> None:
    router = make_router(trio)
    for server in trio:
        server.fail_next(1, 503)
    gen = await router.generate(["x"])
    assert served_by(gen.choices[0][0].text) == "A"  # the fourth attempt, back to the first
    assert [len(s.posts) for s in trio] == [2, 1, 1]


async def test_a_rejected_request_is_not_sent_elsewhere(trio) -> None:
    router = make_router(trio)
    trio[0].fail_next(1, 400)
    with pytest.raises(BackendError, match="rejected") as info:
        await router.generate(["x"])
    assert not info.value.transient
    assert sum(len(s.posts) for s in trio) == 1
    assert all(s["failures"] == 0 for s in router.replica_stats())


async def test_a_killed_replica_is_ejected_and_its_share_moves(trio) -> None:
    router = make_router(trio, eject_after=2, probe_interval=60)
    trio[1].kill()
    gens = [await router.generate([f"p{i}"]) for i in range(12)]
    assert {served_by(g.choices[0][0].text) for g in gens} == {"A", "C"}
    b = stats_of(router, trio[1])
    assert (b["admitted"], b["failures"], b["calls"], b["ejections"]) == (False, 2, 2, 1)
    assert sum(s["served"] for s in router.replica_stats()) == 12


async def test_an_ejected_replica_is_readmitted_when_it_answers_again(trio) -> None:
    router = make_router(trio, eject_after=1, probe_interval=0.1)
    port = trio[1].port
    trio[1].kill()
    for i in range(3):
        await router.generate([f"down{i}"])
    assert not stats_of(router, trio[1])["admitted"]
    # Probes while it is still down fail: it stays out and gets no calls.
    await asyncio.sleep(0.15)
    for i in range(3):
        await router.generate([f"still-down{i}"])
        await asyncio.sleep(0.05)
    b = stats_of(router, trio[1])
    assert (b["admitted"], b["calls"]) == (False, 1)
    trio[1].start(port=port)
    before = len(trio[1].posts)
    deadline = time.monotonic() + 5
    while len(trio[1].posts) == before:
        assert time.monotonic() < deadline, "the revived replica never got a call"
        await router.generate(["up"])
        await asyncio.sleep(0.05)
    b = stats_of(router, trio[1])
    assert (b["admitted"], b["readmissions"]) == (True, 1)
    assert b["served"] >= 1


async def test_with_every_replica_down_the_call_fails_then_heals(trio) -> None:
    router = make_router(trio, eject_after=1, probe_interval=60, max_attempts=4)
    ports = [s.port for s in trio]
    for s in trio:
        s.kill()
    with pytest.raises(BackendError, match="no replica served the call in 4") as info:
        await router.generate(["x"])
    assert info.value.transient
    assert all(s.base_url in str(info.value) for s in trio)
    assert not any(s["admitted"] for s in router.replica_stats())
    for s, port in zip(trio, ports, strict=True):
        s.start(port=port)
    gen = await router.generate(["back"])  # all out: calls go to all, and the answer re-admits
    assert served_by(gen.choices[0][0].text) in "ABC"
    assert sum(s["admitted"] for s in router.replica_stats()) == 1


async def test_check_health_ejects_dead_replicas_up_front(trio) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    router = RoutedLLM.from_urls([dead, trio[0].base_url], "scripted", timeout=5)
    _created.append(router)
    assert await router.check_health() == {dead: False, trio[0].base_url: True}
    gens = [await router.generate([f"p{i}"]) for i in range(4)]
    assert all(served_by(g.choices[0][0].text) == "A" for g in gens)
    assert router.replica_stats()[0]["calls"] == 0


class _NoHealthRoute(BaseHTTPRequestHandler):
    """A server that has /v1/models but no /health (like OpenAI's own API)."""

    def do_GET(self) -> None:
        status = 200 if self.path.startswith("/v1/models") else 404
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


async def test_health_falls_back_to_the_model_list() -> None:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _NoHealthRoute)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        llm = OpenAICompatibleLLM(f"http://127.0.0.1:{httpd.server_address[1]}/v1", "m")
        _created.append(llm)
        assert await llm.health() is True
    finally:
        httpd.shutdown()
        httpd.server_close()
    dead = OpenAICompatibleLLM(f"http://127.0.0.1:{free_port()}/v1", "m")
    _created.append(dead)
    assert await dead.health() is False


def test_construction_errors_and_protocol(trio) -> None:
    router = make_router(trio)
    assert isinstance(router, LLMBackend)
    assert router.replicas[0].base_url == trio[0].base_url  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="at least one"):
        RoutedLLM([])
    with pytest.raises(ValueError, match="distinct"):
        RoutedLLM.from_urls([trio[0].base_url, trio[0].base_url], "m")
    with pytest.raises(ValueError, match="balance"):
        RoutingPolicy(balance=0.5)
    with pytest.raises(ValueError, match="eject_after"):
        RoutingPolicy(eject_after=0)
    with pytest.raises(TypeError, match="single str"):
        RoutedLLM.from_urls(trio[0].base_url, "m")


# -- a whole search --------------------------------------------------------------------------


def affinity_rate(servers: list[ScriptedServer]) -> float:
    """Share of each key's requests served by the replica that served most of them."""
    per_key: dict[str, Counter[int]] = {}
    for i, server in enumerate(servers):
        for rec in server.posts:
            per_key.setdefault(rec.headers[HEADER], Counter())[i] += 1
    top = sum(max(c.values()) for c in per_key.values())
    return top / sum(sum(c.values()) for c in per_key.values())


@pytest.mark.parametrize(
    ("router_kwargs", "low", "high"),
    [
        ({"capacity": 10_000}, 1.0, 1.0),  # below capacity a question never leaves its replica
        ({}, 0.0, 1.0),  # bounded load alone spills at low load (no bound on the rate here)
        ({"affinity": False}, 0.0, 0.7),  # least loaded: a question's calls are scattered
    ],
)
async def test_a_batch_of_searches_keeps_each_question_on_its_replica(
    router_kwargs: dict[str, Any], low: float, high: float
) -> None:
    world = StatisticalWorld(p=0.5, seed=3)
    servers = [ScriptedServer(world.respond, delay=0.01).start() for _ in range(3)]
    try:
        router = make_router(servers, **router_kwargs)
        cfg = RStarConfig.preset("fast", num_rollouts=4)
        # Replica ports are random, so pick questions that each replica prefers equally:
        # nine arbitrary ones leave a replica without any about once in thirteen runs.
        by_replica: dict[str, list[str]] = {s.base_url: [] for s in servers}
        for q in (world_question(i) for i in range(200)):
            by_replica[router.preference(question_key(q))[0]].append(q)
        questions = [q for qs in by_replica.values() for q in qs[:3]]
        assert len(questions) == 9
        await asyncio.gather(*(asolve(q, target=router, config=cfg) for q in questions))
        keys = {rec.headers[HEADER] for s in servers for rec in s.posts}
        assert keys == {question_key(q) for q in questions}  # every call carried its question
        assert all(len(s.posts) > 0 for s in servers)
        rate = affinity_rate(servers)
        assert low <= rate <= high, rate
    finally:
        for s in servers:
            s.stop()


# -- the fault test: one of three replicas killed in the middle of an eval -------------------


def test_an_eval_survives_a_killed_replica_and_takes_it_back(tmp_path, capsys) -> None:
    from langgraph_rstar.cli import main
    from langgraph_rstar.eval import load_records
    from tests.conftest import rstar_responder
    from tests.test_eval import complete_lines, eval_args, write_data

    total = 18
    data = write_data(tmp_path, total)
    out = tmp_path / "run"
    results = out / "results.jsonl"
    servers = [ScriptedServer(rstar_responder, delay=0.04).start() for _ in range(3)]
    urls = [s.base_url for s in servers]
    # Kill the replica that most of the questions running mid-eval prefer (by their keys).
    questions = [json.loads(line)["question"] for line in data.read_text().splitlines()]
    mid_eval = {question_key(q) for q in questions[4:12]}
    order = RoutedLLM.from_urls(urls, "any")  # the same preference in every process
    prefers = {url: {k for k in mid_eval if order.preference(k)[0] == url} for url in urls}
    victim_url = max(urls, key=lambda url: len(prefers[url]))
    victim = servers[urls.index(victim_url)]
    argv = eval_args(data, out, urls[0], "rstar", "--concurrency", "3")
    for url in urls[1:]:
        argv += ["--base-url", url]
    argv += ["--rollouts", "2", "--probe-interval", "0.2"]
    outcome: dict[str, int] = {}
    runner = threading.Thread(target=lambda: outcome.setdefault("rc", main(argv)))

    def wait_for(records: int) -> float:
        deadline = time.monotonic() + 60
        while complete_lines(results) < records:
            assert runner.is_alive(), "the eval ended early"
            assert time.monotonic() < deadline, f"fewer than {records} records after 60 s"
            time.sleep(0.005)
        return time.monotonic()

    try:
        runner.start()
        wait_for(3)
        port = victim.port
        victim.kill()
        killed_at = time.monotonic()
        revived_at = wait_for(9)
        victim.start(port=port)
        runner.join(timeout=120)
        assert not runner.is_alive()
    finally:
        for s in servers:
            s.stop()
    assert outcome["rc"] == 0, capsys.readouterr().err

    # Every question exactly once, none failed: calls cut off by the kill were sent elsewhere.
    lines = results.read_text().splitlines()
    ids = [json.loads(line)["id"] for line in lines]
    assert sorted(ids) == sorted(f"q{i}" for i in range(total)) and len(set(ids)) == total
    assert all(r["error"] is None and r["correct"] for r in load_records(out))

    def keys(server: ScriptedServer, start: float, end: float) -> set[str]:
        return {r.headers[HEADER] for r in server.posts if start <= r.started < end}

    # The victim's questions moved to the other two while it was down ...
    others = [s for s in servers if s is not victim]
    moved = set().union(*(keys(s, killed_at, revived_at) for s in others))
    assert prefers[victim_url] & moved, "no question of the dead replica moved"
    # ... and it was taken back after it came back.
    assert keys(victim, revived_at, float("inf")), "the revived replica got no calls"


def test_the_cli_routes_over_repeated_base_urls_and_skips_dead_ones(capsys) -> None:
    from langgraph_rstar.cli import main
    from tests.conftest import QUESTIONS, rstar_responder

    question, (right, _) = next(iter(QUESTIONS.items()))
    dead = f"http://127.0.0.1:{free_port()}/v1"
    with ScriptedServer(rstar_responder) as a, ScriptedServer(rstar_responder) as b:
        argv = ["solve", question, "--base-url", a.base_url, "--base-url", dead]
        argv += ["--base-url", b.base_url, "--rollouts", "2", "--affinity-header", "X-Sticky"]
        assert main(argv) == 0
        captured = capsys.readouterr()
        assert f"Answer: {right}" in captured.out
        assert f"1 of 3 replicas down for now: {dead}" in captured.err
        posts = a.posts + b.posts
        assert posts and {r.headers["x-sticky"] for r in posts} == {question_key(question)}
    # every replica down: a clear error, no traceback
    argv = ["solve", question, "--base-url", dead, "--base-url", a.base_url, "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "none of the 2 target replicas answers its health check" in err
    assert "Traceback" not in err


async def test_open_endpoints_builds_one_backend_per_role_from_repeated_urls(trio) -> None:
    from langgraph_rstar.cli import build_parser
    from langgraph_rstar.endpoints import open_endpoints

    argv = ["solve", "q", "--base-url", trio[0].base_url, "--discriminator-model", "judge"]
    argv += ["--discriminator-base-url", trio[1].base_url]
    argv += ["--discriminator-base-url", trio[2].base_url, "--replica-capacity", "64"]
    async with open_endpoints(build_parser().parse_args(argv)) as ends:
        assert isinstance(ends.target, OpenAICompatibleLLM)  # one URL: no router
        assert ends.target.base_url == trio[0].base_url
        disc = ends.discriminator
        assert isinstance(disc, RoutedLLM) and disc.policy.capacity == 64
        assert [r.base_url for r in disc.replicas] == [trio[1].base_url, trio[2].base_url]  # type: ignore[attr-defined]
        assert {r.model for r in disc.replicas} == {"judge"}  # type: ignore[attr-defined]
        assert ends.description == trio[0].base_url
