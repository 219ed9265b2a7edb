"""A placement plan: which deployment groups grow or shrink, by how many units, on which nodes."""

from __future__ import annotations

from pydantic import Field

from hetero_opt.instance import Frozen, GroupId, Id, RoleName, TopoId


class PodChange(Frozen):
    """Pods of one role added to (or removed from) one node."""

    role: RoleName = Field(description="Role of the pods.")
    node: Id = Field(description="Node the pods are added to or removed from.")
    count: int = Field(ge=1, le=64, description="Number of pods (a node has at most 64 GPUs).")


class GroupChange(Frozen):
    """One deployment group grown (``units > 0``) or shrunk (``units < 0``) by whole units."""

    service: Id = Field(description="Service of the group.")
    group: GroupId = Field(description="Existing group id, or the id given to a new group.")
    new: bool = Field(description="True when this change opens a new deployment group.")
    domain: TopoId = Field(description="The group's S1, S2 or cluster id.")
    units: int = Field(description="Units added (positive) or removed (negative); never 0.")
    pods: list[PodChange] = Field(description="Pods added (units > 0) or removed (units < 0).")


class Unserved(Frozen):
    """The part of a request the plan does not serve, and why."""

    service: Id = Field(description="Service of the request.")
    wanted_units: int = Field(description="Units the request asked to add (+) or remove (-).")
    placed_units: int = Field(description="Units the plan adds (+) or removes (-).")
    reason: str = Field(description="Why the rest is not served.")


class Plan(Frozen):
    """All group changes of one cycle plus what stays unserved."""

    changes: list[GroupChange] = Field(default_factory=list, description="Group changes.")
    unserved: list[Unserved] = Field(default_factory=list, description="Unserved requests.")

    def canonical(self) -> Plan:
        """Same plan with changes, pods and unserved entries in sorted order."""
        changes = [
            c.model_copy(update={"pods": sorted(c.pods, key=lambda p: (p.role, p.node))})
            for c in sorted(self.changes, key=lambda c: (c.service, c.group))
        ]
        return Plan(changes=changes, unserved=sorted(self.unserved, key=lambda u: u.service))

    def units_by_service(self) -> dict[str, int]:
        """Net units the plan adds (or removes) per service."""
        out: dict[str, int] = {}
        for c in self.changes:
            out[c.service] = out.get(c.service, 0) + c.units
        return out
