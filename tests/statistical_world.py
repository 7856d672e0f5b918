"""A statistical world: a responder whose every sample is right with probability ``p``.

Content gives the search no advantage here: whatever the prompt, a freshly sampled answer is the
question's right answer with probability ``p``; otherwise one of three popular distractors (60 %
of wrong samples, weights 0.5/0.3/0.2) or a scattered one-off number. So the world isolates how
rStar *aggregates* (votes, rewards, masks, selection), in seconds, over real HTTP.

What it keeps of real models is their structure:

* a solution is 2-4 steps: intermediate steps ("We find an intermediate value: 17."), a step
  that computes the result ("Putting it together gives 1234."), and "The answer is 1234.";
* **commitment**: once the visible part of a prompt computes or states a result (in the steps
  so far, a hint, or a discriminator's prefix) every continuation copies it. A1 steps that only
  restate a result, and A2 votes after it, all agree although one sample decided the answer;
* the **discriminator copies an answer visible in its prefix**, so a mask that shows the step
  computing the answer makes every candidate "consistent"; otherwise it answers afresh;
* sub-questions end ("Now we can answer the question: ...") with probability 0.3 / 0.6 / 1 at
  the 1st / 2nd / 3rd; intermediate sub-answers are unrelated small numbers.

Questions are synthetic ("Item 17 holds some numbers. ... What is the total?"); the item number
identifies the question inside any prompt (few-shot exemplars never contain "Item "). Samples
are a pure function of (seed, prompt, stop, max_tokens, prompt index, choice index), so a run is
reproducible whatever the concurrency.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ITEM_RE = re.compile(r"Item (\d+)\b")
# Final answers have 4+ digits, intermediate values 2: only a final result commits.
RESULT_RE = re.compile(r"(?:gives|answer is:?)\s*(-?\d{4,})")
SUBQ_LABEL_RE = re.compile(r"(?:Sub-question \d+|Question 5\.\d+):$")
SUBA_LABEL_RE = re.compile(r"(?:Answer \d+|Answer 5\.\d+):$")
STEP_LABEL_RE = re.compile(r"Step (\d+):")
FINAL_SUBQ = "Now we can answer the question:"


def world_question(i: int) -> str:
    """The i-th synthetic question (its item number identifies it in every prompt)."""
    return (
        f"Item {i} holds some numbers. Several steps combine them into one total. "
        "What is the total?"
    )


@dataclass
class StatisticalWorld:
    """Responder for :class:`tests.scripted_server.ScriptedServer` (``world.respond``)."""

    p: float = 0.3
    seed: int = 0
    popular_share: float = 0.6  # of wrong samples: a popular distractor (else scattered)
    distractor_weights: tuple[float, ...] = (0.5, 0.3, 0.2)
    answers: dict[int, dict[str, Any]] = field(default_factory=dict)

    # ---------------------------------------------------------------- the world's facts

    def truth(self, item: int) -> dict[str, Any]:
        if item not in self.answers:
            rng = random.Random(f"truth|{self.seed}|{item}")
            values = rng.sample(range(1000, 9999), 1 + len(self.distractor_weights))
            self.answers[item] = {"right": values[0], "distractors": values[1:]}
        return self.answers[item]

    def right_answer(self, item: int) -> str:
        return str(self.truth(item)["right"])

    def sample_answer(self, item: int, rng: random.Random) -> int:
        facts = self.truth(item)
        if rng.random() < self.p:
            return facts["right"]
        if rng.random() < self.popular_share:
            return rng.choices(facts["distractors"], weights=self.distractor_weights)[0]
        return rng.randrange(10_000, 99_999)  # scattered: almost never repeats

    # ---------------------------------------------------------------- reading a prompt

    @staticmethod
    def _live(prompt: str) -> tuple[int, str, str]:
        """The item number, the live question's line, and the visible text after it."""
        matches = list(ITEM_RE.finditer(prompt))
        if not matches:
            return -1, "", ""
        last = matches[-1]
        line_start = prompt.rfind("\n", 0, last.start()) + 1
        line_end = prompt.find("\n", last.end())
        line_end = line_end if line_end >= 0 else len(prompt)
        return int(last.group(1)), prompt[line_start:line_end], prompt[line_end:]

    @staticmethod
    def _visible_result(text: str) -> int | None:
        found = RESULT_RE.findall(text)
        return int(found[-1]) if found else None

    def respond(self, prompt: str, params: Mapping[str, Any]) -> str:
        key = "|".join(
            [
                str(self.seed),
                hashlib.sha256(prompt.encode()).hexdigest(),
                repr(params.get("stop")),
                str(params.get("max_tokens")),
                str(params.get("prompt_index", 0)),
                str(params.get("n_index", 0)),
            ]
        )
        rng = random.Random(key)
        item, line, visible = self._live(prompt)
        tail = prompt.rstrip()
        if item < 0:
            return " I cannot tell."
        if tail.endswith("Condition 1:"):
            return f" Item {item} holds some numbers. Question: What is the total?"
        if SUBQ_LABEL_RE.search(tail):
            k = int(re.findall(r"(\d+):$", tail)[0])
            if rng.random() < {1: 0.3, 2: 0.6}.get(k, 1.0):
                return f" {FINAL_SUBQ} What is the total?"
            return f" What is intermediate quantity {k}?"
        if SUBA_LABEL_RE.search(tail):
            asked = tail.split("\n")[-2] if "\n" in tail else ""  # the sub-question line
            if FINAL_SUBQ in asked:
                value = self._visible_result(visible)
                value = value if value is not None else self.sample_answer(item, rng)
                return f" Putting it together gives {value}. The answer is {value}."
            v = rng.randrange(2, 99)
            return f" We find it is {v}. The answer is {v}."
        return self._solution(item, line, visible, tail, params, rng)

    def _solution(
        self,
        item: int,
        line: str,
        visible: str,
        tail: str,
        params: Mapping[str, Any],
        rng: random.Random,
    ) -> str:
        stop = params.get("stop") or []
        one_step = "\n" in stop
        committed = self._visible_result(visible)
        labels = STEP_LABEL_RE.findall(visible)
        steps_style = bool(labels) or tail.endswith(":")
        done = len(labels) - 1 if tail.endswith(":") else len(labels)
        if not steps_style:  # paragraph: count the sentences already written
            body = visible.split("step by step.", 1)[-1] if "step by step." in visible else ""
            done = len([s for s in re.split(r"(?<=\.)\s+", body.strip()) if s])
        intermediate = "intermediate quantity" in line  # A4 on an intermediate sub-question
        answer = committed if committed is not None else self.sample_answer(item, rng)
        if intermediate:
            answer = rng.randrange(2, 99)
        length = rng.randint(2, 4)
        plan: list[str] = []
        for k in range(done + 1, max(length, done + 1) + 1):
            if committed is not None or k >= length:
                plan.append(f"The answer is {answer}.")
                break
            if k == length - 1:
                plan.append(f"Putting it together gives {answer}.")
            else:
                plan.append(f"We find an intermediate value: {rng.randrange(2, 99)}.")
        if one_step:
            plan = plan[:1]
        if not steps_style:
            return " " + " ".join(plan)
        # Continue after "Step k:" (or mid-line after a word prefix), one step per line.
        lines = [plan[0]] + [f"Step {done + 1 + i}: {s}" for i, s in enumerate(plan[1:], 1)]
        return " " + "\n".join(lines) + ("" if one_step else "\n")


def cannot_solve_responder(prompt: str, params: Mapping[str, Any]) -> str:
    """A server that never solves anything (and never writes a number)."""
    return " I cannot solve this."


# ------------------------------------------------------------------------ running the world


@dataclass
class QuestionRun:
    """One question of a world run: what rStar produced and what every method answered."""

    item: int
    right: str
    answers: dict[str, str | None]  # method -> answer
    candidates: int
    generated_tokens: int  # rStar, target + discriminator
    sc_tokens_k: int  # SC samples that cost as many tokens as rStar did


async def _sample_votes(
    llm: Any, pack: Any, question: str, k: int, task: str
) -> tuple[str | None, int]:
    """Self-consistency: ``k`` samples of the solve prompt, majority vote; (answer, tokens)."""
    from langgraph_rstar.answers import majority_vote

    if k <= 0:
        return None, 0
    gen = await llm.generate(
        [pack.solve_prompt(question)], n=k, max_tokens=256, stop=list(pack.stops["solve"])
    )
    vote = majority_vote([pack.answer(c.text, task) for c in gen.choices[0]], task)
    return vote.answer, gen.usage.completion_tokens


async def run_world(
    world: StatisticalWorld,
    base_url: str,
    config: Any,
    items: list[int],
    *,
    concurrency: int = 4,
    agreements: tuple[str, ...] = (),
) -> list[QuestionRun]:
    """Run rStar (``config``) and the baselines on ``items``; every selection rule is re-scored
    from the same search. Baselines: CoT (one sample), SC@k with k = rStar's number of
    candidates, and SC at rStar's generated tokens (k = rStar's tokens / tokens per SC sample,
    measured on the SC@k request of the same question)."""
    import asyncio

    from langgraph_rstar import OpenAICompatibleLLM, asolve
    from langgraph_rstar.discriminator import rescore

    llm = OpenAICompatibleLLM(base_url, "world", max_retries=0, max_in_flight=64)
    pack = config.prompt_pack()
    gate = asyncio.Semaphore(concurrency)

    async def one(item: int) -> QuestionRun:
        async with gate:
            question = world_question(item)
            result = await asolve(question, target=llm, config=config)
            rules = rescore(
                result.candidates,
                result.verification,
                task=config.task,
                prior=config.confidence_prior,
                agreements=(None, *agreements),
            )
            tokens = sum(u.get("completion_tokens", 0) for u in result.usage.values())
            k = max(1, len(result.candidates))
            answers: dict[str, str | None] = {rule: f["answer"] for rule, f in rules.items()}
            answers["pipeline"] = result.answer
            answers["cot"], _ = await _sample_votes(llm, pack, question, 1, config.task)
            answers["sc@candidates"], sc_tokens = await _sample_votes(
                llm, pack, question, k, config.task
            )
            k_tokens = max(1, round(tokens * k / max(1, sc_tokens)))
            answers["sc@tokens"], _ = await _sample_votes(
                llm, pack, question, k_tokens, config.task
            )
            return QuestionRun(item, world.right_answer(item), answers, k, tokens, k_tokens)

    return list(await asyncio.gather(*(one(i) for i in items)))


def accuracy(runs: list[QuestionRun], method: str) -> float:
    from langgraph_rstar.answers import answers_equal

    hits = sum(1 for r in runs if answers_equal(r.answers.get(method), r.right, "gsm8k"))
    return hits / len(runs) if runs else 0.0
