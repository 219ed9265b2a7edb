"""Decision variables of the CP-SAT placement model, one slot per deployment group that may change.

A scale-out request gets one *slot* per candidate domain: the service's existing group there (the
first by id) or one possible new group, guarded by a Boolean ``open``. A new group next to an
existing one in the same domain is never better (same pods, one more group), so it is not modelled.
Pod counts are aggregated per (role, S1, GPU type); MoE prefill replicas per S1. A scale-in request
gets one slot per existing group that holds units. The slots' structure is solver-neutral
(:mod:`hetero_opt.placement.slots`); this module gives them CP-SAT variables.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ortools.sat.python import cp_model

from hetero_opt.placement.binding import CountKey
from hetero_opt.placement.slots import in_slot_specs, out_slot_specs
from hetero_opt.topology import RequestView, TopologyView


class VarPool:
    """Creates the model's variables and keeps them in index order (for complete hints)."""

    def __init__(self, model: cp_model.CpModel) -> None:
        self.model = model
        self.all: list[cp_model.IntVar] = []
        self.upper: list[int] = []

    def int_var(self, lb: int, ub: int, name: str) -> cp_model.IntVar:
        """A new integer variable in ``[lb, ub]``."""
        var = self.model.new_int_var(lb, ub, name)
        self.all.append(var)
        self.upper.append(ub)
        return var

    def bool_var(self, name: str) -> cp_model.IntVar:
        """A new Boolean variable."""
        var = self.model.new_bool_var(name)
        self.all.append(var)
        self.upper.append(1)
        return var


@dataclass
class OutSlot:
    """A group that may grow: units ``units`` and pods per (role, S1, type) ``pods``."""

    request: RequestView
    group: str
    new: bool
    domain: str
    units: cp_model.IntVar
    open: cp_model.IntVar | None = None
    pods: dict[CountKey, cp_model.IntVar] = field(default_factory=dict)
    replicas: dict[str, cp_model.IntVar] = field(default_factory=dict)
    # (pod-count variable index, node id) -> pods of that count on the node; only in (S1, GPU type)
    # cells whose pod sizes are not a divisibility chain (constraints.add_node_rows)
    node_pods: dict[tuple[int, str], cp_model.IntVar] = field(default_factory=dict)


@dataclass
class InSlot:
    """An existing group that may shrink: removed ``units`` and removed ``pods``."""

    request: RequestView
    group: str
    domain: str
    held: int
    units: cp_model.IntVar
    emptied: cp_model.IntVar
    pods: dict[CountKey, cp_model.IntVar] = field(default_factory=dict)
    replicas: dict[str, cp_model.IntVar] = field(default_factory=dict)


def out_slots(
    pool: VarPool, view: TopologyView, req: RequestView, domains: frozenset[str] | None = None
) -> list[OutSlot]:
    """Slots (with their variables) of scale-out request ``req``: one per :func:`out_slot_specs` entry
    (only in ``domains`` if given)."""
    slots: list[OutSlot] = []
    for spec in out_slot_specs(view, req, domains):
        tag = f"{req.service.id}|{spec.domain}"
        is_open = pool.bool_var(f"open[{tag}]") if spec.new else None
        slot = OutSlot(req, spec.group, spec.new, spec.domain, pool.int_var(0, spec.max_units, f"u[{tag}]"))
        slot.open = is_open
        for (role, s1, gpu_type), n in spec.cells:
            slot.pods[(role, s1, gpu_type)] = pool.int_var(0, n, f"x[{tag}|{role}|{s1}|{gpu_type}]")
        for s1, n in spec.replicas:
            slot.replicas[s1] = pool.int_var(0, n, f"y[{tag}|{s1}]")
        slots.append(slot)
    return slots


def in_slots(pool: VarPool, view: TopologyView, req: RequestView) -> list[InSlot]:
    """Slots (with their variables) of scale-in request ``req``: one per :func:`in_slot_specs` entry."""
    slots: list[InSlot] = []
    for spec in in_slot_specs(view, req):
        g = spec.group
        units = pool.int_var(0, spec.max_units, f"v[{g}]")
        slot = InSlot(req, g, spec.domain, spec.held, units, pool.bool_var(f"e[{g}]"))
        for key, n in spec.cells:
            slot.pods[key] = pool.int_var(0, n, f"z[{g}|{'|'.join(key)}]")
        for s1, n in spec.replicas:
            slot.replicas[s1] = pool.int_var(0, n, f"w[{g}|{s1}]")
        slots.append(slot)
    return slots
