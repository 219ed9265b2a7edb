"""Anticipation: a floor from the service's own past (the same time on previous days, the last rise),
covering the control interval plus the start-up delay; causal, deterministic, visible in reasons."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from hetero_opt.policy.anticipation import AnticipationConfig, DemandHistory, forecast, record
from hetero_opt.policy.config import AutoscalerConfig, ServicePolicy
from hetero_opt.policy.engine import Decision, EngineState, PolicyEngine, ServiceMetrics, ServicePolicyState, decide

DAY = 86_400
CYCLE = 300
STARTUP = 120
RAMP = 10 * 3600  # 10:00: the load of the window ending at 10:00 is the first high one


def policy(**anticipation: Any) -> ServicePolicy:
    """Decode-TPS control at 100 tok/s per decode pod, unit 1P:1D, no prefill metric."""
    return ServicePolicy.model_validate({
        "service": "s", "policy": "proportional", "max_units": 100,
        "proportional": {"target_decode_tps_per_pod": 100.0},
        "anticipation": {"schedule_days": 0, "trend": False} | anticipation,
    })


def daily_ramp(level: float = 100.0, peak: float = 400.0) -> Callable[[int], float]:
    """Decode TPS of the window ending at ``t``: ``level`` until 10:00, ``peak`` from 10:00 to 12:00."""
    return lambda t: peak if RAMP <= t % DAY < RAMP + 7200 else level


def replay(cfg: ServicePolicy, load: Callable[[int], float], days: float,
           state: ServicePolicyState | None = None) -> tuple[list[tuple[int, Decision]], ServicePolicyState]:
    """Closed on itself: each decision's units are the next cycle's supply (no start-up in the supply)."""
    st, units, out = state or ServicePolicyState(), 1, []
    for t in range(CYCLE, int(days * DAY) + 1, CYCLE):
        d, st = decide(cfg, st, float(t), ServiceMetrics(decode_tps=load(t)), units, 0, (1, 1),
                       startup_delay_s=STARTUP)
        out.append((t, d))
        units = d.target_units
    return out, st


def at(decisions: list[tuple[int, Decision]], t: int) -> Decision:
    return next(d for s, d in decisions if s == t)


def test_learned_schedule_from_three_periodic_days_predicts_the_fourth_days_ramp() -> None:
    decisions, _ = replay(policy(schedule_days=3), daily_ramp(), 4)
    # day 1: no history, so the ramp is met when it is seen (the window ending at 10:00)
    assert at(decisions, RAMP - CYCLE).target_units == 1
    assert at(decisions, RAMP).target_units == 4
    # day 4: one cycle ahead (its lead, 300 s + 120 s, reaches into the ramp), from 3 days of ratios
    d = at(decisions, 3 * DAY + RAMP - CYCLE)
    assert d.action == "out"
    assert d.target_units == 4
    assert "decode rose ×4.00 over the next 420 s at this time (median of 3 days)" in d.reason
    # two cycles ahead the lead does not reach the ramp: no early scale-out
    assert at(decisions, 3 * DAY + RAMP - 2 * CYCLE).target_units < 4


def test_a_rise_seen_on_one_day_of_three_does_not_lift_the_floor() -> None:
    def load(t: int) -> float:
        return daily_ramp()(t) if t < DAY else 100.0  # the ramp only on day 1

    decisions, _ = replay(policy(schedule_days=3), load, 4)
    assert "anticipation" not in at(decisions, 3 * DAY + RAMP - CYCLE).reason  # median of 1.0, 1.0, 4.0


def test_the_schedule_is_relative_a_quieter_day_gets_a_lower_floor() -> None:
    def load(t: int) -> float:
        return daily_ramp(level=50.0, peak=200.0)(t) if t >= 3 * DAY else daily_ramp()(t)

    decisions, _ = replay(policy(schedule_days=3), load, 4)
    d = at(decisions, 3 * DAY + RAMP - CYCLE)
    assert d.target_units == 2  # 50 × 4.00 = 200 tok/s → 2 pods, not yesterday's 400


def test_margin_is_added_to_the_forecast_peak() -> None:
    decisions, _ = replay(policy(schedule_days=3, margin=0.1), daily_ramp(), 4)
    d = at(decisions, 3 * DAY + RAMP - CYCLE)
    assert d.target_units == 5
    assert "(+10%)" in d.reason


def test_trend_continues_the_last_rise_over_the_lead() -> None:
    cfg = policy(trend=True)
    st = ServicePolicyState()
    _, st = decide(cfg, st, 300.0, ServiceMetrics(decode_tps=100.0), 1, 0, (1, 1), startup_delay_s=STARTUP)
    d, _ = decide(cfg, st, 600.0, ServiceMetrics(decode_tps=200.0), 2, 0, (1, 1), startup_delay_s=STARTUP)
    # +100 tok/s in 300 s, over 300 + 120 s: 200 + 140 = 340 tok/s → 4 pods (Algorithm 2 alone: 2)
    assert d.target_units == 4
    assert "decode trend" in d.reason
    assert "over 420 s" in d.reason


def test_no_peeking_changing_future_data_changes_no_earlier_decision() -> None:
    cut = 2 * DAY + RAMP

    def other(t: int) -> float:
        return daily_ramp()(t) if t <= cut else 900.0 - (t % 7) * 50  # anything after the cut

    a, _ = replay(policy(schedule_days=3, trend=True), daily_ramp(), 3)
    b, _ = replay(policy(schedule_days=3, trend=True), other, 3)
    assert [d for t, d in a if t <= cut] == [d for t, d in b if t <= cut]
    assert a != b


def test_deterministic_and_restartable_from_saved_state() -> None:
    cfg = policy(schedule_days=2, trend=True)
    whole, _ = replay(cfg, daily_ramp(), 3)
    again, _ = replay(cfg, daily_ramp(), 3)
    assert whole == again
    first, st = replay(cfg, daily_ramp(), 2)
    restored = ServicePolicyState.model_validate_json(st.model_dump_json())
    # the third day resumed from the saved state decides as the uninterrupted run
    st2, units, rest = restored, first[-1][1].target_units, []
    for t in range(2 * DAY + CYCLE, 3 * DAY + 1, CYCLE):
        d, st2 = decide(cfg, st2, float(t), ServiceMetrics(decode_tps=daily_ramp()(t)), units, 0, (1, 1),
                        startup_delay_s=STARTUP)
        rest.append((t, d))
        units = d.target_units
    assert rest == [(t, d) for t, d in whole if t > 2 * DAY]


def test_off_keeps_no_history_and_changes_nothing() -> None:
    off, st = replay(policy(), daily_ramp(), 2)
    assert st.demand == DemandHistory()
    assert all("anticipation" not in d.reason for _, d in off)


def test_on_by_default_the_learned_schedule_over_three_days_without_trend() -> None:
    cfg = ServicePolicy.model_validate({"service": "s", "policy": "proportional",
                                        "proportional": {"target_decode_tps_per_pod": 100.0}})
    assert (cfg.anticipation.schedule_days, cfg.anticipation.trend, cfg.anticipation.margin) == (3, False, 0.0)
    decisions, _ = replay(cfg, daily_ramp(), 2)
    assert at(decisions, DAY + RAMP - CYCLE).target_units == 4  # the second day already


def test_history_is_bounded_to_the_days_the_schedule_reads() -> None:
    _, st = replay(policy(schedule_days=2), daily_ramp(), 5)
    h = st.demand
    assert h.at[-1] - h.at[0] <= 2 * DAY + CYCLE  # the oldest period and one bucket before it
    assert len(h.at) == 2 * DAY // CYCLE + 2  # two days of cycles and the level before the oldest


def test_history_keeps_the_highest_observation_per_bucket() -> None:
    cfg = AnticipationConfig(schedule_days=1, resolution_s=300)
    h = record(cfg, DemandHistory(), 60.0, 100.0, 10.0)
    h = record(cfg, h, 120.0, 300.0, 5.0)
    h = record(cfg, h, 180.0, 200.0, 1.0)
    assert h.at == (60.0,)  # the bucket keeps the time of its first observation
    assert h.decode_tps == (300.0,)
    assert h.prefill_tps == (10.0,)
    assert h.last == (200.0, 1.0)
    assert h.last_at == 180.0


def test_forecast_lead_is_the_last_interval_plus_start_up_unless_given() -> None:
    h = DemandHistory(last_at=0.0, last=(100.0, 0.0))
    f = forecast(AnticipationConfig(trend=True), h, 60.0, 200.0, None, 120.0)
    assert f is not None
    assert f.lead_s == 180.0
    assert f.decode_tps == pytest.approx(200 + 100 / 60 * 180)
    g = forecast(AnticipationConfig(trend=True, lead_s=30.0), h, 60.0, 200.0, None, 120.0)
    assert g is not None
    assert g.lead_s == 30.0
    assert forecast(AnticipationConfig(trend=True), h, 60.0, 50.0, None, 120.0) is None  # falling: no floor


def test_prefill_is_anticipated_at_the_highest_reachable_ratio() -> None:
    cfg = ServicePolicy.model_validate({
        "service": "s", "policy": "proportional", "proportional": {"target_decode_tps_per_pod": 1000.0},
        "prefill_guard": {"prefill_tps_per_pod": 100.0, "min_prefill_per_decode": 1, "max_prefill_per_decode": 4,
                          "target_utilisation": 1.0},
        "anticipation": {"trend": True},
    })
    st = ServicePolicyState()
    _, st = decide(cfg, st, 300.0, ServiceMetrics(decode_tps=100.0, prefill_tps=400.0), 1, 0, (2, 1))
    d, _ = decide(cfg, st, 600.0, ServiceMetrics(decode_tps=100.0, prefill_tps=800.0), 2, 0, (4, 1),
                  startup_delay_s=300.0)
    # prefill 800 + 400/300 × 600 = 1600 tok/s; at 4P per unit and 100 per pod → 4 units
    assert d.target_units == 4
    assert "prefill trend" in d.reason


def test_engine_passes_the_start_up_delay() -> None:
    engine = PolicyEngine(AutoscalerConfig(services=(policy(trend=True),)))
    st = EngineState()
    _, st = engine.step(st, 300.0, {"s": ServiceMetrics(decode_tps=100.0)}, {"s": 1}, {}, {"s": (1, 1)},
                        startup_delay_s=600.0)
    dec, _ = engine.step(st, 600.0, {"s": ServiceMetrics(decode_tps=200.0)}, {"s": 2}, {}, {"s": (1, 1)},
                         startup_delay_s=600.0)
    assert "over 900 s" in dec["s"].reason


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"margin": -0.1}, "margin"),
        ({"schedule_days": 29}, "schedule_days"),
        ({"schedule_days": 1, "period_s": 600, "resolution_s": 400}, "resolution_s=400 must be at most half"),
        ({"lead_s": 0}, "lead_s"),
        ({"horizon": 3}, "horizon"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        AnticipationConfig.model_validate(fields)


def test_trend_ignores_a_rise_within_its_noise_share() -> None:
    h = DemandHistory(last_at=0.0, last=(100.0, 0.0))
    assert forecast(AnticipationConfig(trend=True), h, 300.0, 109.0, None, 120.0) is None  # +9 % ≤ 10 %
    f = forecast(AnticipationConfig(trend=True, trend_min_rise=0.05), h, 300.0, 109.0, None, 120.0)
    assert f is not None
    assert f.decode_tps == pytest.approx(109 + 9 / 300 * 420)


def test_no_scale_in_before_a_rise_the_schedule_expects_within_the_window() -> None:
    """A service that falls at 09:00 and ramps at 10:00 every day: from day 2 on, the scale-in at
    09:30 (once the 1800-s window has passed) waits, because the ramp lies within the next 1800 s."""
    def load(t: int) -> float:
        tod = t % DAY
        return 100.0 if 9 * 3600 < tod <= RAMP else 400.0

    held, _ = replay(policy(schedule_days=2), load, 3)
    free, _ = replay(policy(schedule_days=2, hold_scale_in=False), load, 3)
    t = 2 * DAY + 9 * 3600 + 1800 + CYCLE
    assert at(free, t).action == "in"
    assert at(held, t).action == "none"
    assert "scale-in held at 4" in at(held, t).reason
    assert at(held, 2 * DAY + RAMP).target_units == 4


def test_sixty_second_cycles_read_the_five_minute_history() -> None:
    """The history keeps one sample per 300 s; a 60-s cycle's lead (60 + 120 s) is shorter, and still
    finds the bucket after the same time on the previous day."""
    cfg = policy(schedule_days=1)
    st, units, t = ServicePolicyState(), 1, 60
    seen: dict[int, Decision] = {}
    while t <= DAY + RAMP:
        d, st = decide(cfg, st, float(t), ServiceMetrics(decode_tps=daily_ramp()(t)), units, 0, (1, 1),
                       startup_delay_s=STARTUP)
        seen[t] = d
        units, t = d.target_units, t + 60
    assert seen[DAY + RAMP - 120].target_units == 4  # 180 s ahead of the ramp
    assert "anticipation" in seen[DAY + RAMP - 120].reason
    assert seen[DAY + RAMP - 360].target_units < 4
