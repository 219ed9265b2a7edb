"""Applying a plan: the instance after it, and a plan that does not fit refused with one line naming the group,
node and numbers (the verifier's rules where they apply), never a ``KeyError`` or an instance with negative free GPUs.

Instance: S2 'a' with node n1 (full: group g1 holds 1 prefill + 1 decode pod of 4 GPUs there), n2 (8 free H20)
and n3 (8 free L20, which 'chat' does not take).
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import group, make_instance, node, pd_service

from hetero_opt import InputError, Plan, apply_plan, score
from hetero_opt.instance import pods_by_role

INST = make_instance(
    nodes=[node("n1", "a", "a-1", free=0), node("n2", "a", "a-1"), node("n3", "a", "a-2", "L20")],
    services=[pd_service("chat", "s2", p_size=4, d_size=4)],
    groups=[group("g1", "chat", "a", ("prefill", "n1", 1), ("decode", "n1", 1))],
)


def plan(units: int, *pods: tuple[str, str, int], gid: str = "g1", new: bool = False, **change: Any) -> Plan:
    """A plan of one change of 'chat' in S2 'a'; ``pods`` are (role, node, count)."""
    pod_changes = [{"role": r, "node": n, "count": c} for r, n, c in pods]
    base = {"service": "chat", "group": gid, "new": new, "domain": "a", "units": units, "pods": pod_changes}
    return Plan.model_validate({"changes": [{**base, **change}]})


GROW = plan(1, ("prefill", "n2", 1), ("decode", "n2", 1))  # g1 + 1 unit on n2: its 8 free GPUs
SHRINK = plan(-1, ("prefill", "n1", 1), ("decode", "n1", 1))  # g1 - its only unit


def free(inst: Any) -> dict[str, int]:
    return {n.id: n.gpus_free for n in inst.nodes}


def test_a_plan_that_fits_is_applied() -> None:
    grown = apply_plan(INST, GROW)
    assert free(grown) == {"n1": 0, "n2": 0, "n3": 8}
    assert pods_by_role(grown.groups[0]) == {"prefill": 2, "decode": 2}
    assert apply_plan(INST, SHRINK).groups == []  # an emptied group disappears
    assert free(apply_plan(INST, SHRINK))["n1"] == 8
    assert free(apply_plan(INST, SHRINK, release_removed=False))["n1"] == 0


def test_a_plan_applied_twice_is_refused() -> None:
    with pytest.raises(InputError) as grow:
        apply_plan(apply_plan(INST, GROW), GROW)
    assert str(grow.value) == "plan: group 'g1' adds 4 GPUs of pods on node 'n2', which has 0 free"
    with pytest.raises(InputError) as shrink:
        apply_plan(apply_plan(INST, SHRINK), SHRINK)
    assert str(shrink.value) == "plan: group 'g1' removes pods but is not in the instance"


HALF_FREE = INST.model_copy(update={"nodes": [n.replace(gpus_free=4) if n.id == "n2" else n for n in INST.nodes]})


@pytest.mark.parametrize(
    ("inst", "bad", "message"),
    [
        (HALF_FREE, GROW, "group 'g1' adds 4 GPUs of pods on node 'n2', which has 0 free after the plan's other pods"),
        (INST, plan(1, ("prefill", "n9", 1)), "group 'g1' adds pods on node 'n9', which is not in the instance"),
        (INST, plan(-1, ("prefill", "n2", 1)), "group 'g1' removes 1 prefill pods from node 'n2', which holds 0"),
        (INST, plan(-1, ("decode", "n1", 2)), "group 'g1' removes 2 decode pods from node 'n1', which holds 1"),
        (INST, plan(1, ("serve", "n2", 1)), "group 'g1': role 'serve' is not a role of service 'chat'"),
        (INST, plan(1, ("decode", "n2", 1), service="code"), "group 'g1': service 'code' is not in the instance"),
        (INST, plan(1, ("decode", "n2", 1), gid="g7"), "group 'g7' is not in the instance (and not marked new)"),
        (INST, plan(1, ("decode", "n2", 1), new=True), "group 'g1' is marked new but is already in the instance"),
        (INST, plan(1, ("decode", "n2", 1), domain="b"), "group 'g1' is (chat, a), the plan says (chat, b)"),
        (INST, plan(0, ("decode", "n2", 1)), "group 'g1': units=0 (a change adds units, > 0, or removes them, < 0)"),
    ],
)
def test_a_plan_that_does_not_fit_is_refused(inst: Any, bad: Plan, message: str) -> None:
    with pytest.raises(InputError) as err:
        apply_plan(inst, bad)
    assert str(err.value) == f"plan: {message}"


def test_removals_free_nothing_within_the_plan() -> None:
    # as the verifier's node-capacity rule: g1's unit leaves n1 and g2's moves in, in one plan: refused
    moves = [*SHRINK.changes, *plan(1, ("prefill", "n1", 1), ("decode", "n1", 1), gid="g2", new=True).changes]
    with pytest.raises(InputError, match=r"^plan: group 'g2' adds 4 GPUs of pods on node 'n1', which has 0 free$"):
        apply_plan(INST, Plan(changes=moves))


def test_scoring_a_plan_of_another_instance_names_what_does_not_match() -> None:
    assert score(INST, GROW).premium_cost > 0
    with pytest.raises(InputError, match=r"^plan: group 'g1' adds pods on node 'n9', which is not in the instance$"):
        score(INST, plan(1, ("prefill", "n9", 1), ("decode", "n2", 1)))
    with pytest.raises(InputError, match=r"^plan: group 'g1' has prefill pods on node 'n3' \(L20\), not in \['H20'\]$"):
        score(INST, plan(1, ("prefill", "n3", 1), ("decode", "n2", 1)))


@pytest.mark.parametrize("call", ["apply_plan", "score", "verify"])
@pytest.mark.parametrize("given", ["x.yaml", {"nodes": []}])
def test_a_path_or_a_mapping_for_the_instance_is_refused_by_name(call: str, given: object) -> None:
    # before: AttributeError ('str' object has no attribute 'groups'), as solve() gave before it checked
    import hetero_opt

    with pytest.raises(InputError, match=rf"^{call}\(\) takes an Instance, not {type(given).__name__}: "
                                         r"use load_instance\(path\) or parse_instance\(dict\)$"):
        getattr(hetero_opt, call)(given, Plan(changes=[]))
