"""Stability mechanisms of paper §3.6: cooldowns, dampening, clamps, scale-in stabilisation.

Every function is pure; recommendations history is an explicit tuple passed in and returned.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from hetero_opt.policy._base import Frozen

Action = Literal["out", "in", "none"]


class UnitRecommendation(Frozen):
    """A raw (unstabilised) target-units recommendation with its time."""

    units: int = Field(ge=0, description="Recommended total units.")
    at: float = Field(description="When it was made (s).")


def cooldown_passed(last_action_at: float | None, now: float, cooldown_s: float) -> bool:
    """Return True when no action happened yet or ``now - last >= cooldown`` (inclusive)."""
    return last_action_at is None or now - last_action_at >= cooldown_s


def cooldown_reference(
    direction: Literal["out", "in"],
    last_out_at: float | None,
    last_in_at: float | None,
    mode: Literal["last_action", "same_direction"],
) -> float | None:
    """Time the cooldown of ``direction`` counts from.

    ``last_action`` is the paper's ``T_last`` (the last scaling action of either direction);
    ``same_direction`` counts from the last action of the same direction only.
    """
    if mode == "same_direction":
        return last_out_at if direction == "out" else last_in_at
    times = [t for t in (last_out_at, last_in_at) if t is not None]
    return max(times) if times else None


def dampen(
    supply: int,
    target: int,
    *,
    max_out_units: int | None = None,
    max_out_percent: float | None = None,
    max_in_units: int | None = None,
    max_in_percent: float | None = None,
) -> int:
    """Bound one action's step. Limits in units and percent both apply (the tighter wins).

    A percent limit allows ``ceil(supply × percent / 100)`` units and at least one, so a
    small service can always move.
    """
    if target > supply:
        return supply + _limited(target - supply, supply, max_out_units, max_out_percent)
    if target < supply:
        return supply - _limited(supply - target, supply, max_in_units, max_in_percent)
    return target


def _limited(step: int, supply: int, max_units: int | None, max_percent: float | None) -> int:
    """``step`` within ``max_units`` and ``ceil(supply × max_percent / 100)`` (at least 1)."""
    if max_units is not None:
        step = min(step, max_units)
    if max_percent is not None:
        step = min(step, max(1, math.ceil(supply * max_percent / 100)))
    return step


def clamp_units(target: int, min_units: int, max_units: int) -> int:
    """Clamp ``target`` into ``[min_units, max_units]``."""
    return max(min_units, min(max_units, target))


def stabilize_scale_in(
    history: tuple[UnitRecommendation, ...],
    supply: int,
    proposed: int,
    now: float,
    window_s: float,
) -> tuple[int, tuple[UnitRecommendation, ...]]:
    """Hold scale-in at the highest recommendation of the last ``window_s`` seconds.

    Records ``proposed``; drops entries older than the window. When ``proposed`` is below
    ``supply`` the result is ``min(supply, max(recent recommendations))`` — an old high
    recommendation delays a scale-in but never causes a scale-out. With a zero window the
    history stays empty and ``proposed`` passes through.
    """
    if window_s <= 0:
        return proposed, ()
    kept = tuple(r for r in history if r.at >= now - window_s)
    new_history = (*kept, UnitRecommendation(units=proposed, at=now))
    if proposed >= supply:
        return proposed, new_history
    highest = max(r.units for r in new_history)
    return min(supply, highest), new_history


def action_for(supply: int, target: int) -> Action:
    """``out`` when ``target > supply``, ``in`` when below, else ``none``."""
    if target > supply:
        return "out"
    if target < supply:
        return "in"
    return "none"
