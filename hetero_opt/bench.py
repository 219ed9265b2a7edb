"""Benchmark runner: every solver on every instance of a suite, one table, one CSV, one plot.

A suite is a generator family plus a list of seeds (:data:`SUITES`). :func:`run_suite` generates
each instance once, solves it with every solver, verifies every plan, and returns one row per
(instance, solver). Columns are described in ``docs/benchmarks.md``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from rich import box
from rich.console import Console, JustifyMethod
from rich.table import Table

from hetero_opt.batch.executor import Executor, InProcessExecutor, Outcome
from hetero_opt.batch.manifest import Entry, Manifest, library_versions
from hetero_opt.batch.resume import Job, run_jobs
from hetero_opt.batch.solve_batch import warm_up
from hetero_opt.batch.sweep import SweepError
from hetero_opt.errors import InputError
from hetero_opt.generate import FAMILIES, generate_instance
from hetero_opt.instance import Instance, node_column
from hetero_opt.placement.objective import Score
from hetero_opt.placement.result import PlacementResult
from hetero_opt.placement.solve import SOLVERS, solve
from hetero_opt.placement.verify import verify
from hetero_opt.topology import build_view

SUITES: dict[str, tuple[str, tuple[int, ...]]] = {
    "tiny": ("tiny", tuple(range(5))),
    "small": ("small", tuple(range(5))),
    "medium": ("medium", tuple(range(3))),
    "large": ("large", (0,)),
    "moe": ("moe", tuple(range(5))),
    "contention": ("contention", tuple(range(10))),
    "production": ("production", (0, 1, 2, 3)),
    "heavy": ("heavy", (0, 1)),
}
DEFAULT_SOLVERS = ("greedy", "cpsat", "milp")


def run_suite(
    suite: str,
    solvers: Sequence[str] = DEFAULT_SOLVERS,
    seeds: Sequence[int] | None = None,
    time_limit: float = 2.0,
    out_dir: Path | None = None,
    *,
    num_workers: int = 2,
    solver_seed: int = 0,
    progress: bool = True,
    console: Console | None = None,
    executor: Executor | None = None,
) -> pd.DataFrame:
    """Solve every instance of ``suite`` with every solver and collect the figures.

    Parameters
    ----------
    suite
        A key of :data:`SUITES`, or any generator family (then ``seeds`` defaults to ``(0,)``).
    solvers
        Solver names passed to :func:`hetero_opt.solve`.
    seeds
        Instance seeds; default: the suite's seeds.
    time_limit, num_workers, solver_seed
        Passed to :func:`hetero_opt.solve`.
    out_dir
        When given, ``bench.csv`` and ``bench.png`` are written there, and the suite is resumable:
        instances its manifest holds as done with the same inputs are not solved again.
    progress
        Show a rich progress bar over instances.
    executor
        Where instances are generated and solved (default: in this process); one task per instance.

    Returns
    -------
    pandas.DataFrame
        One row per (instance, solver); see ``docs/benchmarks.md`` for the columns.
    """
    family, default_seeds = SUITES.get(suite, (suite, (0,)))
    if family not in FAMILIES:  # before any output or manifest is written
        raise InputError(f"bench: suite='{suite}' is not one of {sorted(set(SUITES) | set(FAMILIES))}")
    if not solvers:  # rows without a solver column: the report would fail after the whole suite ran
        raise InputError(f"bench: solvers={tuple(solvers)!r} names no solver (one or more of {', '.join(SOLVERS)})")
    seeds = tuple(default_seeds if seeds is None else seeds)
    tasks = [BenchTask(suite, family, seed, tuple(solvers), time_limit, num_workers, solver_seed) for seed in seeds]
    jobs = [
        Job(f"bench:{suite}:{t.seed}", {"kind": "bench", **asdict(t), "versions": library_versions()}) for t in tasks
    ]
    with Manifest(out_dir) as manifest:  # out_dir=None: in memory, nothing to resume
        todo = [i for i, j in enumerate(jobs) if manifest.done(j.key, j.inputs) is None]
        what = f"{suite}: {len(todo)} instances x {len(solvers)} solvers" + (
            f" ({len(jobs) - len(todo)} done before)" if len(todo) < len(jobs) else ""
        )
        executor = executor or InProcessExecutor()
        run_jobs(
            executor,
            bench_instance,
            [tasks[i] for i in todo],
            [jobs[i] for i in todo],
            manifest,
            _entry,
            num_cpus=num_workers,
            description=what,
            console=console or Console(),
            progress=progress,
        )
        entries = [manifest.entries[j.key] for j in jobs]
    failed: list[Outcome[object]] = [
        Outcome(i, None, f"{e.key}: {e.error}") for i, e in enumerate(entries) if e.status != "done"
    ]
    if failed:
        raise SweepError(failed, len(entries))
    # Rows as the manifest recorded them: a resumed suite gives the same table as an uninterrupted one.
    df = pd.DataFrame([row for e in entries for row in e.record])
    if out_dir is not None:
        tmp = out_dir / "bench.csv.tmp"
        df.to_csv(tmp, index=False)
        tmp.replace(out_dir / "bench.csv")
        plot(df, out_dir / "bench.png")
    return df


@dataclass(frozen=True)
class BenchTask:
    """One instance of a suite and how to solve it, as it travels to a worker."""

    suite: str
    family: str
    seed: int
    solvers: tuple[str, ...]
    time_limit: float
    num_workers: int
    solver_seed: int


def bench_instance(task: BenchTask) -> list[dict[str, Any]]:
    """Generate one instance, solve it with every solver and return its rows (runs on a worker)."""
    for solver in task.solvers:
        warm_up(solver)
    start = time.perf_counter()
    instance = generate_instance(task.family, task.seed)
    gen_time = time.perf_counter() - start
    results = {
        s: solve(instance, s, time_limit=task.time_limit, seed=task.solver_seed, num_workers=task.num_workers)
        for s in task.solvers
    }
    return instance_rows(task.suite, task.family, task.seed, instance, results, gen_time)


def _entry(job: Job, outcome: Outcome[list[dict[str, Any]]]) -> Entry:
    if outcome.ok:
        return Entry(job.key, job.inputs, "done", outcome.value)
    return Entry(job.key, job.inputs, "failed", error=outcome.error_line)


def best_bound(results: dict[str, PlacementResult]) -> Score | None:
    """Tightest proven lower bound over solvers: reported bounds and scores proven optimal."""
    bounds = [r.bound for r in results.values() if r.bound is not None]
    bounds += [r.score for r in results.values() if r.status == "optimal"]
    return max(bounds, key=lambda b: b.key()) if bounds else None


def gaps(result: Score, bound: Score | None) -> tuple[float, float]:
    """(unserved GPUs above the bound, premium-cost gap in % when unserved GPUs match the bound).

    The bound is the best proven one (:func:`best_bound`): the LP relaxation's premium bound where a
    solver computed it, else a trivial one (0 for scale-out), so a large percentage can mean that
    nothing proved a tighter bound.
    """
    if bound is None:
        return math.nan, math.nan
    if result.unserved_gpus != bound.unserved_gpus:
        return float(sum(result.unserved_gpus) - sum(bound.unserved_gpus)), math.nan
    return 0.0, 100.0 * (result.premium_cost - bound.premium_cost) / max(1, abs(bound.premium_cost))


def first_stage_gap(result: Score, bound: Score | None) -> float:
    """GPUs of the top priority class left unserved above the bound: 0 means the first stage is optimal."""
    if bound is None or not result.unserved_gpus:
        return math.nan
    return float(result.first_stage_gap(bound))


def instance_rows(
    suite: str,
    family: str,
    seed: int,
    instance: Instance,
    results: dict[str, PlacementResult],
    gen_time: float = math.nan,
) -> list[dict[str, Any]]:
    """The rows of one instance: one per solver, with the instance-level cpsat/greedy ratios."""
    view = build_view(instance)
    wanted = view.wanted_gpus_by_priority
    bound = best_bound(results)
    greedy, cpsat = results.get("greedy"), results.get("cpsat")
    ratios: dict[str, Any] = {"cpsat_premium_ratio": math.nan, "cpsat_time_ratio": math.nan, "cpsat_better": False}
    if greedy is not None and cpsat is not None:
        ratios = {
            "cpsat_premium_ratio": cpsat.score.premium_cost / greedy.score.premium_cost
            if greedy.score.premium_cost
            else math.nan,
            "cpsat_time_ratio": cpsat.wall_time_s / max(greedy.wall_time_s, 1e-9),
            "cpsat_better": bool(cpsat.score < greedy.score),
        }
    rows = []
    for name, r in results.items():
        unserved = dict(zip(r.score.priorities, r.score.unserved_gpus, strict=True))
        gap_unserved, gap_premium = gaps(r.score, bound)
        term_gaps = r.score.gaps_to(bound) if bound is not None else {}
        row: dict[str, Any] = {
            "suite": suite,
            "family": family,
            "seed": seed,
            "instance": instance.name,
            "nodes": len(instance.nodes),
            "gpus": sum(node_column(instance.nodes, "gpus_total")),
            "s1s": len(view.s1_ids),
            "requests": len(instance.requests),
            "gen_time_s": gen_time,
            "solver": name,
            "status": r.status,
            "wall_time_s": r.wall_time_s,
            "wanted_gpus": sum(wanted.values()),
            "served_gpus": sum(wanted.values()) - sum(r.score.unserved_gpus),
            "served_by_priority": " ".join(
                f"p{p}:{wanted[p] - unserved.get(p, 0)}/{wanted[p]}" for p in sorted(wanted, reverse=True)
            ),
            "unserved_gpus": sum(r.score.unserved_gpus),
            "premium_cost": r.score.premium_cost,
            "new_groups": r.score.new_groups,
            "whole_free_nodes": r.score.whole_free_nodes,
            "stage1_gap_gpus": first_stage_gap(r.score, bound),
            "gap_unserved_gpus": gap_unserved,
            "gap_premium_pct": gap_premium,
            "gap_premium": term_gaps.get("premium_cost", math.nan) if gap_unserved == 0 else math.nan,
            "gap_new_groups": term_gaps.get("new_groups", math.nan) if gap_premium == 0 else math.nan,
            "gap_whole_free_nodes": term_gaps.get("whole_free_nodes", math.nan),
            "verify_ok": not verify(instance, r.plan, view),
            "fallback_reason": r.fallback_reason,
            **ratios,
        }
        for p in sorted(wanted, reverse=True):
            row[f"served_p{p}"] = wanted[p] - unserved.get(p, 0)
        rows.append(row)
    return rows


def _fmt(x: object, digits: int = 2) -> str:
    if isinstance(x, float):
        return "-" if math.isnan(x) else f"{x:.{digits}f}"
    return str(x)


#: The main table's columns and their justification: the results, the gaps, the verifier's word.
_RESULT_COLUMNS: list[tuple[str, JustifyMethod]] = [
    ("instance", "left"),
    ("solver", "left"),
    ("status", "left"),
    ("served GPUs by priority", "left"),
    ("premium", "right"),
    ("new DGs", "right"),
    ("time s", "right"),
]
_GAP_COLUMNS: list[tuple[str, JustifyMethod]] = [
    ("stage-1 gap", "right"),
    ("gap unserved", "right"),
    ("gap premium %", "right"),
    ("gap DGs", "right"),
    ("gap free nodes", "right"),
]
_VERIFIED_COLUMN: tuple[str, JustifyMethod] = ("verified", "center")


def _table(title: str, compact: bool) -> Table:
    """A report table; ``compact``: no borders, one space between columns (for a narrow console)."""
    if compact:
        return Table(title=title, box=box.SIMPLE_HEAD, padding=(0, 0), show_edge=False)
    return Table(title=title)


def _fill(table: Table, columns: Sequence[tuple[str, JustifyMethod]], rows: Sequence[Sequence[str]]) -> None:
    """Add ``columns`` and ``rows`` to ``table``, words kept whole on a narrow console.

    A column is never narrower than its longest word (header or value): a narrow console wraps
    headers and values between words, and folds onto the next line what is still too wide for it,
    never cutting a value short with an ellipsis.
    """
    for i, (header, justify) in enumerate(columns):
        longest = max(len(w) for w in [*header.split(), *(w for row in rows for w in row[i].split())])
        table.add_column(header, justify=justify, overflow="fold", min_width=longest)
    for row in rows:
        table.add_row(*row)


def main_table(df: pd.DataFrame, *, gaps: bool = True, results: bool = True, compact: bool = False) -> Table:
    """Per instance and solver: served GPUs by priority, premium cost, groups, time, gaps, checks.

    Gaps are to the best proven bound over the solvers: ``stage-1 gap`` in GPUs of the top class
    (0: first stage proven optimal), ``gap unserved`` in GPUs over all classes, ``gap premium``
    in % where the unserved GPUs meet the bound, ``gap DGs`` (new groups) where premium meets it, and
    ``gap free nodes`` (whole free nodes, term 5: heuristic, against the trivial bound).
    ``gaps=False`` leaves the gaps out, ``results=False`` keeps only them (with instance and solver):
    :func:`print_report` prints the two halves one after the other, ``compact``, on a console too
    narrow for the whole table.
    """
    columns = [
        *(_RESULT_COLUMNS if results else _RESULT_COLUMNS[:2]),
        *(_GAP_COLUMNS if gaps else []),
        *([_VERIFIED_COLUMN] if results else []),
    ]
    title = "Placement benchmark" if results else "Placement benchmark: gaps to the best bound"
    rows = []
    for r in df.itertuples(index=False):
        cells = {
            "instance": str(r.instance),
            "solver": str(r.solver),
            "status": str(r.status),
            "served GPUs by priority": str(r.served_by_priority),
            "premium": str(r.premium_cost),
            "new DGs": str(r.new_groups),
            "time s": _fmt(r.wall_time_s, 3),
            "stage-1 gap": _fmt(r.stage1_gap_gpus, 0),
            "gap unserved": _fmt(r.gap_unserved_gpus, 0),
            "gap premium %": _fmt(r.gap_premium_pct, 1),
            "gap DGs": _fmt(r.gap_new_groups, 0),
            "gap free nodes": _fmt(r.gap_whole_free_nodes, 0),
            "verified": "yes" if r.verify_ok else "NO",
        }
        rows.append([cells[col] for col, _ in columns])
    table = _table(title, compact)
    _fill(table, columns, rows)
    return table


def totals_table(df: pd.DataFrame, *, compact: bool = False) -> Table:
    """Per solver totals over the suite, and how often CP-SAT beats greedy."""
    headers = ["solver", "instances", "served GPUs", "unserved GPUs", "premium", "new DGs", "time s (sum)",
               "time s (max)", "verified", "optimal"]
    rows = [
        [
            str(solver),
            str(len(g)),
            str(int(g["served_gpus"].sum())),
            str(int(g["unserved_gpus"].sum())),
            str(int(g["premium_cost"].sum())),
            str(int(g["new_groups"].sum())),
            f"{g['wall_time_s'].sum():.3f}",
            f"{g['wall_time_s'].max():.3f}",
            f"{int(g['verify_ok'].sum())}/{len(g)}",
            str(int((g["status"] == "optimal").sum())),
        ]
        for solver, g in df.groupby("solver", sort=False)
    ]
    table = _table("Totals per solver", compact)
    _fill(table, [(h, "left" if h == "solver" else "right") for h in headers], rows)
    per_instance = df.drop_duplicates("instance")
    if per_instance["cpsat_time_ratio"].notna().any():
        table.caption = (
            f"cpsat better than greedy on {int(per_instance['cpsat_better'].sum())}/{len(per_instance)} instances; "
            f"median cpsat/greedy premium ratio {_fmt(float(per_instance['cpsat_premium_ratio'].median()))}, "
            f"time ratio {_fmt(float(per_instance['cpsat_time_ratio'].median()), 1)}"
        )
    return table


def print_report(df: pd.DataFrame, console: Console | None = None) -> None:
    """Print :func:`main_table` and :func:`totals_table`.

    On a console too narrow for the main table's values unwrapped (its 13 columns need ~190
    characters for the contention suite), the results and the gaps are printed as two compact
    tables, readable down to 80 columns; a value is never cut short.
    """
    console = console or Console()
    table = main_table(df)
    if _unwrapped_width(console, table) <= console.width:
        console.print(table)
        console.print(totals_table(df))
        return
    for table in (main_table(df, gaps=False, compact=True), main_table(df, results=False, compact=True),
                  totals_table(df, compact=True)):
        if _unwrapped_width(console, table) > console.width:
            for column in table.columns:  # each column as narrow as its longest word, header or value
                column.max_width = column.min_width
        console.print(table)


def _unwrapped_width(console: Console, table: Table) -> int:
    """Columns ``table`` takes with no header or value wrapped."""
    return console.measure(table, options=console.options.update_width(1 << 16)).maximum


def plot(df: pd.DataFrame, path: Path) -> None:
    """Premium cost and wall time per instance and solver, side by side (Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    instances = list(dict.fromkeys(df["instance"]))
    solvers = list(dict.fromkeys(df["solver"]))
    fig, axes = plt.subplots(1, 3, figsize=(max(9.0, 1.0 + 0.9 * len(instances) * 1.5), 4.0))
    width = 0.8 / max(1, len(solvers))
    for k, solver in enumerate(solvers):
        g = df[df["solver"] == solver].set_index("instance").reindex(instances)
        xs = [i + k * width for i in range(len(instances))]
        axes[0].bar(xs, g["unserved_gpus"], width, label=solver)
        axes[1].bar(xs, g["premium_cost"], width, label=solver)
        axes[2].bar(xs, g["wall_time_s"], width, label=solver)
    for ax, title in zip(axes, ["unserved GPUs (lower is better)", "premium cost", "wall time (s)"], strict=True):
        ax.set_title(title)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(instances))])
        ax.set_xticklabels(instances, rotation=60, ha="right", fontsize=7)
    axes[2].set_yscale("log")
    axes[0].legend()
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
