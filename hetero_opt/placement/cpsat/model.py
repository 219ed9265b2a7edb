"""Build the CP-SAT placement model of a set of requests; hints, objectives and silenced classes in its proto."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from ortools.sat.python import cp_model

from hetero_opt.placement.cpsat import constraints
from hetero_opt.placement.cpsat.objective import Linear, groups_term, premium_cost, served_gpus
from hetero_opt.placement.cpsat.variables import InSlot, OutSlot, VarPool, in_slots, out_slots
from hetero_opt.placement.slots import Load, PackingRow
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
    relaxed_rows: int = 0
    max_served: dict[int, int] = field(default_factory=dict)
    rows: list[PackingRow] = field(default_factory=list)
    upper: list[int] = field(default_factory=list)
    slots_by_priority: dict[int, list[list[int]]] = field(default_factory=dict)
    quiet: dict[int, cp_model.IntVar] = field(default_factory=dict)


def slot_indices(slot: OutSlot | InSlot) -> list[int]:
    """Indices of every variable of one slot; all zero is always a feasible value of a slot."""
    out = [slot.units.index, *(v.index for v in slot.pods.values()), *(v.index for v in slot.replicas.values())]
    if isinstance(slot, OutSlot):
        if slot.open is not None:
            out.append(slot.open.index)
        out += [v.index for v in slot.node_pods.values()]
    if isinstance(slot, InSlot):
        out.append(slot.emptied.index)
    return out


def build(
    view: TopologyView,
    requests: list[RequestView],
    load: Load | None = None,
    domains: Mapping[str, frozenset[str]] | None = None,
) -> PlacementModel:
    """The model of ``requests`` (scale-out and/or scale-in) on ``view``'s free GPUs.

    ``load``: pods placed outside the model (counts per (S1, GPU type) and size) whose capacity is
    used up; with pod sizes in a divisibility chain the model's counts and ``load`` bind together.
    ``domains``: scale-out slots only in these domains per service (a restricted model).
    """
    model = cp_model.CpModel()
    pool = VarPool(model)
    outs: list[OutSlot] = []
    ins: list[InSlot] = []
    max_served: Counter[int] = Counter()
    for req in requests:
        max_served[req.service.priority] += abs(req.delta) * req.service.gpus_per_unit
        if req.delta > 0:
            slots = out_slots(pool, view, req, None if domains is None else domains.get(req.service.id, frozenset()))
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
    rows, relaxed = constraints.add_packing(model, view, outs, pool, load)
    by_priority: defaultdict[int, list[OutSlot | InSlot]] = defaultdict(list)
    members_all: list[OutSlot | InSlot] = [*outs, *ins]
    for member in members_all:
        by_priority[member.request.service.priority].append(member)
    quiet: dict[int, cp_model.IntVar] = {}
    for prio, members in sorted(by_priority.items())[:-1]:  # the top class is never silenced
        quiet[prio] = pool.bool_var(f"quiet[{prio}]")
        model.add(sum(s.units for s in members) == 0).only_enforce_if(quiet[prio])
    if [v.index for v in pool.all] != list(range(len(pool.all))):
        raise AssertionError("every variable of the model must come from the pool, in index order")
    return PlacementModel(
        view=view,
        model=model,
        requests=list(requests),
        outs=outs,
        ins=ins,
        variables=pool.all,
        served=served_gpus(outs, ins),
        premium=premium_cost(view, outs, ins),
        groups=groups_term(outs, ins),
        relaxed_rows=relaxed,
        rows=rows,
        upper=list(pool.upper),
        slots_by_priority={p: _emptiable(members) for p, members in by_priority.items()},
        quiet=quiet,
        max_served=dict(sorted(max_served.items(), reverse=True)),
    )


def _emptiable(members: list[OutSlot | InSlot]) -> list[list[int]]:
    """Variable indices of the parts of a class that can be set to zero alone: a slot, or all the slots
    of an all-or-nothing request together (zeroing one of its slots would leave a part of the gang)."""
    out: list[list[int]] = []
    gangs: dict[str, list[int]] = {}
    for s in members:
        if s.request.all_or_nothing:
            gang = gangs.setdefault(s.request.service.id, [])
            if not gang:
                out.append(gang)
            gang.extend(slot_indices(s))
        else:
            out.append(slot_indices(s))
    return out


class HintError(ValueError):
    """A plan that the model cannot represent (a change outside every slot)."""


def add_hint(pm: PlacementModel, values: list[int]) -> None:
    """Replace the model's hint by the complete assignment ``values`` (written into the proto at once)."""
    proto = pm.model.proto
    proto.clear_solution_hint()
    proto.solution_hint.vars.extend(range(len(values)))
    proto.solution_hint.values.extend(values)


def set_objective(pm: PlacementModel, vars_: list[int], coefs: list[int], sense: Literal["min", "max"]) -> None:
    """Set ``min``/``max sum coefs * vars`` directly in the proto (the Python expression path is slow at 30k terms)."""
    proto = pm.model.proto
    proto.clear_objective()
    merged: defaultdict[int, int] = defaultdict(int)
    for i, c in zip(vars_, coefs, strict=True):
        merged[i] += c
    sign = 1 if sense == "min" else -1
    proto.objective.vars.extend(list(merged))
    proto.objective.coeffs.extend([sign * c for c in merged.values()])
    proto.objective.scaling_factor = float(sign)


def set_quiet(pm: PlacementModel, classes: list[int], on: bool) -> None:
    """Force (``on``) or release the priority ``classes`` to place nothing.

    Used to solve a served stage with every lower class silent: an exact decomposition, since a
    lower class can always place nothing. Only the domain of one Boolean per class changes.
    """
    variables = pm.model.proto.variables
    for c in classes:
        variables[pm.quiet[c].index].domain[0] = int(on)


def with_quiet(pm: PlacementModel, classes: list[int], values: list[int], on: bool) -> list[int]:
    """Copy of ``values`` consistent with :func:`set_quiet`: silenced classes place nothing."""
    out = list(values)
    for c in classes:
        out[pm.quiet[c].index] = int(on)
        if on:
            for slot in pm.slots_by_priority[c]:
                for i in slot:
                    out[i] = 0
    return out
