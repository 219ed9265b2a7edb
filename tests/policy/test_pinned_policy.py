"""Policy behaviour pinned where mutation testing found tests that could not fail (issue 11)."""

from __future__ import annotations

import pytest

from hetero_opt.policy.feedback import (
    FeedbackResult,
    LatencySignal,
    LatencyTiers,
    classify,
    feedback_decision,
    scaled_units,
)
from hetero_opt.policy.proportional import proportional_decision
from hetero_opt.policy.stability import (
    UnitRecommendation,
    cooldown_passed,
    cooldown_reference,
    dampen,
    stabilize_scale_in,
)


def test_scale_in_window_never_holds_a_scale_out() -> None:
    # window 300 s with an old high recommendation (20 at t=0): a scale-out proposal of 12 over a
    # supply of 10 passes through as 12 (not min(supply, highest) = 10, not the stored 20)
    history = (UnitRecommendation(units=20, at=0.0),)
    target, kept = stabilize_scale_in(history, supply=10, proposed=12, now=100.0, window_s=300)
    assert target == 12
    assert [r.units for r in kept] == [20, 12]
    # a proposal equal to supply is no scale-in either: it passes through
    assert stabilize_scale_in(history, supply=10, proposed=10, now=100.0, window_s=300)[0] == 10


def _decide(tps: float, supply: int, d: int = 1, out_ok: bool = True, in_ok: bool = True) -> tuple[str, int]:
    r = proportional_decision(
        decode_tps=tps,
        target_tps_per_pod=2000,
        supply_units=supply,
        decode_per_unit=d,
        theta_out=0.1,
        theta_in=0.1,
        out_cooldown_ok=out_ok,
        in_cooldown_ok=in_ok,
    )
    return r.action, r.target_units


@pytest.mark.parametrize(
    ("tps", "supply", "d", "expected"),
    [
        (1.0, 0, 1, ("out", 1)),  # from zero: 1/2000 of a pod still needs one unit
        (0.0, 0, 1, ("none", 0)),  # no demand at zero supply: stay at zero
        (1000.0, 2, 1, ("in", 1)),  # half a decode pod of demand: R = 1/2 < 0.9 → 1 unit, never 0
        (1000.0, 1, 1, ("none", 1)),  # R = 1 inside the band
        (2001.0, 1, 2, ("none", 1)),  # 1.0005 pods, d=2: ceil(1.0005 / 2) = 1 unit, R = 1
        (4001.0, 1, 2, ("none", 1)),  # 2.0005 pods, d=2: R = 1.0003 (continuous, paper) inside the band
        (4801.0, 1, 2, ("out", 2)),  # 2.4 pods, d=2: R = 1.2 > 1.1 → ceil(1.2) = 2 units
        (12000.0, 2, 1, ("out", 6)),  # 6 pods: a step of 4 units at once
    ],
)
def test_proportional_from_zero_below_one_pod_and_steps_above_one_unit(
    tps: float, supply: int, d: int, expected: tuple[str, int]
) -> None:
    assert _decide(tps, supply, d) == expected


def test_proportional_respects_each_cooldown_alone() -> None:
    assert _decide(12000.0, 2, out_ok=False) == ("none", 2)
    assert _decide(12000.0, 2, in_ok=False) == ("out", 6)
    assert _decide(1000.0, 2, in_ok=False) == ("none", 2)
    assert _decide(1000.0, 2, out_ok=False) == ("in", 1)


def test_same_direction_cooldown_counts_from_that_direction_only() -> None:
    # scaled out at 100, in at 500; now 700 with a 300 s cooldown
    assert cooldown_reference("out", 100.0, 500.0, "same_direction") == 100.0
    assert cooldown_reference("in", 100.0, 500.0, "same_direction") == 500.0
    assert cooldown_reference("out", 100.0, 500.0, "last_action") == 500.0
    assert cooldown_reference("out", None, None, "last_action") is None
    assert cooldown_passed(cooldown_reference("out", 100.0, 500.0, "same_direction"), 700.0, 300)
    assert not cooldown_passed(cooldown_reference("out", 100.0, 500.0, "last_action"), 700.0, 300)
    assert cooldown_passed(500.0, 800.0, 300)  # inclusive: exactly the cooldown later


@pytest.mark.parametrize(
    ("supply", "tier", "expected"),
    [
        (20, "alpha", 24),  # +20 %: ceil(24.0) = 24, a step of 4 units
        (21, "alpha", 26),  # ceil(25.2) = 26
        (20, "beta", 22),  # +10 %: 22
        (3, "beta", 4),  # ceil(3.3) = 4; at least +1 anyway
        (1, "alpha", 2),  # ceil(1.2) = 2
        (0, "alpha", 1),  # from zero: at least one unit
        (40, "gamma", 38),  # -5 %: floor(38.0) = 38, a step of 2
        (10, "gamma", 9),  # floor(9.5) = 9
        (3, "gamma", 2),  # floor(2.85) = 2: at least -1
        (2, "gamma", 2),  # at min (2): hold
        (20, "none", 20),
    ],
)
def test_feedback_steps_above_one_unit_and_rounding(supply: int, tier: str, expected: int) -> None:
    assert scaled_units(supply, tier, LatencyTiers(), min_units=2) == expected


def test_dampen_limits_scale_in_by_units_and_by_percent() -> None:
    assert dampen(10, 2, max_in_units=3) == 7  # 8 units asked away, 3 allowed
    assert dampen(101, 0, max_in_percent=1) == 99  # ceil(101 x 1 / 100) = 2 units
    assert dampen(10, 2, max_in_units=3, max_in_percent=10) == 9  # the tighter wins: ceil(1.0) = 1
    assert dampen(10, 10, max_in_units=0) == 10


def test_scale_in_window_edges() -> None:
    recent = (UnitRecommendation(units=20, at=99.0),)
    assert stabilize_scale_in(recent, 10, 8, 100.0, 0) == (8, ())  # no window: no history kept
    assert stabilize_scale_in(recent, 10, 8, 100.0, 1)[0] == 10  # a 1 s window still holds
    at_edge = (UnitRecommendation(units=20, at=0.0),)
    assert stabilize_scale_in(at_edge, 10, 8, 300.0, 300)[0] == 10  # exactly window-old: still inside
    assert stabilize_scale_in(at_edge, 10, 8, 300.5, 300)[0] == 8


def test_proportional_reasons_say_which_cooldown_held() -> None:
    def reason(tps: float, out_ok: bool, in_ok: bool) -> tuple[str, float | None]:
        r = proportional_decision(
            decode_tps=tps,
            target_tps_per_pod=2000,
            supply_units=2,
            decode_per_unit=1,
            theta_out=0.1,
            theta_in=0.1,
            out_cooldown_ok=out_ok,
            in_cooldown_ok=in_ok,
        )
        return r.reason, r.ratio

    head_out = "decode TPS 12000 / 2000 per pod = 6 pods → 6 units (d=1); R=3.00 > 1.10"
    # the paper's continuous R: 0.5 decode pods wanted / (2 units x 1 decode pod) = 0.25
    head_in = "decode TPS 1000 / 2000 per pod = 0.5 pods → 1 units (d=1); R=0.25 < 0.90"
    assert reason(12000, True, True) == (head_out, 3.0)
    assert reason(12000, False, True) == (head_out + " but out-cooldown active", 3.0)
    assert reason(1000, True, True) == (head_in, 0.25)
    assert reason(1000, True, False) == (head_in + " but in-cooldown active", 0.25)


def _fb(*signals: tuple[str, float], supply: int = 20, out_ok: bool = True, in_ok: bool = True) -> FeedbackResult:
    return feedback_decision(
        signals=[LatencySignal(name=n, value_ms=v, target_ms=50) for n, v in signals],
        supply_units=supply,
        tiers=LatencyTiers(),
        min_units=2,
        out_cooldown_ok=out_ok,
        in_cooldown_ok=in_ok,
    )


def test_feedback_results_in_full() -> None:
    # target 50 ms; tiers: alpha >= 1.2 x (60 ms), beta >= 1.0 x (50 ms), gamma <= 0.6 x (30 ms)
    assert _fb() == FeedbackResult(action="none", target_units=20, tier="none", reason="no latency signal")
    assert _fb(("tbt", 60)) == FeedbackResult(
        action="out", target_units=24, tier="alpha", reason="tbt 60 >= 1.2×50 ms → +20%: 20 → 24 units"
    )
    assert _fb(("tbt", 50)) == FeedbackResult(
        action="out", target_units=22, tier="beta", reason="tbt 50 >= 1×50 ms → +10%: 20 → 22 units"
    )
    # the most severe signal wins whatever its position; an untiered signal never outranks beta
    assert _fb(("ttft", 55), ("tbt", 70)).tier == "alpha"
    assert _fb(("ttft", 40), ("tbt", 55)).tier == "beta"
    assert _fb(("tbt", 30)) == FeedbackResult(
        action="in",
        target_units=19,
        tier="gamma",
        reason="tbt 30 ms vs target 50 (gamma) → −5%: 20 → 19 units",
    )
    assert _fb(("tbt", 30), in_ok=False).tier == "gamma"
    assert _fb(("tbt", 30), supply=2) == FeedbackResult(
        action="none", target_units=2, tier="gamma", reason="tbt 30 ms vs target 50 (gamma); already at min 2"
    )
    assert _fb(("tbt", 40), ("ttft", 10)) == FeedbackResult(
        action="none",
        target_units=20,
        tier="none",
        reason="tbt 40 ms vs target 50 (none), ttft 10 ms vs target 50 (gamma); no tier",
    )
    assert classify(LatencySignal(name="tbt", value_ms=40, target_ms=50), LatencyTiers()) == "none"
