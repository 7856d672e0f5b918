"""A LangChain chat model that answers rStar's prompts by their content, for tests.

``GenericFakeChatModel`` and friends hand out replies in call order, which is not deterministic
under rStar's concurrent calls. This one answers each prompt with ``rstar_responder`` (the
scripted server's responder), counts the samples asked of each prompt so sibling samples differ
like a server's ``n`` choices, reports ``usage_metadata``, ignores stop strings (the backend must
cut them) and records every call.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict, PrivateAttr

from tests.conftest import rstar_responder
from tests.scripted_server import count_tokens


class ScriptedChatModel(BaseChatModel):
    """Chat model whose reply to a prompt is ``rstar_responder(prompt, {"n_index": i})``.

    ``i`` counts earlier calls with the same prompt, so the samples of one prompt are choices
    0, 1, 2, ... as a server's ``n`` would number them. ``calls`` records (prompt, stop) pairs.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _seen: Counter = PrivateAttr(default_factory=Counter)
    _calls: list = PrivateAttr(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted-chat"

    @property
    def calls(self) -> list[tuple[str, list[str] | None]]:
        with self._lock:
            return list(self._calls)

    def _reply(self, messages: list[BaseMessage], stop: list[str] | None) -> ChatResult:
        prompt = str(messages[-1].content)
        with self._lock:
            index = self._seen[prompt]
            self._seen[prompt] += 1
            self._calls.append((prompt, stop))
        text = rstar_responder(prompt, {"n_index": index})
        usage = {
            "input_tokens": count_tokens(prompt),
            "output_tokens": count_tokens(text),
            "total_tokens": count_tokens(prompt) + count_tokens(text),
        }
        message = AIMessage(content=text, usage_metadata=usage)  # type: ignore[arg-type]
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._reply(messages, stop)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._reply(messages, stop)
