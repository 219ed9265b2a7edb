"""The protocol every placement backend (CP-SAT, MILP) implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from hetero_opt.placement.objective import Score
from hetero_opt.placement.plan import Plan
from hetero_opt.topology import TopologyView


@dataclass(frozen=True)
class SolveOptions:
    """Options shared by the backends.

    ``time_limit`` is the nominal budget (CP-SAT derives its deterministic-time budget from it, so
    results do not depend on machine load); ``deadline`` (a ``time.perf_counter()`` value) is when
    the backend must have returned, set by :func:`~hetero_opt.placement.solve.solve` to what is left
    of the limit. ``deterministic=False`` lets CP-SAT run its faster, non-reproducible portfolio.
    """

    time_limit: float = 2.0
    seed: int = 0
    num_workers: int = 2
    log: bool = False
    export_model: str | None = None
    deterministic: bool = True
    deadline: float | None = None


@dataclass
class BackendOutput:
    """What a backend returns: its plan (bound to nodes), status and why it stopped."""

    plan: Plan
    status: str  # "optimal" | "feasible" | "fallback"
    termination: str = ""
    fallback_reason: str = ""
    bound: Score | None = None
    version: str = ""
    stats: dict[str, float] = field(default_factory=dict)


class Backend(Protocol):
    """A placement backend."""

    name: str

    def available(self) -> bool:
        """True when the solver library can be used here."""
        ...

    def solve(self, view: TopologyView, hint: Plan, options: SolveOptions) -> BackendOutput:
        """Solve ``view``'s instance, starting from the greedy plan ``hint``."""
        ...


def post_processing_reserve(view: TopologyView) -> float:
    """Seconds a backend keeps back from its solver for extraction, binding and its own scoring, and for
    the solver's overshoot (``solve()`` keeps back the final verification separately)."""
    return 0.03 + 8e-6 * len(view.instance.nodes)
