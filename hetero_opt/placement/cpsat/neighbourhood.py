"""LP-guided neighbourhood search: the relaxation places most requests; CP-SAT re-optimises the rest.

At production size the LP relaxation of the placement model is tight (its premium bound lands
within 0-0.5 % of the integer optimum) and places most requests integrally. So:

1. solve the relaxation lexicographically (:mod:`hetero_opt.placement.relaxation`): a proven bound
   on every term;
2. keep every request the LP places integrally exactly as the LP places it;
3. re-optimise the fractional requests with CP-SAT, a few at a time (:data:`CHUNK`), on the capacity
   the kept requests leave (their pods enter the packing rows as constants, so with pod sizes in a
   divisibility chain the union always binds to nodes).

It works on counts and returns them (``solve()`` binds them once); only the greedy, run on what
placed counts leave (:func:`_greedy_around`), needs them bound, since it allocates nodes.

A relaxation-induced neighbourhood (RINS, Danna, Rothberg & Le Pape 2005) with the LP solution alone
as the reference. The plan is then compared with the bounds: where it meets them, the terms are proven.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from hetero_opt.placement.backend import Budget, SolveOptions
from hetero_opt.placement.binding import BindingError, Counts, GroupDraft, bind, units_of
from hetero_opt.placement.candidates import candidate_domains
from hetero_opt.placement.cpsat.model import HintError, PlacementModel, build
from hetero_opt.placement.cpsat.plans import (
    add_load,
    canonical,
    count_values,
    extract,
    gpus_taken,
    model_variables,
    reasons_of,
    restrict,
)
from hetero_opt.placement.cpsat.stages import (
    GROUPS_SHARE,
    PLANNED_DTIME_PER_SECOND,
    SERVED_SHARE,
    StagedSolver,
    first_stage_dtime,
    used_dtime,
)
from hetero_opt.placement.greedy import greedy_counts
from hetero_opt.placement.objective import gpu_cost
from hetero_opt.placement.plan import Unserved
from hetero_opt.placement.relaxation import (
    TOL,
    LpOutcome,
    Neighbourhood,
    Relaxation,
    build_relaxation,
    premium_bound,
    solve_freed,
    solve_full_service,
    solve_relaxation,
    solve_weighted,
    wanted_gpus,
)
from hetero_opt.placement.slots import OutSlotSpec, out_slot_specs
from hetero_opt.topology import RequestView, TopologyView

# Fractional requests re-optimised together. One neighbourhood over all of them stalls at 2x
# production (47 requests, no progress in 10 s). On production seed 0 (8 fractional requests) chunks
# of 8, 4 and 2 all reach the LP bound, with 0.142, 0.083 and 0.044 deterministic time in all.
CHUNK = 4
# The stages a chunk skips: phase A (the fractional requests) keeps group counts as they come, phase B
# (consolidation) keeps served and premium and solves group counts alone.
PHASE_A, PHASE_B = frozenset({"groups"}), frozenset({"served", "premium"})


# Room chunks (phase A, after the chunks holding the top class): the class-by-class path places each class
# on what the classes above it placed, their premium stages first, so a higher class may hold the cells
# (S1, GPU type) a lower class's slots need while it could serve as much elsewhere (heavy seed 10 at 10 s:
# class 50 556 GPUs short where its optimum leaves 216). Each short request of a lower class (highest
# priority, then most GPUs short, first) is re-placed with the ROOM_PARTNERS higher-class requests holding
# the most GPUs in the cells of one of its slots, in one chunk whose stages (served GPUs class by class, then
# premium) let them move only where no class loses. At most MAX_ROOM_CHUNKS, as far as the plan on size
# allows (decision 65).
ROOM_PARTNERS = CHUNK - 1
MAX_ROOM_CHUNKS = 24
Cell = tuple[str, str]  # (S1, GPU type)


def _first_share(skip: frozenset[str]) -> float:
    """The share of a chunk's deterministic time its first stage takes, given the stages ``skip`` names."""
    return GROUPS_SHARE if skip >= {"served", "premium"} else SERVED_SHARE


# Share of what is left of the wall budget the LP stages may take before the neighbourhood starts: a
# safety net close to the deadline, so that the iteration limit below (which does not depend on load)
# decides whenever the call can still finish; what the LP leaves fractional then goes to the greedy.
LP_SHARE = 0.95
# Simplex iterations per second of time_limit: production seeds need 2.5k-4k for the served and
# premium stages (0.3-0.8 s here), so 2 s allows 20k.
LP_ITERATIONS_PER_SECOND = 10_000
# The LP path is taken only when time_limit covers this per pod cell: the whole solve() of production
# (22-27k cells) with the LP path takes 1.2-2.0 s of CPU on seeds 0-9 (view, greedy, LP build 0.35 s,
# full-service LP 0.5 s, MIP 0.1-0.6 s, binding, verification): at 7e-5 it runs from time_limit 1.6-1.9 s
# on production; below that the class blocks do.
LP_SECONDS_PER_CELL = 7e-5
# The freed requests' MIP on the LP's support (HiGHS, every request fully served, the kept ones fixed)
# may take this share of the wall time left, and this many branch-and-bound nodes per second of
# time_limit (the limit that does not depend on load). On production seeds 0-9 it is solved at the root
# node: on the LP's support in about 0.1 s of CPU, at the LP bound on 8 of 10; with the alternative
# optima (seeds 2 and 8) in 0.3-0.5 s, at the LP bound. At 0.5 of the time left seed 2 missed the
# bound on 2 of 5 runs at time_limit=2 (the MIP cut early); at 0.9 on none of 5.
MIP_SHARE = 0.9
# The whole top class's MIP (when its neighbourhoods miss its bound) takes at most this share of the
# time left: the lower classes are still to be placed (heavy seed 1 at 10 s: with 0.9 class 50 ended
# worse than greedy's).
WHOLE_CLASS_SHARE = 0.5
# Share of the LP path's time left that the top class's MIPs may take when classes are placed one by
# one (at least its even share). Heavy seeds 0 and 1 at 10 s, two runs each (load ~1): with 0.5 the top
# class is proven optimal as with the even third and class 10 ends lower (40-76 against 166-182 GPUs
# unserved on seed 0, 308 against 362 on seed 1), classes 100 and 50 the same; no class worse than greedy.
TOP_CLASS_SHARE = 0.5
MIP_NODES_PER_SECOND = 500
# A restricted LP path (candidate domains, when the full model is too big for the limit) leaves this
# much of time_limit per node to the rest of the call (view, greedy, candidate domains, binding,
# verification), and runs only with at least this many pod cells per request. At 4x production (82k
# nodes) the rest took ~2 s once; since decisions 45, 46 and 52 the whole greedy call is 0.15-0.25 s,
# and 1 s (1.2e-5 per node) lets the path run from time_limit 2.5 s instead of 5 s: [64, 0, 100] at
# 2.5 s and 5 s, against the greedy's plan at 2.5 s and [64, 0, 136] at 5 s with 2.4e-5 (decision 53).
SECONDS_PER_NODE = 1.2e-5
MIN_RESTRICTED_CELLS_PER_REQUEST = 100
MAX_SPREAD = 16  # most requests re-placed by CP-SAT to open fewer new groups
# A chunk is started only with this much wall time per pod cell left (model build and presolve).
CHUNK_SECONDS_PER_CELL = 2e-5


@dataclass
class Guided:
    """The LP-guided counts of a scale-out part with the relaxation's bounds."""

    outcome: LpOutcome
    fixed: int  # requests kept as the LP placed them
    freed: int  # requests re-optimised by CP-SAT
    termination: list[str] = field(default_factory=list)
    stats: dict[str, float] = field(default_factory=dict)
    restricted: bool = False  # the LP kept only candidate domains: its bounds are not bounds
    drafts: list[GroupDraft] = field(default_factory=list)  # by service, then group
    unserved: list[Unserved] = field(default_factory=list)  # a record per request not served in full
    # seconds of PLANNED_SHARE of time_limit the plan on size leaves after the path (deterministic mode; else None)
    room: float | None = None

    @property
    def counts(self) -> Counts:
        """The drafts with why each request not served in full is not."""
        return Counts(self.drafts, reasons_of(self.unserved))


def lp_guided(
    view: TopologyView,
    part: list[RequestView],
    options: SolveOptions,
    budget: Budget,
    why_not: dict[str, float] | None = None,
    hint: Counts | None = None,
) -> Guided | None:
    """The LP-guided counts of the scale-out requests ``part``; None when the LP is not solved in time.

    ``why_not`` (if given) records why there are none: ``lp_skipped_by_size`` (time_limit below the
    size rule), ``lp_not_a_chain``, or the seconds and stats of an LP not solved in time. ``hint``: the
    greedy's counts of ``part`` (their domains stay in a restricted model).
    """
    start = time.perf_counter()
    why = why_not if why_not is not None else {}
    domains = None
    work = budget.work  # the MIPs' planned work (deterministic mode), before the path spends some
    cells = view.candidate_cells(part)  # the size the path's rules read, counted once
    ample = options.time_limit >= STAGED_FACTOR * LP_SECONDS_PER_CELL * cells
    # the extra LPs of a bound (new groups; premium where the class-by-class path settles the served terms)
    # are taken where the limit is twice what the path needs
    twice = options.time_limit >= 2 * LP_SECONDS_PER_CELL * cells
    if options.time_limit < LP_SECONDS_PER_CELL * cells:
        # too big for the limit: a model restricted to some domains per request, the hint's among them
        cells = int((options.time_limit - SECONDS_PER_NODE * len(view.instance.nodes)) / LP_SECONDS_PER_CELL)
        if cells < MIN_RESTRICTED_CELLS_PER_REQUEST * len(part):
            why["lp_skipped_by_size"] = 1.0
            return None
        domains = candidate_domains(view, part, hint, cells)
        why["lp_restricted_cells"] = float(cells)
    lp_budget = budget.wall_share(LP_SHARE, now=start)
    iterations = max(1, int(LP_ITERATIONS_PER_SECOND * options.time_limit))
    top, tried = (None, 0) if domains is not None else _top_class_short(view, part, hint, lp_budget, iterations)
    if top is not None and top.relaxed:
        why["lp_not_a_chain"] = 1.0
        return None
    lp: Relaxation | None = None
    outcome: LpOutcome | None = None
    built = 0 if top is not None else tried  # LP columns built, for the plan on size (_plan); top's: below
    if top is None:  # the top class may fit: every request at once
        lp = build_relaxation(view, part, domains=domains)
        built += lp.num_cols
        if lp.relaxed:  # pod sizes outside a chain: only the full model's node rows make counts bind
            why["lp_not_a_chain"] = 1.0
            return None
        if lp.restricted:  # no bound to prove: one weighted LP guides
            outcome = solve_weighted(lp, lp_budget, iterations)
        else:  # the groups bound costs one more LP (``twice``)
            outcome = solve_full_service(lp, lp_budget, iterations, twice, defer=True)
    termination: list[str] = []
    if outcome is None:  # not everything fits, even fractionally: one class at a time, the top class first
        stats: dict[str, float] = {}
        placed = _class_by_class(view, part, options, budget, termination, stats, top, hint)
        if placed is None:
            why.update(stats)
            return None
        outcome, drafts, load, freed = placed
        built += int(stats.get("lp_cols", 0.0))  # every class's LP (the top class's among them)
        if ample and lp is None:
            lp = build_relaxation(view, part)
            built += lp.num_cols
        # (not where the LP of every request leaves a chain: its MIP's counts might not bind, though each
        # class's did, with what the classes above placed; the premium bound below stays valid on it)
        alternative = ample and lp is not None and not lp.relaxed
        staged = _staged_alternative(view, lp, part, outcome, options, budget, stats) if alternative and lp else None
        if staged is not None and _draft_key(view, part, staged[1]) < _draft_key(view, part, drafts):
            termination.append("staged-lp:BETTER")
            outcome, drafts, load, freed = staged
        # the served terms proven: a bound on premium is one LP of every request away (0.3 s to build and
        # 0.5 s to solve on production seed 18), taken where the limit is ``twice`` what the path needs
        settled = _settled(view, part, outcome, drafts) if twice else None
        if settled is not None:
            tick = time.perf_counter()
            if lp is None:
                lp = build_relaxation(view, part)
                built += lp.num_cols
            premium = premium_bound(lp, settled, budget.wall_share(LP_SHARE), iterations)
            stats["lp_premium_bound_s"] = time.perf_counter() - tick
            termination.append("premium-bound:" + ("NONE" if premium is None else str(premium)))
            if premium is not None:
                outcome = LpOutcome(served_ub=settled, premium_lb=premium)
        stats["lp_total_s"] = time.perf_counter() - start
        placed_all = True
        # the classes placed one at a time may leave a lower class more short than the greedy does, which
        # phase A's chunks (lexicographic: the classes above first) rarely win back: then a second start
        second = hint is not None and _lower_class_worse(view, part, drafts, hint)
    else:
        assert lp is not None  # an outcome comes from the LP of every request
        stats = {"lp_cols": float(lp.num_cols), "lp_rows": float(len(lp.row_starts)), **outcome.stats}
        stats["lp_total_s"] = time.perf_counter() - start
        if outcome.values is None:
            why.update(stats)
            why["lp_not_solved_in_time"] = 1.0
            return None
        drafts, load, freed, placed_all, _ = _place_lp(
            view, lp, part, outcome, options, budget, termination, stats, ample
        )
        second = False  # every request fits, fractionally at least: no class is placed before another
        if freed and placed_all:  # a MIP placed them short of the bounds: no worse than the greedy would
            drafts, load = _no_worse_than_greedy(view, part, freed, drafts, load, termination)
        if outcome.groups_stage is not None and not freed:
            # the plan attains the served and premium bounds: only now can a bound on new groups matter
            # (on heavy seeds, where the MIP never serves everything, that LP took 2 s of the MIP's 10-s call)
            outcome.groups_stage(budget.wall_share(LP_SHARE), iterations)
            stats.update({k: v for k, v in outcome.stats.items() if k == "lp_groups_s"})
        outcome.groups_stage = None  # not run: the LP it holds is let go (~80 MB peak at heavy size, by the review)
    guided = Guided(outcome, len(part) - len(freed), len(freed), termination, restricted=domains is not None)
    first_hint = _greedy_around(view, freed, drafts) if freed and not placed_all else None
    run = _Chunks(view, options, budget, drafts, load, {}, guided.termination, stats, domains)
    # the MIPs' planned work (deterministic mode) counts in the plan on size as what it is planned to take
    run.planned += work - budget.work if math.isfinite(work) else 0.0
    stats["planned_mip_s"] = run.planned
    stats["planned_columns_s"] = PLANNED_SECONDS_PER_COLUMN * built
    # Phase A: the fractional requests, served and premium (the terms the LP bounds tightly), as far as the
    # plan on size allows (heavy production: 40 requests in 10 chunks, which the wall had cut anywhere).
    chunks = [freed[i : i + CHUNK] for i in range(0, len(freed), CHUNK)]
    first = max(r.service.priority for r in part)
    holds_top = [any(r.service.priority == first for r in chunk) for chunk in chunks]
    # the chunks holding the top class (term 1) first, then the room chunks, then the other chunks
    tops = [c for c, t in zip(chunks, holds_top, strict=True) if t]
    rest = [c for c, t in zip(chunks, holds_top, strict=True) if not t]
    # (``after``: the chunks the later groups may take, which share the wall time where it decides)
    _fractional(run, tops, first_hint, built, "fractional-top", len(rest) + len(_short_below_top(run, part)))
    _make_room(run, part, built, len(rest))
    _fractional(run, rest, first_hint, built, "fractional")
    if second and hint is not None:
        _second_start(run, part, hint, built)
    # Phase B, as far as the plan on size allows: the requests spread over the most new groups, re-placed
    # at no more premium. The LP barely sees group counts (a fractional switch costs units/max_units).
    opened = Counter(d.service for d in run.drafts if d.new)
    spread = sorted((r for r in part if opened[r.service.id] > 0), key=lambda r: (-opened[r.service.id], r.service.id))
    _consolidate(run, [spread[i : i + CHUNK] for i in range(0, min(len(spread), MAX_SPREAD), CHUNK)], built)
    guided.drafts = canonical(run.drafts)
    guided.unserved = _unserved(part, guided.drafts, run.reasons)
    stats["rins_total_s"] = time.perf_counter() - start
    guided.stats = stats
    if budget.deterministic:
        guided.room = PLANNED_SHARE * options.time_limit - PLANNED_SECONDS_PER_COLUMN * built - run.planned
    return guided


def _place_lp(
    view: TopologyView,
    lp: Relaxation,
    part: list[RequestView],
    outcome: LpOutcome,
    options: SolveOptions,
    budget: Budget,
    termination: list[str],
    stats: dict[str, float],
    ample: bool,
) -> tuple[list[GroupDraft], dict[tuple[str, str], Counter[int]], list[RequestView], bool, int | None]:
    """Drafts of the requests the LP places integrally plus the MIP's placement of the fractional ones;
    their load; the requests CP-SAT's phase A re-optimises; whether those have drafts to start from;
    where a MIP over every request and slot ran its served stage, the most GPUs of the top class any
    placement of ``part`` on this LP's capacity serves (that stage's dual bound, proven or not), else None.
    ``ample``: the limit is :data:`STAGED_FACTOR`
    times what the path needs (a MIP over every request, started from the best neighbourhood, may follow
    neighbourhoods that miss the bound)."""
    assert outcome.values is not None
    values, integral = outcome.values, _integral(lp, outcome.values)
    freed = [r for r in part if not integral.get(r.service.id, True)]
    placed_all, top_ub = False, None
    if freed:
        hood = _integral_neighbourhood(lp, outcome, {r.service.id for r in freed}, options, budget, termination, stats)
        if ample and (hood is None or not _meets_bounds(lp, outcome, hood.values)):
            # the kept requests may be what blocks: where the limit is ample, a MIP over every request
            ids = {r.service.id for r in part}
            first = hood.values if hood is not None else None
            every = _every_slot(lp, outcome, ids, options, budget.wall_share(MIP_SHARE), first)
            termination.append("mip-every-request:" + ("NONE" if every is None else "FEASIBLE"))
            if every is not None:
                top_ub = every.top_served_ub
            if every is not None and (hood is None or _key(lp, every.values) < _key(lp, hood.values)):
                hood = every
        if hood is not None:
            values, integral = hood.values, dict.fromkeys(integral, True)  # every request placed integrally
            placed_all = True
            if _meets_bounds(lp, outcome, hood.values):
                freed = []  # served and premium proven by the LP's bounds: nothing left for CP-SAT's phase A
    drafts, load = _fixed(view, lp, values, integral)
    return drafts, load, freed, placed_all, top_ub


# CP-SAT's chunks after the LP path (phase A, the fractional requests; phase B, group consolidation) are
# planned on size, so that the same chunks with the same deterministic time run every run: the call up to
# them counts PLANNED_SECONDS_PER_COLUMN per LP column the path built (the view and greedy included: they
# grow with the same instance) and its MIPs' planned work (relaxation._Work, from the checks they
# made); a chunk's model PLANNED_CHUNK_SECONDS_PER_CELL per pod cell of its requests, and the
# deterministic time its CP-SAT used at PLANNED_DTIME_PER_SECOND per wall second. A chunk is taken while
# the plan fits PLANNED_SHARE of time_limit, with its share of the deterministic time the rest allows.
# Taking chunks while the wall clock allowed gave a different count of new groups from run to run on 8 of
# production seeds 10-19 at 2 s (the last chunk's CP-SAT cut by the wall), and different plans on heavy
# production at 10 s (phase A's chunks cut anywhere once the MIPs had taken the wall).
# Measured at production on a slow 2-core machine (session 10): up to phase B 0.8-1.15 s for 26k-29k LP
# columns (one LP of every request), twice that where the class-by-class path follows it; a chunk's model
# about 0.1 s for 2k cells; CP-SAT 0.12-0.25 deterministic time per wall second. These costs are
# conservative (LP columns 1.7-3.2 times their wall, chunks about twice), so at 0.85 heavy calls at 10 s
# ended after 3.9-7.1 s; 0.95 gives the chunks after the MIPs (room chunks among them) and the class blocks
# after the path (Guided.room) the rest, and still repeats on 14 of 15 heavy seeds with both cores of the
# 2-core machine kept busy (decision 65).
PLANNED_SHARE = 0.95
# 4.5e-5 (session 10) counted production's MIPs (about 0.1 s of 26k columns) inside; they count on their own
# since decision 61
PLANNED_SECONDS_PER_COLUMN = 4.1e-5
PLANNED_CHUNK_SECONDS_PER_CELL = 5e-5


def _fractional(
    run: _Chunks, chunks: list[list[RequestView]], hint: Counts | None, columns: int, tag: str, after: int = 0
) -> None:
    """Phase A on ``chunks`` of fractional requests (their drafts, else ``hint``, start them) while the plan on
    size fits them (:func:`_plan`, after ``columns`` LP columns); the greedy places the chunks it does not fit.
    ``after``: chunks still to come after these, which share the wall time where it decides (portfolio)."""
    for k, chunk in enumerate(chunks):
        fits, dtime = _plan(run, chunks[k:], columns, _first_share(PHASE_A))
        if not fits:
            run.termination.append(f"{tag}:{k} of {len(chunks)} chunks planned")
        if not fits or not run.solve(chunk, hint, len(chunks) - k + after, PHASE_A, dtime):
            run.place_by_greedy([r for c in chunks[k:] for r in c])  # out of budget: never leave them out
            return


def _short_below_top(run: _Chunks, part: list[RequestView]) -> list[RequestView]:
    """The requests of ``part`` below its top class that ``run``'s drafts leave short and that have a slot,
    highest priority, then most GPUs short, first; at most :data:`MAX_ROOM_CHUNKS`."""
    top = max(r.service.priority for r in part)
    placed = units_of(run.drafts)
    short = [r for r in part if r.service.priority < top and placed[r.service.id] < r.delta and _slots(run, r)]
    short.sort(
        key=lambda r: (-r.service.priority, (placed[r.service.id] - r.delta) * r.service.gpus_per_unit, r.service.id)
    )
    return short[:MAX_ROOM_CHUNKS]


def _room_chunk(
    run: _Chunks, request: RequestView, part: dict[str, RequestView], held: dict[Cell, Counter[str]]
) -> list[RequestView]:
    """``request`` and the :data:`ROOM_PARTNERS` requests of higher classes in ``part`` (by service) that hold
    the most GPUs (``held``, :func:`_holdings`) in the cells of one of ``request``'s slots: the slot where they
    hold the most (a unit grows within one domain, so capacity freed across several helps less; the first
    such slot, and partners by service id, on ties)."""
    prio = request.service.priority
    best: list[str] = []
    most = -1
    for spec in _slots(run, request):
        theirs: Counter[str] = Counter()
        for cell in {(s1, gpu_type) for (_, s1, gpu_type), _ in spec.cells}:
            for service, gpus in held.get(cell, {}).items():
                if part[service].service.priority > prio:
                    theirs[service] += gpus
        holders = sorted(theirs, key=lambda s: (-theirs[s], s))[:ROOM_PARTNERS]
        if sum(theirs[s] for s in holders) > most:
            best, most = holders, sum(theirs[s] for s in holders)
    return [request, *(part[s] for s in best)]


def _holdings(run: _Chunks, part: dict[str, RequestView]) -> dict[Cell, Counter[str]]:
    """GPUs the drafts of ``part``'s requests (by service) hold, per cell (S1, GPU type) and service."""
    held: dict[Cell, Counter[str]] = {}
    for d in run.drafts:
        if d.service in part:
            svc = part[d.service].service
            for (role, s1, gpu_type), pods in d.counts.items():
                held.setdefault((s1, gpu_type), Counter())[d.service] += pods * svc.role(role).gpus_per_pod
    return held


def _slots(run: _Chunks, request: RequestView) -> list[OutSlotSpec]:
    """``request``'s slots in ``run``'s model (only in its candidate domains where that is restricted)."""
    domains = None if run.domains is None else run.domains.get(request.service.id, frozenset())
    return out_slot_specs(run.view, request, domains)


def _make_room(run: _Chunks, part: list[RequestView], columns: int, after: int = 0) -> None:
    """Re-place each short request of a lower class with the higher-class requests holding the capacity it
    could use (:func:`_room_chunk`, from the drafts as they stand at its turn), where the plan on size fits
    it (:func:`_plan`, after ``columns`` LP columns). ``after``: chunks still to come, which share the wall
    time where it decides (portfolio)."""
    targets = _short_below_top(run, part)
    by_service = {r.service.id: r for r in part}
    held = _holdings(run, by_service)
    planned = [_room_chunk(run, r, by_service, held) for r in targets]  # what the later chunks will be, as now
    ran = 0
    for k, request in enumerate(targets):  # (a partner is of a higher class: no chunk serves a later target)
        chunk = _room_chunk(run, request, by_service, _holdings(run, by_service)) if k else planned[0]
        fits, dtime = _plan(run, [chunk, *planned[k + 1 :]], columns, _first_share(PHASE_A))
        if not fits:
            break
        ran += run.solve(chunk, None, len(targets) - k + after, PHASE_A, dtime)
    if targets:
        run.termination.append(f"room:{ran} of {len(targets)} chunks")


#: Of time_limit, what the second start (:func:`_second_start`) may plan beyond :data:`PLANNED_SHARE`: phase A
#: keeps its whole share (held back from it, 0.1 cost phase A on heavy seeds 25 and 43 more than the second
#: start gained), and the second start runs only where a class below the top ended worse than the greedy's.
#: The plan on size is conservative (walls 2.8-6.7 s at 10 s on heavy seeds 0-44); the wall clock still
#: stops a chunk that would pass the limit.
SECOND_START_SHARE = 0.05
#: Rounds of room chunks from the second start, while a round serves more.
SECOND_START_ROUNDS = 2


def _second_start(run: _Chunks, part: list[RequestView], hint: Counts, columns: int) -> None:
    """Where the drafts leave a class below the top one more short than the greedy (``hint``) does, phase A
    again from a second start: the top class as placed, the classes below it placed by the greedy around
    it, then rounds of room chunks (:func:`_make_room`: each short request re-placed with the higher-class
    requests holding its capacity). Taken where it is lexicographically better (GPUs unserved per class,
    then premium). The class-by-class path places a class before the ones below it, on whatever capacity
    its own LP chooses among equally good placements: heavy seed 10 ended with class 10 26 GPUs more short
    than the greedy, and the second start, which lets the lower classes take capacity in the greedy's order
    and then moves the top class only where a room chunk proves it serves more, serves more of class 50
    and of class 10 there (decision 69)."""
    view = run.view
    mine = _draft_key(view, part, run.drafts)
    if not _worse_below_top(mine, _draft_key(view, part, hint.drafts)):  # phase A won the class back
        return
    top = max(r.service.priority for r in part)
    kept = [d for d in run.drafts if view.service_by_id[d.service].priority == top]
    lower = [r for r in part if r.service.priority != top]
    around = _greedy_around(view, lower, kept)
    if around is None:
        return
    drafts = [*kept, *_drafts_of(around, lower)]
    load: dict[tuple[str, str], Counter[int]] = {}
    add_load(view, drafts, load)
    ids = {r.service.id for r in lower}
    reasons = {s: why for s, why in run.reasons.items() if s not in ids} | {
        s: why for s, why in around.reasons.items() if s in ids
    }
    alt = _Chunks(
        view, run.options, run.budget, drafts, load, reasons, [], run.stats, run.domains, run.count, run.planned,
        PLANNED_SHARE + SECOND_START_SHARE,
    )
    key = _draft_key(view, part, alt.drafts)
    for _ in range(SECOND_START_ROUNDS):
        _make_room(alt, part, columns)
        before, key = key, _draft_key(view, part, alt.drafts)
        if key[:-1] >= before[:-1]:  # another round only where this one served more
            break
    run.count, run.planned = alt.count, alt.planned  # the chunks ran either way: the plan counts them
    better = key < mine
    run.stats["second_start_taken"] = float(better)
    run.termination.append(f"second-start[{' '.join(alt.termination)}]:" + ("BETTER" if better else "KEPT"))
    if better:
        run.drafts, run.load, run.reasons = alt.drafts, alt.load, alt.reasons


def _lower_class_worse(view: TopologyView, part: list[RequestView], drafts: list[GroupDraft], greedy: Counts) -> bool:
    """True when ``drafts`` leave a class below the top more GPUs short than the ``greedy``'s counts do."""
    return _worse_below_top(_draft_key(view, part, drafts), _draft_key(view, part, greedy.drafts))


def _worse_below_top(mine: tuple[int, ...], theirs: tuple[int, ...]) -> bool:
    """Whether draft key ``mine`` (:func:`_draft_key`) has a class below the top more short than ``theirs``."""
    return any(a > b for a, b in zip(mine[1:-1], theirs[1:-1], strict=True))


def _consolidate(run: _Chunks, chunks: list[list[RequestView]], columns: int) -> None:
    """Phase B: each of ``chunks`` re-placed for fewer new groups (served and premium kept) where the plan on
    size fits it (:func:`_plan`, after ``columns`` LP columns); one that does not fit leaves its share to the
    later ones, which may need less. The termination says how many ran where not all did."""
    ran = 0
    for k, chunk in enumerate(chunks):
        fits, dtime = _plan(run, chunks[k:], columns, _first_share(PHASE_B))
        if fits:
            ran += run.solve(chunk, None, len(chunks) - k, PHASE_B, dtime)
    if ran < len(chunks):
        run.termination.append(f"consolidation:{ran} of {len(chunks)} chunks planned")


def _plan(run: _Chunks, chunks: list[list[RequestView]], columns: int, share: float) -> tuple[bool, float | None]:
    """Whether the plan on size fits the first of ``chunks`` (those still to go) in ``run.share`` of the
    time limit, after the LP path (``columns`` LP columns built) and what ``run`` has planned so far (its
    MIPs' work, the chunks' builds and the deterministic time they used: each known exactly, so the plan is
    the same every run); and the deterministic time it may take: its floor plus an even share, among the
    chunks whose builds and floors fit, of what the plan leaves after them. A chunk's floor is the
    deterministic time at which its first stage, taking ``share`` of it, runs (:func:`first_stage_dtime`):
    a chunk planned with less would be built only to skip its stages. Deterministic mode only: otherwise
    every chunk fits, with no planned time (the wall clock decides)."""
    if not run.budget.deterministic:  # the parallel portfolio has no deterministic time to plan: the wall decides
        return True, None
    room = run.share * run.options.time_limit - PLANNED_SECONDS_PER_COLUMN * columns - run.planned
    builds, floors, fit, first = 0.0, 0.0, 0, 0.0
    for chunk in chunks:
        build_s = PLANNED_CHUNK_SECONDS_PER_CELL * run.estimate(chunk)
        floor_s = first_stage_dtime(model_variables(run.view, chunk, run.domains), share) / PLANNED_DTIME_PER_SECOND
        if builds + build_s + floors + floor_s > room:
            break
        first = first or floor_s
        builds += build_s
        floors += floor_s
        fit += 1
    if fit == 0:
        return False, None
    return True, (first + (room - builds - floors) / fit) * PLANNED_DTIME_PER_SECOND


def _top_class_short(
    view: TopologyView, part: list[RequestView], hint: Counts | None, budget: Budget, iterations: int
) -> tuple[Relaxation | None, int]:
    """The top class's LP when the greedy (``hint``) leaves that class short and even fractionally it cannot
    be served in full: then neither can every request, and the LP of them all (its build and infeasible
    solve took 0.5-0.8 s of a 2-s call on production seeds 18 and 19) is not needed. None otherwise, and
    where there is one class only (its LP is the LP of them all). An LP whose pod sizes are outside a
    chain is returned as it is (``relaxed``: the LP path does not apply). Also the columns of an LP built and
    not returned (the plan on size counts them)."""
    classes = sorted({r.service.priority for r in part}, reverse=True)
    if hint is None or len(classes) < 2:
        return None, 0
    reqs = [r for r in part if r.service.priority == classes[0]]
    if not _short(hint, reqs):
        return None, 0
    lp = build_relaxation(view, reqs)
    if lp.relaxed or solve_full_service(lp, budget, max(1, iterations // len(classes))) is None:
        return lp, 0
    return None, lp.num_cols


def _short(counts: Counts, reqs: list[RequestView]) -> bool:
    """True when ``counts`` leave one of ``reqs`` short of its delta."""
    placed = counts.units_by_service()
    return any(placed.get(r.service.id, 0) < r.delta for r in reqs)


def _class_by_class(
    view: TopologyView,
    part: list[RequestView],
    options: SolveOptions,
    budget: Budget,
    termination: list[str],
    stats: dict[str, float],
    top: Relaxation | None = None,
    hint: Counts | None = None,
) -> tuple[LpOutcome, list[GroupDraft], dict[tuple[str, str], Counter[int]], list[RequestView]] | None:
    """The LP path one priority class at a time, each on what the classes above it placed.

    Exact for the top class (lower classes can always place nothing, so its LP alone bounds it and
    its MIP may reach that bound); each lower class is placed as well as its own LP allows around
    them. The outcome bounds only the top class. None when the top class's LP is not solved in time, or
    pod sizes leave a chain. ``top``: the top class's LP, known not to serve it in full
    (:func:`_top_class_short`); ``hint``: the greedy's counts (a class it leaves short skips the LP that
    serves the class in full).
    """
    classes = sorted({r.service.priority for r in part}, reverse=True)
    drafts: list[GroupDraft] = []
    load: dict[tuple[str, str], Counter[int]] = {}
    freed: list[RequestView] = []
    bounds = LpOutcome()
    for k, prio in enumerate(classes):
        start = time.perf_counter()
        reqs = [r for r in part if r.service.priority == prio]
        # the iteration limit (a share of the path's, independent of load) decides; the wall is only a net,
        # so a class's LP is not cut short on a slow or busy machine (a share of the wall per class cut the
        # top class's premium stage, or a lower class's LP at 0 iterations, and changed the plan run to run)
        lp_budget = budget.wall_share(LP_SHARE, now=start)
        iterations = max(1, int(LP_ITERATIONS_PER_SECOND * options.time_limit / len(classes)))
        lp = top if k == 0 and top is not None else build_relaxation(view, reqs, load)
        if lp.relaxed:  # pod sizes outside a chain with what the classes above placed
            stats["lp_not_a_chain"] = 1.0
            return None
        stats["lp_cols"] = stats.get("lp_cols", 0.0) + float(lp.num_cols)
        # the LP serving the class in full is tried first only where it may succeed: not for the top class
        # known short, nor where the greedy leaves the class short (then the staged LP: most served, premium)
        skip = (k == 0 and top is not None) or (k > 0 and hint is not None and _short(hint, reqs))
        if skip:
            stats[f"lp_class{prio}_full_service_skipped"] = 1.0
        outcome = (None if skip else solve_full_service(lp, lp_budget, iterations)) or solve_relaxation(
            lp, lp_budget, stop_before="groups", iteration_limit=iterations
        )
        stats.update({f"lp_class{prio}_{key.removeprefix('lp_')}": v for key, v in outcome.stats.items()})
        stats[f"lp_class{prio}_total_s"] = time.perf_counter() - start
        if outcome.values is None or prio not in outcome.served_ub:
            if k == 0:
                stats["lp_not_solved_in_time"] = 1.0
                return None
            freed.extend(r for p in classes[k:] for r in part if r.service.priority == p)  # placed by CP-SAT/greedy
            termination.append(f"lp-class{prio}:NOT_SOLVED")
            break
        if k == 0:
            bounds.served_ub[prio] = outcome.served_ub[prio]
        tagged: list[str] = []
        # this class's MIPs get its share of the wall time left, so the classes below still get theirs;
        # the top class, first in the objective and the one whose optimum a MIP can prove, may get more
        share = max(TOP_CLASS_SHARE, 1.0 / len(classes)) if k == 0 else 1.0 / (len(classes) - k)
        mine = budget.split(share)
        ample = options.time_limit >= STAGED_FACTOR * LP_SECONDS_PER_CELL * view.candidate_cells(reqs)
        class_drafts, class_load, class_freed, _, top_ub = _place_lp(
            view, lp, reqs, outcome, options, mine, tagged, stats, ample
        )
        if k == 0 and top_ub is not None:  # a MIP over the whole class bounds the most it serves
            bounds.served_ub[prio] = min(bounds.served_ub[prio], top_ub)
        elif k == 0 and _served(view, class_drafts) < outcome.served_ub[prio] and not ample:
            # the top class short of its bound: a MIP over all its requests and slots (exact for this
            # class, which lower classes cannot take capacity from), within a share of the time left
            wide = _whole_class(view, lp, reqs, outcome, options, mine, tagged, stats)
            if wide is not None and wide[3] is not None:  # over the whole class, which nothing else constrains
                bounds.served_ub[prio] = min(bounds.served_ub[prio], wide[3])
            if wide is not None:  # taken where it serves more, or as much and leaves none short
                theirs, ours = _served(view, wide[0]), _served(view, class_drafts)
                if theirs > ours or (theirs == ours and not wide[2]):
                    class_drafts, class_load, class_freed = wide[:3]
        unplaced = [r for r in class_freed if not any(d.service == r.service.id for d in class_drafts)]
        if unplaced:  # nothing placed them: the greedy does, before lower classes take the capacity
            extra = _greedy_around(view, unplaced, [*drafts, *class_drafts])
            if extra is not None:
                added = _drafts_of(extra, unplaced)
                class_drafts = [*class_drafts, *added]
                add_load(view, added, class_load)
        termination.extend(f"class{prio}:{t}" for t in tagged)
        drafts.extend(class_drafts)
        freed.extend(class_freed)
        for key, counts in class_load.items():
            load.setdefault(key, Counter()).update(counts)
    return bounds, drafts, load, freed


# Where the limit is this many times what the LP path needs by its size rule, the class-by-class path
# is compared with the staged LP over all classes and its MIP (which may serve a lower class more
# by placing a higher one differently); heavy production at 10 s is below it (the staged LP alone takes
# 2-3 s of CPU there), small instances are far above it.
STAGED_FACTOR = 4.0


def _staged_alternative(
    view: TopologyView,
    lp: Relaxation,
    part: list[RequestView],
    cbc: LpOutcome,
    options: SolveOptions,
    budget: Budget,
    stats: dict[str, float],
) -> tuple[LpOutcome, list[GroupDraft], dict[tuple[str, str], Counter[int]], list[RequestView]] | None:
    """The staged LP over all classes (served class by class, then premium) and its lexicographic MIP;
    its outcome carries the lexicographically larger of its bounds and the class-by-class path's
    ``cbc`` (both valid). None where it is not solved in time."""
    start = time.perf_counter()
    iterations = max(1, int(LP_ITERATIONS_PER_SECOND * options.time_limit))
    outcome = solve_relaxation(lp, budget.wall_share(LP_SHARE, now=start), "groups", iterations)
    stats["lp_staged_s"] = time.perf_counter() - start
    if outcome.values is None or len(outcome.served_ub) < len(lp.served):
        return None
    tagged: list[str] = []
    drafts, load, freed, _, _ = _place_lp(view, lp, part, outcome, options, budget, tagged, stats, True)
    wanted = wanted_gpus(lp)
    classes = list(lp.served)
    mine = tuple(wanted[p] - outcome.served_ub.get(p, wanted[p]) for p in classes)
    theirs = tuple(wanted[p] - cbc.served_ub.get(p, wanted[p]) for p in classes)
    if theirs > mine:  # the top class proven tighter by the class-by-class path: its bounds, not these
        outcome = LpOutcome(served_ub=dict(cbc.served_ub))
    return outcome, drafts, load, freed


def _draft_key(view: TopologyView, part: list[RequestView], drafts: list[GroupDraft]) -> tuple[int, ...]:
    """GPUs unserved per class (highest first), then premium, of the additions ``drafts``."""
    placed: Counter[str] = Counter()
    premium = 0
    for d in drafts:
        placed[d.service] += d.units
        svc = view.service_by_id[d.service]
        for (role, s1, gpu_type), n in d.counts.items():
            premium += n * svc.role(role).gpus_per_pod * gpu_cost(view, d.service, role, s1, gpu_type)
    unserved: Counter[int] = Counter()
    for r in part:
        unserved[r.service.priority] += (r.delta - min(placed[r.service.id], r.delta)) * r.service.gpus_per_unit
    return (*(unserved[p] for p in sorted(unserved, reverse=True)), premium)


def _settled(
    view: TopologyView, part: list[RequestView], outcome: LpOutcome, drafts: list[GroupDraft]
) -> dict[int, int] | None:
    """GPUs served per class when the additions ``drafts`` serve the lexicographic optimum's: the top class
    at its proven bound (``outcome``) and every class below it in full (then, given the top class, each
    lower class's optimum is all it asks for). None otherwise."""
    placed = units_of(drafts)
    served: dict[int, int] = {}
    wanted: dict[int, int] = {}
    for r in part:
        p, gpus = r.service.priority, r.service.gpus_per_unit
        served[p] = served.get(p, 0) + min(placed[r.service.id], r.delta) * gpus
        wanted[p] = wanted.get(p, 0) + r.delta * gpus
    top = max(served)
    if served[top] != outcome.served_ub.get(top) or any(served[p] != wanted[p] for p in served if p != top):
        return None
    return served


def _served(view: TopologyView, drafts: list[GroupDraft]) -> int:
    """GPUs the additions ``drafts`` serve."""
    return sum(d.units * view.service_by_id[d.service].gpus_per_unit for d in drafts if d.units > 0)


def _every_slot(
    lp: Relaxation,
    outcome: LpOutcome,
    ids: set[str],
    options: SolveOptions,
    budget: Budget,
    incumbent: np.ndarray | None = None,
) -> Neighbourhood | None:
    """The requests ``ids`` placed by a MIP over every one of their slots (most GPUs served per class,
    then premium), the others kept at the LP's values; from ``incumbent`` where given."""
    assert outcome.values is not None
    nodes = max(1, int(MIP_NODES_PER_SECOND * options.time_limit))
    everything = np.zeros(lp.num_cols)  # every slot's next unit "has reduced cost 0": all slots free
    return solve_freed(lp, outcome.values, ids, budget, nodes, everything, False, incumbent)


def _whole_class(
    view: TopologyView,
    lp: Relaxation,
    reqs: list[RequestView],
    outcome: LpOutcome,
    options: SolveOptions,
    budget: Budget,
    termination: list[str],
    stats: dict[str, float],
) -> tuple[list[GroupDraft], dict[tuple[str, str], Counter[int]], list[RequestView], int | None] | None:
    """One class's requests placed by a MIP over all their slots (the most GPUs served, then premium);
    None without a solution in time. Requests it leaves short go on to CP-SAT's phase A unless it is
    proven (then none are returned); last, the most GPUs the class can serve by its served stage's dual
    bound (a bound on the class; None where that stage left none)."""
    ids = {r.service.id for r in reqs}
    hood = _every_slot(lp, outcome, ids, options, budget.wall_share(WHOLE_CLASS_SHARE))
    termination.append("mip-whole-class:" + ("NONE" if hood is None else "OPTIMAL" if hood.proven else "FEASIBLE"))
    if hood is None:
        return None
    stats.update({f"lp_mip_whole_class_{k}": v for k, v in hood.stats.items()})
    drafts, load = _fixed(view, lp, hood.values, dict.fromkeys(ids, True))
    placed = units_of(drafts)
    short = [] if hood.proven else [r for r in reqs if placed[r.service.id] < r.delta]
    return drafts, load, short, hood.top_served_ub


@dataclass
class _Chunks:
    """Re-optimises chunks of requests with CP-SAT around the drafts placed so far (updated in place)."""

    view: TopologyView
    options: SolveOptions
    budget: Budget
    drafts: list[GroupDraft]
    load: dict[tuple[str, str], Counter[int]]
    reasons: dict[str, str]  # why a request is not served in full, by service (CP-SAT's or the greedy's)
    termination: list[str]
    stats: dict[str, float]
    domains: dict[str, frozenset[str]] | None = None  # the restricted model's candidate domains
    count: int = 0
    planned: float = 0.0  # seconds the plan on size counts for the MIPs and the chunks taken so far (:func:`_plan`)
    share: float = PLANNED_SHARE  # of time_limit, what the plan on size may fill up to with this run's chunks

    def place_by_greedy(self, requests: list[RequestView]) -> None:
        """Place ``requests`` by the greedy around the drafts placed so far (no CP-SAT time left); those
        already placed (by the MIP) stay as they are."""
        placed = {d.service for d in self.drafts}
        requests = [r for r in requests if r.service.id not in placed]
        if not requests:
            return
        counts = _greedy_around(self.view, requests, self.drafts)
        if counts is None:
            return
        ids = {r.service.id for r in requests}
        added = _drafts_of(counts, requests)
        self.drafts.extend(added)
        add_load(self.view, added, self.load)
        self.reasons = {s: why for s, why in self.reasons.items() if s not in ids}
        self.reasons.update({s: why for s, why in counts.reasons.items() if s in ids})
        self.termination.append(f"greedy[{len(requests)} requests]")

    def estimate(self, chunk: list[RequestView]) -> int:
        """Pod cells of ``chunk``'s model (in the candidate domains of a restricted model)."""
        if self.domains is None:
            return self.view.candidate_cells(chunk)
        return sum(len(spec.cells) for r in chunk for spec in _slots(self, r))

    def solve(
        self,
        chunk: list[RequestView],
        hint_counts: Counts | None,
        left: int,
        skip: frozenset[str],
        dtime: float | None = None,
    ) -> bool:
        """Re-place ``chunk`` (its drafts, if any, are the hint); False when the budget is spent. ``dtime``: the
        deterministic time it may take (the plan on size, :func:`_plan`), else its share (``1 / left``) of what
        is left. The plan counts its model's build and the deterministic time it used (:attr:`planned`)."""
        view, ids = self.view, {r.service.id for r in chunk}
        estimate = self.estimate(chunk)
        part = self.budget.part(1.0 / left)
        if dtime is not None:
            part = Budget(part.deadline, min(self.budget.dtime, dtime), part.deterministic, self.budget)
        # a model built only to skip its first stage wastes its build (0.1-0.2 s at production; heavy seed 7
        # built seven phase-A chunks whose stages all skipped): that stage's share of the chunk's dtime
        if self.budget.deterministic and part.dtime < first_stage_dtime(
            model_variables(view, chunk, self.domains), _first_share(skip)
        ):
            self.termination.append(f"rins{self.count}:SKIPPED(budget)")
            return False
        if self.budget.left() < CHUNK_SECONDS_PER_CELL * estimate:
            self.termination.append(f"rins{self.count}:SKIPPED(deadline)")
            return False
        own = [d for d in self.drafts if d.service in ids]
        self.drafts = [d for d in self.drafts if d.service not in ids]
        add_load(view, own, self.load, -1)
        pm = build(view, chunk, self.load, self.domains)
        self.planned += PLANNED_CHUNK_SECONDS_PER_CELL * estimate
        hint = _draft_values(pm, own) if own else _hint(pm, hint_counts, chunk)
        if hint is None and own:  # the model cannot express the placement: keep it
            self.drafts.extend(own)
            add_load(view, own, self.load)
            return True
        if hint is None:  # earlier chunks moved: place this one by the greedy around them
            hint = _hint(pm, _greedy_around(view, chunk, self.drafts), chunk) or [0] * len(pm.variables)
        staged = StagedSolver(pm, hint, self.options, part, single=True).run(skip=skip)
        if part.deterministic:  # what it used, as CP-SAT counts it (stage floors included): the same every run
            self.planned += used_dtime(staged.stats) / PLANNED_DTIME_PER_SECOND
        new_drafts, missing = extract(pm, staged.values)
        self.drafts.extend(new_drafts)
        self.reasons = {s: why for s, why in self.reasons.items() if s not in ids} | reasons_of(missing)
        add_load(view, new_drafts, self.load)
        tag = f"rins{self.count}"
        self.termination.append(f"{tag}[" + " ".join(staged.termination) + "]")
        self.stats.update({f"{tag}_{key}": v for key, v in staged.stats.items()})
        self.stats[f"{tag}_vars"] = float(len(pm.variables))
        self.count += 1
        return True


def _unserved(part: list[RequestView], drafts: list[GroupDraft], why: dict[str, str]) -> list[Unserved]:
    """One record per request of ``part`` the drafts do not fully serve (reasons recorded by CP-SAT or the
    greedy kept; the requests the LP placed as they stand get the LP's)."""
    placed = units_of(drafts)
    out = []
    for r in part:
        got = placed[r.service.id]
        if got != r.delta:
            reason = why.get(r.service.id) or (
                f"LP-guided: no capacity for {r.delta - got} more units within {r.service.affinity} affinity"
            )
            out.append(Unserved(service=r.service.id, wanted_units=r.delta, placed_units=got, reason=reason))
    return out


def _no_worse_than_greedy(
    view: TopologyView,
    part: list[RequestView],
    freed: list[RequestView],
    drafts: list[GroupDraft],
    load: dict[tuple[str, str], Counter[int]],
    termination: list[str],
) -> tuple[list[GroupDraft], dict[tuple[str, str], Counter[int]]]:
    """``drafts`` (every request of ``part``), or, where the greedy places the ``freed`` requests around the
    others better (GPUs unserved per class, then premium), those with the greedy's placement of them. A MIP
    stopped by its planned work may hold a poor incumbent (heavy seed 7: 438 top-class GPUs unserved against
    the greedy's 45), and CP-SAT's chunks only improve on where they start."""
    ids = {r.service.id for r in freed}
    kept = [d for d in drafts if d.service not in ids]
    around = _greedy_around(view, freed, kept)
    if around is None:
        return drafts, load
    other = [*kept, *_drafts_of(around, freed)]
    if _draft_key(view, part, other) >= _draft_key(view, part, drafts):
        return drafts, load
    termination.append("greedy-around:BETTER")
    other_load: dict[tuple[str, str], Counter[int]] = {}
    add_load(view, other, other_load)
    return other, other_load


def _greedy_around(view: TopologyView, requests: list[RequestView], placed: list[GroupDraft]) -> Counts | None:
    """The greedy's counts of ``requests`` (by service, then group) on what the ``placed`` drafts leave; None
    if those do not bind. The greedy allocates nodes, so ``placed`` is bound here: node binding needed."""
    try:
        taken = gpus_taken(view, bind(view, placed))
    except BindingError:
        return None
    counts = greedy_counts(view.with_taken(taken) if taken else view, requests)
    return Counts(canonical(counts.drafts), counts.reasons)


def _drafts_of(counts: Counts, requests: list[RequestView]) -> list[GroupDraft]:
    """The drafts of ``counts`` that add units to ``requests``."""
    ids = {r.service.id for r in requests}
    return [d for d in counts.drafts if d.service in ids and d.units > 0]


def _hint(pm: PlacementModel, counts: Counts | None, chunk: list[RequestView]) -> list[int] | None:
    """``counts``' placement of ``chunk`` as a complete assignment of ``pm``, if it satisfies every row."""
    if counts is None:
        return None
    try:
        values = count_values(pm, restrict(counts, chunk).drafts)
    except HintError:
        return None
    return values if all(row.slack(values) >= 0 for row in pm.rows) else None


def _integral(lp: Relaxation, x: np.ndarray) -> dict[str, bool]:
    """Per service with a slot: True when the LP places it integrally within its new-group limit."""
    out: dict[str, bool] = {}
    opened: Counter[str] = Counter()
    fractional = (np.abs(x - np.round(x)) > TOL).tolist()  # one pass over the columns, then plain lookups
    units: Counter[str] = Counter()
    for cols in lp.slots:
        sid = cols.spec.request.service.id
        ok = not (
            fractional[cols.units]
            or any(fractional[c] for c in cols.cells.values())
            or any(fractional[c] for c in cols.replicas.values())
        )
        out[sid] = out.get(sid, True) and ok
        if cols.spec.new and x[cols.units] > 0.5:
            opened[sid] += 1
        units[sid] += round(float(x[cols.units]))
    for cols in lp.slots:
        req = cols.spec.request
        if opened[req.service.id] > req.service.max_new_groups:  # fractional switches open more groups
            out[req.service.id] = False
        if req.all_or_nothing and units[req.service.id] not in (0, req.delta):  # the LP row is only <= delta
            out[req.service.id] = False
    return out


def _draft_values(pm: PlacementModel, drafts: list[GroupDraft]) -> list[int] | None:
    """``drafts`` (additions) as a complete assignment of ``pm``; None if one has no slot there."""
    values = [0] * len(pm.variables)
    slots = {(o.request.service.id, o.domain if o.new else o.group): o for o in pm.outs}
    for d in drafts:
        slot = slots.get((d.service, d.domain if d.new else d.group))
        if slot is None or any(key not in slot.pods for key in d.counts):
            return None
        values[slot.units.index] = d.units
        if slot.open is not None:
            values[slot.open.index] = 1
        for key, n in d.counts.items():
            values[slot.pods[key].index] = n
        ratio = slot.request.service.attn_ffn_ratio
        if ratio is not None:
            for s1, var in slot.replicas.items():
                attn = sum(n for (r, s, _), n in d.counts.items() if r == "prefill-attn" and s == s1)
                values[var.index] = attn // ratio.prefill
    return values if all(row.slack(values) >= 0 for row in pm.rows) else None


def _integral_neighbourhood(
    lp: Relaxation,
    outcome: LpOutcome,
    freed: set[str],
    options: SolveOptions,
    budget: Budget,
    termination: list[str],
    stats: dict[str, float],
) -> Neighbourhood | None:
    """The freed requests placed by the MIP on the LP's support, else (everything fits) on its support and
    alternative optima (a few thousand columns, about 0.5 s); the best found, or None. Stops at the first
    that meets the LP's bounds."""
    assert outcome.values is not None
    best: Neighbourhood | None = None
    full = outcome.full_service
    tiers: list[tuple[str, np.ndarray | None, bool]] = [("support", None, full)]
    if full:  # then the alternative optima; if neither serves everything, the most each can serve
        tiers += [("alternatives", outcome.reduced, True), ("support-most", None, False)]
        tiers += [("alternatives-most", outcome.reduced, False)]
    served_all = False
    for tier, reduced, serve_all in tiers:
        if served_all and not serve_all:
            break  # a full-service placement was found: serving less is never better
        if tier == "alternatives-most" and best is not None:
            break  # CP-SAT's chunks improve a placement in less time than this MIP over ~3x the columns takes
        nodes = max(1, int(MIP_NODES_PER_SECOND * options.time_limit))
        hood = solve_freed(lp, outcome.values, freed, budget.wall_share(MIP_SHARE), nodes, reduced, serve_all)
        meets = hood is not None and _meets_bounds(lp, outcome, hood.values)
        termination.append(f"mip-{tier}:" + ("NONE" if hood is None else "AT_BOUND" if meets else "FEASIBLE"))
        if hood is not None:
            served_all = served_all or serve_all
            stats.update({f"lp_mip_{tier}_{k}": v for k, v in hood.stats.items()})
            if best is None or _key(lp, hood.values) < _key(lp, best.values):
                best = hood
            if meets:
                break
    return best


def _key(lp: Relaxation, x: np.ndarray) -> tuple[int, ...]:
    """Lexicographic objective of integral LP columns ``x``: GPUs unserved per class (highest first), premium."""
    wanted = wanted_gpus(lp)
    served = [round(float(lp.cost_vector(("served", p)) @ x)) for p in lp.served]
    return (*(wanted[p] - s for p, s in zip(lp.served, served, strict=True)), _premium(lp, x))


def _meets_bounds(lp: Relaxation, outcome: LpOutcome, x: np.ndarray) -> bool:
    """True when integral ``x`` serves each class as much as the LP bound allows at the premium bound."""
    wanted = wanted_gpus(lp)
    bound = (*(wanted[p] - outcome.served_ub.get(p, wanted[p]) for p in lp.served), outcome.premium_lb)
    return _key(lp, x) == bound


def _premium(lp: Relaxation, x: np.ndarray) -> int:
    """Premium cost of the (integral) LP columns ``x``."""
    return round(float(lp.cost_vector(("premium", 0)) @ x))


def _fixed(
    view: TopologyView, lp: Relaxation, x: np.ndarray, integral: dict[str, bool]
) -> tuple[list[GroupDraft], dict[tuple[str, str], Counter[int]]]:
    """Drafts of the slots of integrally placed requests, and the pods they place per (S1, type)."""
    drafts: list[GroupDraft] = []
    for cols in lp.slots:
        spec = cols.spec
        svc = spec.request.service
        units = round(float(x[cols.units]))
        if not integral.get(svc.id, False) or units <= 0:
            continue
        draft = GroupDraft(svc.id, spec.group, spec.new, spec.domain, units)
        for key, col in sorted(cols.cells.items()):
            n = round(float(x[col]))
            if n > 0:
                draft.counts[key] = n
        drafts.append(draft)
    load: dict[tuple[str, str], Counter[int]] = {}
    add_load(view, drafts, load)
    return drafts, load
