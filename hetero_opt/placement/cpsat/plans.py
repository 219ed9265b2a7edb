"""Between plans and models: extraction of drafts, restriction of a plan, residual capacity."""

from __future__ import annotations

from collections import Counter

from hetero_opt.placement.binding import GroupDraft
from hetero_opt.placement.cpsat.model import PlacementModel
from hetero_opt.placement.cpsat.variables import InSlot, OutSlot
from hetero_opt.placement.objective import gpu_cost
from hetero_opt.placement.plan import GroupChange, Plan, Unserved
from hetero_opt.topology import RequestView, TopologyView


def estimated_vars(view: TopologyView, part: list[RequestView]) -> int:
    """Variables of the CP-SAT model of ``part``: its pod cells plus a fifth (units, new-group switches)."""
    return view.candidate_cells(part) * 6 // 5


def extract(pm: PlacementModel, values: list[int]) -> tuple[list[GroupDraft], list[Unserved]]:
    """Group drafts (non-zero slots) and unserved records from a complete assignment."""
    drafts: list[GroupDraft] = []
    placed: dict[str, int] = {r.service.id: 0 for r in pm.requests}
    opened: Counter[str] = Counter()
    closed: Counter[str] = Counter()  # new-group slots left unopened
    slots: list[tuple[OutSlot | InSlot, bool, int]] = [(o, o.new, 1) for o in pm.outs]
    slots += [(s, False, -1) for s in pm.ins]
    for slot, new, sign in slots:
        units = values[slot.units.index]
        if new:
            (opened if units > 0 else closed)[slot.request.service.id] += 1
        if units > 0:
            d = GroupDraft(slot.request.service.id, slot.group, new, slot.domain, sign * units)
            for key, var in sorted(slot.pods.items()):
                if values[var.index]:
                    d.counts[key] = values[var.index]
            drafts.append(d)
            placed[slot.request.service.id] += sign * units
    unserved = []
    for r in pm.requests:
        got = placed[r.service.id]
        if got != r.delta:
            if r.delta > 0:
                why = f"CP-SAT: no capacity for {r.delta - got} more units within {r.service.affinity} affinity"
                if closed[r.service.id] and opened[r.service.id] >= r.service.max_new_groups:
                    why += f"; new-group limit {r.service.max_new_groups} reached"
            else:
                why = f"CP-SAT: groups hold only {-got} removable whole units"
            unserved.append(Unserved(service=r.service.id, wanted_units=r.delta, placed_units=got, reason=why))
    return drafts, unserved


def restrict(plan: Plan, part: list[RequestView]) -> Plan:
    """The changes and unserved entries of ``plan`` that belong to the services of ``part``."""
    ids = {r.service.id for r in part}
    return Plan(
        changes=[c for c in plan.changes if c.service in ids], unserved=[u for u in plan.unserved if u.service in ids]
    )


def gpus_taken(view: TopologyView, changes: list[GroupChange]) -> Counter[str]:
    """GPUs per node that the additions among ``changes`` use."""
    taken: Counter[str] = Counter()
    for c in changes:
        if c.units > 0:
            svc = view.service_by_id[c.service]
            for p in c.pods:
                taken[p.node] += p.count * svc.role(p.role).gpus_per_pod
    return taken


def residual_view(view: TopologyView, changes: list[GroupChange]) -> TopologyView:
    """The view of what is free once the additions among ``changes`` are placed.

    Removals give nothing back: the paper does not reuse GPUs within the cycle that frees them.
    """
    taken = gpus_taken(view, changes)
    return view.with_taken(taken) if taken else view


def trivial_bounds(view: TopologyView, part: list[RequestView]) -> tuple[int, int]:
    """(premium cost, groups term) that no plan of ``part`` can beat, without solving anything.

    Scale-out: 0 and 0 (costs are non-negative). Scale-in: removing every pod the part's groups
    hold, and emptying every such group.
    """
    premium, groups = 0, 0
    for r in part:
        if r.delta >= 0:
            continue
        svc = r.service
        for g in view.groups_by_service.get(svc.id, []):
            if view.units_by_group[g.id] <= 0:
                continue
            groups -= 1
            for p in g.pods:
                node = view.node_by_id[p.node]
                premium -= (
                    p.count * svc.role(p.role).gpus_per_pod * gpu_cost(view, svc.id, p.role, node.s1, node.gpu_type)
                )
    return premium, groups
