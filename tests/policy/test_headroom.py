"""SLO-tuned headroom (decision 64): one step down after a window with too many short cycles, one step
up after a window with none, never above the configured utilisation nor below the floor."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hetero_opt.policy.config import PrefillGuardConfig, ProportionalConfig, ServicePolicy, StabilityConfig
from hetero_opt.policy.engine import ServiceMetrics, ServicePolicyState, decide, is_short, prefill_units_needed
from hetero_opt.policy.headroom import HeadroomConfig, HeadroomMemory, tune

HOUR = 3600.0
CFG = HeadroomConfig(window_s=HOUR, short_budget=0.1, step=0.05, floor=0.6)


def run(shorts: list[bool], configured: float = 0.8, cfg: HeadroomConfig = CFG, period: float = 600.0) -> list[float]:
    """The utilisation sized at each cycle of ``shorts`` (one cycle every ``period`` s)."""
    memory, out = HeadroomMemory(), []
    for i, short in enumerate(shorts):
        memory, u, _ = tune(cfg, memory, configured, i * period, short)
        out.append(u)
    return out


def test_a_window_with_too_many_short_cycles_lowers_one_step_and_a_clean_one_raises_it_back() -> None:
    # cycles every 10 min: the window opened at 0 closes at 3600 s (cycle 6), counting cycles 0-6
    assert run([True] + [False] * 6) == [0.8] * 6 + [0.75]  # 1 of 7 short > 10 %
    assert run([False] * 6 + [True]) == [0.8] * 6 + [0.75]  # the closing cycle counts
    # lowered twice, then one clean window raises it one step
    assert run([True] * 13 + [False] * 6)[-1] == pytest.approx(0.75)
    assert run([True] * 13) == [0.8] * 6 + [0.75] * 6 + [0.7]


def test_a_window_within_the_budget_holds_and_the_configured_value_is_a_ceiling() -> None:
    cfg = CFG.model_copy(update={"short_budget": 0.2})
    assert run([True] + [False] * 6, cfg=cfg) == [0.8] * 7  # 1 of 7 short, within 20 %: no step either way
    assert run([False] * 30) == [0.8] * 30  # clean windows never raise above the configured 0.8
    # a configured value lowered since (a new profile) is the ceiling at once
    memory = HeadroomMemory(utilisation=0.9, window_start=0.0, cycles=1)
    assert tune(CFG, memory, 0.8, 600.0, False)[1] == 0.8


def test_the_floor_holds_and_a_floor_above_the_configured_value_never_raises_it() -> None:
    assert min(run([True] * 200, cfg=CFG.model_copy(update={"floor": 0.7}))) == pytest.approx(0.7)
    # configured 0.4 under the floor 0.6: short windows hold it at 0.4 (found by a newcomer: it went to 0.6)
    assert run([True] * 20, configured=0.4) == [0.4] * 20


@settings(max_examples=80, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=120), st.floats(0.3, 1.0),
       st.sampled_from([0.0, 0.1, 0.3]))
def test_each_window_moves_the_utilisation_the_way_its_short_share_says(
    shorts: list[bool], configured: float, budget: float
) -> None:
    cfg = CFG.model_copy(update={"short_budget": budget})
    memory, u_before = HeadroomMemory(), configured
    for i, short in enumerate(shorts):
        opened = memory.window_start
        counted = (memory.cycles + 1, memory.short + int(short))
        memory, u, why = tune(cfg, memory, configured, i * 600.0, short)
        assert min(cfg.floor, configured) - 1e-9 <= u <= configured + 1e-9
        assert abs(u - u_before) <= cfg.step + 1e-6  # one step at most (rounded to 6 decimals)
        if opened is not None and i * 600.0 - opened >= cfg.window_s:  # this cycle closed a window
            cycles, short_count = counted
            if short_count / cycles > budget:
                assert u <= u_before
                assert u < u_before or u_before <= min(cfg.floor, configured) + 1e-9 or "did not help" in why
            elif short_count == 0:
                assert u >= u_before
                assert u > u_before or u_before >= configured - 1e-9
            else:
                assert u == u_before
        else:
            assert u == u_before
        u_before = u


def test_steps_down_that_do_not_help_stop_after_three() -> None:
    # every cycle short, whatever the headroom (a latency target no capacity meets): 0.8 → 0.65, then held
    memory, us, whys = HeadroomMemory(), [], []
    for i in range(60):
        memory, u, why = tune(CFG, memory, 0.8, i * 600.0, True)
        us.append(u)
        whys.append(why)
    assert sorted(set(us), reverse=True) == [0.8, 0.75, 0.7, 0.65]
    assert any("did not help" in w for w in whys)
    # a window less short than the one that began the steps lowers again; one within budget resets the run
    assert tune(CFG, memory.replace(window_start=0.0, cycles=6, short=3), 0.8, 3600.0, False)[1] == 0.6
    fresh = memory.replace(window_start=0.0, cycles=6, short=0, lowered_at=None, steps_down=0)
    assert tune(CFG, fresh, 0.8, 3600.0, False)[1] == 0.7


def test_a_cycle_without_a_reading_changes_nothing() -> None:
    memory = HeadroomMemory(utilisation=0.7, window_start=0.0, cycles=5, short=5)
    assert tune(CFG, memory, 0.8, 90_000.0, None) == (memory, 0.7, "")
    assert tune(CFG, memory, 0.65, 90_000.0, None)[1] == 0.65  # the configured ceiling still applies


def test_a_clock_going_back_opens_a_new_window() -> None:
    memory, _, _ = tune(CFG, HeadroomMemory(), 0.8, 100_000.0, True)
    memory, u, _ = tune(CFG, memory, 0.8, 0.0, True)  # back in time: a new window from 0
    assert (memory.window_start, memory.cycles, u) == (0.0, 1, 0.8)
    for t in (600.0, 1200.0, 1800.0, 2400.0, 3000.0):
        memory, u, _ = tune(CFG, memory, 0.8, t, True)
    assert tune(CFG, memory, 0.8, 3600.0, True)[1] == 0.75  # closed after an hour, not after 100,000 s


def _svc(**kw: object) -> ServicePolicy:
    return ServicePolicy.model_validate({
        "service": "chat", "policy": "proportional", "max_units": 100,
        "proportional": ProportionalConfig(target_decode_tps_per_pod=1000),
        "prefill_guard": PrefillGuardConfig(prefill_tps_per_pod=10_000, target_utilisation=0.8),
        "stability": StabilityConfig(cooldown_out_s=0, cooldown_in_s=0, scale_in_window_s=0),
        "feedback": {"target_ttft_ms": 2000, "target_tbt_ms": 100},
        **kw,
    })


def test_short_cycles_are_latency_above_target_or_a_saturated_prefill_pool() -> None:
    svc = _svc()
    assert not is_short(svc, ServiceMetrics(decode_tps=1.0, ttft_ms=1999, tbt_ms=100, prefill_gpu_util=94))
    assert is_short(svc, ServiceMetrics(decode_tps=1.0, ttft_ms=2001))
    assert is_short(svc, ServiceMetrics(decode_tps=1.0, tbt_ms=101))
    assert is_short(svc, ServiceMetrics(decode_tps=1.0, prefill_gpu_util=95))
    assert not is_short(_svc(prefill_guard=PrefillGuardConfig(saturated_util_percent=None)),
                        ServiceMetrics(decode_tps=1.0, prefill_gpu_util=100))
    assert not is_short(_svc(prefill_guard=PrefillGuardConfig(enabled=False)),
                        ServiceMetrics(decode_tps=1.0, prefill_gpu_util=100))


def test_the_engine_sizes_both_pools_at_the_tuned_utilisation_and_says_so() -> None:
    svc = _svc(headroom=HeadroomConfig(window_s=HOUR, short_budget=0.0))
    hot = ServiceMetrics(decode_tps=8000.0, prefill_tps=0.0, ttft_ms=5000.0)
    # prefill: 60,000 tok/s at 10,000 per pod × 0.8 = 7.5 units at 1P:1D; × 0.75 = 8 units exactly
    assert _prefill_units(svc, 0.8) == pytest.approx(7.5)
    assert _prefill_units(svc, 0.75) == pytest.approx(8.0)
    state = ServicePolicyState()
    decisions = []
    for i in range(8):  # every cycle short: the window closing at 3600 s lowers 0.8 to 0.75
        d, state = decide(svc, state, i * 600.0, hot, 7, 0, (1, 1))
        decisions.append(d)
    # 7 units short: 8,000 decode TPS / 1,000 per pod = 8 units at 0.8; at 0.75 the target per pod is
    # 1,000 × 0.75 / 0.8 = 937.5, so 9 units, from the cycle that closes the window
    assert [d.target_units for d in decisions][5:] == [8, 9, 9]
    assert "target utilisation 0.8 → 0.75: 7 of 7 cycles short" in decisions[6].reason
    assert "target utilisation 0.75 (SLO-tuned, configured 0.8)" in decisions[7].reason
    assert state.headroom.utilisation == 0.75
    assert [d.target_utilisation for d in decisions] == [0.8] * 6 + [0.75] * 2
    off, state = _svc(headroom=HeadroomConfig(adaptive=False)), ServicePolicyState()
    for i in range(8):
        d, state = decide(off, state, i * 600.0, hot, 7, 0, (1, 1))
    assert d.target_units == 8
    assert state.headroom == HeadroomMemory()


def _prefill_units(svc: ServicePolicy, u: float) -> float:
    """Units the prefill floor asks for at 60,000 prefill tok/s with the guard sized at ``u``."""
    tuned = svc.model_copy(update={"prefill_guard": svc.prefill_guard.model_copy(update={"target_utilisation": u})})
    need = prefill_units_needed(tuned.model_copy(update={"prefill_guard": tuned.prefill_guard.model_copy(
        update={"move_ratio": False})}), ServiceMetrics(decode_tps=1.0, prefill_tps=60_000.0), (1, 1))
    assert need is not None
    return need


def test_hybrid_tunes_too_and_a_cycle_without_metrics_does_not_count() -> None:
    svc = _svc(policy="hybrid", headroom=HeadroomConfig(window_s=HOUR, short_budget=0.0))
    hot = ServiceMetrics(decode_tps=8000.0, ttft_ms=5000.0, tbt_ms=50.0)
    state = ServicePolicyState()
    for i in range(7):
        d, state = decide(svc, state, i * 600.0, hot, 8, 0, (1, 1))
    assert d.target_utilisation == 0.75
    # a gap in the metrics (no decode reading) leaves the window's counts as they were
    before = state.headroom
    d, state = decide(svc, state, 4200.0, ServiceMetrics(), 8, 0, (1, 1))
    assert state.headroom == before
    assert d.target_utilisation == 0.75
    # the HPA baseline sizes by no target utilisation
    d, _ = decide(_svc(policy="hpa"), ServicePolicyState(), 0.0, ServiceMetrics(decode_gpu_util=50.0), 2, 0, (1, 1))
    assert d.target_utilisation is None
