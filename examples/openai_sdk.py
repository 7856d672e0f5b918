"""Ask rStar through the plain OpenAI SDK: ``rstar serve`` speaks the OpenAI API.

What it shows: any OpenAI client can use rStar. The model name picks the preset
(``rstar-fast``, ``rstar-paper``, ...), search settings go in ``extra_body={"rstar": {...}}``,
the reply's content is the trajectory and the answer, ``reply.model_extra["rstar"]`` holds the
confidence, and a streamed reply carries the search's progress in each chunk's ``rstar`` field
before the text.

Against a running server (``rstar serve --base-url http://localhost:8000/v1 --model M``)::

    python examples/openai_sdk.py --rstar-url http://127.0.0.1:8080/v1

or let the example serve rStar itself for the run (``create_app`` + ``running``, the same server
as ``rstar serve``) over your endpoint::

    python examples/openai_sdk.py --base-url http://localhost:8000/v1 --model M

or over the embedded CPU model when neither URL is given (``langgraph-rstar[local,serve]``).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator, Sequence

import openai

BUILTIN_QUESTION = "A box holds 4 pens. How many pens are in 3 boxes?"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="rStar through the plain OpenAI SDK.")
    parser.add_argument("--rstar-url", help="a running `rstar serve` (its /v1 URL)")
    parser.add_argument("--api-key", default="EMPTY", help="that server's key (--serve-api-key)")
    parser.add_argument("--base-url", help="model endpoint to serve rStar over (default: embedded)")
    parser.add_argument("--model", default="default", help="model name sent to that endpoint")
    parser.add_argument("--question", default=BUILTIN_QUESTION, help="the question")
    parser.add_argument("--rollouts", type=int, default=4, help="MCTS rollouts (default 4)")
    return parser.parse_args(argv)


@contextlib.contextmanager
def rstar_server(args: argparse.Namespace) -> Iterator[str]:
    """The URL of ``--rstar-url``, or of an rStar server started here for the run."""
    if args.rstar_url:
        yield args.rstar_url
        return
    from langgraph_rstar.local import llm_or_local
    from langgraph_rstar.serve import create_app, running

    if not args.base_url:
        print("starting the embedded model (no --base-url given) ...", file=sys.stderr)
    with llm_or_local(args.base_url, args.model) as llm, running(create_app(llm)) as url:
        yield url


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    knobs = {"rstar": {"num_rollouts": args.rollouts}}
    messages = [{"role": "user", "content": args.question}]
    try:
        with rstar_server(args) as url:
            # a search is expensive: do not let the SDK repeat one on a 5xx
            client = openai.OpenAI(base_url=url, api_key=args.api_key, max_retries=0)
            print("models:", ", ".join(m.id for m in client.models.list()))

            reply = client.chat.completions.create(
                model="rstar-fast", messages=messages, extra_body=knobs
            )
            extra = reply.model_extra["rstar"]
            print(reply.choices[0].message.content)
            print(f"Answer: {extra['answer']} (confidence {extra['confidence']:.2f}, ", end="")
            print(f"{reply.usage.total_tokens} tokens spent)")

            print("streamed:")
            stream = client.chat.completions.create(
                model="rstar-fast", messages=messages, extra_body=knobs, stream=True
            )
            for chunk in stream:
                event = (chunk.model_extra or {}).get("rstar", {})
                if event.get("type") == "rstar.rollout_finished":
                    print(f"  rollout {event['rollout'] + 1}: answer {event['answer']}")
                elif chunk.choices and chunk.choices[0].delta.content:
                    print(chunk.choices[0].delta.content, end="")
            print()
    except openai.APIError as exc:  # the server's error, OpenAI-shaped
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # no embedded model, a port in use, ...
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
