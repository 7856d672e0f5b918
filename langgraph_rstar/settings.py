"""Validated settings: every field of a settings dataclass typed and bounded, unknown names refused.

The checks are derived from the dataclass itself, so a field added to
:class:`~langgraph_rstar.config.RStarConfig` is covered without touching this module: its type
hint gives the type (``Literal[...]`` values included) and :data:`BOUNDS` its range. Validation is
strict (pydantic's strict mode): ``temperature="hot"``, ``use_discriminator="no"``,
``num_rollouts=True`` or a NaN are errors, not coerced guesses. Unknown names get the closest
valid ones and the full list.

Example:
    >>> from langgraph_rstar.config import RStarConfig
    >>> try:
    ...     RStarConfig.preset("fast", temperature="hot")
    ... except SettingsError as exc:
    ...     print(exc)
    invalid rStar setting: temperature: Input should be a valid number (got 'hot')
"""

from __future__ import annotations

import dataclasses
import difflib
import types
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Union, get_args, get_origin, get_type_hints

import pydantic

__all__ = ["BOUNDS", "SettingsError", "check_names", "unknown_names", "validate_fields"]

_INT64 = 2**63 - 1
_TOKENS: dict[str, float] = {"ge": 1, "le": 1_000_000}  # generated tokens per sample
_COUNT: dict[str, float] = {"ge": 1, "le": 1024}  # samples, children, masks per step

#: The range of every numeric setting (pydantic ``Field`` constraints). A numeric field that is
#: not listed here is refused by ``tests/test_settings.py``: give every new one its range.
BOUNDS: dict[str, dict[str, float]] = {
    "num_rollouts": {"ge": 1, "le": 100_000},
    "rollouts_in_flight": {"ge": 1, "le": 1024},
    "max_depth": {"ge": 1, "le": 256},
    "num_a1_steps": _COUNT,
    "num_subquestions": _COUNT,
    "num_votes": _COUNT,
    "num_last_votes": _COUNT,
    "exploration_weight": {"ge": 0, "le": 1000},
    "seed": {"ge": -_INT64 - 1, "le": _INT64},
    "temperature": {"ge": 0, "le": 10},
    "top_p": {"gt": 0, "le": 1},
    "top_k": {"ge": -1, "le": 1_000_000},  # -1: vLLM's "off"
    "repetition_penalty": {"gt": 0, "le": 10},
    "max_tokens_cot": _TOKENS,
    "max_tokens_step": _TOKENS,
    "max_tokens_subquestion": _TOKENS,
    "max_tokens_subanswer": _TOKENS,
    "max_tokens_rephrase": _TOKENS,
    "num_masks": _COUNT,
    "mask_left": {"gt": 0, "lt": 1},
    "mask_right": {"gt": 0, "lt": 1},
    "confidence_prior": {"ge": 0, "le": 1_000_000},
    "skip_threshold": {"ge": 0, "le": 2},  # > 1: never skip the discriminator
    "discriminator_temperature": {"ge": 0, "le": 10},
    "discriminator_max_tokens": _TOKENS,
    "discriminator_seed": {"ge": -_INT64 - 1, "le": _INT64},
    "max_requests": {"ge": 1, "le": _INT64},
    "max_generated_tokens": {"ge": 1, "le": _INT64},
    "max_seconds": {"gt": 0, "le": 10 * 365 * 86400},
}


class SettingsError(ValueError, TypeError):
    """A setting has a wrong type or value, or its name is unknown.

    A ``ValueError`` (and, for callers that caught ``TypeError`` on unknown keyword arguments,
    a ``TypeError`` too).
    """


def unknown_names(cls: type, names: Iterable[str], *, extra: Iterable[str] = ()) -> list[str]:
    """The names that are not fields of ``cls`` (nor in ``extra``), sorted."""
    valid = {f.name for f in dataclasses.fields(cls)} | set(extra)
    return sorted(set(names) - valid)


def check_names(cls: type, names: Iterable[str], *, extra: Iterable[str] = ()) -> None:
    """Refuse names that are not fields of ``cls``, with suggestions and the valid names.

    Raises:
        SettingsError: e.g. ``unknown rStar setting 'num_rolouts' (did you mean
            'num_rollouts'?); valid settings: ...``.
    """
    unknown = unknown_names(cls, names, extra=extra)
    if not unknown:
        return
    valid = sorted({f.name for f in dataclasses.fields(cls)} | set(extra))
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name, valid, n=2, cutoff=0.75)
        hint = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
        parts.append(f"{name!r}{hint}")
    noun = "setting" if len(unknown) == 1 else "settings"
    raise SettingsError(
        f"unknown rStar {noun} {', '.join(parts)}; valid settings: {', '.join(valid)}"
    )


def close_to_a_field(cls: type, name: str) -> list[str]:
    """Field names ``name`` is almost surely a typo of (for mappings that may hold other keys,
    such as a parent graph's context: the bar is high, so ``max_tokens`` passes unflagged)."""
    valid = [f.name for f in dataclasses.fields(cls)]
    return difflib.get_close_matches(name, valid, n=2, cutoff=0.9)


def validate_fields(instance: Any) -> dict[str, Any]:
    """Check every field of a dataclass instance; returns the validated values.

    Floats given as ints come back as floats (``temperature=1`` -> ``1.0``); nothing else is
    converted.

    Raises:
        SettingsError: listing every wrong field with what was given.
    """
    model = _model_for(type(instance))
    values = {f.name: getattr(instance, f.name) for f in dataclasses.fields(instance)}
    try:
        checked = model.model_validate(values)
    except pydantic.ValidationError as exc:
        problems = [
            f"{'.'.join(map(str, err['loc']))}: {err['msg']} (got {err.get('input')!r})"
            for err in exc.errors(include_url=False)
        ]
        noun = "setting" if len(problems) == 1 else "settings"
        raise SettingsError(f"invalid rStar {noun}: " + "; ".join(problems)) from None
    return {name: getattr(checked, name) for name in values}


_MODELS: dict[type, type[pydantic.BaseModel]] = {}


def _model_for(cls: type) -> type[pydantic.BaseModel]:
    """A strict pydantic model with one field per dataclass field (built once per class)."""
    if cls in _MODELS:
        return _MODELS[cls]
    hints = get_type_hints(cls, include_extras=True)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        fields[f.name] = (_bounded(hints[f.name], BOUNDS.get(f.name)), ...)
    config = pydantic.ConfigDict(
        strict=True, extra="forbid", allow_inf_nan=False, arbitrary_types_allowed=True
    )
    model = pydantic.create_model(f"{cls.__name__}Settings", __config__=config, **fields)
    _MODELS[cls] = model
    return model


def _bounded(hint: Any, bounds: Mapping[str, Any] | None) -> Any:
    """``hint`` with ``bounds`` applied to its non-``None`` part (``int | None`` stays optional)."""
    if not bounds:
        return hint
    if get_origin(hint) in (Union, types.UnionType):
        inner = [a for a in get_args(hint) if a is not type(None)]
        if len(inner) == 1 and len(inner) < len(get_args(hint)):
            return Annotated[inner[0], pydantic.Field(**bounds)] | None
    return Annotated[hint, pydantic.Field(**bounds)]


def is_numeric(hint: Any) -> bool:
    """Whether a field's type is a number (possibly optional): those need :data:`BOUNDS`."""
    args = get_args(hint) if get_origin(hint) in (Union, types.UnionType) else (hint,)
    return any(a in (int, float) for a in args)
