"""The seam between placement backends and plans: counts in, counts out.

Every backend (CP-SAT, MILP) gets the greedy's counts as its hint and returns counts per group
change with its status and bound (:class:`BackendOutput`); only
:func:`~hetero_opt.placement.solve.solve` binds counts to nodes, derives the unserved records,
sorts, verifies and scores, once per plan.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

from hetero_opt.placement.binding import Counts
from hetero_opt.placement.objective import Score
from hetero_opt.placement.plan import Plan
from hetero_opt.topology import TopologyView


@dataclass(frozen=True)
class SolveOptions:
    """Options shared by the backends.

    ``time_limit`` is the nominal budget (CP-SAT derives its deterministic-time budget from it, so
    results do not depend on machine load); ``deadline`` (a ``time.perf_counter()`` value) is the one
    wall-clock deadline of the call: when the backend must have returned its counts, set once by
    :func:`~hetero_opt.placement.solve.solve` with the binding, verification and scoring of the
    backend's plan kept back. ``deterministic=False`` lets CP-SAT run its faster, non-reproducible
    portfolio.
    """

    time_limit: float = 2.0
    seed: int = 0
    num_workers: int = 2
    log: bool = False
    export_model: str | None = None
    deterministic: bool = True
    deadline: float | None = None

    def backend_deadline(self) -> float:
        """:attr:`deadline`, or ``time_limit`` from now for a backend called on its own."""
        return self.deadline if self.deadline is not None else time.perf_counter() + self.time_limit


@dataclass(frozen=True)
class Hint:
    """The greedy's counts as the greedy decided them, and the same counts bound to nodes.

    Backends take their start from ``counts``; ``plan`` serves solver paths that work on bound plans
    (CP-SAT's class blocks keep the hint's node picks around what they re-place).
    """

    counts: Counts
    plan: Plan


@dataclass
class BackendOutput:
    """What a backend returns: counts per group change (None: nothing better than the hint), its
    status and why it stopped, and the proven bound."""

    counts: Counts | None
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

    def solve(self, view: TopologyView, hint: Hint, options: SolveOptions) -> BackendOutput:
        """Counts for ``view``'s requests, starting from the greedy's counts ``hint``."""
        ...


def finishing_reserve(view: TopologyView) -> float:
    """Seconds :func:`~hetero_opt.placement.solve.solve` keeps back from the backend for its overshoot
    past the deadline and its extraction of counts (a rule on size; ``solve()`` adds what binding,
    verifying and scoring the backend's counts will take, measured on the greedy's)."""
    return 0.03 + 8e-6 * len(view.instance.nodes)
