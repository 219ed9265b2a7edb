"""Synthetic instance families: valid, greedy-verifiable, deterministic, production-sized."""

from __future__ import annotations

import time
from collections import Counter

import pytest

import hetero_opt
from hetero_opt.fleets import fleet_names, get_fleet
from hetero_opt.generate import FAMILIES, FAMILY_DESCRIPTIONS, generate_instance
from hetero_opt.instance import Instance
from hetero_opt.topology import build_view

SMALL_FAMILIES = [f for f in FAMILIES if f not in ("production", "heavy", "large")]


@pytest.mark.parametrize("family", SMALL_FAMILIES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_family_validates_and_greedy_verifies(family: str, seed: int) -> None:
    inst = generate_instance(family, seed)
    assert isinstance(inst, Instance)
    result = hetero_opt.solve(inst, "greedy")
    assert hetero_opt.verify(inst, result.plan) == []
    assert inst.requests


def test_large_family_greedy_verifies() -> None:
    inst = generate_instance("large", 0)
    assert 4_500 <= len(inst.nodes) <= 5_500
    assert hetero_opt.verify(inst, hetero_opt.solve(inst).plan) == []


@pytest.mark.parametrize("family", ["tiny", "medium", "moe", "contention"])
def test_same_seed_same_instance(family: str) -> None:
    assert generate_instance(family, 7).model_dump_json() == generate_instance(family, 7).model_dump_json()
    assert generate_instance(family, 7).model_dump_json() != generate_instance(family, 8).model_dump_json()


@pytest.mark.parametrize("family", ["small", "medium", "large"])
def test_occupancy_and_free_chunks(family: str) -> None:
    inst = generate_instance(family, 3)
    total = sum(n.gpus_total for n in inst.nodes)
    free = sum(n.gpus_free for n in inst.nodes)
    assert 0.45 <= 1 - free / total <= 0.85
    assert {n.gpus_free for n in inst.nodes} <= {0, 1, 2, 4, 8}


def test_all_three_tiers_and_mixed_services() -> None:
    inst = generate_instance("large", 1)
    tiers = Counter(build_view(inst).tier_by_s1.values())
    assert tiers["low"] > tiers["medium"] > tiers["high"] > 0
    assert {s.affinity for s in inst.services} == {"s1", "s2", "cluster"}
    assert any(s.role("prefill").gpu_types[0] != s.role("decode").gpu_types[0] for s in inst.services)
    assert any(len(r.gpu_types) > 1 for s in inst.services for r in s.roles)
    assert len({s.priority for s in inst.services}) >= 2
    view = build_view(inst)
    assert any(r.delta > 0 for r in view.requests)
    assert any(r.delta < 0 for r in view.requests)


def test_moe_family_has_moe_services_with_groups() -> None:
    inst = generate_instance("moe", 0)
    moe = {s.id for s in inst.services if s.is_moe}
    assert moe
    assert any(g.service in moe for g in inst.groups)


def test_pai2020_fleet_reads_bundled_file() -> None:
    fleet = get_fleet("pai2020")
    assert fleet.gpu_types == ["MISC", "P100", "T4", "V100", "V100M32"]
    assert "CPU" not in fleet.gpu_types
    inst = generate_instance("medium", 0)
    assert {n.gpu_type for n in inst.nodes} <= set(fleet.gpu_types)
    assert {n.gpus_total for n in inst.nodes} == {2, 8}


def test_overrides_and_unknown_names() -> None:
    inst = generate_instance("small", 0, num_nodes=40, fleet="pai2020")
    assert len(inst.nodes) == 40
    with pytest.raises(ValueError, match="family='nope'"):
        generate_instance("nope", 0)
    with pytest.raises(ValueError, match="override 'bogus'"):
        generate_instance("small", 0, bogus=1)
    with pytest.raises(ValueError, match="fleet='nope'"):
        get_fleet("nope")
    assert "h20l20" in fleet_names()
    assert set(FAMILY_DESCRIPTIONS) == set(FAMILIES)


@pytest.mark.parametrize("seed", range(6))
def test_contention_greedy_falls_short(seed: int) -> None:
    # Built so greedy loses priority demand (spill, strict) or burns the high tier (burn).
    inst = generate_instance("contention", seed)
    greedy = hetero_opt.solve(inst, "greedy")
    mode = inst.name.rsplit("-", 1)[1]
    assert mode == ["spill", "strict", "burn"][seed % 3]
    prio = dict(zip(greedy.score.priorities, greedy.score.unserved_gpus, strict=True))
    if mode == "burn":
        assert prio.get(50, 0) == 0
        strict = next(c for c in greedy.plan.changes if c.service == "strict")
        assert build_view(inst).tier_by_s1[f"{strict.domain}-m0"] == "high"
    else:
        assert prio.get(100, 0) == 0
        assert prio[50] > 0


@pytest.fixture(scope="module")
def production() -> tuple[Instance, float]:
    start = time.perf_counter()
    inst = generate_instance("production", 0)
    return inst, time.perf_counter() - start


def test_production_size(production: tuple[Instance, float]) -> None:
    inst, seconds = production
    assert len(inst.nodes) >= 20_000
    assert sum(n.gpus_total for n in inst.nodes) >= 160_000
    assert len({n.s1 for n in inst.nodes}) >= 300
    assert len(inst.services) == 200
    assert len(inst.requests) >= 50
    assert seconds < 30  # generous: about 1 s on the 2-core machine; only guards a blow-up


def test_production_greedy_verifies(production: tuple[Instance, float]) -> None:
    inst, _ = production
    result = hetero_opt.solve(inst, "greedy")
    assert hetero_opt.verify(inst, result.plan) == []
