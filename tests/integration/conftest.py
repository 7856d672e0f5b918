"""Integration tests against the real embedded llama.cpp server (Qwen2.5-Coder-0.5B, CPU).

Every test under ``tests/integration`` is marked ``llm``. Without the ``local`` extra the
``local_server`` fixture skips its tests, unless ``RSTAR_REQUIRE_LLM=1`` (set by CI), in which
case it fails them: CI must never go green by silently skipping the real-model tests.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import openai
import pytest

from langgraph_rstar.local import LocalServer, MissingExtraError

#: Slots of the shared server: the largest ``n`` a test may request.
PARALLEL = 8

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # This hook sees the whole session's items: mark only the ones in this directory.
    for item in items:
        if _HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.llm)


def _llm_required() -> bool:
    return os.environ.get("RSTAR_REQUIRE_LLM", "").strip().lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def local_server() -> Iterator[LocalServer]:
    """One real server (0.5B model, 8 slots, unified KV) shared by the whole session."""
    server = LocalServer(parallel=PARALLEL)
    try:
        server.start()
    except MissingExtraError as exc:
        if _llm_required():
            pytest.fail(f"RSTAR_REQUIRE_LLM=1 but the local model is unavailable: {exc}")
        pytest.skip(f"the local model is unavailable: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def openai_client(local_server: LocalServer) -> AsyncIterator[openai.AsyncOpenAI]:
    """An ``openai.AsyncOpenAI`` client for the shared server (one per test: one event loop)."""
    # No retries: a protocol error must surface at once, not after backoff.
    async with openai.AsyncOpenAI(
        base_url=local_server.base_url, api_key="local", max_retries=0, timeout=120
    ) as client:
        yield client
