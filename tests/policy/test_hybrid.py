"""Hybrid memory: latency-added units are held until latency stayed relaxed for the hold time."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hetero_opt.policy.config import FeedbackConfig, ProportionalConfig, ServicePolicy, StabilityConfig
from hetero_opt.policy.engine import ServiceMetrics, ServicePolicyState, decide

UNIT = (1, 2)


def hybrid(window_s: float = 0.0, hold_s: float = 1800.0) -> ServicePolicy:
    return ServicePolicy(
        service="chat",
        policy="hybrid",
        min_units=1,
        max_units=40,
        proportional=ProportionalConfig(target_decode_tps_per_pod=100, theta_in=0.2, in_headroom=0.1),
        feedback=FeedbackConfig(target_tbt_ms=50, target_ttft_ms=1000),
        hybrid={"release_hold_s": hold_s},  # type: ignore[arg-type]
        stability=StabilityConfig(cooldown_out_s=60, cooldown_in_s=300, scale_in_window_s=window_s),
    )


def test_latency_units_are_held_then_released_after_the_hold() -> None:
    # t=0: 10 decode pods on 5 units (d=2) → R = 1.0, proportional keeps 5; TBT 75 ≥ 1.2 × 50 →
    # +20 % → ceil(6.0) = 6 units, 1 of them latency-added.
    # From t=600 the load is 9 pods. Proportional sizes only its share, 6 − 1 = 5 units: R = 0.9, no
    # change; without the memory it would see 6 units, R = 9/12 = 0.75 < 0.8 and remove the latency
    # unit again. TBT relaxes (≤ 0.6 × 50 = 30 ms) at t=1200; the unit is released at t=3000
    # (1800 s later) and proportional scales in: ceil(9 × 1.1 / 2) = 5 units.
    cfg = hybrid()
    state = ServicePolicyState()
    supply = 5
    seen = []
    steps = [(0, 1000, 75), (600, 900, 45), (1200, 900, 20), (2400, 900, 20), (3000, 900, 20), (3600, 900, 20)]
    for t, tps, tbt in steps:
        d, state = decide(cfg, state, float(t), ServiceMetrics(decode_tps=tps, tbt_ms=tbt), supply, 0, UNIT)
        seen.append((t, d.action, d.target_units, state.hybrid.latency_units))
        supply = d.target_units
    assert seen == [
        (0, "out", 6, 1),
        (600, "none", 6, 1),
        (1200, "none", 6, 1),
        (2400, "none", 6, 1),
        (3000, "in", 5, 0),
        (3600, "none", 5, 0),
    ]
    assert state.hybrid.relaxed_since == 1200.0
    # the same t=600 cycle as plain proportional control: it would undo the latency unit
    plain = cfg.replace(policy="proportional")
    d, _ = decide(plain, ServicePolicyState(), 600.0, ServiceMetrics(decode_tps=900), 6, 0, UNIT)
    assert (d.action, d.target_units) == ("in", 5)


def test_relaxation_clock_restarts_when_latency_rises() -> None:
    cfg = hybrid()
    state = ServicePolicyState()
    d, state = decide(cfg, state, 0.0, ServiceMetrics(decode_tps=1000, tbt_ms=75), 5, 0, UNIT)
    for t, tbt in [(600.0, 20.0), (1200.0, 40.0), (2400.0, 20.0)]:
        d, state = decide(cfg, state, t, ServiceMetrics(decode_tps=900, tbt_ms=tbt), 6, 0, UNIT)
    # relaxed at 600, not at 1200 (40 ms > 30 ms), relaxed again from 2400: held at 2400 + 1799
    assert state.hybrid.relaxed_since == 2400.0
    d, state = decide(cfg, state, 4199.0, ServiceMetrics(decode_tps=900, tbt_ms=20), 6, 0, UNIT)
    assert (d.action, state.hybrid.latency_units) == ("none", 1)
    d, state = decide(cfg, state, 4200.0, ServiceMetrics(decode_tps=900, tbt_ms=20), 6, 0, UNIT)
    assert (d.action, d.target_units, state.hybrid.latency_units) == ("in", 5, 0)


def test_blocked_latency_scale_out_remembers_nothing() -> None:
    # an action at t=0 starts the 60 s out-cooldown; a hot TBT at t=30 cannot add
    cfg = hybrid()
    state = ServicePolicyState(last_scale_out_at=0.0)
    d, state = decide(cfg, state, 30.0, ServiceMetrics(decode_tps=1000, tbt_ms=75), 5, 0, UNIT)
    assert (d.action, state.hybrid.latency_units) == ("none", 0)
    assert "out-cooldown active" in d.reason


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0, 5000, allow_nan=False), st.floats(0, 200, allow_nan=False)), min_size=1, max_size=12
    )
)
def test_layers_never_undo_each_other(steps: list[tuple[float, float]]) -> None:
    # latency-added units only shrink once latency stayed relaxed for the hold time, and the
    # target always keeps them on top of proportional's share; pods stay at the unit's ratio
    cfg = hybrid(hold_s=1200.0)
    state = ServicePolicyState()
    supply = 5
    for i, (tps, tbt) in enumerate(steps):
        now = 600.0 * i
        before = state.hybrid.latency_units
        d, state = decide(cfg, state, now, ServiceMetrics(decode_tps=tps, tbt_ms=tbt), supply, 0, UNIT)
        assert d.target_units >= state.hybrid.latency_units >= 0
        assert (d.prefill_pods, d.decode_pods) == (d.target_units * UNIT[0], d.target_units * UNIT[1])
        if state.hybrid.latency_units < before and d.target_units < cfg.max_units:
            since = state.hybrid.relaxed_since
            assert since is not None
            assert now - since >= 1200.0
        if tbt >= 50:
            assert d.action != "in" or state.hybrid.latency_units >= before
        supply = d.target_units
