"""Shared pieces of the ports of other schedulers' topology-aware scenarios (Kueue TAS in
``test_kueue_tas.py``, Volcano network-topology-aware scheduling in ``test_volcano_topology.py``).

A scheduler's job (Kueue podset, Volcano job) is a single-role (``serve``) service 'job' on a small
hand-made tree; :func:`solved` runs ``solve()`` and, for CP-SAT and the MILP, the backend's own plan
too, and checks every plan with the verifier. The ``tas_solver`` fixture is in ``tests/conftest.py``.
"""

from __future__ import annotations

from typing import Any

from conftest import group, node, run_backend

from hetero_opt import Instance, PlacementResult, Plan, solve, verify
from hetero_opt.placement.solve import get_backend

EXACT = ("cpsat", "milp")

Host = tuple[str, str, str, int, int]  # (S2, S1, node, GPUs total, GPUs free)


def job_data(
    hosts: list[Host],
    affinity: str,
    count: int,
    *,
    size: int = 1,
    groups: int = 1,
    gang: bool = True,
    gpu_of: dict[str, str] | None = None,
    cluster: str = "c",
    running: dict[str, int] | None = None,
    domain: str = "",
) -> dict[str, Any]:
    """A job of pods of ``size`` GPUs as a single-role service 'job' on ``hosts`` (all in ``cluster``).

    The request asks for ``count`` units (pods) in all, ``all_or_nothing`` when ``gang``; ``groups`` is
    the service's ``max_new_groups``. ``running`` holds the job's pods already running, per node: one
    existing group in ``domain`` (their GPUs must be among the hosts' used ones). ``gpu_of`` gives a
    node a GPU type other than H20, the only type 'job' accepts.
    """
    gpu_of = gpu_of or {}
    nodes = [
        node(h, s2, s1, gpu_of.get(h, "H20"), free=free, total=total, cluster=cluster)
        for s2, s1, h, total, free in hosts
    ]
    role = {"name": "serve", "gpus_per_pod": size, "gpu_types": ["H20"]}
    service = {"id": "job", "priority": 10, "affinity": affinity, "roles": [role], "max_new_groups": groups}
    data: dict[str, Any] = {
        "format_version": "1.1",
        "gpu_types": [{"id": "H20"}, {"id": "L20"}],
        "nodes": nodes,
        "services": [service],
        "requests": [{"service": "job", "target_units": count, "all_or_nothing": gang}],
    }
    if running:
        pods = [("serve", n, c) for n, c in sorted(running.items())]
        data["groups"] = [group(f"job@{domain}", "job", domain, *pods)]
    return data


def job_instance(hosts: list[Host], affinity: str, count: int, **options: Any) -> Instance:
    """:func:`job_data` as a validated instance."""
    return Instance.model_validate(job_data(hosts, affinity, count, **options))


def placed(plan: Plan) -> int:
    """Units (pods) of 'job' the plan adds."""
    return plan.units_by_service().get("job", 0)


def solved(inst: Instance, solver: str, time_limit: float = 2.0) -> PlacementResult:
    """``solve()``'s plan, verified, and for CP-SAT and the MILP their own plan too (before the greedy
    safety net of ``solve()`` could hide it), verified and with the same verdict."""
    result = solve(inst, solver, time_limit=time_limit)
    assert verify(inst, result.plan) == []
    if solver != "greedy":
        assert result.status != "fallback", result.fallback_reason
        own = run_backend(inst, get_backend(solver), time_limit=time_limit)
        assert verify(inst, own.plan) == []
        assert placed(own.plan) == placed(result.plan)
    return result
