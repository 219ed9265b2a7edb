"""Kubernetes in: nodes and pods (``kubectl get nodes,pods -o json``) to an :class:`Instance`.

- GPU type from the ``nvidia.com/gpu.product`` label (mapped to the project's names), GPU count
  from ``status.allocatable["nvidia.com/gpu"]``, free GPUs = count minus the GPU requests of the
  running pods bound to the node.
- S2/S1/S0 from topology labels chosen by a preset (:data:`PRESETS`) or named in the map file.
  A node without them falls back to ``s2 = "zone:<topology.kubernetes.io/zone>"`` (or
  ``zone:none``) and ``s1 = "host:<node name>"``, with a warning: no closeness is claimed beyond
  the zone.
- Unschedulable, NotReady and tainted nodes (a NoSchedule/NoExecute taint not in
  ``tolerated_taints``) and nodes without GPUs are left out, each with a warning giving the reason.
- Deployment groups from pod labels: hetero-opt's own (``hetero-opt.io/*``, written by the
  exporter), else RoleBasedGroup (``rolebasedgroup.workloads.x-k8s.io/{name,role}``), else
  LeaderWorkerSet (``leaderworkerset.sigs.k8s.io/name`` = ``<group>-<role>``), else
  ``app.kubernetes.io/{part-of,component}`` (Deployments).
- Services come from the map file; a service seen only in pod labels is inferred (roles' pod sizes
  and GPU types from its pods, P/D ratio from its smallest group, the tightest affinity holding
  every group) with a warning.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from hetero_opt.adapters.k8s_objects import list_items, load_k8s_file, to_model
from hetero_opt.errors import InputError
from hetero_opt.instance import (
    FORMAT_VERSION,
    Affinity,
    DeploymentGroup,
    Frozen,
    GpuType,
    Instance,
    Node,
    PodCount,
    Ratio,
    Role,
    Service,
)
from hetero_opt.io import load_yaml_model, parse_instance

GPU_RESOURCE = "nvidia.com/gpu"
PRODUCT_LABEL = "nvidia.com/gpu.product"
MEMORY_LABEL = "nvidia.com/gpu.memory"
ZONE_LABEL = "topology.kubernetes.io/zone"
OWN_PREFIX = "hetero-opt.io/"
SERVICE_LABEL, GROUP_LABEL, ROLE_LABEL = OWN_PREFIX + "service", OWN_PREFIX + "group", OWN_PREFIX + "role"
RBG_NAME, RBG_ROLE = "rolebasedgroup.workloads.x-k8s.io/name", "rolebasedgroup.workloads.x-k8s.io/role"
LWS_NAME = "leaderworkerset.sigs.k8s.io/name"
APP_PART_OF, APP_COMPONENT = "app.kubernetes.io/part-of", "app.kubernetes.io/component"
ROLE_NAMES = ("prefill", "decode", "prefill-attn", "prefill-ffn")
Preset = Literal["topograph", "eks", "gke", "labels"]


class TopologyLabels(Frozen):
    """Which node labels hold each level of the network tree."""

    s2: str = Field(description="Label holding the S2 (bigpod) switch.")
    s1: str = Field(description="Label holding the S1 (minipod) switch.")
    s0: str | None = Field(default=None, description="Label holding the S0 (rack) switch.")
    cluster: str | None = Field(default=None, description="Label holding the cluster; None = the map's cluster.")


#: Label presets: NVIDIA Topograph, AWS EKS (layer 1 is farthest from the node), GKE.
PRESETS: dict[str, TopologyLabels] = {
    "topograph": TopologyLabels(
        s2="network.topology.nvidia.com/datacenter",
        s1="network.topology.nvidia.com/spine",
        s0="network.topology.nvidia.com/block",
    ),
    "eks": TopologyLabels(
        s2="topology.k8s.aws/network-node-layer-1",
        s1="topology.k8s.aws/network-node-layer-2",
        s0="topology.k8s.aws/network-node-layer-3",
    ),
    "gke": TopologyLabels(
        s2="cloud.google.com/gce-topology-block",
        s1="cloud.google.com/gce-topology-subblock",
        s0="cloud.google.com/gce-topology-host",
    ),
}


class ImportMap(Frozen):
    """How cluster objects map onto an instance (the ``--map`` YAML file)."""

    cluster: str = Field(default="k8s", min_length=1, description="Cluster id when no label names one.")
    topology: TopologyLabels | None = Field(default=None, description="Label names; required by preset 'labels'.")
    gpu_types: dict[str, str] = Field(
        default_factory=dict, description="nvidia.com/gpu.product value -> GPU type name (default: derived)."
    )
    tolerated_taints: tuple[str, ...] = Field(
        default=(GPU_RESOURCE,), description="Taint keys GPU pods tolerate (their nodes stay in)."
    )
    namespaces: tuple[str, ...] = Field(default=(), description="Read groups from these namespaces only; () = all.")
    service_labels: tuple[str, ...] = Field(
        default=(SERVICE_LABEL,), description="Pod labels naming the service, first found wins; else the group."
    )
    services: tuple[Service, ...] = Field(default=(), description="Service definitions (instance format).")


@dataclass
class ImportResult:
    """The imported instance and what the import had to say about the input."""

    instance: Instance
    warnings: list[str] = field(default_factory=list)


def load_import_map(path: str | Path) -> ImportMap:
    """Read an :class:`ImportMap` from YAML."""
    return load_yaml_model(Path(path), ImportMap, "Import map")


def import_k8s_files(
    nodes_path: str | Path,
    pods_path: str | Path | None = None,
    preset: Preset = "labels",
    mapping: ImportMap | None = None,
) -> ImportResult:
    """Read ``kubectl get nodes -o json`` (and pods) files and build an instance."""
    nodes = list_items(load_k8s_file(nodes_path), "Node", str(nodes_path))
    pods = list_items(load_k8s_file(pods_path), "Pod", str(pods_path)) if pods_path is not None else []
    return import_k8s(nodes, pods, preset, mapping, name=Path(nodes_path).stem)


def import_k8s(
    nodes: Iterable[dict[str, Any]],
    pods: Iterable[dict[str, Any]] = (),
    preset: Preset = "labels",
    mapping: ImportMap | None = None,
    name: str = "k8s",
) -> ImportResult:
    """Build an instance from Node and Pod objects (plain JSON data)."""
    m = mapping or ImportMap()
    labels = m.topology if preset == "labels" else PRESETS[preset]
    warnings: list[str] = []
    node_objs = [to_model(n, "V1Node") for n in nodes]
    pod_objs = [to_model(p, "V1Pod") for p in pods]
    used = _gpus_used_by_node(pod_objs)
    out_nodes: list[Node] = []
    memory: dict[str, float] = {}
    unlabelled: list[str] = []
    for n in sorted(node_objs, key=lambda n: n.metadata.name):
        node, why = _node(n, used, labels, m)
        if node is None:
            warnings.append(f"Node '{n.metadata.name}': left out: {why}")
            continue
        if why:
            unlabelled.append(node.id)
        mem = _label(n, MEMORY_LABEL)
        if mem and mem.isdigit():
            memory.setdefault(node.gpu_type, round(int(mem) / 1024, 1))
        out_nodes.append(node)
    if unlabelled:
        keys = "no labels given" if labels is None else f"{labels.s2}, {labels.s1}"
        warnings.append(
            f"{len(unlabelled)} node(s) without topology labels ({keys}), e.g. '{unlabelled[0]}': "
            "placed as s2=zone:<zone>, s1=host:<node> (each node its own S1)"
        )
    if not out_nodes:
        raise InputError(f"Nodes: none of {len(node_objs)} nodes can hold GPU pods ({'; '.join(warnings) or 'empty'})")
    out_nodes = _levels_apart(out_nodes, warnings)
    gpu_types = [GpuType(id=t, memory_gb=memory.get(t)) for t in sorted({n.gpu_type for n in out_nodes})]
    node_by_id = {n.id: n for n in out_nodes}
    pods_seen = _group_pods(pod_objs, node_by_id, m, warnings)
    services = _services(pods_seen, node_by_id, m, warnings)
    groups = _groups(pods_seen, services, node_by_id, warnings)
    data = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "gpu_types": [g.model_dump(mode="json") for g in gpu_types],
        "nodes": [n.model_dump(mode="json") for n in out_nodes],
        "services": [s.model_dump(mode="json") for s in services.values()],
        "groups": [g.model_dump(mode="json") for g in groups],
    }
    return ImportResult(parse_instance(data, "imported instance"), warnings)


# ---------------------------------------------------------------------------------------------
# nodes


def _label(obj: Any, key: str) -> str | None:
    labels = obj.metadata.labels or {}
    value = labels.get(key)
    return str(value) if value is not None else None


def _gpu_quantity(resources: dict[str, Any] | None, where: str) -> int:
    raw = (resources or {}).get(GPU_RESOURCE)
    if raw is None:
        return 0
    # Kubernetes accepts only whole numbers for extended resources such as GPUs.
    if not str(raw).isdigit():
        raise InputError(f"{where}: {GPU_RESOURCE}={raw!r} is not a whole number of GPUs")
    return int(str(raw))


def _pod_gpus(pod: Any) -> int:
    """GPUs a pod holds: the sum over containers, at least the largest init container's."""
    spec = pod.spec
    where = f"Pod '{pod.metadata.namespace or 'default'}/{pod.metadata.name}'"
    main = sum(_gpu_quantity(_requests(c), f"{where} container '{c.name}'") for c in spec.containers or [])
    init = max(
        (_gpu_quantity(_requests(c), f"{where} init container '{c.name}'") for c in spec.init_containers or []),
        default=0,
    )
    return max(main, init)


def _requests(container: Any) -> dict[str, Any]:
    res = container.resources
    if res is None:
        return {}
    # GPUs are extended resources: a limit alone implies the same request.
    return {**(res.limits or {}), **(res.requests or {})}


def _running(pod: Any) -> bool:
    phase = pod.status.phase if pod.status is not None else None
    return bool(pod.spec.node_name) and phase not in ("Succeeded", "Failed")


def _gpus_used_by_node(pods: list[Any]) -> dict[str, int]:
    used: defaultdict[str, int] = defaultdict(int)
    for p in pods:
        if _running(p):
            used[p.spec.node_name] += _pod_gpus(p)
    return dict(used)


def _node(n: Any, used: dict[str, int], labels: TopologyLabels | None, m: ImportMap) -> tuple[Node | None, str]:
    """The node, or None and why it is left out; a non-empty reason with a node = no topology labels."""
    name = n.metadata.name
    if n.spec is not None and n.spec.unschedulable:
        return None, "spec.unschedulable=true (cordoned)"
    conditions = (n.status.conditions or []) if n.status is not None else []
    ready = next((c.status for c in conditions if c.type == "Ready"), "missing")
    if ready != "True":
        return None, f"condition Ready={ready}"
    for t in (n.spec.taints or []) if n.spec is not None else []:
        if t.effect in ("NoSchedule", "NoExecute") and t.key not in m.tolerated_taints:
            return None, f"taint {t.key}={t.value or ''}:{t.effect}"
    total = _gpu_quantity(n.status.allocatable if n.status is not None else None, f"Node '{name}' allocatable")
    if total <= 0:
        return None, f"no allocatable {GPU_RESOURCE}"
    if total > 64:
        return None, f"allocatable {GPU_RESOURCE}={total} exceeds 64"
    product = _label(n, PRODUCT_LABEL)
    if product is None:
        return None, f"no {PRODUCT_LABEL} label"
    gpu_type = m.gpu_types.get(product) or gpu_type_name(product)
    cluster = (_label(n, labels.cluster) if labels and labels.cluster else None) or m.cluster
    s2 = _label(n, labels.s2) if labels else None
    s1 = _label(n, labels.s1) if labels else None
    s0 = _label(n, labels.s0) if labels and labels.s0 else None
    missing = ""
    if s2 is None or s1 is None:
        s2, s1, s0 = f"zone:{_label(n, ZONE_LABEL) or 'none'}", f"host:{name}", None
        missing = "no topology labels"
    free = max(total - used.get(name, 0), 0)
    try:
        node = Node(
            id=name, gpu_type=gpu_type, gpus_total=total, gpus_free=free,
            cluster=_id(cluster), s2=_id(s2), s1=_id(s1), s0=_id(s0) if s0 else None,
        )  # fmt: skip
    except ValueError as exc:
        raise InputError(f"Node '{name}': {str(exc).splitlines()[0]}") from None
    return node, missing


_TOKEN = re.compile(r"[A-Z]{1,3}\d{2,4}[A-Z]?")


def gpu_type_name(product: str) -> str:
    """``NVIDIA-H100-80GB-HBM3`` -> ``H100``, ``NVIDIA-A16-4Q`` -> ``A16``; else the product cleaned."""
    for part in product.replace("_", "-").split("-"):
        if _TOKEN.fullmatch(part):
            return part
    return _id(product)


def _id(value: str) -> str:
    """A label value as a topology id (characters outside the id alphabet, '@' included, become '-')."""
    return re.sub(r"[^A-Za-z0-9_.:/+-]", "-", value)[:190] or "-"


_LEVELS = ("cluster", "s2", "s1", "s0")


def _levels_apart(nodes: list[Node], warnings: list[str]) -> list[Node]:
    """Nodes whose cluster, S2, S1 and S0 ids differ across levels (the instance format requires it).

    Real labels often repeat a value across levels (a datacenter label that is also the cluster name):
    a value already used at a higher level, or as a node name, is prefixed with its level
    (``s2:dc1``), with one warning per renamed value.
    """
    taken: dict[str, str] = {n.id: "node" for n in nodes}
    renamed: dict[tuple[str, str], str] = {}
    for level in _LEVELS:
        for value in sorted({getattr(n, level) for n in nodes if getattr(n, level)}):
            if taken.get(value, level) != level:
                renamed[(level, value)] = f"{level}:{value}"
                warnings.append(f"{level}='{value}' is also a {taken[value]} id: renamed '{level}:{value}'")
            taken.setdefault(renamed.get((level, value), value), level)
    if not renamed:
        return nodes
    return [
        n.model_copy(update={lv: renamed.get((lv, getattr(n, lv)), getattr(n, lv)) for lv in _LEVELS})
        for n in nodes
    ]


# ---------------------------------------------------------------------------------------------
# pods -> groups and services


@dataclass(frozen=True)
class _SeenPod:
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


def _group_pods(pods: list[Any], node_by_id: dict[str, Node], m: ImportMap, warnings: list[str]) -> list[_SeenPod]:
    out: list[_SeenPod] = []
    for p in sorted(pods, key=lambda p: (p.metadata.namespace or "", p.metadata.name or "")):
        if not _running(p):
            continue
        if m.namespaces and (p.metadata.namespace or "default") not in m.namespaces:
            continue
        ident = _pod_identity(p.metadata.labels or {}, p.metadata.annotations or {}, m.service_labels)
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
        gpus = _pod_gpus(p)
        if gpus <= 0:
            warnings.append(f"Pod '{pod_name}': requests no {GPU_RESOURCE}; not counted in a group")
            continue
        out.append(_SeenPod(_id(service), _id(group), role, p.spec.node_name, gpus, pod_name))
    return out


def _services(
    pods: list[_SeenPod], node_by_id: dict[str, Node], m: ImportMap, warnings: list[str]
) -> dict[str, Service]:
    services = {s.id: s for s in m.services}
    by_service: defaultdict[str, list[_SeenPod]] = defaultdict(list)
    for p in pods:
        by_service[p.service].append(p)
    for sid in sorted(by_service):
        if sid in services:
            continue
        services[sid] = _infer_service(sid, by_service[sid], node_by_id)
        warnings.append(
            f"Service '{sid}': not in the map file; inferred from its pods "
            f"(pd_ratio={services[sid].pd_ratio.prefill}:{services[sid].pd_ratio.decode}, "
            f"affinity={services[sid].affinity}, priority=0)"
        )
    return dict(sorted(services.items()))


def _infer_service(sid: str, pods: list[_SeenPod], node_by_id: dict[str, Node]) -> Service:
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


def _tightest_affinity(pods: list[_SeenPod], node_by_id: dict[str, Node]) -> Affinity:
    by_group: defaultdict[str, list[Node]] = defaultdict(list)
    for p in pods:
        by_group[p.group].append(node_by_id[p.node])
    for level in ("s1", "s2"):
        if all(len({getattr(n, level) for n in nodes}) == 1 for nodes in by_group.values()):
            return level
    return "cluster"


def _groups(
    pods: list[_SeenPod], services: dict[str, Service], node_by_id: dict[str, Node], warnings: list[str]
) -> list[DeploymentGroup]:
    by_group: defaultdict[tuple[str, str], list[_SeenPod]] = defaultdict(list)
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
