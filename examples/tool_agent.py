"""rStar as a tool of a LangChain agent (``langchain.agents.create_agent``).

What it shows: ``create_rstar_tool`` gives any tool-calling agent a ``rstar_reason`` tool whose
content is the answer with a short rationale and whose artifact is the whole result (answer,
candidates, usage, ...). The small model behind rStar does the reasoning; the agent's chat model
only decides to call the tool and phrases the reply.

The chat model: pass ``--chat-base-url``/``--chat-model`` for a real OpenAI-compatible
tool-calling chat model (through ``langchain_openai.ChatOpenAI``; ``pip install
langchain-openai``). Without them, a small scripted stand-in is used instead: it calls the tool
exactly once with the user's question and then repeats the tool's answer. That keeps the example
runnable where no tool-calling chat model is available; it is not a real model.

Run it::

    python examples/tool_agent.py --base-url http://localhost:8000/v1 --model M \\
        --question "A box holds 4 pens. How many pens are in 3 boxes?"
    python examples/tool_agent.py --base-url http://localhost:8000/v1 --model M \\
        --chat-base-url https://api.example.com/v1 --chat-model some-chat-model

With no ``--base-url`` the embedded CPU model (``langgraph-rstar[local]``) serves rStar.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from typing import Any

from langchain.agents import create_agent
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from langgraph_rstar import BackendError, RStarConfig, RStarError
from langgraph_rstar.local import LocalServerError, llm_or_local
from langgraph_rstar.tool import create_rstar_tool

DEFAULT_QUESTION = (
    "Betty is saving money for a new wallet which costs $100. Betty has only half of the money "
    "she needs. Her parents decided to give her $15 for that purpose, and her grandparents "
    "twice as much as her parents. How much more money does Betty need to buy the wallet?"
)
SYSTEM_PROMPT = (
    "You are a helpful assistant. For any math word problem, call the rstar_reason tool with "
    "the full question and report its answer."
)


class ScriptedToolCaller(BaseChatModel):
    """A stand-in chat model: calls ``tool_name`` once with the last user message, then
    answers with the tool's result. Not a language model; just enough to drive the agent."""

    tool_name: str = "rstar_reason"

    @property
    def _llm_type(self) -> str:
        return "scripted-tool-caller"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedToolCaller:
        return self

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        last = messages[-1]
        if isinstance(last, ToolMessage):
            reply = AIMessage(f"rStar worked it out. {last.content}")
        else:
            question = next(m for m in reversed(messages) if isinstance(m, HumanMessage))
            call = {"name": self.tool_name, "args": {"question": question.content}, "id": "call_1"}
            reply = AIMessage("", tool_calls=[call])
        return ChatResult(generations=[ChatGeneration(message=reply)])


def chat_model(args: argparse.Namespace) -> BaseChatModel:
    if not args.chat_base_url:
        print("(no --chat-base-url: using the scripted tool-calling stand-in)", file=sys.stderr)
        return ScriptedToolCaller()
    from langchain_openai import ChatOpenAI  # ImportError: the caller explains

    return ChatOpenAI(
        base_url=args.chat_base_url,
        model=args.chat_model,
        api_key=args.chat_api_key or os.environ.get("OPENAI_API_KEY", "EMPTY"),
        temperature=0,
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="create_agent with the rStar tool.")
    parser.add_argument("--base-url", help="rStar's endpoint (default: embedded model)")
    parser.add_argument("--model", default="default", help="rStar's model name")
    parser.add_argument("--chat-base-url", help="a tool-calling chat model's OpenAI-style URL")
    parser.add_argument("--chat-model", default="gpt-4o-mini", help="the chat model's name")
    parser.add_argument("--chat-api-key", help="the chat model's key (default: OPENAI_API_KEY)")
    parser.add_argument("--question", default=DEFAULT_QUESTION, help="the user's question")
    parser.add_argument("--rollouts", type=int, default=4, help="MCTS rollouts (default 4)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    config = RStarConfig.preset("fast", num_rollouts=args.rollouts)
    try:
        model = chat_model(args)
    except ImportError:
        print("error: --chat-base-url needs `pip install langchain-openai`", file=sys.stderr)
        return 2
    try:
        if not args.base_url:
            print("starting the embedded model (no --base-url given) ...", file=sys.stderr)
        with llm_or_local(args.base_url, args.model) as llm:
            tool = create_rstar_tool(llm, config=config)
            agent = create_agent(model, tools=[tool], system_prompt=SYSTEM_PROMPT)
            out = asyncio.run(agent.ainvoke({"messages": [HumanMessage(args.question)]}))
    except (RStarError, BackendError, LocalServerError) as exc:  # dead endpoint, no model, ...
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for message in out["messages"]:
        if isinstance(message, ToolMessage):
            artifact = message.artifact or {}
            print(f"--- tool {message.name}\n{message.content}")
            print(
                f"    ({len(artifact.get('candidates', []))} candidates, chosen by "
                f"{artifact.get('selection')}; usage {artifact.get('usage')})"
            )
        elif isinstance(message, AIMessage) and message.tool_calls:
            for call in message.tool_calls:
                print(f"--- ai calls {call['name']}({call['args']})")
        else:
            print(f"--- {message.type}\n{message.content}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
