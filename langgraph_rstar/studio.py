"""Graph factories for LangGraph Studio, ``langgraph dev`` and LangGraph Platform.

``langgraph.json`` at the repository root serves :func:`rstar_graph` (and an agent example);
the server supplies the checkpointer. The models come from environment variables, read when
the server loads the graph:

* ``RSTAR_TARGET_BASE_URL``, ``RSTAR_TARGET_MODEL`` (required), ``RSTAR_TARGET_API_KEY``,
  ``RSTAR_TARGET_API`` (``completions``/``chat``), ``RSTAR_TARGET_DIALECT`` (``vllm``, ...);
* ``RSTAR_DISCRIMINATOR_*``: the same for the discriminator (default: the target);
* ``RSTAR_PRESET`` (default ``fast``) and ``RSTAR_TASK`` (default ``gsm8k``).

Each run can still override any setting through the context (Studio's "Manage assistants" or
``context={"num_rollouts": 8}``).

Example::

    RSTAR_TARGET_BASE_URL=http://localhost:8000/v1 RSTAR_TARGET_MODEL=Qwen/Qwen2.5-7B-Instruct \\
        langgraph dev   # then open Studio, pick "rstar", ask {"question": "..."}
"""

from __future__ import annotations

import functools
import os
from typing import Any

from langgraph.graph.state import CompiledStateGraph

from langgraph_rstar.backends import LLMBackend, OpenAICompatibleLLM
from langgraph_rstar.config import RStarConfig
from langgraph_rstar.graph import create_rstar_graph

__all__ = ["backends_from_env", "config_from_env", "rstar_graph"]


@functools.cache
def backends_from_env() -> tuple[LLMBackend, LLMBackend]:
    """(target, discriminator) from ``RSTAR_TARGET_*`` / ``RSTAR_DISCRIMINATOR_*``, built once."""
    target = OpenAICompatibleLLM.from_env("RSTAR_TARGET")
    if os.environ.get("RSTAR_DISCRIMINATOR_BASE_URL"):
        return target, OpenAICompatibleLLM.from_env("RSTAR_DISCRIMINATOR")
    return target, target


def config_from_env() -> RStarConfig:
    """The preset ``RSTAR_PRESET`` (default ``fast``) for ``RSTAR_TASK`` (default ``gsm8k``)."""
    env = os.environ
    return RStarConfig.preset(env.get("RSTAR_PRESET", "fast"), task=env.get("RSTAR_TASK", "gsm8k"))


def rstar_graph() -> CompiledStateGraph[Any, Any, Any, Any]:
    """The rStar graph over the endpoints named by the environment (no checkpointer)."""
    target, discriminator = backends_from_env()
    builder = create_rstar_graph(target, discriminator=discriminator, config=config_from_env())
    return builder.compile(name="rstar")
