"""`create_rstar_tool`: rStar as a LangChain tool for any tool-calling agent."""

from __future__ import annotations

from typing import Any

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field

from langgraph_rstar.api import RStarResult, asolve, solve
from langgraph_rstar.backends import BackendLike, as_backend
from langgraph_rstar.config import RStarConfig

DEFAULT_DESCRIPTION = (
    "Solve a math word problem or a reasoning question carefully with rStar (tree search over "
    "reasoning steps by a small model, answers cross-checked by a second model). Pass the full "
    "self-contained question. Returns the answer, a confidence in [0, 1] and the reasoning."
)


class RStarToolInput(BaseModel):
    question: str = Field(description="The complete question to solve, with all its numbers.")
    num_rollouts: int | None = Field(
        default=None, ge=1, le=64, description="Search budget (optional; more is slower)."
    )


def _format(result: RStarResult) -> str:
    steps = " ".join(f"({i}) {s}" for i, s in enumerate(result.trajectory, 1))
    text = (
        f"Answer: {result.answer} (confidence {result.confidence:.2f}). Reasoning: {steps}"
        if steps
        else f"Answer: {result.answer}"
    )
    # A degraded answer says so to the agent too (budget spent, discriminator down).
    return " ".join([text, *(f"Note: {w}." for w in result.warnings)])


def _emit(event: Any) -> None:
    # Re-emit progress on the calling agent's custom stream when there is one.
    try:
        from langgraph.config import get_stream_writer

        get_stream_writer()(event)
    except Exception:  # noqa: BLE001 - outside a graph (or Python < 3.11 async) there is none
        pass


def create_rstar_tool(
    target: BackendLike,
    *,
    discriminator: BackendLike | None = None,
    config: RStarConfig | None = None,
    name: str = "rstar_reason",
    description: str = DEFAULT_DESCRIPTION,
    stream_events: bool = True,
) -> BaseTool:
    """A tool whose content is the answer with a short rationale and whose artifact is the
    full :class:`RStarResult` as a dict (``response_format="content_and_artifact"``).

    Example:
        >>> from langchain.agents import create_agent
        >>> tool = create_rstar_tool(OpenAICompatibleLLM("http://localhost:8000/v1", "m"))
        >>> # agent = create_agent(chat_model, tools=[tool])
    """
    base = config or RStarConfig.preset("fast")
    # Fail here, not at the agent's first call; one backend object serves every call.
    target = as_backend(target, role="target")
    discriminator = (
        None if discriminator is None else as_backend(discriminator, role="discriminator")
    )

    def settings(num_rollouts: int | None) -> RStarConfig:
        return base.replace(num_rollouts=num_rollouts) if num_rollouts else base

    async def arun(question: str, num_rollouts: int | None = None) -> tuple[str, dict[str, Any]]:
        result = await asolve(
            question,
            target=target,
            discriminator=discriminator,
            config=settings(num_rollouts),
            on_event=_emit if stream_events else None,
        )
        return _format(result), result.to_dict()

    def run(question: str, num_rollouts: int | None = None) -> tuple[str, dict[str, Any]]:
        result = solve(
            question, target=target, discriminator=discriminator, config=settings(num_rollouts)
        )
        return _format(result), result.to_dict()

    return StructuredTool.from_function(
        func=run,
        coroutine=arun,
        name=name,
        description=description,
        args_schema=RStarToolInput,
        response_format="content_and_artifact",
    )
