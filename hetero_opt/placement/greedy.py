"""The paper's greedy placement (HeteroScale Algorithm 4), kept faithful as baseline and fallback.

Requests are taken by service priority. A scale-out walks the RDMA subgroups from low to high tier
and fills them unit by unit with virtual allocation (each pod is deducted from the tree view at
once, best-fit on nodes); inside a subgroup it expands the service's existing deployment group of
that domain, or opens a new one while the service's new-group limit allows (§3.4). A scale-in
shrinks the groups on the highest tiers first. An all-or-nothing request (format 1.1, beyond the
paper) is undone when it falls short, and re-placed in the domains that hold the most units when the
new-group limit is what stopped it. The result is counts per group change (:func:`greedy_counts`);
node binding follows (best-fit decreasing), in one place for every solver.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

from hetero_opt.instance import TIERS, Instance, Service
from hetero_opt.placement.binding import CountKey, Counts, FreePool, GroupDraft, bind_plan
from hetero_opt.placement.plan import Plan
from hetero_opt.topology import RequestView, TopologyView, build_view

TIER_RANK = {t: i for i, t in enumerate(TIERS)}


def greedy_counts(view: TopologyView, requests: list[RequestView] | None = None) -> Counts:
    """Place the view's requests (or only ``requests``) with Algorithm 4: counts per group change.

    Units are allocated virtually node by node (best fit in the tree view), so the counts carry
    those node picks as a binding known to fit; :func:`~hetero_opt.placement.binding.bind_plan`
    binds the counts (best-fit decreasing) and falls back on the picks only where that fails.
    ``view`` may hold GPUs already promised to other changes (:meth:`TopologyView.with_taken`).
    """
    pools = _Capacity(view)
    drafts: list[GroupDraft] = []
    picks: list[Counter[tuple[str, str]]] = []
    reasons: dict[str, str] = {}
    for req in view.requests if requests is None else requests:
        mark = len(drafts)
        limited = False  # the new-group limit kept the walk from a domain that may hold a unit
        if req.delta > 0:
            got, reason, limited = _scale_out(view, pools, req, drafts, picks)
        elif req.delta < 0:
            got, reason = _scale_in(view, req, drafts, picks)
        else:
            continue
        if req.all_or_nothing and got not in (0, req.delta):
            # The walk stops opening groups at the service's limit, possibly in domains too small for the
            # gang while a larger one holds it: then place it in the domains that hold the most, if any do.
            _undo(view, pools, drafts, picks, mark)
            if limited:
                got = _gang_out(view, pools, req, drafts, picks)
                if got == req.delta:
                    continue
                reason = (
                    f"all or nothing: only {got} of {req.delta} units fit within {req.service.affinity} affinity, "
                    f"GPU types and new-group limit {req.service.max_new_groups}"
                )
            else:
                reason = f"all or nothing: only {abs(got)} of {abs(req.delta)} units fit ({reason})"
            got = 0
        if got != req.delta:
            reasons[req.service.id] = reason
    return Counts(drafts, reasons, picks)


def greedy_plan(
    instance: Instance, view: TopologyView | None = None, requests: list[RequestView] | None = None
) -> Plan:
    """Place ``instance``'s requests (or only ``requests``) with Algorithm 4; a bound, canonical plan."""
    view = view or build_view(instance)
    return bind_plan(view, greedy_counts(view, requests), requests)


class _Capacity:
    """The free GPUs the greedy allocates from: a best-fit pool per (S1, GPU type), built when first
    used, and the free GPUs per (S1, GPU type) and per GPU type of each subgroup, so a subgroup or a
    domain where no unit can fit is passed over at once (at scale most requests walk many full ones)."""

    def __init__(self, view: TopologyView) -> None:
        self.view = view
        self.nodes = view.free_nodes
        self.pools: dict[tuple[str, str], FreePool] = {}
        self.subgroup_of = view.subgroup_by_s1
        self.by_subgroup: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.by_cell: dict[tuple[str, str], int] = {}
        for (s1, gpu_type), (_, frees) in self.nodes.items():
            free = self.by_cell[(s1, gpu_type)] = sum(frees)
            self.by_subgroup[self.subgroup_of[s1]][gpu_type] += free

    def take(self, s1: str, gpu_type: str, size: int) -> str | None:
        """Best-fit one pod of ``size`` GPUs on (S1, GPU type); its node, or None."""
        pool = self.pools.get((s1, gpu_type))
        if pool is None:
            if (s1, gpu_type) not in self.nodes:
                return None
            pool = self.pools[(s1, gpu_type)] = FreePool.of(self.view, (s1, gpu_type))
        node = pool.take(size)
        if node is not None:
            self.by_subgroup[self.subgroup_of[s1]][gpu_type] -= size
            self.by_cell[(s1, gpu_type)] -= size
        return node

    def give(self, s1: str, gpu_type: str, node: str, size: int) -> None:
        """Undo a :meth:`take`."""
        self.pools[(s1, gpu_type)].give(node, size)
        self.by_subgroup[self.subgroup_of[s1]][gpu_type] += size
        self.by_cell[(s1, gpu_type)] += size

    def may_fit(self, subgroup: str, shape: _UnitShape) -> bool:
        """False when the subgroup's free GPUs cannot hold one unit's pods of some role (necessary only)."""
        free = self.by_subgroup.get(subgroup)
        if not free:
            return False
        return all(sum(free[t] for t in shape.types[role]) >= n * shape.size[role] for role, n in shape.need)

    def domain_may_fit(self, s1s: list[str], shape: _UnitShape) -> bool:
        """False when the free GPUs of ``s1s`` cannot hold one unit's pods of some role (necessary only:
        what a unit attempt there would find, without taking and giving back its first pods)."""
        by_cell = self.by_cell
        for role, n in shape.need:
            need = n * shape.size[role]
            for gpu_type in shape.types[role]:
                for s1 in s1s:
                    need -= by_cell.get((s1, gpu_type), 0)
                    if need <= 0:
                        break
                if need <= 0:
                    break
            if need > 0:
                return False
        return True


def _undo(
    view: TopologyView,
    pools: _Capacity,
    drafts: list[GroupDraft],
    picks: list[Counter[tuple[str, str]]],
    mark: int,
) -> None:
    """Take back every draft from index ``mark`` on, returning added pods' GPUs to their pools."""
    for d, p in zip(drafts[mark:], picks[mark:], strict=True):
        svc = view.service_by_id[d.service]
        for (role, node_id), n in p.items():
            node = view.node_by_id[node_id]
            for _ in range(n):
                pools.give(node.s1, node.gpu_type, node_id, svc.role(role).gpus_per_pod)
    del drafts[mark:]
    del picks[mark:]


def new_group_id(view: TopologyView, service: str, domain: str) -> str:
    """Deterministic id of a new group of ``service`` in ``domain`` (unique in the instance)."""
    base = f"{service}@{domain}"
    gid, k = base, 1
    while gid in view.group_by_id:
        k += 1
        gid = f"{base}#{k}"
    return gid


def _scale_out(
    view: TopologyView,
    pools: _Capacity,
    req: RequestView,
    drafts: list[GroupDraft],
    picks: list[Counter[tuple[str, str]]],
) -> tuple[int, str, bool]:
    """Units placed, why not all (or ""), and whether the new-group limit kept the walk from a domain
    that may hold a unit (the reason names the limit whenever it kept the walk from any domain)."""
    svc = req.service
    existing, with_group, by_subgroup, shape = _walk_of(view, svc)
    opened: dict[str, int] = {}
    left, new_blocked, new_groups, limit_cost = req.delta, False, 0, False
    for sg in _walk(view, with_group):
        by_domain = by_subgroup[sg]  # sorted by domain id; the service's own domains go first
        if left > 0 and not pools.may_fit(sg, shape):
            # What walking its domains would find: no unit fits; a domain the new-group limit blocks.
            if not new_blocked and new_groups >= svc.max_new_groups:
                new_blocked = any(d not in existing and d not in opened for d in by_domain)
            continue
        mine = [d for d in by_domain if d in existing]
        for domain in mine + [d for d in by_domain if d not in existing] if mine else by_domain:
            if left == 0:
                return req.delta, "", False
            draft_idx = opened.get(domain)
            if draft_idx is None and domain not in existing and new_groups >= svc.max_new_groups:
                new_blocked = True
                limit_cost = limit_cost or pools.domain_may_fit(by_domain[domain], shape)
                continue
            while left > 0 and pools.domain_may_fit(by_domain[domain], shape):
                taken = _place_unit(pools, shape, by_domain[domain])
                if taken is None:
                    break
                if draft_idx is None:
                    gid = existing.get(domain) or new_group_id(view, svc.id, domain)
                    drafts.append(GroupDraft(svc.id, gid, domain not in existing, domain, 0))
                    picks.append(Counter())
                    draft_idx = opened[domain] = len(drafts) - 1
                    new_groups += domain not in existing
                draft = drafts[draft_idx]
                draft.units += 1
                for role, s1, gpu_type, node in taken:
                    draft.counts[(role, s1, gpu_type)] += 1
                    picks[draft_idx][(role, node)] += 1
                left -= 1
    if left == 0:
        return req.delta, "", False
    why = f"no capacity for {left} more units within {svc.affinity} affinity and GPU types"
    if new_blocked:
        why += f"; new-group limit {svc.max_new_groups} reached"
    return req.delta - left, why, limit_cost


def _walk_of(
    view: TopologyView, svc: Service
) -> tuple[dict[str, str], set[str], dict[str, dict[str, list[str]]], _UnitShape]:
    """What a scale-out of ``svc`` walks: its groups by domain, the subgroups holding one, the domains
    (and their S1s) of each subgroup at its affinity, and its unit's shape."""
    existing = {g.domain: g.id for g in reversed(view.groups_by_service.get(svc.id, []))}
    with_group = {view.subgroup_by_s1[s1] for d in existing for s1 in view.s1s_by_domain.get(d, [])}
    return existing, with_group, _domains(view, svc.affinity), _UnitShape.of(svc)


def _gang_out(
    view: TopologyView,
    pools: _Capacity,
    req: RequestView,
    drafts: list[GroupDraft],
    picks: list[Counter[tuple[str, str]]],
) -> int:
    """Place an all-or-nothing scale-out whole in the domains that hold the most units, or place nothing.

    Returns the units placed (``req.delta``) or, when nothing is placed, the most units the service's
    own domains and its new-group limit allow. The domains of one affinity level are disjoint, so each
    one's units are counted apart (placed and given back, at most ``req.delta``), in walk order; the
    service's own domains open no group and always count, then the new domains holding the most, as
    few as reach the delta, placed in walk order. Exact for a single-role service (a domain holds what
    its nodes hold of whole pods); for P/D units the count per domain is the greedy's own packing.
    """
    svc = req.service
    existing, with_group, by_subgroup, shape = _walk_of(view, svc)
    s1s_of: dict[str, list[str]] = {}  # every domain's S1s, domains and S1s in walk order
    for sg in _walk(view, with_group):
        for domain, s1s in by_subgroup[sg].items():
            s1s_of.setdefault(domain, []).extend(s1s)

    def fill(s1s: list[str], most: int) -> list[list[tuple[str, str, str, str]]]:
        units: list[list[tuple[str, str, str, str]]] = []
        while len(units) < most and pools.domain_may_fit(s1s, shape):
            taken = _place_unit(pools, shape, s1s)
            if taken is None:
                break
            units.append(taken)
        return units

    holds: dict[str, int] = {}
    best: list[int] = []  # units of the new domains that count: the most, as many as the limit allows
    own = new = 0  # units of the own domains; of the best new domains
    for domain, s1s in s1s_of.items():
        if domain not in existing and not svc.max_new_groups:
            continue
        units = fill(s1s, req.delta)
        for taken in reversed(units):
            for role, s1, gpu_type, node in reversed(taken):
                pools.give(s1, gpu_type, node, shape.size[role])
        n = holds[domain] = len(units)
        if domain in existing:
            own += n
        elif len(best) < svc.max_new_groups:
            heapq.heappush(best, n)
            new += n
        elif best and n > best[0]:
            new += n - heapq.heapreplace(best, n)
        if own + new >= req.delta:  # enough among the domains the walk reaches first
            break
    if own + new < req.delta:
        return own + new
    chosen = {d for d in holds if d in existing}
    left = req.delta - own
    for domain in sorted((d for d in holds if d not in existing), key=lambda d: -holds[d]):
        if left <= 0:
            break
        chosen.add(domain)
        left -= holds[domain]
    left, mark = req.delta, len(drafts)
    for domain in (d for d in holds if d in chosen):
        units = fill(s1s_of[domain], left)
        if not units:
            continue
        gid = existing.get(domain) or new_group_id(view, svc.id, domain)
        draft = GroupDraft(svc.id, gid, domain not in existing, domain, len(units))
        pick: Counter[tuple[str, str]] = Counter()
        for taken in units:
            for role, s1, gpu_type, node in taken:
                draft.counts[(role, s1, gpu_type)] += 1
                pick[(role, node)] += 1
        drafts.append(draft)
        picks.append(pick)
        left -= len(units)
    if left > 0:  # P/D units packed otherwise than when counted: nothing, as the request asks
        _undo(view, pools, drafts, picks, mark)
    return req.delta - left


def _walk(view: TopologyView, with_group: set[str]) -> Iterator[str]:
    """Subgroups in the order a scale-out tries them: by tier, low first; within a tier those holding
    one of the service's groups (``with_group``) first, then by id. Lazy: most requests are served
    within the first few of a large cluster's thousands of subgroups."""
    for block in _tier_blocks(view):
        mine = [sg for sg in block if sg in with_group] if with_group else []
        yield from mine
        if mine:
            yield from (sg for sg in block if sg not in with_group)
        else:
            yield from block


def _domains(view: TopologyView, affinity: str) -> dict[str, dict[str, list[str]]]:
    """Per subgroup, its S1s by the ``affinity`` domain holding them; computed once per view."""
    key = ("greedy_domains", affinity)
    cached = view.memo.get(key)
    if cached is None:
        out: dict[str, dict[str, list[str]]] = {}
        for _, sg, s1s in _subgroup_order(view):
            by_domain: defaultdict[str, list[str]] = defaultdict(list)
            for s1 in s1s:
                by_domain[view.domain_of(s1, affinity)].append(s1)
            out[sg] = dict(sorted(by_domain.items()))
        cached = view.memo[key] = out
    domains: dict[str, dict[str, list[str]]] = cached  # type: ignore[assignment]
    return domains


def _subgroup_order(view: TopologyView) -> list[tuple[int, str, list[str]]]:
    """(tier rank, subgroup, its S1s) of every subgroup, by tier rank then id; computed once per view."""
    cached = view.memo.get("greedy_subgroup_order")
    if cached is None:
        s1s_by_sg: defaultdict[str, list[str]] = defaultdict(list)
        for s1 in view.s1_ids:
            s1s_by_sg[view.subgroup_by_s1[s1]].append(s1)
        cached = view.memo["greedy_subgroup_order"] = sorted(
            (TIER_RANK[view.tier_by_s1[s1s[0]]], sg, s1s) for sg, s1s in s1s_by_sg.items()
        )
    out: list[tuple[int, str, list[str]]] = cached  # type: ignore[assignment]
    return out


def _tier_blocks(view: TopologyView) -> list[list[str]]:
    """Subgroup ids per tier, low tier first, each sorted by id; computed once per view."""
    cached = view.memo.get("greedy_tier_blocks")
    if cached is None:
        blocks: defaultdict[int, list[str]] = defaultdict(list)
        for rank, sg, _ in _subgroup_order(view):
            blocks[rank].append(sg)
        cached = view.memo["greedy_tier_blocks"] = [blocks[r] for r in sorted(blocks)]
    out: list[list[str]] = cached  # type: ignore[assignment]
    return out


@dataclass(frozen=True)
class _UnitShape:
    """One unit of a service as Algorithm 4 places it, looked up once per request (not per pod)."""

    size: dict[str, int]  # GPUs per pod, by role
    types: dict[str, tuple[str, ...]]  # acceptable GPU types, preferred first, by role
    pods: list[tuple[str, int]]  # (role, pods per unit) placed across the region, largest pods first
    moe: tuple[int, int, int] | None  # (prefill replicas, attn pods, ffn pods per replica), per S1
    need: list[tuple[str, int]]  # (role, pods per unit) of every role

    @classmethod
    def of(cls, svc: Service) -> _UnitShape:
        size: dict[str, int] = {r.name: r.gpus_per_pod for r in svc.roles}
        types: dict[str, tuple[str, ...]] = {r.name: tuple(r.gpu_types) for r in svc.roles}
        per_unit = svc.pods_per_unit
        need = sorted(per_unit.items())
        if svc.attn_ffn_ratio is not None:
            moe = (svc.pd_ratio.prefill, svc.attn_ffn_ratio.prefill, svc.attn_ffn_ratio.decode)
            return cls(size, types, [("decode", per_unit["decode"])], moe, need)
        return cls(size, types, [(r, per_unit[r]) for r in sorted(per_unit, key=lambda r: -size[r])], None, need)


def _place_unit(pools: _Capacity, shape: _UnitShape, s1s: list[str]) -> list[tuple[str, str, str, str]] | None:
    """Virtually allocate one unit inside ``s1s``; return (role, S1, type, node) per pod or None."""
    taken: list[tuple[str, str, str, str]] = []

    def take(role: str, region: list[str]) -> bool:
        size = shape.size[role]
        for gpu_type in shape.types[role]:
            for s1 in region:
                node = pools.take(s1, gpu_type, size)
                if node is not None:
                    taken.append((role, s1, gpu_type, node))
                    return True
        return False

    def undo(upto: int) -> None:
        while len(taken) > upto:
            role, s1, gpu_type, node = taken.pop()
            pools.give(s1, gpu_type, node, shape.size[role])

    if shape.moe is not None:
        replicas, a, f = shape.moe
        for _ in range(replicas):
            for s1 in s1s:
                mark = len(taken)
                if all(take("prefill-attn", [s1]) for _ in range(a)) and all(
                    take("prefill-ffn", [s1]) for _ in range(f)
                ):
                    break
                undo(mark)
            else:
                undo(0)
                return None
    for role, n in shape.pods:
        for _ in range(n):
            if not take(role, s1s):
                undo(0)
                return None
    return taken


def _scale_in(
    view: TopologyView,
    req: RequestView,
    drafts: list[GroupDraft],
    picks: list[Counter[tuple[str, str]]],
) -> tuple[int, str]:
    svc = req.service
    groups = view.groups_by_service.get(svc.id, [])

    def group_tier(gid: str) -> int:
        g = view.group_by_id[gid]
        return max((TIER_RANK[view.tier_by_s1[view.node_by_id[p.node].s1]] for p in g.pods), default=0)

    order = sorted(
        (g.id for g in groups if view.units_by_group[g.id] > 0),
        key=lambda gid: (-group_tier(gid), view.units_by_group[gid], gid),
    )
    left = -req.delta
    for gid in order:
        if left == 0:
            break
        k = min(left, view.units_by_group[gid])
        g = view.group_by_id[gid]
        counts = _removal_counts(view, svc, g.id, k)
        drafts.append(GroupDraft(svc.id, gid, False, g.domain, -k, counts))
        picks.append(Counter())
        left -= k
    if left == 0:
        return req.delta, ""
    return req.delta + left, f"groups hold only {-req.delta - left} removable units"


def _removal_counts(view: TopologyView, svc: Service, gid: str, k: int) -> Counter[CountKey]:
    """Pods to remove for ``k`` units of group ``gid``: premium tiers and non-preferred types first."""
    g = view.group_by_id[gid]
    have: Counter[CountKey] = Counter()
    for p in g.pods:
        node = view.node_by_id[p.node]
        have[(p.role, node.s1, node.gpu_type)] += p.count

    def cost_key(key: CountKey) -> tuple[int, int, str, str]:
        role, s1, gpu_type = key
        return (-TIER_RANK[view.tier_by_s1[s1]], -view.gpu_rank(svc, role, gpu_type), s1, gpu_type)

    out: Counter[CountKey] = Counter()
    roles = dict(svc.pods_per_unit)
    if svc.attn_ffn_ratio is not None:
        a, f = svc.attn_ffn_ratio.prefill, svc.attn_ffn_ratio.decode
        replicas = k * svc.pd_ratio.prefill
        by_s1: defaultdict[str, dict[str, list[CountKey]]] = defaultdict(lambda: defaultdict(list))
        for key in have:
            if key[0] != "decode":
                by_s1[key[1]][key[0]].append(key)
        for s1 in sorted(by_s1, key=lambda s: (-TIER_RANK[view.tier_by_s1[s]], s)):
            attn = sorted(by_s1[s1]["prefill-attn"], key=cost_key)
            ffn = sorted(by_s1[s1]["prefill-ffn"], key=cost_key)
            n = min(replicas, sum(have[x] for x in attn) // a, sum(have[x] for x in ffn) // f)
            for keys, need in ((attn, n * a), (ffn, n * f)):
                for key in keys:
                    t = min(need, have[key])
                    if t:
                        out[key] += t
                        need -= t
            replicas -= n
        roles = {"decode": roles["decode"]}
    for role, per_unit in roles.items():
        need = k * per_unit
        for key in sorted((x for x in have if x[0] == role), key=cost_key):
            t = min(need, have[key])
            if t:
                out[key] += t
                need -= t
    return out
