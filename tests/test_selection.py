"""Label-free selection rules, computed by hand, and re-scoring stored searches."""

from __future__ import annotations

import pytest

from langgraph_rstar.discriminator import Verification, rescore, verdicts_of
from langgraph_rstar.search import Candidate
from langgraph_rstar.selection import RULES, Verdict, select, shrunk_confidence, trajectory_key


def cand(node_id: str, answer: str, *, steps=None, reward=0.5, agree=2, samples=4) -> Candidate:
    return Candidate(
        node_id=node_id,
        rollout=0,
        kind="direct_answer",
        answer=answer,
        steps=steps or [f"Path {node_id}.", f"The answer is {answer}."],
        confidence=agree / samples if samples else 0.0,
        agree=agree,
        samples=samples,
        path_values=[reward],
        reward=reward,
        visits=1,
        copies=1,
    )


def verdicts(*pairs: tuple[Candidate, int, int], rule: str = "majority") -> dict[str, Verdict]:
    out = {}
    for c, hits, masks in pairs:
        consistent = 2 * hits > masks if rule == "majority" else hits >= 1
        out[trajectory_key(c)] = Verdict(consistent=consistent, agreements=hits, masks=masks)
    return out


def test_mutual_multiplies_candidate_count_by_the_discriminators_agreement_rate():
    # "5": 3 candidates, the discriminator reproduced it 2 of 12 times -> 3 * 3/14 = 0.643
    # "6": 2 candidates, reproduced 6 of 8 times                       -> 2 * 7/10 = 1.4
    fives = [cand(f"0.q{i}", "5") for i in range(3)]
    sixes = [cand(f"0.s{i}", "6") for i in range(2)]
    v = verdicts(
        (fives[0], 1, 4), (fives[1], 1, 4), (fives[2], 0, 4), (sixes[0], 3, 4), (sixes[1], 3, 4)
    )
    final = select([*fives, *sixes], v, rule="mutual", task="gsm8k")
    assert final["answer"] == "6" and final["method"] == "discriminator"
    assert final["confidence"] == pytest.approx(1.4 / (1.4 + 3 * 3 / 14))
    # the generator alone prefers "5"
    assert select([*fives, *sixes], v, rule="generator_maj", task="gsm8k")["answer"] == "5"
    # with equal agreement the count decides: "5" again
    even = verdicts(*[(c, 2, 4) for c in (*fives, *sixes)])
    assert select([*fives, *sixes], even, rule="mutual", task="gsm8k")["answer"] == "5"


def test_mutual_counts_a_trajectory_once_and_ignores_confidence_and_reward():
    a = cand("0.d0", "5", reward=0.1, agree=1, samples=4)
    b = cand("0.q0.d0", "6", reward=1.0, agree=32, samples=32)  # "committed": looks certain
    c = cand("0.q1.d0", "5", reward=0.1, agree=1, samples=4)
    v = verdicts((a, 3, 4), (b, 3, 4), (c, 3, 4))
    assert select([a, b, c], v, rule="mutual", task="gsm8k")["answer"] == "5"
    assert select([a, b, c], v, rule="paper_argmax", task="gsm8k")["answer"] == "6"


def test_mutual_falls_back_to_the_generator_when_the_discriminator_backs_nothing():
    cands = [cand("0.d0", "5"), cand("0.q0", "5"), cand("0.s0", "6")]
    v = verdicts(*[(c, 0, 3) for c in cands])
    final = select(cands, v, rule="mutual", task="gsm8k")
    assert (final["answer"], final["method"]) == ("5", "generator_maj_fallback")


def test_shrinkage_of_small_samples():
    assert shrunk_confidence(cand("a", "5", agree=2, samples=2), 2.0) == pytest.approx(0.5)
    assert shrunk_confidence(cand("a", "5", agree=28, samples=32), 2.0) == pytest.approx(28 / 34)
    assert shrunk_confidence(cand("a", "5", agree=2, samples=2), 0.0) == pytest.approx(1.0)
    unknown = cand("a", "5", agree=0, samples=0)
    unknown["confidence"] = 0.7  # a record without counts keeps its raw share
    assert shrunk_confidence(unknown, 2.0) == pytest.approx(0.7)


def test_every_rule_without_candidates_or_without_a_check():
    for rule in RULES:
        assert select([], None, rule=rule, task="gsm8k")["method"] == "none"
        final = select(
            [cand("0.d0", "5"), cand("0.q0", "5"), cand("0.s0", "6")],
            None,
            rule=rule,
            task="gsm8k",
            skipped_reason="disabled",
        )
        assert (final["answer"], final["method"]) == ("5", "generator_maj")
    with pytest.raises(ValueError, match="unknown selection rule"):
        select([cand("0.d0", "5")], None, rule="best", task="gsm8k")


def test_rescore_rejudges_the_stored_mask_answers_under_other_agreement_rules():
    a, b = cand("0.d0", "5"), cand("0.q0", "6")
    verification = Verification(
        skipped=False,
        reason="checked",
        usage={},
        checks=[
            {
                "node_id": "0.d0",
                "answer": "5",
                "prefixes": ["", "", ""],
                "completions": ["", "", ""],
                "answers": ["5", None, None],
                "agreements": 1,
                "consistent": False,
            },
            {
                "node_id": "0.q0",
                "answer": "6",
                "prefixes": ["", "", ""],
                "completions": ["", "", ""],
                "answers": ["6", "6", None],
                "agreements": 2,
                "consistent": True,
            },
        ],
    )
    out = rescore([a, b], verification, task="gsm8k", agreements=(None, "loose"))
    assert set(out) == {*RULES, *(f"{r}@loose" for r in RULES)}
    assert out["consistent_maj"]["answer"] == "6"  # only "6" is consistent as stored
    # under "loose" both are consistent: a tie, the first group wins
    assert verdicts_of([a, b], verification, agreement="loose", task="gsm8k")[trajectory_key(a)][
        "consistent"
    ]
    assert out["consistent_maj@loose"]["answer"] == "5"
    assert out["mutual"]["answer"] == "6"  # 1 x 3/5 for "6" against 1 x 2/5 for "5"


def test_reference_code_rule_weighs_the_survival_rate_per_answer():
    # "5": 3 of its 6 checked trajectories survive; "6": 2 of 2.
    # "5": 3/5 + 3/6 = 1.1;  "6": 2/5 + 2/2 = 1.4  ->  "6" although "5" has more survivors
    fives = [cand(f"0.q{i}", "5") for i in range(6)]
    sixes = [cand(f"0.s{i}", "6") for i in range(2)]
    v = verdicts(
        *[(c, 3 if i < 3 else 0, 4) for i, c in enumerate(fives)], *[(c, 3, 4) for c in sixes]
    )
    final = select([*fives, *sixes], v, rule="reference_code", task="gsm8k")
    assert final["answer"] == "6" and final["confidence"] == pytest.approx(1.4 / 2)
    assert select([*fives, *sixes], v, rule="consistent_maj", task="gsm8k")["answer"] == "5"


def test_a_verdict_belongs_to_its_answer_not_just_to_its_steps():
    """Two candidates whose steps read the same but whose answers differ are checked apart."""
    steps = ["He has some apples.", "The answer is five."]
    a, b = cand("0.d0", "5", steps=steps), cand("0.q0.d0", "6", steps=list(steps))
    assert trajectory_key(a) != trajectory_key(b)
    v = {
        trajectory_key(a): Verdict(consistent=False, agreements=0, masks=3),
        trajectory_key(b): Verdict(consistent=True, agreements=3, masks=3),
    }
    for rule in ("consistent_maj", "reference_code", "paper", "mutual"):
        assert select([a, b], v, rule=rule, task="gsm8k")["answer"] == "6", rule


def test_mutual_shows_a_consistent_trajectory_of_the_chosen_answer():
    weak = cand("0.s0.d0", "5", reward=0.9, agree=4, samples=4)  # best score, 1 of 4 masks
    backed = cand("0.d0", "5", reward=0.2, agree=1, samples=4)  # 3 of 4 masks: consistent
    other = cand("0.q0", "6")
    v = verdicts((weak, 1, 4), (backed, 3, 4), (other, 0, 4))
    final = select([weak, backed, other], v, rule="mutual", task="gsm8k")
    assert final["answer"] == "5" and final["node_id"] == "0.d0"
    assert final["trajectory"] == backed["steps"]
