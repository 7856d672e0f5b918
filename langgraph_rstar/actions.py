"""rStar's five reasoning actions: one coroutine each, turning a node's path into child nodes.

Each action builds prompts from a :class:`~langgraph_rstar.prompts.PromptPack`, samples the
target model, votes on the answers (self-consistency) and returns the new child records plus the
usage it spent. They know nothing about LangGraph; :mod:`langgraph_rstar.graph` wraps each one as
a node of the same name.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypedDict

from langgraph_rstar.answers import answers_equal, extract_answer, majority_vote
from langgraph_rstar.backends import Generation, LLMBackend, Usage
from langgraph_rstar.config import RStarConfig
from langgraph_rstar.prompts import REPHRASE_PREFIX, PromptPack
from langgraph_rstar.search import (
    Action,
    PathContext,
    TreeNode,
    child_id,
    is_final_subquestion,
    new_node,
)

# Structural stop strings: they follow the prompt format, not the model.
STOP_ONE_STEP = ["\n", "Question:"]
STOP_SOLUTION = ["\n\n", "Question:", "Original question:", "Sub-question"]
STOP_SUBQUESTION = ["\n", "Answer"]
STOP_SUBANSWER = ["\n", "Sub-question", "Question:"]
STOP_REPHRASE = ["\n"]


class ActionResult(TypedDict):
    nodes: dict[str, TreeNode]  # new children plus the parent's `children[action]` entry
    usage: dict[str, int]


ActionFn = Callable[[PathContext, LLMBackend, PromptPack, RStarConfig], Awaitable[ActionResult]]


async def _sample(
    llm: LLMBackend,
    prompts: list[str],
    cfg: RStarConfig,
    *,
    n: int,
    max_tokens: int,
    stop: list[str],
    usage: Usage,
) -> list[list[str]]:
    gen: Generation = await llm.generate(
        prompts,
        n=n,
        max_tokens=max_tokens,
        stop=stop,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        top_k=cfg.top_k,
        repetition_penalty=cfg.repetition_penalty,
    )
    usage.add(gen.usage)
    return [[c.text for c in choices] for choices in gen.choices]


# What ends the answer's sentence: a newline, a further "Step N:" the model ran on with, or a
# period followed by a new sentence (not a decimal point).
_AFTER_ANSWER_END = re.compile(r"\n|(?i:\s+step \d+\s*:)|(?<=\.)\s+(?=[A-Z])")


def _trim_after_answer(text: str, task: str) -> str:
    """Drop what a model writes after its "The answer is ..." sentence (small models ramble on).

    Only the kept trajectory changes (what users see and the discriminator's prefixes are cut
    from): if the trim would change the extracted answer, the text is kept whole.
    """
    at = text.lower().find("answer is")
    end = _AFTER_ANSWER_END.search(text, at) if at >= 0 else None
    if end is None:
        return text
    trimmed = text[: end.start()].rstrip()
    return trimmed if extract_answer(trimmed, task) == extract_answer(text, task) else text


def _solutions(first_step: int, texts: list[str], task: str) -> list[str]:
    """Completions of "Step k:" as full step lists ("Step k: ...\\nStep k+1: ...")."""
    return [_trim_after_answer(f"Step {first_step}: {t.strip()}", task) for t in texts]


def _vote(texts: list[str], cfg: RStarConfig) -> tuple[str | None, float, str]:
    """Majority answer, its confidence, and the first sample that gives it."""
    answers = [extract_answer(t, cfg.task) for t in texts]
    vote = majority_vote(answers, cfg.task)
    if vote.answer is None:
        return None, 0.0, texts[0] if texts else ""
    winner = vote.groups[0][2][0]
    return vote.answer, vote.confidence, texts[winner]


def _result(ctx: PathContext, action: Action, children: list[TreeNode], usage: Usage):
    nodes: dict[str, TreeNode] = {c["id"]: c for c in children}
    nodes[ctx["node_id"]] = {"children": {action: [c["id"] for c in children]}}  # type: ignore
    return ActionResult(nodes=nodes, usage=usage.as_dict())


def _child(ctx: PathContext, action: Action, index: int, kind: str, **fields: Any) -> TreeNode:
    return new_node(
        child_id(ctx["node_id"], action, index),
        ctx["node_id"],
        ctx["depth"] + 1,
        kind,  # type: ignore[arg-type]
        action,
        rollout=ctx["rollout"],
        **fields,
    )


def _dedupe(texts: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for t in texts:
        t = t.strip()
        if t and t.lower() not in {s.lower() for s in seen}:
            seen[t] = None
    return list(seen)


async def one_step(ctx: PathContext, llm: LLMBackend, pack: PromptPack, cfg: RStarConfig):
    """A1: propose the next single step. Identical samples are merged into one child."""
    usage = Usage()
    prompt = pack.steps_prompt(ctx["active_question"], ctx["steps"])
    [texts] = await _sample(
        llm,
        [prompt],
        cfg,
        n=cfg.num_a1_steps,
        max_tokens=cfg.max_tokens_step,
        stop=STOP_ONE_STEP,
        usage=usage,
    )
    steps = _dedupe([_trim_after_answer(t, cfg.task) for t in texts])
    # A step that states the answer ends the path (the reference code keeps expanding it). Its
    # value is the share of all sibling samples that reach the same answer (self-consistency).
    sampled = [extract_answer(t, cfg.task) if "answer is" in t.lower() else None for t in texts]
    agree = majority_vote(sampled, cfg.task)
    children = []
    for i, step in enumerate(steps):
        fields: dict[str, Any] = {"text": step}
        answer = extract_answer(step, cfg.task) if "answer is" in step.lower() else None
        if answer is not None:
            share = next(
                (cnt for rep, cnt, _ in agree.groups if answers_equal(rep, answer, cfg.task)), 0
            )
            fields.update(answer=answer, terminal=True, value=share / max(1, len(texts)))
        children.append(_child(ctx, "a1_one_step", i, "one_step", **fields))
    return _result(ctx, "a1_one_step", children, usage)


async def remaining_steps(ctx: PathContext, llm: LLMBackend, pack: PromptPack, cfg: RStarConfig):
    """A2: propose all remaining steps (chain of thought) and vote over `num_last_votes` samples."""
    usage = Usage()
    prompt = pack.steps_prompt(ctx["active_question"], ctx["steps"])
    [texts] = await _sample(
        llm,
        [prompt],
        cfg,
        n=cfg.num_last_votes,
        max_tokens=cfg.max_tokens_cot,
        stop=STOP_SOLUTION,
        usage=usage,
    )
    solutions = _solutions(len(ctx["steps"]) + 1, texts, cfg.task)
    answer, confidence, text = _vote(solutions, cfg)
    child = _child(
        ctx,
        "a2_remaining_steps",
        0,
        "direct_answer",
        text=text,
        answer=answer,
        value=confidence,
        terminal=True,
    )
    return _result(ctx, "a2_remaining_steps", [child], usage)


async def subquestion(ctx: PathContext, llm: LLMBackend, pack: PromptPack, cfg: RStarConfig):
    """A3: propose the next sub-question(s), then answer each by self-consistency.

    A final sub-question ("Now we can answer the question: ...") gets `num_last_votes` samples,
    an intermediate one `num_votes`; each sub-question is judged on its own (the reference code
    decides the count for all of them from the last one).
    """
    usage = Usage()
    question = ctx["active_question"]
    prompt = pack.decompose_prompt(question, ctx["subqas"])
    [texts] = await _sample(
        llm,
        [prompt],
        cfg,
        n=cfg.num_subquestions,
        max_tokens=cfg.max_tokens_subquestion,
        stop=STOP_SUBQUESTION,
        usage=usage,
    )
    subqs = _dedupe(texts)
    finals = [is_final_subquestion(q, ctx["question"]) for q in subqs]
    prompts = [pack.subanswer_prompt(question, ctx["subqas"], q) for q in subqs]
    by_n: dict[int, list[int]] = {}
    for i, final in enumerate(finals):
        by_n.setdefault(cfg.num_last_votes if final else cfg.num_votes, []).append(i)

    async def answer_group(n: int, idx: list[int]) -> list[tuple[int, list[str]]]:
        outs = await _sample(
            llm,
            [prompts[i] for i in idx],
            cfg,
            n=n,
            max_tokens=cfg.max_tokens_subanswer,
            stop=STOP_SUBANSWER,
            usage=usage,
        )
        return list(zip(idx, outs, strict=True))

    groups = await asyncio.gather(*(answer_group(n, idx) for n, idx in by_n.items()))
    answers_by_index = {i: outs for group in groups for i, outs in group}
    children = []
    for i, q in enumerate(subqs):
        samples = [t.strip() for t in answers_by_index[i]]
        answer, confidence, text = _vote(samples, cfg)
        children.append(
            _child(
                ctx,
                "a3_subquestion",
                i,
                "subquestion",
                subquestion=q,
                subanswer=text,
                answer=answer,
                value=confidence,
                terminal=finals[i],
            )
        )
    return _result(ctx, "a3_subquestion", children, usage)


def _question_context(question: str) -> str:
    """The question without its final sentence (what A4 asks the sub-question against)."""
    body = question.strip()
    cut = max(body.rfind(". ", 0, len(body) - 1), body.rfind(".\n", 0, len(body) - 1))
    return body[: cut + 1] if cut > 0 else body


async def reanswer_subquestion(
    ctx: PathContext, llm: LLMBackend, pack: PromptPack, cfg: RStarConfig
):
    """A4: re-answer the last sub-question step by step, by self-consistency."""
    usage = Usage()
    subq = ctx["last_subquestion"] or ""
    final = is_final_subquestion(subq, ctx["question"])
    question = f"{_question_context(ctx['active_question'])} {subq}".strip()
    prompt = pack.steps_prompt(question, [])
    [texts] = await _sample(
        llm,
        [prompt],
        cfg,
        n=cfg.num_last_votes if final else cfg.num_votes,
        max_tokens=cfg.max_tokens_cot,
        stop=STOP_SOLUTION,
        usage=usage,
    )
    solutions = _solutions(1, texts, cfg.task)
    answer, confidence, text = _vote(solutions, cfg)
    one_line = " ".join(line.split(":", 1)[-1].strip() for line in text.splitlines() if line)
    child = _child(
        ctx,
        "a4_reanswer_subquestion",
        0,
        "re_subanswer",
        subquestion=subq,
        subanswer=one_line,
        answer=answer,
        value=confidence,
        terminal=final,
    )
    return _result(ctx, "a4_reanswer_subquestion", [child], usage)


async def rephrase_question(ctx: PathContext, llm: LLMBackend, pack: PromptPack, cfg: RStarConfig):
    """A5: rephrase the question as a list of conditions (one sample)."""
    usage = Usage()
    [texts] = await _sample(
        llm,
        [pack.rephrase_prompt(ctx["question"])],
        cfg,
        n=1,
        max_tokens=cfg.max_tokens_rephrase,
        stop=STOP_REPHRASE,
        usage=usage,
    )
    body = texts[0].strip()
    children = []
    if body:
        children.append(
            _child(ctx, "a5_rephrase_question", 0, "rephrased", text=f"{REPHRASE_PREFIX} {body}")
        )
    return _result(ctx, "a5_rephrase_question", children, usage)


ACTION_FUNCTIONS: dict[str, ActionFn] = {
    "a1_one_step": one_step,
    "a2_remaining_steps": remaining_steps,
    "a3_subquestion": subquestion,
    "a4_reanswer_subquestion": reanswer_subquestion,
    "a5_rephrase_question": rephrase_question,
}
