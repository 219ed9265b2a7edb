"""The placement MILP in PuLP: variables, constraints and the expressions of every objective term.

Built independently of the CP-SAT model from SYSTEM.md "The placement problem", so that the two
cross-check each other. Decisions are counts, never node picks:

- scale-out request ``r``: a *slot* per existing group of the service and one per candidate domain
  for a new group (binary ``open``); integer units ``u`` per slot; integer pods
  ``x[slot, role, S1, type]``; MoE: integer prefill replicas ``y[slot, S1]`` with exactly ``a`` attn
  and ``f`` ffn pods per replica on that S1.
- scale-in request: integer units ``v[g]`` removed per existing group, removed pods
  ``z[g, role, S1, type]`` bounded by the group's pods there (MoE: replicas ``w[g, S1]``), and a
  binary ``e[g]`` that may be 1 only when the group is emptied.
- capacity per (S1, GPU type, size class ``k``): ``sum size*x over pods of size >= k <= k * sum_n
  floor(free_n / k)``; exact when the pod sizes form a divisibility chain, else replaced by two
  necessary conditions (a relaxation: binding may then fail, and the backend falls back).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import pulp

from hetero_opt.instance import Service
from hetero_opt.placement.binding import CountKey
from hetero_opt.placement.greedy import new_group_id
from hetero_opt.placement.objective import gpu_cost
from hetero_opt.placement.plan import Plan
from hetero_opt.topology import RequestView, TopologyView, is_chain

ROLE_TAG = {"prefill": "P", "decode": "D", "prefill-attn": "PA", "prefill-ffn": "PF", "serve": "S"}
_UNSAFE = re.compile(r"[^A-Za-z0-9_.]")


@dataclass
class OutSlot:
    """One group a scale-out request may grow: an existing group or a possible new one."""

    request: RequestView
    group: str
    new: bool
    domain: str
    units: pulp.LpVariable
    open: pulp.LpVariable | None
    pods: dict[CountKey, pulp.LpVariable] = field(default_factory=dict)
    replicas: dict[str, pulp.LpVariable] = field(default_factory=dict)
    gang: pulp.LpVariable | None = None  # all-or-nothing request: 1 when the request is placed


@dataclass
class InSlot:
    """One existing group a scale-in request may shrink."""

    request: RequestView
    group: str
    domain: str
    held_units: int
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
    sizes = sorted({role.gpus_per_pod for r in out_requests for role in r.service.roles})
    exact = is_chain(sizes)

    out_slots: list[OutSlot] = []
    candidates: dict[str, int] = {}
    for ri, req in enumerate(out_requests):
        slots, num_candidates = _out_slots(view, prob, name, ri, req)
        out_slots.extend(slots)
        candidates[req.service.id] = num_candidates
    in_slots: list[InSlot] = []
    for ri, req in enumerate(in_requests):
        in_slots.extend(_in_slots(view, prob, name, ri, req))
    _add_capacity(view, prob, name, out_slots, exact)

    served: defaultdict[int, list[tuple[pulp.LpVariable, int]]] = defaultdict(list)
    wanted = view.wanted_gpus_by_priority
    premium: list[tuple[pulp.LpVariable, int]] = []
    for o in out_slots:
        svc = o.request.service
        served[svc.priority].append((o.units, svc.gpus_per_unit))
        for (role, s1, gpu_type), var in o.pods.items():
            cost = gpu_cost(view, svc.id, role, s1, gpu_type) * svc.role(role).gpus_per_pod
            premium.append((var, cost))
    for s in in_slots:
        svc = s.request.service
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
        exact_packing=exact,
        candidate_domains=candidates,
    )


def _pools_by_role(view: TopologyView, svc: Service, s1s: list[str]) -> dict[str, list[tuple[str, str]]]:
    """Per role, the (S1, GPU type) pools inside ``s1s`` where one pod of the role fits."""
    out: dict[str, list[tuple[str, str]]] = {}
    for role in sorted(svc.pods_per_unit):
        r = svc.role(role)
        out[role] = [(s1, t) for s1 in s1s for t in r.gpu_types if view.slots(s1, t, r.gpus_per_pod) > 0]
    return out


def _unit_cap(view: TopologyView, svc: Service, pools: dict[str, list[tuple[str, str]]], delta: int) -> int:
    """Units a domain could hold if the service had it alone (a valid upper bound on ``u``)."""
    cap = delta
    for role, per_unit in svc.pods_per_unit.items():
        size = svc.role(role).gpus_per_pod
        cap = min(cap, sum(view.slots(s1, t, size) for s1, t in pools[role]) // per_unit)
    return cap


def _out_slots(
    view: TopologyView, prob: pulp.LpProblem, name: _Namer, ri: int, req: RequestView
) -> tuple[list[OutSlot], int]:
    svc = req.service
    existing = view.groups_by_service.get(svc.id, [])
    taken_domains = {g.domain for g in existing}
    specs: list[tuple[str, bool, str]] = [(g.id, False, g.domain) for g in existing]
    if svc.max_new_groups > 0:
        domains = sorted({view.domain_of(s1, svc.affinity) for s1 in view.s1_ids} - taken_domains)
        specs += [(new_group_id(view, svc.id, d), True, d) for d in domains]
    slots: list[OutSlot] = []
    num_candidates = 0
    for gi, (gid, new, domain) in enumerate(specs):
        s1s = view.s1s_by_domain[domain]
        pools = _pools_by_role(view, svc, s1s)
        moe_s1s: list[str] = []
        if svc.is_moe:
            attn_s1 = {s1 for s1, _ in pools["prefill-attn"]}
            moe_s1s = sorted(attn_s1 & {s1 for s1, _ in pools["prefill-ffn"]})
            pools["prefill-attn"] = [p for p in pools["prefill-attn"] if p[0] in moe_s1s]
            pools["prefill-ffn"] = [p for p in pools["prefill-ffn"] if p[0] in moe_s1s]
        cap = _unit_cap(view, svc, pools, req.delta)
        if cap <= 0:
            continue
        tag = f"r{ri}g{gi}"
        units = prob.add_variable(name("u", tag, svc.id, domain), 0, cap, cat=pulp.LpInteger)
        opened = None
        if new:
            num_candidates += 1
            opened = prob.add_variable(name("open", tag, svc.id, domain), cat=pulp.LpBinary)
            prob += units >= opened, name("min_unit", tag)
            prob += units <= cap * opened, name("open_link", tag)
        slot = OutSlot(req, gid, new, domain, units, opened)
        for role, per_unit in sorted(svc.pods_per_unit.items()):
            size = svc.role(role).gpus_per_pod
            for s1, t in pools[role]:
                ub = min(view.slots(s1, t, size), per_unit * cap)
                slot.pods[(role, s1, t)] = prob.add_variable(
                    name("x", tag, ROLE_TAG[role], s1, t), 0, ub, cat=pulp.LpInteger
                )
            terms = [(v, 1) for (r, _, _), v in slot.pods.items() if r == role]
            prob += _expr(terms) == per_unit * units, name("pods", tag, ROLE_TAG[role])
        if svc.attn_ffn_ratio is not None:
            a, f = svc.attn_ffn_ratio.prefill, svc.attn_ffn_ratio.decode
            for s1 in moe_s1s:
                y = prob.add_variable(name("y", tag, s1), 0, svc.pd_ratio.prefill * cap, cat=pulp.LpInteger)
                slot.replicas[s1] = y
                for role, per in (("prefill-attn", a), ("prefill-ffn", f)):
                    terms = [(v, 1) for (r, s, _), v in slot.pods.items() if r == role and s == s1]
                    prob += _expr(terms) == per * y, name("replica", tag, ROLE_TAG[role], s1)
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
    for gi, g in enumerate(view.groups_by_service.get(svc.id, [])):
        held = view.units_by_group[g.id]
        if held <= 0:
            continue
        tag = f"r{ri}g{gi}"
        have: Counter[CountKey] = Counter()
        for p in g.pods:
            node = view.node_by_id[p.node]
            have[(p.role, node.s1, node.gpu_type)] += p.count
        units = prob.add_variable(name("v", tag, g.id), 0, min(held, -req.delta), cat=pulp.LpInteger)
        emptied = None
        if held <= -req.delta:
            emptied = prob.add_variable(name("e", tag, g.id), cat=pulp.LpBinary)
            prob += held * emptied <= units, name("emptied", tag)
        slot = InSlot(req, g.id, g.domain, held, units, emptied)
        for key in sorted(have):
            role, s1, t = key
            slot.pods[key] = prob.add_variable(name("z", tag, ROLE_TAG[role], s1, t), 0, have[key], cat=pulp.LpInteger)
        for role, per_unit in sorted(svc.pods_per_unit.items()):
            terms = [(v, 1) for (r, _, _), v in slot.pods.items() if r == role]
            prob += _expr(terms) == per_unit * units, name("remove", tag, ROLE_TAG[role])
        if svc.attn_ffn_ratio is not None:
            a, f = svc.attn_ffn_ratio.prefill, svc.attn_ffn_ratio.decode
            for s1 in sorted({s for (r, s, _) in have if r != "decode"}):
                w = prob.add_variable(name("w", tag, s1), 0, svc.pd_ratio.prefill * held, cat=pulp.LpInteger)
                slot.replicas[s1] = w
                for role, per in (("prefill-attn", a), ("prefill-ffn", f)):
                    terms = [(v, 1) for (r, s, _), v in slot.pods.items() if r == role and s == s1]
                    prob += _expr(terms) == per * w, name("replica_rm", tag, ROLE_TAG[role], s1)
            prob += (
                _expr([(w, 1) for w in slot.replicas.values()]) == svc.pd_ratio.prefill * units,
                name("replicas_rm", tag),
            )
        slots.append(slot)
    gang = _target(prob, name, f"r{ri}", req, [s.units for s in slots], -req.delta)
    for s in slots:
        s.gang = gang
    return slots


def _add_capacity(view: TopologyView, prob: pulp.LpProblem, name: _Namer, slots: list[OutSlot], exact: bool) -> None:
    """Packing rows per (S1, GPU type, size class) over every scale-out pod variable there."""
    by_pool: defaultdict[tuple[str, str], list[tuple[int, pulp.LpVariable]]] = defaultdict(list)
    for o in slots:
        svc = o.request.service
        for (role, s1, t), var in o.pods.items():
            by_pool[(s1, t)].append((svc.role(role).gpus_per_pod, var))
    for (s1, t), items in sorted(by_pool.items()):
        hist = view.free_by_s1_type.get((s1, t), Counter())
        for k in sorted({size for size, _ in items}):
            big = [(v, size) for size, v in items if size >= k]
            if exact:
                rhs = k * view.slots(s1, t, k)
                if sum(size * v.upBound for v, size in big) > rhs:
                    prob += _expr(big) <= rhs, name("pack", s1, t, f"k{k}")
                continue
            # Not a chain: two necessary conditions (a relaxation; binding checks the rest).
            count_rhs = view.slots(s1, t, k)
            gpu_rhs = sum(free * n for free, n in hist.items() if free >= k)
            prob += _expr([(v, 1) for v, _ in big]) <= count_rhs, name("pack_count", s1, t, f"k{k}")
            prob += _expr(big) <= gpu_rhs, name("pack_gpus", s1, t, f"k{k}")


def hint_values(model: MilpModel, view: TopologyView, plan: Plan) -> dict[str, int] | None:
    """Variable values (by name) that reproduce ``plan``, or None if the model cannot express it.

    Used as the warm start and as the incumbent every stage starts from; the values are checked
    against every row and bound, so a None here only costs the warm start.
    """
    values: dict[str, int] = {v.name: 0 for v in model.variables()}
    out_by_group = {o.group: o for o in model.out_slots}
    in_by_group = {s.group: s for s in model.in_slots}
    for c in plan.changes:
        svc = view.service_by_id[c.service]
        counts: Counter[CountKey] = Counter()
        for p in c.pods:
            node = view.node_by_id[p.node]
            counts[(p.role, node.s1, node.gpu_type)] += p.count
        slot: OutSlot | InSlot | None = out_by_group.get(c.group) if c.units > 0 else in_by_group.get(c.group)
        if slot is None or any(k not in slot.pods for k in counts):
            return None
        values[slot.units.name] = abs(c.units)
        if isinstance(slot, OutSlot) and slot.open is not None:
            values[slot.open.name] = 1
        if isinstance(slot, InSlot) and slot.emptied is not None and -c.units >= slot.held_units:
            values[slot.emptied.name] = 1
        for k, n in counts.items():
            values[slot.pods[k].name] = n
        if svc.attn_ffn_ratio is not None:
            a = svc.attn_ffn_ratio.prefill
            for (role, s1, _), n in counts.items():
                if role == "prefill-attn":
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
