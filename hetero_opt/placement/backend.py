"""The seam between placement backends and plans: counts in, counts out.

Every backend (CP-SAT, MILP) gets the greedy's counts as its hint and returns counts per group
change with its status and bound (:class:`BackendOutput`); only
:func:`~hetero_opt.placement.solve.solve` binds counts to nodes, derives the unserved records,
sorts, verifies and scores, once per plan.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Protocol

from hetero_opt.placement.binding import Counts
from hetero_opt.placement.objective import Score
from hetero_opt.placement.plan import Plan
from hetero_opt.topology import TopologyView

# CP-SAT's deterministic time per second of time_limit (its deterministic mode; the budget's
# ``dtime``). CP-SAT's deterministic time runs at 0.13-0.3 per wall second with 2 workers here
# (presolve counts little), and at production size about half the wall budget goes to Python (greedy,
# model build, binding); 0.05 kept every production run of 2 s clear of the wall-clock safety net, so
# repeated runs gave the same plan (0.06 did not on seed 1, where interleaved batches overshoot their
# budget; docs/benchmarks.md).
DTIME_PER_SECOND = 0.05
MIN_STAGE_DTIME = 0.02  # every CP-SAT stage gets at least this much deterministic time (the wall still caps it)
# Share of time_limit planned for HiGHS's MIPs (deterministic mode; the budget's ``work``), in seconds as
# estimated from their size and the checks they make (relaxation._Work), not read off the clock.
# On heavy seed 0 at 10 s the MIPs took 7 of the 10 s, 3.8 of them stopped by the wall (one at the root
# node, two in presolve, where no solution comes out); production's took 0.002-0.52 s each (session 11).
MIP_WORK_PER_SECOND = 0.4


@dataclass
class Budget:
    """The one time budget of a :func:`~hetero_opt.placement.solve.solve` call, and every part of it.

    ``deadline`` (a ``time.perf_counter()`` value) is when the counts must be back; ``dtime`` the
    deterministic time left (CP-SAT's deterministic mode, where it decides and the wall is a safety
    net; ``inf`` otherwise); ``work`` the planned seconds of HiGHS MIP work left, which decides for HiGHS's
    MIPs as ``dtime`` does for CP-SAT (deterministic mode; ``inf`` otherwise). ``solve()`` creates the
    budget once; every backend and stage takes a part of it (:meth:`part`, :meth:`split`,
    :meth:`wall_share`), and what a part spends, its whole spends.
    """

    deadline: float
    dtime: float = math.inf
    deterministic: bool = False
    parent: Budget | None = None
    work: float = math.inf

    @classmethod
    def of(cls, options: SolveOptions) -> Budget:
        """``options.budget``, or one of ``time_limit`` from now for a backend called on its own."""
        if options.budget is not None:
            return options.budget
        return cls.new(time.perf_counter() + options.time_limit, options.time_limit, options.deterministic)

    @classmethod
    def new(cls, deadline: float, time_limit: float, deterministic: bool) -> Budget:
        """The budget of a call of ``time_limit`` seconds due at ``deadline``: its deterministic time and,
        in deterministic mode, its planned MIP work follow ``time_limit`` alone."""
        work = MIP_WORK_PER_SECOND * time_limit if deterministic else math.inf
        return cls(deadline, time_limit * DTIME_PER_SECOND, deterministic, None, work)

    def left(self, now: float | None = None) -> float:
        """Wall seconds left (never negative)."""
        return max(0.0, self.deadline - (time.perf_counter() if now is None else now))

    def limits(self, share: float) -> tuple[float, float]:
        """(wall seconds, deterministic time) for a CP-SAT stage taking ``share`` of what is left.

        The wall limit keeps back a tenth (and 30 ms): CP-SAT overshoots its limit by about that
        much on large models while it stops its workers and postsolves. Every stage gets at least
        :data:`MIN_STAGE_DTIME` of deterministic time, so many small stages can exceed the total;
        then the wall decides.
        """
        wall = max(0.0, 0.9 * (self.deadline - time.perf_counter()) - 0.03)
        if self.deterministic:
            return wall, max(MIN_STAGE_DTIME, self.dtime * share)
        return wall * share, math.inf

    def spend(self, dtime: float) -> None:
        """Account for a finished solve, here and in every budget this one is a part of.

        Deterministic mode only; the portfolio has no such budget.
        """
        if self.deterministic:
            self.dtime = max(0.0, self.dtime - dtime)
            if self.parent is not None:
                self.parent.spend(dtime)

    def spend_work(self, seconds: float) -> None:
        """Account for a finished MIP's planned ``seconds``, here and in every budget this one is a part of."""
        if self.deterministic:
            self.work = max(0.0, self.work - seconds)
            if self.parent is not None:
                self.parent.spend_work(seconds)

    def part(self, share: float) -> Budget:
        """``share`` of this budget for one part of the solve: of the deterministic time in deterministic
        mode (the wall deadline stays the safety net), else of the wall time left."""
        if self.deterministic:
            return Budget(self.deadline, self.dtime * share, True, self, self.work * share)
        now = time.perf_counter()
        return Budget(now + share * self.left(now), math.inf, False, self)

    def split(self, share: float, now: float | None = None) -> Budget:
        """``share`` of both the wall time left (from ``now``) and the deterministic time."""
        now = time.perf_counter() if now is None else now
        return Budget(now + share * self.left(now), self.dtime * share, self.deterministic, self, self.work * share)

    def wall_share(self, share: float, now: float | None = None) -> Budget:
        """``share`` of the wall time left (from ``now``, default: now), for a stage of HiGHS or a MILP stage;
        the deterministic time is this budget's, the planned MIP work ``share`` of it."""
        now = time.perf_counter() if now is None else now
        return Budget(now + share * self.left(now), self.dtime, self.deterministic, self, self.work * share)


@dataclass(frozen=True)
class SolveOptions:
    """Options shared by the backends.

    ``time_limit`` is the nominal budget (rules on size and iteration limits read it, so results do
    not depend on machine load); ``budget`` is the one time budget of the call, set once by
    :func:`~hetero_opt.placement.solve.solve` with the binding, verification and scoring of the
    backend's counts kept back (:meth:`Budget.of` makes one for a backend called on its own).
    ``deterministic=False`` lets CP-SAT run its faster, non-reproducible portfolio.
    """

    time_limit: float = 2.0
    seed: int = 0
    num_workers: int = 2
    log: bool = False
    export_model: str | None = None
    deterministic: bool = True
    budget: Budget | None = None


@dataclass(frozen=True)
class Hint:
    """The greedy's counts as the greedy decided them, and the same counts bound to nodes.

    Backends take their start from ``counts``; ``plan`` (bound once by ``solve()``) serves only where nodes
    are needed: the node values of a CP-SAT model with node rows (pod sizes outside a chain).
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
