"""Soft scale-in (paper §3.6): pods chosen for removal are first drained, then deleted.

A scale-in's plan is not applied at once: its pods are withdrawn from service (no new requests)
but keep running as a :class:`DrainBatch`. If demand returns within the window, the newest
batches are reinstated (no start-up delay); a batch still draining when the window ends is
deleted, its plan applied then. Draining pods still hold their GPUs until deleted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import Field

from hetero_opt.instance import Frozen, Instance
from hetero_opt.placement.apply import apply_plan
from hetero_opt.placement.plan import GroupChange, Plan, PodChange


class DrainBatch(Frozen):
    """Whole units of one service drained at one time: removal changes not yet applied."""

    since: float = Field(description="When the pods were drained (s).")
    changes: list[GroupChange] = Field(description="Removal changes (units < 0), sorted by group.")

    @property
    def units(self) -> int:
        """Units this batch holds back."""
        return -sum(c.units for c in self.changes)

    def pods_by_role(self) -> dict[str, int]:
        """Draining pods per role."""
        out: dict[str, int] = {}
        for c in self.changes:
            for p in c.pods:
                out[p.role] = out.get(p.role, 0) + p.count
        return out


def _take(change: GroupChange, units: int, pods_per_unit: Mapping[str, int]) -> tuple[GroupChange, GroupChange]:
    """Split a removal change into ``units`` units (taken) and the rest, pods in node order."""
    want = {r: units * n for r, n in pods_per_unit.items()}
    taken: list[PodChange] = []
    left: list[PodChange] = []
    for p in sorted(change.pods, key=lambda p: (p.role, p.node)):
        k = min(p.count, want.get(p.role, 0))
        if k:
            taken.append(p.replace(count=k))
            want[p.role] -= k
        if p.count - k:
            left.append(p.replace(count=p.count - k))
    return change.replace(units=-units, pods=taken), change.replace(units=change.units + units, pods=left)


def reinstate(
    batches: Sequence[DrainBatch], units: int, pods_per_unit: Mapping[str, int]
) -> tuple[int, list[DrainBatch]]:
    """Take back up to ``units`` draining units, newest batch first; returns (taken, batches left)."""
    left = list(batches)
    taken = 0
    while left and taken < units:
        batch = left.pop()
        changes = list(batch.changes)
        while changes and taken < units:
            c = changes.pop()
            k = min(-c.units, units - taken)
            if k < -c.units:
                _, rest = _take(c, k, pods_per_unit)
                changes.append(rest)
            taken += k
        if changes:
            left.append(batch.replace(changes=changes))
    return taken, left


def expire(batches: Sequence[DrainBatch], now: float, window_s: float) -> tuple[list[DrainBatch], list[DrainBatch]]:
    """Split into (batches whose window has ended: delete now, batches still draining)."""
    done = [b for b in batches if now - b.since >= window_s]
    return done, [b for b in batches if now - b.since < window_s]


def without_draining(instance: Instance, batches: Sequence[DrainBatch]) -> Instance:
    """The instance as the next scale-in must see it: draining pods already gone."""
    changes = [c for b in batches for c in b.changes]
    return apply_plan(instance, Plan(changes=changes)) if changes else instance
