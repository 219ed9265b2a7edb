"""Ratio moves (hetero_opt.ratio_move, the Autoscaler): every group moves to the new unit at once, or none does."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from hetero_opt.autoscaler import Autoscaler
from hetero_opt.instance import Instance, current_units, group_units
from hetero_opt.policy.config import AutoscalerConfig, ServicePolicy
from hetero_opt.policy.engine import ServiceMetrics, ServicePolicyState, decide
from hetero_opt.ratio_move import apply_move, can_move, plan_move
from hetero_opt.replay import decisions_table


def _cluster(b_free: int = 4) -> Instance:
    """Service chat (1-GPU pods, S1 affinity) at 3P:1D: group gA holds 2 units on a0 (full; a1 empty in
    the same S1), group gB 1 unit on b0 with ``b_free`` of its 8 GPUs free (the only node of S1 b)."""
    node = {"gpu_type": "G", "gpus_total": 8, "cluster": "c", "s2": "s2"}
    return Instance.model_validate({
        "format_version": "1.0", "name": "moves", "gpu_types": [{"id": "G"}],
        "nodes": [{**node, "id": "a0", "gpus_free": 0, "s1": "a"}, {**node, "id": "a1", "gpus_free": 8, "s1": "a"},
                  {**node, "id": "b0", "gpus_free": b_free, "s1": "b"}],
        "services": [{"id": "chat", "priority": 1, "affinity": "s1", "pd_ratio": {"prefill": 3, "decode": 1},
                      "roles": [{"name": "prefill", "gpus_per_pod": 1, "gpu_types": ["G"]},
                                {"name": "decode", "gpus_per_pod": 1, "gpu_types": ["G"]}],
                      "min_units": 1, "max_units": 10}],
        "groups": [
            {"id": "gA", "service": "chat", "domain": "a",
             "pods": [{"role": "prefill", "node": "a0", "count": 6}, {"role": "decode", "node": "a0", "count": 2}]},
            {"id": "gB", "service": "chat", "domain": "b",
             "pods": [{"role": "prefill", "node": "b0", "count": 3}, {"role": "decode", "node": "b0", "count": 1}]},
        ],
        "requests": [],
    })


def _pods(inst: Instance, group: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for g in inst.groups:
        if g.id == group:
            for p in g.pods:
                out[p.role] = out.get(p.role, 0) + p.count
    return out


def test_move_up_adds_units_times_delta_prefill_pods_to_each_group_in_its_domain() -> None:
    inst = _cluster()
    move, why = plan_move(inst, "chat", (4, 1), solver="greedy", time_limit=1.0, seed=0)
    assert move is not None, why
    placed = {c.group: (c.units, {p.node for p in c.pods}) for c in move.changes}
    assert placed == {"gA": (2, {"a1"}), "gB": (1, {"b0"})}
    after = apply_move(inst, move)
    assert (_pods(after, "gA"), _pods(after, "gB")) == ({"prefill": 8, "decode": 2}, {"prefill": 4, "decode": 1})
    svc = after.services[0]
    assert (svc.pd_ratio.prefill, svc.pd_ratio.decode) == (4, 1)
    assert [group_units(svc, g) for g in after.groups] == [2, 1]  # units kept, none off the new unit
    assert {n.id: n.gpus_free for n in after.nodes} == {"a0": 0, "a1": 6, "b0": 3}


def test_move_is_all_or_nothing() -> None:
    # gB's S1 has no free GPU: gA could move, but then the service would hold two ratios → nothing moves
    move, why = plan_move(_cluster(b_free=0), "chat", (4, 1), solver="greedy", time_limit=1.0, seed=0)
    assert move is None
    assert "group 'gB' needs +1 prefill pods" in why
    assert "the unit stays" in why


def test_move_down_removes_prefill_pods_and_frees_them_only_when_released() -> None:
    inst = _cluster()
    move, _ = plan_move(inst, "chat", (2, 1), solver="greedy", time_limit=1.0, seed=0)
    assert move is not None
    assert sorted((c.group, c.units) for c in move.changes) == [("gA", -2), ("gB", -1)]
    held = apply_move(inst, move, release_removed=False)  # the cycle's own view: freed GPUs wait
    assert {n.id: n.gpus_free for n in held.nodes} == {"a0": 0, "a1": 8, "b0": 4}
    freed = apply_move(inst, move)
    assert {n.id: n.gpus_free for n in freed.nodes} == {"a0": 2, "a1": 8, "b0": 5}
    assert current_units(freed, "chat") == 3


def test_only_plain_pd_services_move() -> None:
    svc = _cluster().services[0]
    assert can_move(svc)
    single = svc.model_copy(update={"roles": [svc.roles[0].model_copy(update={"name": "serve"})]})
    assert not can_move(single)


def _policy(**guard: Any) -> AutoscalerConfig:
    return AutoscalerConfig(services=(ServicePolicy.model_validate({
        "service": "chat", "policy": "proportional", "min_units": 1, "max_units": 10,
        "proportional": {"target_decode_tps_per_pod": 100},
        "prefill_guard": {"prefill_tps_per_pod": 100, "target_utilisation": 1.0,
                          "min_prefill_per_decode": 2, "max_prefill_per_decode": 4, **guard},
        "stability": {"cooldown_out_s": 0, "cooldown_in_s": 0},
    }),))


def test_autoscaler_moves_then_places_at_the_new_unit() -> None:
    # decode 300 tok/s → 3 pods → 3 units; prefill 1,200 tok/s → 12 pods → 4P:1D
    a = Autoscaler(_policy(), solver="greedy", startup_delay_s=0)
    d = a.step(60.0, {"chat": ServiceMetrics(decode_tps=300, prefill_tps=1200)}, _cluster())
    r = d.services[0]
    assert (r.moved_from, r.unit, r.placed_units) == ((3, 1), (4, 1), 3)
    after = d.apply(_cluster())
    assert current_units(after, "chat") == 3
    pods = [_pods(after, g.id) for g in after.groups]
    assert sum(p["prefill"] for p in pods) == 12
    assert sum(p["decode"] for p in pods) == 3
    # the move's pods land in their groups' S1; the new unit is in a new group or in a S1 with room
    assert all(p["prefill"] == 4 * p["decode"] for p in pods)


def test_autoscaler_without_room_keeps_the_unit_and_alerts() -> None:
    a = Autoscaler(_policy(), solver="greedy", startup_delay_s=0)
    d = a.step(60.0, {"chat": ServiceMetrics(decode_tps=300, prefill_tps=1200)}, _cluster(b_free=0))
    r = d.services[0]
    assert (r.moved_from, r.unit, r.wanted_unit, d.moves) == (None, (3, 1), (4, 1), [])
    assert any("not placed: group 'gB'" in x for x in r.alerts)


def test_prefill_moves_down_wait_out_the_scale_in_window() -> None:
    # 4P:1D on 3 units; prefill falls to 600 tok/s at t=60: 6 pods, ceil(6 / (3 × 0.8)) = 3P:1D wanted
    # (20 % margin kept), held at 4P until the 1,800 s window no longer holds the t=0 recommendation of 4P
    cfg = _policy().services[0]
    state = ServicePolicyState()
    high = ServiceMetrics(decode_tps=300, prefill_tps=1200)
    low = ServiceMetrics(decode_tps=300, prefill_tps=600)
    d, state = decide(cfg, state, 0.0, high, 3, 0, (4, 1))
    assert d.unit == (4, 1)
    d, state = decide(cfg, state, 60.0, low, 3, 0, (4, 1))
    assert d.unit == (4, 1)
    assert "prefill move down held at 4P" in d.reason
    d, state = decide(cfg, state, 1801.0, low, 3, 0, (4, 1))
    assert d.unit == (3, 1)
    # a move up is never held
    d, _ = decide(cfg, state, 1900.0, high, 3, 0, (3, 1))
    assert d.unit == (4, 1)


def test_no_move_while_soft_scale_in_drains() -> None:
    # t=0: 3 units of 3P:1D; decode 100 tok/s → 1 pod, with 10 % headroom 2 units: 1 unit starts
    # draining (soft scale-in, 600 s); prefill 600 tok/s = 6 pods fits 2 × 3P, the unit stays.
    # t=60: prefill 800 tok/s = 8 pods → 4P:1D wanted, but the batch holds pods of 3P:1D: the move waits
    cfg = _policy(scale_units=False)
    cfg = cfg.replace(services=tuple(s.replace(stability=s.stability.replace(soft_scale_in_s=600.0,
                                                                              scale_in_window_s=0.0))
                                     for s in cfg.services))
    a = Autoscaler(cfg, solver="greedy", startup_delay_s=0)
    inst = _cluster()
    d = a.step(0.0, {"chat": ServiceMetrics(decode_tps=100, prefill_tps=600)}, inst)
    assert (d.services[0].drained_units, d.services[0].unit, d.moves) == (1, (3, 1), [])
    inst = d.apply(inst)
    d = a.step(60.0, {"chat": ServiceMetrics(decode_tps=100, prefill_tps=800)}, inst)
    r = d.services[0]
    assert (d.moves, r.unit, r.wanted_unit) == ([], (3, 1), (4, 1))
    assert any("deferred: 1 unit still draining" in x for x in r.alerts)


def test_the_table_of_changes_shows_a_ratio_move_without_a_unit_change() -> None:
    # 3 units wanted and placed, as before the cycle: only the move from 3P:1D to 4P:1D changed
    a = Autoscaler(_policy(), solver="greedy", startup_delay_s=0)
    first = a.step(60.0, {"chat": ServiceMetrics(decode_tps=300, prefill_tps=900)}, _cluster())
    s = first.services[0]
    assert (s.current_units, s.wanted_units, s.placed_units, s.moved_from) == (3, 3, 3, None)  # steady: no row
    d = a.step(120.0, {"chat": ServiceMetrics(decode_tps=300, prefill_tps=1200)}, first.apply(_cluster()))
    r = d.services[0]
    assert (r.current_units, r.wanted_units, r.placed_units, r.moved_from, r.unit) == (3, 3, 3, (3, 1), (4, 1))
    out = io.StringIO()
    Console(file=out, width=400).print(decisions_table([first, d], only_changes=True))
    rows = [line for line in out.getvalue().splitlines() if "chat" in line]
    assert len(rows) == 1  # before: none (units alone decided)
    assert rows[0].startswith("│ 120 ")
    assert "ratio moved 3P:1D → 4P:1D" in rows[0]
