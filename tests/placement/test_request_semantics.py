"""Format 1.1: single-role (aggregated) services and all-or-nothing requests, in every solver."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import instance_dict, node, pd_service, request

from hetero_opt import InputError, Instance, Plan, parse_instance, solve, verify
from hetero_opt.placement.plan import GroupChange, PodChange


def serve_service(sid: str, prio: int = 10, size: int = 8, **extra: Any) -> dict[str, Any]:
    """An aggregated service: one role 'serve', a unit is one pod of ``size`` H20 GPUs."""
    roles = [{"name": "serve", "gpus_per_pod": size, "gpu_types": ["H20"]}]
    return {"id": sid, "priority": prio, "affinity": "s1", "roles": roles, **extra}


def v11(**parts: Any) -> Instance:
    return Instance.model_validate({**instance_dict(**parts), "format_version": "1.1"})


# Three free 8-GPU nodes in one S1. 'big' (priority 10) wants 2 units of 8+8 GPUs as a gang, but
# only one unit fits (24 GPUs); 'agg' (priority 5, aggregated) wants 3 one-pod units of 8 GPUs.
GANG = v11(
    nodes=[node(f"n{k}", "a", "a-1") for k in range(3)],
    services=[pd_service("big", "s1"), serve_service("agg", prio=5)],
    requests=[{**request("big", 2), "all_or_nothing": True}, request("agg", 3)],
)


def test_a_gang_that_does_not_fit_places_nothing_and_leaves_room(solver: str) -> None:
    result = solve(GANG, solver)
    assert verify(GANG, result.plan) == []
    assert result.score.unserved_gpus == [32, 0]  # big: 2 x 16 unserved; agg: 3 x 8 placed
    assert result.plan.units_by_service() == {"agg": 3}
    (short,) = result.plan.unserved
    assert (short.service, short.placed_units) == ("big", 0)


def test_without_the_flag_the_same_request_is_placed_in_part() -> None:
    data = GANG.model_dump(mode="json")
    data["requests"][0]["all_or_nothing"] = False
    result = solve(Instance.model_validate(data), "cpsat")
    assert result.score.unserved_gpus == [16, 16]  # big 1 of 2 units; agg 1 of 3 on the last node


def test_a_gang_that_fits_is_placed_whole(solver: str) -> None:
    data = GANG.model_dump(mode="json")
    data["nodes"].append(node("n3", "a", "a-1"))  # 32 GPUs: both units of 'big'
    inst = Instance.model_validate(data)
    result = solve(inst, solver)
    assert verify(inst, result.plan) == []
    assert result.plan.units_by_service()["big"] == 2


def test_single_role_units_are_single_pods(solver: str) -> None:
    inst = v11(
        nodes=[node("n1", "a", "a-1"), node("n2", "a", "a-1", free=4)],
        services=[serve_service("agg", size=4)],
        requests=[request("agg", 3)],
    )
    result = solve(inst, solver)
    assert verify(inst, result.plan) == []
    assert result.score.unserved_gpus == [0]  # 3 pods of 4 GPUs in 12 free
    pods = sorted((p.role, p.node, p.count) for c in result.plan.changes for p in c.pods)
    assert sum(n for _, _, n in pods) == 3
    assert {r for r, _, _ in pods} == {"serve"}


def test_the_verifier_rejects_part_of_a_gang() -> None:
    part = Plan(
        changes=[
            GroupChange(
                service="big",
                group="big@a-1",
                new=True,
                domain="a-1",
                units=1,
                pods=[PodChange(role="prefill", node="n0", count=1), PodChange(role="decode", node="n1", count=1)],
            )
        ]
    )
    codes = [v.code for v in verify(GANG, part)]
    assert "all-or-nothing" in codes


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda d: d["requests"][0].update(all_or_nothing=True), r"all_or_nothing=true needs format_version='1.1'"),
        (lambda d: d["services"].append(serve_service("agg")), r"roles=\['serve'\] needs format_version='1.1'"),
    ],
)
def test_format_1_0_refuses_the_1_1_features(mutate: Any, match: str) -> None:
    data = instance_dict(nodes=[node("n1", "a", "a-1")], services=[pd_service("chat")], requests=[request("chat", 1)])
    mutate(data)
    with pytest.raises(InputError, match=match):
        parse_instance(data, "old.json")
