"""Class blocks: improve counts one priority class at a time, the other classes held fixed.

For instances whose full model does not fit the time limit. Each block is a model of one
priority class on the capacity the other classes' counts leave (their pods enter the packing rows
as constants, :func:`~.plans.load_of`: no node is named), solved in stages from the incumbent
(served, premium, groups); the block's new counts replace its old ones. Every step is monotone in
the lexicographic objective: the class serves no less, the other classes are unchanged, so premium
cost and groups can only fall. Blocks run in priority order while their estimated cost fits
:data:`BLOCK_SHARE` of the time limit, a rule on model size, so the blocks taken do not depend on
machine load.

Where pod sizes do not form a divisibility chain, counts that fit the packing rows may not bind to
nodes, and only node rows on a bound residual capacity make the block's counts bind: there (only) the
other classes' counts are bound and the block is modelled on what they leave, as before counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hetero_opt.placement.backend import Budget, SolveOptions
from hetero_opt.placement.binding import BindingError, Counts, bind
from hetero_opt.placement.cpsat.model import PlacementModel, build
from hetero_opt.placement.cpsat.plans import (
    Ranking,
    all_chains,
    canonical,
    count_values,
    estimated_vars,
    extract,
    load_of,
    model_variables,
    reasons_of,
    residual_view,
    restrict,
)
from hetero_opt.placement.cpsat.stages import (
    BUILD_SECONDS_PER_VAR,
    PLANNED_DTIME_PER_SECOND,
    StagedSolver,
    has_time_to_build,
    used_dtime,
    within_plan,
)
from hetero_opt.topology import RequestView, TopologyView

SECONDS_PER_VAR = 1e-4  # build, presolve and a useful search, per model variable, on this machine
BLOCK_SHARE = 0.5  # of the time limit that blocks may take, by their estimated cost
FIRST_BLOCK_SHARE = 0.5  # at least this share of the budget for the first block (the first-stage proof)
MAX_ROUNDS = 2  # passes over the classes (a second pass sees the others' improved placements)


@dataclass
class BlockRun:
    """What the blocks did: the improved counts of the part and a record per block."""

    counts: Counts
    termination: list[str] = field(default_factory=list)
    stats: dict[str, float] = field(default_factory=dict)
    room: float | None = None  # seconds the plan on size leaves after the blocks (None: no plan)


def planned_blocks(
    view: TopologyView, part: list[RequestView], time_limit: float
) -> list[tuple[list[RequestView], int]]:
    """The class blocks to run, highest priority first, in up to :data:`MAX_ROUNDS` rounds.

    The first block always runs; the next ones while their estimated cost still fits
    :data:`BLOCK_SHARE` of ``time_limit``. Each block comes with its model's estimated size.
    """
    classes = sorted({r.service.priority for r in part}, reverse=True)
    by_class = {p: [r for r in part if r.service.priority == p] for p in classes}
    size = {p: estimated_vars(view, by_class[p]) for p in classes}
    blocks: list[tuple[list[RequestView], int]] = []
    spent = 0.0
    for _ in range(MAX_ROUNDS if len(classes) > 1 else 1):
        for prio in classes:
            cost = SECONDS_PER_VAR * size[prio]
            if blocks and spent + cost > BLOCK_SHARE * time_limit:
                return blocks
            spent += cost
            blocks.append((by_class[prio], size[prio]))
    return blocks


def improve_by_class(
    view: TopologyView,
    part: list[RequestView],
    incumbent: Counts,
    options: SolveOptions,
    budget: Budget,
    room: float | None = None,
) -> BlockRun:
    """Improve ``incumbent`` (counts of ``part`` only) block by block; never returns worse counts (terms 1-4,
    then whole free nodes as ``solve()`` will bind them). ``room``: seconds the plan on size leaves (after
    the LP path, deterministic mode): a block is built only where the plan fits its build and the least
    deterministic time its first stage needs (:func:`first_stage_dtime`), and its CP-SAT gets at most the
    deterministic time the rest of the plan allows, so the blocks that run, and how far, do not depend on the
    wall clock (heavy production at 10 s: a block built in one run and skipped for the deadline in the next
    gave another plan)."""
    run = BlockRun(counts=incumbent, room=room)
    ranking = Ranking(view)
    chains = all_chains(view)
    blocks = planned_blocks(view, part, options.time_limit)
    sizes = [size for _, size in blocks]
    seen: dict[int, int] = {}
    for k, (block, size) in enumerate(blocks):
        prio = block[0].service.priority
        seen[prio] = seen.get(prio, 0) + 1
        tag = f"class{prio}" if seen[prio] == 1 else f"class{prio}#{seen[prio]}"
        variables = model_variables(view, block, None)  # what the plan counts (``size`` is an estimate)
        if within_plan(budget, room, variables) is None:
            run.termination.append(f"{tag}[SKIPPED(plan: {room:.2f} s left for {variables} variables)]")
            break
        if not has_time_to_build(budget, size):
            run.termination.append(f"{tag}[SKIPPED(deadline: no time to build {size} variables)]")
            break
        ids = {r.service.id for r in block}
        kept = restrict(run.counts, [r for r in part if r.service.id not in ids])
        pm = _block_model(view, block, kept, chains)
        if pm is None:
            run.termination.append(f"{tag}[binding failed; kept]")
            continue
        share = sizes[k] / max(1, sum(sizes[k:]))  # budget shares follow model sizes ...
        if k == 0:
            share = max(share, FIRST_BLOCK_SHARE)  # ... but the top class's block proves the first stage
        block_budget = within_plan(budget.part(share), room, variables)
        assert block_budget is not None  # the plan fitted it above
        staged = StagedSolver(pm, count_values(pm, run.counts.drafts), options, block_budget).run()
        if room is not None:  # its build and what its CP-SAT used (stage floors included), as CP-SAT counts it
            room -= BUILD_SECONDS_PER_VAR * variables + used_dtime(staged.stats) / PLANNED_DTIME_PER_SECOND
            run.room = room
        drafts, unserved = extract(pm, staged.values)
        if not chains:  # node rows on the residual capacity: the block's counts bind around the others'
            try:
                bind(pm.view, canonical(drafts))
            except BindingError:
                run.termination.append(f"{tag}[binding failed; kept]")
                continue
        candidate = Counts(canonical([*kept.drafts, *drafts]), {**kept.reasons, **reasons_of(unserved)})
        run.termination.append(f"{tag}[" + " ".join(staged.termination) + "]")
        run.stats.update({f"{tag}_{key}": v for key, v in staged.stats.items()})
        run.stats[f"{tag}_vars"] = float(len(pm.variables))
        if ranking.compare(candidate, run.counts) <= 0:
            run.counts = candidate
    return run


def _block_model(view: TopologyView, block: list[RequestView], kept: Counts, chains: bool) -> PlacementModel | None:
    """The model of ``block`` on what ``kept`` leaves: its pods as constants of the packing rows where pod
    sizes form a chain; otherwise on the residual capacity of ``kept`` bound to nodes (None if it does not
    bind)."""
    if chains:
        return build(view, block, load_of(view, kept.drafts))
    try:
        return build(residual_view(view, bind(view, canonical(kept.drafts))), block)
    except BindingError:
        return None
