"""Build the CP-SAT placement model of a set of requests and convert a plan into a complete hint."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ortools.sat.python import cp_model

from hetero_opt.placement.cpsat import constraints
from hetero_opt.placement.cpsat.objective import Linear, groups_term, premium_cost, served_gpus
from hetero_opt.placement.cpsat.variables import InSlot, OutSlot, VarPool, in_slots, out_slots
from hetero_opt.placement.plan import Plan
from hetero_opt.topology import RequestView, TopologyView


@dataclass
class PlacementModel:
    """A CP-SAT model with its slots, variables (in index order) and objective terms."""

    view: TopologyView
    model: cp_model.CpModel
    requests: list[RequestView]
    outs: list[OutSlot]
    ins: list[InSlot]
    variables: list[cp_model.IntVar]
    served: dict[int, Linear]
    premium: Linear
    groups: Linear
    groups_weight: int
    relaxed_rows: int = 0
    max_served: dict[int, int] = field(default_factory=dict)


def build(view: TopologyView, requests: list[RequestView]) -> PlacementModel:
    """The model of ``requests`` (scale-out and/or scale-in) on ``view``'s free GPUs."""
    model = cp_model.CpModel()
    pool = VarPool(model)
    outs: list[OutSlot] = []
    ins: list[InSlot] = []
    max_served: Counter[int] = Counter()
    for req in requests:
        max_served[req.service.priority] += abs(req.delta) * req.service.gpus_per_unit
        if req.delta > 0:
            slots = out_slots(pool, view, req)
            for slot in slots:
                constraints.add_out_slot(model, slot, pool.upper)
            constraints.add_out_request(model, slots)
            outs.extend(slots)
        elif req.delta < 0:
            islots = in_slots(pool, view, req)
            for islot in islots:
                constraints.add_in_slot(model, islot)
            constraints.add_in_request(model, islots)
            ins.extend(islots)
    relaxed = constraints.add_packing(model, view, outs, pool.upper)
    groups, weight = groups_term(outs, ins)
    return PlacementModel(
        view=view,
        model=model,
        requests=list(requests),
        outs=outs,
        ins=ins,
        variables=pool.all,
        served=served_gpus(outs, ins),
        premium=premium_cost(view, outs, ins),
        groups=groups,
        groups_weight=weight,
        relaxed_rows=relaxed,
        max_served=dict(sorted(max_served.items(), reverse=True)),
    )


class HintError(ValueError):
    """A plan that the model cannot represent (a change outside every slot)."""


def plan_values(pm: PlacementModel, plan: Plan) -> list[int]:
    """Complete assignment (every variable, zeros included) equal to ``plan``'s changes.

    Raises
    ------
    HintError
        If a change of ``plan`` has no slot or pod variable in the model.
    """
    view = pm.view
    values = [0] * len(pm.variables)
    services = {r.service.id for r in pm.requests}
    outs = {(o.request.service.id, o.domain if o.new else o.group): o for o in pm.outs}
    ins = {i.group: i for i in pm.ins}
    for c in plan.changes:
        if c.service not in services:
            continue
        svc = view.service_by_id[c.service]
        counts: Counter[tuple[str, str, str]] = Counter()
        for p in c.pods:
            node = view.node_by_id[p.node]
            counts[(p.role, node.s1, node.gpu_type)] += p.count
        slot: OutSlot | InSlot | None = (
            ins.get(c.group) if c.units < 0 else outs.get((c.service, c.domain if c.new else c.group))
        )
        if slot is None:
            raise HintError(f"group '{c.group}' of '{c.service}' has no slot in the model")
        values[slot.units.index] = abs(c.units)
        if isinstance(slot, OutSlot) and slot.open is not None:
            values[slot.open.index] = 1
        if isinstance(slot, InSlot):
            values[slot.emptied.index] = int(-c.units == slot.held)
        for key, n in counts.items():
            var = slot.pods.get(key)
            if var is None:
                raise HintError(f"group '{c.group}' has no variable for {key}")
            values[var.index] = n
        ratio = svc.attn_ffn_ratio
        if ratio is not None:
            for s1, var in slot.replicas.items():
                values[var.index] = sum(n for (r, s, _), n in counts.items() if r == "prefill-attn" and s == s1)
                values[var.index] //= ratio.prefill
    return values


def add_hint(pm: PlacementModel, values: list[int]) -> None:
    """Replace the model's hint by the complete assignment ``values``."""
    pm.model.clear_hints()  # type: ignore[no-untyped-call]
    for var, val in zip(pm.variables, values, strict=True):
        pm.model.add_hint(var, val)
