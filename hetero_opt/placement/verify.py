"""Independent verifier: checks every hard constraint of a plan, node by node. Imports no solver."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable

from pydantic import Field

from hetero_opt.instance import Frozen, Instance, require_instance
from hetero_opt.placement.plan import GroupChange, Plan
from hetero_opt.topology import TopologyView, build_view


class Violation(Frozen):
    """One broken hard constraint."""

    code: str = Field(description="Short name of the constraint, e.g. 'node-capacity'.")
    entity: str = Field(description="What breaks it, e.g. \"node 'n17'\".")
    message: str = Field(description="Human-readable detail with the numbers.")

    def __str__(self) -> str:
        return f"[{self.code}] {self.entity}: {self.message}"


def verify(instance: Instance, plan: Plan, view: TopologyView | None = None) -> list[Violation]:
    """Return every violation of the hard constraints by ``plan``; an empty list means valid."""
    view = view or build_view(require_instance(instance, "verify()"))
    out: list[Violation] = []

    def bad(code: str, entity: str, message: str) -> None:
        out.append(Violation(code=code, entity=entity, message=message))

    requests = {r.service.id: r for r in view.requests}
    added_gpus: Counter[str] = Counter()
    seen_groups: set[str] = set()
    new_by_service: Counter[str] = Counter()
    for c in plan.changes:
        entity = f"group '{c.group}'"
        if c.group in seen_groups:
            bad("duplicate-group", entity, "changed more than once in one plan")
            continue
        seen_groups.add(c.group)
        svc = view.service_by_id.get(c.service)
        req = requests.get(c.service)
        if svc is None or req is None:
            bad("no-request", entity, f"service '{c.service}' has no scaling request")
            continue
        if c.units == 0 or req.delta == 0 or (c.units > 0) != (req.delta > 0):
            bad("direction", entity, f"units={c.units} but the request's delta is {req.delta}")
            continue
        if not _check_group_identity(view, c, bad):
            continue
        if c.new:
            new_by_service[c.service] += 1
        existing = _existing_pods(view, c.group)
        per_s1: defaultdict[tuple[str, str], int] = defaultdict(int)
        by_role: Counter[str] = Counter()
        for p in c.pods:
            node = view.node_by_id.get(p.node)
            if node is None:
                bad("unknown-node", entity, f"node '{p.node}' does not exist")
                continue
            if p.role not in svc.pods_per_unit:
                bad("unknown-role", entity, f"role '{p.role}' is not a role of '{svc.id}'")
                continue
            if node.gpu_type not in svc.role(p.role).gpu_types:
                bad(
                    "gpu-type",
                    f"node '{node.id}'",
                    f"{p.role} pod of '{c.group}' on {node.gpu_type}, not in {svc.role(p.role).gpu_types}",
                )
            if view.domain_of(node.s1, svc.affinity) != c.domain:
                bad("affinity", f"node '{node.id}'", f"outside domain '{c.domain}' of '{c.group}'")
            by_role[p.role] += p.count
            per_s1[(node.s1, p.role)] += p.count
            if c.units > 0:
                added_gpus[node.id] += p.count * svc.role(p.role).gpus_per_pod
            elif p.count > existing.get((p.role, p.node), 0):
                bad(
                    "remove-missing",
                    f"node '{node.id}'",
                    f"removes {p.count} {p.role} pods of '{c.group}' but it has "
                    f"{existing.get((p.role, p.node), 0)} there",
                )
        for role, per_unit in svc.pods_per_unit.items():
            want = abs(c.units) * per_unit
            if by_role[role] != want:
                bad("whole-units", entity, f"{by_role[role]} {role} pods for {abs(c.units)} units (need {want})")
        if svc.attn_ffn_ratio is not None:
            a, f = svc.attn_ffn_ratio.prefill, svc.attn_ffn_ratio.decode
            for s1 in sorted({s1 for s1, _ in per_s1}):
                na, nf = per_s1[(s1, "prefill-attn")], per_s1[(s1, "prefill-ffn")]
                if na % a or nf % f or na // a != nf // f:
                    bad("moe-replica", f"S1 '{s1}'", f"{na} attn and {nf} ffn pods of '{c.group}' (ratio {a}:{f})")
    for node_id, gpus in sorted(added_gpus.items()):
        node = view.node_by_id[node_id]
        if gpus > node.gpus_free:
            bad("node-capacity", f"node '{node_id}'", f"adds {gpus} GPUs, {node.gpus_free} free")
    placed = plan.units_by_service()
    unserved = {u.service: u for u in plan.unserved}
    for sid, req in sorted(requests.items()):
        got = placed.get(sid, 0)
        if req.delta >= 0 and got > req.delta:
            bad("target", f"service '{sid}'", f"adds {got} units, target allows {req.delta}")
        if req.delta < 0 and got < req.delta:
            bad("target", f"service '{sid}'", f"removes {-got} units, request asks {-req.delta}")
        if req.all_or_nothing and got not in (0, req.delta):
            bad("all-or-nothing", f"service '{sid}'", f"places {got} of {req.delta} units of an all-or-nothing request")
        if req.delta < 0 and req.current_units + got < req.service.min_units:  # scale-out may fall short
            bad("min-units", f"service '{sid}'", f"ends at {req.current_units + got} < min {req.service.min_units}")
        if new_by_service[sid] > req.service.max_new_groups:
            bad("new-groups", f"service '{sid}'", f"opens {new_by_service[sid]} > {req.service.max_new_groups}")
        short = got != req.delta
        if short and (sid not in unserved or unserved[sid].placed_units != got):
            bad("unserved-record", f"service '{sid}'", f"places {got} of {req.delta} units without a matching record")
        if not short and sid in unserved:
            bad("unserved-record", f"service '{sid}'", "fully served but listed as unserved")
    for sid in sorted(set(placed) - set(requests)):
        bad("no-request", f"service '{sid}'", "changed without a scaling request")
    return out


def _check_group_identity(view: TopologyView, c: GroupChange, report: Callable[[str, str, str], None]) -> bool:
    svc = view.service_by_id[c.service]
    entity = f"group '{c.group}'"
    old = view.group_by_id.get(c.group)
    if c.new:
        if old is not None:
            report("new-group-id", entity, "new group reuses an existing group id")
            return False
        if c.units < 0:
            report("direction", entity, "a new group cannot shrink")
            return False
        if (
            c.domain not in view.s1s_by_domain
            or view.domain_of(view.s1s_by_domain[c.domain][0], svc.affinity) != c.domain
        ):
            report("affinity", entity, f"domain '{c.domain}' is not an {svc.affinity} id")
            return False
        return True
    if old is None:
        report("unknown-group", entity, "not an existing group (and not marked new)")
        return False
    if old.service != c.service or old.domain != c.domain:
        report("group-identity", entity, f"is ({old.service}, {old.domain}), plan says ({c.service}, {c.domain})")
        return False
    if c.units < 0 and -c.units > view.units_by_group[old.id]:
        report("remove-units", entity, f"removes {-c.units} units, holds {view.units_by_group[old.id]}")
    return True


def _existing_pods(view: TopologyView, group_id: str) -> dict[tuple[str, str], int]:
    old = view.group_by_id.get(group_id)
    return {} if old is None else {(p.role, p.node): p.count for p in old.pods}
