"""Algorithm 2 of the paper: proportional control on decode TPS, sized in whole P/D units.

One signal sizes both pools: ``decode pods = observed decode TPS / target TPS per decode pod``.
``R`` is the paper's continuous ratio ``I_expected / I_curr = decode pods / (supply units × d)``
for a unit of ``p`` prefill + ``d`` decode pods; ScaleOut when ``R > 1 + θ_out`` and the
out-cooldown passed, ScaleIn when ``R < 1 − θ_in`` and the in-cooldown passed, else NoChange. Only
the action's target is rounded: ``units = ceil(decode pods / d)``, whole units so the ratio holds.
Comparisons are exact (fractions), so ``R == 1 + θ_out`` is reliably NoChange.
"""

from __future__ import annotations

import math
from fractions import Fraction

from pydantic import Field

from hetero_opt.policy._base import Frozen
from hetero_opt.policy.stability import Action


def exact(x: float) -> Fraction:
    """The decimal a float was written as, as an exact fraction (``0.1`` → ``1/10``)."""
    return Fraction(repr(x))


class ProportionalResult(Frozen):
    """What Algorithm 2 decided and the numbers it used."""

    action: Action = Field(description="out, in or none.")
    target_units: int = Field(ge=0, description="Expected units on a scale, else supply.")
    expected_units: int = Field(ge=0, description="Units the observed TPS needs.")
    decode_pods_needed: float = Field(ge=0, description="Observed TPS / target TPS per pod.")
    ratio: float | None = Field(description="R = decode pods needed / (supply × d); None when supply is 0.")
    reason: str = Field(description="The rule that fired and its numbers.")


def units_for_decode_pods(decode_pods: float, decode_per_unit: int) -> int:
    """Whole units that hold ``decode_pods`` decode pods: ``ceil(pods / d)``."""
    return math.ceil(exact(decode_pods) / decode_per_unit) if decode_pods > 0 else 0


def proportional_decision(
    *,
    decode_tps: float,
    target_tps_per_pod: float,
    supply_units: int,
    decode_per_unit: int,
    theta_out: float,
    theta_in: float,
    out_cooldown_ok: bool,
    in_cooldown_ok: bool,
    in_headroom: float = 0.0,
) -> ProportionalResult:
    """Run Algorithm 2 once.

    Parameters
    ----------
    decode_tps
        Observed decode tokens/s of the whole service.
    target_tps_per_pod
        Decode tokens/s one decode pod sustains within SLO.
    supply_units
        Units running plus units already starting (pending count as supply).
    decode_per_unit
        ``d`` of the P/D unit.
    theta_out, theta_in
        Hysteresis thresholds.
    out_cooldown_ok, in_cooldown_ok
        Whether each cooldown has passed.
    in_headroom
        A scale-in keeps this fraction above the load: ``ceil(pods × (1 + h) / d)`` units, so the
        next ordinary rise does not reverse it (the in→out guard); never above supply.
    """
    pods_exact = exact(decode_tps) / exact(target_tps_per_pod)
    pods = float(pods_exact)
    expected = units_for_decode_pods(pods, decode_per_unit)
    head = (
        f"decode TPS {decode_tps:g} / {target_tps_per_pod:g} per pod = {pods:.4g} pods"
        f" → {expected} units (d={decode_per_unit})"
    )
    action: Action = "none"
    ratio: float | None = None
    if supply_units == 0:
        if expected > 0 and out_cooldown_ok:
            action, why = "out", f"{head}; supply 0 → scale out"
        else:
            why = f"{head}; supply 0, no change"
    else:
        r = pods_exact / (supply_units * decode_per_unit)
        ratio = float(r)
        up, down = 1 + exact(theta_out), 1 - exact(theta_in)
        # two decimals, or three where two would print R equal to the threshold it crossed
        digits = 3 if f"{ratio:.2f}" in (f"{float(up):.2f}", f"{float(down):.2f}") else 2
        rtxt = f"R={ratio:.{digits}f}"
        if r > up:
            action = "out" if out_cooldown_ok else "none"
            why = f"{head}; {rtxt} > {float(up):.2f}" + ("" if out_cooldown_ok else " but out-cooldown active")
        elif r < down:
            keep = units_for_decode_pods(float(pods_exact * (1 + exact(in_headroom))), decode_per_unit)
            if keep >= supply_units:
                why = f"{head}; {rtxt} < {float(down):.2f} but {in_headroom:.0%} headroom keeps {keep} units"
            else:
                action = "in" if in_cooldown_ok else "none"
                expected = keep
                why = f"{head}; {rtxt} < {float(down):.2f}" + (
                    f" → {keep} units with {in_headroom:.0%} headroom" if in_headroom else ""
                ) + ("" if in_cooldown_ok else " but in-cooldown active")
        else:
            why = f"{head}; {float(down):.2f} <= {rtxt} <= {float(up):.2f}"
    return ProportionalResult(
        action=action,
        target_units=expected if action != "none" else supply_units,
        expected_units=expected,
        decode_pods_needed=pods,
        ratio=ratio,
        reason=why,
    )
