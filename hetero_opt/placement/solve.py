"""The one entry point: ``solve(instance, solver=...)`` → a verified :class:`PlacementResult`."""

from __future__ import annotations

import importlib
import math
import time

from hetero_opt.errors import InputError, PlanError
from hetero_opt.instance import Instance
from hetero_opt.placement.backend import Backend, BackendOutput, SolveOptions
from hetero_opt.placement.greedy import greedy_plan
from hetero_opt.placement.objective import score
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
    solver: str = "greedy",
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
        or ``milp-cbc`` (PuLP + bundled CBC).
    time_limit
        Wall-clock budget in seconds of the whole call: view, greedy, backend, verification
        (greedy ignores it). The backend gets what is left after greedy and keeps back what
        verification will take.
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
    """
    if solver not in SOLVERS:
        raise ValueError(f"solver='{solver}' is not one of {list(SOLVERS)}")
    check_options(time_limit, seed, num_workers)
    start = time.perf_counter()
    view = build_view(instance)
    greedy = greedy_plan(instance, view)
    check_start = time.perf_counter()
    greedy_violations = verify(instance, greedy, view)
    if greedy_violations:
        raise PlanError(f"greedy plan fails verification: {greedy_violations[0]}")
    greedy_score = score(instance, greedy, view)
    check_time = time.perf_counter() - check_start
    out = BackendOutput(plan=greedy, status="greedy")
    final_score = greedy_score
    if solver != "greedy":
        # Keep back twice what checking the greedy plan took: the backend's plan is checked the same way.
        deadline = start + time_limit - 2.0 * check_time - 0.005
        options = SolveOptions(time_limit, seed, num_workers, log, export_model, deterministic, deadline)
        out = _run_backend(get_backend(solver), view, greedy, options)
        violations = verify(instance, out.plan, view)
        why = f"verifier rejected the {solver} plan: {violations[0]}" if violations else ""
        backend_score = greedy_score if violations else score(instance, out.plan, view)
        if not why and backend_score > greedy_score:
            why = f"{solver} plan scored worse than greedy; greedy kept"
        if why:
            out = BackendOutput(greedy, "fallback", out.termination, why, out.bound, out.version, out.stats)
        else:
            final_score = backend_score
    plan = out.plan.canonical()
    return PlacementResult(
        instance=instance.name,
        solver=solver,
        solver_version=out.version,
        status=out.status,
        termination=out.termination,
        fallback_reason=out.fallback_reason,
        plan=plan,
        score=final_score,
        bound=out.bound,
        wall_time_s=time.perf_counter() - start,
        seed=seed,
        warnings=view.warnings,
        stats=out.stats,
    )


def check_options(time_limit: float, seed: int, num_workers: int) -> None:
    """Raise :class:`InputError` unless the solver options are in range (and finite)."""
    if not (math.isfinite(time_limit) and 0 < time_limit <= MAX_TIME_LIMIT_S):
        raise InputError(f"solve: time_limit={time_limit} must be a number in (0, {MAX_TIME_LIMIT_S:g}] seconds")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise InputError(f"solve: seed={seed!r} must be an integer in 0..{MAX_SEED}")
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or not 1 <= num_workers <= MAX_WORKERS:
        raise InputError(f"solve: num_workers={num_workers!r} must be an integer in 1..{MAX_WORKERS}")


def _run_backend(backend: Backend, view: TopologyView, greedy: Plan, options: SolveOptions) -> BackendOutput:
    if not backend.available():
        return BackendOutput(greedy, "fallback", "", f"{backend.name} is not available here")
    try:
        return backend.solve(view, greedy, options)
    except (MemoryError, RuntimeError, OSError) as exc:
        return BackendOutput(greedy, "fallback", type(exc).__name__, f"{backend.name} failed: {exc}")
