"""Kubernetes out: import -> solve -> export, manifests checked against real schemas and the plan."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapters.helpers import DATA, pod_templates, validate_manifest
from hetero_opt import Instance, solve
from hetero_opt.adapters.k8s_export import FORMATS, KUEUE_REQUIRED, export_manifests, k8s_name, label_value
from hetero_opt.adapters.k8s_import import import_k8s, load_import_map
from hetero_opt.cli import main
from hetero_opt.instance import ScalingRequest
from hetero_opt.io import save_instance
from hetero_opt.placement.plan import Plan

MAP = load_import_map(DATA / "map.yaml")


def _cluster(pods: str = "pods-rbg.json") -> Instance:
    from hetero_opt.adapters.k8s_import import import_k8s_files

    return import_k8s_files(DATA / "gpu-nodes.json", DATA / pods, "topograph", MAP).instance


def _solved(target: int) -> tuple[Instance, Plan]:
    inst = _cluster().replace(requests=[ScalingRequest(service="chat", target_units=target).model_dump()])
    result = solve(inst, "greedy")
    assert result.plan.changes
    return inst, result.plan


def _expected(inst: Instance, plan: Plan) -> dict[tuple[str, str], dict[str, int]]:
    """Pods per (group, role) and node after the plan, computed here from the plan's own changes."""
    out: defaultdict[tuple[str, str], defaultdict[str, int]] = defaultdict(lambda: defaultdict(int))
    for g in inst.groups:
        for pc in g.pods:
            out[(g.id, pc.role)][pc.node] += pc.count
    for c in plan.changes:
        for p in c.pods:
            out[(c.group, p.role)][p.node] += p.count if c.units > 0 else -p.count
    return {k: {n: c for n, c in v.items() if c} for k, v in out.items()}


def _placed(manifests: list[dict[str, Any]]) -> dict[tuple[str, str], tuple[int, list[str], str]]:
    """(group, role) -> (replicas, hostnames of the node affinity, pods-by-node annotation)."""
    out = {}
    for m in manifests:
        roles = m["spec"]["roles"] if m["kind"] == "RoleBasedGroup" else [m["spec"]]
        for r, t in zip(roles, pod_templates(m), strict=True):
            ann = t["metadata"]["annotations"]
            role = t["metadata"]["labels"]["hetero-opt.io/role"]
            terms = t["spec"].get("affinity", {}).get("nodeAffinity", {})
            hosts = []
            for term in terms.get("requiredDuringSchedulingIgnoredDuringExecution", {}).get("nodeSelectorTerms", []):
                for e in term["matchExpressions"]:
                    assert (e["key"], e["operator"]) == ("kubernetes.io/hostname", "In")
                    hosts += e["values"]
            out[(ann["hetero-opt.io/group"], role)] = (r["replicas"], hosts, ann["hetero-opt.io/pods-by-node"])
    return out


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_manifests_are_valid_and_match_the_plan(fmt: str) -> None:
    inst, plan = _solved(target=3)  # chat holds 1 unit (1 prefill + 2 decode of 4 GPUs); +2 units
    manifests = export_manifests(inst, plan, fmt)  # type: ignore[arg-type]
    for m in manifests:
        validate_manifest(m)
    placed = _placed(manifests)
    expected = _expected(inst, plan)
    assert set(placed) == set(expected)
    for key, by_node in expected.items():
        replicas, hosts, annotation = placed[key]
        assert replicas == sum(by_node.values())
        assert hosts == sorted(by_node)
        assert annotation == ",".join(f"{n}={c}" for n, c in sorted(by_node.items()))
    # 1 + 1 units x (1 prefill + 2 decode): only sp-a (a1: 4, a2: 8 free H20 GPUs) holds another
    # 12-GPU unit; sp-b has no free H20 for a prefill pod
    assert plan.units_by_service() == {"chat": 1}
    assert sum(r for r, _, _ in placed.values()) == 6


def test_scale_in_to_zero_writes_zero_replicas_without_affinity() -> None:
    inst, plan = _solved(target=0)
    manifests = export_manifests(inst, plan, "deployment")
    assert {(m["metadata"]["name"], m["spec"]["replicas"]) for m in manifests} == {
        ("chat-g1-prefill", 0),
        ("chat-g1-decode", 0),
    }
    for m in manifests:
        validate_manifest(m)
        assert "affinity" not in m["spec"]["template"]["spec"]


def test_kueue_option_annotates_instead_of_affinity() -> None:
    inst, plan = _solved(target=2)
    topo = "network.topology.nvidia.com/spine"
    for m in export_manifests(inst, plan, "lws", kueue_topology=topo):
        validate_manifest(m)
        t = pod_templates(m)[0]
        assert t["metadata"]["annotations"][KUEUE_REQUIRED] == topo
        assert "affinity" not in t["spec"]


def _pods_from(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pods a cluster would run for the manifests: template labels, annotations and node."""
    pods = []
    for m in manifests:
        for t in pod_templates(m):
            for placed in filter(None, t["metadata"]["annotations"]["hetero-opt.io/pods-by-node"].split(",")):
                node, count = placed.split("=")
                for i in range(int(count)):
                    name = f"{m['metadata']['name']}-{t['metadata']['labels']['hetero-opt.io/role']}-{node}-{i}"
                    pods.append(
                        {
                            "apiVersion": "v1",
                            "kind": "Pod",
                            "metadata": {"name": name, "namespace": "default", **t["metadata"]},
                            "spec": {**t["spec"], "nodeName": node},
                            "status": {"phase": "Running"},
                        }
                    )
    return pods


@pytest.mark.parametrize("fmt", FORMATS)
def test_exported_pods_import_back_to_the_planned_groups(fmt: str) -> None:
    import json

    inst, plan = _solved(target=3)
    pods = _pods_from(export_manifests(inst, plan, fmt))  # type: ignore[arg-type]
    nodes = json.loads((DATA / "gpu-nodes.json").read_text())["items"]
    trainer = json.loads((DATA / "pods-rbg.json").read_text())["items"][3]
    back = import_k8s(nodes, [*pods, trainer], "topograph", MAP).instance
    got = {(g.id, pc.role, pc.node): pc.count for g in back.groups for pc in g.pods}
    want = {(g, r, n): c for (g, r), by_node in _expected(inst, plan).items() for n, c in by_node.items()}
    assert got == want  # exact group ids come back, e.g. the new 'chat@sp-b' from its annotation
    assert sum(n.gpus_free for n in back.nodes) == sum(n.gpus_free for n in inst.nodes) - 3 * 4


def test_names_are_kubernetes_safe_and_distinct() -> None:
    assert k8s_name("chat-g1") == "chat-g1"
    assert k8s_name("chat@sp-a") != k8s_name("chat-sp-a")
    assert k8s_name("Chat@SP_a#2").startswith("chat-sp-a-2-")
    assert label_value("chat@sp-a") != "chat@sp-a"
    assert len(label_value("x" * 80)) <= 63


def test_cli_export_writes_yaml(tmp_path: Path) -> None:
    inst, _ = _solved(target=3)
    save_instance(inst, tmp_path / "inst.json")
    assert main(["solve", str(tmp_path / "inst.json"), "--out-dir", str(tmp_path)]) == 0
    out = tmp_path / "m.yaml"
    argv = ["export", "k8s", "--plan", str(tmp_path / "inst.plan.json"), "--instance", str(tmp_path / "inst.json")]
    assert main([*argv, "--format", "rbg", "--out", str(out)]) == 0
    docs = list(yaml.safe_load_all(out.read_text()))
    assert [d["kind"] for d in docs] == ["RoleBasedGroup"] * len(docs)
    for d in docs:
        validate_manifest(d)


@pytest.mark.parametrize(
    ("plan_text", "message"),
    [
        ("{", "malformed JSON at line 1"),
        ('{"plan": {"changes": [{"service": "chat"}]}}', "plan.changes.0.group=missing"),
        (
            '{"changes": [{"service": "chat", "group": "chat-g1", "new": false, "domain": "sp-a", "units": 5, '
            '"pods": [{"role": "decode", "node": "a2", "count": 10}]}]}',
            "plan does not fit instance",
        ),
    ],
)
def test_cli_export_bad_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str], plan_text: str, message: str) -> None:
    inst, _ = _solved(target=3)
    save_instance(inst, tmp_path / "inst.json")
    (tmp_path / "p.json").write_text(plan_text)
    out = tmp_path / "m.yaml"
    argv = ["export", "k8s", "--plan", str(tmp_path / "p.json"), "--instance", str(tmp_path / "inst.json")]
    assert main([*argv, "--format", "lws", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert len(err.splitlines()) == 1
    assert not out.exists()


def test_bad_namespace_is_refused() -> None:
    from hetero_opt.errors import InputError

    inst, plan = _solved(target=2)
    with pytest.raises(InputError, match="--namespace='LLM Team' is not a DNS-1123 label"):
        export_manifests(inst, plan, "deployment", namespace="LLM Team")
