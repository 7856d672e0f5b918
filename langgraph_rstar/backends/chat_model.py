"""LangChain models as backends: any ``BaseChatModel`` or ``BaseLLM``, or a "provider:model" string.

:class:`ChatModelLLM` implements :class:`~langgraph_rstar.backends.base.LLMBackend` on top of a
LangChain model, so a ``ChatOpenAI``, ``ChatAnthropic``, ``ChatOllama``, an ``OpenAI`` LLM or a
test double can be the target or the discriminator:

* ``n`` samples per prompt: through the model's own ``n`` field when it has one (``agenerate``
  keeps every choice; ``ainvoke``/``abatch`` would keep only the first), topped up with more
  calls when fewer come back; otherwise ``n`` calls per prompt, run concurrently.
* sampling settings go onto the model's fields of the same (or a common alternative) name on a
  copy of the model (``model_copy``); settings the model has no field for are left as it has them.
* stop strings are sent (at most ``max_stop`` of them) and always re-applied client-side.
* usage: the reply's ``token_usage`` (or the message's ``usage_metadata``), one request per call.
* tracing: the model's own LLM/chat-model runs nest under the caller's run
  (:func:`~langgraph_rstar.backends.tracing.llm_run_context`) with its metadata, tagged
  ``nostream`` so a parent graph's ``messages`` stream is not flooded with samples.

:func:`as_backend` turns whatever a user passes as a model into a backend, or fails with a clear
message at build time.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Mapping, Sequence
from typing import Any, Union

from langchain_core.language_models import BaseChatModel, BaseLanguageModel, BaseLLM
from langchain_core.messages import HumanMessage
from langchain_core.outputs import LLMResult

from langgraph_rstar.backends.base import (
    BackendError,
    Completion,
    Generation,
    LLMBackend,
    Usage,
    _gather_or_cancel,
    apply_stop,
    checked_prompts,
    split_by_length,
)
from langgraph_rstar.backends.tracing import current_run_context

__all__ = ["BackendLike", "ChatModelLLM", "as_backend"]

logger = logging.getLogger(__name__)

#: What ``create_rstar_graph``, ``asolve`` and ``create_rstar_tool`` accept as a model.
BackendLike = Union[LLMBackend, BaseChatModel, BaseLLM, str]  # noqa: UP007 - runtime alias

# Sampling setting -> model field names that mean it, in order of preference.
_FIELD_NAMES: dict[str, tuple[str, ...]] = {
    "max_tokens": ("max_tokens", "max_new_tokens", "max_output_tokens", "num_predict"),
    "temperature": ("temperature",),
    "top_p": ("top_p",),
    "top_k": ("top_k",),
    "repetition_penalty": ("repetition_penalty", "repeat_penalty"),
    "seed": ("seed",),
}


def _init_chat_model(spec: str, **kwargs: Any) -> BaseChatModel:
    try:
        from langchain.chat_models import init_chat_model
    except ImportError as exc:
        raise ImportError(
            f"the model string {spec!r} needs the `langchain` package "
            "(pip install 'langgraph-rstar[langchain]'), or pass a model object"
        ) from exc
    return init_chat_model(spec, **kwargs)


def _model_label(model: BaseLanguageModel) -> str:
    for attr in ("model_name", "model", "model_id"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return f"{type(model).__name__}({value})"
    return type(model).__name__


class ChatModelLLM:
    """An :class:`LLMBackend` over a LangChain chat model or LLM.

    Each prompt goes to a chat model as one user message (an LLM gets it as is), so chat models
    apply their chat template to rStar's few-shot prompts: see the README's note on accuracy.

    Example:
        >>> from langchain_openai import ChatOpenAI
        >>> chat = ChatOpenAI(base_url="http://127.0.0.1:8000/v1", api_key="EMPTY", model="m")
        >>> llm = ChatModelLLM(chat)  # or ChatModelLLM("openai:gpt-4o-mini")
        >>> gen = asyncio.run(llm.generate(["Q: 2+2?\\nA:"], n=3, stop=["\\n"]))
        >>> len(gen.choices[0])
        3

    Args:
        model: A ``BaseChatModel`` or ``BaseLLM``, or a ``"provider:model"`` string for
            ``langchain``'s ``init_chat_model`` (``init_kwargs`` go to it, e.g. ``base_url``).
        name: Display name (default: the class and model name).
        max_in_flight: Most model calls this backend has open at once (per event loop).
        use_n: Ask for ``n`` samples in one call (``None``: when the model has an ``n`` field).
        max_stop: Most stop strings sent to the model (OpenAI's API takes 4; ``0`` sends none).
        set_sampling: Put rStar's sampling settings on the model (``False``: keep the model's).
    """

    def __init__(
        self,
        model: BaseChatModel | BaseLLM | str,
        *,
        name: str | None = None,
        max_in_flight: int = 16,
        use_n: bool | None = None,
        max_stop: int | None = 4,
        set_sampling: bool = True,
        **init_kwargs: Any,
    ) -> None:
        if isinstance(model, str):
            model = _init_chat_model(model, **init_kwargs)
        elif init_kwargs:
            raise TypeError(
                f"unexpected argument(s) {', '.join(sorted(init_kwargs))}: "
                "model settings go to a model string, not to a model object"
            )
        if not isinstance(model, (BaseChatModel, BaseLLM)):
            raise TypeError(f"expected a LangChain BaseChatModel or BaseLLM, got {type(model)!r}")
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight}")
        self.model = model
        self.chat = isinstance(model, BaseChatModel)
        fields = set(type(model).model_fields)
        self._fields = {
            setting: next((f for f in names if f in fields), None)
            for setting, names in _FIELD_NAMES.items()
        }
        self.use_n = ("n" in fields) if use_n is None else use_n
        self.max_stop = max_stop
        self.set_sampling = set_sampling
        self.max_in_flight = max_in_flight
        self.name = name or _model_label(model)
        self.usage = Usage()
        self._semaphores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]
        self._semaphores = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        return f"ChatModelLLM({self.name})"

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        sem = self._semaphores.get(loop)
        if sem is None:
            sem = self._semaphores[loop] = asyncio.Semaphore(self.max_in_flight)
        return sem

    def _variant(self, n: int | None, settings: Mapping[str, Any]) -> BaseChatModel | BaseLLM:
        """A copy of the model with these sampling settings on the fields that mean them."""
        update: dict[str, Any] = {}
        if self.set_sampling:
            for setting, value in settings.items():
                field = self._fields.get(setting)
                if field is not None and value is not None:
                    update[field] = value
        if n is not None:
            update["n"] = n
        return self.model.model_copy(update=update) if update else self.model

    async def generate(
        self,
        prompts: Sequence[str],
        *,
        n: int = 1,
        max_tokens: int = 256,
        stop: Sequence[str] = (),
        temperature: float = 0.8,
        top_p: float = 0.95,
        top_k: int | None = 40,
        repetition_penalty: float | None = 1.1,
        seed: int | None = None,
    ) -> Generation:
        """Sample ``n`` completions for each prompt (see :class:`LLMBackend`).

        Raises:
            BackendError: the model raised, or returned no generations.
        """
        prompts = checked_prompts(prompts, n)
        stops = [s for s in stop if s]
        settings = {
            "max_tokens": max_tokens,
            "temperature": temperature,
            "top_p": top_p,
            "top_k": top_k,
            "repetition_penalty": repetition_penalty,
            "seed": seed,
        }
        usage = Usage()
        calls = 0  # seeds of repeated calls must differ, or they repeat the same samples

        def call_settings(k: int) -> dict[str, Any]:
            nonlocal calls
            out = {**settings, "seed": None if seed is None else seed + calls}
            calls += k
            return out

        async def sample(prompt: str) -> list[Completion]:
            got: list[Completion] = []
            while len(got) < n:
                want = n - len(got)
                if self.use_n:
                    jobs = [self._call(prompt, self._variant(want, call_settings(want)), stops)]
                else:
                    jobs = [
                        self._call(prompt, self._variant(None, call_settings(1)), stops)
                        for _ in range(want)
                    ]
                outs = await _gather_or_cancel(jobs)
                new = [c for comps, _ in outs for c in comps]
                for _, spent in outs:
                    usage.add(spent)
                if not new:
                    raise BackendError(f"{self.name} returned no generations")
                if self.use_n and len(new) < want:
                    # The server ignores n (TGI's chat endpoint does): one call per sample.
                    logger.info("%s returned %d of %d samples; batching", self.name, len(new), want)
                    self.use_n = False
                got.extend(new[:want])
            return got

        try:
            choices = await _gather_or_cancel([sample(p) for p in prompts])
        finally:
            self.usage.add(usage)
        return Generation(choices=choices, usage=usage)

    async def _call(
        self, prompt: str, model: BaseChatModel | BaseLLM, stops: list[str]
    ) -> tuple[list[Completion], Usage]:
        """One model call (one request) for one prompt."""
        ctx = current_run_context()
        config = ctx.config or {}
        sent = stops if self.max_stop is None else stops[: self.max_stop]
        options: dict[str, Any] = {
            "stop": sent or None,
            "callbacks": config.get("callbacks"),
            "tags": [*(config.get("tags") or []), *ctx.tags, "nostream"],
            "metadata": {**(config.get("metadata") or {}), **ctx.metadata},
        }
        async with self._semaphore():
            try:
                if isinstance(model, BaseChatModel):
                    result = await model.agenerate([[HumanMessage(prompt)]], **options)
                else:
                    result = await model.agenerate([prompt], **options)
            except Exception as exc:  # any provider error: one type for the search to handle
                raise BackendError(f"{self.name} failed: {type(exc).__name__}: {exc}") from exc
        return self._parse(result, stops)

    def _parse(self, result: LLMResult, stops: list[str]) -> tuple[list[Completion], Usage]:
        gens = result.generations[0] if result.generations else []
        prompt_tokens, completion_tokens = _usage_of(result)
        texts: list[tuple[str, bool, str | None]] = []
        for g in gens:
            text, stopped = apply_stop(g.text, stops)
            info = g.generation_info or {}
            finish = info.get("finish_reason")
            texts.append((text, stopped, finish if isinstance(finish, str) else None))
        counts = split_by_length(completion_tokens, [len(g.text) for g in gens])
        comps = [
            Completion(text, "stop" if stopped else finish, tokens)
            for (text, stopped, finish), tokens in zip(texts, counts, strict=True)
        ]
        return comps, Usage(1, prompt_tokens, completion_tokens)


def _usage_of(result: LLMResult) -> tuple[int, int]:
    """(prompt, completion) tokens of one call: ``token_usage`` or the message's metadata."""
    usage = (result.llm_output or {}).get("token_usage") or {}
    if isinstance(usage, Mapping) and usage:
        return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    gens = result.generations[0] if result.generations else []
    meta = getattr(getattr(gens[0], "message", None), "usage_metadata", None) if gens else None
    if meta:  # with n > 1 every message repeats the whole reply's usage: count it once
        return int(meta.get("input_tokens") or 0), int(meta.get("output_tokens") or 0)
    return 0, 0


def as_backend(model: Any, *, role: str = "target") -> LLMBackend:
    """A backend for what was passed as a model, or a ``TypeError`` that says what fits.

    Accepts an :class:`LLMBackend` (returned as is), a LangChain ``BaseChatModel`` or
    ``BaseLLM`` (wrapped in :class:`ChatModelLLM`), or a ``"provider:model"`` string (through
    ``langchain``'s ``init_chat_model``).

    Example:
        >>> as_backend(OpenAICompatibleLLM("http://127.0.0.1:8000/v1", "m"))  # unchanged
        >>> as_backend(ChatOpenAI(model="gpt-4o-mini"))  # ChatModelLLM(ChatOpenAI(gpt-4o-mini))
    """
    if isinstance(model, (BaseChatModel, BaseLLM, str)):
        return ChatModelLLM(model)
    generate = getattr(model, "generate", None)
    if isinstance(model, LLMBackend) and asyncio.iscoroutinefunction(generate):
        return model
    hint = ""
    if hasattr(model, "bound") or hasattr(model, "invoke"):
        hint = (
            " A LangChain runnable that is not a model itself (a chain, or `model.bind(...)`) "
            "cannot sample n completions: pass the model and set its fields instead."
        )
    raise TypeError(
        f"{role} must be an LLMBackend (e.g. OpenAICompatibleLLM), a LangChain chat model or "
        f"LLM, or a 'provider:model' string; got {type(model).__name__}.{hint}"
    )
