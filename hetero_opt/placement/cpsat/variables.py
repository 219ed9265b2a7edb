"""Decision variables of the CP-SAT placement model, one slot per deployment group that may change.

A scale-out request gets one *slot* per candidate domain: the service's existing group there (the
first by id) or one possible new group, guarded by a Boolean ``open``. A new group next to an
existing one in the same domain is never better (same pods, one more group), so it is not modelled.
Pod counts are aggregated per (role, S1, GPU type); MoE prefill replicas per S1. A scale-in request
gets one slot per existing group that holds units.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from ortools.sat.python import cp_model

from hetero_opt.placement.greedy import new_group_id
from hetero_opt.topology import RequestView, TopologyView

CountKey = tuple[str, str, str]  # (role, s1, gpu_type)


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


def role_capacity(view: TopologyView, req: RequestView) -> dict[CountKey, int]:
    """Pods of each role that fit alone on each (S1, acceptable GPU type) with free GPUs."""
    out: dict[CountKey, int] = {}
    for role in req.service.roles:
        types = set(role.gpu_types)
        for (s1, gpu_type), n in view.slots_by_size[role.gpus_per_pod].items():
            if gpu_type in types:
                out[(role.name, s1, gpu_type)] = n
    return out


def _replica_capacity(req: RequestView, cap: dict[CountKey, int]) -> dict[str, int]:
    """MoE: prefill replicas (a attn + f ffn pods) that fit on each S1, each role alone."""
    ratio = req.service.attn_ffn_ratio
    if ratio is None:
        return {}
    per_s1: defaultdict[tuple[str, str], int] = defaultdict(int)
    for (role, s1, _), n in cap.items():
        per_s1[(role, s1)] += n
    s1s = sorted({s1 for _, s1, _ in cap})
    out = {
        s1: min(per_s1[("prefill-attn", s1)] // ratio.prefill, per_s1[("prefill-ffn", s1)] // ratio.decode)
        for s1 in s1s
    }
    return {s1: n for s1, n in out.items() if n > 0}


def out_slots(pool: VarPool, view: TopologyView, req: RequestView) -> list[OutSlot]:
    """Slots (with their variables) of scale-out request ``req`` in domains where a unit can fit.

    A domain qualifies when every role (MoE: every prefill replica and decode) has room for one
    unit counting each role alone, a necessary condition; units are bounded by that room and delta.
    """
    svc = req.service
    ppu = svc.pods_per_unit
    cap = role_capacity(view, req)
    rep = _replica_capacity(req, cap)
    by_domain: defaultdict[str, Counter[str]] = defaultdict(Counter)
    cap_in: defaultdict[str, list[tuple[CountKey, int]]] = defaultdict(list)
    rep_in: defaultdict[str, list[tuple[str, int]]] = defaultdict(list)
    for key, n in sorted(cap.items()):
        domain = view.domain_of(key[1], svc.affinity)
        by_domain[domain][key[0]] += n
        if key[0] == "decode" or svc.attn_ffn_ratio is None or key[1] in rep:
            cap_in[domain].append((key, n))
    for s1, n in sorted(rep.items()):
        domain = view.domain_of(s1, svc.affinity)
        by_domain[domain]["@replicas"] += n
        rep_in[domain].append((s1, n))
    existing: dict[str, str] = {}
    for g in view.groups_by_service.get(svc.id, []):
        existing.setdefault(g.domain, g.id)
    slots: list[OutSlot] = []
    for domain in sorted(by_domain):
        room = by_domain[domain]
        if svc.attn_ffn_ratio is not None:
            limits = [room["@replicas"] // svc.pd_ratio.prefill, room["decode"] // ppu["decode"]]
        else:
            limits = [room[r] // n for r, n in ppu.items()]
        ub = min([req.delta, *limits])
        gid = existing.get(domain)
        if ub <= 0 or (gid is None and svc.max_new_groups == 0):
            continue
        tag = f"{svc.id}|{domain}"
        if gid is None:
            is_open = pool.bool_var(f"open[{tag}]")
            slot = OutSlot(req, new_group_id(view, svc.id, domain), True, domain, pool.int_var(0, ub, f"u[{tag}]"))
            slot.open = is_open
        else:
            slot = OutSlot(req, gid, False, domain, pool.int_var(0, ub, f"u[{tag}]"))
        for (role, s1, gpu_type), n in cap_in[domain]:
            name = f"x[{tag}|{role}|{s1}|{gpu_type}]"
            slot.pods[(role, s1, gpu_type)] = pool.int_var(0, min(n, ppu[role] * ub), name)
        for s1, n in rep_in[domain]:
            slot.replicas[s1] = pool.int_var(0, min(n, svc.pd_ratio.prefill * ub), f"y[{tag}|{s1}]")
        slots.append(slot)
    return slots


def in_slots(pool: VarPool, view: TopologyView, req: RequestView) -> list[InSlot]:
    """Slots of scale-in request ``req``: every existing group of the service holding units."""
    svc = req.service
    slots: list[InSlot] = []
    for g in view.groups_by_service.get(svc.id, []):
        held = view.units_by_group[g.id]
        if held <= 0:
            continue
        have: defaultdict[CountKey, int] = defaultdict(int)
        for p in g.pods:
            node = view.node_by_id[p.node]
            have[(p.role, node.s1, node.gpu_type)] += p.count
        ub = min(held, -req.delta)
        slot = InSlot(req, g.id, g.domain, held, pool.int_var(0, ub, f"v[{g.id}]"), pool.bool_var(f"e[{g.id}]"))
        for key, n in sorted(have.items()):
            slot.pods[key] = pool.int_var(0, min(n, svc.pods_per_unit[key[0]] * ub), f"z[{g.id}|{'|'.join(key)}]")
        ratio = svc.attn_ffn_ratio
        if ratio is not None:
            for s1 in sorted({s1 for _, s1, _ in have}):
                na = sum(n for (r, s, _), n in have.items() if r == "prefill-attn" and s == s1)
                nf = sum(n for (r, s, _), n in have.items() if r == "prefill-ffn" and s == s1)
                n = min(na // ratio.prefill, nf // ratio.decode, svc.pd_ratio.prefill * ub)
                slot.replicas[s1] = pool.int_var(0, n, f"w[{g.id}|{s1}]")
        slots.append(slot)
    return slots
