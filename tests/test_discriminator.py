"""Mutual consistency: masking, agreement rules, both scorings, and the label-free pipeline.

The pure parts (masks, agreement, selection) run on hand-built data; ``verify_candidates`` and
the whole pipeline run against the scripted HTTP server, whose log shows exactly what was sent.
"""

from __future__ import annotations

import inspect
import json
import math
import random
import re
import threading
import time

import pytest

import tests.conftest as conftest
from langgraph_rstar import OpenAICompatibleLLM, RStarConfig, asolve, create_rstar_graph
from langgraph_rstar.answers import answers_equal, majority_vote
from langgraph_rstar.discriminator import (
    Check,
    Verification,
    agrees,
    answer_limit,
    distinct_candidates,
    mask_ratios,
    masked_prompts,
    select_final,
    verify_candidates,
)
from langgraph_rstar.prompts import load_prompts
from langgraph_rstar.search import Candidate
from tests.conftest import QUESTIONS, live_question, rstar_responder
from tests.scripted_server import ScriptedServer

QUESTION = next(iter(QUESTIONS))  # Tom's apples: right answer 5, wrong answer 6
PACK = load_prompts(task="gsm8k")
ANSWER_STEP = "So the total is 8765 and the answer is 8765."
STEPS = [
    "Tom starts with 3 apples.",
    "He buys 2 more apples at the market.",
    "Now 3 + 2 = 5 apples are in his bag.",
    "He counts them twice to be sure.",
    ANSWER_STEP,
]


def cand(
    node_id: str,
    answer: str,
    *,
    reward: float,
    confidence: float,
    steps: list[str] | None = None,
    rollout: int = 0,
    agree: int = 0,
    samples: int = 0,
) -> Candidate:
    return Candidate(
        node_id=node_id,
        rollout=rollout,
        kind="direct_answer",
        answer=answer,
        steps=steps if steps is not None else [f"Path {node_id}.", f"The answer is {answer}."],
        confidence=confidence,
        agree=agree,
        samples=samples,  # 0: no counts, selection uses the raw confidence
        path_values=[reward],
        reward=reward,
        visits=1,
        copies=1,
    )


def check(candidate: Candidate, consistent: bool) -> Check:
    agreeing = [candidate["answer"]] * (2 if consistent else 0)
    return Check(
        node_id=candidate["node_id"],
        answer=candidate["answer"],
        prefixes=["", ""],
        completions=["", ""],
        answers=(agreeing + ["0", "0"])[:2],
        agreements=len(agreeing),
        consistent=consistent,
    )


def checked(*checks: Check) -> Verification:
    return Verification(skipped=False, reason="checked", checks=list(checks), usage={})


def skipped(reason: str) -> Verification:
    return Verification(skipped=True, reason=reason, checks=[], usage={})


# ------------------------------------------------------------------------------------ masking


@pytest.mark.parametrize("seed", [0, 1, 7, "7|0.q0.d0"])
def test_paper_mask_ratios_lie_in_bounds_and_are_reproducible(seed):
    ratios = mask_ratios("paper", 6, 0.2, 0.8, random.Random(seed))
    assert len(ratios) == 6
    assert all(0.2 <= r <= 0.8 for r in ratios)
    assert ratios == mask_ratios("paper", 6, 0.2, 0.8, random.Random(seed))
    assert len(set(ratios)) == 6  # random, not evenly spaced
    other = mask_ratios("paper", 6, 0.2, 0.8, random.Random(f"{seed}-other"))
    assert other != ratios


def test_reference_code_mask_ratios_are_evenly_spaced_from_left_to_right():
    cfg = RStarConfig.preset("reference_code")
    assert (cfg.mask_mode, cfg.num_masks, cfg.mask_left, cfg.mask_right) == (
        "reference_code",
        4,
        0.2,
        0.5,
    )
    rng = random.Random(123)
    state = rng.getstate()
    ratios = mask_ratios(cfg.mask_mode, cfg.num_masks, cfg.mask_left, cfg.mask_right, rng)
    assert ratios == [0.2, 0.3, 0.4, 0.5]  # exactly, not approximately
    assert rng.getstate() == state  # the code's masks use no randomness
    assert mask_ratios("reference_code", 1, 0.2, 0.5, rng) == [0.2]


@pytest.mark.parametrize("num_steps", [1, 2, 3, 5])
def test_paper_masks_keep_whole_steps_and_never_the_answer_step(num_steps):
    steps = [*STEPS[: num_steps - 1], ANSWER_STEP]
    ratios = [0.2, 0.35, 0.5, 0.65, 0.8, 0.99]
    out = masked_prompts(QUESTION, steps, PACK, mode="paper", ratios=ratios)
    assert len(out) == len(ratios)
    for r, (prompt, prefix) in zip(ratios, out, strict=True):
        keep = min(round(r * num_steps), num_steps - 1)
        assert prefix == PACK.render_solution(steps[:keep])
        assert ANSWER_STEP not in prompt and "8765" not in prompt
        assert prompt.endswith(f"Step {keep + 1}:")
        assert prompt == PACK.solve_prompt(QUESTION, steps[:keep])
        assert prompt.count(QUESTION) == 1


def test_masks_stop_before_the_first_step_that_mentions_the_answer():
    """ "3 + 2 = 5" gives the answer away before "The answer is 5." does."""
    steps = ["Tom starts with 3 apples.", "He buys 2 more, so 3 + 2 = 5.", "The answer is 5."]
    assert answer_limit(steps, "5", "gsm8k") == 1
    assert answer_limit(steps, "7", "gsm8k") == 3  # never mentioned: any prefix will do
    assert answer_limit(["So it is 5.0 apples."], "5", "gsm8k") == 0
    for mode, ratios in (("paper", [0.2, 0.5, 0.8, 0.99]), ("reference_code", [0.2, 0.9, 1.0])):
        out = masked_prompts(QUESTION, steps, PACK, mode=mode, ratios=ratios, limit=1)
        for prompt, prefix in out:
            assert "3 + 2" not in prefix and "5" not in prefix.replace("Step", "")
            assert "= 5" not in prompt.split(QUESTION)[-1]
    # the reference pack renders a paragraph; its masks are cut the same way
    ref = load_prompts(task="gsm8k", style="reference")
    for mode in ("paper", "reference_code"):
        for prompt, prefix in masked_prompts(
            QUESTION, steps, ref, mode=mode, ratios=[0.5, 0.9], limit=1
        ):
            assert prompt.endswith(prefix) and "= 5" not in prefix
            assert prefix in ("", "Tom starts with 3 apples.") or "Tom starts" in prefix


def test_reference_code_masks_are_word_prefixes_of_ceil_r_w_words():
    rendered = PACK.render_solution(STEPS)
    words = rendered.split(" ")
    ratios = mask_ratios("reference_code", 4, 0.2, 0.5, random.Random(0))
    out = masked_prompts(QUESTION, STEPS, PACK, mode="reference_code", ratios=ratios)
    head = PACK.solve_prompt(QUESTION)[: -len("Step 1:")]
    sizes = []
    for r, (prompt, prefix) in zip(ratios, out, strict=True):
        sizes.append(len(prefix.split(" ")))
        assert len(prefix.split(" ")) == math.ceil(r * len(words))
        assert prefix == " ".join(words[: math.ceil(r * len(words))])
        assert prefix.startswith("Step 1:") and rendered.startswith(prefix)
        assert prompt == head + prefix  # continues mid-sentence, no "Step k:" appended
        assert "8765" not in prefix  # at most half the words: the answer is still hidden
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    # a one-word trajectory still shows one word
    (prompt, prefix), *_ = masked_prompts(
        QUESTION, ["Five."], PACK, mode="reference_code", ratios=[0.2]
    )
    assert prefix == "Step" and prompt.endswith("\nStep")
    # ... unless that word is already past the limit: then nothing is shown
    (prompt, prefix), *_ = masked_prompts(
        QUESTION, ["Five."], PACK, mode="reference_code", ratios=[0.2], limit=0
    )
    assert prefix == "" and prompt == PACK.solve_prompt(QUESTION)


# ---------------------------------------------------------------------------------- agreement

RULES = ("loose", "mid", "strict", "plurality", "majority")


@pytest.mark.parametrize(
    ("answers", "hits", "expected"),
    [
        (["5", "5", "5", "5"], 4, (True, True, True, True, True)),
        (["5", "5", "6", "6"], 2, (True, True, False, True, False)),  # tie: first group wins
        (["6", "6", "5", "5"], 2, (True, True, False, False, False)),
        (["5", "6", "6", "6"], 1, (True, False, False, False, False)),
        (["5", None, None, None], 1, (True, False, False, True, False)),  # the only answer
        (["5", "5", None, None], 2, (True, True, False, True, False)),
        (["5", "5", "5", None], 3, (True, True, False, True, True)),  # 3 of 4: a majority
        (["5.0", "5", None, "6"], 2, (True, True, False, True, False)),  # equal as numbers
        ([None, None, None, None], 0, (False, False, False, False, False)),
        (["5", "5"], 2, (True, True, True, True, True)),
        (["5", "6"], 1, (True, True, False, True, False)),  # mid on 2 masks: 1 of 2 is half
        (["5", "5", "6"], 2, (True, True, False, True, True)),  # 2 of 3
        (["5", None, "6"], 1, (True, False, False, True, False)),
        ([], 0, (False, False, False, False, False)),
    ],
)
def test_agreement_rules(answers, hits, expected):
    got = {rule: agrees(rule, "5", answers, "gsm8k") for rule in RULES}
    assert {rule: h for rule, (h, _) in got.items()} == dict.fromkeys(RULES, hits)
    assert tuple(ok for _, ok in got.values()) == expected


# ---------------------------------------------------------------------------------- selection


def test_paper_argmax_takes_the_best_consistent_candidate_even_against_the_majority():
    best = cand("0.s0.d0", "6", reward=0.9, confidence=0.9)
    crowd = [cand(f"0.q{i}.d0", "5", reward=0.5, confidence=0.6) for i in range(3)]
    rejected = cand("0.d0", "7", reward=1.0, confidence=1.0)  # best score, but inconsistent
    candidates = [rejected, best, *crowd]
    assert majority_vote([c["answer"] for c in candidates], "gsm8k").answer == "5"
    verification = checked(
        check(rejected, False), check(best, True), *(check(c, True) for c in crowd)
    )
    cfg = RStarConfig.preset("fast", scoring="paper_argmax")
    final = select_final(candidates, verification, cfg)
    assert final["method"] == "discriminator"
    assert final["answer"] == "6"
    assert final["node_id"] == "0.s0.d0"
    assert final["confidence"] == pytest.approx(0.81)
    assert final["trajectory"] == best["steps"]
    # the `paper` rule sums per answer: three consistent "5"s (3 x 0.30) beat one "6" (0.81)
    final = select_final(candidates, verification, cfg.replace(scoring="paper"))
    assert final["answer"] == "5" and final["method"] == "discriminator"
    assert final["confidence"] == pytest.approx(0.9 / (0.9 + 0.81))
    assert final["node_id"] == "0.q0.d0"  # equal scores: the first "5"


def test_paper_scoring_shrinks_small_sample_confidences():
    """A 2-of-2 A1 answer step no longer outranks a 28-of-32 A2 vote (it did as confidence²)."""
    a1 = cand("0.s0", "6", reward=1.0, confidence=1.0, agree=2, samples=2)
    a2 = cand("0.d0", "5", reward=0.875, confidence=0.875, agree=28, samples=32)
    candidates = [a1, a2]
    verification = checked(check(a1, True), check(a2, True))
    literal = select_final(
        candidates, verification, RStarConfig.preset("fast", scoring="paper_argmax")
    )
    assert literal["answer"] == "6"
    cfg = RStarConfig.preset("fast", scoring="paper")
    final = select_final(candidates, verification, cfg)
    assert final["answer"] == "5"  # 0.875 x 28/34 = 0.72 against 1.0 x 2/4 = 0.5
    assert final["confidence"] == pytest.approx((0.875 * 28 / 34) / (0.875 * 28 / 34 + 0.5))
    # with no prior the raw shares come back and the A1 step wins again
    assert select_final(candidates, verification, cfg.replace(confidence_prior=0))["answer"] == "6"


def test_reference_code_scoring_by_hand_differs_from_paper_scoring():
    x = cand("0.d0", "6", reward=1.0, confidence=1.0)  # consistent, the best single score
    w = cand("0.s0.d0", "6", reward=0.2, confidence=0.2)  # inconsistent
    fives = [cand(f"0.q{i}.d0", "5", reward=0.5, confidence=0.5) for i in range(3)]
    candidates = [x, w, *fives]
    verification = checked(check(x, True), check(w, False), *(check(c, True) for c in fives))
    # survivors: 6 once, 5 three times (4 in all); checked: 6 twice, 5 three times.
    # "6": 1/4 + 1/2 = 0.75;  "5": 3/4 + 3/3 = 1.75  ->  "5", confidence 1.75 / 2
    code = select_final(
        candidates, verification, RStarConfig.preset("fast", scoring="reference_code")
    )
    assert code["method"] == "discriminator"
    assert code["answer"] == "5"
    assert code["confidence"] == pytest.approx(0.875)
    assert code["node_id"] == "0.q0.d0"  # the best (then first) "5" candidate
    paper = select_final(candidates, verification, RStarConfig.preset("fast", scoring="paper"))
    # "6": 1.0 x 1.0;  "5": 3 x 0.5 x 0.5 = 0.75
    assert paper["answer"] == "6" and paper["confidence"] == pytest.approx(1.0 / 1.75)


def test_reference_code_scoring_rewards_the_survival_rate_over_the_raw_count():
    fives = [cand(f"0.q{i}.d0", "5", reward=0.9, confidence=0.9) for i in range(3)]
    sixes = [cand(f"0.s{i}.d0", "6", reward=0.3, confidence=0.3) for i in range(2)]
    candidates = [*fives, *sixes]
    verification = checked(
        check(fives[0], True),
        check(fives[1], False),
        check(fives[2], False),
        *(check(c, True) for c in sixes),
    )
    # "5": 1/3 + 1/3 = 0.667;  "6": 2/3 + 2/2 = 1.667
    final = select_final(
        candidates, verification, RStarConfig.preset("fast", scoring="reference_code")
    )
    assert final["answer"] == "6"
    assert final["confidence"] == pytest.approx(5 / 6)
    assert majority_vote([c["answer"] for c in candidates], "gsm8k").answer == "5"


@pytest.mark.parametrize(
    "scoring", ["paper", "paper_argmax", "reference_code", "consistent_maj", "generator_maj"]
)
def test_no_survivors_falls_back_to_generator_majority(scoring):
    candidates = [
        cand("0.d0", "6", reward=1.0, confidence=1.0),
        cand("0.q0.d0", "5", reward=0.4, confidence=0.5),
        cand("0.q1.d0", "5", reward=0.6, confidence=0.5),
    ]
    verification = checked(*(check(c, False) for c in candidates))
    final = select_final(candidates, verification, RStarConfig.preset("fast", scoring=scoring))
    assert final["method"] == (
        "generator_maj" if scoring == "generator_maj" else "generator_maj_fallback"
    )
    assert final["answer"] == "5"
    assert final["confidence"] == pytest.approx(2 / 3)
    assert final["node_id"] == "0.q1.d0"  # the best-scored trajectory of the majority answer


def test_skipped_verification_votes_over_the_generator_candidates():
    candidates = [cand(f"0.q{i}.d0", "5", reward=0.5, confidence=0.5) for i in range(3)]
    cfg = RStarConfig.preset("fast")
    final = select_final(candidates, skipped("unanimous"), cfg)
    assert (final["method"], final["answer"], final["confidence"]) == ("unanimous", "5", 1.0)
    mixed = [*candidates, cand("0.d0", "6", reward=1.0, confidence=1.0)]
    final = select_final(mixed, skipped("disabled"), cfg)
    assert (final["method"], final["answer"]) == ("generator_maj", "5")
    assert final["confidence"] == pytest.approx(0.75)


def test_no_candidates_means_no_answer():
    for verification in (skipped("no candidates"), checked()):
        final = select_final([], verification, RStarConfig.preset("fast"))
        assert final == {
            "answer": None,
            "confidence": 0.0,
            "node_id": None,
            "trajectory": [],
            "method": "none",
        }


def test_distinct_candidates_drop_duplicates_and_overlong_answers():
    a = cand("0.d0", "5", reward=0.5, confidence=0.5, steps=["x", "The answer is 5."])
    dup = cand("0.s0.s0", "5", reward=0.9, confidence=0.9, steps=["x", "The answer is 5."])
    long = cand("0.q0", "9" * 101, reward=1.0, confidence=1.0)
    empty = cand("0.q1", "", reward=1.0, confidence=1.0)
    assert [c["node_id"] for c in distinct_candidates([a, dup, long, empty])] == ["0.d0"]


# ------------------------------------------------------------- verify_candidates over HTTP


def tom_candidates() -> list[Candidate]:
    right = ["Tom starts with 3 apples.", "He buys 2 more, so 3 + 2 = 5.", "The answer is 5."]
    wrong = ["Tom starts with 3 apples.", "He buys 2 more, so 3 + 3 = 6.", "The answer is 6."]
    return [
        cand("0.s0.s0.s0", "5", reward=0.6, confidence=0.6, steps=right),
        cand("0.s1.s0.s0", "6", reward=0.7, confidence=0.7, steps=wrong),
        cand("0.s0.s0.s1", "5", reward=0.6, confidence=0.6, steps=list(right)),  # duplicate
    ]


@pytest.mark.parametrize("batch_prompts", [True, False])
async def test_verify_candidates_sends_all_masked_prompts_in_one_generate_call(
    scripted, batch_prompts
):
    llm = OpenAICompatibleLLM(scripted.base_url, "disc", max_retries=0, batch_prompts=batch_prompts)
    cfg = RStarConfig.preset(
        "fast", num_masks=3, discriminator_temperature=0.55, discriminator_max_tokens=77
    )
    candidates = tom_candidates()
    seen: list[Check] = []
    calls = []
    original = llm.generate

    async def spy(prompts, **kwargs):
        calls.append((list(prompts), kwargs))
        return await original(prompts, **kwargs)

    llm.generate = spy  # type: ignore[method-assign]
    verification = await verify_candidates(
        QUESTION, candidates, llm=llm, pack=PACK, config=cfg, on_check=seen.append
    )
    assert not verification["skipped"] and verification["reason"] == "checked"
    # one generate call holding every masked prompt of every distinct candidate, n=1
    expected_prompts = []
    for c in candidates[:2]:
        rng = random.Random(f"{cfg.discriminator_seed}|{c['node_id']}")
        ratios = mask_ratios("paper", 3, cfg.mask_left, cfg.mask_right, rng)
        expected_prompts += [
            p
            for p, _ in masked_prompts(
                QUESTION,
                c["steps"],
                PACK,
                mode="paper",
                ratios=ratios,
                limit=answer_limit(c["steps"], c["answer"], "gsm8k"),
            )
        ]
    assert len(calls) == 1
    prompts, kwargs = calls[0]
    assert prompts == expected_prompts and len(prompts) == 2 * 3
    assert kwargs["n"] == 1 and kwargs["temperature"] == 0.55 and kwargs["max_tokens"] == 77
    # ... and on the wire: one request with all six prompts, or one request per prompt
    posts = scripted.posts
    if batch_prompts:
        assert len(posts) == 1 and posts[0].prompts == expected_prompts
    else:
        assert len(posts) == 6
        assert sorted(p for rec in posts for p in rec.prompts) == sorted(expected_prompts)
    for rec in posts:
        assert rec.n == 1
        assert rec.body["temperature"] == 0.55
        assert rec.max_tokens == 77
        assert rec.stop == list(PACK.stops["solve"])
    assert verification["usage"]["requests"] == len(posts)
    # the scripted discriminator (n=1: always the right answer) backs 5 and never 6
    by_id = {ch["node_id"]: ch for ch in verification["checks"]}
    assert set(by_id) == {"0.s0.s0.s0", "0.s1.s0.s0"}
    assert by_id["0.s0.s0.s0"]["answers"] == ["5", "5", "5"]
    assert by_id["0.s0.s0.s0"]["consistent"] and by_id["0.s0.s0.s0"]["agreements"] == 3
    assert not by_id["0.s1.s0.s0"]["consistent"] and by_id["0.s1.s0.s0"]["agreements"] == 0
    assert [ch["node_id"] for ch in seen] == ["0.s0.s0.s0", "0.s1.s0.s0"]
    final = select_final(candidates, verification, cfg)
    assert final["answer"] == "5" and final["method"] == "discriminator"


async def test_a_mostly_right_discriminator_rejects_the_wrong_candidate():
    """Every 4th completion of the discriminator is wrong; the "mid" rule needs 2 of 4."""
    lock = threading.Lock()
    count = [0]

    def mostly_right(prompt: str, params: dict) -> str:
        with lock:
            count[0] += 1
            wrong = count[0] % 4 == 0
        return f" The answer is {6 if wrong else 5}.\n"

    with ScriptedServer(mostly_right) as server:
        llm = OpenAICompatibleLLM(server.base_url, "disc", max_retries=0)
        cfg = RStarConfig.preset("fast", num_masks=4, agreement="mid")
        verification = await verify_candidates(
            QUESTION, tom_candidates(), llm=llm, pack=PACK, config=cfg
        )
        assert len(server.posts) == 1 and len(server.posts[0].prompts) == 8
    right, wrong = verification["checks"]
    assert right["answers"] == ["5", "5", "5", "6"] and right["consistent"]
    assert wrong["answers"] == ["5", "5", "5", "6"] and wrong["agreements"] == 1
    assert not wrong["consistent"]


async def test_the_prefix_never_shows_the_answer_and_no_answer_never_agrees():
    """A trajectory that states its answer first is masked down to nothing (the limit), and a
    discriminator that writes no answer of its own backs no candidate."""
    with ScriptedServer(lambda prompt, params: " and so on.\n") as server:
        llm = OpenAICompatibleLLM(server.base_url, "disc", max_retries=0)
        cfg = RStarConfig.preset("reference_code", agreement="loose")
        early = cand(
            "0.d0",
            "5",
            reward=1.0,
            confidence=1.0,
            steps=["The answer is 5.", "We check it again with many more words to be sure."],
        )
        other = cand("0.q0.d0", "6", reward=0.5, confidence=0.5)
        verification = await verify_candidates(
            QUESTION, [early, other], llm=llm, pack=PACK, config=cfg
        )
        for prompt in server.posts[0].prompts:
            assert "The answer is 5" not in prompt.split(QUESTION)[-1]
    first = verification["checks"][0]
    assert first["answers"] == [None] * 4 and not first["consistent"]


async def test_unanimous_disabled_and_empty_verification_send_nothing(scripted, llm):
    same = [cand(f"0.q{i}.d0", "5", reward=0.5, confidence=0.5) for i in range(3)]
    mixed = [*same, cand("0.d0", "6", reward=1.0, confidence=1.0)]
    cfg = RStarConfig.preset("fast")
    out = await verify_candidates(QUESTION, same, llm=llm, pack=PACK, config=cfg)
    assert (out["skipped"], out["reason"]) == (True, "unanimous")
    out = await verify_candidates(
        QUESTION, mixed, llm=llm, pack=PACK, config=cfg.replace(use_discriminator=False)
    )
    assert (out["skipped"], out["reason"]) == (True, "disabled")
    out = await verify_candidates(QUESTION, [], llm=llm, pack=PACK, config=cfg)
    assert (out["skipped"], out["reason"]) == (True, "no candidates")
    assert scripted.posts == []


async def test_a_separate_discriminator_endpoint_gets_only_the_consistency_check(
    scripted, llm, tiny_config
):
    with ScriptedServer(rstar_responder) as disc_server:
        disc = OpenAICompatibleLLM(disc_server.base_url, "disc", max_retries=0)
        cfg = tiny_config.replace(discriminator_temperature=0.3)
        app = create_rstar_graph(llm, discriminator=disc, config=cfg).compile()
        out = await app.ainvoke({"question": QUESTION})
        disc_posts = disc_server.posts
    assert out["answer"] == "5" and out["selection"] == "discriminator"
    assert len(disc_posts) == 1 and disc_posts[0].body["temperature"] == 0.3
    checks = out["verification"]["checks"]
    assert len(disc_posts[0].prompts) == len(checks) * cfg.num_masks
    assert all(rec.body["temperature"] == cfg.temperature for rec in scripted.posts)
    assert out["usage"]["discriminator"]["requests"] == 1
    assert out["usage"]["target"]["requests"] == len(scripted.posts)


async def test_paper_scoring_counts_duplicates_of_a_consistent_trajectory(scripted, llm):
    """Two nodes with the same steps and answer are checked once; both are consistent then."""
    steps = ["Tom starts with 3 apples.", "He buys 2 more, so 3 + 2 = 5.", "The answer is 5."]
    low = cand("0.s0.s0.s0", "5", reward=0.3, confidence=0.3, steps=steps)
    other = cand("0.q0.d0", "6", reward=0.6, confidence=0.6)
    high = cand("0.s0.d0", "5", reward=1.0, confidence=1.0, steps=list(steps))
    candidates = [low, other, high]
    cfg = RStarConfig.preset("fast", agreement="loose", scoring="paper")

    verification = await verify_candidates(QUESTION, candidates, llm=llm, pack=PACK, config=cfg)
    # the scripted discriminator backs "5"; make "6" consistent too so the scores decide
    for ch in verification["checks"]:
        ch["consistent"] = True
    final = select_final(candidates, verification, cfg)
    # "high" has the same trajectory as the consistent "low": "5" scores 0.09 + 1.0 > 0.36
    assert final["answer"] == "5"
    assert final["confidence"] == pytest.approx(1.09 / 1.45)
    assert final["node_id"] == "0.s0.d0"


# --------------------------------------------------------------------- no labels anywhere

NO_LABEL_DATASET = {
    # id: (question, gold answer, gold solution text as a dataset would store it)
    "nl-1": (
        "Mira has 3817 marbles and wins 4406 more. How many marbles does Mira have now?",
        "8223",
        "Mira has 3817 + 4406 = <<3817+4406=8223>>8223 marbles.\n#### 8223",
    ),
    "nl-2": (
        "A depot stores 1296 crates and receives 5873 more. How many crates are in the depot?",
        "7169",
        "The depot has 1296 + 5873 = <<1296+5873=7169>>7169 crates.\n#### 7169",
    ),
    "nl-3": (
        "Ravi saved 2468 coins and then found 1357 more. How many coins does Ravi have?",
        "3825",
        "Ravi has 2468 + 1357 = <<2468+1357=3825>>3825 coins.\n#### 3825",
    ),
}


def arithmetic_lookup(prompt: str) -> tuple[str, str]:
    """The scripted "model" can add: it reads the numbers of the live question, nothing else.

    A question it cannot read (e.g. the scripted rephrasing, which drops the numbers) gets a
    confidently wrong answer, so the search really has competing candidates.
    """
    numbers = [int(x) for x in re.findall(r"\d+", live_question(prompt))]
    if len(numbers) < 2:
        return ("404", "405")
    total = sum(numbers)
    return (str(total), str(total + 1))


async def test_the_pipeline_needs_no_label(tmp_path, monkeypatch):
    """End to end with the discriminator on: the only input is the question text.

    The gold answers and a unique marker live only in this test's dict. The JSONL the run reads
    holds id + question; the solving API has no label parameter; no request ever carries the
    marker, a gold field or the dataset's solution text; the gold number appears in a request
    only after the model itself wrote it; and still every answer is right.
    """
    markers = {qid: f"GOLD-MARKER-{qid}-c0ffee" for qid in NO_LABEL_DATASET}
    gold = {
        qid: (answer, solution, markers[qid])
        for qid, (_, answer, solution) in NO_LABEL_DATASET.items()
    }
    data = tmp_path / "questions.jsonl"
    data.write_text(
        "".join(
            json.dumps({"id": qid, "question": q}) + "\n"
            for qid, (q, *_) in NO_LABEL_DATASET.items()
        ),
        encoding="utf-8",
    )
    raw = data.read_text(encoding="utf-8")
    assert not any(g in raw for answer, solution, marker in gold.values() for g in (answer, marker))

    # the API has nowhere to put a label
    params = set(inspect.signature(asolve).parameters)
    assert params == {
        "question",
        "target",
        "discriminator",
        "config",
        "on_event",
        "checkpointer",
        "thread_id",
        "overrides",
    }
    with pytest.raises(TypeError, match="unknown rStar setting"):
        await asolve("What is 1 + 1?", target=None, gold="2")  # type: ignore[arg-type]

    monkeypatch.setattr(conftest, "lookup", arithmetic_lookup)
    written: list[tuple[float, str]] = []  # (when, text) of every completion the model wrote
    lock = threading.Lock()

    def model(prompt: str, params: dict) -> str:
        text = rstar_responder(prompt, params)
        with lock:
            written.append((time.monotonic(), text))
        return text

    results = {}
    with ScriptedServer(model) as server:
        llm = OpenAICompatibleLLM(server.base_url, "m", max_retries=0)
        cfg = RStarConfig.preset("fast", num_rollouts=4, max_depth=3, use_discriminator=True)
        for line in data.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            assert set(row) == {"id", "question"}
            results[row["id"]] = await asolve(row["question"], target=llm, config=cfg)
        posts = server.posts

    for qid, result in results.items():
        answer, _, _ = gold[qid]
        assert answers_equal(result.answer, answer, "gsm8k"), (qid, result.answer)
        assert not result.verification["skipped"], "the discriminator must have run"
        assert result.selection == "discriminator"
        # the search did meet wrong answers: the label-free selection had work to do
        assert any(c["answer"] != answer for c in result.candidates)

    assert posts
    bodies = [json.dumps(rec.body) for rec in posts]
    for body, rec in zip(bodies, posts, strict=True):
        assert "gold" not in body.lower() and "GOLD-MARKER" not in body
        assert "####" not in body and "<<" not in body
        assert not set(rec.body) & {"answer", "gold", "label", "solution"}
        for answer, solution, marker in gold.values():
            assert marker not in body and solution not in body
            if answer in body:
                # only the model's own earlier words can have brought it into a prompt
                assert any(t < rec.started and answer in text for t, text in written), answer
    # the first request of each question carries nothing but the question and the few-shots
    for question, answer, _ in NO_LABEL_DATASET.values():
        first = next(body for body in bodies if question[:30] in body)
        assert answer not in first
