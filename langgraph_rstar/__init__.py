"""rStar (mutual reasoning with MCTS) for small language models, as LangGraph nodes.

Quick start::

    from langgraph_rstar import OpenAICompatibleLLM, RStarConfig, asolve
    llm = OpenAICompatibleLLM("http://localhost:8000/v1", "Qwen/Qwen2.5-1.5B-Instruct")
    result = await asolve("A farmer has 12 cows ...", target=llm, config=RStarConfig.preset("fast"))

The package logs through the ``langgraph_rstar`` logger (retries, server quirks) and, as a library,
shows nothing by default; ``logging.basicConfig(level=logging.INFO)`` or your own handler shows it.
"""

import logging

from langgraph_rstar.api import RStarError, RStarResult, ThreadBusyError, asolve, solve
from langgraph_rstar.backends import (
    BackendError,
    ChatModelLLM,
    Completion,
    Generation,
    LLMBackend,
    OpenAICompatibleLLM,
    RoutedLLM,
    RoutingPolicy,
    Usage,
    affinity_key,
)
from langgraph_rstar.config import PRESETS, RStarConfig, RStarContext
from langgraph_rstar.events import RStarEvent
from langgraph_rstar.graph import RStarInput, RStarOutput, RStarState, create_rstar_graph
from langgraph_rstar.search import ACTIONS
from langgraph_rstar.settings import SettingsError

__all__ = [
    "ACTIONS",
    "PRESETS",
    "BackendError",
    "ChatModelLLM",
    "Completion",
    "Generation",
    "LLMBackend",
    "OpenAICompatibleLLM",
    "RStarConfig",
    "RStarContext",
    "RStarError",
    "RStarEvent",
    "RStarInput",
    "RStarOutput",
    "RStarResult",
    "RStarState",
    "RoutedLLM",
    "RoutingPolicy",
    "SettingsError",
    "ThreadBusyError",
    "Usage",
    "affinity_key",
    "asolve",
    "create_rstar_graph",
    "solve",
]
__version__ = "0.1.0"  # the package version (pyproject.toml reads it from here)

# A library's logger stays silent unless the application configures logging.
logging.getLogger(__name__).addHandler(logging.NullHandler())
