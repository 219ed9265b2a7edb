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
- Deployment groups from pod labels (:mod:`hetero_opt.adapters.k8s_groups`). Services come from
  the map file; a service seen only in pod labels is inferred (roles' pod sizes and GPU types from
  its pods, P/D ratio from its smallest group, the tightest affinity holding every group) with a
  warning.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, TypeAdapter, ValidationError, field_validator

from hetero_opt.adapters.k8s_groups import SERVICE_LABEL, groups_for, seen_pods, services_for
from hetero_opt.adapters.k8s_objects import (
    GPU_RESOURCE,
    as_id,
    gpu_quantity,
    gpus_used_by_node,
    label_of,
    list_items,
    load_k8s_file,
    to_model,
)
from hetero_opt.errors import InputError
from hetero_opt.instance import ROWS_FORMAT_VERSION, Frozen, GpuType, Id, Instance, Node, Service, clip
from hetero_opt.io import load_yaml_model, parse_instance

PRODUCT_LABEL = "nvidia.com/gpu.product"
MEMORY_LABEL = "nvidia.com/gpu.memory"
ZONE_LABEL = "topology.kubernetes.io/zone"
Preset = Literal["topograph", "eks", "gke", "labels"]


class TopologyLabels(Frozen):
    """Which node labels hold each level of the network tree."""

    s2: str = Field(description="Label holding the S2 (bigpod) switch.")
    s1: str = Field(description="Label holding the S1 (minipod) switch.")
    s0: str | None = Field(default=None, description="Label holding the S0 (rack) switch.")
    cluster: str | None = Field(default=None, description="Label holding the cluster; None = the map's cluster.")


#: Label presets: NVIDIA Topograph (its first label scheme), AWS EKS (layer 1 is farthest from the
#: node), GKE. A node without a preset's S2 and S1 labels is read with :data:`PRESET_ALTERNATIVES`.
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

#: Other label schemes of a preset, tried in order on a node without the preset's S2 and S1 labels:
#: Topograph's later ``network.topology.nvidia.com/{core,spine,leaf}`` (``accelerator``, the NVLink
#: domain, lies below S0 and is not read) and its v1 ``fabric.topograph.run/tier-N`` (tier 0 is
#: closest to the node).
PRESET_ALTERNATIVES: dict[str, tuple[TopologyLabels, ...]] = {
    "topograph": (
        TopologyLabels(
            s2="network.topology.nvidia.com/core",
            s1="network.topology.nvidia.com/spine",
            s0="network.topology.nvidia.com/leaf",
        ),
        TopologyLabels(
            s2="fabric.topograph.run/tier-2", s1="fabric.topograph.run/tier-1", s0="fabric.topograph.run/tier-0"
        ),
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
    _source: str | None = PrivateAttr(default=None)  # the file it was read from, for errors

    @field_validator("gpu_types")
    @classmethod
    def _gpu_type_ids(cls, value: dict[str, str]) -> dict[str, str]:
        for product, name in value.items():
            if (rule := id_rule(name)) is not None:
                raise ValueError(f"{product}={clip(repr(name))} is not a GPU type id: {rule}")
        return value

    @property
    def source(self) -> str:
        """The map's file, or "the import map" for one made in code: how errors name it."""
        return self._source or "the import map"

    def __eq__(self, other: object) -> bool:
        """Equal fields: the file a map was read from is not part of what it says (pydantic's ``==`` would
        compare the private attribute too)."""
        if not isinstance(other, ImportMap):
            return NotImplemented
        return self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]  # as before: a dict field made it unhashable


@dataclass
class ImportResult:
    """The imported instance and what the import had to say about the input."""

    instance: Instance
    warnings: list[str] = field(default_factory=list)


def load_import_map(path: str | Path) -> ImportMap:
    """Read an :class:`ImportMap` from YAML."""
    mapping = load_yaml_model(Path(path), ImportMap, "Import map", kinds={"services": "Service"})
    mapping._source = str(path)
    return mapping


_ID: TypeAdapter[str] = TypeAdapter(Id)


def id_rule(value: str) -> str | None:
    """The instance format's id rule ``value`` breaks, or None for an id."""
    try:
        _ID.validate_python(value)
    except ValidationError as exc:
        return str(exc.errors()[0]["msg"])
    return None


def import_k8s_files(
    nodes_path: str | Path,
    pods_path: str | Path | None = None,
    preset: Preset = "labels",
    mapping: ImportMap | None = None,
) -> ImportResult:
    """Read ``kubectl get nodes -o json`` (and pods) files and build an instance."""
    nodes = list_items(load_k8s_file(nodes_path), "Node", str(nodes_path))
    pods = list_items(load_k8s_file(pods_path), "Pod", str(pods_path)) if pods_path is not None else []
    return import_k8s(
        nodes, pods, preset, mapping, name=Path(nodes_path).stem,
        sources=(str(nodes_path), str(pods_path) if pods_path is not None else None),
    )  # fmt: skip


def import_k8s(
    nodes: Iterable[dict[str, Any]],
    pods: Iterable[dict[str, Any]] = (),
    preset: Preset = "labels",
    mapping: ImportMap | None = None,
    name: str = "k8s",
    sources: tuple[str | None, str | None] = (None, None),
) -> ImportResult:
    """Build an instance from Node and Pod objects (plain JSON data); ``sources`` name their files in errors."""
    m = mapping or ImportMap()
    labels = m.topology if preset == "labels" else PRESETS[preset]
    schemes = (labels, *PRESET_ALTERNATIVES.get(preset, ())) if labels is not None else ()
    warnings: list[str] = []
    node_objs = [to_model(n, "V1Node", sources[0]) for n in nodes]
    pod_objs = [to_model(p, "V1Pod", sources[1]) for p in pods]
    _once([n.metadata.name for n in node_objs], "Node", sources[0])
    _once([f"{p.metadata.namespace or 'default'}/{p.metadata.name}" for p in pod_objs], "Pod", sources[1])
    used = gpus_used_by_node(pod_objs)
    out_nodes: list[Node] = []
    memory: dict[str, float] = {}
    unlabelled: list[str] = []
    for n in sorted(node_objs, key=lambda n: n.metadata.name):
        node, why = _node(n, used, schemes, m, sources[0])
        if node is None:
            warnings.append(f"Node '{n.metadata.name}': left out: {why}")
            continue
        if why:
            unlabelled.append(node.id)
        node = _oversubscribed(node, used.get(node.id, 0), warnings, sources[1])
        mem = label_of(n, MEMORY_LABEL)
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
    pods_seen = seen_pods(pod_objs, node_by_id, m.namespaces, m.service_labels, warnings)
    services = services_for(pods_seen, node_by_id, m.services, warnings, (sources[1], m.source))
    groups = groups_for(pods_seen, services, node_by_id)
    data = {
        "format_version": ROWS_FORMAT_VERSION,  # nodes as rows: readable before 1.2
        "name": name,
        "gpu_types": [g.model_dump(mode="json") for g in gpu_types],
        "nodes": [n.model_dump(mode="json") for n in out_nodes],
        "services": [s.model_dump(mode="json") for s in services.values()],
        "groups": [g.model_dump(mode="json") for g in groups],
    }
    return ImportResult(parse_instance(data, "imported instance"), warnings)


def _oversubscribed(node: Node, used: int, warnings: list[str], source: str | None) -> Node:
    """A node whose bound pods request more GPUs than it now reports allocatable (a GPU failed or was
    taken out after they were bound): counted at what its pods use, none free, with a warning. Its
    pods exist and hold their GPUs; refusing the node would fail the whole import over one machine."""
    if used <= node.gpus_total:
        return node
    if used > 64:
        where = f"{source}: " if source else ""
        raise InputError(f"{where}pods bound to node '{node.id}' request {used} GPUs; a node holds at most 64")
    warnings.append(
        f"Node '{node.id}': its pods request {used} GPUs but allocatable {GPU_RESOURCE}={node.gpus_total} "
        f"(a GPU lost since they were bound?): counted as {used} GPUs, none free"
    )
    return node.replace(gpus_total=used, gpus_free=0)


def _once(names: list[str], kind: str, source: str | None) -> None:
    """Each object once: a list concatenated from overlapping outputs would count a pod's GPUs twice."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            where = f"{source}: " if source else ""
            raise InputError(f"{where}{kind} '{name}' appears more than once")
        seen.add(name)


# ---------------------------------------------------------------------------------------------
# nodes


def _node(
    n: Any, used: dict[str, int], schemes: tuple[TopologyLabels, ...], m: ImportMap, source: str | None
) -> tuple[Node | None, str]:
    """The node, or None and why it is left out; a non-empty reason with a node = no topology labels.

    The first of ``schemes`` whose S2 and S1 labels the node has names its place in the tree. A node
    kept whose name is no instance id (over 200 characters: Kubernetes allows 253) is refused,
    naming ``source``.
    """
    name = n.metadata.name
    where = f"{source + ': ' if source else ''}Node '{clip(name)}'"
    if n.spec is not None and n.spec.unschedulable:
        return None, "spec.unschedulable=true (cordoned)"
    conditions = (n.status.conditions or []) if n.status is not None else []
    ready = next((c.status for c in conditions if c.type == "Ready"), "missing")
    if ready != "True":
        return None, f"condition Ready={ready}"
    for t in (n.spec.taints or []) if n.spec is not None else []:
        if t.effect in ("NoSchedule", "NoExecute") and t.key not in m.tolerated_taints:
            return None, f"taint {t.key}={t.value or ''}:{t.effect}"
    total = gpu_quantity(n.status.allocatable if n.status is not None else None, f"Node '{name}' allocatable")
    if total <= 0:
        return None, f"no allocatable {GPU_RESOURCE}"
    if total > 64:
        return None, f"allocatable {GPU_RESOURCE}={total} exceeds 64"
    product = label_of(n, PRODUCT_LABEL)
    if product is None:
        return None, f"no {PRODUCT_LABEL} label"
    gpu_type = m.gpu_types.get(product) or gpu_type_name(product)
    labels = next((t for t in schemes if label_of(n, t.s2) and label_of(n, t.s1)), schemes[0] if schemes else None)
    cluster = (label_of(n, labels.cluster) if labels and labels.cluster else None) or m.cluster
    s2 = label_of(n, labels.s2) if labels else None
    s1 = label_of(n, labels.s1) if labels else None
    s0 = label_of(n, labels.s0) if labels and labels.s0 else None
    missing = ""
    if s2 is None or s1 is None:
        s2, s1, s0 = f"zone:{label_of(n, ZONE_LABEL) or 'none'}", f"host:{name}", None
        missing = "no topology labels"
    if (rule := id_rule(name)) is not None:
        raise InputError(f"{where}: metadata.name ({len(name)} characters) is not an instance id: {rule}")
    free = max(total - used.get(name, 0), 0)
    try:
        node = Node(
            id=name, gpu_type=gpu_type, gpus_total=total, gpus_free=free,
            cluster=_topo_id(cluster), s2=_topo_id(s2), s1=_topo_id(s1), s0=_topo_id(s0) if s0 else None,
        )  # fmt: skip
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(x) for x in err["loc"])
        raise InputError(f"{where}: {field}={clip(repr(err.get('input')))}: {err['msg']}") from None
    return node, missing


_TOKEN = re.compile(r"[A-Z]{1,3}\d{2,4}[A-Z]?")


def gpu_type_name(product: str) -> str:
    """``NVIDIA-H100-80GB-HBM3`` -> ``H100``, ``NVIDIA-A16-4Q`` -> ``A16``; else the product cleaned."""
    for part in product.replace("_", "-").split("-"):
        if _TOKEN.fullmatch(part):
            return part
    return as_id(product)


def _topo_id(value: str) -> str:
    """A label value as a topology id: as :func:`as_id`, and no '@' (new group ids are ``<service>@<domain>``)."""
    return as_id(value).replace("@", "-")[:190]


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
