"""Kubernetes node and pod lists as clusters produce them: other encodings, later Topograph labels,
empty label values, and objects the import cannot use (one line naming the file, object and field)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from adapters.helpers import DATA
from hetero_opt.adapters.k8s_import import import_k8s, import_k8s_files, load_import_map
from hetero_opt.cli import main
from hetero_opt.errors import InputError

MAP = load_import_map(DATA / "map.yaml")
TOPOGRAPH = "network.topology.nvidia.com/"


def _nodes() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / "gpu-nodes.json").read_text())
    return data


def _places(nodes: list[dict[str, Any]]) -> list[tuple[str, str, str, str | None]]:
    return [(n.id, n.s2, n.s1, n.s0) for n in import_k8s(nodes, preset="topograph").instance.nodes]


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_node_list_with_a_byte_order_mark_reads_as_utf8(tmp_path: Path, encoding: str) -> None:
    # what `kubectl get nodes -o json > nodes.json` writes in Windows PowerShell
    p = tmp_path / "nodes.json"
    p.write_text((DATA / "gpu-nodes.json").read_text(), encoding=encoding)
    read = import_k8s_files(p, None, "topograph").instance
    assert read.nodes == import_k8s_files(DATA / "gpu-nodes.json", None, "topograph").instance.nodes


def test_node_list_not_in_utf8_names_the_file(tmp_path: Path) -> None:
    p = tmp_path / "nodes.json"
    p.write_bytes(b'{"items": [], "x": "\xff"}')
    with pytest.raises(InputError, match=r"nodes\.json: not UTF-8 text \(byte 20"):
        import_k8s_files(p)


def test_later_topograph_labels_place_nodes_as_the_first_scheme_does() -> None:
    first = _nodes()["items"]
    later = copy.deepcopy(first)
    tiers = copy.deepcopy(first)
    for node in later:
        labels = node["metadata"]["labels"]
        for old, new in (("datacenter", "core"), ("block", "leaf")):
            if TOPOGRAPH + old in labels:
                labels[TOPOGRAPH + new] = labels.pop(TOPOGRAPH + old)
    for node in tiers:
        labels = node["metadata"]["labels"]
        for old, tier in (("datacenter", 2), ("spine", 1), ("block", 0)):
            if TOPOGRAPH + old in labels:
                labels[f"fabric.topograph.run/tier-{tier}"] = labels.pop(TOPOGRAPH + old)
    assert any(s0 for *_, s0 in _places(first))
    assert _places(later) == _places(first)
    assert _places(tiers) == _places(first)


def test_empty_topology_label_is_no_label() -> None:
    # an empty value used to make every such node one S1 named '-'
    nodes = _nodes()["items"]
    for node in nodes:
        node["metadata"]["labels"][TOPOGRAPH + "spine"] = ""
    res = import_k8s(nodes, preset="topograph")
    assert all(n.s1 == f"host:{n.id}" for n in res.instance.nodes)
    assert any("without topology labels" in w for w in res.warnings)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda n: n.pop("metadata"), "Node '?': metadata.name is missing"),
        (lambda n: n["metadata"].pop("name"), "Node '?': metadata.name is missing"),
        (lambda n: n["status"]["allocatable"].update({"nvidia.com/gpu": 8}),
         "Node 'a0': allocatable.nvidia.com/gpu=8: Input should be a valid string"),
        (lambda n: n["spec"].update({"unschedulable": "yes"}), "Node 'a0': unschedulable='yes':"),
    ],
)
def test_unusable_node_is_one_line_naming_file_node_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: Any, message: str
) -> None:
    data = _nodes()
    change(data["items"][0])
    p = tmp_path / "nodes.json"
    p.write_text(json.dumps(data))
    out = tmp_path / "inst.json"
    assert main(["import", "k8s", "--nodes", str(p), "--preset", "topograph", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"{p}: {message}"), err
    assert len(err.splitlines()) == 1
    assert not out.exists()


def test_pod_or_node_listed_twice_is_refused(tmp_path: Path) -> None:
    # concatenated outputs used to count the pod's GPUs twice and blame the node
    pods: dict[str, Any] = json.loads((DATA / "pods-rbg.json").read_text())
    pods["items"].append(copy.deepcopy(pods["items"][0]))
    p = tmp_path / "pods.json"
    p.write_text(json.dumps(pods))
    with pytest.raises(InputError, match=r"pods\.json: Pod 'llm/chat-g1-prefill-0' appears more than once"):
        import_k8s_files(DATA / "gpu-nodes.json", p, "topograph", MAP)
    nodes = _nodes()
    nodes["items"].append(copy.deepcopy(nodes["items"][0]))
    n = tmp_path / "nodes.json"
    n.write_text(json.dumps(nodes))
    with pytest.raises(InputError, match=r"nodes\.json: Node 'a0' appears more than once"):
        import_k8s_files(n, None, "topograph")


def test_pod_without_spec_or_name_is_refused(tmp_path: Path) -> None:
    pods: dict[str, Any] = json.loads((DATA / "pods-rbg.json").read_text())
    pods["items"][0].pop("spec")
    p = tmp_path / "pods.json"
    p.write_text(json.dumps(pods))
    with pytest.raises(InputError, match=r"pods\.json: Pod 'chat-g1-prefill-0': spec is missing"):
        import_k8s_files(DATA / "gpu-nodes.json", p, "topograph", MAP)
    pods["items"][0] = {"kind": "Pod", "spec": {"containers": []}}
    p.write_text(json.dumps(pods))
    with pytest.raises(InputError, match=r"pods\.json: Pod '\?': metadata.name is missing"):
        import_k8s_files(DATA / "gpu-nodes.json", p, "topograph", MAP)


# ------------------------------------------------------------------ export


def _solved(tmp_path: Path) -> tuple[Path, Path]:
    inst = tmp_path / "cluster.json"
    assert main(["import", "k8s", "--nodes", str(DATA / "gpu-nodes.json"), "--pods", str(DATA / "pods-rbg.json"),
                 "--preset", "topograph", "--map", str(DATA / "map.yaml"), "--request", "chat=2",
                 "--out", str(inst)]) == 0
    assert main(["solve", str(inst), "--out-dir", str(tmp_path)]) == 0
    return inst, tmp_path / "cluster.plan.json"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        # an empty or malformed label key was written into every pod template's Kueue annotation
        (["--kueue-topology", ""], "--kueue-topology='' is not a Kubernetes label key"),
        (["--kueue-topology", "rack id"], "--kueue-topology='rack id' is not a Kubernetes label key"),
        (["--kueue-topology", "Example.com/rack"], "--kueue-topology='Example.com/rack' is not a Kubernetes label key"),
        (["--image", ""], "--image='' must be a container image reference without spaces"),
    ],
)
def test_export_refuses_what_kubernetes_would(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    inst, plan = _solved(tmp_path)
    capsys.readouterr()
    out = tmp_path / "m.yaml"
    code = main(["export", "k8s", "--plan", str(plan), "--instance", str(inst), "--format", "lws", "--out", str(out),
                 *extra])
    assert code == 2
    assert capsys.readouterr().err.strip() == message + (
        " ([prefix/]name, name of at most 63 of A-Z a-z 0-9 - _ . starting and ending alphanumeric, prefix a DNS "
        "subdomain)" if "label key" in message else "")
    assert not out.exists()


def test_export_reads_kueue_label_keys_kubernetes_accepts(tmp_path: Path) -> None:
    inst, plan = _solved(tmp_path)
    out = tmp_path / "m.yaml"
    for key in ("network.topology.nvidia.com/block", "cloud.google.com/gce-topology-block", "rack"):
        assert main(["export", "k8s", "--plan", str(plan), "--instance", str(inst), "--format", "lws",
                     "--kueue-topology", key, "--out", str(out)]) == 0
        assert f"kueue.x-k8s.io/podset-required-topology: {key}" in out.read_text()


def test_plan_file_with_bom_reads_and_other_bytes_name_the_file(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    inst, plan = _solved(tmp_path)
    bom = tmp_path / "bom.plan.json"
    bom.write_bytes(b"\xef\xbb\xbf" + plan.read_bytes())
    out = tmp_path / "m.yaml"
    args = ["export", "k8s", "--instance", str(inst), "--format", "lws"]
    assert main([*args, "--plan", str(bom), "--out", str(out)]) == 0
    bad = tmp_path / "bad.plan.json"
    bad.write_bytes(b"\xff\xfe{}")
    capsys.readouterr()
    assert main([*args, "--plan", str(bad)]) == 2
    assert capsys.readouterr().err.strip().startswith(f"{bad}: not UTF-8 text")


def test_node_whose_pods_request_more_than_its_allocatable_gpus_is_kept_full_with_a_warning() -> None:
    # node b2 holds an 8-GPU prefill pod but reports 4 allocatable GPUs (one failed after binding):
    # the import used to fail ("deployment groups use 8 GPUs but only 4 are in use")
    nodes = _nodes()["items"]
    for node in nodes:
        if node["metadata"]["name"] == "b2":
            node["status"]["allocatable"]["nvidia.com/gpu"] = "4"
    pods = json.loads((DATA / "pods-deployment.json").read_text())["items"]
    res = import_k8s(nodes, pods, "topograph", MAP)
    b2 = next(n for n in res.instance.nodes if n.id == "b2")
    assert (b2.gpus_total, b2.gpus_free) == (8, 0)
    said = "Node 'b2': its pods request 8 GPUs but allocatable nvidia.com/gpu=4"
    assert any(w.startswith(said) for w in res.warnings)


def test_pods_bound_to_one_node_requesting_more_than_64_gpus_name_the_pods_file(tmp_path: Path) -> None:
    pods = json.loads((DATA / "pods-deployment.json").read_text())
    on_b2 = next(p for p in pods["items"] if p["spec"].get("nodeName") == "b2")  # 8 GPUs
    for k in range(8):
        extra = copy.deepcopy(on_b2)
        extra["metadata"]["name"] += f"-x{k}"
        pods["items"].append(extra)
    path = tmp_path / "pods.json"
    path.write_text(json.dumps(pods))
    said = r"pods\.json: pods bound to node 'b2' request 72 GPUs; a node holds at most 64"
    with pytest.raises(InputError, match=said):
        import_k8s_files(DATA / "gpu-nodes.json", path, "topograph", MAP)


# ------------------------------------------------------------------ streams of objects


def test_nodes_joined_with_document_markers_read_like_a_node_list(tmp_path: Path) -> None:
    # `for n in a0 b0 ...; do kubectl get node $n -o yaml; echo ---; done` used to be
    # "malformed YAML: but found another document"
    import yaml

    items = _nodes()["items"]
    stream = tmp_path / "nodes.yaml"
    stream.write_text("".join(yaml.safe_dump(n) + "---\n" for n in items))
    listed = import_k8s_files(DATA / "gpu-nodes.json", None, "topograph", MAP).instance
    assert import_k8s_files(stream, None, "topograph", MAP).instance.nodes == listed.nodes


def test_node_objects_printed_one_after_another_as_json_read_like_a_node_list(tmp_path: Path) -> None:
    # `kubectl get node a0 -o json; kubectl get node b0 -o json` used to be "malformed JSON: Extra data"
    stream = tmp_path / "nodes.json"
    stream.write_text("\n".join(json.dumps(n, indent=2) for n in _nodes()["items"]))
    listed = import_k8s_files(DATA / "gpu-nodes.json", None, "topograph", MAP).instance
    assert import_k8s_files(stream, None, "topograph", MAP).instance.nodes == listed.nodes


def test_other_object_in_a_stream_names_its_document(tmp_path: Path) -> None:
    import yaml

    pod = json.loads((DATA / "pods-rbg.json").read_text())["items"][0]
    stream = tmp_path / "nodes.yaml"
    stream.write_text(yaml.safe_dump(_nodes()["items"][0]) + "---\n" + yaml.safe_dump(pod))
    with pytest.raises(InputError, match=r"nodes\.yaml document 2: kind='Pod': expected a Node or a List of Node"):
        import_k8s_files(stream, None, "topograph")


@pytest.mark.parametrize("length", [201, 253])
def test_kept_node_named_longer_than_an_instance_id_is_refused_naming_file_node_and_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], length: int
) -> None:
    # Kubernetes allows 253 characters, the instance format's ids 200; was "Node 'a0': 1 validation error for Node"
    data = _nodes()
    name = "gpu-" + "x" * (length - 4)
    data["items"][0]["metadata"]["name"] = name
    p = tmp_path / "nodes.json"
    p.write_text(json.dumps(data))
    out = tmp_path / "inst.json"
    assert main(["import", "k8s", "--nodes", str(p), "--preset", "topograph", "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"{p}: Node '{name[:77]}...': metadata.name ({length} characters) is not an instance id: "
        "String should have at most 200 characters"
    )
    assert not out.exists()
    data["items"][0]["metadata"]["name"] = "a0"
    cordoned = next(n for n in data["items"] if n["metadata"]["name"] == "c0")
    cordoned["metadata"]["name"] = name
    p.write_text(json.dumps(data))
    assert main(["import", "k8s", "--nodes", str(p), "--preset", "topograph", "--out", str(out)]) == 0  # left out


def test_a_key_given_twice_in_a_node_yaml_is_refused_naming_its_line(tmp_path: Path) -> None:
    # before: the last value won silently (yaml.safe_load), as it did in instance files
    p = tmp_path / "nodes.yaml"
    p.write_text("apiVersion: v1\nkind: Node\nmetadata:\n  name: a0\n  name: a1\n")
    with pytest.raises(InputError, match=r"nodes\.yaml: line 5: .*key 'name' appears twice"):
        import_k8s_files(p)


def test_malformed_node_yaml_says_where_once(tmp_path: Path) -> None:
    p = tmp_path / "nodes.yaml"
    p.write_text("kind: Node\nmetadata: [a\n")
    with pytest.raises(InputError, match=r"nodes\.yaml: malformed YAML at line \d+ column \d+: ") as exc:
        import_k8s_files(p)
    assert str(exc.value).count("malformed YAML") == 1


def test_a_service_error_in_the_map_names_the_service_as_the_policy_config_does(tmp_path: Path) -> None:
    # before: "Import map '...': services[0]: Service 'chat': min_units=..." (the list's place before its name)
    p = tmp_path / "map.yaml"
    text = (DATA / "map.yaml").read_text()
    p.write_text(text.replace("    max_units: 16\n", "    min_units: 20\n    max_units: 16\n", 1))
    with pytest.raises(InputError) as exc:
        load_import_map(p)
    assert str(exc.value) == f"Import map '{p}': Service 'chat': min_units=20 exceeds max_units=16"


def test_a_map_read_from_a_file_equals_the_same_map_made_in_code() -> None:
    # the file it came from names it in errors, and is no part of what it says
    read = load_import_map(DATA / "map.yaml")
    made = type(read).model_validate(read.model_dump())
    assert (read.source, made.source) == (str(DATA / "map.yaml"), "the import map")
    assert read == made
    assert read != made.model_copy(update={"cluster": "other"})
