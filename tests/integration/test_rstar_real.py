"""rStar against the real embedded llama.cpp server (Qwen2.5-Coder-0.5B, CPU).

These assert the protocol and the plumbing (parseable outputs, a complete run), not accuracy:
the 0.5B model is weak at math. Generations are kept short because the CPU is slow.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from langgraph_rstar import OpenAICompatibleLLM, RStarConfig, asolve
from langgraph_rstar.actions import ACTION_FUNCTIONS
from langgraph_rstar.answers import extract_answer
from langgraph_rstar.local import LocalServer
from langgraph_rstar.prompts import load_prompts
from langgraph_rstar.search import make_root, merge_nodes, path_context

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "gsm8k" / "dev.jsonl"
FALLBACK = (
    "A baker makes 24 muffins. She sells 18 of them and then bakes 30 more. "
    "How many muffins does she have now?"
)


def dev_question() -> str:
    if DATA.is_file():
        return json.loads(DATA.read_text().splitlines()[0])["question"]
    return FALLBACK


@pytest.fixture
async def backend(local_server: LocalServer):
    llm = OpenAICompatibleLLM(
        local_server.base_url, "local", dialect="llamacpp", max_n=8, timeout=300
    )
    yield llm
    await llm.aclose()


CFG = RStarConfig.preset(
    "fast",
    num_a1_steps=2,
    num_subquestions=2,
    num_votes=2,
    num_last_votes=3,
    max_tokens_cot=160,
    max_tokens_step=64,
    max_tokens_subquestion=48,
    max_tokens_subanswer=64,
    max_tokens_rephrase=96,
)


@pytest.mark.parametrize("style", ["compact", "reference"])
async def test_every_action_yields_parseable_children(backend, style):
    pack = load_prompts(task="gsm8k", style=style)
    question = dev_question()
    nodes = {"0": make_root(question)}
    ctx = path_context(nodes, "0")
    results = {}
    for action in ("a1_one_step", "a2_remaining_steps", "a3_subquestion", "a5_rephrase_question"):
        results[action] = await ACTION_FUNCTIONS[action](ctx, backend, pack, CFG)
        nodes = merge_nodes(nodes, results[action]["nodes"])
        assert results[action]["usage"]["requests"] >= 1
        assert results[action]["usage"]["completion_tokens"] > 0
    kids = nodes["0"]["children"]
    assert set(kids) == set(results)
    steps = [nodes[c]["text"] for c in kids["a1_one_step"]]
    assert steps and all(s and "\n" not in s for s in steps)
    [direct] = kids["a2_remaining_steps"]
    # our labels never reach a node's text or steps (they are stripped before reading answers)
    assert nodes[direct]["steps"] and not any(
        s.startswith(("Step ", "Let's think")) for s in nodes[direct]["steps"]
    ), nodes[direct]["steps"]
    assert nodes[direct]["answer"] is not None, nodes[direct]["text"]
    assert 0 < nodes[direct]["value"] <= 1
    subqs = [nodes[c] for c in kids["a3_subquestion"]]
    assert subqs and all(n["subquestion"] and n["subanswer"] for n in subqs)
    [rephrased] = kids["a5_rephrase_question"]
    assert "Condition 1:" in nodes[rephrased]["text"]
    # A4 re-answers the first sub-question
    sub = subqs[0]["id"]
    result = await ACTION_FUNCTIONS["a4_reanswer_subquestion"](
        path_context(nodes, sub), backend, pack, CFG
    )
    [re_id] = result["nodes"][sub]["children"]["a4_reanswer_subquestion"]
    assert result["nodes"][re_id]["subanswer"]
    assert result["nodes"][re_id]["subquestion"] == subqs[0]["subquestion"]


async def test_full_run_with_discriminator_completes(backend):
    events = []
    result = await asolve(
        dev_question(),
        target=backend,
        config=CFG.replace(num_rollouts=2),
        on_event=events.append,
    )
    assert result.candidates, "the search found no answered trajectory"
    assert result.answer is not None
    assert result.tree["0"]["N"] == 2
    assert result.usage["target"]["requests"] > 0
    assert result.usage["target"]["completion_tokens"] > 0
    kinds = [e["type"] for e in events]
    assert kinds[0] == "rstar.rollout_started" and kinds[-1] == "rstar.final_answer"
    assert kinds.count("rstar.rollout_finished") == 2
    assert result.selection in ("unanimous", "discriminator", "generator_maj_fallback")
    if result.selection != "unanimous":
        assert result.usage["discriminator"]["requests"] > 0


async def test_backend_n_stop_chat_and_n_fallback(local_server):
    llm = OpenAICompatibleLLM(local_server.base_url, "local", dialect="llamacpp", timeout=300)
    pack = load_prompts(task="gsm8k")
    prompts = [pack.step_prompt("What is 2 + 3?", []), pack.step_prompt("What is 4 * 5?", [])]
    stop = list(pack.stops["one_step"])
    gen = await llm.generate(prompts, n=3, max_tokens=24, stop=stop)
    assert [len(c) for c in gen.choices] == [3, 3]
    assert all("\n" not in c.text for cs in gen.choices for c in cs)
    assert gen.usage.completion_tokens >= 6
    # more samples than the server has slots (8): the backend learns the cap and splits
    big = await llm.generate(prompts[:1], n=10, max_tokens=8, stop=stop)
    assert len(big.choices[0]) == 10
    chat = OpenAICompatibleLLM(local_server.base_url, "local", api="chat", dialect="llamacpp")
    out = await chat.generate(["Reply with the single word: yes"], n=2, max_tokens=8)
    assert len(out.choices[0]) == 2 and all(c.text for c in out.choices[0])
    cot = await llm.generate(
        prompts[:1], n=1, max_tokens=96, stop=["\n\n", "Question:"], temperature=0.0
    )
    assert extract_answer("Step 1:" + cot.choices[0][0].text, "gsm8k") is not None
    await llm.aclose()
    await chat.aclose()
