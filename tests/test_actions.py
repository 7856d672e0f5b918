"""The five actions over real HTTP: what a node keeps, what it reads as an answer, and the
switches that reproduce the reference code's behaviour."""

from __future__ import annotations

import pytest

from langgraph_rstar import OpenAICompatibleLLM, RStarConfig, asolve
from langgraph_rstar.actions import (
    one_step,
    reanswer_subquestion,
    remaining_steps,
    subquestion,
)
from langgraph_rstar.prompts import load_prompts
from langgraph_rstar.search import make_root, merge_nodes, new_node, path_context
from tests.scripted_server import ScriptedServer
from tests.statistical_world import cannot_solve_responder

QUESTION = "Tom has 3 apples and buys 2 more. How many apples does Tom have now?"
PACK = load_prompts(task="gsm8k")


def root_ctx(question: str = QUESTION):
    return path_context({"0": make_root(question)}, "0")


def children(result, kind: str):
    return [n for n in result["nodes"].values() if n.get("kind") == kind]


async def run(responder, action, cfg: RStarConfig, ctx=None, pack=PACK):
    with ScriptedServer(responder) as server:
        llm = OpenAICompatibleLLM(server.base_url, "m", max_retries=0)
        result = await action(ctx or root_ctx(), llm, pack, cfg)
        return result, server.posts


# ------------------------------------------------------------------ answers come from the model


@pytest.mark.parametrize(
    "completion",
    ["", " ", "\n", " I cannot solve this.", " Step 2: Step 3:", " We add them.\nStep 2:"],
)
async def test_a_completion_without_an_answer_has_none_never_the_labels_number(completion):
    """The prompt ends with "Step 4:"-style labels; a number-free completion answers nothing."""
    cfg = RStarConfig.preset("fast", num_last_votes=3)
    result, _ = await run(lambda p, k: completion, remaining_steps, cfg)
    [node] = children(result, "direct_answer")
    assert node["answer"] is None and node["value"] == 0.0 and node["agree"] == 0
    assert node["samples"] == 3
    for step in node["steps"]:
        assert not step.lower().startswith("step")


async def test_labels_the_model_repeats_are_stripped_from_steps():
    answer = " Step 1: Tom has 3 + 2 = 5 apples.\nStep 2: Step 2: The answer is 5.\n"
    cfg = RStarConfig.preset("fast", num_last_votes=2)
    result, _ = await run(lambda p, k: answer, remaining_steps, cfg)
    [node] = children(result, "direct_answer")
    assert node["steps"] == ["Tom has 3 + 2 = 5 apples.", "The answer is 5."]
    assert node["answer"] == "5"


async def test_the_node_keeps_the_first_sample_of_the_majority_not_the_first_sample():
    samples = [
        " 3 + 3 = 6.\nStep 2: The answer is 6.",  # first sample, minority answer
        " 3 + 2 = 5.\nStep 2: The answer is 5.",  # first sample of the majority
        " Adding, 5.\nStep 2: The answer is 5.",
    ]
    cfg = RStarConfig.preset("fast", num_last_votes=3)
    result, _ = await run(lambda p, k: samples[k["n_index"]], remaining_steps, cfg)
    [node] = children(result, "direct_answer")
    assert node["answer"] == "5" and (node["agree"], node["samples"]) == (2, 3)
    assert node["value"] == pytest.approx(2 / 3)
    assert node["steps"] == ["3 + 2 = 5.", "The answer is 5."]


async def test_subanswers_vote_and_keep_the_majoritys_first_sample():
    def responder(prompt: str, params: dict) -> str:
        if prompt.rstrip().endswith("Sub-question 1:"):
            return " Now we can answer the question: how many apples does Tom have now?"
        return [
            " He has 6. The answer is 6.",
            " 3 + 2 = 5. The answer is 5.",
            " So 5. The answer is 5.",
        ][params["n_index"]]

    cfg = RStarConfig.preset("fast", num_subquestions=1, num_last_votes=3)
    result, _ = await run(responder, subquestion, cfg)
    [node] = children(result, "subquestion")
    assert node["terminal"] and node["answer"] == "5"
    assert node["subanswer"] == "3 + 2 = 5. The answer is 5."
    assert (node["agree"], node["samples"]) == (2, 3)


# ------------------------------------------------------------------ the reference-code switches


async def test_a1_answer_steps_end_the_path_unless_the_reference_behaviour_is_asked_for():
    steps = [" The answer is 5.", " 3 + 2 = 5 apples.", " The answer is 5."]
    cfg = RStarConfig.preset("fast", num_a1_steps=3)
    result, _ = await run(lambda p, k: steps[k["n_index"]], one_step, cfg)
    kids = children(result, "one_step")
    # identical samples are merged into one child by default
    assert [k["text"] for k in kids] == ["The answer is 5.", "3 + 2 = 5 apples."]
    answered = kids[0]
    assert answered["terminal"] and answered["answer"] == "5"
    assert (answered["agree"], answered["samples"]) == (2, 3)
    assert not kids[1]["terminal"] and kids[1]["answer"] is None

    ref = cfg.replace(a1_answer_terminal=False, merge_identical_samples=False)
    result, _ = await run(lambda p, k: steps[k["n_index"]], one_step, ref)
    kids = children(result, "one_step")
    assert [k["text"] for k in kids] == [s.strip() for s in steps]  # no merging
    assert not any(k["terminal"] for k in kids)
    assert kids[0]["answer"] == kids[2]["answer"] == "5"  # still harvested as candidates


async def test_a1_answer_step_terminal_switch_changes_the_search():
    """With terminal A1 answer steps a rollout stops there; with the reference's behaviour the
    search keeps expanding below them."""

    def responder(prompt: str, params: dict) -> str:
        if prompt.rstrip().endswith("Condition 1:"):
            return " Tom has 3 apples. Question: how many now?"
        if "Sub-question" in prompt.rstrip()[-20:]:
            return " Now we can answer the question: how many apples does Tom have now?"
        return " The answer is 5."

    results = {}
    for terminal in (True, False):
        with ScriptedServer(responder) as server:
            llm = OpenAICompatibleLLM(server.base_url, "m", max_retries=0)
            cfg = RStarConfig.preset(
                "fast",
                num_rollouts=6,
                max_depth=4,
                use_discriminator=False,
                enable_a5=False,
                a1_answer_terminal=terminal,
            )
            results[terminal] = await asolve(QUESTION, target=llm, config=cfg)
    deep = lambda r: max(n["depth"] for n in r.tree.values() if n["kind"] == "one_step")  # noqa: E731
    assert deep(results[True]) == 1  # every A1 step states the answer: paths end at depth 1
    assert deep(results[False]) >= 2  # the reference code expands below answer steps
    assert all(r.answer == "5" for r in results.values())


async def test_a2_continues_the_steps_or_resolves_with_a_hint():
    nodes = {"0": make_root(QUESTION)}
    step = new_node("0.s0", "0", 1, "one_step", "a1_one_step", text="Tom has 3 apples.")
    step["steps"] = ["Tom has 3 apples."]
    nodes = merge_nodes(nodes, {"0.s0": step, "0": {"children": {"a1_one_step": ["0.s0"]}}})
    ctx = path_context(nodes, "0.s0")
    answer = " He buys 2, so 5.\nStep 3: The answer is 5."
    cfg = RStarConfig.preset("fast", num_last_votes=1)

    _, posts = await run(lambda p, k: answer, remaining_steps, cfg, ctx)
    [prompt] = posts[0].prompts
    assert prompt == PACK.step_prompt(QUESTION, ["Tom has 3 apples."])
    assert prompt.endswith("Step 1: Tom has 3 apples.\nStep 2:")

    ref = load_prompts(task="gsm8k", style="reference")
    result, posts = await run(
        lambda p, k: " He buys 2, so 3 + 2 = 5. The answer is: 5.",
        remaining_steps,
        cfg.replace(a2_mode="resolve"),
        ctx,
        ref,
    )
    [prompt] = posts[0].prompts
    assert prompt == ref.solve_prompt(QUESTION, hint="Hint: Tom has 3 apples.")
    assert "### Instruction:" in prompt and prompt.endswith("Let's think step by step.")
    assert tuple(posts[0].stop) == ref.stops["solve"]
    [node] = children(result, "direct_answer")
    assert node["steps"] == ["He buys 2, so 3 + 2 = 5.", "The answer is: 5."]
    assert node["answer"] == "5"


async def test_reanswer_reads_the_solution_style_of_the_pack():
    ref = load_prompts(task="gsm8k", style="reference")
    nodes = {"0": make_root(QUESTION)}
    sub = new_node(
        "0.q0",
        "0",
        1,
        "subquestion",
        "a3_subquestion",
        subquestion="Now we can answer the question: how many apples does Tom have now?",
        subanswer="He has 5. The answer is 5.",
        answer="5",
        terminal=True,
    )
    nodes = merge_nodes(nodes, {"0.q0": sub, "0": {"children": {"a3_subquestion": ["0.q0"]}}})
    cfg = RStarConfig.preset("fast", num_last_votes=2, prompt_style="reference")
    result, posts = await run(
        lambda p, k: " 3 + 2 = 5. The answer is: 5.",
        reanswer_subquestion,
        cfg,
        path_context(nodes, "0.q0"),
        ref,
    )
    [node] = children(result, "re_subanswer")
    assert node["subanswer"] == "3 + 2 = 5. The answer is: 5." and node["answer"] == "5"
    assert node["terminal"]  # the re-answer of a final sub-question is a solution
    assert posts[0].prompts[0].startswith(ref.templates["solve"][:40])


# ------------------------------------------------------------------ a model that never answers


async def test_a_server_that_cannot_solve_gives_no_answer():
    with ScriptedServer(cannot_solve_responder) as server:
        llm = OpenAICompatibleLLM(server.base_url, "m", max_retries=0)
        for preset in ("fast", "reference_code"):
            result = await asolve(
                QUESTION, target=llm, config=RStarConfig.preset(preset, num_rollouts=3)
            )
            assert result.answer is None and result.candidates == []
            assert result.selection == "none" and result.trajectory == []
            assert result.confidence == 0.0
