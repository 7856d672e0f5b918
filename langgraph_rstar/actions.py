"""rStar's five reasoning actions: one coroutine each, turning a node's path into child nodes.

Each action builds prompts with its :class:`~langgraph_rstar.prompts.PromptPack` (which owns
every label, template and stop string), samples the target model, reads answers from the model's
own words only, votes (self-consistency) and returns the new child records plus the usage it
spent. They know nothing about LangGraph; :mod:`langgraph_rstar.graph` wraps each one as a node of
the same name.

Three behaviours differ from the reference code by default, each behind a config switch that
the ``reference_code`` preset flips back: identical A1/A3 samples are merged into one child
(``merge_identical_samples``), an A1 step that states the answer ends its path
(``a1_answer_terminal``), and A2 continues the steps so far instead of re-solving the question
with them as a hint (``a2_mode``).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from typing_extensions import TypedDict

from langgraph_rstar.answers import answers_equal, majority_vote
from langgraph_rstar.backends import Generation, LLMBackend, Usage
from langgraph_rstar.config import RStarConfig
from langgraph_rstar.prompts import PromptPack
from langgraph_rstar.search import Action, PathContext, TreeNode, child_id, new_node


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
    stop: Sequence[str],
    usage: Usage,
) -> list[list[str]]:
    gen: Generation = await llm.generate(
        prompts,
        n=n,
        max_tokens=max_tokens,
        stop=list(stop),
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


def trim_after_answer(text: str, pack: PromptPack, task: str) -> str:
    """Drop what a model writes after its "The answer is ..." sentence (small models ramble on).

    Only the kept text changes (what users see and the discriminator's prefixes are cut from):
    if the trim would change the answer read from the text, the text is kept whole.
    """
    at = text.lower().find("answer is")
    end = _AFTER_ANSWER_END.search(text, at) if at >= 0 else None
    if end is None:
        return text
    trimmed = text[: end.start()].rstrip()
    return trimmed if pack.answer(trimmed, task) == pack.answer(text, task) else text


class Voted(TypedDict):
    answer: str | None
    agree: int
    samples: int
    index: int  # the first sample of the winning group (its text becomes the node's text)


def vote(answers: Sequence[str | None], task: str) -> Voted:
    """Majority answer over samples; samples without an answer count in the denominator."""
    result = majority_vote(list(answers), task)
    if result.answer is None:
        return Voted(answer=None, agree=0, samples=len(answers), index=0)
    return Voted(
        answer=result.answer, agree=result.count, samples=len(answers), index=result.groups[0][2][0]
    )


def _voted_fields(v: Voted) -> dict[str, Any]:
    value = v["agree"] / v["samples"] if v["samples"] and v["answer"] is not None else 0.0
    return {"answer": v["answer"], "value": value, "samples": v["samples"], "agree": v["agree"]}


def _result(ctx: PathContext, action: Action, children: list[TreeNode], usage: Usage):
    nodes: dict[str, TreeNode] = {c["id"]: c for c in children}
    nodes[ctx["node_id"]] = {"children": {action: [c["id"] for c in children]}}
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


def _distinct(texts: Sequence[str], merge: bool) -> list[str]:
    """Non-empty samples; identical ones (case-insensitive) merged when ``merge``."""
    out: list[str] = []
    seen: set[str] = set()
    for t in texts:
        t = t.strip()
        if not t or (merge and t.lower() in seen):
            continue
        seen.add(t.lower())
        out.append(t)
    return out


async def one_step(ctx: PathContext, llm: LLMBackend, pack: PromptPack, cfg: RStarConfig):
    """A1: propose the next single step (``num_a1_steps`` samples, one child each).

    A step that states the answer is valued by the share of all sibling samples reaching the
    same answer; it ends the path when ``a1_answer_terminal`` (else search continues below it,
    as in the reference code, and it is still harvested as a candidate).
    """
    usage = Usage()
    [texts] = await _sample(
        llm,
        [pack.step_prompt(ctx["active_question"], ctx["steps"])],
        cfg,
        n=cfg.num_a1_steps,
        max_tokens=cfg.max_tokens_step,
        stop=pack.stops["one_step"],
        usage=usage,
    )
    steps = [pack.strip_labels(trim_after_answer(t, pack, cfg.task)) for t in texts]
    answers = [pack.answer(s, cfg.task) for s in steps]
    agree = majority_vote(answers, cfg.task)
    children = []
    for i, step in enumerate(_distinct(steps, cfg.merge_identical_samples)):
        fields: dict[str, Any] = {"text": step, "steps": [step]}
        answer = pack.answer(step, cfg.task)
        if answer is not None:
            share = next(
                (cnt for rep, cnt, _ in agree.groups if answers_equal(rep, answer, cfg.task)), 0
            )
            fields.update(
                answer=answer,
                value=share / len(texts),
                samples=len(texts),
                agree=share,
                terminal=cfg.a1_answer_terminal,
            )
        children.append(_child(ctx, "a1_one_step", i, "one_step", **fields))
    return _result(ctx, "a1_one_step", children, usage)


async def remaining_steps(ctx: PathContext, llm: LLMBackend, pack: PromptPack, cfg: RStarConfig):
    """A2: propose all remaining steps and vote over ``num_last_votes`` samples.

    ``a2_mode="continue"`` writes the rest after the path's steps; ``"resolve"`` (the reference
    code) solves the question afresh with the path so far given as a hint.
    """
    usage = Usage()
    if cfg.a2_mode == "resolve":
        hint = pack.hint(ctx["steps"], ctx["subqas"])
        prompt = pack.solve_prompt(ctx["active_question"], hint=hint)
        stop, parse = pack.stops["solve"], pack.parse_solution
    else:
        prompt = pack.step_prompt(ctx["active_question"], ctx["steps"])
        stop, parse = pack.stops["continue"], pack.parse_steps
    [texts] = await _sample(
        llm,
        [prompt],
        cfg,
        n=cfg.num_last_votes,
        max_tokens=cfg.max_tokens_cot,
        stop=stop,
        usage=usage,
    )
    texts = [trim_after_answer(t, pack, cfg.task) for t in texts]
    v = vote([pack.answer(t, cfg.task) for t in texts], cfg.task)
    steps = parse(texts[v["index"]]) if texts else []
    child = _child(
        ctx,
        "a2_remaining_steps",
        0,
        "direct_answer",
        text=" ".join(steps),
        steps=steps,
        terminal=True,
        **_voted_fields(v),
    )
    return _result(ctx, "a2_remaining_steps", [child], usage)


async def subquestion(ctx: PathContext, llm: LLMBackend, pack: PromptPack, cfg: RStarConfig):
    """A3: propose the next sub-question(s), then answer each by self-consistency.

    A final sub-question ("Now we can answer the question: ...") gets ``num_last_votes``
    samples, an intermediate one ``num_votes``; each sub-question is judged on its own (the
    reference code decides the count for all of them from the last one).
    """
    usage = Usage()
    question = ctx["active_question"]
    [texts] = await _sample(
        llm,
        [pack.decompose_prompt(question, ctx["subqas"])],
        cfg,
        n=cfg.num_subquestions,
        max_tokens=cfg.max_tokens_subquestion,
        stop=pack.stops["subquestion"],
        usage=usage,
    )
    subqs = _distinct([pack.strip_labels(t) for t in texts], cfg.merge_identical_samples)
    finals = [pack.is_final_subquestion(q, ctx["question"]) for q in subqs]
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
            stop=pack.stops["subanswer"],
            usage=usage,
        )
        return list(zip(idx, outs, strict=True))

    groups = await asyncio.gather(*(answer_group(n, idx) for n, idx in by_n.items()))
    answers_by_index = {i: outs for group in groups for i, outs in group}
    children = []
    for i, q in enumerate(subqs):
        samples = [pack.strip_labels(t) for t in answers_by_index[i]]
        v = vote([pack.answer(t, cfg.task) for t in samples], cfg.task)
        children.append(
            _child(
                ctx,
                "a3_subquestion",
                i,
                "subquestion",
                subquestion=q,
                subanswer=samples[v["index"]] if samples else "",
                terminal=finals[i],
                **_voted_fields(v),
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
    """A4: re-answer the last sub-question with a full solution, by self-consistency."""
    usage = Usage()
    subq = ctx["last_subquestion"] or ""
    final = pack.is_final_subquestion(subq, ctx["question"])
    question = f"{_question_context(ctx['active_question'])} {subq}".strip()
    [texts] = await _sample(
        llm,
        [pack.solve_prompt(question)],
        cfg,
        n=cfg.num_last_votes if final else cfg.num_votes,
        max_tokens=cfg.max_tokens_cot,
        stop=pack.stops["solve"],
        usage=usage,
    )
    texts = [trim_after_answer(t, pack, cfg.task) for t in texts]
    v = vote([pack.answer(t, cfg.task) for t in texts], cfg.task)
    one_line = " ".join(pack.parse_solution(texts[v["index"]])) if texts else ""
    child = _child(
        ctx,
        "a4_reanswer_subquestion",
        0,
        "re_subanswer",
        subquestion=subq,
        subanswer=one_line,
        terminal=final,
        **_voted_fields(v),
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
        stop=pack.stops["rephrase"],
        usage=usage,
    )
    body = texts[0].strip() if texts else ""
    children = []
    if body:
        children.append(
            _child(ctx, "a5_rephrase_question", 0, "rephrased", text=pack.rephrased(body))
        )
    return _result(ctx, "a5_rephrase_question", children, usage)


ACTION_FUNCTIONS: dict[str, ActionFn] = {
    "a1_one_step": one_step,
    "a2_remaining_steps": remaining_steps,
    "a3_subquestion": subquestion,
    "a4_reanswer_subquestion": reanswer_subquestion,
    "a5_rephrase_question": rephrase_question,
}
