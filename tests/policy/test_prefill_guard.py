"""The prefill guard: moves p within the curated bounds or alerts; pods always at the unit's ratio."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hetero_opt.policy.config import (
    PrefillGuardConfig,
    ProportionalConfig,
    ServicePolicy,
    StabilityConfig,
    load_policy_config,
)
from hetero_opt.policy.engine import ServiceMetrics, ServicePolicyState, decide
from hetero_opt.policy.prefill_guard import GuardResult, prefill_guard

ROOT = Path(__file__).resolve().parents[2]


def guard(
    tps: float | None, units: int = 5, unit: tuple[int, int] = (3, 1), lo: float | None = 2, hi: float | None = 4
) -> GuardResult:
    return prefill_guard(
        prefill_tps=tps,
        prefill_tps_per_pod=3400,
        units=units,
        unit=unit,
        min_prefill_per_decode=lo,
        max_prefill_per_decode=hi,
    )


@pytest.mark.parametrize(
    ("tps", "unit", "alert"),
    [
        (40_800, (3, 1), False),  # 12 pods ≤ 5×3 = 15; ceil(12 / (5 × 0.8)) = 3 = p → stay
        (54_400, (4, 1), False),  # 16 pods > 15 → ceil(16/5) = 4 ≤ bound 4 → 4P:1D
        (74_800, (4, 1), True),  # 22 pods → ceil(22/5) = 5 > bound 4 → 4P:1D and an alert
        (23_800, (2, 1), False),  # 7 pods → max(2, ceil(7/4)) = 2 → 2P:1D
        (3_400, (2, 1), False),  # 1 pod: never below the lower bound 2
    ],
)
def test_guard_moves_within_bounds_or_alerts(tps: float, unit: tuple[int, int], alert: bool) -> None:
    g = guard(tps)
    assert (g.unit, bool(g.alert)) == (unit, alert)


def test_guard_without_bounds_or_metric() -> None:
    # no curated bounds: p may not move, shortage is an alert
    g = guard(54_400, lo=None, hi=None)
    assert g.unit == (3, 1)
    assert "prefill short even at the bound 3P:1D (15 pods); 4P:1D would be needed" in g.alert
    assert guard(None) == guard(None, lo=None, hi=None)
    assert (guard(None).unit, guard(None).alert, guard(None).prefill_pods_needed) == ((3, 1), "", None)


def test_bounds_scale_with_d() -> None:
    # unit 2P:4D (0.5), bounds 0.4–0.8 → p in [ceil(1.6), floor(3.2)] = [2, 3]; 13 pods on 4 units
    # → ceil(13/4) = 4 > 3 → 3P:4D and an alert
    g = guard(13 * 3400, units=4, unit=(2, 4), lo=0.4, hi=0.8)
    assert g.unit == (3, 4)
    assert g.alert


def _svc(**kw: object) -> ServicePolicy:
    return ServicePolicy.model_validate(
        {
            "service": "chat",
            "policy": "proportional",
            "max_units": 50,
            "proportional": ProportionalConfig(target_decode_tps_per_pod=1300),
            "prefill_guard": PrefillGuardConfig(
                prefill_tps_per_pod=3400, min_prefill_per_decode=2, max_prefill_per_decode=4
            ),
            "stability": StabilityConfig(cooldown_out_s=0, cooldown_in_s=0),
            **kw,
        }
    )


def test_decision_sizes_pods_with_the_guarded_unit() -> None:
    # 6,500 / 1,300 = 5 decode pods → 5 units; 16 prefill pods needed → 4P:1D → 20 P + 5 D
    m = ServiceMetrics(decode_tps=6500, prefill_tps=54_400)
    d, _ = decide(_svc(), ServicePolicyState(), 0.0, m, 5, 0, (3, 1))
    assert (d.target_units, d.unit, d.prefill_pods, d.decode_pods, d.alerts) == (5, (4, 1), 20, 5, ())
    assert "short → unit 4P:1D" in d.reason
    d, _ = decide(_svc(), ServicePolicyState(), 0.0, ServiceMetrics(decode_tps=6500, prefill_tps=1e6), 5, 0, (3, 1))
    assert d.unit == (4, 1)
    assert d.alerts
    assert d.alerts[0].startswith("prefill TPS 1e+06 / 3400 per pod")
    off = _svc(prefill_guard=PrefillGuardConfig(enabled=False))
    d, _ = decide(off, ServicePolicyState(), 0.0, m, 5, 0, (3, 1))
    assert (d.unit, d.prefill_pods) == ((3, 1), 15)


def test_profile_fills_rate_and_bounds() -> None:
    cfg = load_policy_config(ROOT / "instances" / "autoscale" / "policy.yaml").by_service()["chat"]
    g = cfg.prefill_guard
    assert (g.prefill_tps_per_pod, g.min_prefill_per_decode, g.max_prefill_per_decode) == (3400, 2, 4)


@settings(max_examples=150, deadline=None)
@given(
    tps=st.floats(0, 1e6, allow_nan=False),
    units=st.integers(0, 40),
    p=st.integers(1, 6),
    d=st.integers(1, 6),
    lo=st.floats(0.1, 2.0),
    span=st.floats(0.0, 3.0),
)
def test_guard_invariants(tps: float, units: int, p: int, d: int, lo: float, span: float) -> None:
    g = prefill_guard(
        prefill_tps=tps,
        prefill_tps_per_pod=1000,
        units=units,
        unit=(p, d),
        min_prefill_per_decode=lo,
        max_prefill_per_decode=lo + span,
    )
    gp, gd = g.unit
    assert gd == d
    assert gp >= 1
    if units and not g.alert:
        assert units * gp >= tps / 1000 - 1e-9  # enough prefill
    if g.alert:
        assert gp == max(p, math.floor((lo + span) * d + 1e-12)) or gp >= p


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 60_000, allow_nan=False), st.floats(0, 300_000, allow_nan=False)), max_size=8),
    st.sampled_from(["proportional", "hybrid", "feedback", "static"]),
)
def test_targets_are_non_negative_integers_at_the_units_ratio(loads: list[tuple[float, float]], policy: str) -> None:
    cfg = _svc(policy=policy, static_units=4, feedback={"target_tbt_ms": 50, "target_ttft_ms": 1000})
    state = ServicePolicyState()
    supply = 3
    for i, (dec, pre) in enumerate(loads):
        d, state = decide(cfg, state, 600.0 * i, ServiceMetrics(decode_tps=dec, prefill_tps=pre), supply, 0, (3, 1))
        assert isinstance(d.target_units, int)
        assert d.target_units >= 0
        assert d.unit is not None
        assert (d.prefill_pods, d.decode_pods) == (d.target_units * d.unit[0], d.target_units * d.unit[1])
        assert 2 <= d.unit[0] <= 4 or d.unit[0] == 3
        supply = d.target_units


def test_scale_units_holds_enough_units_for_prefill_at_the_bound() -> None:
    # bounds 2..4 P per D (profile): p_max = 4; 54,400 / (4 x 3,400 x 0.8) = 5 units; decode alone wants 2
    m = ServiceMetrics(decode_tps=2600, prefill_tps=54_400)
    guard = PrefillGuardConfig(prefill_tps_per_pod=3400, min_prefill_per_decode=2, max_prefill_per_decode=4,
                               scale_units=True)
    d, _ = decide(_svc(prefill_guard=guard), ServicePolicyState(), 0.0, m, 2, 0, (3, 1))
    assert (d.target_units, d.unit, d.alerts) == (5, (4, 1), ())
    assert "prefill needs 5 units" in d.reason
    # off (default): decode TPS alone sizes the units and the guard can only alert
    d, _ = decide(_svc(prefill_guard=guard.replace(scale_units=False)), ServicePolicyState(), 0.0, m, 2, 0, (3, 1))
    assert d.target_units == 2
    assert d.alerts


@pytest.mark.parametrize(
    ("decode_tps", "units_of_prefill", "target"),
    [
        (6500, 5.3, 5),  # decode holds 5; prefill needs 5.3 ≤ 5 × 1.1: inside the band, no scale-out
        (6500, 5.6, 6),  # 5.6 > 5.5: prefill alone scales out, to ceil(5.6) = 6
        (2600, 4.2, 5),  # decode wants 2 units; prefill needs 4.2 → 5: the scale-in stops at 5
        (2600, 3.5, 4),  # prefill needs 3.5 → the scale-in goes to 4, not 2
    ],
)
def test_prefill_floor_has_algorithm_2s_band(decode_tps: float, units_of_prefill: float, target: int) -> None:
    # one unit of prefill at the bound: 4 pods × 3,400 tok/s × 0.8 = 10,880 tok/s
    guard = PrefillGuardConfig(prefill_tps_per_pod=3400, min_prefill_per_decode=2, max_prefill_per_decode=4)
    m = ServiceMetrics(decode_tps=decode_tps, prefill_tps=units_of_prefill * 10_880)
    cfg = _svc(prefill_guard=guard, stability=StabilityConfig(cooldown_out_s=0, cooldown_in_s=0, scale_in_window_s=0))
    d, _ = decide(cfg, ServicePolicyState(), 0.0, m, 5, 0, (3, 1))
    assert d.target_units == target


def saturated_policy(threshold: float | None) -> ServicePolicy:
    return ServicePolicy(
        service="s",
        policy="proportional",
        proportional=ProportionalConfig(target_decode_tps_per_pod=1000.0),
        prefill_guard=PrefillGuardConfig(prefill_tps_per_pod=10_000.0, min_prefill_per_decode=1,
                                         max_prefill_per_decode=6, saturated_util_percent=threshold),
    )


@pytest.mark.parametrize(
    ("threshold", "util", "unit"),
    [
        # served 20,000 / (10,000 × 0.8) = 2.5 pods ≤ 3: the pool reads as fine ...
        (None, 100.0, (3, 1)),  # ... with the rule off
        (95.0, 90.0, (3, 1)),  # ... below the threshold
        # saturated: read as 3 pods × 10,000 = 30,000 → 3.75 pods → 4P:1D (the figure overestimated the pods)
        (95.0, 100.0, (4, 1)),
    ],
)
def test_a_saturated_prefill_pool_is_read_at_its_pods_not_its_served_tps(
    threshold: float | None, util: float, unit: tuple[int, int]
) -> None:
    m = ServiceMetrics(decode_tps=900.0, prefill_tps=20_000.0, prefill_gpu_util=util)
    d, _ = decide(saturated_policy(threshold), ServicePolicyState(), 300.0, m, 1, 0, (3, 1))
    assert d.unit == unit
    assert ("saturated" in d.reason) == (unit == (4, 1))


def test_saturation_never_lowers_the_prefill_reading() -> None:
    m = ServiceMetrics(decode_tps=900.0, prefill_tps=40_000.0, prefill_gpu_util=100.0)  # above 3 × 10,000
    d, _ = decide(saturated_policy(95.0), ServicePolicyState(), 300.0, m, 1, 0, (3, 1))
    assert d.unit == (5, 1)  # 40,000 / 8,000 = 5 pods, as without the rule
    assert "saturated" not in d.reason
