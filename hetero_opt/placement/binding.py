"""From pod counts per (group, role, S1, GPU type) to pods on named nodes.

Solvers decide counts (:class:`Counts`); binding names nodes (:func:`bind_plan`, called once per
plan by :func:`~hetero_opt.placement.solve.solve`). Additions are bound best-fit decreasing per
(S1, GPU type): largest pods first, each onto the node with the fewest free GPUs that still fits it,
which keeps whole nodes free; where a cell's nodes differ in size and best fit used whole free nodes,
the pods go to used nodes first and then to the fewest whole nodes that hold them, when that keeps
more nodes whole (term 5). When pod sizes form a divisibility chain and the counts respect the
per-size-class packing rows (SYSTEM.md), this never fails. Removals take the group's pods from its
least-used nodes first, so nodes empty out.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from hetero_opt.placement.plan import GroupChange, Plan, PodChange, Unserved
from hetero_opt.topology import RequestView, TopologyView, is_chain


class BindingError(RuntimeError):
    """Counts that cannot be bound to nodes (only possible when pod sizes are not a chain)."""


CountKey = tuple[str, str, str]  # (role, s1, gpu_type)


@dataclass
class GroupDraft:
    """A group change before binding: units and pod counts per (role, S1, GPU type)."""

    service: str
    group: str
    new: bool
    domain: str
    units: int
    counts: Counter[CountKey] = field(default_factory=Counter)


NodePicks = Counter[tuple[str, str]]  # pods per (role, node) of one draft


def units_of(drafts: Iterable[GroupDraft]) -> Counter[str]:
    """Net units ``drafts`` add (or remove) per service (0 for a service without a draft)."""
    units: Counter[str] = Counter()
    for d in drafts:
        units[d.service] += d.units
    return units


@dataclass
class Counts:
    """What a placement backend decides: pod counts per group change, before any node is named.

    ``reasons`` says, per service whose request the counts do not fully serve, why (the backend's
    words; :func:`bind_plan` derives the unserved records themselves from the counts). ``picks`` are
    node picks per draft known to fit (the greedy's virtual allocation), used only where
    :func:`bind` cannot bind the counts.
    """

    drafts: list[GroupDraft] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)
    picks: list[NodePicks] | None = None

    def units_by_service(self) -> Counter[str]:
        """Net units the counts add (or remove) per service."""
        return units_of(self.drafts)


class FreePool:
    """Free GPUs of the nodes of one (S1, GPU type), bucketed by free count for best-fit.

    ``total`` (free GPUs of all its nodes) lets a pod that cannot fit be refused at once: the
    greedy tries many full (S1, GPU type) pools per request at scale.
    """

    def __init__(self, nodes: Iterable[tuple[str, int]], *, in_id_order: bool = False) -> None:
        self.buckets: defaultdict[int, list[str]] = defaultdict(list)
        self.free: dict[str, int] = {}
        for node_id, free in nodes if in_id_order else sorted(nodes):
            self.free[node_id] = free
            if free > 0:
                self.buckets[free].append(node_id)
        self.max_free = max(self.free.values(), default=0)
        self.total = sum(self.free.values())

    @classmethod
    def of(cls, view: TopologyView, key: tuple[str, str]) -> FreePool:
        """A fresh pool of the nodes of ``key`` (S1, GPU type) with the free GPUs ``view`` has not promised."""
        ids, frees = view.free_nodes.get(key, ((), ()))
        return cls(zip(ids, frees, strict=True), in_id_order=True)  # the view keeps each cell's ids ascending

    def take(self, size: int) -> str | None:
        """Put one pod of ``size`` GPUs on the best-fitting node; return it, or None."""
        if size > self.total:
            return None
        for free in range(size, self.max_free + 1):
            bucket = self.buckets.get(free)
            if bucket:
                node_id = bucket.pop(0)
                self.free[node_id] = free - size
                self.total -= size
                if free - size > 0:
                    bisect.insort(self.buckets[free - size], node_id)
                return node_id
        return None

    def give(self, node_id: str, size: int) -> None:
        """Undo a :meth:`take` of ``size`` GPUs on ``node_id``."""
        free = self.free[node_id]
        if free > 0:
            self.buckets[free].remove(node_id)
        self.free[node_id] = free + size
        self.total += size
        bisect.insort(self.buckets[free + size], node_id)


def bind(view: TopologyView, drafts: list[GroupDraft]) -> list[GroupChange]:
    """Bind every draft's counts to nodes; raise :class:`BindingError` if additions do not fit.

    GPUs the view has promised to other changes (:meth:`TopologyView.with_taken`) are not used.
    """
    items: defaultdict[tuple[str, str], list[tuple[int, int, str, int]]] = defaultdict(list)
    for i, d in enumerate(drafts):
        if d.units <= 0:
            continue
        svc = view.service_by_id[d.service]
        for (role, s1, gpu_type), n in d.counts.items():
            if n > 0:
                items[(s1, gpu_type)].append((-svc.role(role).gpus_per_pod, i, role, n))
    pods: list[Counter[tuple[str, str]]] = [Counter() for _ in drafts]
    for key in sorted(items):
        pool = FreePool.of(view, key) if key in view.free_nodes else None
        placed = _best_fit(pool, sorted(items[key])) if pool else None
        if placed is not None:
            placed = _fewer_whole_nodes(view, key, sorted(items[key]), placed)
        if placed is None and pool and not is_chain([-size for size, _, _, _ in items[key]]):
            placed = _exact_packing(pool, sorted(items[key]))  # best fit is exact for a chain of sizes
        if placed is None:
            _, i, role, _ = sorted(items[key])[0]
            raise BindingError(f"cannot bind {role} pods of '{drafts[i].group}' on S1 '{key[0]}' ({key[1]})")
        for i, role, node in placed:
            pods[i][(role, node)] += 1
    for i, d in enumerate(drafts):
        if d.units < 0:
            pods[i] = bind_removal(view, d)
    return [_change(d, pods[i]) for i, d in enumerate(drafts)]


def _best_fit(pool: FreePool, items: list[tuple[int, int, str, int]]) -> list[tuple[int, str, str]] | None:
    """Best-fit decreasing of ``items`` ((-size, draft, role, count), largest first) into ``pool``.

    Returns (draft, role, node) per pod, or None (and ``pool`` as it was) when one does not fit.
    """
    placed: list[tuple[int, str, str, int]] = []
    for neg_size, i, role, n in items:
        for _ in range(n):
            node = pool.take(-neg_size)
            if node is None:
                for _, _, node_id, size in placed:
                    pool.give(node_id, size)
                return None
            placed.append((i, role, node, -neg_size))
    return [(i, role, node) for i, role, node, _ in placed]


def _fewer_whole_nodes(
    view: TopologyView, key: tuple[str, str], items: list[tuple[int, int, str, int]], placed: list[tuple[int, str, str]]
) -> list[tuple[int, str, str]]:
    """``placed`` (best fit of ``items`` into cell ``key``), or a binding that touches fewer whole free nodes.

    Best fit takes the node with the fewest free GPUs that fits, which keeps whole nodes whole when a
    cell's nodes are alike. When they are not (a whole free node smaller than another, or smaller than
    a used node's free GPUs), it can use two small whole nodes where one larger would do and leave fewer
    nodes whole (term 5). Then the other way is tried: pods on the used nodes first (best fit), the rest
    on as few whole nodes as hold them, the largest first; it is kept only if it leaves strictly more
    whole nodes, so cells of like nodes keep their binding.
    """
    whole_ids, taken = view.whole_free_ids, view.taken
    used = {n for _, _, n in placed if n in whole_ids and not taken.get(n)}
    if not used:  # most cells: best fit used no whole node
        return placed
    free = dict(zip(*view.free_nodes[key], strict=True))  # as FreePool.of(view, key) starts
    whole = {n: f for n, f in free.items() if n in whole_ids and not taken.get(n)}
    partial_most = max((f for n, f in free.items() if n not in whole), default=0)
    if len(set(whole.values())) < 2 and partial_most < min(whole.values()):
        return placed  # best fit already packs whole nodes one by one
    partial = FreePool((n, f) for n, f in free.items() if n not in whole)
    out: list[tuple[int, str, str]] = []
    rest: list[tuple[int, int, str, int]] = []
    for neg_size, i, role, n in items:
        for _ in range(n):
            node = partial.take(-neg_size)
            if node is None:
                rest.append((neg_size, i, role, 1))
            else:
                out.append((i, role, node))
    largest = sorted(whole, key=lambda n: (-whole[n], n))
    need, fewest = sum(-neg_size for neg_size, _, _, _ in rest), 0
    while need > 0 and fewest < len(largest):
        need -= whole[largest[fewest]]
        fewest += 1
    for k in range(fewest, len(used)):  # fewer nodes than best fit used, or nothing to gain
        packed = _best_fit(FreePool((n, whole[n]) for n in largest[:k]), rest)
        if packed is not None:
            return out + packed
    return placed


def _exact_packing(pool: FreePool, items: list[tuple[int, int, str, int]]) -> list[tuple[int, str, str]] | None:
    """Pods of ``items`` per node by a small CP-SAT feasibility model (sizes outside a chain); None if none fits.

    One integer per (item, node): the item's pods on the node; each item places all its pods and
    each node holds at most its free GPUs. Deterministic (one worker, fixed seed).
    """
    from ortools.sat.python import cp_model  # binding is pure Python unless best fit fails

    from hetero_opt.placement.cp_solver import new_cp_solver

    nodes = sorted(n for n, free in pool.free.items() if free > 0)
    model = cp_model.CpModel()
    y: dict[tuple[int, str], cp_model.IntVar] = {}
    for k, (neg_size, _, _, n) in enumerate(items):
        fits = [node for node in nodes if pool.free[node] >= -neg_size]
        for node in fits:
            y[(k, node)] = model.new_int_var(0, min(n, pool.free[node] // -neg_size), f"y{k}_{node}")
        model.add(sum(y[(k, node)] for node in fits) == n)
    for node in nodes:
        terms = [(-items[k][0], var) for (k, nd), var in y.items() if nd == node]
        if terms:
            model.add(sum(size * var for size, var in terms) <= pool.free[node])
    solver = new_cp_solver()
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = 0
    solver.parameters.max_deterministic_time = 2.0  # a cell of a few sizes and nodes: milliseconds
    solver.parameters.max_time_in_seconds = 10.0  # safety net
    if solver.solve(model) not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    placed: list[tuple[int, str, str]] = []
    for (k, node), var in sorted(y.items(), key=lambda kv: kv[0]):
        _, i, role, _ = items[k]
        for _ in range(solver.value(var)):
            placed.append((i, role, node))
            size = -items[k][0]
            pool.free[node] -= size
            pool.total -= size
    return placed


def bind_removal(view: TopologyView, d: GroupDraft) -> Counter[tuple[str, str]]:
    """Pods (role, node) that remove ``d``'s counts from its group: the least-used nodes first."""
    group = view.group_by_id[d.group]
    have: defaultdict[CountKey, list[tuple[int, str, int]]] = defaultdict(list)
    for p in group.pods:
        node = view.node_by_id[p.node]
        have[(p.role, node.s1, node.gpu_type)].append((node.gpus_total - node.gpus_free, node.id, p.count))
    out: Counter[tuple[str, str]] = Counter()
    for key, n in sorted(d.counts.items()):
        left = n
        for _, node_id, count in sorted(have[key]):
            take = min(left, count)
            if take:
                out[(key[0], node_id)] += take
                left -= take
        if left:
            raise BindingError(f"group '{d.group}' has too few {key[0]} pods on S1 '{key[1]}' to remove")
    return out


def bind_plan(view: TopologyView, counts: Counts, requests: list[RequestView] | None = None) -> Plan:
    """The canonical plan of ``counts``: every draft bound to nodes, the unserved records of ``requests``
    (default: the view's) derived from the units the drafts place, in sorted order.

    Raises
    ------
    BindingError
        If the additions do not fit and ``counts`` carries no node picks to fall back on.
    """
    order = sorted(range(len(counts.drafts)), key=lambda i: (counts.drafts[i].service, counts.drafts[i].group))
    drafts = [counts.drafts[i] for i in order]
    try:
        changes = bind(view, drafts)
    except BindingError:
        if counts.picks is None:
            raise
        # Sizes outside a divisibility chain: keep the known node picks for additions, which fit;
        # removals have no picks and are bound as bind() binds them.
        changes = [
            _change(d, counts.picks[i] if d.units > 0 else bind_removal(view, d))
            for i, d in zip(order, drafts, strict=True)
        ]
    placed = counts.units_by_service()
    unserved = [
        Unserved(
            service=r.service.id,
            wanted_units=r.delta,
            placed_units=placed.get(r.service.id, 0),
            reason=counts.reasons.get(r.service.id) or _default_reason(r, placed.get(r.service.id, 0)),
        )
        for r in sorted(view.requests if requests is None else requests, key=lambda r: r.service.id)
        if r.delta != 0 and placed.get(r.service.id, 0) != r.delta
    ]
    return Plan(changes=changes, unserved=unserved)


def _default_reason(req: RequestView, placed: int) -> str:
    if req.delta > 0:
        return f"no capacity for {req.delta - placed} more units within {req.service.affinity} affinity"
    return f"groups hold only {-placed} removable whole units"


def _change(d: GroupDraft, pods: NodePicks) -> GroupChange:
    return GroupChange(
        service=d.service,
        group=d.group,
        new=d.new,
        domain=d.domain,
        units=d.units,
        pods=[PodChange(role=r, node=n, count=c) for (r, n), c in sorted(pods.items())],
    )
