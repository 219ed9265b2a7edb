"""Soft scale-in (hetero_opt.drain and the Autoscaler, paper §3.6): drain, reinstate, delete."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

import hetero_opt as ho
from hetero_opt.autoscaler import Autoscaler, AutoscalerState
from hetero_opt.drain import DrainBatch, reinstate
from hetero_opt.instance import current_units
from hetero_opt.placement.plan import GroupChange, PodChange
from hetero_opt.policy.config import AutoscalerConfig, ServicePolicy, load_policy_config
from hetero_opt.policy.engine import ServiceMetrics
from hetero_opt.replay import load_metrics, replay

DEMO = Path(__file__).resolve().parents[1] / "instances" / "autoscale"


def _cluster() -> ho.Instance:
    return ho.load_instance(DEMO / "cluster.yaml")


def _config(window_s: float = 1200.0) -> AutoscalerConfig:
    return AutoscalerConfig(
        services=(
            ServicePolicy.model_validate(
                {
                    "service": "chat",
                    "policy": "proportional",
                    "min_units": 2,
                    "max_units": 12,
                    "proportional": {"target_decode_tps_per_pod": 1300, "theta_in": 0.1, "in_headroom": 0},
                    "prefill_guard": {"enabled": False},
                    "stability": {
                        "cooldown_out_s": 0,
                        "cooldown_in_s": 0,
                        "scale_in_window_s": 0,
                        "soft_scale_in_s": window_s,
                    },
                }
            ),
        )
    )


def test_drain_reinstate_then_delete() -> None:
    # unit 3P:1D, 1,300 tok/s per decode pod. t=0: 6,500 → 5 units (out 3 → 5).
    # t=600: 2,600 → 2 units: 3 units drain (9 P + 3 D pods), still in the cluster.
    # t=1200: 3,900 → 3 units: 1 draining unit is reinstated, nothing placed.
    # t=1800: the batch drained at 600 reaches its 1200 s window: its 2 units are deleted.
    a = Autoscaler(_config(), solver="greedy", startup_delay_s=0)
    inst = _cluster()
    rows = []
    for t, tps in [(0.0, 6500), (600.0, 2600), (1200.0, 3900), (1800.0, 3900)]:
        d = a.step(t, {"chat": ServiceMetrics(decode_tps=tps)}, inst)
        inst = d.apply(inst)
        r = d.services[0]
        rows.append(
            (r.action, r.placed_units, r.drained_units, r.reinstated_units, r.deleted_units, r.draining_units,
             current_units(inst, "chat"))
        )
        if t == 600.0:
            assert d.placement is None
            assert d.drain is not None
            assert r.draining_pods == {"decode": 3, "prefill": 9}
        if t == 1200.0:
            assert (d.placement, d.drain) == (None, None)
        if t == 1800.0:
            assert d.deleted is not None
            assert [c.units for c in d.deleted.changes] == [-2]
    assert rows == [
        ("out", 5, 0, 0, 0, 0, 5),
        ("in", 2, 3, 0, 0, 3, 5),
        ("out", 3, 0, 1, 0, 2, 5),
        ("none", 3, 0, 0, 2, 0, 3),
    ]


def test_reinstate_takes_newest_batches_and_splits_whole_units() -> None:
    def batch(since: float, group: str, units: int) -> DrainBatch:
        pods = [PodChange(role="prefill", node="n1", count=3 * units), PodChange(role="decode", node="n2", count=units)]
        return DrainBatch(
            since=since,
            changes=[GroupChange(service="s", group=group, new=False, domain="d", units=-units, pods=pods)],
        )

    # 2 units at t=0, 3 units at t=600; take 4: all 3 of the newest, 1 of the older (3 P + 1 D)
    taken, left = reinstate([batch(0, "g0", 2), batch(600, "g1", 3)], 4, {"prefill": 3, "decode": 1})
    assert taken == 4
    assert [(b.since, b.units, b.pods_by_role()) for b in left] == [(0, 1, {"prefill": 3, "decode": 1})]


def test_soft_scale_in_state_reloads_to_identical_decisions() -> None:
    cfg = load_policy_config(DEMO / "policy.yaml")
    cfg = cfg.replace(
        services=tuple(
            s.replace(stability=s.stability.replace(soft_scale_in_s=1800.0)) for s in cfg.services
        )
    )
    series = load_metrics(DEMO / "metrics.csv")[30:80]
    whole = [d for d, _ in replay(Autoscaler(cfg, "greedy", startup_delay_s=300), _cluster(), series)]
    assert any(s.drained_units for d in whole for s in d.services)
    first = Autoscaler(cfg, "greedy", startup_delay_s=300)
    head = list(replay(first, _cluster(), series[:20]))
    saved = AutoscalerState.model_validate_json(first.save_state())
    resumed = Autoscaler(cfg, "greedy", startup_delay_s=300, state=saved)
    tail = [d for d, _ in replay(resumed, head[-1][1], series[20:])]
    got = [d for d, _ in head] + tail
    assert [d.services for d in got] == [d.services for d in whole]
    assert [d.state for d in got] == [d.state for d in whole]


@settings(max_examples=20, deadline=None)
@given(
    st.lists(st.floats(min_value=0, max_value=20_000, allow_nan=False), min_size=1, max_size=8),
    st.sampled_from([0.0, 600.0, 1200.0]),
)
def test_units_add_up_with_draining(loads: list[float], window_s: float) -> None:
    # the cluster holds exactly the active units plus the draining ones, in whole units
    a = Autoscaler(_config(window_s), solver="greedy", startup_delay_s=0)
    series = [(600.0 * i, {"chat": ServiceMetrics(decode_tps=x)}) for i, x in enumerate(loads)]
    for decision, inst in replay(a, _cluster(), series):
        r = decision.services[0]
        assert current_units(inst, "chat") == r.placed_units + r.draining_units
        assert 2 <= r.placed_units <= 12
        pods = {"decode": r.draining_units, "prefill": 3 * r.draining_units}
        assert r.draining_pods == {k: v for k, v in pods.items() if v}


def test_prefill_short_with_ratio_moves_off_is_an_alert() -> None:
    # 5 units at 3P:1D hold 15 prefill pods; 54,400 / 3,400 = 16 needed → the guard wants 4P:1D;
    # with move_ratio off the placement keeps 3P:1D and the cycle says so; a surplus move is no alert
    # (the prefill floor off too: with it, units cover prefill at 3P:1D instead, below)
    cfg = load_policy_config(DEMO / "policy.yaml")
    off = cfg.replace(services=tuple(
        s.replace(prefill_guard=s.prefill_guard.replace(move_ratio=False, scale_units=False)) for s in cfg.services))
    a = Autoscaler(off, solver="greedy")
    d = a.step(600.0, {"chat": ServiceMetrics(decode_tps=6500, prefill_tps=54_400)}, _cluster())
    r = d.services[0]
    assert (r.unit, r.wanted_unit, r.placed_units, r.moved_from, d.moves) == ((3, 1), (4, 1), 5, None, [])
    assert any(x.startswith("prefill short at 3P:1D: 4P:1D wanted") for x in r.alerts)
    # floor on, moves off: 54,400 / (3 × 3,400 × 0.8) = 6.67 → 7 units of 3P:1D, prefill covered, no alert
    floor = cfg.replace(services=tuple(
        s.replace(prefill_guard=s.prefill_guard.replace(move_ratio=False)) for s in cfg.services))
    d = Autoscaler(floor, solver="greedy").step(
        600.0, {"chat": ServiceMetrics(decode_tps=6500, prefill_tps=54_400)}, _cluster())
    r = d.services[0]
    assert (r.unit, r.wanted_unit, r.placed_units, r.alerts) == ((3, 1), (3, 1), 7, ())
    light = {"chat": ServiceMetrics(decode_tps=6500, prefill_tps=10_000)}
    d = Autoscaler(off, solver="greedy").step(600.0, light, _cluster())
    assert (d.services[0].wanted_unit, d.services[0].alerts) == ((2, 1), ())


def test_prefill_short_moves_the_ratio_by_default() -> None:
    # same cycle with the default move_ratio: the 3 running units become 3 units of 4P:1D (+3 prefill
    # pods in their group), then 2 units of 4P:1D are placed: 20 prefill + 5 decode pods, no alert
    cfg = load_policy_config(DEMO / "policy.yaml")
    d = Autoscaler(cfg, solver="greedy").step(
        600.0, {"chat": ServiceMetrics(decode_tps=6500, prefill_tps=54_400)}, _cluster())
    r = d.services[0]
    assert (r.unit, r.wanted_unit, r.moved_from, r.placed_units, r.alerts) == ((4, 1), (4, 1), (3, 1), 5, ())
    after = d.apply(_cluster())
    svc = next(s for s in after.services if s.id == "chat")
    assert (svc.pd_ratio.prefill, svc.pd_ratio.decode) == (4, 1)
    pods = {role: sum(p.count for g in after.groups if g.service == "chat" for p in g.pods if p.role == role)
            for role in ("prefill", "decode")}
    assert pods == {"prefill": 20, "decode": 5}
    assert current_units(after, "chat") == 5
