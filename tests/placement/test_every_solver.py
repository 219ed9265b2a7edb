"""Behaviour every backend shares, through ``solve()``: run on each solver by the ``solver`` fixture
(greedy included) or the ``exact_solver`` fixture (the solvers that prove small instances optimal).

Each backend returns counts; ``solve()`` binds, verifies and scores them, so every test here checks
the whole seam: the plan verifies, its score is ``score(plan)``, and it is never worse than greedy.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from hetero_opt import Instance, PlacementResult, build_view, score, solve, verify
from placement.test_cpsat import CONTENTION, MOE, NEW_LOW, SCALE_IN, SPLIT, small_instances
from placement.test_milp import greedy_trap, make, moe_service, node, pd_service, scale_in_instance


def solved(inst: Instance, solver: str) -> PlacementResult:
    """``solve()``'s result, checked as every result must be: verified, scored, never worse than greedy."""
    result = solve(inst, solver, time_limit=10.0)
    assert verify(inst, result.plan) == []
    assert result.score == score(inst, result.plan)
    assert result.score <= solve(inst, "greedy").score
    if solver != "greedy":
        assert result.status != "fallback", result.fallback_reason
    return result


# ---------------------------------------------------------------- every solver, greedy included


def test_scale_in_frees_the_high_tier_first(solver: str) -> None:
    # SCALE_IN: removing the high unit saves 16 x 9 = 144, the low one only 16
    result = solved(SCALE_IN, solver)
    assert result.score.premium_cost == -144
    assert sorted(p.node for c in result.plan.changes for p in c.pods) == ["h1", "h2"]


def test_scale_in_takes_the_high_tier_group_then_part_of_the_low(solver: str) -> None:
    # remove 2 of 3 units: g-high (prefill 8*9 + decode on L20 8*(9 + 2) = 160) and one unit of
    # g-low (16*1 = 16): premium -176, g-high emptied
    result = solved(scale_in_instance(), solver)
    assert result.score.premium_cost == -176
    assert result.score.emptied_groups == 1
    assert {c.group: c.units for c in result.plan.changes} == {"g-high": -1, "g-low": -1}


def test_a_moe_replica_stays_in_one_s1(solver: str) -> None:
    # MOE: only one unit fits (S2 'b' has 4 GPUs): the second unit's 16 GPUs unserved; premium 16
    result = solved(MOE, solver)
    assert (result.score.unserved_gpus, result.score.premium_cost) == ([16], 16)
    node_of = {p.role: p.node for c in result.plan.changes for p in c.pods}
    # the replica (attn + ffn) on one of a1, a2 (its own S1), the decode pod on the other
    assert node_of["prefill-attn"] == node_of["prefill-ffn"] != node_of["decode"]
    assert {node_of["prefill-attn"], node_of["decode"]} == {"a1", "a2"}


def test_a_moe_replica_never_splits_across_s1s(solver: str) -> None:
    # A unit = 1 replica (attn 4 + 2 ffn of 2 = 8 GPUs in one S1) + 1 decode of 4. S1 'x-1' has 8
    # free, 'x-2' and 'x-3' 4 each: one replica fits ('x-1'); a second would split -> 12 GPUs unserved.
    nodes = [node("n1", "H800", 8, "x", "x-1"), node("n2", "H800", 4, "x", "x-2"), node("n3", "H800", 4, "x", "x-3")]
    result = solved(make(nodes, [moe_service()], {"moe": 2}), solver)
    assert result.score.unserved_gpus == [12]
    assert result.score.premium_cost == 12  # 12 GPUs, low tier
    (change,) = result.plan.changes
    assert {p.role: p.count for p in change.pods if p.node == "n1"} == {"prefill-attn": 1, "prefill-ffn": 2}
    (short,) = result.plan.unserved
    assert (short.service, short.wanted_units, short.placed_units) == ("moe", 2, 1)


def test_an_existing_group_is_expanded_before_one_is_opened(solver: str) -> None:
    # Two identical low-tier S1s; the service has a group on 'l-2'. Same premium (16*1) either way:
    # opening no new group breaks the tie.
    nodes = [node("a1", "H20", 8, "l", "l-1"), node("a2", "H20", 8, "l", "l-1")]
    nodes += [node("b1", "H20", 8, "l", "l-2"), node("b2", "H20", 8, "l", "l-2"), node("b3", "H20", 0, "l", "l-2")]
    svc = pd_service("s", 1, "s1", (8, ["H20"]), (8, ["H20"]))
    group = {"id": "g", "service": "s", "domain": "l-2", "pods": [{"role": "prefill", "node": "b3", "count": 1}]}
    result = solved(make(nodes, [svc], {"s": 1}, [group]), solver)
    assert (result.score.premium_cost, result.score.new_groups) == (16, 0)
    assert [c.group for c in result.plan.changes] == ["g"]


def test_the_new_group_limit_caps_the_spread(solver: str) -> None:
    # S1 affinity, 4 low S1s with room for one unit each; 4 units asked, at most 2 new groups
    nodes = [node(f"n{i}", "H20", 8, "l", f"l-{i // 2}") for i in range(8)]
    svc = pd_service("s", 1, "s1", (8, ["H20"]), (8, ["H20"]), max_new_groups=2)
    result = solved(make(nodes, [svc], {"s": 4}), solver)
    assert result.score.unserved_gpus == [32]  # 2 of 4 units: 2 * 16 GPUs unserved
    assert result.score.new_groups == 2
    assert "new-group limit 2" in result.plan.unserved[0].reason


def test_mixed_pod_sizes_pack_exactly(solver: str) -> None:
    # Sizes 2 and 4 (a chain). Nodes with 6 and 2 free: one 4-GPU pod fits (6 // 4 = 1); a unit is
    # prefill 4 + decode 2 -> one unit, 6 GPUs of the second unserved.
    nodes = [node("n1", "H20", 6, "l", "l-1"), node("n2", "H20", 2, "l", "l-1")]
    svc = pd_service("s", 1, "s1", (4, ["H20"]), (2, ["H20"]))
    assert solved(make(nodes, [svc], {"s": 2}), solver).score.unserved_gpus == [6]


def test_the_same_seed_gives_the_same_plan(solver: str) -> None:
    for inst in (CONTENTION, SPLIT, NEW_LOW, greedy_trap()):
        assert solve(inst, solver, seed=3).plan == solve(inst, solver, seed=3).plan


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(small_instances())
def test_random_plans_verify_and_are_never_worse_than_greedy(solver: str, inst: Instance) -> None:
    result = solved(inst, solver)
    placed = result.plan.units_by_service()
    for req in build_view(inst).requests:  # whole requests or part of them, never past the target
        units = placed.get(req.service.id, 0)
        assert 0 <= units <= req.delta or req.delta <= units <= 0
        short = [u for u in result.plan.unserved if u.service == req.service.id]
        assert [(u.wanted_units, u.placed_units) for u in short] == ([] if units == req.delta else [(req.delta, units)])


# ---------------------------------------------------------------- the solvers that prove optimality


def test_priority_contention_serves_both_where_greedy_serves_one(exact_solver: str) -> None:
    # CONTENTION: greedy gives 'hi' the H20 nodes and 'lo' finds none ([0, 16]); the optimum puts 'hi'
    # on L20 (16 x (1 + 2) = 48) and 'lo' on H20 (16 x 1): premium 64, all served
    assert solve(CONTENTION, "greedy").score.unserved_gpus == [0, 16]
    result = solved(CONTENTION, exact_solver)
    assert (result.score.unserved_gpus, result.score.premium_cost) == ([0, 0], 64)
    assert result.status == "optimal"
    assert result.bound is not None
    assert (result.bound.unserved_gpus, result.bound.premium_cost) == ([0, 0], 64)


def test_a_unit_split_across_tiers_beats_greedy_in_the_medium_tier(exact_solver: str) -> None:
    # SPLIT: greedy puts the unit in medium 'b' (16 x 3 = 48); 8 x 1 + 8 x 3 = 32 split across tiers
    assert solve(SPLIT, "greedy").score.premium_cost == 48
    result = solved(SPLIT, exact_solver)
    assert result.score.premium_cost == 32
    assert "a1" in {p.node for c in result.plan.changes for p in c.pods}


def test_a_new_group_in_the_low_tier_beats_expanding_in_the_high_tier(exact_solver: str) -> None:
    # NEW_LOW: a new group on low 'a-1' costs 16 x 1 = 16 (+1 group); expanding on high 16 x 9 = 144
    result = solved(NEW_LOW, exact_solver)
    assert (result.score.premium_cost, result.score.new_groups) == (16, 1)
    assert [(c.group, c.new, c.domain) for c in result.plan.changes] == [("chat@a-1", True, "a-1")]


def test_the_lower_class_greedy_blocks_is_served(exact_solver: str) -> None:
    # greedy_trap: greedy puts a's second unit on 'h-1' and b's 16 GPUs stay unserved. Optimum: a on
    # medium 8*3 = 24 and 'h-2' 8*9 = 72, b on 'h-1' 16*9 = 144: 240, two new groups
    assert solve(greedy_trap(), "greedy").score.unserved_gpus == [0, 16]
    result = solved(greedy_trap(), exact_solver)
    assert result.status == "optimal"
    assert (result.score.unserved_gpus, result.score.premium_cost, result.score.new_groups) == ([0, 0], 240, 2)
    assert result.bound is not None
    assert result.bound.key()[:4] == result.score.key()[:4]


def test_the_preferred_type_in_the_medium_tier_beats_the_third_choice_in_the_low(exact_solver: str) -> None:
    # Low 'l' is all A100 (decode's third choice: 1 + 2*2 = 5 a GPU); medium 'm-1' is L20 (decode's
    # first: 3 a GPU). Greedy stays low: 8*1 + 8*5 = 48; optimum prefill on 'l' + decode on 'm-1': 32
    nodes = [
        node("l1", "A100", 8, "l", "l-1"),
        node("l2", "A100", 8, "l", "l-1"),
        node("m1", "L20", 8, "m", "m-1"),
        node("m2", "H20", 0, "m", "m-2"),
    ]
    inst = make(nodes, [pd_service("s", 1, "cluster", (8, ["A100"]), (8, ["L20", "H20", "A100"]))], {"s": 1})
    assert solve(inst, "greedy").score.premium_cost == 48
    result = solved(inst, exact_solver)
    assert (result.score.unserved_gpus, result.score.premium_cost) == ([0], 32)


def test_moe_units_fill_two_s1s(exact_solver: str) -> None:
    # Two S1s with 12 free each (8 + 4 nodes): a unit per S1 (replica 8 + decode 4), 24 GPUs low tier
    nodes = [
        node("a1", "H800", 8, "x", "x-1"),
        node("a2", "H800", 4, "x", "x-1"),
        node("b1", "H800", 8, "x", "x-2"),
        node("b2", "H800", 4, "x", "x-2"),
    ]
    result = solved(make(nodes, [moe_service()], {"moe": 2}), exact_solver)
    assert (result.score.unserved_gpus, result.score.premium_cost, result.score.new_groups) == ([0], 24, 1)


def test_moe_scale_in_removes_a_whole_replica_from_the_premium_s1(exact_solver: str) -> None:
    # Group 'g' has a replica (1 attn + 2 ffn = 8 GPUs) on 'x-1' and one on 'x-2' (mixed with L20:
    # high, 9); its 2 decode pods on 'x-3' (medium, 3). Removing 1 unit: the replica on 'x-2' 8*9 = 72
    # plus one decode 4*3 = 12 -> premium -84
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
    inst = make(nodes, [moe_service()], {"moe": 1}, [{"id": "g", "service": "moe", "domain": "x", "pods": pods}])
    result = solved(inst, exact_solver)
    assert result.score.premium_cost == -84
    (change,) = result.plan.changes
    assert {(p.role, p.node): p.count for p in change.pods} == {
        ("prefill-attn", "x2"): 1,
        ("prefill-ffn", "x2"): 2,
        ("decode", "x3"): 1,
    }


def test_scale_in_empties_a_whole_group_on_ties(exact_solver: str) -> None:
    # Two groups on equal low S1s holding 2 and 1 units; removing 1 unit saves 16 either way, but
    # taking it from the 1-unit group empties that group
    nodes = [node(f"n{i}", "H20", 0, "l", "l-1" if i < 4 else "l-2") for i in range(6)]

    def pods(*ids: int) -> list[dict[str, object]]:
        half = len(ids) // 2
        return [{"role": "prefill" if k < half else "decode", "node": f"n{i}", "count": 1} for k, i in enumerate(ids)]

    groups = [
        {"id": "big", "service": "s", "domain": "l-1", "pods": pods(0, 1, 2, 3)},
        {"id": "small", "service": "s", "domain": "l-2", "pods": pods(4, 5)},
    ]
    inst = make(nodes, [pd_service("s", 1, "s1", (8, ["H20"]), (8, ["H20"]))], {"s": 2}, groups)
    result = solved(inst, exact_solver)
    assert (result.score.premium_cost, result.score.emptied_groups) == (-16, 1)
    assert [c.group for c in result.plan.changes] == ["small"]
