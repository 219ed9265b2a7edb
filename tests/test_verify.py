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


CASES: list[tuple[str, Mutation, str]] = [
    ("node-over-capacity", _all_on_a1, "node-capacity"),
    ("wrong-gpu-type", _onto("h2"), "gpu-type"),  # h2 is L20; 'out' takes only H20
    ("outside-domain", _onto("h3"), "affinity"),  # h3 is H20 but under S2 'h', the group is in 'a'
    ("broken-ratio", _broken_ratio, "whole-units"),
    ("too-many-units", _too_many_units, "target"),
    ("remove-missing-pods", _remove_missing, "remove-missing"),
    ("remove-more-units-than-held", _remove_too_many, "remove-units"),
    ("duplicated-group", _duplicate, "duplicate-group"),
    ("new-group-limit", _two_new_groups, "new-groups"),
    ("missing-unserved-record", _no_unserved_record, "unserved-record"),
    ("unknown-group", _unknown_group, "unknown-group"),
    ("wrong-direction", _wrong_direction, "direction"),
    ("group-identity", _wrong_group_identity, "group-identity"),
]


@pytest.mark.parametrize(("case", "mutate", "code"), CASES, ids=[c[0] for c in CASES])
def test_verifier_catches_a_broken_plan(case: str, mutate: Mutation, code: str) -> None:
    d = PLAN.model_dump(mode="json")
    mutate(d)
    broken = Plan.model_validate(d)
    codes = {v.code for v in verify(INST, broken)}
    assert code in codes, f"{case}: got {codes}"


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
    codes = {v.code for v in verify(inst, Plan.model_validate(d))}
    assert "moe-replica" in codes


def test_a_violation_names_its_entity_and_numbers() -> None:
    d = PLAN.model_dump(mode="json")
    _all_on_a1(d)
    (v,) = [v for v in verify(INST, Plan.model_validate(d)) if v.code == "node-capacity"]
    assert str(v) == "[node-capacity] node 'a1': adds 16 GPUs, 8 free"
