"""The independent verifier: a valid plan passes; each hand-broken plan is caught with its code.

Instance: 'out' (4 + 4 GPU pods on H20, S2 affinity, at most 1 new group) scales 0 -> 2 units into
low S2 'a' (a1, a2, a4 with 8 free GPUs each); 'in' scales 2 -> 1 unit and gives back its group on
the high S1 'h-1'; 'big' (16-GPU L20 units) finds no room and is recorded unserved.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from conftest import group, make_instance, moe_service, node, pd_service, request

from hetero_opt import Instance, Plan, verify
from hetero_opt.placement.greedy import greedy_plan

INST = make_instance(
    nodes=[
        node("a1", "a", "a-1"),
        node("a2", "a", "a-1"),
        node("a4", "a", "a-1"),
        node("a3", "a", "a-2", free=0),
        node("h1", "h", "h-1", free=0),
        node("h2", "h", "h-1", "L20"),
        node("h3", "h", "h-1"),
    ],
    services=[
        pd_service("out", "s2", p_size=4, d_size=4, max_new_groups=1),
        pd_service("in", "s2", p_size=4, d_size=4),
        pd_service("big", "cluster", prio=0, p_types=("L20",), d_types=("L20",)),
    ],
    groups=[
        group("g-lo", "in", "a", ("prefill", "a3", 1), ("decode", "a3", 1)),
        group("g-hi", "in", "h", ("prefill", "h1", 1), ("decode", "h1", 1)),
    ],
    requests=[request("out", 2), request("in", 1), request("big", 1)],
)
PLAN = greedy_plan(INST)

Mutation = Callable[[dict[str, Any]], None]


def change(d: dict[str, Any], gid: str) -> dict[str, Any]:
    """The change of group ``gid`` in a plan dict."""
    return next(c for c in d["changes"] if c["group"] == gid)


def out_group(d: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in d["changes"] if c["service"] == "out")


def test_the_greedy_plan_is_valid() -> None:
    assert verify(INST, PLAN) == []
    assert {c.group: c.units for c in PLAN.changes} == {"out@a": 2, "g-hi": -1}
    assert [u.service for u in PLAN.unserved] == ["big"]


def _all_on_a1(d: dict[str, Any]) -> None:
    # 2 units = 4 pods x 4 GPUs = 16 GPUs on a node with 8 free
    out_group(d)["pods"] = [{"role": "prefill", "node": "a1", "count": 2}, {"role": "decode", "node": "a1", "count": 2}]


def _onto(node_id: str) -> Mutation:
    def mutate(d: dict[str, Any]) -> None:
        out_group(d)["pods"][0]["node"] = node_id

    return mutate


def _broken_ratio(d: dict[str, Any]) -> None:
    pods = out_group(d)["pods"]
    decode = next(p for p in pods if p["role"] == "decode")
    if decode["count"] > 1:
        decode["count"] -= 1
    else:
        pods.remove(decode)


def _too_many_units(d: dict[str, Any]) -> None:
    # a third unit on a4 (free): target 2 allows only 2
    c = out_group(d)
    c["units"] = 3
    c["pods"] += [{"role": "prefill", "node": "a4", "count": 1}, {"role": "decode", "node": "a4", "count": 1}]


def _remove_missing(d: dict[str, Any]) -> None:
    change(d, "g-hi")["pods"][0]["node"] = "h3"  # g-hi has no pods on h3


def _remove_too_many(d: dict[str, Any]) -> None:
    c = change(d, "g-hi")
    c["units"] = -2  # g-hi holds 1 unit
    for p in c["pods"]:
        p["count"] = 2


def _duplicate(d: dict[str, Any]) -> None:
    d["changes"].append(change(d, "g-hi"))


def _two_new_groups(d: dict[str, Any]) -> None:
    # split 'out' over two new groups (S2 'a' and S2 'h'); its limit is 1
    c = out_group(d)
    c["units"] = 1
    c["pods"] = [{"role": "prefill", "node": "a1", "count": 1}, {"role": "decode", "node": "a1", "count": 1}]
    second = {**c, "group": "out@h", "domain": "h"}
    second["pods"] = [{"role": "prefill", "node": "h3", "count": 1}, {"role": "decode", "node": "h3", "count": 1}]
    d["changes"].append(second)


def _no_unserved_record(d: dict[str, Any]) -> None:
    d["unserved"] = []


def _unknown_group(d: dict[str, Any]) -> None:
    out_group(d)["new"] = False  # 'out@a' is not an existing group


def _wrong_direction(d: dict[str, Any]) -> None:
    change(d, "g-hi")["units"] = 1  # 'in' scales in


def _wrong_group_identity(d: dict[str, Any]) -> None:
    change(d, "g-hi")["domain"] = "a"


def _remove_both_groups(d: dict[str, Any]) -> None:
    # 'in' asks 2 -> 1 but the plan also empties g-lo: removes 2 units
    d["changes"].append(
        {
            "service": "in",
            "group": "g-lo",
            "new": False,
            "domain": "a",
            "units": -1,
            "pods": [{"role": "prefill", "node": "a3", "count": 1}, {"role": "decode", "node": "a3", "count": 1}],
        }
    )


def _unknown_node(d: dict[str, Any]) -> None:
    out_group(d)["pods"][0]["node"] = "zz"


def _unknown_role(d: dict[str, Any]) -> None:
    out_group(d)["pods"][0]["role"] = "prefill-attn"  # a role name, not one of 'out'


def _new_reuses_existing_id(d: dict[str, Any]) -> None:
    out_group(d)["group"] = "g-lo"


def _new_group_shrinks(d: dict[str, Any]) -> None:
    c = change(d, "g-hi")
    c["new"], c["group"] = True, "in@h"


def _new_group_in_an_s1(d: dict[str, Any]) -> None:
    out_group(d)["domain"] = "a-1"  # an S1 id; 'out' has S2 affinity


def _served_but_listed(d: dict[str, Any]) -> None:
    d["unserved"].append({"service": "out", "wanted_units": 2, "placed_units": 2, "reason": "x"})


# (case, mutation of the greedy plan, the verifier's exact codes in order: no more, no fewer)
CASES: list[tuple[str, Mutation, list[str]]] = [
    ("node-over-capacity", _all_on_a1, ["node-capacity"]),
    ("wrong-gpu-type", _onto("h2"), ["gpu-type", "affinity"]),  # h2 is L20 under S2 'h'; 'out' takes H20 in 'a'
    ("outside-domain", _onto("h3"), ["affinity"]),  # h3 is H20 but under S2 'h', the group is in 'a'
    ("broken-ratio", _broken_ratio, ["whole-units"]),
    ("too-many-units", _too_many_units, ["target", "unserved-record"]),
    ("remove-missing-pods", _remove_missing, ["remove-missing"]),
    # removes 2 units of a 1-unit group: 2 pods of each role where h1 holds 1 of each
    (
        "remove-more-units-than-held",
        _remove_too_many,
        ["remove-units", "remove-missing", "remove-missing", "target", "unserved-record"],
    ),
    ("remove-more-than-requested", _remove_both_groups, ["target", "unserved-record"]),
    ("duplicated-group", _duplicate, ["duplicate-group", "target", "unserved-record"]),
    ("new-group-limit", _two_new_groups, ["new-groups"]),
    ("missing-unserved-record", _no_unserved_record, ["unserved-record"]),
    ("served-but-listed-unserved", _served_but_listed, ["unserved-record"]),
    ("unknown-group", _unknown_group, ["unknown-group"]),
    ("unknown-node", _unknown_node, ["unknown-node", "whole-units"]),
    ("unknown-role", _unknown_role, ["unknown-role", "whole-units"]),
    ("new-group-reuses-an-id", _new_reuses_existing_id, ["new-group-id"]),
    ("new-group-shrinks", _new_group_shrinks, ["direction"]),
    ("new-group-domain-of-wrong-level", _new_group_in_an_s1, ["affinity"]),
    ("wrong-direction", _wrong_direction, ["direction", "unserved-record"]),
    ("group-identity", _wrong_group_identity, ["group-identity"]),
]


@pytest.mark.parametrize(("case", "mutate", "codes"), CASES, ids=[c[0] for c in CASES])
def test_verifier_catches_a_broken_plan(case: str, mutate: Mutation, codes: list[str]) -> None:
    d = PLAN.model_dump(mode="json")
    mutate(d)
    broken = Plan.model_validate(d)
    assert [v.code for v in verify(INST, broken)] == codes, case


def test_verifier_min_units_no_request_and_a_change_for_a_steady_service() -> None:
    # without a request for 'in', the plan's g-hi change has none: once for the group, once for the service
    inst = INST.replace(requests=[r.model_dump() for r in INST.requests if r.service != "in"])
    assert [str(v) for v in verify(inst, PLAN)] == [
        "[no-request] group 'g-hi': service 'in' has no scaling request",
        "[no-request] service 'in': changed without a scaling request",
    ]
    # 'in' with min_units 1 asks 2 -> 1; removing both groups' units ends at 0 < 1
    d = PLAN.model_dump(mode="json")
    _remove_both_groups(d)
    services = [s.model_dump() | ({"min_units": 1} if s.id == "in" else {}) for s in INST.services]
    inst = INST.replace(services=services)
    assert [str(v) for v in verify(inst, Plan.model_validate(d))] == [
        "[target] service 'in': removes 2 units, request asks 1",
        "[min-units] service 'in': ends at 0 < min 1",
        "[unserved-record] service 'in': places -2 of -1 units without a matching record",
    ]
    # 'in' asks 2 -> 2 (delta 0): any change of its groups goes the wrong way
    requests = [r.model_dump() | ({"target_units": 2} if r.service == "in" else {}) for r in INST.requests]
    inst = INST.replace(requests=requests)
    assert [v.code for v in verify(inst, PLAN)] == ["direction", "unserved-record"]


def test_verifier_catches_a_moe_replica_split_across_s1s() -> None:
    # n1 (a-1) and n2 (a-2) have 8 free GPUs each, n3 (a-3) 8 for decode
    inst: Instance = make_instance(
        nodes=[node("n1", "a", "a-1"), node("n2", "a", "a-2"), node("n3", "a", "a-3")],
        services=[moe_service("moe", "s2")],
        requests=[request("moe", 1)],
    )
    plan = greedy_plan(inst)
    assert verify(inst, plan) == []
    d = plan.model_dump(mode="json")
    pods = d["changes"][0]["pods"]
    attn = next(p for p in pods if p["role"] == "prefill-attn")
    ffn = next(p for p in pods if p["role"] == "prefill-ffn")
    assert attn["node"] == ffn["node"]
    ffn["node"] = "n2" if attn["node"] == "n1" else "n1"
    # each S1 now holds half a replica (attn without ffn, ffn without attn), and the node the ffn pod
    # moved to also holds the 8-GPU decode pod: 8 + 4 GPUs on 8 free
    got = [(v.code, v.entity) for v in verify(inst, Plan.model_validate(d))]
    assert got == [("moe-replica", "S1 'a-1'"), ("moe-replica", "S1 'a-2'"), ("node-capacity", f"node '{ffn['node']}'")]


def test_a_violation_names_its_entity_and_numbers() -> None:
    d = PLAN.model_dump(mode="json")
    _all_on_a1(d)
    (v,) = [v for v in verify(INST, Plan.model_validate(d)) if v.code == "node-capacity"]
    assert str(v) == "[node-capacity] node 'a1': adds 16 GPUs, 8 free"


MESSAGES = {
    "remove-more-units-than-held": [
        "[remove-units] group 'g-hi': removes 2 units, holds 1",
        "[remove-missing] node 'h1': removes 2 decode pods of 'g-hi' but it has 1 there",
        "[remove-missing] node 'h1': removes 2 prefill pods of 'g-hi' but it has 1 there",
        "[target] service 'in': removes 2 units, request asks 1",
        "[unserved-record] service 'in': places -2 of -1 units without a matching record",
    ],
    "remove-missing-pods": ["[remove-missing] node 'h3': removes 1 decode pods of 'g-hi' but it has 0 there"],
    "duplicated-group": [
        "[duplicate-group] group 'g-hi': changed more than once in one plan",
        "[target] service 'in': removes 2 units, request asks 1",
        "[unserved-record] service 'in': places -2 of -1 units without a matching record",
    ],
    "served-but-listed-unserved": ["[unserved-record] service 'out': fully served but listed as unserved"],
    "unknown-group": ["[unknown-group] group 'out@a': not an existing group (and not marked new)"],
    "new-group-reuses-an-id": ["[new-group-id] group 'g-lo': new group reuses an existing group id"],
    "new-group-shrinks": ["[direction] group 'in@h': a new group cannot shrink"],
}


@pytest.mark.parametrize("case", sorted(MESSAGES))
def test_violation_messages_name_the_entity_and_the_numbers(case: str) -> None:
    mutate = next(m for name, m, _ in CASES if name == case)
    d = PLAN.model_dump(mode="json")
    mutate(d)
    assert [str(v) for v in verify(INST, Plan.model_validate(d))] == MESSAGES[case]


def test_checks_go_on_after_a_broken_change() -> None:
    # the first change (by plan order) is broken in each way that skips its own checks; the later,
    # also broken, change of 'out' must still be reported
    for first in (_duplicate_first, _wrong_direction, _unknown_group_first):
        d = PLAN.model_dump(mode="json")
        _onto("h2")(d)
        first(d)
        codes = [v.code for v in verify(INST, Plan.model_validate(d))]
        assert codes.count("gpu-type") == 1, (first.__name__, codes)
    inst = INST.replace(requests=[r.model_dump() for r in INST.requests if r.service != "in"])
    d = PLAN.model_dump(mode="json")
    _onto("h2")(d)
    assert [v.code for v in verify(inst, Plan.model_validate(d))] == [
        "no-request",
        "gpu-type",
        "affinity",
        "no-request",
    ]


def _duplicate_first(d: dict[str, Any]) -> None:
    d["changes"].insert(1, change(d, "g-hi"))  # g-hi, g-hi again, then out@a


def _unknown_group_first(d: dict[str, Any]) -> None:
    change(d, "g-hi")["group"] = "zz"  # not an existing group, listed before out@a


def test_verifier_steady_service_growing_and_min_units_on_scale_in_only() -> None:
    # 'in' asks 2 -> 2 (delta 0) with min_units 2; growing one of its groups is the wrong direction
    # and exceeds the target; shrinking one is the wrong direction and ends below min
    services = [s.model_dump() | ({"min_units": 2} if s.id == "in" else {}) for s in INST.services]
    requests = [r.model_dump() | ({"target_units": 2} if r.service == "in" else {}) for r in INST.requests]
    inst = INST.replace(services=services, requests=requests)
    d = PLAN.model_dump(mode="json")
    _wrong_direction(d)  # g-hi +1
    change(d, "g-hi")["pods"] = [
        {"role": "prefill", "node": "h3", "count": 1},
        {"role": "decode", "node": "h3", "count": 1},
    ]
    assert [v.code for v in verify(inst, Plan.model_validate(d))] == ["direction", "target", "unserved-record"]
    assert [v.code for v in verify(inst, PLAN)] == ["direction", "unserved-record"]  # no min-units: no scale-in


def test_moe_replicas_spread_over_nodes_of_one_s1_are_whole() -> None:
    # 2 units of 1 attn + 1 ffn (4 GPUs each) + 1 decode (8): attn and ffn pods spread over n1 and n2
    # (one pod entry per node), decode on n3 and n4, all in S1 a-1: 2 attn and 2 ffn, whole replicas
    inst: Instance = make_instance(
        nodes=[node("n1", "a", "a-1"), node("n2", "a", "a-1"), node("n3", "a", "a-1"), node("n4", "a", "a-1")],
        services=[moe_service("moe", "s2")],
        requests=[request("moe", 2)],
    )
    plan = Plan.model_validate(
        {
            "changes": [
                {
                    "service": "moe",
                    "group": "moe@a",
                    "new": True,
                    "domain": "a",
                    "units": 2,
                    "pods": [
                        {"role": "prefill-attn", "node": "n1", "count": 1},
                        {"role": "prefill-attn", "node": "n2", "count": 1},
                        {"role": "prefill-ffn", "node": "n1", "count": 1},
                        {"role": "prefill-ffn", "node": "n2", "count": 1},
                        {"role": "decode", "node": "n3", "count": 1},
                        {"role": "decode", "node": "n4", "count": 1},
                    ],
                }
            ]
        }
    )
    assert verify(inst, plan) == []
    # one attn pod fewer: 1 attn and 2 ffn in a-1 (and a unit short)
    broken = plan.model_dump(mode="json")
    broken["changes"][0]["pods"].pop(1)
    assert [v.code for v in verify(inst, Plan.model_validate(broken))] == ["whole-units", "moe-replica"]
