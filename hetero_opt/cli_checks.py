"""Checks of command-line values that several subcommands share: each error names the flag and the value."""

from __future__ import annotations

import math

from hetero_opt.errors import InputError
from hetero_opt.placement.solve import MAX_SEED, MAX_TIME_LIMIT_S


def check_seed(seed: int, flag: str = "--seed") -> None:
    """Refuse a seed outside the solver's range (every seed reaches a solver or numpy, which need >= 0)."""
    if not 0 <= seed <= MAX_SEED:
        raise InputError(f"{flag}={seed} must be in 0..{MAX_SEED}")


def check_time_limit(value: float, flag: str = "--time-limit") -> None:
    """Raise :class:`InputError` unless ``value`` is a finite time limit in (0, one day]."""
    if not (math.isfinite(value) and 0 < value <= MAX_TIME_LIMIT_S):
        raise InputError(f"{flag}={value} must be positive and finite, at most {MAX_TIME_LIMIT_S:g} s")


def check_seconds(value: float, flag: str, most: float) -> None:
    """Raise :class:`InputError` unless ``value`` is a finite number of seconds in [0, ``most``]."""
    if not (math.isfinite(value) and 0 <= value <= most):
        raise InputError(f"{flag}={value} must be a finite number of seconds in 0..{most:g}")
