"""Look-ups over a validated instance, built once: the paper's topological resource tree view."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from operator import attrgetter, gt, itemgetter

from hetero_opt.instance import (
    DeploymentGroup,
    Instance,
    Node,
    NodeTable,
    Service,
    Tier,
    group_units,
    pod_rows,
    pods_by_role,
)


@dataclass(frozen=True)
class RequestView:
    """A scaling request with its current state: ``delta > 0`` scale-out, ``< 0`` scale-in."""

    service: Service
    current_units: int
    target_units: int
    all_or_nothing: bool = False  # the whole delta or nothing

    @property
    def delta(self) -> int:
        """Units to add (positive) or remove (negative)."""
        return self.target_units - self.current_units


_CAPACITY_CACHES = ("free_nodes", "free_by_s1_type", "slots_by_size", "cells_by_size_type", "memo")


@dataclass(frozen=True, eq=False)
class TopologyView:
    """Immutable derived maps of an :class:`Instance`; iterate in sorted-id order."""

    instance: Instance
    warnings: list[str] = field(default_factory=list)
    taken: Mapping[str, int] = field(default_factory=dict)  # GPUs per node promised to other changes

    def free(self, node: Node) -> int:
        """Free GPUs of ``node`` that are not :attr:`taken`."""
        return node.gpus_free - self.taken.get(node.id, 0)

    def with_taken(self, taken: Mapping[str, int]) -> TopologyView:
        """The same view with ``taken`` GPUs per node no longer free (capacity look-ups recomputed)."""
        total = dict(self.taken)
        for node_id, gpus in taken.items():
            total[node_id] = total.get(node_id, 0) + gpus
        out = TopologyView(self.instance, self.warnings, total)
        for key, value in self.__dict__.items():
            if key not in _CAPACITY_CACHES and key not in ("instance", "warnings", "taken"):
                out.__dict__[key] = value  # share the look-ups that do not depend on free GPUs
        return out

    @cached_property
    def memo(self) -> dict[object, object]:
        """Results derived from this view's free capacity (e.g. a request's slots), kept per view."""
        return {}

    @cached_property
    def node_by_id(self) -> Mapping[str, Node]:
        """Node by id (as the instance's validation built it; for a :class:`NodeTable` a model is built
        only for each node looked up)."""
        return self.instance.node_index()[0]

    @cached_property
    def nodes_by_s1(self) -> dict[str, list[Node]]:
        """Nodes under each S1, sorted by id."""
        out: dict[str, list[Node]] = {}
        for n in self.instance.nodes:
            s1 = n.__dict__["s1"]  # fields read from __dict__: a model's attribute read is slow (decision 43)
            ns = out.get(s1)
            if ns is None:
                out[s1] = [n]
            else:
                ns.append(n)
        for ns in out.values():  # a few nodes per S1: cheaper than one sort of every node
            ns.sort(key=_ID)
        return dict(sorted(out.items()))

    @cached_property
    def whole_free_ids(self) -> frozenset[str]:
        """Ids of the nodes with every GPU free in the instance (term 5 counts those a plan leaves whole)."""
        return self._free_cells[1]

    @cached_property
    def _places(self) -> dict[str, tuple[str, str]]:
        """(S2, cluster) of each S1, S1s sorted: from the nodes' distinct places, which validation kept."""
        out: dict[str, tuple[str, str]] = {}
        for cluster, s2, s1, _, _ in sorted(self.instance.node_index()[1], key=_TREE):
            out.setdefault(s1, (s2, cluster))  # one per S1 in a valid tree; else the least, not set order
        return out

    @cached_property
    def s1_ids(self) -> list[str]:
        """All S1 ids, sorted."""
        return list(self._places)

    @cached_property
    def s2_by_s1(self) -> dict[str, str]:
        """The S2 above each S1."""
        return {s1: s2 for s1, (s2, _) in self._places.items()}

    @cached_property
    def cluster_by_s1(self) -> dict[str, str]:
        """The cluster of each S1."""
        return {s1: cluster for s1, (_, cluster) in self._places.items()}

    @cached_property
    def s1s_by_s2(self) -> dict[str, list[str]]:
        """S1s under each S2, sorted."""
        out: defaultdict[str, list[str]] = defaultdict(list)
        for s1, s2 in self.s2_by_s1.items():
            out[s2].append(s1)
        return dict(sorted(out.items()))

    @cached_property
    def gpu_types_by_s1(self) -> dict[str, frozenset[str]]:
        """GPU types present under each S1 (from the nodes' distinct places, not every node)."""
        types: defaultdict[str, set[str]] = defaultdict(set)
        for _, _, s1, _, gpu_type in self.instance.node_index()[1]:
            types[s1].add(gpu_type)
        return {s1: frozenset(types[s1]) for s1 in self.s1_ids}

    @cached_property
    def tier_by_s1(self) -> dict[str, Tier]:
        """Priority tier of each S1: declared subgroups win, else the paper's rule (§3.4)."""
        tiers: dict[str, Tier] = {}
        for sg in self.instance.subgroups:
            for s2 in sg.s2s:
                for s1 in self.s1s_by_s2.get(s2, []):
                    tiers[s1] = sg.tier
            for s1 in sg.s1s:
                tiers[s1] = sg.tier
        for s1s in self.s1s_by_s2.values():
            types_in_s2 = set().union(*(self.gpu_types_by_s1[s1] for s1 in s1s))
            for s1 in s1s:
                if s1 in tiers:
                    continue
                if len(self.gpu_types_by_s1[s1]) > 1:
                    tiers[s1] = "high"
                elif len(types_in_s2) > 1:
                    tiers[s1] = "medium"
                else:
                    tiers[s1] = "low"
        return dict(sorted(tiers.items()))

    @cached_property
    def subgroup_by_s1(self) -> dict[str, str]:
        """Id of the RDMA subgroup of each S1 (declared id, or derived ``S2:tier`` / ``S1``)."""
        out: dict[str, str] = {}
        for sg in self.instance.subgroups:
            for s2 in sg.s2s:
                for s1 in self.s1s_by_s2.get(s2, []):
                    out[s1] = sg.id
            for s1 in sg.s1s:
                out[s1] = sg.id
        for s1 in self.s1_ids:
            if s1 not in out:
                tier = self.tier_by_s1[s1]
                out[s1] = s1 if tier == "high" else f"{self.s2_by_s1[s1]}:{tier}"
        return out

    @cached_property
    def free_nodes(self) -> dict[tuple[str, str], tuple[list[str], list[int]]]:
        """(node ids, their free GPUs) of the nodes with GPUs free and not :attr:`taken`, per (S1, GPU type),
        cells sorted, ids ascending: what the capacity look-ups, the greedy and binding read. Two lists per
        cell, not an (id, free) pair per node: the garbage collector walks every pair a call leaves alive
        (55k at 4x production), and a pair costs more to make than two appends. Read-only: a view with
        :attr:`taken` GPUs shares the cells no taken GPU touches with the view it was made from."""
        cells = self._free_cells[0]
        if not self.taken:
            return cells
        taken = self.taken
        touched = {(n.s1, n.gpu_type) for n in map(self.node_by_id.__getitem__, taken)}
        out: dict[tuple[str, str], tuple[list[str], list[int]]] = {}
        for key, (ids, frees) in cells.items():
            if key not in touched:
                out[key] = (ids, frees)
                continue
            kept = [(i, left) for i, f in zip(ids, frees, strict=True) if (left := f - taken.get(i, 0)) > 0]
            if kept:
                out[key] = ([i for i, _ in kept], [f for _, f in kept])
        return out

    @cached_property
    def _free_cells(self) -> tuple[dict[tuple[str, str], tuple[list[str], list[int]]], frozenset[str]]:
        """:attr:`free_nodes` with nothing taken, and :attr:`whole_free_ids`: the one pass over every node
        the greedy's call makes (fields read from ``__dict__``: decision 43; a :class:`NodeTable`'s from its
        columns, no model built)."""
        by_s1: dict[str, dict[str, tuple[list[str], list[int]]]] = {}
        whole: list[str] = []
        nodes = self.instance.nodes
        if isinstance(nodes, NodeTable):
            for node_id, free, total, s1, gpu_type in zip(*map(nodes.column, _CELL_FIELDS), strict=True):
                if free > 0:
                    if free == total:
                        whole.append(node_id)
                    by_type = by_s1.get(s1)
                    if by_type is None:
                        by_type = by_s1[s1] = {}
                    cell = by_type.get(gpu_type)
                    if cell is None:
                        by_type[gpu_type] = ([node_id], [free])
                    else:
                        cell[0].append(node_id)
                        cell[1].append(free)
        else:  # the same pass over models, a full node's fields beyond gpus_free not read (one loop over
            # itemgetter rows for both forms was measured 8.0-8.9 -> 9.1-10.3 ms at production: kept apart)
            for n in nodes:
                fields = n.__dict__
                free = fields["gpus_free"]
                if free > 0:
                    node_id = fields["id"]
                    if free == fields["gpus_total"]:
                        whole.append(node_id)
                    by_type = by_s1.get(fields["s1"])
                    if by_type is None:
                        by_type = by_s1[fields["s1"]] = {}
                    cell = by_type.get(fields["gpu_type"])
                    if cell is None:
                        by_type[fields["gpu_type"]] = ([node_id], [free])
                    else:
                        cell[0].append(node_id)
                        cell[1].append(free)
        out: dict[tuple[str, str], tuple[list[str], list[int]]] = {}
        for s1 in sorted(by_s1):
            by_type = by_s1[s1]
            for gpu_type in sorted(by_type):
                ids, frees = by_type[gpu_type]
                if any(map(gt, ids, itertools.islice(ids, 1, None))):  # not in id order (rare): sort
                    order = sorted(range(len(ids)), key=ids.__getitem__)
                    ids, frees = [ids[i] for i in order], [frees[i] for i in order]
                out[(s1, gpu_type)] = (ids, frees)
        return out, frozenset(whole)

    @cached_property
    def free_by_s1_type(self) -> dict[tuple[str, str], Counter[int]]:
        """Histogram of free GPUs per node, per (S1, GPU type)."""
        return {key: Counter(frees) for key, (_, frees) in self.free_nodes.items()}

    def slots(self, s1: str, gpu_type: str, size: int) -> int:
        """Pods of ``size`` GPUs that fit on the free GPUs of (S1, GPU type) if placed alone."""
        if size in self.slots_by_size:
            return self.slots_by_size[size].get((s1, gpu_type), 0)
        hist = self.free_by_s1_type.get((s1, gpu_type), Counter())
        return sum((free // size) * count for free, count in hist.items())

    @cached_property
    def slots_by_size(self) -> dict[int, dict[tuple[str, str], int]]:
        """Per pod size, :meth:`slots` of every (S1, GPU type) where at least one pod fits."""
        out: dict[int, dict[tuple[str, str], int]] = {}
        for size in self.pod_sizes:
            counts = {key: sum((f // size) * c for f, c in hist.items()) for key, hist in self.free_by_s1_type.items()}
            out[size] = {key: n for key, n in counts.items() if n > 0}
        return out

    @cached_property
    def wanted_gpus_by_priority(self) -> dict[int, int]:
        """GPUs of the units each priority class asks to add or remove, highest priority first."""
        wanted: defaultdict[int, int] = defaultdict(int)
        for r in self.requests:
            wanted[r.service.priority] += abs(r.delta) * r.service.gpus_per_unit
        return dict(sorted(wanted.items(), reverse=True))

    @cached_property
    def cells_by_size_type(self) -> Counter[tuple[int, str]]:
        """(S1, GPU type) cells where a pod of each size fits, per (size, GPU type)."""
        return Counter((size, t) for size, cells in self.slots_by_size.items() for _, t in cells)

    def candidate_cells(self, requests: list[RequestView]) -> int:
        """How many pod counts a model of ``requests`` needs: a measure of its size.

        A scale-out request may use every (role, S1, GPU type) cell where one of its pods fits; a
        scale-in request only the pods its service's groups hold.
        """
        cells = 0
        per_type = self.cells_by_size_type
        for r in requests:
            if r.delta > 0:
                for role in r.service.roles:
                    cells += sum(per_type.get((role.gpus_per_pod, t), 0) for t in set(role.gpu_types))
            elif r.delta < 0:
                cells += sum(len(g.pods) + 2 for g in self.groups_by_service.get(r.service.id, []))
        return cells

    @cached_property
    def pod_sizes(self) -> list[int]:
        """Distinct GPUs-per-pod values over all services, ascending."""
        return sorted({r.gpus_per_pod for s in self.instance.services for r in s.roles})

    @cached_property
    def service_by_id(self) -> dict[str, Service]:
        """Service by id."""
        return {s.id: s for s in self.instance.services}

    @cached_property
    def groups_by_service(self) -> dict[str, list[DeploymentGroup]]:
        """Existing groups of each service, sorted by id."""
        out: defaultdict[str, list[DeploymentGroup]] = defaultdict(list)
        for g in sorted(self.instance.groups, key=lambda g: g.id):
            out[g.service].append(g)
        return dict(out)

    @cached_property
    def group_by_id(self) -> dict[str, DeploymentGroup]:
        """Existing group by id."""
        return {g.id: g for g in self.instance.groups}

    @cached_property
    def units_by_group(self) -> dict[str, int]:
        """Whole units each existing group holds."""
        services = self.service_by_id
        # Only MoE groups need their pods' S1s (a prefill replica counts where attn and ffn share one).
        moe_nodes = {n for g in self.instance.groups if services[g.service].is_moe for _, n, _ in pod_rows(g.pods)}
        s1_of_node = {node: self.node_by_id[node].s1 for node in moe_nodes}
        return {g.id: group_units(services[g.service], g, s1_of_node) for g in self.instance.groups}

    @cached_property
    def requests(self) -> list[RequestView]:
        """Requests sorted by service priority (highest first), then service id."""
        out = []
        for req in self.instance.requests:
            svc = self.service_by_id[req.service]
            cur = sum(self.units_by_group[g.id] for g in self.groups_by_service.get(svc.id, []))
            out.append(RequestView(svc, cur, req.target_units, req.all_or_nothing))
        return sorted(out, key=lambda r: (-r.service.priority, r.service.id))

    def domain_of(self, s1: str, affinity: str) -> str:
        """The S1, S2 or cluster id containing ``s1`` at the given affinity level."""
        if affinity == "s1":
            return s1
        if affinity == "s2":
            return self.s2_by_s1[s1]
        return self.cluster_by_s1[s1]

    @cached_property
    def s1s_by_domain(self) -> dict[str, list[str]]:
        """S1s inside each S1, S2 and cluster id."""
        out: defaultdict[str, list[str]] = defaultdict(list)
        for s1 in self.s1_ids:
            out[s1].append(s1)
            out[self.s2_by_s1[s1]].append(s1)
            out[self.cluster_by_s1[s1]].append(s1)
        return dict(out)

    def gpu_rank(self, service: Service, role: str, gpu_type: str) -> int:
        """Position of ``gpu_type`` in the role's preference list (0 = preferred)."""
        return service.role(role).gpu_types.index(gpu_type)


_ID = attrgetter("id")
#: What the free-GPU cells read of a node: id, free GPUs, GPUs, S1, GPU type.
_CELL_FIELDS = ("id", "gpus_free", "gpus_total", "s1", "gpu_type")
_TREE = itemgetter(2, 1, 0)  # S1, S2, cluster of a place (cluster, S2, S1, S0, GPU type)


def build_view(instance: Instance) -> TopologyView:
    """Build the look-ups for ``instance`` and collect warnings (off-ratio groups)."""
    view = TopologyView(instance, [])
    for g in sorted(instance.groups, key=attrgetter("id")):
        svc = view.service_by_id[g.service]
        units = view.units_by_group[g.id]
        have = pods_by_role(g)
        exact = {r: units * n for r, n in svc.pods_per_unit.items()}
        if any(have.get(r, 0) != exact[r] for r in exact):
            view.warnings.append(
                f"DeploymentGroup '{g.id}': pods {dict(sorted(have.items()))} are off ratio; "
                f"{units} whole units, the extra pods stay as they are"
            )
    return view


def is_chain(sizes: list[int]) -> bool:
    """True when every pod size (ascending) divides the next: then per-size-class packing is exact."""
    return all(b % a == 0 for a, b in itertools.pairwise(sorted(sizes)))
