"""Algorithms 2 and 3 at their boundaries, the periodic windows, hybrid and stability stages."""

from __future__ import annotations

import datetime as dt

import pytest

from hetero_opt.policy.feedback import LatencySignal, LatencyTiers, feedback_decision
from hetero_opt.policy.hybrid import HybridMemory, combine
from hetero_opt.policy.periodic import PeriodicWindow, periodic_target
from hetero_opt.policy.proportional import proportional_decision
from hetero_opt.policy.stability import (
    UnitRecommendation,
    cooldown_passed,
    cooldown_reference,
    dampen,
    stabilize_scale_in,
)


def prop(tps: float, supply: int, d: int = 1, out_ok: bool = True, in_ok: bool = True, target: float = 100.0):
    return proportional_decision(
        decode_tps=tps,
        target_tps_per_pod=target,
        supply_units=supply,
        decode_per_unit=d,
        theta_out=0.1,
        theta_in=0.1,
        out_cooldown_ok=out_ok,
        in_cooldown_ok=in_ok,
    )


def test_proportional_reason_example() -> None:
    # 5200 / 400 = 13 pods; R = 13 / (2 units × d=5) = 1.30 > 1.10; target ceil(13/5) = 3 units
    r = proportional_decision(
        decode_tps=5200,
        target_tps_per_pod=400,
        supply_units=2,
        decode_per_unit=5,
        theta_out=0.1,
        theta_in=0.1,
        out_cooldown_ok=True,
        in_cooldown_ok=True,
    )
    assert (r.action, r.target_units) == ("out", 3)
    assert "5200 / 400 per pod = 13 pods → 3 units" in r.reason
    assert "R=1.30 > 1.10" in r.reason


@pytest.mark.parametrize(
    ("tps", "supply", "action", "target"),
    [
        (1100, 10, "none", 10),  # R = 11/10 == 1 + θ_out exactly → no change
        (1101, 10, "out", 12),  # R = 11.01/10 > 1.1 → ceil 11.01 = 12 units
        (900, 10, "none", 10),  # R = 0.9 == 1 − θ_in exactly → no change
        (899, 10, "in", 9),  # R = 8.99/10 < 0.9 (continuous R: the paper's) → ceil 8.99 = 9 units
        (800, 10, "in", 8),  # 8 units, R = 0.8 < 0.9 → in
        (420, 4, "none", 4),  # R = 4.2/4 = 1.05 inside the band (R on ceil units was 5/4 = 1.25: out)
        (450, 4, "out", 5),  # R = 4.5/4 = 1.125 > 1.1 → 5 units
    ],
)
def test_proportional_thresholds(tps: float, supply: int, action: str, target: int) -> None:
    r = prop(tps, supply)
    assert (r.action, r.target_units) == (action, target)


def test_proportional_reason_shows_r_apart_from_the_threshold_it_crossed() -> None:
    # 1102 TPS / 100 per pod over 10 pods: R = 1.102, which two decimals would print as 1.10 > 1.10
    r = prop(1102, 10)
    assert "R=1.102 > 1.10" in r.reason
    assert "R=1.30 > 1.10" in prop(1300, 10).reason  # two decimals where they tell R and the threshold apart


def test_proportional_rounds_to_whole_units() -> None:
    # 13 pods, d = 4 → ceil(3.25) = 4 units
    assert prop(1300, 2, d=4).target_units == 4


def test_proportional_ratio_is_continuous_in_decode_pods() -> None:
    # 9 pods on 2 units of d=4 (8 decode pods): R = 9/8 = 1.125 > 1.1 → ceil(9/4) = 3 units
    r = prop(900, 2, d=4)
    assert (r.action, r.target_units, r.ratio) == ("out", 3, 1.125)
    # 8.5 pods: R = 8.5/8 = 1.0625, inside the band although ceil(8.5/4) = 3 units > 2
    assert prop(850, 2, d=4).action == "none"


def test_proportional_cooldowns_block() -> None:
    assert prop(2000, 10, out_ok=False).action == "none"
    assert "out-cooldown active" in prop(2000, 10, out_ok=False).reason
    assert prop(100, 10, in_ok=False).action == "none"


def test_proportional_zero_supply() -> None:
    assert (prop(250, 0).action, prop(250, 0).target_units) == ("out", 3)
    assert prop(0, 0).action == "none"


def test_cooldown_just_expired_and_just_not() -> None:
    assert cooldown_passed(100.0, 160.0, 60.0)  # exactly C → passed (cooling >= C)
    assert not cooldown_passed(100.0, 159.999, 60.0)
    assert cooldown_passed(None, 0.0, 60.0)


def test_cooldown_reference_modes() -> None:
    assert cooldown_reference("in", 10.0, 50.0, "last_action") == 50.0
    assert cooldown_reference("in", 10.0, None, "last_action") == 10.0
    assert cooldown_reference("in", 10.0, None, "same_direction") is None


TIERS = LatencyTiers(alpha=1.5, beta=1.2, gamma=0.5)


def fb(value: float, supply: int, out_ok: bool = True, in_ok: bool = True, min_units: int = 1):
    return feedback_decision(
        signals=[LatencySignal(name="tbt", value_ms=value, target_ms=100)],
        supply_units=supply,
        tiers=TIERS,
        min_units=min_units,
        out_cooldown_ok=out_ok,
        in_cooldown_ok=in_ok,
    )


@pytest.mark.parametrize(
    ("latency", "supply", "action", "target"),
    [
        (150, 10, "out", 12),  # exactly α × target → +20 %: 10 × 1.2 = 12
        (149.99, 10, "out", 11),  # just below α, ≥ β → +10 %: ceil(11.0) = 11 (exact)
        (120, 10, "out", 11),  # exactly β → +10 %
        (119.99, 10, "none", 10),  # between γ and β
        (50, 20, "in", 19),  # exactly γ → −5 %: floor(19.0) = 19
        (50.01, 20, "none", 20),  # just above γ
        (150, 2, "out", 3),  # ceil(2.4) = 3
        (120, 3, "out", 4),  # ceil(3.3) = 4; at least +1
        (120, 1, "out", 2),  # 1.1 → ceil 2
        (50, 10, "in", 9),  # floor(9.5) = 9
        (50, 5, "in", 4),  # floor(4.75) = 4, at least −1
    ],
)
def test_feedback_tiers(latency: float, supply: int, action: str, target: int) -> None:
    r = fb(latency, supply)
    assert (r.action, r.target_units) == (action, target)


def test_feedback_never_below_min() -> None:
    assert fb(10, 3, min_units=3).action == "none"
    assert fb(10, 4, min_units=4).target_units == 4
    # floor(40 × 0.95) = 38 but min 39 → 39
    assert fb(10, 40, min_units=39).target_units == 39


def test_feedback_pseudocode_cooldown_fix() -> None:
    # Paper pseudo-code: "if cooling >= C_up → ScaleOut; elif cooling >= C_in → ScaleIn".
    # With C_out = 60, C_in = 300 and 100 s since the last action, a scale-in tier would pass
    # on the out-cooldown. Our fix checks C_in on the scale-in path: no change.
    last, now = 0.0, 100.0
    out_ok = cooldown_passed(last, now, 60.0)
    in_ok = cooldown_passed(last, now, 300.0)
    assert out_ok
    assert not in_ok
    r = fb(10, 10, out_ok=out_ok, in_ok=in_ok)
    assert (r.action, r.target_units) == ("none", 10)
    assert "in-cooldown active" in r.reason
    # and the scale-out path checks C_out only: C_in not passed does not block it
    assert fb(200, 10, out_ok=out_ok, in_ok=in_ok).action == "out"
    # once C_in has passed the scale-in happens
    assert fb(10, 10, out_ok=True, in_ok=cooldown_passed(last, 300.0, 300.0)).action == "in"


def test_feedback_multiple_signals() -> None:
    sigs = [
        LatencySignal(name="tbt", value_ms=10, target_ms=100),
        LatencySignal(name="ttft", value_ms=160, target_ms=100),
    ]
    r = feedback_decision(
        signals=sigs, supply_units=10, tiers=TIERS, min_units=1, out_cooldown_ok=True, in_cooldown_ok=True
    )
    assert (r.action, r.target_units, r.tier) == ("out", 12, "alpha")
    # scale-in needs every signal relaxed
    sigs2 = [sigs[0], LatencySignal(name="ttft", value_ms=80, target_ms=100)]
    r2 = feedback_decision(
        signals=sigs2, supply_units=10, tiers=TIERS, min_units=1, out_cooldown_ok=True, in_cooldown_ok=True
    )
    assert r2.action == "none"


def test_hybrid_latency_only_adds() -> None:
    none = HybridMemory()
    p_in = prop(800, 10)  # proportional says in to 8
    relaxed = fb(10, 10)  # latency relaxed: ignored by hybrid (scale-in is proportional's)
    assert combine(p_in, relaxed, 10, none, 0.0, 1800.0, True).target_units == 8
    hot = fb(130, 10)  # latency +10 % → 11 overrides the scale-in, 11 − 8 = 3 units remembered
    h = combine(p_in, hot, 10, none, 0.0, 1800.0, False)
    assert (h.action, h.target_units, h.driver, h.memory.latency_units) == ("out", 11, "latency", 3)
    p_out = prop(2000, 10)  # 20 units
    assert combine(p_out, hot, 10, none, 0.0, 1800.0, False).target_units == 20


def epoch(y: int, mo: int, d: int, h: int, mi: int) -> float:
    return dt.datetime(y, mo, d, h, mi, tzinfo=dt.UTC).timestamp()


def test_periodic_windows() -> None:
    # 2025-01-03 is a Friday (weekday 4)
    night = PeriodicWindow(start="22:00", end="06:00", weekdays=(4,), units=2, name="fri-night")
    day = PeriodicWindow(start="09:00", end="18:00", units=10)
    wins = (night, day)
    assert periodic_target(epoch(2025, 1, 3, 23, 0), wins, 5)[0] == 2  # Fri 23:00
    assert periodic_target(epoch(2025, 1, 4, 5, 59), wins, 5)[0] == 2  # Sat 05:59, wraps
    assert periodic_target(epoch(2025, 1, 4, 6, 0), wins, 5)[0] == 5  # end exclusive
    assert periodic_target(epoch(2025, 1, 3, 5, 0), wins, 5)[0] == 5  # Fri 05:00: Thu not set
    assert periodic_target(epoch(2025, 1, 3, 9, 0), wins, 5)[0] == 10
    assert periodic_target(epoch(2025, 1, 3, 18, 0), wins, None)[0] is None
    # UTC+8: 01:00 UTC is 09:00 local
    assert periodic_target(epoch(2025, 1, 3, 1, 0), (day,), None, 8.0)[0] == 10


def test_periodic_rejects_bad_time() -> None:
    with pytest.raises(ValueError, match="start"):
        PeriodicWindow(start="24:00", end="06:00", units=1)
    with pytest.raises(ValueError, match=r"weekdays=\[7\]"):
        PeriodicWindow(start="01:00", end="06:00", weekdays=(7,), units=1)


def test_dampen_units_and_percent() -> None:
    assert dampen(10, 30, max_out_units=5) == 15
    assert dampen(10, 30, max_out_percent=20) == 12  # ceil(10 × 0.2) = 2
    assert dampen(10, 30, max_out_units=5, max_out_percent=20) == 12  # tighter wins
    assert dampen(10, 1, max_in_percent=10) == 9
    assert dampen(2, 0, max_in_percent=10) == 1  # at least one unit
    assert dampen(10, 10, max_out_units=1) == 10


def test_scale_in_window_takes_max() -> None:
    h: tuple[UnitRecommendation, ...] = ()
    t, h = stabilize_scale_in(h, 10, 10, 0.0, 300)
    t, h = stabilize_scale_in(h, 10, 8, 100.0, 300)
    assert t == 10  # the 10 recommended at t=0 is in the window
    t, h = stabilize_scale_in(h, 10, 7, 301.0, 300)
    assert t == 8  # t=0 left the window; max(8, 7)
    # an old high recommendation never causes a scale-out
    t, _ = stabilize_scale_in((UnitRecommendation(units=50, at=300.0),), 10, 9, 310.0, 300)
    assert t == 10


def test_proportional_scale_in_keeps_headroom() -> None:
    # 5 pods on 10 units (d=1): R = 0.5 < 0.9; 10 % headroom → ceil(5.5) = 6 units, not 5
    r = proportional_decision(
        decode_tps=500, target_tps_per_pod=100, supply_units=10, decode_per_unit=1,
        theta_out=0.1, theta_in=0.1, out_cooldown_ok=True, in_cooldown_ok=True, in_headroom=0.1,
    )
    assert (r.action, r.target_units) == ("in", 6)
    # 8.5 pods on 10 units: R = 0.85 < 0.9 but ceil(8.5 × 1.2) = 11 ≥ 10 with 20 % headroom → no change
    r = proportional_decision(
        decode_tps=850, target_tps_per_pod=100, supply_units=10, decode_per_unit=1,
        theta_out=0.1, theta_in=0.1, out_cooldown_ok=True, in_cooldown_ok=True, in_headroom=0.2,
    )
    assert (r.action, r.target_units) == ("none", 10)
    assert "headroom keeps 11 units" in r.reason
