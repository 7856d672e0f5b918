"""rStar (mutual reasoning with MCTS) for small language models, as LangGraph nodes.

Quick start::

    from langgraph_rstar import OpenAICompatibleLLM, RStarConfig, asolve
    llm = OpenAICompatibleLLM("http://localhost:8000/v1", "Qwen/Qwen2.5-1.5B-Instruct")
    result = await asolve("A farmer has 12 cows ...", target=llm, config=RStarConfig.preset("fast"))
"""

from langgraph_rstar.api import RStarError, RStarResult, asolve, solve
from langgraph_rstar.backends import (
    BackendError,
    ChatModelLLM,
    Completion,
    Generation,
    LLMBackend,
    OpenAICompatibleLLM,
    Usage,
)
from langgraph_rstar.config import PRESETS, RStarConfig, RStarContext
from langgraph_rstar.events import RStarEvent
from langgraph_rstar.graph import RStarInput, RStarOutput, RStarState, create_rstar_graph
from langgraph_rstar.search import ACTIONS

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
    "Usage",
    "asolve",
    "create_rstar_graph",
    "solve",
]
__version__ = "0.1.0"
