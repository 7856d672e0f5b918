"""A ``MessagesState`` agent graph with the rStar graph as one of its nodes.

What it shows: ``create_rstar_graph(...).compile()`` added directly as a node of a parent
``StateGraph``. The parent routes math questions to rStar and small talk elsewhere; rStar reads
the last human message and appends one ``AIMessage`` named "rstar" with its reasoning. Because
the parent state also declares ``answer`` and ``confidence``, those two outputs of the rStar
graph flow into it too (its private search tree does not). A checkpointer keeps the
conversation, so several ``--question`` turns share one thread.

Run it against an OpenAI-compatible completions endpoint::

    python examples/agent_with_rstar_node.py --base-url http://localhost:8000/v1 --model M \\
        --question "A box holds 4 pens. How many pens are in 3 boxes?"

or with no ``--base-url`` to start the embedded CPU model (``langgraph-rstar[local]``).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph

from langgraph_rstar import BackendError, RStarConfig, create_rstar_graph
from langgraph_rstar.backends import LLMBackend
from langgraph_rstar.local import LocalServerError, llm_or_local

DEFAULT_QUESTIONS = [
    "Hello there!",
    "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of "
    "babysitting. How much did she earn?",
]


class ChatState(MessagesState):
    answer: str | None  # filled by the rStar node (same key as its output)
    confidence: float


def build_agent(llm: LLMBackend, config: RStarConfig, *, checkpointer: Any = None):
    """triage -> (rstar -> respond) | smalltalk, compiled with an in-memory checkpointer.

    ``checkpointer=False`` compiles without one (a LangGraph server brings its own).
    """

    def triage(state: ChatState) -> str:
        text = str(state["messages"][-1].content)
        return "rstar" if re.search(r"\d", text) else "smalltalk"

    def smalltalk(state: ChatState) -> dict:
        return {"messages": [AIMessage("Hi! Ask me a math word problem.", name="assistant")]}

    def respond(state: ChatState) -> dict:
        reasoning = state["messages"][-1]  # the rStar node's AIMessage
        assert isinstance(reasoning, AIMessage) and reasoning.name == "rstar"
        reply = f"The answer is {state['answer']} (confidence {state['confidence']:.2f})."
        return {"messages": [AIMessage(reply, name="assistant")]}

    builder = StateGraph(ChatState)
    builder.add_node("rstar", create_rstar_graph(llm, config=config).compile())
    builder.add_node("respond", respond)
    builder.add_node("smalltalk", smalltalk)
    builder.add_conditional_edges(START, triage, ["rstar", "smalltalk"])
    builder.add_edge("rstar", "respond")
    builder.add_edge("respond", END)
    builder.add_edge("smalltalk", END)
    if checkpointer is False:
        return builder.compile(name="agent")
    return builder.compile(checkpointer=checkpointer or InMemorySaver(), name="agent")


def studio_agent():
    """The agent for ``langgraph dev`` / Studio (``langgraph.json``): models from RSTAR_* env vars.

    See :mod:`langgraph_rstar.studio` for the variables.
    """
    from langgraph_rstar.studio import backends_from_env, config_from_env

    target, _ = backends_from_env()
    return build_agent(target, config_from_env(), checkpointer=False)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="A MessagesState agent with an rStar node.")
    parser.add_argument("--base-url", help="OpenAI-compatible URL (default: embedded model)")
    parser.add_argument("--model", default="default", help="model name sent to the endpoint")
    parser.add_argument(
        "--question", action="append", help="a user turn (repeatable; default: two demo turns)"
    )
    parser.add_argument("--rollouts", type=int, default=4, help="MCTS rollouts (default 4)")
    return parser.parse_args(argv)


async def converse(agent, questions: Sequence[str]) -> dict:
    """One user turn per question on one thread; returns the final parent state."""
    thread = {"configurable": {"thread_id": "example"}}
    for question in questions:
        # rStar's nodes are async: drive the agent with ainvoke/astream
        await agent.ainvoke({"messages": [HumanMessage(question)]}, thread)
    return (await agent.aget_state(thread)).values


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    config = RStarConfig.preset("fast", num_rollouts=args.rollouts)
    try:
        if not args.base_url:
            print("starting the embedded model (no --base-url given) ...", file=sys.stderr)
        with llm_or_local(args.base_url, args.model) as llm:
            agent = build_agent(llm, config)
            state = asyncio.run(converse(agent, args.question or DEFAULT_QUESTIONS))
    except (BackendError, LocalServerError) as exc:  # a dead endpoint, no embedded model, ...
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for message in state["messages"]:
        who = message.name or message.type
        print(f"--- {who}\n{message.content}")
    print(f"=== state keys: {sorted(state)}")  # no search tree in the parent state
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
