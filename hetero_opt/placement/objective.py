"""The lexicographic objective, defined once and used to score every solver's plan.

Terms, in order (a later term only breaks ties of earlier ones):

1. ``unserved_gpus``: per priority class (highest priority first), GPUs of requested units the
   plan does not add or remove. Minimised class by class: no amount of lower-priority demand
   justifies leaving higher-priority demand unserved.
2. ``premium_cost``: the change in held premium hardware. Each GPU added costs the tier weight of
   its S1 plus ``nonpreferred_penalty`` per rank below the role's preferred GPU type; each GPU
   removed saves the same amount. So scale-out spares premium tiers and scale-in frees them first.
3. ``new_groups``: deployment groups opened.
4. ``emptied_groups``: existing groups a scale-in empties (more is better).
5. ``whole_free_nodes``: nodes entirely free after the plan (more is better; node binding).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from functools import total_ordering

from pydantic import Field

from hetero_opt.errors import InputError
from hetero_opt.instance import Frozen, Instance, Node, require_instance
from hetero_opt.placement.apply import unknown_reference
from hetero_opt.placement.binding import GroupDraft
from hetero_opt.placement.plan import Plan
from hetero_opt.topology import TopologyView, build_view


@total_ordering
class Score(Frozen):
    """Objective terms of a plan; ``a < b`` means plan *a* is better than plan *b*."""

    priorities: list[int] = Field(description="Priority classes, highest first.")
    unserved_gpus: list[int] = Field(description="Unserved GPUs per priority class.")
    premium_cost: int = Field(description="Tier-weighted GPUs added minus removed.")
    new_groups: int = Field(description="Deployment groups opened.")
    emptied_groups: int = Field(description="Existing groups emptied by scale-in.")
    whole_free_nodes: int = Field(description="Nodes with every GPU free after the plan.")

    def key(self) -> tuple[object, ...]:
        """Sort key: smaller is better."""
        return (
            tuple(self.unserved_gpus),
            self.premium_cost,
            self.new_groups,
            -self.emptied_groups,
            -self.whole_free_nodes,
        )

    def modelled(self) -> tuple[object, ...]:
        """Sort key of terms 1-4, the terms the models optimise (term 5 is decided by node binding)."""
        return self.key()[:4]

    def first_stage_gap(self, bound: Score) -> int:
        """GPUs of the top priority class left unserved above ``bound``'s: 0 means stage 1 is optimal."""
        return self.unserved_gpus[0] - bound.unserved_gpus[0] if self.unserved_gpus else 0

    def gaps_to(self, bound: Score) -> dict[str, int | list[int]]:
        """How far each term is from ``bound`` (0: at the bound, so proven where the earlier terms are).

        Unserved GPUs per class, premium cost and new groups are minimised (score minus bound);
        emptied groups and whole free nodes are maximised (bound minus score). Whole free nodes
        are decided by node binding, which no solver optimises: its gap is to the trivial bound
        (every node free before the plan stays free), reported, never claimed.
        """
        return {
            "unserved_gpus": [a - b for a, b in zip(self.unserved_gpus, bound.unserved_gpus, strict=False)],
            "premium_cost": self.premium_cost - bound.premium_cost,
            "new_groups": self.new_groups - bound.new_groups,
            "emptied_groups": bound.emptied_groups - self.emptied_groups,
            "whole_free_nodes": bound.whole_free_nodes - self.whole_free_nodes,
        }

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Score):
            return NotImplemented
        return self.key() < other.key()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Score):
            return NotImplemented
        return self.key() == other.key()

    def __hash__(self) -> int:
        return hash(self.key())


def gpu_cost(view: TopologyView, service_id: str, role: str, s1: str, gpu_type: str) -> int:
    """Premium cost of one GPU of ``role`` on (S1, GPU type): tier weight + rank penalty."""
    weights = view.instance.objective
    svc = view.service_by_id[service_id]
    rank = view.gpu_rank(svc, role, gpu_type)
    return weights.tier_weights[view.tier_by_s1[s1]] + weights.nonpreferred_penalty * rank


Change = tuple[str, str, bool, int, Iterable[tuple[tuple[str, str, str], int]]]  # service, group, new, units, pods


def _terms(view: TopologyView, changes: Iterable[Change]) -> tuple[list[int], list[int], int, int, int]:
    """(priorities, unserved GPUs per class, premium cost, new groups, emptied groups) of ``changes``:
    each (service, group, new, units, pods per (role, S1, GPU type)). The one definition of terms 1-4."""
    placed: defaultdict[str, int] = defaultdict(int)
    premium = 0
    new_groups = 0
    removed_units: defaultdict[str, int] = defaultdict(int)
    for service, group, new, units, pods in changes:
        placed[service] += units
        svc = view.service_by_id[service]
        sign = 1 if units > 0 else -1
        for (role, s1, gpu_type), count in pods:
            premium += sign * count * svc.role(role).gpus_per_pod * gpu_cost(view, service, role, s1, gpu_type)
        new_groups += int(new)
        if units < 0 and not new:
            removed_units[group] += -units
    unserved_by_prio: defaultdict[int, int] = defaultdict(int)
    for req in view.requests:
        shortfall = abs(req.delta) - abs(placed.get(req.service.id, 0))
        unserved_by_prio[req.service.priority] += max(0, shortfall) * req.service.gpus_per_unit
    priorities = sorted(unserved_by_prio, reverse=True)
    emptied = sum(
        1 for gid, n in removed_units.items() if gid in view.units_by_group and n >= view.units_by_group[gid] > 0
    )
    return priorities, [unserved_by_prio[p] for p in priorities], premium, new_groups, emptied


def _place(node: Node) -> tuple[str, str]:
    return node.s1, node.gpu_type


def modelled(view: TopologyView, drafts: Iterable[GroupDraft]) -> tuple[object, ...]:
    """Terms 1-4 of counts, before any node is named: :meth:`Score.modelled` of every binding of ``drafts``
    (term 5, whole free nodes, is decided by binding alone, in ``solve()``)."""
    _, unserved, premium, new_groups, emptied = _terms(
        view, ((d.service, d.group, d.new, d.units, d.counts.items()) for d in drafts)
    )
    return tuple(unserved), premium, new_groups, -emptied


def score(instance: Instance, plan: Plan, view: TopologyView | None = None) -> Score:
    """Score ``plan`` on ``instance``; the one definition of every objective term.

    A plan naming a service, node or role ``instance`` lacks, or pods on a GPU type their role does not
    take, raises :class:`InputError` naming the group and what it names.
    """
    view = view or build_view(require_instance(instance, "score()"))
    nodes = view.node_by_id
    try:
        used_delta: defaultdict[str, int] = defaultdict(int)
        for c in plan.changes:
            if c.units > 0:
                svc = view.service_by_id[c.service]
                for p in c.pods:
                    used_delta[p.node] += p.count * svc.role(p.role).gpus_per_pod
        changes = (
            (c.service, c.group, c.new, c.units, [((p.role, *_place(nodes[p.node])), p.count) for p in c.pods])
            for c in plan.changes
        )
        priorities, unserved, premium, new_groups, emptied = _terms(view, changes)
    except (KeyError, ValueError):  # a plan of another instance: name what does not match
        why = _mismatch(view, plan)
        if why:
            raise InputError(why) from None
        raise
    whole_free = len(view.whole_free_ids.difference(used_delta))
    return Score(
        priorities=priorities,
        unserved_gpus=unserved,
        premium_cost=premium,
        new_groups=new_groups,
        emptied_groups=emptied,
        whole_free_nodes=whole_free,
    )


def _mismatch(view: TopologyView, plan: Plan) -> str:
    """The first thing ``plan`` names that ``view``'s instance lacks or refuses; "" when there is none."""
    for c in plan.changes:
        svc = view.service_by_id.get(c.service)
        why = unknown_reference(c, svc, view.node_by_id)
        if why or svc is None:
            return why
        for p in c.pods:
            gpu_type, types = view.node_by_id[p.node].gpu_type, svc.role(p.role).gpu_types
            if gpu_type not in types:
                return f"plan: group '{c.group}' has {p.role} pods on node '{p.node}' ({gpu_type}), not in {types}"
    return ""


def whole_free_bound(view: TopologyView, unserved_lb: list[int]) -> int:
    """Upper bound on term 5 (whole free nodes) of any plan whose GPUs unserved per priority class (highest
    first) are ``unserved_lb``, the lower bound on term 1: the only plans term 5 can decide against.

    Such a plan adds at least ``wanted scale-out GPUs - unserved`` GPUs per class (a class's unserved GPUs
    may all be scale-out), and only nodes that are whole free now can count (removals do not free GPUs
    within the cycle). The added GPUs need free GPUs outside the nodes kept whole, so at most the smallest
    whole free nodes whose GPUs sum to no more than the free GPUs minus the added ones stay whole.
    """
    wanted_out: defaultdict[int, int] = defaultdict(int)
    for r in view.requests:
        if r.delta > 0:
            wanted_out[r.service.priority] += r.delta * r.service.gpus_per_unit
    priorities = sorted({r.service.priority for r in view.requests}, reverse=True)
    lb = dict(zip(priorities, unserved_lb, strict=False))
    added = sum(max(0, w - lb.get(p, 0)) for p, w in wanted_out.items())
    cells = view.free_nodes.values()  # free GPUs not taken, > 0: the nodes with none add nothing
    room = sum(sum(frees) for _, frees in cells) - added
    whole, taken = view.whole_free_ids, view.taken
    kept = 0
    # A node is whole free when nothing is taken from it and it was whole free (its free GPUs are all of it).
    whole_totals = [
        f for ids, frees in cells for i, f in zip(ids, frees, strict=True) if i in whole and not taken.get(i)
    ]
    for total in sorted(whole_totals):
        if total > room:
            break
        room -= total
        kept += 1
    return kept
