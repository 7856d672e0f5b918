"""The statistical world (every sample right with probability p) and what rStar makes of it.

Content gives the search no advantage there, so these tests pin down aggregation: the full
pipeline (the discriminator's check + the preset's selection rule) must do at least as well as
generator@maj, which must beat self-consistency with as many samples as rStar has candidates.
The world is seeded and the search runs one rollout at a time, so every figure here is exact
and reproducible (no flakes); the margins leave room for harmless changes.
"""

from __future__ import annotations

import collections
import random

import pytest

from langgraph_rstar import OpenAICompatibleLLM, RStarConfig
from langgraph_rstar.answers import answers_equal
from tests.scripted_server import ScriptedServer
from tests.statistical_world import StatisticalWorld, accuracy, run_world, world_question


def test_samples_are_right_with_probability_p_and_reproducible():
    world = StatisticalWorld(p=0.3, seed=5)
    rng = random.Random(1)
    draws = [world.sample_answer(7, rng) for _ in range(4000)]
    right = int(world.right_answer(7))
    share = draws.count(right) / len(draws)
    assert 0.27 < share < 0.33
    counts = collections.Counter(draws)
    popular = [a for a, _ in counts.most_common(4)]
    assert popular[0] == right and set(popular[1:]) == set(world.truth(7)["distractors"])
    prompt = "Question: " + world_question(7) + "\nStep 1:"
    params = {"stop": ["\n\n"], "max_tokens": 64, "n_index": 3, "prompt_index": 0}
    assert world.respond(prompt, params) == world.respond(prompt, params)
    assert StatisticalWorld(p=0.3, seed=5).respond(prompt, params) == world.respond(prompt, params)


def test_the_world_commits_to_a_visible_result_and_the_discriminator_copies_it():
    world = StatisticalWorld(p=0.0, seed=1)  # never right on its own
    right = world.right_answer(3)
    shown = (
        "Question: " + world_question(3) + f"\nStep 1: Putting it together gives {right}.\nStep 2:"
    )
    for k in range(5):
        params = {"stop": ["\n\n"], "max_tokens": 64, "n_index": k, "prompt_index": 0}
        assert world.respond(shown, params).strip() == f"The answer is {right}."
    hidden = (
        "Question: " + world_question(3) + "\nStep 1: We find an intermediate value: 12.\nStep 2:"
    )
    fresh = [
        world.respond(hidden, {"stop": ["\n\n"], "max_tokens": 64, "n_index": k}) for k in range(20)
    ]
    assert not any(f"is {right}." in text for text in fresh)


@pytest.mark.parametrize("preset", ["fast", "paper", "reference_code"])
async def test_pipeline_beats_generator_majority_beats_self_consistency(preset):
    """p = 0.3, seed 0, one rollout in flight; sizes keep CI at a few seconds per preset."""
    size = {"fast": 120, "paper": 30, "reference_code": 40}[preset]
    overrides = {"fast": {}, "paper": {"num_rollouts": 16}, "reference_code": {}}[preset]
    cfg = RStarConfig.preset(preset, rollouts_in_flight=1, **overrides)
    world = StatisticalWorld(p=0.3, seed=0)
    with ScriptedServer(world.respond) as server:
        runs = await run_world(world, server.base_url, cfg, list(range(size)), concurrency=4)
    correct = {m: round(accuracy(runs, m) * size) for m in runs[0].answers}
    assert correct["pipeline"] >= correct["generator_maj"], correct
    assert correct["generator_maj"] >= correct["sc@candidates"] + 3, correct
    assert correct["sc@candidates"] > correct["cot"], correct
    # the pipeline is the preset's rule, re-scored or not
    assert correct["pipeline"] == correct[cfg.scoring]


async def test_a_separate_discriminator_endpoint_sees_only_leak_free_prefixes():
    world = StatisticalWorld(p=0.3, seed=2)
    with ScriptedServer(world.respond) as gen_server, ScriptedServer(world.respond) as disc_server:
        from langgraph_rstar import asolve

        target = OpenAICompatibleLLM(gen_server.base_url, "gen", max_retries=0)
        judge = OpenAICompatibleLLM(disc_server.base_url, "judge", max_retries=0)
        cfg = RStarConfig.preset("fast", num_rollouts=8)
        for item in range(6):
            result = await asolve(
                world_question(item), target=target, discriminator=judge, config=cfg
            )
            for check in result.verification["checks"]:
                for prefix in check["prefixes"]:
                    assert check["answer"] not in prefix  # never shown to the discriminator
            if result.answer is not None:
                assert any(
                    answers_equal(result.answer, c["answer"], "gsm8k") for c in result.candidates
                )
        assert disc_server.posts and all(rec.n == 1 for rec in disc_server.posts)
