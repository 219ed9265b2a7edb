"""The one entry point: ``solve(instance, solver=...)`` → a verified :class:`PlacementResult`."""

from __future__ import annotations

import importlib
import math
import numbers
import time

from hetero_opt.errors import InputError, PlanError
from hetero_opt.gc_pause import gc_paused
from hetero_opt.instance import Instance, require_instance
from hetero_opt.io import check_export_prefix
from hetero_opt.placement.backend import (
    Backend,
    BackendOutput,
    Budget,
    Hint,
    SolveOptions,
    finishing_reserve,
)
from hetero_opt.placement.binding import BindingError, bind_plan
from hetero_opt.placement.greedy import greedy_counts
from hetero_opt.placement.objective import Score, score
from hetero_opt.placement.plan import Plan
from hetero_opt.placement.result import PlacementResult
from hetero_opt.placement.verify import verify
from hetero_opt.topology import TopologyView, build_view

SOLVERS = ("greedy", "cpsat", "milp", "milp-cbc")
MAX_TIME_LIMIT_S = 86_400.0  # one day: a control cycle never needs more; keeps deadlines finite
MAX_SEED = 2**31 - 1  # CP-SAT's random_seed is a 32-bit int
MAX_WORKERS = 256
_BACKENDS = {
    "cpsat": ("hetero_opt.placement.cpsat", "CpSatBackend", {}),
    "milp": ("hetero_opt.placement.milp", "MilpBackend", {"engine": "highs"}),
    "milp-cbc": ("hetero_opt.placement.milp", "MilpBackend", {"engine": "cbc"}),
}


def get_backend(name: str) -> Backend:
    """The backend called ``name`` (imported lazily, so the data model imports no solver)."""
    if name not in _BACKENDS:
        raise ValueError(f"solver='{name}' is not one of {list(SOLVERS)}")
    module, cls, kwargs = _BACKENDS[name]
    backend: Backend = getattr(importlib.import_module(module), cls)(**kwargs)
    return backend


def solve(
    instance: Instance,
    solver: str | Backend = "greedy",
    *,
    time_limit: float = 2.0,
    seed: int = 0,
    num_workers: int = 2,
    log: bool = False,
    export_model: str | None = None,
    deterministic: bool = True,
) -> PlacementResult:
    """Place ``instance``'s scaling requests with ``solver`` and verify the plan.

    Parameters
    ----------
    instance
        A validated instance.
    solver
        ``greedy`` (paper Algorithm 4), ``cpsat`` (OR-Tools CP-SAT), ``milp`` (PuLP + HiGHS)
        or ``milp-cbc`` (PuLP + bundled CBC), or a :class:`Backend` object (e.g. a CP-SAT backend
        with a fixed strategy).
    time_limit
        Wall-clock budget in seconds of the whole call: view, greedy, backend, binding,
        verification (greedy ignores it). The backend gets what is left after greedy and keeps
        back what binding, verifying and scoring its counts will take.
    seed, num_workers
        Passed to the solver; the same instance and seed give the same plan.
    deterministic
        CP-SAT only: True (default) budgets CP-SAT in deterministic time derived from
        ``time_limit``, so the plan does not depend on machine load; False runs the faster
        non-reproducible portfolio. The wall-clock limit holds either way.

    Returns
    -------
    PlacementResult
        Never worse than the greedy plan: a backend that fails, times out with nothing, or
        returns a worse plan yields the greedy plan with ``status='fallback'`` and the reason.
        A plan that ties the greedy's on the modelled terms 1-4 but leaves fewer whole nodes free
        (term 5, decided by binding alone) gives way to the greedy plan with the backend's status.

    Notes
    -----
    The one seam between solvers and plans: every backend returns counts per group change
    (:class:`~hetero_opt.placement.binding.Counts`), the greedy's counts are its hint as they are,
    and only here are counts bound to nodes, unserved records derived, the plan sorted, verified
    and scored, once per plan (the greedy's plan is verified only when it is returned).
    """
    require_instance(instance, "solve()")
    check_solver(solver)
    check_options(time_limit, seed, num_workers)
    name = solver if isinstance(solver, str) else solver.name
    if export_model is not None:  # now, not as a backend failure that falls back to the greedy's plan
        if name == "greedy":
            raise InputError(f"export_model={export_model!r}: the greedy has no solver model to export (solver='cpsat' "
                             "or 'milp')")
        check_export_prefix(export_model)
    # The solver's module is imported before the clock starts: a one-time cost of the process (CP-SAT
    # about 0.2 s on its first use), not of a control cycle.
    backend = (get_backend(solver) if isinstance(solver, str) else solver) if name != "greedy" else None
    start = time.perf_counter()
    with gc_paused():  # pure-Python work over every node: no full collections inside the call's floor
        view = build_view(instance)
        greedy_counts_ = greedy_counts(view)
        finish_start = time.perf_counter()
        greedy = bind_plan(view, greedy_counts_)
        greedy_score = score(instance, greedy, view)
        finish = time.perf_counter() - finish_start
    out = BackendOutput(greedy_counts_, "greedy")
    plan, final_score, why, kept = greedy, greedy_score, "", False
    if backend is not None:
        # The call's one budget. Its wall deadline keeps back the backend's overshoot (a rule on size) and
        # binding, verifying and scoring its counts: three times what binding and scoring the greedy's took
        # here (verification costs about as much). Its deterministic time (CP-SAT's deterministic mode)
        # follows time_limit alone.
        deadline = start + time_limit - finishing_reserve(view) - 3.0 * finish
        budget = Budget.new(deadline, time_limit, deterministic)
        options = SolveOptions(time_limit, seed, num_workers, log, export_model, deterministic, budget)
        if deadline > time.perf_counter():
            out = _run_backend(backend, view, Hint(greedy_counts_, greedy), options)
            with gc_paused():
                plan, final_score, why, kept = _checked(view, out, greedy, greedy_score, name)
        else:  # the greedy and the checks its counts would need take the whole limit: nothing to gain
            why = (
                f"{name}: no time left within time_limit={time_limit:g} s after the greedy "
                f"({time.perf_counter() - start:.2f} s) and what checking a plan takes"
            )
    if plan is greedy:
        with gc_paused():
            violations = verify(instance, greedy, view)
        if violations:
            raise PlanError(f"greedy plan fails verification: {violations[0]}")
    stats = dict(out.stats)
    if kept:
        stats["hint_kept"] = 1.0
    return PlacementResult(
        instance=instance.name,
        solver=name,
        solver_version=out.version,
        status="fallback" if why else out.status,
        termination=out.termination,
        fallback_reason=why,
        plan=plan,
        score=final_score,
        bound=out.bound,
        wall_time_s=time.perf_counter() - start,
        seed=seed,
        warnings=view.warnings,
        stats=stats,
    )


def _checked(
    view: TopologyView, out: BackendOutput, greedy: Plan, greedy_score: Score, name: str
) -> tuple[Plan, Score, str, bool]:
    """(plan, its score, fallback reason, greedy kept on term 5) of a backend's output.

    The backend's counts are bound, verified and scored once; the greedy plan replaces them when
    there are none, when they do not bind or verify, or when they score worse.
    """
    if out.counts is None:
        return greedy, greedy_score, out.fallback_reason or f"{name} returned no plan", False
    try:
        plan = bind_plan(view, out.counts)
    except BindingError as exc:
        return greedy, greedy_score, f"{name}: {exc}", False
    violations = verify(view.instance, plan, view)
    if violations:
        return greedy, greedy_score, f"verifier rejected the {name} plan: {violations[0]}", False
    plan_score = score(view.instance, plan, view)
    if plan_score > greedy_score:
        if plan_score.modelled() == greedy_score.modelled():
            # Ties on every modelled term, loses on whole free nodes (binding only): keep the greedy plan,
            # which meets whatever the backend proved on terms 1-4.
            return greedy, greedy_score, "", True
        return greedy, greedy_score, f"{name} plan scored worse than greedy; greedy kept", False
    return plan, plan_score, "", False


def check_solver(solver: object, caller: str = "solve") -> None:
    """Raise :class:`InputError` unless ``solver`` is one of :data:`SOLVERS` or a :class:`Backend`."""
    if isinstance(solver, str) and solver in SOLVERS:
        return
    if isinstance(solver, str) or not callable(getattr(solver, "solve", None)):
        raise InputError(f"{caller}: solver={solver!r} is not one of {list(SOLVERS)} (or a Backend)")


def is_number(value: object) -> bool:
    """True for an int or float (numpy's too), not a bool or a string: what a time in seconds may be."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_options(time_limit: float, seed: int, num_workers: int, caller: str = "solve") -> None:
    """Raise :class:`InputError` unless the solver options are in range (and finite); ``caller`` names the call."""
    if not (is_number(time_limit) and math.isfinite(time_limit) and 0 < time_limit <= MAX_TIME_LIMIT_S):
        raise InputError(f"{caller}: time_limit={time_limit!r} must be a number in (0, {MAX_TIME_LIMIT_S:g}] seconds")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise InputError(f"{caller}: seed={seed!r} must be an integer in 0..{MAX_SEED}")
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or not 1 <= num_workers <= MAX_WORKERS:
        raise InputError(f"{caller}: num_workers={num_workers!r} must be an integer in 1..{MAX_WORKERS}")


def _run_backend(backend: Backend, view: TopologyView, hint: Hint, options: SolveOptions) -> BackendOutput:
    if not backend.available():
        return BackendOutput(None, "fallback", "", f"{backend.name} is not available here")
    try:
        return backend.solve(view, hint, options)
    except (MemoryError, RuntimeError, OSError) as exc:
        return BackendOutput(None, "fallback", type(exc).__name__, f"{backend.name} failed: {exc}")
