"""Between counts and models: extraction of drafts, a model's values of counts, restriction of counts,
the load counts put on the capacity, whether counts fit, residual capacity.

CP-SAT's paths work on counts (:class:`~hetero_opt.placement.binding.Counts`), never on bound plans:
what counts use is a load per (S1, GPU type) and pod size, whether they fit is the packing rows' test,
and they are scored on terms 1-4 (:func:`~hetero_opt.placement.objective.modelled`). Node binding is
left only where it is needed for correctness: pod sizes outside a divisibility chain (where counts
that fit per-size-class capacity may not bind, so a model's node rows, its hint and a fit test need
nodes), and the greedy run on what placed counts leave (it allocates nodes).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from hetero_opt.placement.binding import BindingError, Counts, GroupDraft, bind
from hetero_opt.placement.cpsat.model import HintError, PlacementModel
from hetero_opt.placement.cpsat.variables import InSlot, OutSlot
from hetero_opt.placement.objective import gpu_cost, modelled
from hetero_opt.placement.plan import GroupChange, Unserved
from hetero_opt.placement.slots import in_slot_specs, limit_zero_keeps_out, out_slot_specs
from hetero_opt.topology import RequestView, TopologyView, is_chain

CellKey = tuple[str, str]  # (S1, GPU type)


def estimated_vars(view: TopologyView, part: list[RequestView]) -> int:
    """Variables of the CP-SAT model of ``part``: its pod cells plus a fifth (units, new-group switches)."""
    return view.candidate_cells(part) * 6 // 5


def model_variables(view: TopologyView, part: list[RequestView], domains: dict[str, frozenset[str]] | None) -> int:
    """Variables of the CP-SAT model of ``part`` (a chunk's; restricted to ``domains`` where given), counted from
    the slots the model is built from (memoised on the view, shared with the build): per slot its units,
    new-group switch, pod cells and MoE replicas, and a switch per class with slots but the top one.
    Node-binding variables (pod sizes outside a chain) are not counted."""
    count, classes = 0, set()
    for r in part:
        if r.delta > 0:
            specs = out_slot_specs(view, r, None if domains is None else domains.get(r.service.id, frozenset()))
            count += sum(1 + s.new + len(s.cells) + len(s.replicas) for s in specs)
            classes.update([r.service.priority] if specs else [])
        elif r.delta < 0:
            slots = in_slot_specs(view, r)
            count += sum(2 + len(s.cells) + len(s.replicas) for s in slots)
            classes.update([r.service.priority] if slots else [])
    return count + max(0, len(classes) - 1)


def extract(pm: PlacementModel, values: list[int]) -> tuple[list[GroupDraft], list[Unserved]]:
    """Group drafts (non-zero slots) and unserved records from a complete assignment."""
    drafts: list[GroupDraft] = []
    placed: dict[str, int] = {r.service.id: 0 for r in pm.requests}
    opened: Counter[str] = Counter()
    closed: Counter[str] = Counter()  # new-group slots left unopened
    slots: list[tuple[OutSlot | InSlot, bool, int]] = [(o, o.new, 1) for o in pm.outs]
    slots += [(s, False, -1) for s in pm.ins]
    for slot, new, sign in slots:
        units = values[slot.units.index]
        if new:
            (opened if units > 0 else closed)[slot.request.service.id] += 1
        if units > 0:
            d = GroupDraft(slot.request.service.id, slot.group, new, slot.domain, sign * units)
            for key, var in sorted(slot.pods.items()):
                if values[var.index]:
                    d.counts[key] = values[var.index]
            drafts.append(d)
            placed[slot.request.service.id] += sign * units
    unserved = []
    for r in pm.requests:
        got = placed[r.service.id]
        if got != r.delta:
            if r.delta > 0:
                why = f"CP-SAT: no capacity for {r.delta - got} more units within {r.service.affinity} affinity"
                blocked = closed[r.service.id] or limit_zero_keeps_out(pm.view, r)
                if blocked and opened[r.service.id] >= r.service.max_new_groups:
                    why += f"; new-group limit {r.service.max_new_groups} reached"
            else:
                why = f"CP-SAT: groups hold only {-got} removable whole units"
            unserved.append(Unserved(service=r.service.id, wanted_units=r.delta, placed_units=got, reason=why))
    return drafts, unserved


def reasons_of(unserved: Iterable[Unserved]) -> dict[str, str]:
    """Why each request of ``unserved`` is not served in full, by service."""
    return {u.service: u.reason for u in unserved}


def restrict(counts: Counts, part: list[RequestView]) -> Counts:
    """The drafts and reasons of ``counts`` that belong to the services of ``part`` (no node picks)."""
    ids = {r.service.id for r in part}
    return Counts([d for d in counts.drafts if d.service in ids], {s: w for s, w in counts.reasons.items() if s in ids})


def canonical(drafts: Iterable[GroupDraft]) -> list[GroupDraft]:
    """``drafts`` in the order ``solve()`` binds them (by service, then group)."""
    return sorted(drafts, key=lambda d: (d.service, d.group))


def add_load(
    view: TopologyView, drafts: Iterable[GroupDraft], load: dict[CellKey, Counter[int]], sign: int = 1
) -> None:
    """Add (``sign`` -1: take away) the pods the additions among ``drafts`` place to ``load`` (per (S1,
    GPU type): pod size -> count)."""
    for d in drafts:
        if d.units <= 0:
            continue
        svc = view.service_by_id[d.service]
        for (role, s1, gpu_type), n in d.counts.items():
            load.setdefault((s1, gpu_type), Counter())[svc.role(role).gpus_per_pod] += sign * n


def load_of(view: TopologyView, drafts: Iterable[GroupDraft]) -> dict[CellKey, Counter[int]]:
    """The pods the additions among ``drafts`` place, per (S1, GPU type) and pod size."""
    load: dict[CellKey, Counter[int]] = {}
    add_load(view, drafts, load)
    return load


def all_chains(view: TopologyView) -> bool:
    """True when the instance's pod sizes form one divisibility chain: then every (S1, GPU type) packs
    exactly by size class, so counts that fit the packing rows always bind together."""
    return is_chain(view.pod_sizes)


def fits(view: TopologyView, drafts: list[GroupDraft]) -> bool:
    """True when the additions among ``drafts`` bind together on ``view``'s free GPUs, as ``solve()`` binds them.

    With pod sizes in a chain, the packing rows' test per (S1, GPU type) and size class (``sum of size * pods
    of sizes >= k <= k * slots of size k``), no node named; otherwise (a count that fits per-size-class
    capacity may not bind) by binding them.
    """
    load = load_of(view, drafts)
    if not all(is_chain(sorted(sizes)) for sizes in load.values()):
        try:
            bind(view, canonical(d for d in drafts if d.units > 0))
        except BindingError:
            return False
        return True
    for (s1, gpu_type), sizes in load.items():
        for k in sizes:
            if sum(size * n for size, n in sizes.items() if size >= k) > k * view.slots(s1, gpu_type, k):
                return False
    return True


def whole_free_after(view: TopologyView, drafts: list[GroupDraft]) -> int | None:
    """Term 5 of counts: the nodes left whole free once the additions among ``drafts`` are bound as ``solve()``
    binds them (None if they do not bind). Only binding decides this term, so this binds."""
    try:
        changes = bind(view, canonical(d for d in drafts if d.units > 0))
    except BindingError:
        return None
    used = {p.node for c in changes for p in c.pods}
    return len(view.whole_free_ids - used)


class Ranking:
    """Compares counts of one part as ``solve()`` will score them: terms 1-4 from the counts; on a tie, term 5
    (whole free nodes) by binding both, the one place CP-SAT's paths bind to compare (each counts' term 5 is
    computed once)."""

    def __init__(self, view: TopologyView) -> None:
        self.view = view
        self._free: list[tuple[list[GroupDraft], int | None]] = []

    def _whole_free(self, drafts: list[GroupDraft]) -> int | None:
        for seen, free in self._free:
            if seen is drafts:
                return free
        free = whole_free_after(self.view, drafts)
        self._free.append((drafts, free))
        return free

    def compare(self, a: Counts, b: Counts) -> int:
        """-1 when ``a`` scores better than ``b``, 0 on a tie, 1 when worse."""
        ka, kb = modelled(self.view, a.drafts), modelled(self.view, b.drafts)
        if ka != kb:
            return -1 if ka < kb else 1
        if canonical(a.drafts) == canonical(b.drafts):
            return 0
        fa, fb = self._whole_free(a.drafts), self._whole_free(b.drafts)
        if fa == fb:
            return 0
        if fa is None or fb is None:  # counts that do not bind lose
            return 1 if fa is None else -1
        return -1 if fa > fb else 1


def count_values(pm: PlacementModel, drafts: list[GroupDraft], nodes: list[GroupChange] | None = None) -> list[int]:
    """Complete assignment (every variable, zeros included) equal to the counts of ``drafts`` (those of the
    model's services).

    Only a model with node rows (pod sizes outside a chain, :func:`~.constraints.add_node_rows`) needs
    nodes: they are taken from ``nodes`` (the same counts bound, when the caller has them) or from binding
    the model's additions on its view (left out if they do not bind: the hint is then incomplete there).

    Raises
    ------
    HintError
        If a draft has no slot or pod variable in the model.
    """
    values = [0] * len(pm.variables)
    services = {r.service.id for r in pm.requests}
    outs = {(o.request.service.id, o.domain if o.new else o.group): o for o in pm.outs}
    ins = {i.group: i for i in pm.ins}
    mine = [d for d in drafts if d.service in services]
    for d in mine:
        where = (d.service, d.domain if d.new else d.group)
        slot: OutSlot | InSlot | None = ins.get(d.group) if d.units < 0 else outs.get(where)
        if slot is None:
            raise HintError(f"group '{d.group}' of '{d.service}' has no slot in the model")
        values[slot.units.index] = abs(d.units)
        if isinstance(slot, OutSlot) and slot.open is not None:
            values[slot.open.index] = 1
        if isinstance(slot, InSlot):
            values[slot.emptied.index] = int(-d.units == slot.held)
        for key, n in d.counts.items():
            var = slot.pods.get(key)
            if var is None:
                raise HintError(f"group '{d.group}' has no variable for {key}")
            values[var.index] = n
        ratio = pm.view.service_by_id[d.service].attn_ffn_ratio
        if ratio is not None:
            for s1, var in slot.replicas.items():
                values[var.index] = sum(n for (r, s, _), n in d.counts.items() if r == "prefill-attn" and s == s1)
                values[var.index] //= ratio.prefill
    if any(o.node_pods for o in pm.outs):
        _node_values(pm, mine, nodes, outs, values)
    return values


def _node_values(
    pm: PlacementModel,
    drafts: list[GroupDraft],
    nodes: list[GroupChange] | None,
    outs: dict[tuple[str, str], OutSlot],
    values: list[int],
) -> None:
    """Fill the node variables of ``values`` from ``nodes``, or from binding ``drafts``' additions."""
    if nodes is None:
        try:
            nodes = bind(pm.view, canonical(d for d in drafts if d.units > 0))
        except BindingError:
            return
    services = {d.service for d in drafts}
    for c in nodes:
        if c.units <= 0 or c.service not in services:
            continue
        slot = outs.get((c.service, c.domain if c.new else c.group))
        if slot is None or not slot.node_pods:
            continue
        for p in c.pods:
            node = pm.view.node_by_id[p.node]
            x = slot.pods.get((p.role, node.s1, node.gpu_type))
            y = None if x is None else slot.node_pods.get((x.index, p.node))
            if y is not None:
                values[y.index] += p.count


def gpus_taken(view: TopologyView, changes: list[GroupChange]) -> Counter[str]:
    """GPUs per node that the additions among ``changes`` use."""
    taken: Counter[str] = Counter()
    for c in changes:
        if c.units > 0:
            svc = view.service_by_id[c.service]
            for p in c.pods:
                taken[p.node] += p.count * svc.role(p.role).gpus_per_pod
    return taken


def residual_view(view: TopologyView, changes: list[GroupChange]) -> TopologyView:
    """The view of what is free once the additions among ``changes`` are placed.

    Removals give nothing back: the paper does not reuse GPUs within the cycle that frees them.
    """
    taken = gpus_taken(view, changes)
    return view.with_taken(taken) if taken else view


def trivial_bounds(view: TopologyView, part: list[RequestView]) -> tuple[int, int]:
    """(premium cost, groups term) that no plan of ``part`` can beat, without solving anything.

    Scale-out: 0 and 0 (costs are non-negative). Scale-in: removing every pod the part's groups
    hold, and emptying every such group.
    """
    premium, groups = 0, 0
    for r in part:
        if r.delta >= 0:
            continue
        svc = r.service
        for g in view.groups_by_service.get(svc.id, []):
            if view.units_by_group[g.id] <= 0:
                continue
            groups -= 1
            for p in g.pods:
                node = view.node_by_id[p.node]
                premium -= (
                    p.count * svc.role(p.role).gpus_per_pod * gpu_cost(view, svc.id, p.role, node.s1, node.gpu_type)
                )
    return premium, groups
