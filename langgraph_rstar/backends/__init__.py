"""Model I/O: sampling completions from language models.

* :mod:`~langgraph_rstar.backends.base`: what the rest of the package talks to, the
  :class:`LLMBackend` protocol and its data types (no HTTP, no server specifics).
* :mod:`~langgraph_rstar.backends.openai_compat`: :class:`OpenAICompatibleLLM`, the backend for
  vLLM, llama.cpp, TGI or any OpenAI-compatible server.
* :mod:`~langgraph_rstar.backends.chat_model`: :class:`ChatModelLLM`, any LangChain chat model
  or LLM as a backend, and :func:`as_backend` (what the graph calls on the models it is given).
* :mod:`~langgraph_rstar.backends.tracing`: every request as an LLM run in LangChain callbacks
  (LangSmith), nested under the caller's run (:func:`llm_run_context`).
* :mod:`~langgraph_rstar.backends.routing`: :class:`RoutedLLM`, several replicas of one model
  behind one backend (affinity by :func:`affinity_key`, least-loaded, health-aware).

Every name is re-exported here: ``from langgraph_rstar.backends import ...`` is the way in.
"""

from langgraph_rstar.backends.base import (
    BackendError,
    Completion,
    Generation,
    LLMBackend,
    Usage,
    affinity_key,
    apply_stop,
    current_affinity_key,
)
from langgraph_rstar.backends.chat_model import BackendLike, ChatModelLLM, as_backend
from langgraph_rstar.backends.openai_compat import Api as Api  # type aliases, not in __all__
from langgraph_rstar.backends.openai_compat import Dialect as Dialect
from langgraph_rstar.backends.openai_compat import OpenAICompatibleLLM
from langgraph_rstar.backends.routing import RoutedLLM, RoutingPolicy
from langgraph_rstar.backends.tracing import llm_run_context

__all__ = [
    "BackendError",
    "BackendLike",
    "ChatModelLLM",
    "Completion",
    "Generation",
    "LLMBackend",
    "OpenAICompatibleLLM",
    "RoutedLLM",
    "RoutingPolicy",
    "Usage",
    "affinity_key",
    "apply_stop",
    "as_backend",
    "current_affinity_key",
    "llm_run_context",
]
