"""Hard constraints of the CP-SAT placement model (SYSTEM.md "The placement problem").

No big-M: a new group's units are linked to ``open`` by their own natural bound, packing uses the
free-GPU histogram of each (S1, GPU type).
"""

from __future__ import annotations

from collections import defaultdict

from ortools.sat.python import cp_model

from hetero_opt.placement.cpsat.variables import InSlot, OutSlot
from hetero_opt.placement.slots import Load, PackingRow, packing_rows
from hetero_opt.topology import TopologyView


def add_out_slot(model: cp_model.CpModel, slot: OutSlot, upper: list[int]) -> None:
    """Whole units with exact ratios; a new group holds at least one unit iff it is opened."""
    svc = slot.request.service
    ppu = svc.pods_per_unit
    ratio = svc.attn_ffn_ratio
    by_role: defaultdict[str, list[cp_model.IntVar]] = defaultdict(list)
    by_role_s1: defaultdict[tuple[str, str], list[cp_model.IntVar]] = defaultdict(list)
    for (role, s1, _), var in sorted(slot.pods.items()):
        by_role[role].append(var)
        by_role_s1[(role, s1)].append(var)
    for role, per_unit in sorted(ppu.items()):
        if ratio is None or role == "decode":
            model.add(cp_model.LinearExpr.sum(by_role[role]) == per_unit * slot.units)
    if ratio is not None:
        for s1, y in sorted(slot.replicas.items()):
            for role, k in (("prefill-attn", ratio.prefill), ("prefill-ffn", ratio.decode)):
                model.add(cp_model.LinearExpr.sum(by_role_s1[(role, s1)]) == k * y)
        model.add(cp_model.LinearExpr.sum(list(slot.replicas.values())) == svc.pd_ratio.prefill * slot.units)
    if slot.open is not None:
        ub = upper[slot.units.index]
        model.add(slot.units <= ub * slot.open)
        model.add(slot.units >= slot.open)


def add_out_request(model: cp_model.CpModel, slots: list[OutSlot]) -> None:
    """Targets never exceeded; at most ``max_new_groups`` new groups."""
    if not slots:
        return
    req = slots[0].request
    model.add(sum(s.units for s in slots) <= req.delta)
    opens = [s.open for s in slots if s.open is not None]
    if len(opens) > req.service.max_new_groups:
        model.add(sum(opens) <= req.service.max_new_groups)


def add_packing(
    model: cp_model.CpModel, view: TopologyView, slots: list[OutSlot], upper: list[int], load: Load | None = None
) -> tuple[list[PackingRow], int]:
    """Capacity rows (:func:`~hetero_opt.placement.slots.packing_rows`) over all scale-out pods.

    ``load``: pods already placed outside this model, whose capacity is used up. Returns the rows
    and the count of (S1, GPU type) cells whose rows are a relaxation (sizes not a chain).
    """
    items: defaultdict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    var_by_index: dict[int, cp_model.IntVar] = {}
    for slot in slots:
        svc = slot.request.service
        size_of: dict[str, int] = {r.name: r.gpus_per_pod for r in svc.roles}
        for (role, s1, gpu_type), var in slot.pods.items():
            items[(s1, gpu_type)].append((size_of[role], var.index))
            var_by_index[var.index] = var
    rows, relaxed = packing_rows(view, items, [float(u) for u in upper], load)
    for row in rows:
        model.add(cp_model.LinearExpr.weighted_sum([var_by_index[i] for i in row.index], row.coef) <= row.rhs)
    return rows, relaxed


def add_in_slot(model: cp_model.CpModel, slot: InSlot) -> None:
    """Removed pods form whole units (MoE: whole replicas per S1); ``emptied`` iff all units go."""
    svc = slot.request.service
    ratio = svc.attn_ffn_ratio
    for role, per_unit in sorted(svc.pods_per_unit.items()):
        terms = [v for (r, _, _), v in sorted(slot.pods.items()) if r == role]
        model.add(sum(terms) == per_unit * slot.units)
    if ratio is not None:
        for s1, w in sorted(slot.replicas.items()):
            for role, k in (("prefill-attn", ratio.prefill), ("prefill-ffn", ratio.decode)):
                terms = [v for (r, s, _), v in sorted(slot.pods.items()) if r == role and s == s1]
                model.add(sum(terms) == k * w)
        for (role, s1, _), v in sorted(slot.pods.items()):
            if role != "decode" and s1 not in slot.replicas:
                model.add(v == 0)
        model.add(sum(slot.replicas.values()) == svc.pd_ratio.prefill * slot.units)
    model.add(slot.units == slot.held).only_enforce_if(slot.emptied)
    model.add(slot.units <= slot.held - 1).only_enforce_if(~slot.emptied)


def add_in_request(model: cp_model.CpModel, slots: list[InSlot]) -> None:
    """Remove at most what was asked (stage 1 maximises it; the verifier wants exactly that)."""
    if slots:
        model.add(sum(s.units for s in slots) <= -slots[0].request.delta)
