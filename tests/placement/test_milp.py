"""The MILP backend (PuLP + HiGHS / CBC): known optima on small hand-made instances.

Every test runs on both engines (the ``engine`` fixture); every plan passes ``verify`` and is
never worse than the greedy plan. Default weights: tier low 1, medium 3, high 9; a non-preferred
GPU type costs 2 more per GPU per rank.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pulp
import pytest
from conftest import run_backend

from hetero_opt.instance import Instance
from hetero_opt.placement.greedy import greedy_counts, greedy_plan
from hetero_opt.placement.milp import MilpBackend, build_model
from hetero_opt.placement.objective import Score, score
from hetero_opt.placement.plan import Plan
from hetero_opt.placement.solve import solve
from hetero_opt.placement.verify import verify
from hetero_opt.topology import build_view


@pytest.fixture(params=["highs", "cbc"])
def engine(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if not MilpBackend(name).available():
        pytest.skip(f"{name} not available")
    return name


def node(nid: str, gpu: str, free: int, s2: str, s1: str, total: int = 8) -> dict[str, Any]:
    return {"id": nid, "gpu_type": gpu, "gpus_total": total, "gpus_free": free, "cluster": "c", "s2": s2, "s1": s1}


def pd_service(sid: str, prio: int, affinity: str, prefill: tuple[int, list[str]], decode: tuple[int, list[str]],
               **extra: Any) -> dict[str, Any]:  # fmt: skip
    return {
        "id": sid,
        "priority": prio,
        "affinity": affinity,
        "roles": [
            {"name": "prefill", "gpus_per_pod": prefill[0], "gpu_types": prefill[1]},
            {"name": "decode", "gpus_per_pod": decode[0], "gpu_types": decode[1]},
        ],
        "pd_ratio": {"prefill": 1, "decode": 1},
        **extra,
    }


def make(nodes: list[dict[str, Any]], services: list[dict[str, Any]], requests: dict[str, int],
         groups: list[dict[str, Any]] | None = None) -> Instance:  # fmt: skip
    gpus = sorted({n["gpu_type"] for n in nodes} | {t for s in services for r in s["roles"] for t in r["gpu_types"]})
    return Instance.model_validate(
        {
            "format_version": "1.0",
            "gpu_types": [{"id": g} for g in gpus],
            "nodes": nodes,
            "services": services,
            "groups": groups or [],
            "requests": [{"service": s, "target_units": t} for s, t in requests.items()],
        }
    )


def run(instance: Instance, engine: str, **opts: Any) -> tuple[Plan, Score, Score, str, Score | None]:
    """Solve with the backend directly; check the plan; return plan, its score, greedy's, status, bound."""
    out = run_backend(instance, MilpBackend(engine), **{"time_limit": 20.0, **opts})
    assert out.fallback_reason == ""
    assert verify(instance, out.plan) == []
    got, greedy = score(instance, out.plan), score(instance, out.greedy)
    assert got.modelled() <= greedy.modelled()
    return out.plan, got, greedy, out.status, out.bound


def terms(s: Score) -> tuple[object, ...]:
    """Objective terms 1-4 (the fifth, whole free nodes, is decided by binding, not the MILP)."""
    return s.key()[:4]


def greedy_trap() -> Instance:
    """Greedy gives high-priority 'a' the only mixed S1 with room for 'b'.

    'a' (cluster affinity, 4-GPU pods, H800 prefill + L20 decode) wants 2 units; 'b' (S1 affinity,
    8-GPU pods, same types) wants 1 unit and fits only in mixed S1 'h-1'. Medium S2 'm' holds one
    unit of 'a'; the mixed S1s 'h-1' (8 + 8 free) and 'h-2' (4 + 4 free) are high tier.
    """
    nodes = [
        node("m1", "H800", 4, "m", "m-1"),
        node("m2", "L20", 4, "m", "m-2"),
        node("h1a", "H800", 8, "h", "h-1"),
        node("h1b", "L20", 8, "h", "h-1"),
        node("h2a", "H800", 4, "h", "h-2"),
        node("h2b", "L20", 4, "h", "h-2"),
    ]
    services = [
        pd_service("a", 10, "cluster", (4, ["H800"]), (4, ["L20"])),
        pd_service("b", 5, "s1", (8, ["H800"]), (8, ["L20"])),
    ]
    return make(nodes, services, {"a": 2, "b": 1})


def test_serves_the_lower_priority_request_that_greedy_blocks(engine: str) -> None:
    _, got, greedy, status, bound = run(greedy_trap(), engine)
    # Greedy puts a's second unit on 'h-1' (first high S1 by id): b's 16 GPUs stay unserved.
    assert greedy.unserved_gpus == [0, 16]
    assert status == "optimal"
    assert got.unserved_gpus == [0, 0]
    # a: one unit on medium 8*3 = 24, one on 'h-2' 8*9 = 72; b on 'h-1': 16*9 = 144; 24+72+144 = 240
    assert got.premium_cost == 240
    assert got.new_groups == 2  # a@c and b@h-1
    assert bound is not None
    assert terms(bound) == terms(got)


def test_prefers_preferred_type_on_medium_to_third_choice_on_low(engine: str) -> None:
    # Low S2 'l' is all A100 (decode's third choice: 1 + 2*2 = 5 per GPU); medium S2 'm' has an
    # H20 S1 and an L20 S1 (decode's first choice there: 3 per GPU). Prefill only fits on 'l'.
    nodes = [
        node("l1", "A100", 8, "l", "l-1"),
        node("l2", "A100", 8, "l", "l-1"),
        node("m1", "L20", 8, "m", "m-1"),
        node("m2", "H20", 0, "m", "m-2"),
    ]
    svc = pd_service("s", 1, "cluster", (8, ["A100"]), (8, ["L20", "H20", "A100"]))
    _, got, greedy, status, _ = run(make(nodes, [svc], {"s": 1}), engine)
    assert status == "optimal"
    # greedy stays in the low tier: prefill 8*1 + decode 8*(1 + 2*2) = 48
    assert greedy.premium_cost == 48
    # optimum: prefill 8*1 on 'l' + decode 8*3 on 'm-1' = 32
    assert got.premium_cost == 32
    assert got.unserved_gpus == [0]


def moe_service(target_extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "id": "moe",
        "priority": 1,
        "affinity": "s2",
        "roles": [
            {"name": "prefill-attn", "gpus_per_pod": 4, "gpu_types": ["H800"]},
            {"name": "prefill-ffn", "gpus_per_pod": 2, "gpu_types": ["H800"]},
            {"name": "decode", "gpus_per_pod": 4, "gpu_types": ["H800"]},
        ],
        "pd_ratio": {"prefill": 1, "decode": 1},
        "attn_ffn_ratio": {"prefill": 1, "decode": 2},
        **(target_extra or {}),
    }


def test_moe_replica_stays_in_one_s1(engine: str) -> None:
    # One unit = 1 replica (1 attn of 4 GPUs + 2 ffn of 2 GPUs = 8 GPUs in one S1) + 1 decode of 4.
    # S1 'x-1' has 8 free, 'x-2' 4 free, 'x-3' 4 free: one replica fits ('x-1'); a second would have
    # to split across S1s, which is not allowed -> 1 of 2 units, 12 GPUs unserved.
    nodes = [node("n1", "H800", 8, "x", "x-1"), node("n2", "H800", 4, "x", "x-2"), node("n3", "H800", 4, "x", "x-3")]
    plan, got, _, status, _ = run(make(nodes, [moe_service()], {"moe": 2}), engine)
    assert status == "optimal"
    assert got.unserved_gpus == [12]
    assert got.premium_cost == 12  # 12 GPUs, low tier
    (change,) = plan.changes
    on_n1 = {p.role: p.count for p in change.pods if p.node == "n1"}
    assert on_n1 == {"prefill-attn": 1, "prefill-ffn": 2}
    assert plan.unserved[0].placed_units == 1


def test_moe_two_units_fill_two_s1s(engine: str) -> None:
    # Two S1s with 12 free each (8 + 4 nodes): a unit per S1 (replica 8 + decode 4) = 24 GPUs, low tier.
    nodes = [
        node("a1", "H800", 8, "x", "x-1"),
        node("a2", "H800", 4, "x", "x-1"),
        node("b1", "H800", 8, "x", "x-2"),
        node("b2", "H800", 4, "x", "x-2"),
    ]
    _, got, _, status, _ = run(make(nodes, [moe_service()], {"moe": 2}), engine)
    assert status == "optimal"
    assert got.unserved_gpus == [0]
    assert got.premium_cost == 24
    assert got.new_groups == 1


def test_moe_scale_in_removes_a_whole_replica_from_the_premium_s1(engine: str) -> None:
    # Group 'g' (S2 'x', 2 units) has one replica (1 attn + 2 ffn = 8 GPUs) on 'x-1' and one on
    # 'x-2'; its 2 decode pods (4 GPUs each) sit on 'x-3'. An L20 node makes 'x-2' mixed (high, 9);
    # 'x-1' and 'x-3' are then medium (3). Removing 1 unit: replica on 'x-2' 8*9 = 72 + one decode
    # 4*3 = 12 -> premium -84.
    nodes = [
        node("x1", "H800", 0, "x", "x-1"),
        node("x2", "H800", 0, "x", "x-2"),
        node("x2b", "L20", 8, "x", "x-2"),
        node("x3", "H800", 0, "x", "x-3"),
    ]
    pods = [
        {"role": "prefill-attn", "node": "x1", "count": 1},
        {"role": "prefill-ffn", "node": "x1", "count": 2},
        {"role": "prefill-attn", "node": "x2", "count": 1},
        {"role": "prefill-ffn", "node": "x2", "count": 2},
        {"role": "decode", "node": "x3", "count": 2},
    ]
    instance = make(nodes, [moe_service()], {"moe": 1}, [{"id": "g", "service": "moe", "domain": "x", "pods": pods}])
    plan, got, _, status, _ = run(instance, engine)
    assert status == "optimal"
    assert got.premium_cost == -84
    (change,) = plan.changes
    assert {(p.role, p.node): p.count for p in change.pods} == {
        ("prefill-attn", "x2"): 1,
        ("prefill-ffn", "x2"): 2,
        ("decode", "x3"): 1,
    }


def test_no_time_left_keeps_the_greedy_incumbent(engine: str) -> None:
    # A budget too small for any stage: every stage keeps the incumbent (the greedy plan's values),
    # the status says the plan is not proven, and the plan is as good as greedy's.
    instance = greedy_trap()
    out = run_backend(instance, MilpBackend(engine), time_limit=0.001)
    assert out.status == "feasible"
    assert verify(instance, out.plan) == []
    assert terms(score(instance, out.plan)) == terms(score(instance, out.greedy))
    assert "no time left" in out.termination


def scale_in_instance() -> Instance:
    """Service 's' (S1 affinity, 1P + 1D of 8 GPUs = 16 GPUs a unit) holds 3 units in 3 groups.

    'g-low' (2 units) on low S1 'l-1'; 'g-high' (1 unit) on mixed S1 'h-1' (high tier).
    """
    nodes = [
        node("l1", "H20", 0, "l", "l-1"),
        node("l2", "H20", 0, "l", "l-1"),
        node("l3", "H20", 0, "l", "l-1"),
        node("l4", "H20", 0, "l", "l-1"),
        node("h1", "H20", 0, "h", "h-1"),
        node("h2", "L20", 0, "h", "h-1"),
    ]
    svc = pd_service("s", 1, "s1", (8, ["H20"]), (8, ["H20", "L20"]))
    groups = [
        {
            "id": "g-low",
            "service": "s",
            "domain": "l-1",
            "pods": [
                {"role": "prefill", "node": "l1", "count": 1},
                {"role": "prefill", "node": "l2", "count": 1},
                {"role": "decode", "node": "l3", "count": 1},
                {"role": "decode", "node": "l4", "count": 1},
            ],
        },
        {
            "id": "g-high",
            "service": "s",
            "domain": "h-1",
            "pods": [{"role": "prefill", "node": "h1", "count": 1}, {"role": "decode", "node": "h2", "count": 1}],
        },
    ]
    return make(nodes, [svc], {"s": 1}, groups)


def test_scale_in_frees_high_tier_first(engine: str) -> None:
    plan, got, _, status, _ = run(scale_in_instance(), engine)  # remove 2 of 3 units
    assert status == "optimal"
    assert got.unserved_gpus == [0]
    # g-high: prefill 8*9 + decode on L20 8*(9 + 2) = 160; one unit of g-low 16*1 = 16; -160-16 = -176
    assert got.premium_cost == -176
    assert got.emptied_groups == 1
    assert {c.group: c.units for c in plan.changes} == {"g-high": -1, "g-low": -1}


def test_scale_in_empties_a_whole_group_on_ties(engine: str) -> None:
    # Two groups on equal low-tier S1s, holding 2 and 1 units; removing 1 unit costs -16 either way,
    # but taking it from the 1-unit group empties that group.
    nodes = [node(f"n{i}", "H20", 0, "l", "l-1" if i < 4 else "l-2") for i in range(6)]
    svc = pd_service("s", 1, "s1", (8, ["H20"]), (8, ["H20"]))

    def pods(*ids: int) -> list[dict[str, Any]]:
        half = len(ids) // 2
        return [{"role": "prefill" if k < half else "decode", "node": f"n{i}", "count": 1} for k, i in enumerate(ids)]

    groups = [
        {"id": "big", "service": "s", "domain": "l-1", "pods": pods(0, 1, 2, 3)},
        {"id": "small", "service": "s", "domain": "l-2", "pods": pods(4, 5)},
    ]
    plan, got, _, status, _ = run(make(nodes, [svc], {"s": 2}, groups), engine)
    assert status == "optimal"
    assert got.premium_cost == -16
    assert got.emptied_groups == 1
    assert [c.group for c in plan.changes] == ["small"]


def test_expands_existing_group_before_opening_one(engine: str) -> None:
    # Two identical low-tier S1s; the service already has a group on 'l-2'. Same premium (16*1)
    # either way, so the tie is broken by opening no new group.
    nodes = [node("a1", "H20", 8, "l", "l-1"), node("a2", "H20", 8, "l", "l-1")]
    nodes += [node("b1", "H20", 8, "l", "l-2"), node("b2", "H20", 8, "l", "l-2"), node("b3", "H20", 0, "l", "l-2")]
    svc = pd_service("s", 1, "s1", (8, ["H20"]), (8, ["H20"]))
    group = {"id": "g", "service": "s", "domain": "l-2", "pods": [{"role": "prefill", "node": "b3", "count": 1}]}
    plan, got, _, status, _ = run(make(nodes, [svc], {"s": 1}, [group]), engine)
    assert status == "optimal"
    assert (got.premium_cost, got.new_groups) == (16, 0)
    assert [c.group for c in plan.changes] == ["g"]


def test_new_group_limit_caps_spread(engine: str) -> None:
    # S1 affinity, 4 low S1s with room for one unit each, target 4 units but max_new_groups=2.
    nodes = [node(f"n{i}", "H20", 8, "l", f"l-{i // 2}") for i in range(8)]
    svc = pd_service("s", 1, "s1", (8, ["H20"]), (8, ["H20"]), max_new_groups=2)
    plan, got, _, status, _ = run(make(nodes, [svc], {"s": 4}), engine)
    assert status == "optimal"
    assert got.unserved_gpus == [32]  # 2 of 4 units: 2 * 16 GPUs unserved
    assert got.new_groups == 2
    assert "new-group limit 2" in plan.unserved[0].reason


def test_mixed_pod_sizes_pack_exactly(engine: str) -> None:
    # Sizes 2 and 4 (a chain). (S1, H20) has nodes with 6 and 2 free: 4-GPU pods fit only one
    # (6 // 4 = 1); prefill 4 + decode 2 a unit -> one unit, the second unit's 4-GPU pod has no room.
    nodes = [node("n1", "H20", 6, "l", "l-1"), node("n2", "H20", 2, "l", "l-1")]
    svc = pd_service("s", 1, "s1", (4, ["H20"]), (2, ["H20"]))
    _, got, _, status, _ = run(make(nodes, [svc], {"s": 2}), engine)
    assert status == "optimal"
    assert got.unserved_gpus == [6]


def test_non_chain_counts_that_do_not_bind_give_the_greedy_plan() -> None:
    # Sizes 2 and 3 are no chain. A unit = 2 prefill of 3 + 1 decode of 2 = 8 GPUs; two nodes with
    # 4 free pass the relaxed rows (8 <= 8 GPUs, 2 pods of >= 3 <= 2 slots) but the pods do not pack.
    nodes = [node("n1", "H20", 4, "l", "l-1"), node("n2", "H20", 4, "l", "l-1")]
    svc = pd_service("s", 1, "s1", (3, ["H20"]), (2, ["H20"]))
    svc["pd_ratio"] = {"prefill": 2, "decode": 1}
    instance = make(nodes, [svc], {"s": 1})
    result = solve(instance, "milp", time_limit=10)  # the MILP's counts are bound by solve(): they fail
    assert result.status == "fallback"
    assert "cannot bind" in result.fallback_reason
    assert result.plan == greedy_plan(instance)


def test_hint_is_a_feasible_start() -> None:
    instance = greedy_trap()
    view = build_view(instance)
    from hetero_opt.placement.milp.model import hint_values

    values = hint_values(build_model(view), view, greedy_counts(view).drafts)
    assert values is not None  # greedy's counts are expressible and satisfy every row


def test_engines_agree_on_all_terms() -> None:
    instance = greedy_trap()
    highs = run(instance, "highs")
    cbc = run(instance, "cbc")
    assert terms(highs[1]) == terms(cbc[1])


def random_instance(seed: int) -> Instance:
    """Two S2s of mixed and plain S1s, three services with random targets (a cross-check, not a pin)."""
    rng = random.Random(seed)
    nodes = []
    for s2 in ("p", "q"):
        for s1 in range(3):
            for k in range(rng.randint(1, 3)):
                gpu = rng.choice(["H20", "L20"]) if s2 == "q" else "H20"
                nodes.append(node(f"{s2}{s1}{k}", gpu, rng.choice([0, 2, 4, 8]), s2, f"{s2}-{s1}"))
    services = [
        pd_service("a", 3, "s2", (4, ["H20", "L20"]), (2, ["L20", "H20"])),
        pd_service("b", 2, "s1", (8, ["H20"]), (4, ["H20", "L20"])),
        pd_service("c", 2, "cluster", (2, ["L20"]), (2, ["H20"]), max_new_groups=1),
    ]
    return make(nodes, services, {"a": rng.randint(0, 3), "b": rng.randint(0, 2), "c": rng.randint(0, 4)})


@pytest.mark.parametrize("seed", range(8))
def test_random_instances_both_engines_optimal_and_equal(seed: int) -> None:
    instance = random_instance(seed)
    highs = run(instance, "highs")
    cbc = run(instance, "cbc")
    assert highs[3] == cbc[3] == "optimal"
    assert terms(highs[1]) == terms(cbc[1])
    assert highs[4] is not None
    assert terms(highs[4]) == terms(highs[1])  # every stage proven: the bound is the plan's terms


def test_same_seed_same_plan(engine: str) -> None:
    assert run(greedy_trap(), engine, seed=3)[0] == run(greedy_trap(), engine, seed=3)[0]


def test_through_solve_entry_point(engine: str) -> None:
    result = solve(greedy_trap(), "milp" if engine == "highs" else "milp-cbc", time_limit=20)
    assert result.status == "optimal"
    assert result.score.unserved_gpus == [0, 0]
    assert result.solver_version.startswith("pulp ")
    assert result.stats["variables"] > 0


@pytest.mark.filterwarnings("ignore:PULP_CBC_CMD is deprecated:DeprecationWarning")
def test_export_writes_mps_and_lp_that_read_back(engine: str, tmp_path: Path) -> None:
    prefix = str(tmp_path / "model")
    instance = greedy_trap()
    out = run_backend(instance, MilpBackend(engine), time_limit=20, export_model=prefix)
    assert out.status == "optimal"
    lp_text = Path(prefix + ".lp").read_text()
    assert "Minimize" in lp_text
    assert "fix_served_p10" in lp_text  # earlier stages are fixed in the final stage's problem
    # The final stage minimises new groups with every earlier term fixed: the optimum is 2.
    _, prob = pulp.LpProblem.fromMPS(prefix + ".mps")
    prob.solve(pulp.PULP_CBC_CMD(msg=False))
    assert pulp.LpStatus[prob.status] == "Optimal"
    assert round(pulp.value(prob.objective)) == score(instance, out.plan).new_groups == 2


def test_highs_thread_count_can_change_between_solves() -> None:
    # HiGHS sizes a process-wide thread pool on first use; the backend resets it per solve.
    for workers in (2, 1, 3):
        assert run(greedy_trap(), "highs", num_workers=workers)[3] == "optimal"
