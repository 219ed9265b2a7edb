"""P:D ratio moves: redeploy a service's prefill pods at the prefill guard's unit, group by group.

A **ratio move** changes a P/D service's unit from ``p:d`` to ``p':d`` (``d`` kept, ``p'`` within
the profile's curated bounds, chosen by the prefill guard) and changes every deployment group of the
service at once: a group holding ``U`` units gets exactly ``U·(p' − p)`` prefill pods added (or
removed) inside its own domain, so after the move each group holds ``U`` units of ``p':d`` and the
service never holds a pod off its unit. The move is all or nothing: when any group's pods cannot be
placed, nothing moves and the cycle raises an alert (the unit stays, pods stay at ``p:d``).

Placement works in whole units of a service's ratio, so each group's prefill pods are placed as a
one-group view: the service becomes a single-role (``serve``) service holding only that group's
prefill pods, no new groups allowed, and the verified placement of ``U·p'`` serve pods is translated
back to prefill pods. MoE services and services draining pods (soft scale-in) never move.
"""

from __future__ import annotations

from pydantic import Field

from hetero_opt.instance import Frozen, Instance, Ratio, Service, group_units
from hetero_opt.placement.apply import apply_plan
from hetero_opt.placement.plan import GroupChange, Plan, PodChange
from hetero_opt.placement.solve import solve


class RatioMove(Frozen):
    """One service's ratio move in one cycle."""

    service: str = Field(description="Service id.")
    before: tuple[int, int] = Field(description="(p, d) before the move.")
    after: tuple[int, int] = Field(description="(p', d) after the move.")
    changes: list[GroupChange] = Field(
        description="Prefill pods added (units > 0) or removed (units < 0) per group; units count prefill pods."
    )

    def plan(self) -> Plan:
        """The move's pod changes as a plan (``apply_plan`` reads only the sign of ``units``)."""
        return Plan(changes=list(self.changes))


def with_unit(instance: Instance, service: str, unit: tuple[int, int]) -> Instance:
    """``instance`` with ``service``'s P:D ratio set to ``unit`` (pods unchanged)."""
    services = [
        s.model_copy(update={"pd_ratio": Ratio(prefill=unit[0], decode=unit[1])}) if s.id == service else s
        for s in instance.services
    ]
    return instance.model_copy(update={"services": services})


def apply_move(instance: Instance, move: RatioMove, *, release_removed: bool = True) -> Instance:
    """``instance`` after ``move``: the service's ratio is ``move.after`` and its prefill pods follow."""
    return apply_plan(with_unit(instance, move.service, move.after), move.plan(), release_removed=release_removed)


def can_move(svc: Service) -> bool:
    """Only plain P/D services move their ratio (not MoE, not single-role)."""
    return not svc.is_moe and not svc.is_single_role


def plan_move(
    instance: Instance, service: str, unit: tuple[int, int], *, solver: str, time_limit: float, seed: int
) -> tuple[RatioMove | None, str]:
    """Place a move of ``service`` to ``unit``: (the move, "") or (None, why it cannot be placed)."""
    svc = next(s for s in instance.services if s.id == service)
    p, d = svc.pd_ratio.prefill, svc.pd_ratio.decode
    if unit[1] != d or unit[0] == p or not can_move(svc):
        return None, f"no move from {p}P:{d}D to {unit[0]}P:{unit[1]}D"
    role = svc.role("prefill")
    view_svc = Service(
        id=svc.id, priority=svc.priority, affinity=svc.affinity,
        roles=[role.model_copy(update={"name": "serve"})], min_units=0, max_units=svc.max_units * 64,
        max_new_groups=0,
    )
    nodes = list(instance.nodes)
    changes: list[GroupChange] = []
    for g in sorted((g for g in instance.groups if g.service == service), key=lambda g: g.id):
        units = group_units(svc, g, {n.id: n.s1 for n in instance.nodes})
        if units == 0:
            continue
        pre = [pc.model_copy(update={"role": "serve"}) for pc in g.pods if pc.role == "prefill"]
        have = sum(pc.count for pc in pre)
        want = have + units * (unit[0] - p)
        view = Instance.model_validate({
            **instance.model_dump(exclude={"services", "groups", "requests", "format_version", "nodes"}),
            "format_version": "1.1",
            "nodes": [n.model_dump() for n in nodes],
            "services": [view_svc.model_dump()],
            "groups": [g.model_copy(update={"pods": pre}).model_dump()],
            "requests": [{"service": service, "target_units": want, "all_or_nothing": want > have}],
        })
        res = solve(view, solver, time_limit=time_limit, seed=seed)
        if res.plan.unserved or sum(c.units for c in res.plan.changes) != want - have:
            why = res.plan.unserved[0].reason if res.plan.unserved else "placement fell short"
            return None, (f"ratio move {p}P:{d}D → {unit[0]}P:{d}D not placed: group '{g.id}' needs "
                          f"{want - have:+d} prefill pods ({why}); the unit stays")
        nodes = list(apply_plan(view, res.plan, release_removed=False).nodes)
        for c in res.plan.changes:
            changes.append(c.model_copy(update={"pods": [PodChange(role="prefill", node=pc.node, count=pc.count)
                                                         for pc in c.pods]}))
    return RatioMove(service=service, before=(p, d), after=unit, changes=changes), ""


