"""Model I/O: sampling completions from language models.

* :mod:`~langgraph_rstar.backends.base`: what the rest of the package talks to, the
  :class:`LLMBackend` protocol and its data types (no HTTP, no server specifics).
* :mod:`~langgraph_rstar.backends.openai_compat`: :class:`OpenAICompatibleLLM`, the backend for
  vLLM, llama.cpp, TGI or any OpenAI-compatible server.

Every name is re-exported here: ``from langgraph_rstar.backends import ...`` is the way in.
"""

from langgraph_rstar.backends.base import (
    BackendError,
    Completion,
    Generation,
    LLMBackend,
    Usage,
    apply_stop,
)
from langgraph_rstar.backends.openai_compat import Api as Api  # type aliases, not in __all__
from langgraph_rstar.backends.openai_compat import Dialect as Dialect
from langgraph_rstar.backends.openai_compat import OpenAICompatibleLLM

__all__ = [
    "BackendError",
    "Completion",
    "Generation",
    "LLMBackend",
    "OpenAICompatibleLLM",
    "Usage",
    "apply_stop",
]
