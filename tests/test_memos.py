"""The client's memos (client CPU per model request, issue 10): each answers exactly what the
uncached computation does, for every key part, and is bounded."""

from __future__ import annotations

from langgraph_rstar import RStarConfig
from langgraph_rstar.graph import _config_of, _ConfigKey
from langgraph_rstar.prompts import _stated_answer, load_prompts


def test_stated_answer_memo_keys_on_pack_labels_text_and_task() -> None:
    compact = load_prompts(task="gsm8k", style="compact")
    reference = load_prompts(task="gsm8k", style="reference")
    # Only the reference pack's labels include "Answer 5.2:", so only it strips the label.
    text = "So the answer is Answer 5.2: 12."
    assert compact.answer(text, "gsm8k") == "5.2"
    assert reference.answer(text, "gsm8k") == "12"
    assert compact.answer(text, "gsm8k") == "5.2"  # now from the memo
    yes = "The answer is yes."
    assert compact.answer(yes, "gsm8k") is None  # a number task: "yes" is no number
    assert compact.answer(yes, "strategyqa") == "yes"
    assert compact.answer("The answer is 7.", "gsm8k") == "7"
    assert compact.answer("The answer is 8.", "gsm8k") == "8"
    assert _stated_answer.cache_info().maxsize == 4096


def test_action_config_cache_returns_the_config_of_its_dict() -> None:
    base = RStarConfig.preset("paper").to_dict()
    other = {**base, "temperature": 0.5}
    first = _config_of(_ConfigKey(repr(base), base))
    assert first == RStarConfig.from_dict(base)
    assert _config_of(_ConfigKey(repr(dict(base)), dict(base))) is first  # an equal dict: cached
    changed = _config_of(_ConfigKey(repr(other), other))
    assert changed.temperature == 0.5 and first.temperature == 0.8
    assert _config_of.cache_info().maxsize == 64
