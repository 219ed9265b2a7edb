"""The engine: pipeline of policy and stability stages, state round trips, invariants."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hetero_opt.errors import InputError
from hetero_opt.policy import (
    AutoscalerConfig,
    EngineState,
    PolicyEngine,
    ServiceMetrics,
    ServicePolicy,
    ServicePolicyState,
    decide,
    metrics_from_frame,
)
from hetero_opt.policy.config import (
    FeedbackConfig,
    HPAPolicyConfig,
    ProportionalConfig,
    StabilityConfig,
)

UNIT = (1, 2)


def svc(policy: str = "proportional", **kw: object) -> ServicePolicy:
    base: dict[str, object] = {
        "service": "chat",
        "policy": policy,
        "min_units": 1,
        "max_units": 20,
        "proportional": ProportionalConfig(target_decode_tps_per_pod=100),
        "feedback": FeedbackConfig(target_tbt_ms=50, target_ttft_ms=1000),
        "stability": StabilityConfig(cooldown_out_s=60, cooldown_in_s=300),
    }
    base.update(kw)
    return ServicePolicy.model_validate(base)


def test_proportional_decision_and_reason() -> None:
    # 1300 TPS / 100 = 13 decode pods; R = 13 / (5 units × d=2) = 1.30 > 1.10; ceil(13/2) = 7 units
    d, s = decide(svc(), ServicePolicyState(), 0.0, ServiceMetrics(decode_tps=1300), 5, 0, UNIT)
    assert (d.action, d.target_units, d.prefill_pods, d.decode_pods) == ("out", 7, 7, 14)
    assert "R=1.30 > 1.10" in d.reason
    assert s.last_scale_out_at == 0.0


def test_pending_units_count_as_supply() -> None:
    # 7 units needed, 5 serving + 2 starting = 7 supply → R = 1 → no second scale-out
    d, _ = decide(svc(), ServicePolicyState(), 0.0, ServiceMetrics(decode_tps=1300), 5, 2, UNIT)
    assert (d.action, d.target_units, d.supply_units) == ("none", 7, 7)
    no_pending = svc(stability=StabilityConfig(count_pending=False))
    d2, _ = decide(no_pending, ServicePolicyState(), 0.0, ServiceMetrics(decode_tps=1300), 5, 2, UNIT)
    assert d2.action == "out"


def test_without_pending_as_supply_no_action_keeps_the_starting_units() -> None:
    # 900 TPS / 100 = 9 pods → 5 units = the 5 serving: no action, and the 2 starting units stay wanted.
    no_pending = svc(stability=StabilityConfig(count_pending=False))
    d, _ = decide(no_pending, ServicePolicyState(), 0.0, ServiceMetrics(decode_tps=900), 5, 2, UNIT)
    assert (d.action, d.target_units, d.supply_units) == ("none", 7, 5)


def test_out_cooldown_just_expired_and_just_not() -> None:
    cfg = svc()
    st0 = ServicePolicyState(last_scale_out_at=1000.0)
    m = ServiceMetrics(decode_tps=1300)
    assert decide(cfg, st0, 1059.0, m, 5, 0, UNIT)[0].action == "none"
    assert decide(cfg, st0, 1060.0, m, 5, 0, UNIT)[0].action == "out"


def test_in_cooldown_counts_from_any_last_action() -> None:
    cfg = svc()
    # scaled OUT at t=1000; scale-in needs C_in = 300 s since that (paper's T_last)
    st0 = ServicePolicyState(last_scale_out_at=1000.0)
    m = ServiceMetrics(decode_tps=200)  # 2 pods, R = 2 / (5 × 2) = 0.2
    assert decide(cfg, st0, 1299.0, m, 5, 0, UNIT)[0].action == "none"
    d, _ = decide(cfg, st0, 1300.0, m, 5, 0, UNIT)
    # default 10 % in-headroom: ceil(2 × 1.1 / 2) = 2 units
    assert (d.action, d.target_units) == ("in", 2)


def test_clamp_min_max_and_dampening() -> None:
    cfg = svc(stability=StabilityConfig(max_step_out_units=3))
    d, _ = decide(cfg, ServicePolicyState(), 0.0, ServiceMetrics(decode_tps=10_000), 5, 0, UNIT)
    assert d.target_units == 8
    assert "dampened 50 → 8" in d.reason
    d, _ = decide(svc(), ServicePolicyState(), 0.0, ServiceMetrics(decode_tps=10_000), 5, 0, UNIT)
    assert d.target_units == 20
    assert "clamped" in d.reason
    d, _ = decide(svc(), ServicePolicyState(), 0.0, ServiceMetrics(decode_tps=0), 5, 0, UNIT)
    assert d.target_units == 1  # never below min


def test_hybrid_and_feedback_and_static_and_periodic() -> None:
    m = ServiceMetrics(decode_tps=1000, tbt_ms=75)  # proportional: 5 units = supply; TBT hot
    d, _ = decide(svc("hybrid"), ServicePolicyState(), 0.0, m, 5, 0, UNIT)
    # default tiers α = 1.2: 75 >= 60 → +20 % → 6
    assert (d.action, d.target_units) == ("out", 6)
    d, _ = decide(svc("feedback"), ServicePolicyState(), 0.0, ServiceMetrics(tbt_ms=10), 10, 0, UNIT)
    assert (d.action, d.target_units) == ("in", 9)
    d, _ = decide(svc("static", static_units=12), ServicePolicyState(), 0.0, ServiceMetrics(), 5, 0, UNIT)
    assert (d.action, d.target_units) == ("out", 12)
    per = svc("periodic", periodic={"windows": [{"start": "00:00", "end": "12:00", "units": 3}]})
    d, _ = decide(per, ServicePolicyState(), 3600.0, ServiceMetrics(), 5, 0, UNIT)
    assert (d.action, d.target_units) == ("in", 3)


def test_missing_target_is_an_input_error() -> None:
    cfg = svc(proportional=ProportionalConfig())
    with pytest.raises(InputError, match="target_decode_tps_per_pod"):
        decide(cfg, ServicePolicyState(), 0.0, ServiceMetrics(decode_tps=10), 1, 0, UNIT)


def test_hpa_pools_scale_independently() -> None:
    cfg = svc("hpa", hpa=HPAPolicyConfig(), min_units=1, max_units=50)
    # prefill: 5 pods at 90 % vs 60 % → ceil(1.5 × 5) = 8 (legacy cap max(10, 4) = 10)
    # decode: 10 pods at 57 % → 0.95 inside tolerance → 10
    m = ServiceMetrics(prefill_gpu_util=90, decode_gpu_util=57)
    d, s = decide(cfg, ServicePolicyState(), 0.0, m, 5, 0, UNIT)
    assert (d.prefill_pods, d.decode_pods, d.action) == (8, 10, "out")
    assert d.target_units == 8  # max(ceil(8/1), ceil(10/2))
    assert s.hpa_prefill.recommendations is not None
    # scale-down is held by the 300 s window: decode at 20 % → 4 pods proposed, held at 10
    m2 = ServiceMetrics(prefill_gpu_util=60, decode_gpu_util=20)
    d2, _ = decide(cfg, s, 15.0, m2, 5, 0, UNIT, current_pods=(8, 10))
    assert d2.decode_pods == 10


def test_state_json_round_trip_mid_sequence_gives_identical_decisions() -> None:
    cfg = svc("hybrid", stability=StabilityConfig(scale_in_window_s=120, cooldown_in_s=30, cooldown_out_s=15))
    tps = [1000, 1500, 2500, 2500, 800, 400, 400, 300, 2000, 100]
    tbt = [40, 70, 40, 30, 20, 10, 10, 10, 90, 10]

    def run(save_at: int | None) -> list[tuple[str, int]]:
        state, units, out = ServicePolicyState(), 5, []
        for i, (x, y) in enumerate(zip(tps, tbt, strict=True)):
            if i == save_at:
                state = ServicePolicyState.model_validate_json(state.model_dump_json())
            d, state = decide(cfg, state, 30.0 * i, ServiceMetrics(decode_tps=x, tbt_ms=y), units, 0, UNIT)
            units = d.target_units
            out.append((d.action, d.target_units))
        return out

    assert run(None) == run(5) == run(3)


def test_engine_step_and_state_round_trip() -> None:
    cfg = AutoscalerConfig(services=(svc(), svc(service="b", policy="static", static_units=2)))
    eng = PolicyEngine(cfg)
    decs, state = eng.step(
        EngineState(),
        0.0,
        {"chat": ServiceMetrics(decode_tps=1300)},
        {"chat": 5, "b": 2},
        {},
        {"chat": UNIT, "b": UNIT},
    )
    assert [decs[k].target_units for k in sorted(decs)] == [2, 7]
    assert EngineState.model_validate_json(state.model_dump_json()) == state


def test_metrics_from_frame() -> None:
    df = pd.DataFrame(
        {
            "time": [30, 0, 0, 30],
            "service": ["a", "a", "b", "b"],
            "decode_tps": [10.0, 5.0, float("nan"), 7.0],
            "tbt_ms": [20.0, 21.0, 22.0, 23.0],
            "decode_ready_pods": [3, 3, 2, 2],
            "extra": [1, 2, 3, 4],
        }
    )
    steps = list(metrics_from_frame(df))
    assert [t for t, _ in steps] == [0.0, 30.0]
    assert steps[0][1]["a"].decode_tps == 5.0
    assert steps[0][1]["b"].decode_tps is None
    assert steps[1][1]["b"].decode_ready_pods == 2
    assert ServiceMetrics.from_mapping({"decode_tps": 3, "ttft_ms": None}).decode_tps == 3.0


POLICIES = st.sampled_from(["proportional", "feedback", "hybrid", "static", "hpa"])
CYCLE = st.tuples(
    st.floats(0, 50_000, allow_nan=False),  # decode TPS
    st.floats(0, 500, allow_nan=False),  # TBT ms
    st.floats(0, 100, allow_nan=False),  # GPU util
    st.integers(0, 3),  # pending units
    st.floats(0, 400, allow_nan=False),  # seconds to next cycle
)


@settings(max_examples=60, deadline=None)
@given(
    policy=POLICIES,
    lo=st.integers(0, 5),
    span=st.integers(0, 30),
    start=st.integers(0, 60),
    window=st.sampled_from([0.0, 120.0]),
    step_pct=st.sampled_from([None, 25.0]),
    cycles=st.lists(CYCLE, min_size=1, max_size=12),
)
def test_targets_stay_within_min_max(
    policy: str,
    lo: int,
    span: int,
    start: int,
    window: float,
    step_pct: float | None,
    cycles: list[tuple[float, float, float, int, float]],
) -> None:
    hi = lo + span
    cfg = svc(
        policy,
        min_units=lo,
        max_units=hi,
        static_units=min(hi, lo + 1),
        stability=StabilityConfig(
            scale_in_window_s=window, max_step_in_percent=step_pct, max_step_out_percent=step_pct
        ),
    )
    state, units, now = ServicePolicyState(), start, 0.0
    for tps, tbt, util, pending, dt_s in cycles:
        m = ServiceMetrics(decode_tps=tps, tbt_ms=tbt, prefill_gpu_util=util, decode_gpu_util=util)
        d, state = decide(cfg, state, now, m, units, pending, UNIT)
        assert lo <= d.target_units <= hi
        if d.action == "in":
            assert d.target_units >= lo
        if policy != "hpa":  # the HPA decides per pool; its action follows pods, not units
            direction = (d.target_units > d.supply_units) - (d.target_units < d.supply_units)
            assert d.action == {-1: "in", 0: "none", 1: "out"}[direction]
        units, now = d.target_units, now + dt_s
