"""Node binding pinned on hand-made cells (issue 11: mutation testing of ``placement/binding.py``).

Best-fit decreasing with ties by node id, exact packing where best fit strands a pod, removals from
the least-used nodes first, and the errors naming what does not fit.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from conftest import group, make_instance, node, pd_service, request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hetero_opt import Plan, build_view, verify
from hetero_opt.placement.binding import BindingError, Counts, FreePool, GroupDraft, _best_fit, bind, bind_plan


def test_free_pool_takes_the_fullest_node_that_fits_lowest_id_first_and_takes_back() -> None:
    pool = FreePool([("n3", 4), ("n1", 8), ("n2", 4), ("n0", 0)])
    assert pool.max_free == 8
    assert pool.take(4) == "n2"  # two nodes with 4 free: the lower id
    assert pool.take(2) == "n3"  # 4 free is the best fit for 2
    assert pool.take(2) == "n3"  # now exactly 2 free
    assert pool.take(8) == "n1"
    assert pool.take(1) is None
    assert pool.free == {"n0": 0, "n1": 0, "n2": 0, "n3": 0}
    pool.give("n3", 2)  # a node that was full
    pool.give("n2", 4)
    assert pool.free == {"n0": 0, "n1": 0, "n2": 4, "n3": 2}
    assert pool.take(2) == "n3"
    assert pool.take(3) == "n2"
    assert pool.take(1) == "n2"
    assert pool.take(1) is None


def test_free_pool_counts_its_free_gpus_and_refuses_a_pod_larger_than_them_at_once() -> None:
    pool = FreePool([("n1", 2), ("n2", 2)])
    assert pool.total == 4
    assert pool.take(3) is None  # 4 free GPUs, but no node holds 3
    assert pool.take(2) == "n1"
    assert pool.total == 2
    pool.give("n1", 2)
    assert pool.total == 4
    assert pool.take(2) == "n1"
    assert pool.take(2) == "n2"
    assert (pool.total, pool.take(1)) == (0, None)


# n1 has 6 free GPUs, n2 4, n3 2: 'a' (1 + 1 pods of 3) and 'b' (1 + 2 pods of 2) fill them exactly
# as n1 = 3 + 3, n2 = 2 + 2, n3 = 2. Best fit puts the first 3 on n2 (the fullest that fits) and
# strands the last 2-GPU pod; sizes 2 and 3 are no divisibility chain, so the exact packing runs
# on the pool as it was before best fit (a node whose free GPUs equal a pod size included).
EXACT = make_instance(
    nodes=[node("n1", "a", "a-1", free=6), node("n2", "a", "a-1", free=4), node("n3", "a", "a-1", free=2)],
    services=[
        pd_service("a", "s1", p_size=3, d_size=3),
        pd_service("b", "s1", prio=5, p_size=2, d_size=2, ratio=(1, 2)),
    ],
    requests=[request("a", 1), request("b", 1)],
)
A_DRAFT = GroupDraft("a", "a@a-1", True, "a-1", 1, Counter({("prefill", "a-1", "H20"): 1, ("decode", "a-1", "H20"): 1}))
B_DRAFT = GroupDraft("b", "b@a-1", True, "a-1", 1, Counter({("prefill", "a-1", "H20"): 1, ("decode", "a-1", "H20"): 2}))


def test_exact_packing_fills_every_node_to_the_last_gpu() -> None:
    view = build_view(EXACT)
    changes = bind(view, [A_DRAFT, B_DRAFT])
    gpus: Counter[tuple[str, str]] = Counter()
    for c in changes:
        size = 3 if c.service == "a" else 2
        for p in c.pods:
            gpus[(c.service, p.node)] += size * p.count
    assert gpus == {("a", "n1"): 6, ("b", "n2"): 4, ("b", "n3"): 2}
    assert [(c.group, c.units, sum(p.count for p in c.pods)) for c in changes] == [("a@a-1", 1, 2), ("b@a-1", 1, 3)]
    assert verify(EXACT, Plan(changes=changes), view) == []


def test_best_fit_decreasing_binds_a_chain_largest_first_onto_the_fullest_node() -> None:
    # sizes 4 and 2 form a chain: 4 -> n2 (4 free, exact), 4 -> n1 (8 free), 2 and 2 -> n1
    inst = make_instance(
        nodes=[node("n1", "a", "a-1"), node("n2", "a", "a-1", free=4)],
        services=[pd_service("s", "s1", p_size=4, d_size=2, ratio=(2, 2))],
        requests=[request("s", 1)],
    )
    draft = GroupDraft(
        "s", "s@a-1", True, "a-1", 1, Counter({("prefill", "a-1", "H20"): 2, ("decode", "a-1", "H20"): 2})
    )
    (c,) = bind(build_view(inst), [draft])
    assert [(p.role, p.node, p.count) for p in c.pods] == [
        ("decode", "n1", 2),
        ("prefill", "n1", 1),
        ("prefill", "n2", 1),
    ]


def test_additions_that_do_not_fit_name_the_group_role_and_cell() -> None:
    view = build_view(EXACT)
    no_room = GroupDraft("b", "b@a-1", True, "a-1", 1, Counter({("decode", "a-1", "L20"): 1}))  # no L20 node
    with pytest.raises(BindingError, match=r"^cannot bind decode pods of 'b@a-1' on S1 'a-1' \(L20\)$"):
        bind(view, [no_room])
    too_many = GroupDraft("a", "a@a-1", True, "a-1", 1, Counter({("decode", "a-1", "H20"): 5}))  # 15 of 12 GPUs
    with pytest.raises(BindingError, match=r"^cannot bind decode pods of 'a@a-1' on S1 'a-1' \(H20\)$"):
        bind(view, [B_DRAFT, too_many])
    # a 0-count entry adds no pod: it neither joins the cell's sizes nor is named by the error
    zero = GroupDraft("a", "a@a-1", True, "a-1", 1, Counter({("decode", "a-1", "H20"): 0}))
    seven = GroupDraft("b", "b@a-1", True, "a-1", 1, Counter({("decode", "a-1", "H20"): 7}))  # 14 of 12 GPUs
    with pytest.raises(BindingError, match=r"^cannot bind decode pods of 'b@a-1' on S1 'a-1' \(H20\)$"):
        bind(view, [zero, seven])


def _removal_instance() -> tuple[list[dict[str, object]], dict[str, object]]:
    # 'g' holds 3 units (4-GPU pods): 'full' (id first) uses its 16 GPUs, 'half' 8 of 16.
    nodes = [node("full", "a", "a-1", free=0, total=16), node("half", "a", "a-1", free=8, total=16)]
    g = group(
        "g", "chat", "a", ("prefill", "full", 2), ("decode", "half", 1), ("prefill", "half", 1), ("decode", "full", 2)
    )
    return nodes, g


def test_removal_takes_pods_from_the_least_used_node_first() -> None:
    nodes, g = _removal_instance()
    inst = make_instance(nodes=nodes, services=[pd_service("chat", "s2", p_size=4, d_size=4)], groups=[g])
    draft = GroupDraft(
        "chat", "g", False, "a", -2, Counter({("prefill", "a-1", "H20"): 2, ("decode", "a-1", "H20"): 2})
    )
    (c,) = bind(build_view(inst), [draft])
    assert [(p.role, p.node, p.count) for p in c.pods] == [
        ("decode", "full", 1),
        ("decode", "half", 1),
        ("prefill", "full", 1),
        ("prefill", "half", 1),
    ]


def test_removing_more_pods_than_the_group_holds_names_the_group_role_and_s1() -> None:
    nodes, g = _removal_instance()
    inst = make_instance(nodes=nodes, services=[pd_service("chat", "s2", p_size=4, d_size=4)], groups=[g])
    draft = GroupDraft("chat", "g", False, "a", -4, Counter({("decode", "a-1", "H20"): 4}))
    with pytest.raises(BindingError, match=r"^group 'g' has too few decode pods on S1 'a-1' to remove$"):
        bind(build_view(inst), [draft])


def test_an_empty_pool_fits_nothing() -> None:
    assert FreePool([]).take(1) is None


def test_a_non_chain_cell_that_best_fit_fills_is_bound_once() -> None:
    # sizes 3 and 2 (no chain) on one node with 5 free GPUs: best fit succeeds, nothing else runs
    inst = make_instance(
        nodes=[node("n1", "a", "a-1", free=5)],
        services=[pd_service("s", "s1", p_size=3, d_size=2)],
        requests=[request("s", 1)],
    )
    draft = GroupDraft(
        "s", "s@a-1", True, "a-1", 1, Counter({("prefill", "a-1", "H20"): 1, ("decode", "a-1", "H20"): 1})
    )
    (c,) = bind(build_view(inst), [draft])
    assert [(p.role, p.node, p.count) for p in c.pods] == [("decode", "n1", 1), ("prefill", "n1", 1)]


def test_a_removal_before_an_addition_and_a_zero_unit_draft_bind_in_order() -> None:
    nodes, g = _removal_instance()
    inst = make_instance(
        nodes=[*nodes, node("free", "a", "a-1")],
        services=[pd_service("chat", "s2", p_size=4, d_size=4), pd_service("new", "s2", p_size=4, d_size=4)],
        groups=[g],
    )
    drafts = [
        GroupDraft("chat", "g", False, "a", -1, Counter({("prefill", "a-1", "H20"): 1, ("decode", "a-1", "H20"): 1})),
        GroupDraft("new", "new@a", True, "a", 0, Counter({("prefill", "a-1", "H20"): 1})),  # 0 units: no pods
        GroupDraft(
            "new", "new@a#2", True, "a", 1, Counter({("prefill", "a-1", "H20"): 1, ("decode", "a-1", "H20"): 1})
        ),
    ]
    changes = bind(build_view(inst), drafts)
    assert [(c.group, c.units, [(p.role, p.node, p.count) for p in c.pods]) for c in changes] == [
        ("g", -1, [("decode", "half", 1), ("prefill", "half", 1)]),
        ("new@a", 0, []),
        ("new@a#2", 1, [("decode", "half", 1), ("prefill", "half", 1)]),  # 'free' is kept whole
    ]


# ---------------------------------------------------------------- bind_plan: counts to a sorted plan


def test_bind_plan_derives_unserved_from_the_counts_with_the_backends_words() -> None:
    # 'a' wants 1 unit and gets it; 'b' wants 1 and gets none: its record says wanted 1, placed 0,
    # in the backend's words; without words, a default naming the missing units
    view = build_view(EXACT)
    plan = bind_plan(view, Counts([A_DRAFT], {"b": "stub: b does not fit"}))
    assert [(u.service, u.wanted_units, u.placed_units, u.reason) for u in plan.unserved] == [
        ("b", 1, 0, "stub: b does not fit")
    ]
    (record,) = bind_plan(view, Counts([A_DRAFT])).unserved
    assert record.reason == "no capacity for 1 more units within s1 affinity"


def test_bind_plan_sorts_changes_and_pods_whatever_the_order_of_the_counts() -> None:
    view = build_view(EXACT)
    plan = bind_plan(view, Counts([B_DRAFT, A_DRAFT]))
    assert plan == plan.canonical()
    assert [c.service for c in plan.changes] == ["a", "b"]
    assert plan.unserved == []
    assert verify(EXACT, plan) == []


def test_bind_plan_falls_back_on_known_node_picks_only_where_binding_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    from hetero_opt.placement import binding

    view = build_view(EXACT)
    picks: list[Counter[tuple[str, str]]] = [Counter({("prefill", "n1"): 1, ("decode", "n1"): 1})]
    assert bind_plan(view, Counts([A_DRAFT], picks=picks)) == bind_plan(view, Counts([A_DRAFT]))  # binding won

    def refuse(*args: object, **kwargs: object) -> None:
        raise BindingError("refused")

    monkeypatch.setattr(binding, "bind", refuse)
    (change,) = bind_plan(view, Counts([A_DRAFT], picks=picks)).changes
    assert [(p.role, p.node, p.count) for p in change.pods] == [("decode", "n1", 1), ("prefill", "n1", 1)]
    with pytest.raises(BindingError, match="refused"):
        bind_plan(view, Counts([A_DRAFT]))


# --- Whole free nodes (term 5): the fewest whole nodes when a cell's nodes differ ----------------


def _whole_left(inst: Any, plan: Plan) -> int:
    used = {p.node for c in plan.changes if c.units > 0 for p in c.pods}
    return sum(1 for n in inst.nodes if n.gpus_free == n.gpus_total and n.id not in used)


def test_two_small_whole_nodes_give_way_to_one_large_one() -> None:
    # A unit of one 1-GPU prefill and one 2-GPU decode pod, in a cell of whole nodes n8 (8 GPUs), n2 (2)
    # and m1 (1). Best fit: decode on n2, prefill on m1, two whole nodes used and one kept (n8). The
    # fewest whole nodes that hold the unit: n8 alone, two kept whole (term 5 counts nodes, not GPUs).
    inst = make_instance(
        nodes=[
            node("n8", "a", "a-1"),
            node("n2", "a", "a-1", free=2, total=2),
            node("m1", "a", "a-1", free=1, total=1),
        ],
        services=[pd_service("a", "s1", p_size=1, d_size=2)],
        requests=[request("a", 1)],
    )
    view = build_view(inst)
    counts = Counter({("prefill", "a-1", "H20"): 1, ("decode", "a-1", "H20"): 1})
    plan = bind_plan(view, Counts([GroupDraft("a", "a-new", True, "a-1", 1, counts)]))
    assert verify(inst, plan, view) == []
    assert [(p.role, p.node, p.count) for p in plan.changes[0].pods] == [("decode", "n8", 1), ("prefill", "n8", 1)]
    assert _whole_left(inst, plan) == 2


def test_used_nodes_are_filled_before_a_whole_one_is_touched() -> None:
    # n1 is in use with 4 of 16 GPUs free; n4 is a whole 4-GPU node. Best fit puts a 4-GPU pod on the
    # tightest fit, which both are (4 free): by id, n1 (no whole node used). With n4 listed first
    # (id a4), best fit takes the whole node; binding moves the pod to the used node.
    inst = make_instance(
        nodes=[node("a4", "a", "a-1", free=4, total=4), node("n1", "a", "a-1", free=4, total=16)],
        services=[pd_service("a", "s1", p_size=4, d_size=4, ratio=(1, 1))],
        requests=[request("a", 1)],
    )
    view = build_view(inst)
    counts = Counter({("prefill", "a-1", "H20"): 1})
    plan = bind_plan(view, Counts([GroupDraft("a", "a-new", True, "a-1", 1, counts)]))
    assert [(p.node, p.count) for p in plan.changes[0].pods] == [("n1", 1)]
    assert _whole_left(inst, plan) == 1


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    nodes=st.lists(st.tuples(st.sampled_from([1, 2, 4, 8]), st.integers(0, 8)), min_size=1, max_size=7),
    pods=st.lists(st.sampled_from([1, 2, 4]), min_size=1, max_size=6),
)
def test_binding_never_keeps_fewer_nodes_whole_than_best_fit(nodes: list[tuple[int, int]], pods: list[int]) -> None:
    """On one cell of random node sizes and free GPUs: a valid binding whenever best fit finds one, and
    never fewer whole nodes than best fit alone leaves."""
    cell = [(f"n{i}", total, min(free, total)) for i, (total, free) in enumerate(nodes)]
    inst = make_instance(  # a full 8-GPU node elsewhere: every pod size is valid
        nodes=[*(node(n, "a", "a-1", free=f, total=total) for n, total, f in cell), node("z", "b", "b-1", free=0)],
        services=[pd_service(f"s{size}", "s1", p_size=size, d_size=size) for size in sorted(set(pods))],
        requests=[request(f"s{size}", 1) for size in sorted(set(pods))],
    )
    view = build_view(inst)
    drafts = [
        GroupDraft(f"s{size}", f"s{size}-new", True, "a-1", 1, Counter({("prefill", "a-1", "H20"): pods.count(size)}))
        for size in sorted(set(pods))
    ]
    items = sorted((-size, i, "prefill", pods.count(size)) for i, size in enumerate(sorted(set(pods))))
    alone = _best_fit(FreePool.of(view, ("a-1", "H20")), items)
    if alone is None:
        with pytest.raises(BindingError):
            bind(view, drafts)
        return
    changes = bind(view, drafts)
    used = Counter[str]()
    for d, c in zip(drafts, changes, strict=True):
        size = int(d.service[1:])
        assert sum(p.count for p in c.pods) == d.counts[("prefill", "a-1", "H20")]
        for p in c.pods:
            used[p.node] += p.count * size
    free = {n: f for n, _, f in cell}
    assert all(used[n] <= free[n] for n in used)
    whole = {n for n, total, f in cell if f == total}
    assert len(whole - set(used)) >= len(whole - {n for _, _, n in alone})
