"""Deployment groups and services from the labels of running pods (RBG, LWS, Deployment, hetero-opt's own).

Identity per pod, first match wins: hetero-opt's ``hetero-opt.io/{group,role}`` labels (exact ids
in annotations), RoleBasedGroup ``rolebasedgroup.workloads.x-k8s.io/{name,role}``, LeaderWorkerSet
``leaderworkerset.sigs.k8s.io/name`` = ``<group>-<role>``, Deployment
``app.kubernetes.io/{part-of,component}``. The service is the ``hetero-opt.io/service``
annotation, else the first of ``service_labels`` on the pod, else the group.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from hetero_opt.adapters.k8s_objects import GPU_RESOURCE, as_id, is_running, pod_gpus
from hetero_opt.errors import InputError
from hetero_opt.instance import Affinity, DeploymentGroup, Node, PodCount, Ratio, Role, Service

OWN_PREFIX = "hetero-opt.io/"
SERVICE_LABEL, GROUP_LABEL, ROLE_LABEL = OWN_PREFIX + "service", OWN_PREFIX + "group", OWN_PREFIX + "role"
RBG_NAME, RBG_ROLE = "rolebasedgroup.workloads.x-k8s.io/name", "rolebasedgroup.workloads.x-k8s.io/role"
LWS_NAME = "leaderworkerset.sigs.k8s.io/name"
APP_PART_OF, APP_COMPONENT = "app.kubernetes.io/part-of", "app.kubernetes.io/component"
ROLE_NAMES = ("prefill", "decode", "prefill-attn", "prefill-ffn")


@dataclass(frozen=True)
class SeenPod:
    """One running pod of a serving group."""

    service: str
    group: str
    role: str
    node: str
    gpus: int
    pod: str


def _pod_identity(
    labels: dict[str, str], annotations: dict[str, str], service_labels: tuple[str, ...]
) -> tuple[str, str, str] | None:
    """(service, group, role) from a pod's labels, or None for a pod that is no serving group's.

    The exporter's annotations hold the exact ids where labels had to be sanitised.
    """
    found: tuple[str, str] | None = None
    if ROLE_LABEL in labels and GROUP_LABEL in labels:
        found = labels[GROUP_LABEL], labels[ROLE_LABEL]
    elif RBG_NAME in labels and RBG_ROLE in labels:
        found = labels[RBG_NAME], labels[RBG_ROLE]
    elif LWS_NAME in labels:
        lws = labels[LWS_NAME]
        role = next((r for r in sorted(ROLE_NAMES, key=len, reverse=True) if lws.endswith("-" + r)), None)
        found = (lws.removesuffix("-" + role), role) if role else None
    elif APP_PART_OF in labels and APP_COMPONENT in labels:
        found = labels[APP_PART_OF], labels[APP_COMPONENT]
    if found is None:
        return None
    group = annotations.get(GROUP_LABEL, found[0])
    service = annotations.get(SERVICE_LABEL) or next((labels[k] for k in service_labels if k in labels), group)
    return service, group, found[1]


def seen_pods(
    pods: list[Any],
    node_by_id: dict[str, Node],
    namespaces: tuple[str, ...],
    service_labels: tuple[str, ...],
    warnings: list[str],
) -> list[SeenPod]:
    """The running pods of serving groups on imported nodes; skipped ones get a warning."""
    out: list[SeenPod] = []
    for p in sorted(pods, key=lambda p: (p.metadata.namespace or "", p.metadata.name or "")):
        if not is_running(p):
            continue
        if namespaces and (p.metadata.namespace or "default") not in namespaces:
            continue
        ident = _pod_identity(p.metadata.labels or {}, p.metadata.annotations or {}, service_labels)
        if ident is None:
            continue
        service, group, role = ident
        pod_name = f"{p.metadata.namespace or 'default'}/{p.metadata.name}"
        if role not in ROLE_NAMES:
            warnings.append(f"Pod '{pod_name}': role={role!r} is not one of {list(ROLE_NAMES)}; not counted in a group")
            continue
        if p.spec.node_name not in node_by_id:
            warnings.append(f"Pod '{pod_name}': node '{p.spec.node_name}' was left out; not counted in a group")
            continue
        gpus = pod_gpus(p)
        if gpus <= 0:
            warnings.append(f"Pod '{pod_name}': requests no {GPU_RESOURCE}; not counted in a group")
            continue
        out.append(SeenPod(as_id(service), as_id(group), role, p.spec.node_name, gpus, pod_name))
    return out


def services_for(
    pods: list[SeenPod],
    node_by_id: dict[str, Node],
    declared: tuple[Service, ...],
    warnings: list[str],
    sources: tuple[str | None, str] = (None, "the import map"),
) -> dict[str, Service]:
    """The declared services plus one inferred (with a warning) for each other service with pods.

    Pods of a declared service must fit it: a role it has, that role's ``gpus_per_pod`` and one of
    its ``gpu_types``. ``sources`` names the pods' file and the map in errors.
    """
    services = {s.id: s for s in declared}
    by_service: defaultdict[str, list[SeenPod]] = defaultdict(list)
    for p in pods:
        by_service[p.service].append(p)
    for sid in sorted(by_service):
        if sid in services:
            for p in by_service[sid]:
                _fits_declared(p, services[sid], node_by_id[p.node], sources)
            continue
        services[sid] = _infer_service(sid, by_service[sid], node_by_id)
        warnings.append(
            f"Service '{sid}': not in the map file; inferred from its pods "
            f"(pd_ratio={services[sid].pd_ratio.prefill}:{services[sid].pd_ratio.decode}, "
            f"affinity={services[sid].affinity}, priority=0)"
        )
    return dict(sorted(services.items()))


def _fits_declared(pod: SeenPod, svc: Service, node: Node, sources: tuple[str | None, str]) -> None:
    """Refuse a pod its declared service does not describe: the instance would record the map's numbers."""
    where = f"{sources[0] + ': ' if sources[0] else ''}Pod '{pod.pod}'"
    declared = f"{sources[1]} service '{svc.id}'"
    role = next((r for r in svc.roles if r.name == pod.role), None)
    if role is None:
        raise InputError(f"{where} has role '{pod.role}' but {declared} has roles {[r.name for r in svc.roles]}")
    if pod.gpus != role.gpus_per_pod:
        raise InputError(
            f"{where} requests {pod.gpus} GPUs ({GPU_RESOURCE}) but {declared} role '{role.name}' "
            f"has gpus_per_pod={role.gpus_per_pod}"
        )
    if node.gpu_type not in role.gpu_types:
        raise InputError(
            f"{where} runs on node '{node.id}' of gpu_type {node.gpu_type} but {declared} role '{role.name}' "
            f"has gpu_types={list(role.gpu_types)}"
        )


def _infer_service(sid: str, pods: list[SeenPod], node_by_id: dict[str, Node]) -> Service:
    roles = [r for r in ROLE_NAMES if any(p.role == r for p in pods)]
    if set(roles) != {"prefill", "decode"}:
        raise InputError(
            f"Service '{sid}': pods have roles={roles}; a service not in the map file needs prefill and decode pods"
        )
    role_models = []
    for r in roles:
        sizes = sorted({p.gpus for p in pods if p.role == r})
        if len(sizes) > 1:
            raise InputError(f"Service '{sid}': role '{r}' pods request {sizes} GPUs; one size per role")
        types = sorted({node_by_id[p.node].gpu_type for p in pods if p.role == r})
        role_models.append(Role(name=r, gpus_per_pod=sizes[0], gpu_types=types))
    counts: defaultdict[str, dict[str, int]] = defaultdict(lambda: {"prefill": 0, "decode": 0})
    for p in pods:
        counts[p.group][p.role] += 1
    smallest = min(counts.values(), key=lambda c: (c["prefill"] + c["decode"], sorted(c.items())))
    g = math.gcd(smallest["prefill"], smallest["decode"]) or 1
    ratio = Ratio(prefill=max(smallest["prefill"] // g, 1), decode=max(smallest["decode"] // g, 1))
    return Service(id=sid, priority=0, affinity=_tightest_affinity(pods, node_by_id), roles=role_models, pd_ratio=ratio)


def _tightest_affinity(pods: list[SeenPod], node_by_id: dict[str, Node]) -> Affinity:
    by_group: defaultdict[str, list[Node]] = defaultdict(list)
    for p in pods:
        by_group[p.group].append(node_by_id[p.node])
    for level in ("s1", "s2"):
        if all(len({getattr(n, level) for n in nodes}) == 1 for nodes in by_group.values()):
            return level
    return "cluster"


def groups_for(pods: list[SeenPod], services: dict[str, Service], node_by_id: dict[str, Node]) -> list[DeploymentGroup]:
    """One deployment group per group id, in the domain its service's affinity gives."""
    by_group: defaultdict[tuple[str, str], list[SeenPod]] = defaultdict(list)
    for p in pods:
        by_group[(p.group, p.service)].append(p)
    groups: list[DeploymentGroup] = []
    owner: dict[str, str] = {}
    for (gid, sid), members in sorted(by_group.items()):
        if gid in owner:
            raise InputError(f"DeploymentGroup '{gid}': pods name services '{owner[gid]}' and '{sid}'")
        owner[gid] = sid
        svc = services[sid]
        domains = sorted({_domain(node_by_id[p.node], svc.affinity) for p in members})
        if len(domains) > 1:
            raise InputError(
                f"DeploymentGroup '{gid}': pods span {svc.affinity} domains {domains} "
                f"(service '{sid}' has affinity {svc.affinity}); e.g. pod '{members[0].pod}'"
            )
        counts: defaultdict[tuple[str, str], int] = defaultdict(int)
        for p in members:
            counts[(p.role, p.node)] += 1
        pod_counts = [PodCount(role=r, node=n, count=c) for (r, n), c in sorted(counts.items())]
        groups.append(DeploymentGroup(id=gid, service=sid, domain=domains[0], pods=pod_counts))
    return groups


def _domain(node: Node, affinity: str) -> str:
    return {"s1": node.s1, "s2": node.s2, "cluster": node.cluster}[affinity]
