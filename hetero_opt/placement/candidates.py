"""Candidate domains for a restricted placement model when the full one is too big for the time limit.

At 4x production every scale-out request may go to any of thousands of domains, so the full model
(every request in every domain) has about 16 times production's pod cells: neither its LP nor its
CP-SAT model can be built within a control cycle. A restricted model keeps, per request, the domains
of the service's groups, those where the hint (the greedy's counts) places it, and then the cheapest
domains with room, by tier and free GPUs, up to a share of a cell budget. The hint stays inside, so
the restricted optimum is never worse than the hint; no bound it gives is valid for the full model.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from hetero_opt.placement.binding import Counts
from hetero_opt.topology import RequestView, TopologyView


def candidate_domains(
    view: TopologyView, part: list[RequestView], hint: Counts | None, cells: int
) -> dict[str, frozenset[str]]:
    """Per scale-out request (by service id) the domains a restricted model keeps, about ``cells`` pod
    cells in all: the service's groups' and the hint's domains, then by tier (cheapest first) and free GPUs."""
    share = max(1, cells // max(1, len(part)))
    hinted: defaultdict[str, set[str]] = defaultdict(set)
    for c in hint.drafts if hint is not None else []:
        if c.units > 0:
            hinted[c.service].add(c.domain)
    out: dict[str, frozenset[str]] = {}
    for req in part:
        svc = req.service
        level = _level(view, svc.affinity)
        sized = [(t, r.gpus_per_pod) for r in svc.roles for t in r.gpu_types]
        chosen = {g.domain for g in view.groups_by_service.get(svc.id, [])} | hinted[svc.id]
        count = sum(_cells(level, d, sized) for d in chosen)
        for domain in _by_cost(view, svc.affinity):
            if count >= share:
                break
            if domain in chosen:
                continue
            counts = level.get(domain)
            # every role must have room on one of its GPU types there (a necessary condition for a unit)
            if counts and all(any(counts[(t, r.gpus_per_pod)] for t in r.gpu_types) for r in svc.roles):
                chosen.add(domain)
                count += _cells(level, domain, sized)
        out[svc.id] = frozenset(chosen)
    return out


def _cells(level: dict[str, Counter[tuple[str, int]]], domain: str, sized: list[tuple[str, int]]) -> int:
    """Pod cells (S1, type) with room for the request's roles in ``domain``."""
    counts = level.get(domain)
    return sum(counts[k] for k in sized) if counts else 0


def _level(view: TopologyView, affinity: str) -> dict[str, Counter[tuple[str, int]]]:
    """Per domain of ``affinity``: S1s with room for a pod of each (GPU type, size); once per view."""
    key = ("candidate_level", affinity)
    cached = view.memo.get(key)
    if cached is None:
        out: defaultdict[str, Counter[tuple[str, int]]] = defaultdict(Counter)
        for size, cells in view.slots_by_size.items():
            for (s1, gpu_type), n in cells.items():
                if n > 0:
                    out[view.domain_of(s1, affinity)][(gpu_type, size)] += 1
        cached = view.memo[key] = dict(out)
    result: dict[str, Counter[tuple[str, int]]] = cached  # type: ignore[assignment]
    return result


def _by_cost(view: TopologyView, affinity: str) -> list[str]:
    """Domains of ``affinity`` by their cheapest tier (the instance's tier weights), then most free GPUs,
    then id; once per view."""
    key = ("candidate_order", affinity)
    cached = view.memo.get(key)
    if cached is None:
        weight = view.instance.objective.tier_weights
        tier: dict[str, int] = {}
        free: Counter[str] = Counter()
        for s1 in view.s1_ids:
            d = view.domain_of(s1, affinity)
            w = weight[view.tier_by_s1[s1]]
            tier[d] = min(tier.get(d, w), w)
        for (s1, _), (_, frees) in view.free_nodes.items():  # free GPUs not taken, per cell
            free[view.domain_of(s1, affinity)] += sum(frees)
        cached = view.memo[key] = sorted(tier, key=lambda d: (tier[d], -free[d], d))
    result: list[str] = cached  # type: ignore[assignment]
    return result
