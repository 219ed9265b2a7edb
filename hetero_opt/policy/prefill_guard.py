"""The prefill guard: Algorithm 2 sizes units on decode TPS only, so prefill capacity follows the
P:D ratio blindly. The guard compares the cache-missed prefill load (tokens/s) with what the unit's
prefill pods sustain and, within the profile's curated ratio bounds, moves the unit's prefill pods
``p`` (``d`` stays); beyond the bounds it raises an alert. Pods always stay exactly at the returned
unit, so the ratio is never silently violated.

Rule for ``U`` units of ``p:d`` and ``need = prefill TPS / (prefill TPS per pod × target utilisation)`` pods:
- short (``need > U·p``): ``p' = ceil(need / U)``, capped at the upper bound (then an alert);
- surplus: ``p' = max(lower bound, ceil(need / (U·(1 − margin))))`` when that is below ``p``, so a
  move down leaves ``margin`` headroom and does not bounce back at the next small rise.
"""

from __future__ import annotations

import math

from pydantic import Field

from hetero_opt.policy._base import Frozen
from hetero_opt.policy.proportional import exact


class GuardResult(Frozen):
    """What the guard decided."""

    unit: tuple[int, int] = Field(description="(prefill, decode) pods per unit to use.")
    prefill_pods_needed: float | None = Field(description="Prefill TPS / TPS per pod; None without the metric.")
    alert: str = Field(default="", description="Why the ratio cannot cover prefill; empty when it can.")
    reason: str = Field(default="", description="What the guard did and its numbers; empty when idle.")


def prefill_bounds(d: int, lo: float | None, hi: float | None, p: int) -> tuple[int, int]:
    """Prefill pods per unit allowed for ``d`` decode pods: ``[ceil(lo·d), floor(hi·d)]``, at least 1.

    Without bounds the unit's own ``p`` is the only value (the guard may only alert).
    """
    p_lo = max(1, math.ceil(exact(lo) * d)) if lo is not None else p
    p_hi = max(p_lo, math.floor(exact(hi) * d)) if hi is not None else p
    return p_lo, p_hi


def prefill_guard(
    *,
    prefill_tps: float | None,
    prefill_tps_per_pod: float | None,
    units: int,
    unit: tuple[int, int],
    min_prefill_per_decode: float | None,
    max_prefill_per_decode: float | None,
    margin: float = 0.2,
    target_utilisation: float = 1.0,
) -> GuardResult:
    """Check ``units`` of ``unit`` against the prefill load; see the module docstring.

    A pod is sized at ``target_utilisation × prefill_tps_per_pod`` (served prefill TPS cannot exceed
    capacity: below 1 a saturated pool reads as short).
    """
    p, d = unit
    if prefill_tps is None or prefill_tps_per_pod is None or units == 0:
        return GuardResult(unit=unit, prefill_pods_needed=None)
    need_exact = exact(prefill_tps) / (exact(prefill_tps_per_pod) * exact(target_utilisation))
    need = float(need_exact)
    p_lo, p_hi = prefill_bounds(d, min_prefill_per_decode, max_prefill_per_decode, p)
    head = f"prefill TPS {prefill_tps:g} / {prefill_tps_per_pod:g} per pod = {need:.3g} pods vs {units}×{p}"
    if need_exact > units * p:
        want = math.ceil(need_exact / units)
        if want <= p_hi:
            return GuardResult(
                unit=(want, d), prefill_pods_needed=need, reason=f"{head}: short → unit {want}P:{d}D"
            )
        alert = (
            f"{head}: prefill short even at the bound {p_hi}P:{d}D ({units * p_hi} pods); "
            f"{want}P:{d}D would be needed (check the workload mix, re-run the pressure test)"
        )
        return GuardResult(unit=(max(p, p_hi), d), prefill_pods_needed=need, alert=alert, reason=alert)
    down = max(p_lo, math.ceil(need_exact / (units * (1 - exact(margin)))))
    if down < p:
        return GuardResult(
            unit=(down, d),
            prefill_pods_needed=need,
            reason=f"{head}: surplus → unit {down}P:{d}D ({margin:.0%} margin kept)",
        )
    return GuardResult(unit=unit, prefill_pods_needed=need)
