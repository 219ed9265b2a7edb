"""Behaviour pinned where mutation testing found tests that could not fail (issue 11).

Score's ordering is strict; greedy's scale-in order comes from tiers, not from id order; greedy
scales MoE services in whole replicas per S1.
"""

from __future__ import annotations

import pytest
from conftest import group, make_instance, moe_service, node, pd_service, request

from hetero_opt import Instance, Plan, Score, build_view, score, verify
from hetero_opt.placement.greedy import greedy_plan


def _score(unserved: int = 0, premium: int = 0, new: int = 0, emptied: int = 0, free: int = 0) -> Score:
    return Score(
        priorities=[10],
        unserved_gpus=[unserved],
        premium_cost=premium,
        new_groups=new,
        emptied_groups=emptied,
        whole_free_nodes=free,
    )


@pytest.mark.parametrize(
    ("better", "worse"),
    [
        (_score(unserved=0, premium=99), _score(unserved=1)),  # term 1 beats every later term
        (_score(premium=3, new=9), _score(premium=4)),
        (_score(new=1, emptied=0), _score(new=2, emptied=5)),
        (_score(emptied=2), _score(emptied=1)),  # more emptied groups is better
        (_score(free=3), _score(free=2)),  # more whole free nodes is better
    ],
)
def test_score_order_is_strict_and_follows_the_terms(better: Score, worse: Score) -> None:
    assert better < worse
    assert not worse < better
    assert better <= worse
    assert not worse <= better  # with a broken __eq__ (always True), <= would hold both ways
    assert better != worse
    assert not better < better
    assert better == better.model_copy()
    assert hash(better) == hash(better.model_copy())


def test_score_equality_ignores_nothing_the_key_holds() -> None:
    assert _score(premium=1) != _score(premium=2)
    assert _score() == _score()
    assert _score().__eq__("not a score") is NotImplemented


def _scale_in_instance(target: int) -> Instance:
    # 'a-low': 2 units on low S2 'a'; 'z-high': 2 units on high S1 'h-1' (H20 + L20). Ids sort
    # low-tier first, so only the tier can put 'z-high' first.
    return make_instance(
        nodes=[
            node("a1", "a", "a-1", free=0),
            node("a2", "a", "a-1", free=0),
            node("h1", "h", "h-1", free=0),
            node("h2", "h", "h-1", free=0),
            node("h3", "h", "h-1", "L20"),
        ],
        services=[pd_service("chat", "s2", p_size=4, d_size=4)],
        groups=[
            group("a-low", "chat", "a", ("prefill", "a1", 2), ("decode", "a2", 2)),
            group("z-high", "chat", "h", ("prefill", "h1", 2), ("decode", "h2", 2)),
        ],
        requests=[request("chat", target)],
    )


@pytest.mark.parametrize(
    ("target", "removed", "premium"),
    [
        (3, {"z-high": -1}, -8 * 9),  # 1 unit of 8 GPUs freed on the high tier
        (1, {"z-high": -2, "a-low": -1}, -16 * 9 - 8 * 1),  # high tier emptied first, then low
    ],
)
def test_greedy_scale_in_frees_the_high_tier_first_whatever_the_ids(
    target: int, removed: dict[str, int], premium: int
) -> None:
    inst = _scale_in_instance(target)
    plan = greedy_plan(inst)
    assert {c.group: c.units for c in plan.changes} == removed
    assert score(inst, plan).premium_cost == premium
    assert verify(inst, plan) == []


def test_greedy_scales_a_moe_service_in_by_whole_replicas_from_the_high_tier() -> None:
    # MoE unit: 1 attn + 1 ffn (4 GPUs each) + 1 decode (8). Group 'a-g' (low S2 'a') and 'z-g'
    # (high S1 'h-1', mixed H20/L20) hold 1 unit each; 2 -> 1 removes z-g's unit: 16 GPUs at weight 9.
    inst = make_instance(
        nodes=[
            node("a1", "a", "a-1", free=0),
            node("a2", "a", "a-1", free=0),
            node("h1", "h", "h-1", free=0),
            node("h2", "h", "h-1", free=0),
            node("h3", "h", "h-1", "L20"),
        ],
        services=[moe_service("moe", "s2")],
        groups=[
            group("a-g", "moe", "a", ("prefill-attn", "a1", 1), ("prefill-ffn", "a1", 1), ("decode", "a2", 1)),
            group("z-g", "moe", "h", ("prefill-attn", "h1", 1), ("prefill-ffn", "h1", 1), ("decode", "h2", 1)),
        ],
        requests=[request("moe", 1)],
    )
    plan = greedy_plan(inst)
    (c,) = plan.changes
    assert (c.group, c.units) == ("z-g", -1)
    assert sorted((p.role, p.node, p.count) for p in c.pods) == [
        ("decode", "h2", 1),
        ("prefill-attn", "h1", 1),
        ("prefill-ffn", "h1", 1),
    ]
    assert score(inst, plan).premium_cost == -16 * 9
    assert score(inst, plan).emptied_groups == 1
    assert verify(inst, plan) == []


def test_first_stage_gap_is_the_top_class_above_its_bound() -> None:
    got = Score(
        priorities=[9, 1], unserved_gpus=[16, 8], premium_cost=0, new_groups=0, emptied_groups=0, whole_free_nodes=0
    )
    bound = got.model_copy(update={"unserved_gpus": [8, 0]})
    assert got.first_stage_gap(bound) == 8  # only the top class (16 - 8) counts, not the 8 below
    assert bound.first_stage_gap(bound) == 0
    assert _score().model_copy(update={"priorities": [], "unserved_gpus": []}).first_stage_gap(_score()) == 0


def test_whole_free_nodes_and_emptied_groups_are_counted_by_the_plan() -> None:
    # n1 has 4 of 8 GPUs free, n2 is whole; one unit (2 + 2 GPUs) fits n1 (best fit) and keeps n2
    # whole; the same unit on n2 leaves no whole free node.
    inst = make_instance(
        nodes=[node("n1", "a", "a-1", free=4), node("n2", "a", "a-1")],
        services=[pd_service("chat", "s2", p_size=2, d_size=2)],
        requests=[request("chat", 1)],
    )
    plan = greedy_plan(inst)
    assert {p.node for c in plan.changes for p in c.pods} == {"n1"}
    assert score(inst, plan).whole_free_nodes == 1
    moved = plan.model_copy(
        update={
            "changes": [
                c.model_copy(update={"pods": [p.model_copy(update={"node": "n2"}) for p in c.pods]})
                for c in plan.changes
            ]
        }
    )
    assert verify(inst, moved) == []
    assert score(inst, moved).whole_free_nodes == 0
    assert score(inst, moved) > score(inst, plan)  # term 5 breaks the tie
    # scale-in: emptying a group counts, shrinking one does not
    assert score(_scale_in_instance(2), greedy_plan(_scale_in_instance(2))).emptied_groups == 1
    assert score(_scale_in_instance(3), greedy_plan(_scale_in_instance(3))).emptied_groups == 0


def test_score_terms_on_a_hand_checked_plan() -> None:
    # 'chat' (prio 5) grows its 1-unit group g1 on low S2 'a' by 2 units; decode prefers L20 but only
    # H20 is there: premium per unit = 4 (prefill, weight 1) + 4 × (1 + 2 × rank 1) (decode) = 16.
    # 'big' and 'huge' (prio 5 too, 16 L20 GPUs a unit) find no L20: 16 + 32 unserved GPUs in one class.
    inst = make_instance(
        nodes=[node("a1", "a", "a-1", free=0), node("a2", "a", "a-1"), node("a3", "a", "a-1")],
        services=[
            pd_service("chat", "s2", prio=5, p_size=4, d_size=4, d_types=("L20", "H20")),
            pd_service("big", "s2", prio=5, p_types=("L20",), d_types=("L20",)),
            pd_service("huge", "s2", prio=5, p_types=("L20",), d_types=("L20",)),
        ],
        groups=[group("g1", "chat", "a", ("prefill", "a1", 1), ("decode", "a1", 1))],
        requests=[request("chat", 3), request("big", 1), request("huge", 2)],
    )
    plan = greedy_plan(inst)
    assert {c.group: c.units for c in plan.changes} == {"g1": 2}
    s = score(inst, plan)
    assert s.priorities == [5]
    assert s.unserved_gpus == [16 + 32]  # both services of the class add up
    assert s.premium_cost == 2 * 16
    assert (s.new_groups, s.emptied_groups) == (0, 0)  # growing g1 by more than it holds empties nothing


def test_new_groups_count_one_per_group() -> None:
    inst = make_instance(
        nodes=[node("a1", "a", "a-1"), node("b1", "b", "b-1")],
        services=[pd_service("chat", "s1", p_size=4, d_size=4)],
        requests=[request("chat", 2)],
    )
    plan = greedy_plan(inst)
    assert sorted(c.group for c in plan.changes) == ["chat@a-1", "chat@b-1"]
    assert score(inst, plan).new_groups == 2


def test_greedy_expands_the_subgroup_already_holding_the_service_first() -> None:
    # Two low-tier S2s with room; 'chat' already has a group in 'b' (ids sort 'a' first): the new
    # unit expands g-b instead of opening a group in 'a' (paper §3.4: expand before opening).
    inst = make_instance(
        nodes=[node("a1", "a", "a-1"), node("b1", "b", "b-1", free=0), node("b2", "b", "b-1")],
        services=[pd_service("chat", "s2", p_size=4, d_size=4)],
        groups=[group("g-b", "chat", "b", ("prefill", "b1", 1), ("decode", "b1", 1))],
        requests=[request("chat", 2)],
    )
    plan = greedy_plan(inst)
    assert [(c.group, c.new, c.units) for c in plan.changes] == [("g-b", False, 1)]
    assert score(inst, plan).new_groups == 0


def test_greedy_keeps_its_node_picks_when_binding_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    from hetero_opt.placement import binding
    from hetero_opt.placement.binding import BindingError

    inst = make_instance(
        nodes=[node("a1", "a", "a-1"), node("a2", "a", "a-1")],  # 16 free GPUs: 2 units of 4 + 4
        services=[pd_service("chat", "s2", p_size=4, d_size=4)],
        requests=[request("chat", 2)],
    )

    def refuse(*args: object, **kwargs: object) -> None:
        raise BindingError("sizes outside a divisibility chain")

    monkeypatch.setattr(binding, "bind", refuse)
    plan = greedy_plan(inst)
    assert sum(c.units for c in plan.changes) == 2
    assert sum(p.count for c in plan.changes for p in c.pods) == 4  # 2 units x (1 prefill + 1 decode)
    assert verify(inst, plan) == []


def test_greedy_gives_back_the_pods_of_a_unit_that_does_not_fit() -> None:
    # 'first' (prio 10): prefill 8 H20 fits a1, decode 4 L20 finds no L20 -> the unit fails and its
    # prefill pod is given back; 'second' (prio 1, 4 + 4 H20) then fits a1 (it would not if the 8
    # GPUs stayed taken).
    inst = make_instance(
        nodes=[node("a1", "a", "a-1")],
        services=[
            pd_service("first", "s2", prio=10, p_size=8, d_size=4, d_types=("L20",)),
            pd_service("second", "s2", prio=1, p_size=4, d_size=4),
        ],
        requests=[request("first", 1), request("second", 1)],
    )
    plan = greedy_plan(inst)
    assert [(c.service, c.units) for c in plan.changes] == [("second", 1)]
    assert [u.service for u in plan.unserved] == ["first"]
    assert verify(inst, plan) == []


def _removed(plan: Plan) -> list[tuple[str, str, str, int]]:
    return sorted((c.group, p.role, p.node, p.count) for c in plan.changes for p in c.pods)


def test_greedy_scale_in_removes_the_high_tier_pods_of_a_group_spanning_tiers() -> None:
    # cluster affinity: 'g' holds 1 unit on low S1 'a-1' and 1 on S1 'h-1', declared high; ids sort
    # 'a-1' first, so only the tier removes the unit from 'h-1'
    inst = make_instance(
        nodes=[node("l1", "a", "a-1", free=0), node("h1", "h", "h-1", free=0)],
        subgroups=[{"id": "hi", "tier": "high", "s1s": ["h-1"]}],
        services=[pd_service("chat", "cluster", p_size=4, d_size=4)],
        groups=[
            group(
                "g", "chat", "c", ("prefill", "l1", 1), ("decode", "l1", 1), ("prefill", "h1", 1), ("decode", "h1", 1)
            )
        ],
        requests=[request("chat", 1)],
    )
    plan = greedy_plan(inst)
    assert _removed(plan) == [("g", "decode", "h1", 1), ("g", "prefill", "h1", 1)]
    assert verify(inst, plan) == []


def test_greedy_scale_in_removes_non_preferred_gpu_types_first_and_exactly_k_pods_per_role() -> None:
    # one S1: decode prefers H20; 'g' holds 4 units of 2-GPU pods: decode 2 on a1 + 1 on a3 (H20)
    # and 1 on l1 (L20). Removing 3 units takes the L20 decode, then 2 H20 decodes (have = 2 + 1,
    # summed over both H20 nodes), least-used H20 node (a3) first.
    inst = make_instance(
        nodes=[node("a1", "a", "a-1", free=0), node("a3", "a", "a-1", free=2), node("l1", "a", "a-1", "L20", free=6)],
        services=[pd_service("chat", "s2", p_size=2, d_size=2, d_types=("H20", "L20"))],
        groups=[
            group(
                "g",
                "chat",
                "a",
                ("prefill", "a1", 2),
                ("decode", "a1", 2),
                ("decode", "l1", 1),
                ("prefill", "a3", 2),
                ("decode", "a3", 1),
            )
        ],
        requests=[request("chat", 1)],
    )
    plan = greedy_plan(inst)
    assert [(c.group, c.units) for c in plan.changes] == [("g", -3)]
    assert _removed(plan) == [
        ("g", "decode", "a1", 1),
        ("g", "decode", "a3", 1),
        ("g", "decode", "l1", 1),
        ("g", "prefill", "a1", 1),
        ("g", "prefill", "a3", 2),
    ]
    assert verify(inst, plan) == []


def test_greedy_scale_in_of_moe_takes_whole_replicas_high_tier_s1_first_and_no_more() -> None:
    # MoE with 2 prefill replicas per unit (attn 4 + ffn 4 GPUs each) + 1 decode (8). 'g' (S2 'a')
    # holds 3 replicas on S1 'a-2' (declared high) and 1 on low 'a-1': 2 units. 2 -> 1 removes 2
    # replicas, both from 'a-2' (the higher tier, although 'a-1' sorts first), and nothing on 'a-1'.
    inst = make_instance(
        nodes=[
            node("n1", "a", "a-1", free=0),
            node("n2", "a", "a-2", free=0, total=24),
            node("d2", "a", "a-2", free=0, total=16),
        ],
        subgroups=[{"id": "hi", "tier": "high", "s1s": ["a-2"]}],
        services=[moe_service("moe", "s2", pd=(2, 1))],
        groups=[
            group(
                "g",
                "moe",
                "a",
                ("prefill-attn", "n1", 1),
                ("prefill-ffn", "n1", 1),
                ("prefill-attn", "n2", 3),
                ("prefill-ffn", "n2", 3),
                ("decode", "d2", 2),
            )
        ],
        requests=[request("moe", 1)],
    )
    plan = greedy_plan(inst)
    assert _removed(plan) == [("g", "decode", "d2", 1), ("g", "prefill-attn", "n2", 2), ("g", "prefill-ffn", "n2", 2)]
    assert verify(inst, plan) == []


def test_greedy_scale_in_of_moe_takes_non_preferred_types_first_inside_an_s1() -> None:
    # every MoE role prefers H20 and accepts L20; one replica + decode on each type in S1 'a-1'
    svc = moe_service("moe", "s2")
    for role in svc["roles"]:
        role["gpu_types"] = ["H20", "L20"]
    inst = make_instance(
        nodes=[node("h", "a", "a-1", free=0, total=16), node("l", "a", "a-1", "L20", free=0, total=16)],
        services=[svc],
        groups=[
            group(
                "g",
                "moe",
                "a",
                ("prefill-attn", "h", 1),
                ("prefill-ffn", "h", 1),
                ("decode", "h", 1),
                ("prefill-attn", "l", 1),
                ("prefill-ffn", "l", 1),
                ("decode", "l", 1),
            )
        ],
        requests=[request("moe", 1)],
    )
    plan = greedy_plan(inst)
    assert _removed(plan) == [("g", "decode", "l", 1), ("g", "prefill-attn", "l", 1), ("g", "prefill-ffn", "l", 1)]
    assert verify(inst, plan) == []


@pytest.mark.parametrize(
    ("attn_ffn", "x", "y", "removed"),
    [
        # (attn, ffn) pods per S1 'a-1' (x) and 'a-2' (y), drifted off ratio: every whole replica goes,
        # the extra pods stay; an S1 gives min(replicas left, attn // a, ffn // f) replicas
        ((1, 1), (1, 2), (2, 1), {("attn", "x"): 1, ("ffn", "x"): 1, ("attn", "y"): 1, ("ffn", "y"): 1}),
        ((1, 1), (2, 1), (1, 2), {("attn", "x"): 1, ("ffn", "x"): 1, ("attn", "y"): 1, ("ffn", "y"): 1}),
        ((2, 1), (3, 2), (2, 1), {("attn", "x"): 2, ("ffn", "x"): 1, ("attn", "y"): 2, ("ffn", "y"): 1}),
        ((1, 2), (2, 3), (1, 2), {("attn", "x"): 1, ("ffn", "x"): 2, ("attn", "y"): 1, ("ffn", "y"): 2}),
    ],
)
def test_greedy_scale_in_of_drifted_moe_removes_only_whole_replicas(
    attn_ffn: tuple[int, int], x: tuple[int, int], y: tuple[int, int], removed: dict[tuple[str, str], int]
) -> None:
    # 2 units (2 decode pods on 'd'); 4-GPU attn and ffn pods; target 0
    pods = [
        ("prefill-attn", "x", x[0]),
        ("prefill-ffn", "x", x[1]),
        ("prefill-attn", "y", y[0]),
        ("prefill-ffn", "y", y[1]),
    ]
    inst = make_instance(
        nodes=[
            node("x", "a", "a-1", free=0, total=4 * sum(x)),
            node("y", "a", "a-2", free=0, total=4 * sum(y)),
            node("d", "a", "a-1", free=0, total=16),
        ],
        services=[moe_service("moe", "s2", attn_ffn=attn_ffn)],
        groups=[group("g", "moe", "a", *pods, ("decode", "d", 2))],
        requests=[request("moe", 0)],
    )
    plan = greedy_plan(inst)
    (c,) = plan.changes
    assert c.units == -2
    got = {(p.role.removeprefix("prefill-"), p.node): p.count for p in c.pods if p.role != "decode"}
    assert got == removed
    assert [(p.node, p.count) for p in c.pods if p.role == "decode"] == [("d", 2)]
    assert verify(inst, plan) == []


def test_greedy_scale_in_skips_an_empty_group_of_the_service() -> None:
    # 'a-empty' holds no pods (0 units, sorts first on units and id): the unit comes from 'g'
    inst = make_instance(
        nodes=[node("a1", "a", "a-1", free=0), node("a2", "a", "a-1", free=0)],
        services=[pd_service("chat", "s2", p_size=4, d_size=4)],
        groups=[group("a-empty", "chat", "a"), group("g", "chat", "a", ("prefill", "a1", 2), ("decode", "a2", 2))],
        requests=[request("chat", 1)],
    )
    plan = greedy_plan(inst)
    assert [(c.group, c.units) for c in plan.changes] == [("g", -1)]
    assert plan.unserved == []
    assert verify(inst, plan) == []


def test_greedy_fallback_keeps_the_pods_of_a_scale_in(monkeypatch: pytest.MonkeyPatch) -> None:
    # found by mutation testing: the BindingError fallback kept only the greedy's node picks, and a
    # scale-in draft has none, so its removal change came back without pods
    from hetero_opt.placement import binding
    from hetero_opt.placement.binding import BindingError

    inst = make_instance(
        nodes=[node("a1", "a", "a-1", free=0), node("a2", "a", "a-1", free=0), node("b1", "a", "a-1")],
        services=[pd_service("chat", "s2", p_size=4, d_size=4), pd_service("other", "s2", p_size=4, d_size=4)],
        groups=[group("g", "chat", "a", ("prefill", "a1", 2), ("decode", "a2", 2))],
        requests=[request("chat", 1), request("other", 1)],
    )

    def refuse(*args: object, **kwargs: object) -> None:
        raise BindingError("sizes outside a divisibility chain")

    monkeypatch.setattr(binding, "bind", refuse)
    assert verify(inst, greedy_plan(inst)) == []


def test_greedy_goes_on_after_a_request_already_at_its_target() -> None:
    # 'idle' (prio 9) is at its target (delta 0); 'chat' (prio 1) after it is still served
    inst = make_instance(
        nodes=[node("a1", "a", "a-1", free=0), node("a2", "a", "a-1")],
        services=[
            pd_service("idle", "s2", prio=9, p_size=4, d_size=4),
            pd_service("chat", "s2", prio=1, p_size=4, d_size=4),
        ],
        groups=[group("g", "idle", "a", ("prefill", "a1", 1), ("decode", "a1", 1))],
        requests=[request("idle", 1), request("chat", 1)],
    )
    plan = greedy_plan(inst)
    assert plan.units_by_service() == {"chat": 1}
    assert plan.unserved == []


def test_greedy_all_or_nothing_gives_back_only_its_own_pods() -> None:
    # 'first' (prio 9) takes a1. 'aon' (prio 5, all or nothing, 2 units of 4 + 2 x 2 GPUs) fits once
    # on a2 and is taken back whole, both decode pods of a2 included; 'last' (prio 1, 8 GPUs) then
    # fits a2. 'first' keeps its unit.
    aon = pd_service("aon", "s2", prio=5, p_size=4, d_size=2, ratio=(1, 2))
    inst = make_instance(
        format_version="1.1",
        nodes=[node("a1", "a", "a-1"), node("a2", "a", "a-1")],
        services=[
            pd_service("first", "s2", prio=9, p_size=4, d_size=4),
            aon,
            pd_service("last", "s2", prio=1, p_size=4, d_size=4),
        ],
        requests=[request("first", 1), {**request("aon", 2), "all_or_nothing": True}, request("last", 1)],
    )
    plan = greedy_plan(inst)
    assert plan.units_by_service() == {"first": 1, "last": 1}
    (u,) = plan.unserved
    assert (u.service, u.placed_units) == ("aon", 0)
    assert u.reason.startswith("all or nothing: only 1 of 2 units fit")
    assert verify(inst, plan) == []


def test_greedy_unserved_reasons_name_the_capacity_and_the_new_group_limit() -> None:
    nodes = [node("a1", "a", "a-1"), node("a2", "a", "a-2")]
    s1 = make_instance(nodes=nodes, services=[pd_service("chat", "s1")], requests=[request("chat", 1)])
    (u,) = greedy_plan(s1).unserved
    assert u.reason == "no capacity for 1 more units within s1 affinity and GPU types"
    limited = make_instance(
        nodes=[node("a1", "a", "a-1", free=8, total=16), node("a2", "a", "a-2")],
        services=[pd_service("chat", "s1", p_size=4, d_size=4, max_new_groups=0)],
        groups=[group("g1", "chat", "a-1", ("prefill", "a1", 1), ("decode", "a1", 1))],
        requests=[request("chat", 4)],
    )
    (u,) = greedy_plan(limited).unserved
    assert u.reason == "no capacity for 2 more units within s1 affinity and GPU types; new-group limit 0 reached"


def test_greedy_expands_an_existing_s1_group_before_opening_one_in_its_subgroup() -> None:
    # S1s 'a-1' and 'a-2' share the low subgroup of S2 'a'; the group in 'a-2' (id sorts later) grows
    inst = make_instance(
        nodes=[node("a1", "a", "a-1"), node("b1", "a", "a-2", free=0), node("b2", "a", "a-2")],
        services=[pd_service("chat", "s1", p_size=4, d_size=4)],
        groups=[group("g", "chat", "a-2", ("prefill", "b1", 1), ("decode", "b1", 1))],
        requests=[request("chat", 2)],
    )
    assert [(c.group, c.new, c.units) for c in greedy_plan(inst).changes] == [("g", False, 1)]


def test_greedy_new_group_limit_does_not_count_expanded_groups() -> None:
    # max 1 new group: g (S1 'a-1') takes one more unit, then one new group opens in 'a-2'
    inst = make_instance(
        nodes=[node("a1", "a", "a-1", free=8, total=16), node("b1", "a", "a-2")],
        services=[pd_service("chat", "s1", p_size=4, d_size=4, max_new_groups=1)],
        groups=[group("g", "chat", "a-1", ("prefill", "a1", 1), ("decode", "a1", 1))],
        requests=[request("chat", 3)],
    )
    plan = greedy_plan(inst)
    assert [(c.group, c.new, c.units) for c in plan.changes] == [("chat@a-2", True, 1), ("g", False, 1)]
    assert plan.unserved == []


def test_greedy_moe_unit_whose_second_replica_fails_gives_back_the_first() -> None:
    # 2 replicas per unit; the only node has room for one replica (4 + 4): the second fails, the
    # first goes back, so 'after' (prio 1, 4 + 4 GPUs) fits
    inst = make_instance(
        nodes=[node("n1", "a", "a-1")],
        services=[moe_service("moe", "s2", prio=9, pd=(2, 1)), pd_service("after", "s2", prio=1, p_size=4, d_size=4)],
        requests=[request("moe", 1), request("after", 1)],
    )
    plan = greedy_plan(inst)
    assert plan.units_by_service() == {"after": 1}
    assert [u.service for u in plan.unserved] == ["moe"]


def test_greedy_places_only_the_requests_it_is_given() -> None:
    inst = make_instance(
        nodes=[node("a1", "a", "a-1"), node("a2", "a", "a-1")],
        services=[pd_service("one", "s2", p_size=4, d_size=4), pd_service("two", "s2", p_size=4, d_size=4)],
        requests=[request("one", 1), request("two", 1)],
    )
    view = build_view(inst)
    only_two = [r for r in view.requests if r.service.id == "two"]
    plan = greedy_plan(inst, view, only_two)
    assert plan.units_by_service() == {"two": 1}
    assert plan.unserved == []


def test_gaps_to_the_bound_per_term() -> None:
    # minimised terms: score - bound; maximised ones (emptied groups, whole free nodes): bound - score
    got = Score(
        priorities=[10, 5], unserved_gpus=[16, 8], premium_cost=230, new_groups=3, emptied_groups=1, whole_free_nodes=4
    )
    bound = Score(
        priorities=[10, 5], unserved_gpus=[0, 8], premium_cost=224, new_groups=1, emptied_groups=2, whole_free_nodes=9
    )
    assert got.gaps_to(bound) == {
        "unserved_gpus": [16, 0],
        "premium_cost": 6,
        "new_groups": 2,
        "emptied_groups": 1,
        "whole_free_nodes": 5,
    }
    assert bound.gaps_to(bound) == {
        "unserved_gpus": [0, 0],
        "premium_cost": 0,
        "new_groups": 0,
        "emptied_groups": 0,
        "whole_free_nodes": 0,
    }
