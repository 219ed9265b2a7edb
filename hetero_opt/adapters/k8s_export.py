"""Kubernetes out: the manifests that carry out a plan, as Deployments, LeaderWorkerSets or RBGs.

After the plan, each deployment group holds some pods per role on some nodes. Per group and role
the exporter writes the replica count and the placement: a required node affinity on
``kubernetes.io/hostname`` in the role's nodes (the per-node counts go in the annotation
``hetero-opt.io/pods-by-node``), or, with ``kueue_topology``, Kueue's
``kueue.x-k8s.io/podset-required-topology`` annotation naming the label of the group's domain.
Groups the plan empties are written with 0 replicas, so applying the manifests scales them away.

Formats:

- ``deployment``: one ``apps/v1`` Deployment per group and role, named ``<group>-<role>``;
- ``lws``: one ``leaderworkerset.x-k8s.io/v1`` LeaderWorkerSet per group and role (size 1: a
  pod is one replica), named ``<group>-<role>`` as the importer expects;
- ``rbg``: one ``workloads.x-k8s.io/v1alpha1`` RoleBasedGroup per group with one role per role.

Every pod carries ``hetero-opt.io/{service,group,role}`` labels (sanitised to label values) and
the exact ids in annotations, so :mod:`hetero_opt.adapters.k8s_import` reads them back.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from typing import Any, Literal

import yaml

from hetero_opt.errors import InputError
from hetero_opt.instance import Instance, Service
from hetero_opt.placement.plan import Plan

Format = Literal["deployment", "lws", "rbg"]
FORMATS: tuple[Format, ...] = ("deployment", "lws", "rbg")
PREFIX = "hetero-opt.io/"
HOSTNAME = "kubernetes.io/hostname"
KUEUE_REQUIRED = "kueue.x-k8s.io/podset-required-topology"
GPU_RESOURCE = "nvidia.com/gpu"

PodsByNode = dict[str, int]


def pods_after(instance: Instance, plan: Plan) -> dict[str, dict[str, PodsByNode]]:
    """Pods per group, role and node once ``plan`` is carried out (groups of the instance and new ones)."""
    out: defaultdict[str, defaultdict[str, defaultdict[str, int]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(int))
    )
    for g in instance.groups:
        for pc in g.pods:
            out[g.id][pc.role][pc.node] += pc.count
    known = {g.id for g in instance.groups}
    for c in plan.changes:
        if not c.new and c.group not in known:
            raise InputError(f"Plan: GroupChange '{c.group}': new=false but the instance has no such group")
        sign = 1 if c.units > 0 else -1
        for p in c.pods:
            left = out[c.group][p.role][p.node] + sign * p.count
            if left < 0:
                raise InputError(
                    f"Plan: GroupChange '{c.group}': removes {p.count} {p.role} pods from node '{p.node}' "
                    f"holding {out[c.group][p.role][p.node]}"
                )
            out[c.group][p.role][p.node] = left
    return {
        g: {r: {n: k for n, k in sorted(nodes.items()) if k > 0} for r, nodes in sorted(roles.items())}
        for g, roles in sorted(out.items())
    }


def export_manifests(
    instance: Instance,
    plan: Plan,
    fmt: Format,
    *,
    namespace: str = "default",
    image: str = "vllm/vllm-openai:latest",
    kueue_topology: str | None = None,
) -> list[dict[str, Any]]:
    """The manifests (plain JSON data) that carry out ``plan`` on ``instance``'s cluster."""
    if fmt not in FORMATS:
        raise InputError(f"--format={fmt!r} must be one of {list(FORMATS)}")
    if not _DNS_LABEL.fullmatch(namespace):
        raise InputError(f"--namespace={namespace!r} is not a DNS-1123 label (a-z, 0-9, '-', at most 63)")
    if kueue_topology is not None and not is_label_key(kueue_topology):
        raise InputError(
            f"--kueue-topology={kueue_topology!r} is not a Kubernetes label key ([prefix/]name, name of at most "
            "63 of A-Z a-z 0-9 - _ . starting and ending alphanumeric, prefix a DNS subdomain)"
        )
    if not image or any(c.isspace() for c in image):
        raise InputError(f"--image={image!r} must be a container image reference without spaces")
    services = {s.id: s for s in instance.services}
    service_of = {g.id: g.service for g in instance.groups} | {c.group: c.service for c in plan.changes}
    domain_of = {g.id: g.domain for g in instance.groups} | {c.group: c.domain for c in plan.changes}
    names = _k8s_names(sorted(service_of))
    out: list[dict[str, Any]] = []
    for gid, roles in pods_after(instance, plan).items():
        svc = services[service_of[gid]]
        meta = _Meta(svc, gid, names[gid], domain_of[gid], namespace)
        role_pods = {r: roles.get(r, {}) for r in svc.pods_per_unit}
        if fmt == "rbg":
            templates = {r: _pod_template(meta, svc, r, n, image, kueue_topology) for r, n in role_pods.items()}
            out.append(_rbg(meta, role_pods, templates))
            continue
        for role, by_node in role_pods.items():
            template = _pod_template(meta, svc, role, by_node, image, kueue_topology)
            out.append(
                _deployment(meta, role, by_node, template)
                if fmt == "deployment"
                else _lws(meta, role, by_node, template)
            )
    return out


_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def is_label_key(key: str) -> bool:
    """Whether ``key`` is a valid Kubernetes label key (apimachinery ``IsQualifiedName``)."""
    prefix, _, name = key.rpartition("/")
    if "/" in prefix or (key.count("/") == 1 and not prefix):
        return False
    return bool(_LABEL_NAME.fullmatch(name)) and (
        not prefix or (len(prefix) <= 253 and bool(_DNS_SUBDOMAIN.fullmatch(prefix)))
    )


def dump_yaml(manifests: list[dict[str, Any]]) -> str:
    """The manifests as one YAML stream (``kubectl apply -f``)."""
    return yaml.safe_dump_all(manifests, sort_keys=False, default_flow_style=False)


# ---------------------------------------------------------------------------------------------


class _Meta:
    """Names and labels shared by a group's objects."""

    def __init__(self, svc: Service, group: str, name: str, domain: str, namespace: str) -> None:
        self.service, self.group, self.name, self.domain, self.namespace = svc.id, group, name, domain, namespace

    def labels(self, role: str | None = None) -> dict[str, str]:
        out = {PREFIX + "service": label_value(self.service), PREFIX + "group": self.name}
        if role is not None:
            out[PREFIX + "role"] = role
        return out

    def annotations(self) -> dict[str, str]:
        return {PREFIX + "service": self.service, PREFIX + "group": self.group, PREFIX + "domain": self.domain}

    def object_meta(self, name: str, role: str | None = None) -> dict[str, Any]:
        return {
            "name": name,
            "namespace": self.namespace,
            "labels": self.labels(role),
            "annotations": self.annotations(),
        }


def _pod_template(
    meta: _Meta, svc: Service, role: str, by_node: PodsByNode, image: str, kueue_topology: str | None
) -> dict[str, Any]:
    gpus = str(svc.role(role).gpus_per_pod)
    annotations = meta.annotations() | {PREFIX + "pods-by-node": ",".join(f"{n}={k}" for n, k in by_node.items())}
    spec: dict[str, Any] = {
        "containers": [
            {
                "name": "engine",
                "image": image,
                "env": [{"name": "HETERO_OPT_ROLE", "value": role}],
                "resources": {"limits": {GPU_RESOURCE: gpus}, "requests": {GPU_RESOURCE: gpus}},
            }
        ],
    }
    if kueue_topology is not None:
        annotations[KUEUE_REQUIRED] = kueue_topology
    elif by_node:
        spec["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": HOSTNAME, "operator": "In", "values": list(by_node)}]}
                    ]
                }
            }
        }
    labels = meta.labels(role) | {"app.kubernetes.io/part-of": meta.name, "app.kubernetes.io/component": role}
    return {"metadata": {"labels": labels, "annotations": annotations}, "spec": spec}


def _deployment(meta: _Meta, role: str, by_node: PodsByNode, template: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta.object_meta(f"{meta.name}-{role}", role),
        "spec": {
            "replicas": sum(by_node.values()),
            "selector": {"matchLabels": meta.labels(role)},
            "template": template,
        },
    }


def _lws(meta: _Meta, role: str, by_node: PodsByNode, template: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "metadata": meta.object_meta(f"{meta.name}-{role}", role),
        "spec": {
            "replicas": sum(by_node.values()),
            "leaderWorkerTemplate": {"size": 1, "workerTemplate": template},
        },
    }


def _rbg(meta: _Meta, role_pods: dict[str, PodsByNode], templates: dict[str, dict[str, Any]]) -> dict[str, Any]:
    roles = [
        {"name": role, "replicas": sum(by_node.values()), "template": templates[role]}
        for role, by_node in role_pods.items()
    ]
    return {
        "apiVersion": "workloads.x-k8s.io/v1alpha1",
        "kind": "RoleBasedGroup",
        "metadata": meta.object_meta(meta.name),
        "spec": {"roles": roles},
    }


_NAME_BAD = re.compile(r"[^a-z0-9-]+")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_LABEL_BAD = re.compile(r"[^A-Za-z0-9_.-]+")


def k8s_name(group: str) -> str:
    """A DNS-1123 label for ``group`` (≤ 50 characters, leaving room for a role suffix).

    An id that is not one already gets a short hash of itself, so two ids never meet.
    """
    clean = _NAME_BAD.sub("-", group.lower()).strip("-")[:43].strip("-") or "g"
    if clean == group and len(group) <= 50:
        return clean
    return f"{clean}-{hashlib.sha1(group.encode()).hexdigest()[:6]}"


def _k8s_names(groups: list[str]) -> dict[str, str]:
    names = {g: k8s_name(g) for g in groups}
    seen: dict[str, str] = {}
    for g, n in names.items():
        if n in seen:
            raise InputError(f"DeploymentGroup '{g}': Kubernetes name '{n}' is also the name of group '{seen[n]}'")
        seen[n] = g
    return names


def label_value(value: str) -> str:
    """``value`` as a Kubernetes label value (≤ 63 characters of ``[A-Za-z0-9_.-]``)."""
    clean = _LABEL_BAD.sub("-", value).strip("-_.")
    if clean == value and len(value) <= 63:
        return value
    return f"{clean[:56].strip('-_.')}-{hashlib.sha1(value.encode()).hexdigest()[:6]}"
