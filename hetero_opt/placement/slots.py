"""Solver-neutral structure of the placement model: slots, pod cells and packing rows.

The CP-SAT model (:mod:`.cpsat`), its LP relaxation (:mod:`.relaxation`) and the MILP (:mod:`.milp`)
are all built from these specs, each filling them with its own variables: the relaxation bounds
exactly the model CP-SAT solves, an LP solution maps back onto CP-SAT's slots one to one, and the
MILP cross-checks CP-SAT on the same decisions without a copy of their structure.

A scale-out request gets one *slot* per candidate domain: the service's existing group there (the
first by id) or one possible new group. A new group next to an existing one in the same domain is
never better (same pods, one more group), so it is not a slot. A scale-in request gets one slot per
existing group holding units. Pods are counted per *cell* (role, S1, GPU type); MoE prefill
replicas per S1.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from hetero_opt.placement.binding import CountKey
from hetero_opt.placement.greedy import new_group_id
from hetero_opt.topology import RequestView, TopologyView, is_chain

# Pods already placed per (S1, GPU type), as (pod size, count) pairs: their capacity is used up.
Load = Mapping[tuple[str, str], Counter[int]]


@dataclass(frozen=True)
class OutSlotSpec:
    """A group that may grow: at most ``max_units`` units, pods per cell, MoE replicas per S1."""

    request: RequestView
    group: str
    new: bool
    domain: str
    max_units: int
    cells: tuple[tuple[CountKey, int], ...]  # (cell, most pods of that cell)
    replicas: tuple[tuple[str, int], ...]  # MoE: (S1, most prefill replicas there)


@dataclass(frozen=True)
class InSlotSpec:
    """An existing group that may shrink: it holds ``held`` units, at most ``max_units`` may go;
    pods removable per cell and MoE prefill replicas removable per S1 (whole replicas on one S1)."""

    request: RequestView
    group: str
    domain: str
    held: int
    max_units: int
    cells: tuple[tuple[CountKey, int], ...]  # (cell, most pods of that cell to remove)
    replicas: tuple[tuple[str, int], ...]  # MoE: (S1, most prefill replicas to remove there)

    @property
    def can_empty(self) -> bool:
        """True when the request may remove every unit the group holds."""
        return self.max_units == self.held


def in_slot_specs(view: TopologyView, req: RequestView) -> list[InSlotSpec]:
    """Slots of scale-in request ``req``: every existing group of the service holding units, by group order."""
    svc = req.service
    specs: list[InSlotSpec] = []
    for g in view.groups_by_service.get(svc.id, []):
        held = view.units_by_group[g.id]
        if held <= 0:
            continue
        have: Counter[CountKey] = Counter()
        for p in g.pods:
            node = view.node_by_id[p.node]
            have[(p.role, node.s1, node.gpu_type)] += p.count
        ub = min(held, -req.delta)
        cells = tuple((key, min(n, svc.pods_per_unit[key[0]] * ub)) for key, n in sorted(have.items()))
        replicas: list[tuple[str, int]] = []
        ratio = svc.attn_ffn_ratio
        if ratio is not None:
            for s1 in sorted({s1 for _, s1, _ in have}):
                na = sum(n for (r, s, _), n in have.items() if r == "prefill-attn" and s == s1)
                nf = sum(n for (r, s, _), n in have.items() if r == "prefill-ffn" and s == s1)
                replicas.append((s1, min(na // ratio.prefill, nf // ratio.decode, svc.pd_ratio.prefill * ub)))
        specs.append(InSlotSpec(req, g.id, g.domain, held, ub, cells, tuple(replicas)))
    return specs


def role_capacity(view: TopologyView, req: RequestView, s1s: list[str] | None = None) -> dict[CountKey, int]:
    """Pods of each role that fit alone on each (S1, acceptable GPU type) with free GPUs; only on
    ``s1s`` if given."""
    out: dict[CountKey, int] = {}
    for role in req.service.roles:
        types = set(role.gpu_types)
        if s1s is None:
            for (s1, gpu_type), n in view.slots_by_size[role.gpus_per_pod].items():
                if gpu_type in types:
                    out[(role.name, s1, gpu_type)] = n
        else:
            by_s1 = slots_by_s1(view, role.gpus_per_pod)
            for s1 in s1s:
                for gpu_type, n in by_s1.get(s1, ()):
                    if gpu_type in types:
                        out[(role.name, s1, gpu_type)] = n
    return out


def slots_by_s1(view: TopologyView, size: int) -> dict[str, list[tuple[str, int]]]:
    """Pods of ``size`` GPUs that fit on the free GPUs of each S1, per GPU type; once per view."""
    key = ("slots_by_s1", size)
    cached = view.memo.get(key)
    if cached is None:
        out: defaultdict[str, list[tuple[str, int]]] = defaultdict(list)
        for (s1, gpu_type), n in sorted(view.slots_by_size.get(size, {}).items()):
            out[s1].append((gpu_type, n))
        cached = view.memo[key] = dict(out)
    result: dict[str, list[tuple[str, int]]] = cached  # type: ignore[assignment]
    return result


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


def out_slot_specs(view: TopologyView, req: RequestView, domains: frozenset[str] | None = None) -> list[OutSlotSpec]:
    """Slots of scale-out request ``req`` in the domains where a unit can fit, sorted by domain; only in
    ``domains`` if given (a restricted model, see :func:`candidate_domains`).

    A domain qualifies when every role (MoE: every prefill replica and decode) has room for one
    unit counting each role alone, a necessary condition; units are bounded by that room and delta.
    A domain without a group of the service qualifies only when the service may open groups.
    """
    specs = _room_specs(view, req, domains)
    if req.service.max_new_groups == 0:
        return [s for s in specs if not s.new]
    return specs


def limit_zero_keeps_out(view: TopologyView, req: RequestView) -> bool:
    """True when a new-group limit of 0 keeps scale-out request ``req`` from a domain (without a group
    of its service) that has the room :func:`out_slot_specs` asks of a slot: a reason to name the
    limit when the request is short (the domains it dropped have no slot to show it)."""
    return req.service.max_new_groups == 0 and any(s.new for s in _room_specs(view, req, None))


def _room_specs(view: TopologyView, req: RequestView, domains: frozenset[str] | None) -> list[OutSlotSpec]:
    """:func:`out_slot_specs` before the new-group limit drops the domains without a group."""
    memo_key = ("out_slot_specs", req.service.id, req.current_units, req.target_units, req.all_or_nothing, domains)
    cached = view.memo.get(memo_key)
    if isinstance(cached, list):  # the LP and each CP-SAT model of a cycle share them
        return cached
    svc = req.service
    ppu = svc.pods_per_unit
    s1s = None if domains is None else sorted(s1 for d in domains for s1 in view.s1s_by_domain.get(d, []))
    cap = role_capacity(view, req, s1s)
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
    specs: list[OutSlotSpec] = []
    for domain in sorted(by_domain):
        room = by_domain[domain]
        if svc.attn_ffn_ratio is not None:
            limits = [room["@replicas"] // svc.pd_ratio.prefill, room["decode"] // ppu["decode"]]
        else:
            limits = [room[r] // n for r, n in ppu.items()]
        ub = min([req.delta, *limits])
        gid = existing.get(domain)
        if ub <= 0:
            continue
        cells = tuple((key, min(n, ppu[key[0]] * ub)) for key, n in cap_in[domain])
        replicas = tuple((s1, min(n, svc.pd_ratio.prefill * ub)) for s1, n in rep_in[domain])
        group = new_group_id(view, svc.id, domain) if gid is None else gid
        specs.append(OutSlotSpec(req, group, gid is None, domain, ub, cells, replicas))
    view.memo[memo_key] = specs
    return specs


@dataclass
class PackingRow:
    """One capacity row ``sum coef * values[index] <= rhs`` over pod-count variables."""

    index: list[int]
    coef: list[int]
    rhs: int

    def slack(self, values: list[int]) -> int:
        """``rhs - lhs`` on a complete assignment (negative when violated)."""
        return self.rhs - sum(c * values[i] for i, c in zip(self.index, self.coef, strict=True))


def packing_rows(
    view: TopologyView,
    items: Mapping[tuple[str, str], list[tuple[int, int]]],
    upper: list[float],
    load: Load | None = None,
) -> tuple[list[PackingRow], int]:
    """Capacity rows per (S1, GPU type, size class) over ``items`` ((pod size, variable index) per cell).

    With sizes in a divisibility chain, ``sum size*x over sizes >= k <= k * sum_n floor(free_n/k)``
    is exact. Otherwise the valid relaxation ``count of pods >= k <= sum_n floor(free_n/k)`` plus
    total GPUs is used, and binding decides. Pods already placed (``load``) use capacity: they enter
    every row as constants. Rows that no assignment within ``upper`` can violate are left out.
    Returns the rows and how many (S1, GPU type) cells are not exact.
    """
    rows: list[PackingRow] = []
    relaxed = 0
    empty: Counter[int] = Counter()

    def add(big: list[tuple[int, int]], by_size: bool, rhs: int) -> None:
        index = [i for _, i in big]
        coef = [size if by_size else 1 for size, _ in big]
        if sum(c * upper[i] for c, i in zip(coef, index, strict=True)) > rhs:
            rows.append(PackingRow(index, coef, rhs))

    for key in sorted(items):
        hist = view.free_by_s1_type[key]
        fixed = (load or {}).get(key, empty)
        cell = sorted(items[key])
        sizes = sorted({size for size, _ in cell} | set(fixed))
        exact = is_chain(sizes)
        if not exact:
            relaxed += 1
            used = sum(size * n for size, n in fixed.items())
            add(cell, True, sum(f * c for f, c in hist.items()) - used)
        for k in sizes:
            big = [t for t in cell if t[0] >= k]
            if not big:
                continue
            slots_k = view.slots_by_size[k].get(key, 0) if k in view.slots_by_size else view.slots(*key, k)
            if exact:
                used = sum(size * n for size, n in fixed.items() if size >= k)
                add(big, True, k * slots_k - used)
            else:
                used = sum(n for size, n in fixed.items() if size >= k)
                add(big, False, slots_k - used)
    return rows, relaxed
