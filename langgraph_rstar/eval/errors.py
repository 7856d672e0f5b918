"""The one error type of the evaluation harness."""

from __future__ import annotations

__all__ = ["EvalError"]


class EvalError(ValueError):
    """Bad input or setup for ``rstar eval`` / ``rstar report`` (the CLI exits with code 2)."""
