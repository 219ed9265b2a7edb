"""The simulated pods of a cluster instance: added with a start-up delay, removed by draining.

:func:`pod_changes` compares the pods of two instances (before and after a plan) per
(group, role, node) and says which pods start and which drain.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from hetero_opt.instance import Instance


@dataclass(slots=True)
class Pod:
    """One pod. ``removed_at`` is set once it has drained (or was removed before being ready)."""

    id: int
    service: str
    role: str
    group: str
    node: str
    gpu_type: str
    gpus: int
    s1: str
    started_at: float
    ready_at: float
    draining: bool = False
    removed_at: float | None = None

    def gpu_seconds(self, t0: float, t1: float) -> float:
        """GPU-seconds this pod holds within ``[t0, t1)`` (starting and draining count)."""
        end = self.removed_at if self.removed_at is not None else t1
        return max(0.0, min(end, t1) - max(self.started_at, t0)) * self.gpus


PodKey = tuple[str, str, str]  # group, role, node


def pod_counts(instance: Instance) -> Counter[PodKey]:
    """Pods per (group, role, node)."""
    out: Counter[PodKey] = Counter()
    for g in instance.groups:
        for p in g.pods:
            out[(g.id, p.role, p.node)] += p.count
    return out


def pod_changes(before: Instance, after: Instance) -> tuple[Counter[PodKey], Counter[PodKey]]:
    """Pods added and pods removed per (group, role, node)."""
    b, a = pod_counts(before), pod_counts(after)
    return a - b, b - a


def group_service(instance: Instance) -> dict[str, str]:
    """Service of each group id."""
    return {g.id: g.service for g in instance.groups}
