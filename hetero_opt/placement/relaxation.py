"""The LP relaxation of the scale-out placement model, solved lexicographically with HiGHS.

Built from the same solver-neutral slots and packing rows as the CP-SAT model
(:mod:`hetero_opt.placement.slots`), with every variable continuous. Its staged optimum gives a
proven lower bound on each objective term (served GPUs per priority class, premium cost, new
groups), and its solution guides CP-SAT: requests the LP places integrally are kept as they are and
only the fractional ones are re-optimised (:mod:`hetero_opt.placement.cpsat.neighbourhood`).

Why the bounds are lexicographically valid: stage *k* keeps every earlier term at the integer value
its LP bound allows (served ``>= floor``, premium ``<= ceil``). If an earlier bound is not attained
by any integer plan, the bound vector is already strictly below every plan on that earlier term and
the later terms do not matter; if it is attained, every optimal plan satisfies the rows added.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import highspy
import numpy as np

from hetero_opt.placement.backend import Budget
from hetero_opt.placement.binding import CountKey
from hetero_opt.placement.slots import Load, OutSlotSpec, out_slot_specs, packing_rows
from hetero_opt.topology import RequestView, TopologyView

TOL = 1e-6  # an LP value within this of an integer counts as integral
# Rounding an LP objective to the integer bound: a larger slack could round up to an integer no plan
# reaches (the row then added makes later stages infeasible and their bounds are lost).
OBJ_TOL_ABS, OBJ_TOL_REL = 1e-6, 1e-9


@dataclass
class SlotColumns:
    """Column indices of one slot: units, new-group switch, pods per cell, MoE replicas per S1."""

    spec: OutSlotSpec
    units: int
    open: int | None
    cells: dict[CountKey, int]
    replicas: dict[str, int]


@dataclass
class Relaxation:
    """The LP: columns with bounds, rows in CSR form, and the objective terms as sparse vectors."""

    slots: list[SlotColumns]
    lower: list[float]
    upper: list[float]
    row_starts: list[int]
    row_index: list[int]
    row_value: list[float]
    row_lower: list[float]
    row_upper: list[float]
    served: dict[int, dict[int, float]]  # priority (highest first) -> column -> GPUs per unit
    premium: dict[int, float]
    groups: dict[int, float]
    relaxed: int = 0  # (S1, GPU type) cells whose pod sizes are not a divisibility chain
    request_rows: dict[str, tuple[int, int]] = field(default_factory=dict)  # service -> (its units row, delta)
    restricted: bool = False  # only some domains per request: its optimum is no bound on the full model
    _vectors: dict[tuple[str, int], np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def num_cols(self) -> int:
        """Number of columns."""
        return len(self.lower)

    def cost_vector(self, term: tuple[str, int]) -> np.ndarray:
        """Dense coefficients of ``("premium", 0)`` or ``("served", priority)`` (built once, then kept)."""
        cached = self._vectors.get(term)
        if cached is None:
            terms = self.premium if term[0] == "premium" else self.served.get(term[1], {})
            cached = self._vectors[term] = _cost(self.num_cols, terms)
        return cached

    def add_col(self, ub: float) -> int:
        """A new column in ``[0, ub]``; its index."""
        self.lower.append(0.0)
        self.upper.append(float(ub))
        return len(self.lower) - 1

    def add_row(self, terms: list[tuple[int, float]], lo: float, hi: float) -> None:
        """The row ``lo <= sum coef * col <= hi``."""
        self.add_row_arrays([i for i, _ in terms], [c for _, c in terms], lo, hi)

    def add_row_arrays(self, index: list[int], value: list[float], lo: float, hi: float) -> None:
        """The row ``lo <= sum value[k] * col[index[k]] <= hi`` (no per-term tuples: the hot path)."""
        self.row_starts.append(len(self.row_index))
        self.row_index.extend(index)
        self.row_value.extend(value)
        self.row_lower.append(lo)
        self.row_upper.append(hi)


def build_relaxation(
    view: TopologyView,
    requests: list[RequestView],
    load: Load | None = None,
    domains: dict[str, frozenset[str]] | None = None,
) -> Relaxation:
    """The LP relaxation of the scale-out ``requests`` (``delta > 0``) on ``view``'s free GPUs; with
    ``domains`` (per service) only in those: a restricted model whose optimum bounds nothing."""
    lp = Relaxation([], [], [], [], [], [], [], [], {}, {}, {}, restricted=domains is not None)
    inf = highspy.kHighsInf
    items: dict[tuple[str, str], list[tuple[int, int]]] = {}
    weights = view.instance.objective
    tier_weight = {s1: weights.tier_weights[tier] for s1, tier in view.tier_by_s1.items()}
    for req in sorted(requests, key=lambda r: (-r.service.priority, r.service.id)):
        svc = req.service
        size_of: dict[str, int] = {r.name: r.gpus_per_pod for r in svc.roles}
        # premium per pod = size * (tier weight + penalty * rank): gpu_cost, unrolled for speed
        penalty = weights.nonpreferred_penalty
        rank_cost: dict[tuple[str, str], int] = {
            (r.name, t): penalty * i for r in svc.roles for i, t in enumerate(r.gpu_types)
        }
        per_unit = sorted(svc.pods_per_unit.items())  # a property: once per request, not per slot
        served = lp.served.setdefault(svc.priority, {})
        gpus_per_unit = float(svc.gpus_per_unit)
        opens: list[tuple[int, float]] = []
        units_terms: list[tuple[int, float]] = []
        for spec in out_slot_specs(view, req, None if domains is None else domains.get(svc.id, frozenset())):
            cols = SlotColumns(spec, lp.add_col(spec.max_units), None, {}, {})
            units_terms.append((cols.units, 1.0))
            served[cols.units] = gpus_per_unit
            if spec.new:
                cols.open = lp.add_col(1)
                opens.append((cols.open, 1.0))
                lp.groups[cols.open] = 1.0
                lp.add_row_arrays([cols.units, cols.open], [1.0, -float(spec.max_units)], -inf, 0.0)
                lp.add_row_arrays([cols.units, cols.open], [1.0, -1.0], 0.0, inf)
            first = lp.num_cols
            lp.lower.extend([0.0] * len(spec.cells))
            lp.upper.extend([float(n) for _, n in spec.cells])
            for col, (key, _) in enumerate(spec.cells, start=first):
                cols.cells[key] = col
                role, s1, gpu_type = key
                size = size_of[role]
                lp.premium[col] = float(size * (tier_weight[s1] + rank_cost[(role, gpu_type)]))
                items.setdefault((s1, gpu_type), []).append((size, col))
            for s1, n in spec.replicas:
                cols.replicas[s1] = lp.add_col(n)
            _slot_rows(lp, cols, per_unit)
            lp.slots.append(cols)
        if units_terms:
            lp.request_rows[svc.id] = (len(lp.row_starts), req.delta)
            lp.add_row(units_terms, -inf, float(req.delta))
        if len(opens) > svc.max_new_groups:
            lp.add_row(opens, -inf, float(svc.max_new_groups))
    rows, lp.relaxed = packing_rows(view, items, lp.upper, load)
    for row in rows:
        lp.add_row_arrays(row.index, [float(c) for c in row.coef], -inf, float(row.rhs))
    return lp


def _slot_rows(lp: Relaxation, cols: SlotColumns, per_unit: list[tuple[str, int]]) -> None:
    """Whole units with exact ratios (MoE: whole prefill replicas per S1), as in the CP-SAT model;
    ``per_unit``: the service's pods per unit by role, sorted."""
    svc = cols.spec.request.service
    ratio = svc.attn_ffn_ratio
    by_role: dict[str, list[int]] = {}
    by_role_s1: dict[tuple[str, str], list[int]] = {}
    for (role, s1, _), c in cols.cells.items():
        by_role.setdefault(role, []).append(c)
        if ratio is not None:
            by_role_s1.setdefault((role, s1), []).append(c)
    for role, pods in per_unit:
        if ratio is None or role == "decode":
            index = by_role.get(role, [])
            lp.add_row_arrays([*index, cols.units], [1.0] * len(index) + [-float(pods)], 0.0, 0.0)
    if ratio is not None:
        for s1, y in sorted(cols.replicas.items()):
            for role, k in (("prefill-attn", ratio.prefill), ("prefill-ffn", ratio.decode)):
                index = by_role_s1.get((role, s1), [])
                lp.add_row_arrays([*index, y], [1.0] * len(index) + [-float(k)], 0.0, 0.0)
        terms = [(y, 1.0) for y in cols.replicas.values()]
        lp.add_row([*terms, (cols.units, -float(svc.pd_ratio.prefill))], 0.0, 0.0)


@dataclass
class LpOutcome:
    """Proven bounds per term and the LP solution the last solved stage ended with."""

    served_ub: dict[int, int] = field(default_factory=dict)  # priority -> most GPUs any plan serves
    premium_lb: int | None = None
    groups_lb: int | None = None
    values: np.ndarray | None = None
    reduced: np.ndarray | None = None  # reduced costs of the columns (full-service LP only)
    complete: bool = False  # every stage solved to optimality
    full_service: bool = False  # solved with every request fully served (served bounds trivial)
    stats: dict[str, float] = field(default_factory=dict)
    # the least-new-groups stage, deferred (:func:`solve_full_service`): run it with a budget to set groups_lb
    groups_stage: Callable[[Budget, int | None], None] | None = field(default=None, repr=False, compare=False)


def solve_relaxation(
    lp: Relaxation, budget: Budget, stop_before: str = "", iteration_limit: int | None = None
) -> LpOutcome:
    """Solve the stages served (class by class), premium, groups, each warm-started from the last.

    Stops at the first stage that is not solved to optimality before ``budget``'s deadline (a part of
    the call's one budget), or before the stage named ``stop_before``; the bounds proven so far are
    kept. ``iteration_limit`` caps the simplex iterations of all stages together, a limit that, unlike
    the deadline, does not depend on machine load.
    """
    if not lp.slots:
        return nothing_to_place(lp)
    out = LpOutcome()
    start = time.perf_counter()
    h = highs_model(lp)
    n = lp.num_cols
    out.stats["lp_build_s"] = time.perf_counter() - start
    stages: list[tuple[str, dict[int, float], bool]] = [
        *((f"served{p}", terms, True) for p, terms in lp.served.items()),
        ("premium", lp.premium, False),
        ("groups", lp.groups, False),
    ]
    everything = np.arange(n, dtype=np.int32)
    iterations = 0
    for name, terms, maximise in stages:
        if budget.left() <= 0 or name == stop_before:
            return out
        h.changeColsCost(n, everything, _cost(n, terms))
        h.changeObjectiveSense(highspy.ObjSense.kMaximize if maximise else highspy.ObjSense.kMinimize)
        tick = time.perf_counter()
        _run_lp(h, budget, iteration_limit, iterations)
        out.stats[f"lp_{name}_s"] = time.perf_counter() - tick
        iterations += int(h.getInfo().simplex_iteration_count)
        out.stats["lp_iterations"] = float(iterations)
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return out
        value = float(h.getInfo().objective_function_value)
        out.values = np.array(h.getSolution().col_value)
        idx = np.array(list(terms), dtype=np.int32)
        coef = np.array(list(terms.values()))
        inf = highspy.kHighsInf
        if maximise:
            bound = _floor(value)
            out.served_ub[int(name.removeprefix("served"))] = bound
            if len(idx):
                h.addRow(float(bound), inf, len(idx), idx, coef)
        else:
            bound = _ceil(value)
            if name == "premium":
                out.premium_lb = bound
            else:
                out.groups_lb = bound
            if len(idx):
                h.addRow(-inf, float(bound), len(idx), idx, coef)
    out.complete = True
    out.stats["lp_s"] = time.perf_counter() - start
    return out


def nothing_to_place(lp: Relaxation, full_service: bool = False) -> LpOutcome:
    """The outcome of an LP without a slot: no request can place anything, so every bound is 0 and
    proven (a solved LP, not one out of time)."""
    served = dict.fromkeys(lp.served, 0)
    return LpOutcome(served, 0, 0, np.zeros(lp.num_cols), complete=True, full_service=full_service)


def _run_lp(h: highspy.Highs, budget: Budget, iteration_limit: int | None, used: int = 0, warm: bool = False) -> None:
    """One LP ``run()`` of ``h`` within what is left of ``budget`` and of ``iteration_limit`` (``used`` spent).

    ``warm``: a later stage of a lexicographic sequence, whose last optimum still satisfies every row
    (the row added bounds the last objective at its optimum) while the new costs leave its basis dual
    infeasible: primal simplex starts from it, where HiGHS's default (dual) restarts far from it. On heavy
    seed 5 the least-new-groups stage took 22 s and 19,888 iterations by dual, 2.2 s and 521 by primal.
    """
    # HiGHS compares an LP's time_limit with the object's run time summed over every run() (issues #1331,
    # #1477; a MIP's clock restarts, measured with highspy 1.14)
    h.setOptionValue("time_limit", h.getRunTime() + max(budget.left(), 1e-3))
    if iteration_limit is not None:
        h.setOptionValue("simplex_iteration_limit", max(0, iteration_limit - used))
    if not warm:
        h.run()
        return
    default = h.getOptionValue("simplex_strategy")  # highspy 1.14: (status, value)
    default = default[1] if isinstance(default, tuple) else default
    h.setOptionValue("simplex_strategy", PRIMAL_SIMPLEX)
    try:
        h.run()
    finally:
        h.setOptionValue("simplex_strategy", default)


#: HiGHS's ``simplex_strategy`` value for primal simplex.
PRIMAL_SIMPLEX = 4


def _ceil(value: float) -> int:
    """An LP minimum as an integer lower bound (the objective's coefficients are integers)."""
    return math.ceil(value - OBJ_TOL_ABS - OBJ_TOL_REL * abs(value))


def _floor(value: float) -> int:
    """An LP maximum as an integer upper bound."""
    return math.floor(value + OBJ_TOL_ABS + OBJ_TOL_REL * abs(value))


def highs_model(lp: Relaxation) -> highspy.Highs:
    """A quiet HiGHS model of ``lp`` (columns, bounds and rows; no costs yet)."""
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.addVars(lp.num_cols, np.array(lp.lower), np.array(lp.upper))
    h.addRows(
        len(lp.row_starts),
        np.array(lp.row_lower),
        np.array(lp.row_upper),
        len(lp.row_index),
        np.array(lp.row_starts, dtype=np.int32),
        np.array(lp.row_index, dtype=np.int32),
        np.array(lp.row_value),
    )
    return h


def _cost(n: int, terms: dict[int, float]) -> np.ndarray:
    cost = np.zeros(n)
    if terms:
        cost[np.fromiter(terms.keys(), dtype=np.int64, count=len(terms))] = np.fromiter(
            terms.values(), dtype=float, count=len(terms)
        )
    return cost


def wanted_gpus(lp: Relaxation) -> dict[int, int]:
    """GPUs each priority class asks for in requests with a slot (every one fully served); 0 for a class
    whose requests have none."""
    wanted: dict[int, int] = dict.fromkeys(lp.served, 0)
    seen: set[str] = set()
    for cols in lp.slots:
        req = cols.spec.request
        if req.service.id not in seen:
            seen.add(req.service.id)
            p = req.service.priority
            wanted[p] = wanted.get(p, 0) + req.delta * req.service.gpus_per_unit
    return wanted


def solve_full_service(
    lp: Relaxation, budget: Budget, iteration_limit: int | None = None, groups: bool = False, defer: bool = False
) -> LpOutcome | None:
    """Premium minimised with every request fully served: one LP where the staged path solves one per class.

    None when no fractional plan serves every request (the staged :func:`solve_relaxation` then finds
    what can be served). Otherwise the outcome's bounds are those of the staged path (served at what
    each class asks for, premium at the LP's minimum); ``values`` is None if it was not solved in time.
    ``groups``: then also the least new groups at that premium (a weak bound: a fractional switch
    costs units / max units), when solved in time; ``values`` stay the premium stage's. ``defer``: that
    stage is not run here but kept as ``groups_stage`` (warm from this LP's optimum) for the caller to
    run once it knows the bound can matter (the plan attains the served and premium bounds).
    """
    if not lp.slots:
        return nothing_to_place(lp, full_service=True)
    out = LpOutcome()
    start = time.perf_counter()
    h = highs_model(lp)
    rows = np.array([r for r, _ in lp.request_rows.values()], dtype=np.int32)
    full = np.array([float(d) for _, d in lp.request_rows.values()])
    h.changeRowsBounds(len(rows), rows, full, full)
    n = lp.num_cols
    h.changeColsCost(n, np.arange(n, dtype=np.int32), _cost(n, lp.premium))
    h.changeObjectiveSense(highspy.ObjSense.kMinimize)
    _run_lp(h, budget, iteration_limit)
    status = h.getModelStatus()
    out.stats["lp_full_service_s"] = time.perf_counter() - start
    out.stats["lp_iterations"] = float(h.getInfo().simplex_iteration_count)
    if status == highspy.HighsModelStatus.kInfeasible:
        return None
    if status != highspy.HighsModelStatus.kOptimal:
        return out
    value = float(h.getInfo().objective_function_value)
    out.values = np.array(h.getSolution().col_value)
    out.reduced = np.array(h.getSolution().col_dual)
    out.served_ub = wanted_gpus(lp)
    out.premium_lb = _ceil(value)
    out.full_service = True
    if groups and lp.groups and lp.premium:
        used = int(h.getInfo().simplex_iteration_count)

        def groups_stage(stage_budget: Budget, limit: int | None) -> None:
            tick = time.perf_counter()
            idx = np.fromiter(lp.premium.keys(), dtype=np.int32, count=len(lp.premium))
            coef = np.fromiter(lp.premium.values(), dtype=float, count=len(lp.premium))
            h.addRow(-highspy.kHighsInf, float(out.premium_lb or 0), len(idx), idx, coef)
            h.changeColsCost(n, np.arange(n, dtype=np.int32), _cost(n, lp.groups))
            _run_lp(h, stage_budget, limit, used, warm=True)
            if h.getModelStatus() == highspy.HighsModelStatus.kOptimal:
                out.groups_lb = _ceil(float(h.getInfo().objective_function_value))
            out.stats["lp_groups_s"] = time.perf_counter() - tick
            out.groups_stage = None

        if defer:
            out.groups_stage = groups_stage
        else:
            groups_stage(budget, iteration_limit)
        out.stats["lp_full_service_s"] = time.perf_counter() - start
    return out


def premium_bound(
    lp: Relaxation, served: dict[int, int], budget: Budget, iteration_limit: int | None = None
) -> int | None:
    """The least premium of a fractional plan serving at least ``served`` GPUs of each priority class: a
    lexicographic bound on premium when ``served`` is the optimum's served vector (proven class by
    class). None when not solved to optimality in time (or infeasible: ``served`` is then no such vector).
    """
    if not lp.slots:
        return 0
    h = highs_model(lp)
    inf = highspy.kHighsInf
    for p, gpus in served.items():
        terms = lp.served.get(p, {})
        if terms and gpus > 0:
            idx = np.fromiter(terms.keys(), dtype=np.int32, count=len(terms))
            coef = np.fromiter(terms.values(), dtype=float, count=len(terms))
            h.addRow(float(gpus), inf, len(idx), idx, coef)
    n = lp.num_cols
    h.changeColsCost(n, np.arange(n, dtype=np.int32), _cost(n, lp.premium))
    h.changeObjectiveSense(highspy.ObjSense.kMinimize)
    _run_lp(h, budget, iteration_limit)
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None
    return _ceil(float(h.getInfo().objective_function_value))


# Served weights of the restricted model's single LP: a GPU of the lowest class is worth more than the
# premium of any pod, and each class SERVED_WEIGHT_STEP times the next lower one (close to, not exactly,
# lexicographic: that LP only guides, its optimum bounds nothing).
SERVED_WEIGHT_STEP = 100.0


def solve_weighted(lp: Relaxation, budget: Budget, iteration_limit: int | None = None) -> LpOutcome:
    """One LP guiding a restricted model: GPUs served, weighted by class, minus premium.

    ``served_ub`` holds what this LP serves per class (floored) and ``premium_lb`` stays None: on a
    restricted model neither is a bound. ``values`` is None if it was not solved in time.
    """
    if not lp.slots:
        return nothing_to_place(lp)
    out = LpOutcome()
    start = time.perf_counter()
    h = highs_model(lp)
    n = lp.num_cols
    weight = max(lp.premium.values(), default=0.0) + 1.0
    cost = -_cost(n, lp.premium)
    for terms in reversed(lp.served.values()):  # lowest class first
        cost += weight * _cost(n, terms)
        weight *= SERVED_WEIGHT_STEP
    h.changeColsCost(n, np.arange(n, dtype=np.int32), cost)
    h.changeObjectiveSense(highspy.ObjSense.kMaximize)
    _run_lp(h, budget, iteration_limit)
    out.stats["lp_weighted_s"] = time.perf_counter() - start
    out.stats["lp_iterations"] = float(h.getInfo().simplex_iteration_count)
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return out
    out.values = np.array(h.getSolution().col_value)
    for p, terms in lp.served.items():
        out.served_ub[p] = math.floor(sum(c * float(out.values[i]) for i, c in terms.items()) + OBJ_TOL_ABS)
    return out


@dataclass
class Neighbourhood:
    """The integer placement of the freed requests around the fixed ones (all columns, integral)."""

    values: np.ndarray
    proven: bool  # every stage of the MIP (premium; or served per class, then premium) proven optimal
    stats: dict[str, float] = field(default_factory=dict)
    # the most GPUs of the top class any integral placement on the MIP's columns serves (the fixed ones'
    # share plus the first served stage's dual bound), where that stage ran; its optimum when proven
    top_served_ub: int | None = None


# HiGHS's MIP has no deterministic work limit (1.14: its MIP ignores simplex_iteration_limit, and the
# root node, where heavy production's MIPs spend seconds, is not bounded by mip_max_nodes), so a MIP
# stopped by the wall gave another plan from run to run. Its interrupt callback stands in for one: HiGHS
# calls it at fixed points after presolve, at the root node and in the search, the same sequence run to
# run (measured on three MIPs of heavy seed 0: the node counts and bounds at each call identical over 3
# runs, and interrupted at the n-th call the same solution each time), so work counted by the calls is
# deterministic. Each call is counted at what it costs per integer column, about
# MIP_ROOT_SECONDS_PER_CHECK_COLUMN at the root node (the median of 11 MIPs of heavy seeds 0, 5, 6 and 7:
# 6e-6, range 2-20e-6) and MIP_NODE_SECONDS_PER_CHECK_COLUMN in the search (4.5e-7 on heavy seed 7's, taken
# a third higher), after a presolve of MIP_PRESOLVE_SECONDS_PER_COLUMN (median 4e-5, range 2.3-10e-5, taken
# at 6e-5 so that a presolve the plan starts is seldom cut by the wall), in which HiGHS makes no call: a run
# whose presolve the planned work does not cover is not started (on heavy seed 0 at 10 s two such MIPs had
# been stopped by the wall in presolve, with no solution). Decision 61 has the measurements.
MIP_ROOT_SECONDS_PER_CHECK_COLUMN = 6e-6
MIP_NODE_SECONDS_PER_CHECK_COLUMN = 6e-7
MIP_PRESOLVE_SECONDS_PER_COLUMN = 6e-5


class _Work:
    """The planned seconds of HiGHS's MIP runs on one model of ``columns`` integer columns, counted at its
    interrupt checks (each at the root node's or the search's cost); a run is interrupted at its limit."""

    def __init__(self, h: highspy.Highs, columns: int) -> None:
        self.columns = columns
        self.spent, self.limit = 0.0, 0.0  # this run's, and where it is interrupted
        self.checks = 0
        h.cbMipInterrupt.subscribe(self._check)

    def presolve(self) -> float:
        """Planned seconds of a run's presolve."""
        return MIP_PRESOLVE_SECONDS_PER_COLUMN * self.columns

    def allow(self, seconds: float) -> None:
        """Let the next run take ``seconds`` in all (its presolve included)."""
        self.spent, self.limit = self.presolve(), seconds

    def _check(self, event: highspy.highs.HighsCallbackEvent) -> None:
        root = event.data_out.mip_node_count == 0
        per_column = MIP_ROOT_SECONDS_PER_CHECK_COLUMN if root else MIP_NODE_SECONDS_PER_CHECK_COLUMN
        self.spent += per_column * self.columns
        self.checks += 1
        if self.spent >= self.limit:
            event.interrupt()


def solve_freed(
    lp: Relaxation,
    x: np.ndarray,
    freed: set[str],
    budget: Budget,
    node_limit: int,
    reduced: np.ndarray | None = None,
    full: bool = True,
    incumbent: np.ndarray | None = None,
) -> Neighbourhood | None:
    """The freed requests placed near the LP's solution ``x`` by a MIP in HiGHS, the others fixed at ``x``.

    ``full``: every freed request fully served at least premium. Otherwise (not everything fits) the
    lexicographic objective: GPUs served per priority class, highest first, then premium, one MIP per
    term, each keeping the terms before it; the served terms of several classes as one weighted MIP
    where :func:`_lexicographic_weights` allows (then ``proven`` is False: only the top class is proven).

    The sub-model keeps, as integers, only the columns of the slots (groups) where ``x`` places a freed
    request, and with ``reduced`` (the LP's reduced costs) also those where one more unit has reduced
    cost 0 (alternative LP optima), with the rows they appear in and the fixed columns' share moved to
    the row bounds: a relaxation-induced neighbourhood over the LP's own rows (no model rebuilt in
    Python); at production size a few hundred columns on the support, a few thousand with the
    alternatives. None when it has no solution in time or none at all (integrality, or the new-group
    limit, may forbid serving the freed requests in full on the slots the LP chose). ``incumbent``: an
    integral solution of every column (e.g. a smaller neighbourhood's) given to HiGHS as its first
    incumbent, so a MIP over more columns starts from it and may only have to prove it. In deterministic
    mode the runs are limited by ``budget``'s planned MIP work (:class:`_Work`), which they spend.
    """
    start = time.perf_counter()
    n, m = lp.num_cols, len(lp.row_starts)
    free = np.zeros(n, dtype=bool)
    fixed = np.round(x)
    for cols in lp.slots:
        idx = [cols.units, *cols.cells.values(), *cols.replicas.values()]
        if cols.open is not None:
            idx.append(cols.open)
        if cols.spec.request.service.id in freed:
            free[idx] = x[cols.units] > TOL or (reduced is not None and _unit_reduced_cost(cols, reduced) <= TOL)
        elif cols.open is not None:  # a kept new group is open exactly when it has units
            fixed[cols.open] = 1.0 if fixed[cols.units] > 0 else 0.0
    fixed[free] = 0.0
    index = np.array(lp.row_index, dtype=np.int64)
    value = np.array(lp.row_value)
    row_of = np.repeat(np.arange(m), np.diff(np.append(np.array(lp.row_starts, dtype=np.int64), len(index))))
    on_free = free[index]
    share = np.bincount(row_of, weights=value * fixed[index], minlength=m)
    lower, upper = np.array(lp.row_lower) - share, np.array(lp.row_upper) - share
    if full:
        for sid in freed:
            r, delta = lp.request_rows[sid]
            lower[r] = upper[r] = float(delta)
    per_row = np.bincount(row_of[on_free], minlength=m)
    keep = per_row > 0
    if np.any(lower[~keep] > TOL) or np.any(upper[~keep] < -TOL):
        return None  # the fixed part alone breaks a row (cannot happen for an LP solution within TOL)
    col_of = np.cumsum(free) - 1
    k = int(free.sum())
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.addVars(k, np.array(lp.lower)[free], np.array(lp.upper)[free])
    h.changeColsIntegrality(k, np.arange(k, dtype=np.int32), np.full(k, highspy.HighsVarType.kInteger))
    starts = np.concatenate(([0], np.cumsum(per_row[keep])[:-1]))
    h.addRows(
        int(keep.sum()),
        lower[keep],
        upper[keep],
        int(on_free.sum()),
        starts.astype(np.int32),
        col_of[index[on_free]].astype(np.int32),
        value[on_free],
    )
    binaries = _all_or_nothing_rows(h, lp, freed, free, col_of) if not full else []
    h.setOptionValue("mip_rel_gap", 0.0)
    h.setOptionValue("mip_max_nodes", node_limit)
    if incumbent is not None:
        known = [float(v) for v in np.round(incumbent[free])]
        # an all-or-nothing request's binary is its units over its delta (0 or 1 in any integral solution)
        known += [sum(known[c] for c in cols) / delta for cols, delta in binaries]
        first = highspy.HighsSolution()
        first.col_value = known
        first.value_valid = True
        h.setSolution(first)
    by_class = [] if full else [(p, lp.cost_vector(("served", p))[free]) for p in lp.served]
    served = [c for _, c in by_class if c.any()]
    most = _most(lp, free)
    weights = _lexicographic_weights([most.get(p, 0) for p, c in by_class if c.any()])
    terms: list[tuple[np.ndarray, bool]] = [(c, True) for c in served] if weights is None else []
    if weights is not None:  # one MIP for every class's served GPUs, each class outweighing all below it
        terms.append((sum((w * c for w, c in zip(weights, served, strict=True)), np.zeros(k)), True))
    terms.append((_cost(n, lp.premium)[free], False))
    stats = {"mip_cols": float(k), "mip_nodes": 0.0}
    proven, solution = weights is None, None
    top_served_ub: int | None = None
    # where the top class has free columns, the first served stage's objective is its served GPUs on them
    # (weighted first where one MIP takes every class; the classes below add only more), the fixed columns'
    # share aside: only that stage bounds the class
    top_cost = lp.cost_vector(("served", max(lp.served))) if by_class else np.zeros(n)  # (full: no served stage)
    top_weight = (weights or [1.0])[0] if top_cost[free].any() else 0.0
    top_fixed = float(top_cost @ fixed)
    top_stage = top_weight > 0
    work = _Work(h, k) if math.isfinite(budget.work) else None
    worked = 0.0  # planned seconds of the runs so far
    for cost, maximise in terms:
        if not cost.any():
            continue
        if work is not None:
            if budget.work - worked <= work.presolve():  # the planned work left would not see it through presolve
                stats["mip_work_spent"] = 1.0
                proven = False
                break
            work.allow(budget.work - worked)
        h.changeColsCost(k, np.arange(k, dtype=np.int32), np.append(cost, np.zeros(h.getNumCol() - k)))
        h.changeObjectiveSense(highspy.ObjSense.kMaximize if maximise else highspy.ObjSense.kMinimize)
        h.setOptionValue("time_limit", max(budget.left(), 1e-3))  # a MIP's clock restarts each run()
        if solution is not None:
            h.setSolution(solution)
        began = time.perf_counter()
        h.run()
        key = "mip_served_s" if maximise else "mip_premium_s"
        stats[key] = stats.get(key, 0.0) + time.perf_counter() - began  # one served run per class, or one
        stats["mip_nodes"] += float(h.getInfo().mip_node_count)
        if work is not None:
            worked += work.spent
            stats["mip_checks"] = float(work.checks)
            stats["mip_planned_s"] = worked
        if h.getModelStatus() == highspy.HighsModelStatus.kTimeLimit:
            stats["mip_wall_stopped"] = 1.0  # the wall, not the plan, stopped it: the result may vary run to run
        if maximise and top_stage:
            top_stage = False
            # (in deterministic mode not where the wall stopped it: that bound would vary run to run)
            if not (budget.deterministic and "mip_wall_stopped" in stats):
                top_served_ub = _top_served_ub(h, top_fixed, top_weight)
        if h.getInfo().primal_solution_status != 2:  # no feasible solution (in time): this term is not proven
            proven = False
            break
        solution = h.getSolution()
        proven = proven and h.getModelStatus() == highspy.HighsModelStatus.kOptimal
        x = np.array(solution.col_value)[:k]
        for row in served if maximise and weights is not None else [cost]:
            reached = round(float(row @ x))
            nz = np.flatnonzero(row)
            lo, hi = (float(reached), highspy.kHighsInf) if maximise else (-highspy.kHighsInf, float(reached))
            h.addRow(lo, hi, len(nz), nz.astype(np.int32), row[nz])  # keep this term in the later ones
    stats["mip_s"] = time.perf_counter() - start
    budget.spend_work(worked)
    if solution is None:
        return None
    values = fixed.copy()
    values[free] = np.round(np.array(solution.col_value)[:k])
    return Neighbourhood(values, proven, stats, top_served_ub)


def _top_served_ub(h: highspy.Highs, fixed: float, weight: float) -> int | None:
    """The most GPUs of the top class a MIP's served stage leaves possible: its ``fixed`` share plus its dual
    bound over the class's ``weight`` (valid whether the run was proven, interrupted or stopped: the classes
    below weigh in at zero or more), floored (the GPUs are whole); None where the run left no finite bound.

    An interrupted run often has it at the incumbent already (heavy seed 2: the whole class's MIP stopped at
    its root node with the incumbent at the dual bound, a proof its status does not say)."""
    dual = h.getInfo().mip_dual_bound
    if h.getModelStatus() == highspy.HighsModelStatus.kOptimal:
        dual = h.getInfo().objective_function_value
    if not math.isfinite(dual):  # (infeasible, or stopped before its root LP)
        return None
    return _floor(fixed + dual / weight)


# Largest weight of a class's served GPUs in the one-MIP form of the served stages, so that the objective
# stays far below where double precision and the MIP's tolerances blur one GPU of the lowest class.
MAX_LEXICOGRAPHIC_WEIGHT = float(2**24)


def _lexicographic_weights(most: list[int]) -> list[float] | None:
    """Weights under which the sum of the classes' served GPUs orders plans as the classes do one by one
    (``most``: the most each class can serve, highest class first): each class's weight exceeds the most
    all classes below it serve at their weights. None for a single class, or when the weights grow past
    :data:`MAX_LEXICOGRAPHIC_WEIGHT`.

    One MIP instead of one per class: on heavy production (three classes, ~6k columns) the served
    stages took 5.4 s one by one and 2.2 s as one. Its optimum is proven for the top class (its weight
    dwarfs the tolerances); for the classes below it is the best found.
    """
    if len(most) < 2:
        return None
    weights = [1.0]
    below = 0.0  # the most the classes below the next one serve, at their weights
    for m in reversed(most[1:]):
        below += weights[-1] * m
        weights.append(below + 1.0)
        if weights[-1] > MAX_LEXICOGRAPHIC_WEIGHT:
            return None
    return weights[::-1]


def _most(lp: Relaxation, free: np.ndarray) -> dict[int, int]:
    """Per priority class, GPUs its requests with a free slot ask for: the most it can serve there (one pass)."""
    wanted: dict[str, tuple[int, int]] = {}
    for cols in lp.slots:
        req = cols.spec.request
        if free[cols.units]:
            wanted[req.service.id] = (req.service.priority, req.delta * req.service.gpus_per_unit)
    most: dict[int, int] = {}
    for priority, gpus in wanted.values():
        most[priority] = most.get(priority, 0) + gpus
    return most


def _all_or_nothing_rows(
    h: highspy.Highs, lp: Relaxation, freed: set[str], free: np.ndarray, col_of: np.ndarray
) -> list[tuple[list[int], int]]:
    """A binary per freed all-or-nothing request: its units are 0 or its whole delta (the LP row is only
    ``<= delta``); columns appended after the ``free`` ones. Returns, per binary in column order, the
    sub-model columns of the request's units and its delta."""
    units: dict[str, list[int]] = {}
    delta: dict[str, int] = {}
    for cols in lp.slots:
        req = cols.spec.request
        if req.all_or_nothing and req.service.id in freed and free[cols.units]:
            units.setdefault(req.service.id, []).append(int(col_of[cols.units]))
            delta[req.service.id] = req.delta
    binaries: list[tuple[list[int], int]] = []
    for sid, cols_ in sorted(units.items()):
        z = h.getNumCol()
        h.addVar(0.0, 1.0)
        h.changeColIntegrality(z, highspy.HighsVarType.kInteger)
        idx = np.array([*cols_, z], dtype=np.int32)
        h.addRow(0.0, 0.0, len(idx), idx, np.array([1.0] * len(cols_) + [-float(delta[sid])]))
        binaries.append((cols_, delta[sid]))
    return binaries


def _unit_reduced_cost(cols: SlotColumns, reduced: np.ndarray) -> float:
    """LP reduced cost of one more unit in the slot ``cols``: its units column plus, per role, the pods of a
    unit at the cheapest cell of that role."""
    per_unit = cols.spec.request.service.pods_per_unit
    cheapest: dict[str, float] = {}
    for (role, _, _), c in cols.cells.items():
        cheapest[role] = min(cheapest.get(role, math.inf), float(reduced[c]))
    return float(reduced[cols.units]) + sum(n * cheapest.get(role, math.inf) for role, n in per_unit.items())
