"""Hard constraints of the CP-SAT placement model (SYSTEM.md "The placement problem").

No big-M: a new group's units are linked to ``open`` by their own natural bound, packing uses the
free-GPU histogram of each (S1, GPU type).
"""

from __future__ import annotations

from collections import defaultdict

from ortools.sat.python import cp_model

from hetero_opt.placement.cpsat.variables import InSlot, OutSlot, VarPool
from hetero_opt.placement.slots import Load, PackingRow, packing_rows
from hetero_opt.topology import TopologyView, is_chain


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
    if req.all_or_nothing:
        model.add_linear_expression_in_domain(
            cp_model.LinearExpr.sum([s.units for s in slots]), cp_model.Domain.from_values([0, req.delta])
        )
    else:
        model.add(sum(s.units for s in slots) <= req.delta)
    opens = [s.open for s in slots if s.open is not None]
    if len(opens) > req.service.max_new_groups:
        model.add(sum(opens) <= req.service.max_new_groups)


def add_packing(
    model: cp_model.CpModel, view: TopologyView, slots: list[OutSlot], pool: VarPool, load: Load | None = None
) -> tuple[list[PackingRow], int]:
    """Capacity rows (:func:`~hetero_opt.placement.slots.packing_rows`) over all scale-out pods.

    ``load``: pods already placed outside this model, whose capacity is used up. Where the pod sizes
    of an (S1, GPU type) do not form a divisibility chain and nothing is loaded there, the rows are
    made exact at node level (:func:`add_node_rows`), so the counts always bind to nodes. Returns the
    rows (node rows included) and the count of (S1, GPU type) cells that are not a chain.
    """
    items: defaultdict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    var_by_index: dict[int, cp_model.IntVar] = {}
    slot_by_index: dict[int, OutSlot] = {}
    for slot in slots:
        svc = slot.request.service
        size_of: dict[str, int] = {r.name: r.gpus_per_pod for r in svc.roles}
        for (role, s1, gpu_type), var in slot.pods.items():
            items[(s1, gpu_type)].append((size_of[role], var.index))
            var_by_index[var.index] = var
            slot_by_index[var.index] = slot
    rows, relaxed = packing_rows(view, items, [float(u) for u in pool.upper], load)
    for row in rows:
        model.add(cp_model.LinearExpr.weighted_sum([var_by_index[i] for i in row.index], row.coef) <= row.rhs)
    for key in sorted(items):
        if not is_chain(sorted({size for size, _ in items[key]})) and not (load or {}).get(key):
            rows += add_node_rows(model, view, key, items[key], var_by_index, slot_by_index, pool)
    return rows, relaxed


def add_node_rows(
    model: cp_model.CpModel,
    view: TopologyView,
    key: tuple[str, str],
    cell: list[tuple[int, int]],
    var_by_index: dict[int, cp_model.IntVar],
    slot_by_index: dict[int, OutSlot],
    pool: VarPool,
) -> list[PackingRow]:
    """Exact packing of one (S1, GPU type) whose pod sizes are not a chain: pods per node.

    Each pod count ``x`` of the cell is split over the nodes (``x == sum_n y[x, n]``) and every node
    holds at most its free GPUs (``sum size * y[., n] <= free_n``). The node variables belong to the
    pod count's slot (:attr:`OutSlot.node_pods`), so a slot set to zero stays feasible.
    """
    s1, gpu_type = key
    ids, frees = view.free_nodes.get((s1, gpu_type), ((), ()))  # ids ascending, free GPUs not taken > 0
    nodes = list(zip(ids, frees, strict=True))
    per_node: defaultdict[str, list[tuple[int, int]]] = defaultdict(list)
    for size, index in cell:
        x = var_by_index[index]
        slot = slot_by_index[index]
        parts = []
        for node_id, free in nodes:
            if free >= size:
                y = pool.int_var(0, min(free // size, pool.upper[index]), f"{x.name}@{node_id}")
                slot.node_pods[(index, node_id)] = y
                parts.append(y)
                per_node[node_id].append((size, y.index))
        model.add(cp_model.LinearExpr.sum(parts) == x)
    rows = []
    free_of = dict(nodes)
    for node_id, terms in sorted(per_node.items()):
        row = PackingRow([i for _, i in terms], [size for size, _ in terms], free_of[node_id])
        if sum(c * pool.upper[i] for c, i in zip(row.coef, row.index, strict=True)) > row.rhs:
            model.add(cp_model.LinearExpr.weighted_sum([_pool_var(pool, i) for i in row.index], row.coef) <= row.rhs)
            rows.append(row)
    return rows


def _pool_var(pool: VarPool, index: int) -> cp_model.IntVar:
    return pool.all[index]


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
    if not slots:
        return
    req = slots[0].request
    if req.all_or_nothing:
        model.add_linear_expression_in_domain(
            cp_model.LinearExpr.sum([s.units for s in slots]), cp_model.Domain.from_values([0, -req.delta])
        )
    else:
        model.add(sum(s.units for s in slots) <= -req.delta)
