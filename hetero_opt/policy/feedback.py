"""Algorithm 3 of the paper: tiered negative feedback on latency (TTFT/TBT).

Tiers, checked in order: ``L >= α × target`` → +``step_alpha`` (paper: 20 %), ``L >= β ×
target`` → +``step_beta`` (10 %), ``L <= γ × target`` → −``step_gamma`` (5 %), else no change.
Rounded to whole units: out ``ceil``, at least +1; in ``floor``, at least −1, never below min.

**Fix of the paper's pseudo-code.** Algorithm 3 ends with "if cooling ≥ C_up: ScaleOut, else if
cooling ≥ C_in: ScaleIn", so a scale-in tier passes on the *out* cooldown (and is even labelled
ScaleOut). We implement the evident intent: a scale-out tier checks ``C_out``, a scale-in tier
checks ``C_in``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pydantic import Field

from hetero_opt.policy._base import Frozen
from hetero_opt.policy.proportional import exact
from hetero_opt.policy.stability import Action


class LatencyTiers(Frozen):
    """Thresholds (multiples of the latency target) and the step of each tier."""

    alpha: float = Field(default=1.2, gt=0, description="Severe tier: L >= alpha × target.")
    beta: float = Field(default=1.0, gt=0, description="Moderate tier: L >= beta × target.")
    gamma: float = Field(default=0.6, gt=0, description="Relaxed tier: L <= gamma × target.")
    step_alpha: float = Field(default=0.2, gt=0, description="Scale-out fraction, severe.")
    step_beta: float = Field(default=0.1, gt=0, description="Scale-out fraction, moderate.")
    step_gamma: float = Field(default=0.05, gt=0, lt=1, description="Scale-in fraction.")


class LatencySignal(Frozen):
    """One latency reading against its target."""

    name: str = Field(description="Signal name, e.g. 'tbt' or 'ttft'.")
    value_ms: float = Field(ge=0, description="Observed latency (ms).")
    target_ms: float = Field(gt=0, description="SLO target latency (ms).")


class FeedbackResult(Frozen):
    """What Algorithm 3 decided and why."""

    action: Action = Field(description="out, in or none.")
    target_units: int = Field(ge=0, description="New units on a scale, else supply.")
    tier: str = Field(description="alpha, beta, gamma or none.")
    reason: str = Field(description="The rule that fired and its numbers.")


def classify(signal: LatencySignal, tiers: LatencyTiers) -> str:
    """Return the tier of one signal: ``alpha``, ``beta``, ``gamma`` or ``none``."""
    v = exact(signal.value_ms)
    t = exact(signal.target_ms)
    if v >= t * exact(tiers.alpha):
        return "alpha"
    if v >= t * exact(tiers.beta):
        return "beta"
    if v <= t * exact(tiers.gamma):
        return "gamma"
    return "none"


def scaled_units(supply: int, tier: str, tiers: LatencyTiers, min_units: int) -> int:
    """Units after applying ``tier`` to ``supply`` with the rounding rules."""
    if tier in ("alpha", "beta"):
        step = exact(tiers.step_alpha if tier == "alpha" else tiers.step_beta)
        return max(supply + 1, math.ceil(supply * (1 + step)))
    if tier == "gamma":
        if supply <= min_units:
            return supply
        down = math.floor(supply * (1 - exact(tiers.step_gamma)))
        return max(min_units, min(supply - 1, down))
    return supply


def feedback_decision(
    *,
    signals: Sequence[LatencySignal],
    supply_units: int,
    tiers: LatencyTiers,
    min_units: int,
    out_cooldown_ok: bool,
    in_cooldown_ok: bool,
    allow_in: bool = True,
    idle: bool = False,
) -> FeedbackResult:
    """Run Algorithm 3 over one or more latency signals.

    The most severe out-tier of any signal wins; scale-in needs every signal in the ``gamma``
    tier. ``allow_in=False`` makes it a pure safety layer (only adds). ``idle``: the service served
    no requests (decode TPS measured 0), so no latency was measured; with no signal this counts as
    the relaxed tier (an idle service is not held at its size for want of a reading).
    """
    if not signals and not idle:
        return FeedbackResult(action="none", target_units=supply_units, tier="none", reason="no latency signal")
    classes = [(s, classify(s, tiers)) for s in signals]
    desc = (", ".join(f"{s.name} {s.value_ms:g} ms vs target {s.target_ms:g} ({c})" for s, c in classes)
            or "no requests (decode TPS 0), no latency reading (relaxed)")
    severity = {"alpha": 2, "beta": 1}
    worst = max(classes, key=lambda sc: severity.get(sc[1], 0), default=None)
    if worst is not None and worst[1] in severity:
        tier = worst[1]
        mult = tiers.alpha if tier == "alpha" else tiers.beta
        step = tiers.step_alpha if tier == "alpha" else tiers.step_beta
        target = scaled_units(supply_units, tier, tiers, min_units)
        rule = (
            f"{worst[0].name} {worst[0].value_ms:g} >= {mult:g}×{worst[0].target_ms:g} ms"
            f" → +{step:.0%}: {supply_units} → {target} units"
        )
        if out_cooldown_ok:
            return FeedbackResult(action="out", target_units=target, tier=tier, reason=rule)
        return FeedbackResult(
            action="none",
            target_units=supply_units,
            tier=tier,
            reason=f"{rule} but out-cooldown active",
        )
    if allow_in and all(c == "gamma" for _, c in classes):
        target = scaled_units(supply_units, "gamma", tiers, min_units)
        rule = f"{desc} → −{tiers.step_gamma:.0%}: {supply_units} → {target} units"
        if target >= supply_units:
            return FeedbackResult(
                action="none",
                target_units=supply_units,
                tier="gamma",
                reason=f"{desc}; already at min {min_units}",
            )
        if in_cooldown_ok:
            return FeedbackResult(action="in", target_units=target, tier="gamma", reason=rule)
        return FeedbackResult(
            action="none",
            target_units=supply_units,
            tier="gamma",
            reason=f"{rule} but in-cooldown active",
        )
    return FeedbackResult(action="none", target_units=supply_units, tier="none", reason=f"{desc}; no tier")
