"""The bundled instances: every known answer of instances/README.md, on the greedy plan.

Tier weights are the defaults (low 1, medium 3, high 9; +2 per GPU per rank below the preferred
GPU type). CP-SAT must verify and never score worse than greedy.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import BUNDLED, INSTANCES_DIR

from hetero_opt import Instance, PlacementResult, build_view, load_instance, score, solve, verify
from hetero_opt.placement.plan import GroupChange

NAMES = [p.stem for p in BUNDLED]


def greedy(name: str) -> tuple[Instance, PlacementResult]:
    inst = load_instance(INSTANCES_DIR / f"{name}.yaml")
    return inst, solve(inst, "greedy")


def tiers_of(inst: Instance, change: GroupChange) -> dict[str, int]:
    """GPUs of a group change per tier of the S1 they land in."""
    view = build_view(inst)
    svc = view.service_by_id[change.service]
    out: dict[str, int] = {}
    for p in change.pods:
        tier = view.tier_by_s1[view.node_by_id[p.node].s1]
        out[tier] = out.get(tier, 0) + p.count * svc.role(p.role).gpus_per_pod
    return out


def pods(change: GroupChange) -> set[tuple[str, str, int]]:
    return {(p.role, p.node, p.count) for p in change.pods}


def test_every_bundled_instance_is_listed_in_the_readme() -> None:
    readme = (INSTANCES_DIR / "README.md").read_text()
    assert len(NAMES) >= 9
    for name in NAMES:
        assert f"`{name}.yaml`" in readme


@pytest.mark.parametrize("path", BUNDLED, ids=NAMES)
def test_plan_verifies_and_is_never_worse_than_greedy(path: Path, solver: str) -> None:
    inst = load_instance(path)
    result = solve(inst, solver, time_limit=2.0)
    assert verify(inst, result.plan) == []
    assert result.score == score(inst, result.plan)
    assert result.score <= solve(inst, "greedy").score


def test_tier_preference() -> None:
    inst, r = greedy("tier_preference")
    (c,) = r.plan.changes
    # 4 units of 16 H20 GPUs: 2 in low S2 'a', 1 in medium S2 'b', 1 in high S1 'h-1'
    assert (c.new, c.domain, c.units) == (True, "c", 4)
    assert tiers_of(inst, c) == {"low": 32, "medium": 16, "high": 16}
    assert r.score.premium_cost == 32 * 1 + 16 * 3 + 16 * 9 == 224
    assert r.score.unserved_gpus == [0]
    assert r.score.new_groups == 1


def test_s1_affinity() -> None:
    _, r = greedy("s1_affinity")
    (c,) = r.plan.changes
    # a-1 and a-2 have 4 free GPUs each: a unit of 8 GPUs fits in neither S1 alone
    assert (c.new, c.domain, c.units) == (True, "b-1", 1)
    assert pods(c) == {("prefill", "b1", 1), ("decode", "b1", 1)}
    assert r.score.premium_cost == 8 * 1


def test_s2_affinity_prefill_and_decode_on_different_types() -> None:
    inst, r = greedy("s2_pd_types")
    (c,) = r.plan.changes
    # medium S2 'm' wins over high S1 'h-1': (8 + 8) x 3 = 48 < (8 + 8) x 9 = 144
    assert (c.new, c.domain) == (True, "m")
    assert pods(c) == {("prefill", "m1", 1), ("decode", "m2", 1)}
    assert tiers_of(inst, c) == {"medium": 16}
    assert r.score.premium_cost == 48


def test_moe_replica_in_one_s1() -> None:
    _, r = greedy("moe_replica")
    (c,) = r.plan.changes
    # attn + ffn (4 + 4) need one S1 with 8 free GPUs (a-3 or a-4); decode (8) takes the other
    assert (c.new, c.domain, c.units) == (True, "a", 1)
    where = {p.role: p.node for p in c.pods}
    assert where["prefill-attn"] == where["prefill-ffn"] in {"n3", "n4"}
    assert {where["prefill-attn"], where["decode"]} == {"n3", "n4"}
    assert r.score.premium_cost == 16


def test_priority_contention() -> None:
    _, r = greedy("priority_contention")
    (c,) = r.plan.changes
    assert c.service == "search"
    (u,) = r.plan.unserved
    assert (u.service, u.wanted_units, u.placed_units) == ("assistant", 1, 0)
    # priority classes highest first: search (100) fully served, assistant (1) misses 16 GPUs
    assert r.score.priorities == [100, 1]
    assert r.score.unserved_gpus == [0, 16]
    assert r.score.premium_cost == 16


def test_scale_in_from_premium_tier_first() -> None:
    _, r = greedy("scale_in_premium")
    units = {c.group: c.units for c in r.plan.changes}
    # 4 -> 1 unit: the high-tier group goes entirely (2 units), then 1 unit of the low-tier group
    assert units == {"g-high": -2, "g-low": -1}
    by_group = {c.group: pods(c) for c in r.plan.changes}
    assert by_group["g-high"] == {("prefill", "h1", 2), ("decode", "h2", 2)}
    assert by_group["g-low"] == {("prefill", "a1", 1), ("decode", "a2", 1)}
    assert r.score.premium_cost == -(2 * 8 * 9 + 1 * 8 * 1) == -152
    assert r.score.emptied_groups == 1
    assert r.score.new_groups == 0
    assert r.plan.unserved == []


def test_unservable_request_is_listed_with_a_reason() -> None:
    _, r = greedy("unservable")
    (c,) = r.plan.changes
    assert c.units == 1
    (u,) = r.plan.unserved
    assert (u.service, u.wanted_units, u.placed_units) == ("chat", 2, 1)
    assert "capacity" in u.reason
    assert r.score.unserved_gpus == [16]
    assert r.score.premium_cost == 16


def test_nonpreferred_gpu_type_fallback() -> None:
    _, r = greedy("nonpreferred_fallback")
    (c,) = r.plan.changes
    # the only free H20 node takes the prefill pod; decode falls back to L20 (rank 1)
    assert pods(c) == {("prefill", "m1", 1), ("decode", "m3", 1)}
    assert r.score.premium_cost == 8 * 3 + 8 * (3 + 2 * 1) == 64


def test_expand_existing_group_before_opening_a_new_one() -> None:
    _, r = greedy("expand_vs_new")
    changes = {c.group: c for c in r.plan.changes}
    assert set(changes) == {"g1", "chat@a-1"}
    assert (changes["g1"].new, changes["g1"].units) == (False, 1)
    assert pods(changes["g1"]) == {("prefill", "a3", 1), ("decode", "a3", 1)}
    assert (changes["chat@a-1"].new, changes["chat@a-1"].units) == (True, 1)
    assert r.score.new_groups == 1
    assert r.score.premium_cost == 2 * 8 * 1


def test_gang_aggregated() -> None:
    # the 2-unit gang (32 GPUs) does not fit in 24 free GPUs: none of it; 'agg' takes the 3 nodes
    result = solve(load_instance(INSTANCES_DIR / "gang_aggregated.yaml"), "greedy")
    assert result.score.unserved_gpus == [32, 0]
    assert result.score.premium_cost == 3 * 8 * 1
    assert result.score.new_groups == 1
    assert [(u.service, u.wanted_units, u.placed_units) for u in result.plan.unserved] == [("train-serve", 2, 0)]
