"""Kubernetes in: the shared node list and hand-made pod lists (RBG, LWS, Deployment) to instances."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from adapters.helpers import DATA
from hetero_opt.adapters.k8s_import import (
    PRESETS,
    ImportMap,
    TopologyLabels,
    gpu_type_name,
    import_k8s,
    import_k8s_files,
    load_import_map,
)
from hetero_opt.cli import main
from hetero_opt.errors import InputError
from hetero_opt.instance import current_units
from hetero_opt.io import load_instance

MAP = load_import_map(DATA / "map.yaml")


def _items(name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads((DATA / name).read_text())["items"]
    return items


def test_shared_fixture_keeps_the_gpu_node_and_says_why_the_others_are_out() -> None:
    res = import_k8s_files(DATA / "nodes-example.json")
    [node] = res.instance.nodes
    # nori: NVIDIA-A16-4Q vGPU slice, allocatable nvidia.com/gpu=1, no topology labels
    assert (node.id, node.gpu_type, node.gpus_total, node.gpus_free) == ("nori", "A16", 1, 1)
    assert (node.s2, node.s1) == ("zone:none", "host:nori")
    assert res.instance.gpu_types[0].memory_gb == 4.0  # nvidia.com/gpu.memory=4096 MiB
    out = [w for w in res.warnings if "left out" in w]
    assert len(out) == 2
    assert all("no allocatable nvidia.com/gpu" in w for w in out)
    assert any("without topology labels" in w and "'nori'" in w for w in res.warnings)


def test_cli_import_writes_an_instance_validate_accepts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "inst.json"
    assert main(["import", "k8s", "--nodes", str(DATA / "nodes-example.json"), "--out", str(out)]) == 0
    assert main(["validate", str(out)]) == 0
    assert "1 node, 1 GPU (1 free)" in capsys.readouterr().out


def test_rbg_pods_give_a_group_and_free_gpus() -> None:
    res = import_k8s_files(DATA / "gpu-nodes.json", DATA / "pods-rbg.json", "topograph", MAP)
    inst = res.instance
    assert [n.id for n in inst.nodes] == ["a0", "a1", "a2", "b0", "b1", "b2"]  # a2's nvidia.com/gpu taint is tolerated
    free = {n.id: n.gpus_free for n in inst.nodes}
    # a0: prefill 4 + decode 4 = 8 used; a1: decode 4 (the Succeeded job does not count); b2: trainer 8
    assert free == {"a0": 0, "a1": 4, "a2": 8, "b0": 8, "b1": 8, "b2": 0}
    a0 = inst.nodes[0]
    # the datacenter label repeats the cluster name: ids must differ across levels, so the S2 is qualified
    assert (a0.cluster, a0.s2, a0.s1, a0.s0) == ("dc1", "s2:dc1", "sp-a", "blk-a0")
    [g] = inst.groups
    assert (g.id, g.service, g.domain) == ("chat-g1", "chat", "sp-a")
    assert {(p.role, p.node, p.count) for p in g.pods} == {
        ("prefill", "a0", 1),
        ("decode", "a0", 1),
        ("decode", "a1", 1),
    }
    assert current_units(inst, "chat") == 1  # 1 prefill + 2 decode = one 1:2 unit
    reasons = {w.split("'")[1]: w for w in res.warnings if "left out" in w}
    assert "spec.unschedulable=true" in reasons["c0"]
    assert "Ready=False" in reasons["c1"]
    assert "taint dedicated=training:NoSchedule" in reasons["c2"]
    assert "no allocatable nvidia.com/gpu" in reasons["cpu0"]


def test_lws_pods_infer_their_service_from_the_pods() -> None:
    res = import_k8s_files(DATA / "gpu-nodes.json", DATA / "pods-lws.json", "topograph", MAP)
    inst = res.instance
    code = next(s for s in inst.services if s.id == "code")
    # each group: 1 prefill + 2 decode pods of 2 GPUs, each group inside one spine
    assert (code.pd_ratio.prefill, code.pd_ratio.decode, code.affinity) == (1, 2, "s1")
    assert [r.name for r in code.roles] == ["prefill", "decode"]
    assert {g.id: g.domain for g in inst.groups} == {"code-g1": "sp-a", "code-g2": "sp-b"}
    assert current_units(inst, "code") == 2
    assert any("Service 'code': not in the map file" in w for w in res.warnings)


def test_deployment_pods_group_by_part_of_label() -> None:
    inst = import_k8s_files(DATA / "gpu-nodes.json", DATA / "pods-deployment.json", "topograph", MAP).instance
    [g] = inst.groups
    assert (g.id, g.service, g.domain) == ("summ-g1", "summ", "s2:dc1")  # summ has S2 affinity
    assert {(p.role, p.node) for p in g.pods} == {("prefill", "b2"), ("decode", "b0")}


@pytest.mark.parametrize("preset", ["eks", "gke"])
def test_cloud_presets_read_their_labels(preset: str) -> None:
    node = copy.deepcopy(_items("gpu-nodes.json")[0])
    keys = PRESETS[preset]
    node["metadata"]["labels"] |= {keys.s2: "bigpod-1", keys.s1: "minipod-7", str(keys.s0): "rack-3"}
    [n] = import_k8s([node], preset=preset).instance.nodes  # type: ignore[arg-type]
    assert (n.s2, n.s1, n.s0, n.gpu_type) == ("bigpod-1", "minipod-7", "rack-3", "H20")


def test_user_named_labels() -> None:
    node = copy.deepcopy(_items("gpu-nodes.json")[0])
    node["metadata"]["labels"] |= {"example.com/pod": "p1", "example.com/row": "r1", "example.com/dc": "east"}
    mapping = ImportMap(topology=TopologyLabels(s2="example.com/pod", s1="example.com/row", cluster="example.com/dc"))
    [n] = import_k8s([node], mapping=mapping).instance.nodes
    assert (n.cluster, n.s2, n.s1, n.s0) == ("east", "p1", "r1", None)


@pytest.mark.parametrize(
    ("product", "name"),
    [
        ("NVIDIA-H100-80GB-HBM3", "H100"),
        ("NVIDIA-A16-4Q", "A16"),
        ("NVIDIA-H20", "H20"),
        ("Tesla-V100-SXM2-16GB", "V100"),
    ],
)
def test_gpu_type_names(product: str, name: str) -> None:
    assert gpu_type_name(product) == name


def test_group_spanning_two_domains_is_an_error() -> None:
    pods = _items("pods-rbg.json")
    pods[2]["spec"]["nodeName"] = "b0"  # second decode pod of chat-g1 moves to spine sp-b
    with pytest.raises(InputError, match=r"DeploymentGroup 'chat-g1': pods span s1 domains \['sp-a', 'sp-b'\]"):
        import_k8s(_items("gpu-nodes.json"), pods, "topograph", MAP)


def test_pod_on_a_left_out_node_is_not_counted() -> None:
    pods = _items("pods-rbg.json")
    pods[2]["spec"]["nodeName"] = "c0"  # cordoned
    res = import_k8s(_items("gpu-nodes.json"), pods, "topograph", MAP)
    assert any("node 'c0' was left out" in w for w in res.warnings)
    assert current_units(res.instance, "chat") == 0  # 1 prefill + 1 decode: no whole 1:2 unit


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--nodes", "pods-rbg.json"], "items[0]: kind='Pod': expected Node"),
        (["--nodes", "map.yaml"], "kind='missing': expected a Node or a List of Node objects"),
        (["--nodes", "nope.json"], "nope.json: cannot read file"),
        (["--nodes", "gpu-nodes.json", "--pods", "gpu-nodes.json"], "items[0]: kind='Node': expected Pod"),
    ],
)
def test_cli_bad_input_is_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    out = tmp_path / "inst.json"
    argv = ["import", "k8s", *[str(DATA / a) if a.endswith((".json", ".yaml")) else a for a in args], "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1]
    assert not out.exists()


def test_bad_map_names_file_and_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "map.yaml"
    bad.write_text("cluster: dc1\ntolerated_taint: [x]\n")
    argv = [
        "import",
        "k8s",
        "--nodes",
        str(DATA / "gpu-nodes.json"),
        "--map",
        str(bad),
        "--out",
        str(tmp_path / "i.json"),
    ]
    assert main(argv) == 2
    assert "tolerated_taint" in capsys.readouterr().err


def test_cli_request_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "inst.json"
    base = ["import", "k8s", "--nodes", str(DATA / "gpu-nodes.json"), "--pods", str(DATA / "pods-rbg.json")]
    base += ["--preset", "topograph", "--map", str(DATA / "map.yaml"), "--out", str(out)]
    assert main([*base, "--request", "chat=2"]) == 0
    assert [(r.service, r.target_units) for r in load_instance(out).requests] == [("chat", 2)]
    out.unlink()
    assert main([*base, "--request", "chat=99"]) == 2  # map: max_units 16
    assert "ScalingRequest 'chat': target_units=99 exceeds max_units=16" in capsys.readouterr().err
    assert main([*base, "--request", "chat"]) == 2
    assert "--request='chat' must be SERVICE=UNITS" in capsys.readouterr().err
    assert not out.exists()


def test_fractional_gpu_request_names_pod_and_container() -> None:
    pods = _items("pods-rbg.json")
    pods[0]["spec"]["containers"][0]["resources"]["requests"]["nvidia.com/gpu"] = "0.5"
    with pytest.raises(InputError, match=r"Pod 'llm/chat-g1-prefill-0' container 'engine': nvidia.com/gpu='0.5'"):
        import_k8s(_items("gpu-nodes.json"), pods, "topograph", MAP)


@pytest.mark.parametrize("pods", ["pods-rbg.json", "pods-lws.json", "pods-deployment.json"])
def test_every_pod_list_imports_into_a_valid_instance(tmp_path: Path, pods: str) -> None:
    out = tmp_path / "inst.yaml"
    argv = ["import", "k8s", "--nodes", str(DATA / "gpu-nodes.json"), "--pods", str(DATA / pods)]
    assert main([*argv, "--preset", "topograph", "--map", str(DATA / "map.yaml"), "--out", str(out)]) == 0
    assert main(["validate", str(out)]) == 0


def test_yaml_node_list_reads_like_json(tmp_path: Path) -> None:
    import yaml

    nodes = tmp_path / "nodes.yaml"
    nodes.write_text(yaml.safe_dump(json.loads((DATA / "gpu-nodes.json").read_text())))
    from_yaml = import_k8s_files(nodes, None, "topograph", MAP).instance
    from_json = import_k8s_files(DATA / "gpu-nodes.json", None, "topograph", MAP).instance
    assert from_yaml.nodes == from_json.nodes


def test_missing_kubernetes_client_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from hetero_opt.adapters import k8s_objects

    k8s_objects._client.cache_clear()
    monkeypatch.setitem(sys.modules, "kubernetes.client", None)
    try:
        with pytest.raises(InputError, match=r"pip install 'hetero_opt\[k8s\]'"):
            import_k8s_files(DATA / "gpu-nodes.json")
    finally:
        k8s_objects._client.cache_clear()


def _map_with(tmp_path: Path, old: str, new: str) -> Path:
    """tests/adapters/data/map.yaml with ``old`` replaced by ``new``, as tmp_path/map.yaml."""
    text = (DATA / "map.yaml").read_text()
    assert old in text
    path = tmp_path / "map.yaml"
    path.write_text(text.replace(old, new))
    return path


@pytest.mark.parametrize("size", [2, 8])
def test_pods_requesting_other_than_the_maps_gpus_per_pod_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], size: int
) -> None:
    # the pods of chat's prefill request 4 GPUs; a map saying 2 was imported as 2 (wrong data), one
    # saying 8 failed with "Node 'a0': deployment groups use 12 GPUs but only ... 8 are in use"
    map_path = _map_with(tmp_path, "{name: prefill, gpus_per_pod: 4", f"{{name: prefill, gpus_per_pod: {size}")
    out = tmp_path / "cluster.json"
    argv = ["import", "k8s", "--nodes", str(DATA / "gpu-nodes.json"), "--pods", str(DATA / "pods-rbg.json"),
            "--preset", "topograph", "--map", str(map_path), "--out", str(out)]  # fmt: skip
    assert main(argv) == 2
    assert not out.exists()
    [err] = capsys.readouterr().err.strip().splitlines()[-1:]
    assert err == (
        f"{DATA / 'pods-rbg.json'}: Pod 'llm/chat-g1-prefill-0' requests 4 GPUs (nvidia.com/gpu) "
        f"but {map_path} service 'chat' role 'prefill' has gpus_per_pod={size}"
    )


def test_pod_of_a_role_or_gpu_type_the_map_does_not_give_its_service_is_refused(tmp_path: Path) -> None:
    on_l20 = load_import_map(_map_with(tmp_path, "gpu_types: [H20, L20]", "gpu_types: [L20]"))
    said = (r"Pod 'llm/chat-g1-decode-0' runs on node 'a0' of gpu_type H20 but .*map\.yaml service 'chat' "
            r"role 'decode' has gpu_types=\['L20'\]")  # fmt: skip
    with pytest.raises(InputError, match=said):
        import_k8s(_items("gpu-nodes.json"), _items("pods-rbg.json"), "topograph", on_l20)
    pods = _items("pods-rbg.json")
    pods[0]["metadata"]["labels"]["rolebasedgroup.workloads.x-k8s.io/role"] = "prefill-attn"
    said = r"Pod 'llm/chat-g1-prefill-0' has role 'prefill-attn' but the import map service 'chat' has roles"
    with pytest.raises(InputError, match=said):
        import_k8s(_items("gpu-nodes.json"), pods, "topograph", ImportMap.model_validate(MAP.model_dump()))


def test_gpu_type_name_in_the_map_that_is_no_id_names_file_product_and_value(tmp_path: Path) -> None:
    # was "Node 'a0': 1 validation error for Node"
    bad = _map_with(tmp_path, "NVIDIA-H20: H20,", 'NVIDIA-H20: "H 20",')
    with pytest.raises(InputError) as err:
        load_import_map(bad)
    assert str(err.value) == (
        f"Import map '{bad}': gpu_types: NVIDIA-H20='H 20' is not a GPU type id: "
        "String should match pattern '^[A-Za-z0-9_.:/@+-]+$'"
    )
