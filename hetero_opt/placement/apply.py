"""Apply a verified plan to an instance: what the cluster looks like once the plan has run."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from hetero_opt.instance import (
    POD_FIELDS,
    DeploymentGroup,
    Instance,
    Node,
    NodeTable,
    PodCount,
    PodTable,
    node_column,
    pod_rows,
)
from hetero_opt.placement.plan import Plan
from hetero_opt.topology import build_view


def apply_plan(instance: Instance, plan: Plan, *, release_removed: bool = True) -> Instance:
    """Return ``instance`` after ``plan``: pods added and removed, free GPUs updated, no requests.

    Parameters
    ----------
    release_removed
        Give the GPUs of removed pods back (the next cycle's view). The paper does not reuse
        them within the cycle that removes them; by the next cycle they are free again.
    """
    view = build_view(instance)
    ids = node_column(instance.nodes, "id")
    free = dict(zip(ids, node_column(instance.nodes, "gpus_free"), strict=True))
    pods: dict[str, Counter[tuple[str, str]]] = {
        g.id: Counter({(role, node): count for role, node, count in pod_rows(g.pods)}) for g in instance.groups
    }
    columns = any(isinstance(g.pods, PodTable) for g in instance.groups)  # pod columns stay columns (format 1.3)
    meta = {g.id: (g.service, g.domain) for g in instance.groups}
    for c in plan.changes:
        svc = view.service_by_id[c.service]
        sign = 1 if c.units > 0 else -1
        if c.group not in pods:
            pods[c.group] = Counter()
            meta[c.group] = (c.service, c.domain)
        for p in c.pods:
            gpus = p.count * svc.role(p.role).gpus_per_pod
            pods[c.group][(p.role, p.node)] += sign * p.count
            if sign > 0:
                free[p.node] -= gpus
            elif release_removed:
                free[p.node] += gpus
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
