"""Search and discriminator settings, presets, and per-run overrides."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_type_hints

from typing_extensions import TypedDict

from langgraph_rstar.answers import task_family
from langgraph_rstar.prompts import PromptPack, load_prompts
from langgraph_rstar.settings import SettingsError, check_names, close_to_a_field, validate_fields

PresetName = Literal["fast", "paper", "reference_code"]
PRESETS: tuple[str, ...] = ("fast", "paper", "reference_code")


@dataclass(frozen=True)
class RStarConfig:
    """Every knob of an rStar run. Build one with :meth:`preset` and override with :meth:`replace`.

    Example:
        >>> cfg = RStarConfig.preset("paper", task="math500")
        >>> cfg.max_depth, cfg.num_rollouts
        (8, 32)
        >>> cfg.replace(num_rollouts=4).num_rollouts
        4
    """

    preset_name: str = "fast"  # which preset this config started from
    task: str = "gsm8k"
    # Prompt pack: a pack name under prompts/ or a directory; None picks the task's family pack
    # in `prompt_style` ("compact": short, for CPUs; "reference": the released code's format).
    prompts: str | None = None
    prompt_style: Literal["compact", "reference"] = "compact"

    # --- generator (MCTS) ---
    num_rollouts: int = 4
    rollouts_in_flight: int = 1  # K; 1 reproduces the sequential algorithm exactly
    max_depth: int = 4
    num_a1_steps: int = 2
    num_subquestions: int = 2
    num_votes: int = 3  # samples per sub-answer (A3) and re-answer (A4)
    num_last_votes: int = 4  # samples for A2 and for a final sub-question's answer
    exploration_weight: float = 2.0
    enable_a1: bool = True
    enable_a5: bool = True
    seed: int = 42  # drives the search's random choices (not the server's sampling)
    # Deviations from the reference code (each True/"continue" here; `reference_code` flips them):
    merge_identical_samples: bool = True  # identical A1/A3 samples become one child
    a1_answer_terminal: bool = True  # an A1 step stating the answer ends its path
    a2_mode: Literal["continue", "resolve"] = "continue"  # A2 continues the steps / re-solves

    # --- sampling ---
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int | None = 40
    repetition_penalty: float | None = 1.1
    max_tokens_cot: int = 256  # A2 and A4 (whole solutions)
    max_tokens_step: int = 96  # A1
    max_tokens_subquestion: int = 64
    max_tokens_subanswer: int = 128
    max_tokens_rephrase: int = 160

    # --- discriminator (mutual consistency) ---
    use_discriminator: bool = True
    mask_mode: Literal["paper", "reference_code"] = "paper"
    num_masks: int = 2
    mask_left: float = 0.2
    mask_right: float = 0.8
    agreement: Literal["loose", "mid", "majority", "strict", "plurality"] = "majority"
    # The selection rule (langgraph_rstar.selection.RULES): mutual | paper | paper_argmax |
    # reference_code | consistent_maj | generator_maj.
    scoring: str = "mutual"
    confidence_prior: float = 2.0  # pseudo-samples shrinking small-sample vote shares
    skip_threshold: float = 0.999  # skip the discriminator when this share of candidates agree
    discriminator_temperature: float = 1.0
    discriminator_max_tokens: int = 192
    discriminator_seed: int = 7  # drives the random split points in `paper` masking

    # --- budgets per search (None: no limit) ---
    # Checked between waves of actions: the wave running when a limit is reached finishes, then
    # the search starts nothing new and answers from what it has (`budget_exhausted` says which).
    max_requests: int | None = None  # HTTP requests, target and discriminator together
    max_generated_tokens: int | None = None  # generated tokens, target and discriminator
    max_seconds: float | None = None  # wall-clock seconds since the search started

    extra: dict[str, Any] = field(default_factory=dict)  # free-form, carried into the result

    def __post_init__(self) -> None:
        # Types and ranges of every field (langgraph_rstar.settings), then cross-field rules.
        for name, value in validate_fields(self).items():
            object.__setattr__(self, name, value)
        task_family(self.task)  # raises ValueError on an unknown task
        if self.preset_name not in PRESETS:
            raise SettingsError(f"unknown preset {self.preset_name!r}; known: {', '.join(PRESETS)}")
        if not self.mask_left <= self.mask_right:
            raise SettingsError("need 0 < mask_left <= mask_right < 1")
        from langgraph_rstar.selection import RULES

        if self.scoring not in RULES:
            raise SettingsError(f"unknown scoring {self.scoring!r}; known: {', '.join(RULES)}")

    @classmethod
    def preset(cls, name: str = "fast", *, task: str = "gsm8k", **overrides: Any) -> RStarConfig:
        """Build a preset.

        * ``paper``: the paper's setting (§4.1 and the authors' reproduction command):
          32 rollouts, depth 5 (8 for MATH), 5 A1 steps, 5 sub-questions, 10/32 votes, c=2,
          T=0.8, top_p 0.95, top_k 40, repetition penalty 1.1, the reference prompt format,
          4 random 20-80 % step masks, a majority of them to agree, ``mutual`` selection.
        * ``reference_code``: the released code's argparse defaults and behaviour (15 rollouts,
          3 A1 steps, 3 sub-questions, identical samples kept apart, A1 answer steps not
          terminal, A2 re-solving with a hint, four word-prefix masks at 20-50 %, "mid"
          agreement, the code's survivor-share + survival-rate selection), minus its gold peek.
        * ``fast``: a CPU budget: 4 rollouts, depth 4, 2 A1 steps, 2 sub-questions, 3/4 votes,
          short generations, the compact prompt pack, 3 masks. Trades recall of rare correct
          paths for ~40x fewer tokens.

        Masks never show a candidate's answer in any preset (see ``discriminator.py``).

        Rollouts in flight (K): ``paper`` 8, ``reference_code`` 4, ``fast`` 2 -- a quarter of
        the rollouts, rounded down. On the simulated vLLM (``benchmarks/bench_sim.py``) that is
        where a question is already near its dependency-chain bound while the search still
        does the work of K = 1 (tokens and nodes expanded within 15 %); larger K barely shortens
        the wall and starts trimming the tree. ``rollouts_in_flight=1`` reproduces the
        sequential algorithm exactly (same responses, same tree); K > 1 resumes rollouts in
        completion order, so the tree may vary from run to run with the server's timing.
        """
        if name not in PRESETS:
            raise SettingsError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
        check_names(cls, overrides)
        family = task_family(task)
        common = dict(
            preset_name=name,
            task=task,
            exploration_weight=2.0,
            temperature=0.8,
            top_p=0.95,
            top_k=40,
            repetition_penalty=1.1,
        )
        if name == "paper":
            values: dict[str, Any] = dict(
                num_rollouts=32,
                rollouts_in_flight=8,
                max_depth=8 if family == "math" else 5,
                num_a1_steps=5,
                num_subquestions=5,
                num_votes=10,
                num_last_votes=32,
                max_tokens_cot=1024,
                max_tokens_step=256,
                max_tokens_subquestion=128,
                max_tokens_subanswer=512,
                max_tokens_rephrase=512,
                prompt_style="reference",
                mask_mode="paper",
                num_masks=4,
                mask_left=0.2,
                mask_right=0.8,
                agreement="majority",
                scoring="mutual",
                discriminator_max_tokens=512,
            )
        elif name == "reference_code":
            values = dict(
                num_rollouts=15,
                rollouts_in_flight=4,
                max_depth=5,
                num_a1_steps=3,
                num_subquestions=3,
                num_votes=10,
                num_last_votes=32,
                max_tokens_cot=1024,
                max_tokens_step=256,
                max_tokens_subquestion=128,
                max_tokens_subanswer=512,
                max_tokens_rephrase=512,
                prompt_style="reference",
                merge_identical_samples=False,
                a1_answer_terminal=False,
                a2_mode="resolve",
                mask_mode="reference_code",
                num_masks=4,
                mask_left=0.2,
                mask_right=0.5,
                agreement="mid",
                scoring="reference_code",
                discriminator_max_tokens=512,
            )
        else:
            values = dict(
                num_rollouts=4,
                rollouts_in_flight=2,
                max_depth=4,
                num_a1_steps=2,
                num_subquestions=2,
                num_votes=3,
                num_last_votes=4,
                max_tokens_cot=256,
                max_tokens_step=96,
                max_tokens_subquestion=64,
                max_tokens_subanswer=128,
                max_tokens_rephrase=160,
                prompt_style="compact",
                mask_mode="paper",
                num_masks=3,
                mask_left=0.2,
                mask_right=0.8,
                agreement="majority",
                scoring="mutual",
                discriminator_max_tokens=192,
            )
        return cls(**{**common, **values, **overrides})

    def prompt_pack(self) -> PromptPack:
        """The prompt pack this config selects (``prompts`` or the task's ``prompt_style`` pack)."""
        return load_prompts(self.prompts, task=self.task, style=self.prompt_style)

    def replace(self, **changes: Any) -> RStarConfig:
        """A copy with some fields changed (validated)."""
        check_names(type(self), changes)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RStarConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


_FIELD_TYPES = get_type_hints(RStarConfig)

# Per-run overrides, the graph's `context_schema`: any RStarConfig field, all optional.
RStarContext = TypedDict(
    "RStarContext",
    # Built from the dataclass so the two never drift; a checker cannot read computed keys.
    {"preset": str, **{f.name: _FIELD_TYPES[f.name] for f in dataclasses.fields(RStarConfig)}},  # type: ignore[misc]
    total=False,
)
RStarContext.__doc__ = (
    "Per-run overrides of any RStarConfig field; `preset` rebuilds from a preset."
)


def resolve_config(base: RStarConfig, context: Any) -> RStarConfig:
    """Apply a run's context to the factory's config.

    ``context`` may be ``None`` (no overrides), an :class:`RStarConfig`, or a mapping of field
    names (an ``RStarContext``), possibly nested under an ``"rstar"`` key when the graph runs inside
    a parent whose context has other keys. Keys that are not config fields are ignored, because a
    parent graph's context arrives here unchanged, except near-misses of a field name
    (``num_rolouts``), which raise :class:`~langgraph_rstar.settings.SettingsError`.
    """
    if context is None:
        return base
    if isinstance(context, RStarConfig):
        return context
    if not isinstance(context, Mapping):
        nested = getattr(context, "rstar", None)
        if isinstance(nested, (Mapping, RStarConfig)):
            return resolve_config(base, nested)
        return base
    if isinstance(context.get("rstar"), (Mapping, RStarConfig)):
        return resolve_config(base, context["rstar"])
    names = {f.name for f in dataclasses.fields(RStarConfig)} | {"preset"}
    typos = [k for k in context if k not in names and close_to_a_field(RStarConfig, str(k))]
    if typos:
        check_names(RStarConfig, typos)
    overrides = {k: v for k, v in context.items() if k in names}
    if not overrides:
        return base
    if "preset" in overrides:
        rest = {k: v for k, v in overrides.items() if k not in ("preset", "task")}
        return RStarConfig.preset(
            overrides["preset"], task=overrides.get("task", base.task), **rest
        )
    return base.replace(**overrides)
