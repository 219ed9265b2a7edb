"""Apply a verified plan to an instance: what the cluster looks like once the plan has run."""

from __future__ import annotations

from collections import Counter
from collections.abc import Container, Sequence

from hetero_opt.errors import InputError
from hetero_opt.instance import (
    POD_FIELDS,
    DeploymentGroup,
    Instance,
    Node,
    NodeTable,
    PodCount,
    PodTable,
    Service,
    node_column,
    pod_rows,
    require_instance,
)
from hetero_opt.placement.plan import GroupChange, Plan
from hetero_opt.topology import build_view


def apply_plan(instance: Instance, plan: Plan, *, release_removed: bool = True) -> Instance:
    """Return ``instance`` after ``plan``: pods added and removed, free GPUs updated, no requests.

    A plan that does not fit ``instance`` raises :class:`InputError` naming the group, node and numbers:
    a service, group, node or role the instance lacks, a new group it already has, pods added beyond
    the GPUs free before the plan, or pods removed that the group does not hold there. The checks
    cost O(pods changed); GPU types and domains are the verifier's (:func:`verify`).

    Parameters
    ----------
    release_removed
        Give the GPUs of removed pods back (the next cycle's view). The paper does not reuse
        them within the cycle that removes them; by the next cycle they are free again.
    """
    view = build_view(require_instance(instance, "apply_plan()"))
    ids = node_column(instance.nodes, "id")
    free = dict(zip(ids, node_column(instance.nodes, "gpus_free"), strict=True))
    pods: dict[str, Counter[tuple[str, str]]] = {
        g.id: Counter({(role, node): count for role, node, count in pod_rows(g.pods)}) for g in instance.groups
    }
    columns = any(isinstance(g.pods, PodTable) for g in instance.groups)  # pod columns stay columns (format 1.3)
    meta = {g.id: (g.service, g.domain) for g in instance.groups}
    before: dict[str, int] = {}  # free GPUs before the plan of each node it touches
    added: Counter[str] = Counter()  # GPUs the plan adds per node: they must fit what was free before it
    for c in plan.changes:
        svc = view.service_by_id.get(c.service)
        why = unknown_reference(c, svc, free)
        if why or svc is None:
            raise InputError(why)
        where = f"plan: group '{c.group}'"
        sign = 1 if c.units > 0 else -1
        if c.group not in pods:  # the verifier's unknown-group, new-group-id and group-identity rules
            if sign < 0:
                raise InputError(f"{where} removes pods but is not in the instance")
            if not c.new:
                raise InputError(f"{where} is not in the instance (and not marked new)")
            pods[c.group] = Counter()
            meta[c.group] = (c.service, c.domain)
        elif c.new:
            raise InputError(f"{where} is marked new but is already in the instance")
        elif meta[c.group] != (c.service, c.domain):
            service, domain = meta[c.group]
            raise InputError(f"{where} is ({service}, {domain}), the plan says ({c.service}, {c.domain})")
        held = pods[c.group]
        size = {r.name: r.gpus_per_pod for r in svc.roles}
        for p in c.pods:
            gpus = p.count * size[p.role]
            start = before.setdefault(p.node, free[p.node])
            if sign > 0:  # the verifier's node-capacity rule: removals free nothing within the plan
                room = start - added[p.node]
                if gpus > room:
                    others = " after the plan's other pods" if added[p.node] else ""
                    raise InputError(
                        f"{where} adds {gpus} GPUs of pods on node '{p.node}', which has {room} free{others}"
                    )
                added[p.node] += gpus
                free[p.node] -= gpus
            else:
                have = held[(p.role, p.node)]
                if p.count > have:
                    raise InputError(
                        f"{where} removes {p.count} {p.role} pods from node '{p.node}', which holds {have}"
                    )
                if release_removed:
                    free[p.node] += gpus
            held[(p.role, p.node)] += sign * p.count
    groups: list[DeploymentGroup] = []
    for gid in sorted(pods):
        kept = [(role, node, n) for (role, node), n in sorted(pods[gid].items()) if n > 0]
        if not kept:  # an emptied group disappears
            continue
        service, domain = meta[gid]
        group_pods: Sequence[PodCount] | dict[str, list[object]]
        if columns:
            group_pods = dict(zip(POD_FIELDS, map(list, zip(*kept, strict=True)), strict=True))
        else:
            group_pods = [PodCount(role=role, node=node, count=n) for role, node, n in kept]
        groups.append(DeploymentGroup(id=gid, service=service, domain=domain, pods=group_pods))
    nodes: Sequence[Node]
    if isinstance(instance.nodes, NodeTable):  # columns stay columns: no model built
        nodes = NodeTable({**instance.nodes.to_columns(), "gpus_free": [free[i] for i in ids]})
    else:
        nodes = [n.model_copy(update={"gpus_free": free[n.id]}) for n in instance.nodes]
    return instance.model_copy(update={"nodes": nodes, "groups": groups, "requests": []})


def unknown_reference(change: GroupChange, service: Service | None, nodes: Container[str]) -> str:
    """Why ``change`` cannot be a change of an instance with ``service`` (its service there, None if absent) and
    node ids ``nodes``: a service, node or role the instance lacks, or units=0; "" when there is none."""
    where = f"plan: group '{change.group}'"
    if service is None:
        return f"{where}: service '{change.service}' is not in the instance"
    if change.units == 0:
        return f"{where}: units=0 (a change adds units, > 0, or removes them, < 0)"
    roles = service.pods_per_unit
    for p in change.pods:
        if p.node not in nodes:
            verb = "adds" if change.units > 0 else "removes"
            return f"{where} {verb} pods on node '{p.node}', which is not in the instance"
        if p.role not in roles:
            return f"{where}: role '{p.role}' is not a role of service '{service.id}'"
    return ""
