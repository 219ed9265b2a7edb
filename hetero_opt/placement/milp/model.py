"""The placement MILP in PuLP: variables, constraints and the expressions of every objective term.

Rows and objective written independently of the CP-SAT model from SYSTEM.md "The placement
problem", so that the two cross-check each other; both fill the same solver-neutral slots and
packing rows (:mod:`hetero_opt.placement.slots`). Decisions are counts, never node picks:

- scale-out request ``r``: a *slot* per candidate domain (the service's existing group there, or a
  new group with binary ``open``); integer units ``u`` per slot; integer pods
  ``x[slot, role, S1, type]``; MoE: integer prefill replicas ``y[slot, S1]`` with exactly ``a`` attn
  and ``f`` ffn pods per replica on that S1.
- scale-in request: integer units ``v[g]`` removed per existing group, removed pods
  ``z[g, role, S1, type]`` bounded by the group's pods there (MoE: replicas ``w[g, S1]``), and a
  binary ``e[g]`` that may be 1 only when the group is emptied.
- capacity per (S1, GPU type, size class ``k``): :func:`~hetero_opt.placement.slots.packing_rows`,
  exact when the pod sizes form a divisibility chain, else necessary conditions (a relaxation:
  binding then decides).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

import pulp

from hetero_opt.placement.binding import CountKey, GroupDraft
from hetero_opt.placement.objective import gpu_cost
from hetero_opt.placement.slots import InSlotSpec, OutSlotSpec, in_slot_specs, out_slot_specs, packing_rows
from hetero_opt.topology import RequestView, TopologyView

ROLE_TAG = {"prefill": "P", "decode": "D", "prefill-attn": "PA", "prefill-ffn": "PF", "serve": "S"}
_UNSAFE = re.compile(r"[^A-Za-z0-9_.]")


@dataclass
class OutSlot:
    """The MILP's variables of one scale-out slot (:class:`~hetero_opt.placement.slots.OutSlotSpec`)."""

    spec: OutSlotSpec
    units: pulp.LpVariable
    open: pulp.LpVariable | None
    pods: dict[CountKey, pulp.LpVariable] = field(default_factory=dict)
    replicas: dict[str, pulp.LpVariable] = field(default_factory=dict)
    gang: pulp.LpVariable | None = None  # all-or-nothing request: 1 when the request is placed


@dataclass
class InSlot:
    """The MILP's variables of one scale-in slot (:class:`~hetero_opt.placement.slots.InSlotSpec`)."""

    spec: InSlotSpec
    units: pulp.LpVariable
    emptied: pulp.LpVariable | None
    pods: dict[CountKey, pulp.LpVariable] = field(default_factory=dict)
    replicas: dict[str, pulp.LpVariable] = field(default_factory=dict)
    gang: pulp.LpVariable | None = None  # all-or-nothing request: 1 when the request is placed


@dataclass
class MilpModel:
    """The problem, its decision slots and the linear expressions of the objective terms."""

    prob: pulp.LpProblem
    out_slots: list[OutSlot]
    in_slots: list[InSlot]
    served_by_priority: dict[int, pulp.LpAffineExpression]
    wanted_by_priority: dict[int, int]
    premium: pulp.LpAffineExpression
    new_groups: pulp.LpAffineExpression
    emptied: pulp.LpAffineExpression
    exact_packing: bool
    candidate_domains: dict[str, int] = field(default_factory=dict)
    all_variables: list[pulp.LpVariable] = field(default_factory=list)

    def variables(self) -> list[pulp.LpVariable]:
        """All variables, sorted by name (read once after the build: PuLP re-scans every row per call)."""
        if not self.all_variables:
            self.all_variables = list(self.prob.variables())
        return self.all_variables


class _Namer:
    """Readable, LP/MPS-safe, unique names (ids may contain characters LP files reject)."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def __call__(self, *parts: object) -> str:
        base = "_".join(_UNSAFE.sub("_", str(p))[:40] for p in parts)
        name, k = base, 1
        while name in self.used:
            k += 1
            name = f"{base}_{k}"
        self.used.add(name)
        return name


def _expr(terms: list[tuple[pulp.LpVariable, int]]) -> pulp.LpAffineExpression:
    return pulp.LpAffineExpression(terms)


def build_model(view: TopologyView) -> MilpModel:
    """Build the placement MILP of ``view``'s requests (objective left empty for the stages)."""
    prob = pulp.LpProblem("hetero_opt_placement", pulp.LpMinimize)
    name = _Namer()
    out_requests = [r for r in view.requests if r.delta > 0]
    in_requests = [r for r in view.requests if r.delta < 0]

    out_slots: list[OutSlot] = []
    candidates: dict[str, int] = {}
    for ri, req in enumerate(out_requests):
        slots, num_candidates = _out_slots(view, prob, name, ri, req)
        out_slots.extend(slots)
        candidates[req.service.id] = num_candidates
    in_slots: list[InSlot] = []
    for ri, req in enumerate(in_requests):
        in_slots.extend(_in_slots(view, prob, name, ri, req))
    relaxed = _add_capacity(view, prob, name, out_slots)

    served: defaultdict[int, list[tuple[pulp.LpVariable, int]]] = defaultdict(list)
    wanted = view.wanted_gpus_by_priority
    premium: list[tuple[pulp.LpVariable, int]] = []
    for o in out_slots:
        svc = o.spec.request.service
        served[svc.priority].append((o.units, svc.gpus_per_unit))
        for (role, s1, gpu_type), var in o.pods.items():
            cost = gpu_cost(view, svc.id, role, s1, gpu_type) * svc.role(role).gpus_per_pod
            premium.append((var, cost))
    for s in in_slots:
        svc = s.spec.request.service
        served[svc.priority].append((s.units, svc.gpus_per_unit))
        for (role, s1, gpu_type), var in s.pods.items():
            cost = gpu_cost(view, svc.id, role, s1, gpu_type) * svc.role(role).gpus_per_pod
            premium.append((var, -cost))
    return MilpModel(
        prob=prob,
        out_slots=out_slots,
        in_slots=in_slots,
        served_by_priority={p: _expr(served[p]) for p in sorted(wanted, reverse=True)},
        wanted_by_priority=wanted,
        premium=_expr(premium),
        new_groups=_expr([(o.open, 1) for o in out_slots if o.open is not None]),
        emptied=_expr([(s.emptied, 1) for s in in_slots if s.emptied is not None]),
        exact_packing=relaxed == 0,
        candidate_domains=candidates,
    )


def _out_slots(
    view: TopologyView, prob: pulp.LpProblem, name: _Namer, ri: int, req: RequestView
) -> tuple[list[OutSlot], int]:
    svc = req.service
    slots: list[OutSlot] = []
    num_candidates = 0
    for gi, spec in enumerate(out_slot_specs(view, req)):
        tag, domain = f"r{ri}g{gi}", spec.domain
        units = prob.add_variable(name("u", tag, svc.id, domain), 0, spec.max_units, cat=pulp.LpInteger)
        opened = None
        if spec.new:
            num_candidates += 1
            opened = prob.add_variable(name("open", tag, svc.id, domain), cat=pulp.LpBinary)
            prob += units >= opened, name("min_unit", tag)
            prob += units <= spec.max_units * opened, name("open_link", tag)
        slot = OutSlot(spec, units, opened)
        for (role, s1, t), n in spec.cells:
            var = prob.add_variable(name("x", tag, ROLE_TAG[role], s1, t), 0, n, cat=pulp.LpInteger)
            slot.pods[(role, s1, t)] = var
        for role, per_unit in sorted(svc.pods_per_unit.items()):
            terms = [(v, 1) for (r, _, _), v in slot.pods.items() if r == role]
            prob += _expr(terms) == per_unit * units, name("pods", tag, ROLE_TAG[role])
        if svc.attn_ffn_ratio is not None:
            _add_replicas(prob, name, slot, svc.attn_ffn_ratio.prefill, svc.attn_ffn_ratio.decode, spec.replicas, tag)
            prob += (
                _expr([(y, 1) for y in slot.replicas.values()]) == svc.pd_ratio.prefill * units,
                name("replicas", tag),
            )
        slots.append(slot)
    gang = _target(prob, name, f"r{ri}", req, [s.units for s in slots], req.delta)
    for s in slots:
        s.gang = gang
    opens = [(s.open, 1) for s in slots if s.open is not None]
    if len(opens) > svc.max_new_groups:
        prob += _expr(opens) <= svc.max_new_groups, name("max_new_groups", f"r{ri}", svc.id)
    return slots, num_candidates


def _add_replicas(
    prob: pulp.LpProblem,
    name: _Namer,
    slot: OutSlot | InSlot,
    a: int,
    f: int,
    replicas: tuple[tuple[str, int], ...],
    tag: str,
) -> None:
    """MoE: integer prefill replicas per S1, each exactly ``a`` attn and ``f`` ffn pods on that S1."""
    prefix = "y" if isinstance(slot, OutSlot) else "w"
    row = "replica" if isinstance(slot, OutSlot) else "replica_rm"
    for s1, n in replicas:
        y = prob.add_variable(name(prefix, tag, s1), 0, n, cat=pulp.LpInteger)
        slot.replicas[s1] = y
        for role, per in (("prefill-attn", a), ("prefill-ffn", f)):
            terms = [(v, 1) for (r, s, _), v in slot.pods.items() if r == role and s == s1]
            prob += _expr(terms) == per * y, name(row, tag, ROLE_TAG[role], s1)


def _target(
    prob: pulp.LpProblem, name: _Namer, tag: str, req: RequestView, units: list[pulp.LpVariable], wanted: int
) -> pulp.LpVariable | None:
    """At most ``wanted`` units; for an all-or-nothing request exactly 0 or ``wanted`` (binary ``gang``)."""
    if req.all_or_nothing and units:
        gang = prob.add_variable(name("gang", tag, req.service.id), cat=pulp.LpBinary)
        prob += _expr([(u, 1) for u in units]) == wanted * gang, name("target", tag, req.service.id)
        return gang
    prob += _expr([(u, 1) for u in units]) <= wanted, name("target", tag, req.service.id)
    return None


def _in_slots(view: TopologyView, prob: pulp.LpProblem, name: _Namer, ri: int, req: RequestView) -> list[InSlot]:
    svc = req.service
    slots: list[InSlot] = []
    for gi, spec in enumerate(in_slot_specs(view, req)):
        tag = f"r{ri}g{gi}"
        units = prob.add_variable(name("v", tag, spec.group), 0, spec.max_units, cat=pulp.LpInteger)
        emptied = None
        if spec.can_empty:
            emptied = prob.add_variable(name("e", tag, spec.group), cat=pulp.LpBinary)
            prob += spec.held * emptied <= units, name("emptied", tag)
        slot = InSlot(spec, units, emptied)
        for key, n in spec.cells:
            role, s1, t = key
            slot.pods[key] = prob.add_variable(name("z", tag, ROLE_TAG[role], s1, t), 0, n, cat=pulp.LpInteger)
        for role, per_unit in sorted(svc.pods_per_unit.items()):
            terms = [(v, 1) for (r, _, _), v in slot.pods.items() if r == role]
            prob += _expr(terms) == per_unit * units, name("remove", tag, ROLE_TAG[role])
        if svc.attn_ffn_ratio is not None:
            _add_replicas(prob, name, slot, svc.attn_ffn_ratio.prefill, svc.attn_ffn_ratio.decode, spec.replicas, tag)
            prob += (
                _expr([(w, 1) for w in slot.replicas.values()]) == svc.pd_ratio.prefill * units,
                name("replicas_rm", tag),
            )
        slots.append(slot)
    gang = _target(prob, name, f"r{ri}", req, [s.units for s in slots], -req.delta)
    for s in slots:
        s.gang = gang
    return slots


def _add_capacity(view: TopologyView, prob: pulp.LpProblem, name: _Namer, slots: list[OutSlot]) -> int:
    """Packing rows per (S1, GPU type, size class) over every scale-out pod variable there; returns how
    many (S1, GPU type) cells have only relaxed rows (pod sizes outside a divisibility chain)."""
    variables: list[pulp.LpVariable] = []
    items: defaultdict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    for o in slots:
        svc = o.spec.request.service
        for (role, s1, t), var in o.pods.items():
            items[(s1, t)].append((svc.role(role).gpus_per_pod, len(variables)))
            variables.append(var)
    rows, relaxed = packing_rows(view, items, [float(v.upBound) for v in variables])
    for k, row in enumerate(rows):
        prob += _expr([(variables[i], c) for i, c in zip(row.index, row.coef, strict=True)]) <= row.rhs, name("pack", k)
    return relaxed


def hint_values(model: MilpModel, view: TopologyView, drafts: list[GroupDraft]) -> dict[str, int] | None:
    """Variable values (by name) that reproduce the counts ``drafts``, or None if the model cannot express them.

    Used as the warm start and as the incumbent every stage starts from; the values are checked
    against every row and bound, so a None here only costs the warm start.
    """
    values: dict[str, int] = {v.name: 0 for v in model.variables()}
    out_by_key = {
        (o.spec.request.service.id, o.spec.domain if o.spec.new else o.spec.group): o
        for o in model.out_slots
    }
    in_by_group = {s.spec.group: s for s in model.in_slots}
    for d in drafts:
        svc = view.service_by_id[d.service]
        slot: OutSlot | InSlot | None = (
            out_by_key.get((d.service, d.domain if d.new else d.group)) if d.units > 0 else in_by_group.get(d.group)
        )
        if slot is None or any(n and k not in slot.pods for k, n in d.counts.items()):
            return None
        values[slot.units.name] = abs(d.units)
        if isinstance(slot, OutSlot) and slot.open is not None:
            values[slot.open.name] = 1
        if isinstance(slot, InSlot) and slot.emptied is not None and -d.units >= slot.spec.held:
            values[slot.emptied.name] = 1
        for k, n in d.counts.items():
            if n:
                values[slot.pods[k].name] = n
        if svc.attn_ffn_ratio is not None:
            a = svc.attn_ffn_ratio.prefill
            for (role, s1, _), n in d.counts.items():
                if role == "prefill-attn" and n:
                    if s1 not in slot.replicas:
                        return None
                    values[slot.replicas[s1].name] += n // a
    slots: list[OutSlot | InSlot] = [*model.out_slots, *model.in_slots]
    for s in slots:  # all-or-nothing switches: on where the request is placed
        if s.gang is not None and values[s.units.name]:
            values[s.gang.name] = 1
    return values if is_feasible(model, values) else None


def is_feasible(model: MilpModel, values: dict[str, int]) -> bool:
    """True when ``values`` satisfy every bound and row of the model as it stands."""
    for v in model.variables():
        x = values.get(v.name, 0)
        if (v.lowBound is not None and x < v.lowBound) or (v.upBound is not None and x > v.upBound):
            return False
    for c in model.prob.constraints():
        activity = sum(coef * values.get(v.name, 0) for v, coef in c.items()) + c.constant
        if c.sense == pulp.LpConstraintEQ and activity != 0:
            return False
        if c.sense == pulp.LpConstraintLE and activity > 0:
            return False
        if c.sense == pulp.LpConstraintGE and activity < 0:
            return False
    return True


def evaluate(expr: pulp.LpAffineExpression, values: dict[str, int]) -> int:
    """Value of an integer-coefficient expression at ``values``."""
    total: float = sum(coef * values.get(v.name, 0) for v, coef in expr.items()) + expr.constant
    return round(total)
