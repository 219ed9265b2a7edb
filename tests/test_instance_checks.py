"""The instance's cross-reference checks against a plain reference: the same first error, or none.

``Instance._check_references`` reads node and pod fields in bulk (set operations, ``__dict__``
look-ups, a short-circuit for the largest node) because it runs on every load of 20k+ nodes.
:func:`_reference` is the same rules as plain loops over attributes, in the order the messages
are promised: for random defects (one to three at a time) on generated instances, both must raise
the same message or both accept.
"""

from __future__ import annotations

import copy
import pickle
import random
from collections import Counter
from typing import Any

import pytest

from hetero_opt.generate import generate_instance
from hetero_opt.instance import (
    DeploymentGroup,
    GpuType,
    Instance,
    Node,
    NodeTable,
    ObjectiveWeights,
    PodTable,
    RdmaSubgroup,
    ScalingRequest,
    Service,
    _check_levels_disjoint,
    _check_node_references,
    _check_unique,
    _check_version_1_0,
)


def _reference(inst: Instance) -> None:
    """The checks of ``Instance._check_references`` as plain loops; raise ``ValueError`` at the first offence."""
    _check_unique("GpuType", [g.id for g in inst.gpu_types])
    _check_unique("Node", [n.id for n in inst.nodes])
    _check_unique("Service", [s.id for s in inst.services])
    _check_unique("DeploymentGroup", [g.id for g in inst.groups])
    _check_unique("RdmaSubgroup", [g.id for g in inst.subgroups])
    gpu_ids = {g.id for g in inst.gpu_types}
    _check_levels_disjoint(inst.nodes)
    if inst.format_version == "1.0":
        _check_version_1_0(inst)
    _check_node_references(inst.nodes, gpu_ids)
    s2_of_s1 = {n.s1: n.s2 for n in inst.nodes}
    s1_ids, s2_ids, cluster_ids = set(s2_of_s1), {n.s2 for n in inst.nodes}, {n.cluster for n in inst.nodes}
    covered: dict[str, str] = {}
    for sg in inst.subgroups:
        members = [s1 for s2 in sg.s2s for s1 in sorted(s1_ids) if s2_of_s1[s1] == s2]
        for s2 in sg.s2s:
            if s2 not in s2_ids:
                raise ValueError(f"RdmaSubgroup '{sg.id}': s2s contains unknown S2 '{s2}'")
        for s1 in sg.s1s:
            if s1 not in s1_ids:
                raise ValueError(f"RdmaSubgroup '{sg.id}': s1s contains unknown S1 '{s1}'")
        for s1 in members + list(sg.s1s):
            if s1 in covered:
                raise ValueError(f"RdmaSubgroup '{sg.id}': S1 '{s1}' is already in subgroup '{covered[s1]}'")
            covered[s1] = sg.id
    max_node_gpus = max(n.gpus_total for n in inst.nodes)
    for s in inst.services:
        for r in s.roles:
            for t in r.gpu_types:
                if t not in gpu_ids:
                    raise ValueError(f"Service '{s.id}': role '{r.name}' gpu_types contains unknown GPU type '{t}'")
            if len(set(r.gpu_types)) != len(r.gpu_types):
                raise ValueError(f"Service '{s.id}': role '{r.name}' gpu_types={r.gpu_types} repeats a type")
            if r.gpus_per_pod > max_node_gpus:
                raise ValueError(
                    f"Service '{s.id}': role '{r.name}' gpus_per_pod={r.gpus_per_pod} exceeds "
                    f"the largest node ({max_node_gpus} GPUs)"
                )
    services = {s.id: s for s in inst.services}
    node_by_id = {n.id: n for n in inst.nodes}
    used_by_node: Counter[str] = Counter()
    for g in inst.groups:
        svc = services.get(g.service)
        if svc is None:
            raise ValueError(f"DeploymentGroup '{g.id}': service='{g.service}' is not a declared service")
        if g.domain not in {"s1": s1_ids, "s2": s2_ids, "cluster": cluster_ids}[svc.affinity]:
            raise ValueError(
                f"DeploymentGroup '{g.id}': domain='{g.domain}' is not an {svc.affinity} id "
                f"(service '{svc.id}' has affinity {svc.affinity})"
            )
        seen: set[tuple[str, str]] = set()
        for pc in g.pods:
            node = node_by_id.get(pc.node)
            if node is None:
                raise ValueError(f"DeploymentGroup '{g.id}': pods node='{pc.node}' is not a declared node")
            if (pc.role, pc.node) in seen:
                raise ValueError(f"DeploymentGroup '{g.id}': pods lists role '{pc.role}' on node '{pc.node}' twice")
            seen.add((pc.role, pc.node))
            role = next((r for r in svc.roles if r.name == pc.role), None)
            if role is None:
                raise ValueError(f"DeploymentGroup '{g.id}': pods role='{pc.role}' is not a role of service '{svc.id}'")
            if node.gpu_type not in role.gpu_types:
                raise ValueError(
                    f"DeploymentGroup '{g.id}': pod of role '{pc.role}' on node '{pc.node}' "
                    f"has gpu_type='{node.gpu_type}', not one of {role.gpu_types}"
                )
            if getattr(node, svc.affinity) != g.domain:
                raise ValueError(f"DeploymentGroup '{g.id}': pod on node '{pc.node}' lies outside domain '{g.domain}'")
            used_by_node[pc.node] += pc.count * role.gpus_per_pod
    over = sorted(i for i, used in used_by_node.items() if used > node_by_id[i].gpus_total - node_by_id[i].gpus_free)
    if over:
        node = node_by_id[over[0]]
        raise ValueError(
            f"Node '{node.id}': deployment groups use {used_by_node[node.id]} GPUs but only "
            f"gpus_total-gpus_free={node.gpus_total - node.gpus_free} are in use"
        )
    seen_req: set[str] = set()
    for req in inst.requests:
        svc = services.get(req.service)
        if svc is None:
            raise ValueError(f"ScalingRequest: service='{req.service}' is not a declared service")
        if req.service in seen_req:
            raise ValueError(f"ScalingRequest: service='{req.service}' has two requests")
        seen_req.add(req.service)
        if req.target_units > svc.max_units:
            raise ValueError(
                f"ScalingRequest '{req.service}': target_units={req.target_units} exceeds max_units={svc.max_units}"
            )
        if req.target_units < svc.min_units:
            raise ValueError(
                f"ScalingRequest '{req.service}': target_units={req.target_units} is below min_units={svc.min_units}"
            )


def _first_error(check: Any, inst: Instance) -> str | None:
    try:
        check(inst)
    except ValueError as exc:
        return str(exc)
    return None


def _build(d: dict[str, Any], columnar: bool = False) -> Instance:
    """An instance from ``d`` with every entity validated on its own but no instance-level check; ``columnar``:
    its nodes and every group's pods as tables (format 1.3), which the checks read in bulk."""
    nodes = [Node.model_validate(x) for x in d["nodes"]]
    groups = [DeploymentGroup.model_validate(x) for x in d["groups"]]
    if columnar:
        groups = [g.model_copy(update={"pods": PodTable.from_pods(g.pods)}) for g in groups]
    return Instance.model_construct(
        format_version="1.3" if columnar else d["format_version"],
        name=d["name"],
        gpu_types=[GpuType.model_validate(x) for x in d["gpu_types"]],
        nodes=NodeTable.from_nodes(nodes) if columnar else nodes,
        subgroups=[RdmaSubgroup.model_validate(x) for x in d["subgroups"]],
        services=[Service.model_validate(x) for x in d["services"]],
        groups=groups,
        requests=[ScalingRequest.model_validate(x) for x in d["requests"]],
        objective=ObjectiveWeights.model_validate(d["objective"]),
    )


def _mutate(d: dict[str, Any], rng: random.Random) -> None:
    """One random defect, or a change that may or may not be one, of a node, pod, group, role, subgroup or request."""
    nodes, groups, services = d["nodes"], d["groups"], d["services"]
    ids = {level: sorted({n[level] for n in nodes if n[level] is not None}) for level in ("cluster", "s2", "s1", "s0")}
    ids["id"] = [n["id"] for n in nodes]
    any_id = [i for level in ids.values() for i in level]
    node = rng.choice(nodes)
    group = rng.choice(groups) if groups else None
    kind = rng.randrange(17)
    if kind == 0:
        node["gpu_type"] = rng.choice(["H20", "L20", "X9"])
    elif kind in (1, 2, 3, 4):
        level = ("cluster", "s2", "s1", "s0")[kind - 1]
        node[level] = rng.choice([*any_id, f"new-{level}", None] if level == "s0" else [*any_id, f"new-{level}"])
    elif kind == 5:
        node["id"] = rng.choice(any_id)
    elif kind == 6:
        node["gpus_total"] = rng.randint(1, 16)
        node["gpus_free"] = rng.randint(0, node["gpus_total"])
    elif kind == 7 and group and group["pods"]:
        field = rng.choice(["node", "role", "count"])
        roles = ["prefill", "decode", "prefill-ffn", "serve"]
        choices = {"node": [*ids["id"], "ghost"], "role": roles, "count": [1, 8]}
        rng.choice(group["pods"])[field] = rng.choice(choices[field])
    elif kind == 8 and group and group["pods"]:
        group["pods"].insert(rng.randrange(len(group["pods"]) + 1), dict(rng.choice(group["pods"])))
    elif kind == 9 and group:
        group["domain"] = rng.choice(any_id)
    elif kind == 10 and group:
        group["service"] = rng.choice([*(s["id"] for s in services), "ghost"])
    elif kind == 11:
        role = rng.choice(rng.choice(services)["roles"])
        role["gpus_per_pod"] = rng.choice([8, 16, 32, 64])
    elif kind == 12:
        role = rng.choice(rng.choice(services)["roles"])
        role["gpu_types"] = role["gpu_types"] + [rng.choice(["H20", "L20", "X9"])]
    elif kind == 13:
        d["subgroups"].append(
            {
                "id": f"sg{len(d['subgroups'])}",
                "tier": "high",
                "s2s": rng.sample([*ids["s2"], "ghost"], rng.randint(0, 2)),
                "s1s": rng.sample([*ids["s1"], "ghost"], rng.randint(0, 2)),
            }
        )
    elif kind == 14 and d["requests"]:
        req = rng.choice(d["requests"])
        if rng.random() < 0.5:
            req["service"] = rng.choice([*(s["id"] for s in services), "ghost"])
        else:
            req["target_units"] = rng.randint(0, 20)
    elif kind == 15:  # an id of another kind of entity given twice
        kin = rng.choice([d["gpu_types"], services, groups, d["subgroups"]])
        if not kin:  # no subgroup (or group) yet: declare an empty one, then again
            kin.append({"id": "dup", "tier": "high", "s2s": [], "s1s": []} if kin is d["subgroups"] else
                       {"id": "dup", "service": services[0]["id"], "domain": nodes[0]["s1"], "pods": []})
        kin.append(copy.deepcopy(rng.choice(kin)))
    elif kind == 16:
        d["format_version"] = rng.choice(["1.0", "1.1"])


BASES = [("small", 0), ("small", 1), ("moe", 0), ("tiny", 2)]


@pytest.mark.parametrize("columnar", [False, True], ids=["rows", "columns"])
@pytest.mark.parametrize(("family", "seed"), BASES, ids=[f"{f}-{s}" for f, s in BASES])
def test_random_defects_get_the_reference_message(family: str, seed: int, columnar: bool) -> None:
    base = generate_instance(family, seed, columnar=False).model_dump(mode="json")
    rng = random.Random(seed)
    outcomes: Counter[str] = Counter()
    for _ in range(300):
        d = copy.deepcopy(base)
        for _ in range(rng.randint(1, 3)):
            _mutate(d, rng)
        inst = _build(d, columnar)
        expected = _first_error(_reference, inst)
        assert _first_error(Instance._check_references, inst) == expected, d
        outcomes[(expected or "ok").split(":")[0].split(" '")[0]] += 1
    # The defects reach the checks of nodes, groups and pods, not only the first ones.
    assert {"ok", "Node", "DeploymentGroup"} <= set(outcomes), outcomes


def test_the_random_defects_reach_every_kind_of_message() -> None:
    """Over the bases, the mutations above give every entity's messages, uniqueness ones included."""
    seen: Counter[str] = Counter()
    rng = random.Random(7)
    for family, seed in BASES:
        base = generate_instance(family, seed).model_dump(mode="json")
        for _ in range(200):
            d = copy.deepcopy(base)
            for _ in range(rng.randint(1, 2)):
                _mutate(d, rng)
            message = _first_error(Instance._check_references, _build(d)) or "ok"
            kind = message.split(":")[0].split(" '")[0]
            seen[f"{kind} twice" if "declared more than once" in message else kind] += 1
    kinds = {"ok", "Node", "DeploymentGroup", "Service", "ScalingRequest", "RdmaSubgroup"}  # GpuType: only twice
    twice = {"Node twice", "Service twice", "DeploymentGroup twice", "RdmaSubgroup twice", "GpuType twice"}
    assert kinds | twice <= set(seen), seen



# --- The node index validation keeps for the views (Instance.node_index) ---------------------------


def _plain_index(inst: Instance) -> tuple[dict[str, Node], frozenset[tuple[object, ...]]]:
    return {n.id: n for n in inst.nodes}, frozenset((n.cluster, n.s2, n.s1, n.s0, n.gpu_type) for n in inst.nodes)


def test_the_node_index_is_what_the_nodes_say() -> None:
    inst = generate_instance("small", 3)
    assert inst.node_index() == _plain_index(inst)


def test_a_copy_with_other_nodes_does_not_read_the_old_index() -> None:
    inst = generate_instance("small", 3)
    inst.node_index()
    renamed = [n.model_copy(update={"id": f"x-{n.id}", "gpu_type": "Z"}) for n in inst.nodes]
    copied = inst.model_copy(update={"nodes": renamed})  # model_copy does not validate
    assert copied.node_index() == _plain_index(copied)
    assert set(copied.node_index()[0]) == {f"x-{n.id}" for n in inst.nodes}
    assert inst.node_index() == _plain_index(inst)  # the original keeps its own


def test_the_index_is_no_field() -> None:
    """Equality, dumps and pickling see only the fields; an instance with the index equals one without."""
    inst = generate_instance("small", 4)
    bare = Instance.model_construct(**dict(inst))  # no validation: no index kept
    assert "_node_index" not in bare.__dict__
    assert bare == inst
    assert inst == bare
    assert "_node_index" not in inst.model_dump()
    assert "_node_index" not in inst.model_dump_json()
    assert len(pickle.dumps(inst)) < len(pickle.dumps(bare)) + 100  # the maps do not travel (to Ray workers)
    back = pickle.loads(pickle.dumps(inst))
    assert back == inst
    assert back.node_index() == _plain_index(back)
    assert back.node_index()[0][inst.nodes[0].id] is back.nodes[0]
    deep = copy.deepcopy(inst)
    assert deep.node_index()[0][inst.nodes[0].id] is deep.nodes[0]


def test_two_instances_differing_in_a_node_are_unequal_whatever_their_indexes() -> None:
    inst = generate_instance("small", 4)
    other = inst.model_copy(update={"nodes": [*inst.nodes[:-1], inst.nodes[-1].model_copy(update={"id": "zz-other"})]})
    other.node_index()
    assert inst != other
    assert other != inst
