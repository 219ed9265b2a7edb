"""``hetero-opt solve`` as a resumable batch: one task per instance file, on any executor.

What travels to a worker is a :class:`SolveTask`: the instance file's text and the solver settings;
workers parse and validate it, first all of them (any bad input stops the batch before a plan is
written), then once more to solve. What comes back is a :class:`SolveOutput`: the result, the
verifier's findings, the summary row, the hash of the text solved and the worker's library versions.
The driver reads and hashes files and alone writes: each plan atomically, then its manifest line,
and at the end ``summary.csv`` rebuilt from the manifest (so each row, wall time included, is what
was recorded when its plan was written).
"""

from __future__ import annotations

import csv
import hashlib
import io
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from hetero_opt.batch.executor import Executor, LazyTasks, Outcome
from hetero_opt.batch.manifest import Entry, Manifest, library_versions
from hetero_opt.batch.resume import Job, run_jobs, split_done
from hetero_opt.batch.sweep import track
from hetero_opt.errors import InputError, PlanError
from hetero_opt.instance import Instance
from hetero_opt.io import loads_instance, write_atomic
from hetero_opt.placement.result import PlacementResult
from hetero_opt.placement.solve import get_backend, solve
from hetero_opt.placement.verify import verify
from hetero_opt.topology import build_view

SUMMARY_COLUMNS = (
    "instance",
    "solver",
    "status",
    "served_gpus",
    "unserved_gpus",
    "unserved_gpus_by_priority",
    "premium_cost",
    "new_groups",
    "emptied_groups",
    "whole_free_nodes",
    "first_stage_gap",
    "wall_time_s",
    "violations",
    "fallback_reason",
)

#: What a write that fails mid-batch (a full disk) leaves: what was solved is kept, as after a kill.
KEPT = "plans written before it are kept, each with its manifest line: the same command again solves the rest"


@dataclass(frozen=True)
class SolveSettings:
    """Solver settings shared by every instance of a batch (part of each task's manifest inputs)."""

    solver: str = "greedy"
    time_limit: float = 2.0
    seed: int = 0
    workers: int = 2
    deterministic: bool = True


@dataclass(frozen=True)
class SolveTask:
    """One instance file to solve, as it travels to a worker: its path (for messages and format) and text."""

    name: str
    path: str
    text: str
    settings: SolveSettings
    export_model: str | None = None

    def instance(self) -> Instance:
        """The validated instance (:class:`~hetero_opt.errors.InputError` naming the file if bad)."""
        return loads_instance(self.text, self.path)


@dataclass(frozen=True)
class SolveOutput:
    """What a worker sends back: result (None if solving failed), violations, summary row, versions."""

    result: PlacementResult | None
    violations: list[str]
    row: dict[str, Any]
    versions: dict[str, str]
    instance_sha256: str


@dataclass(frozen=True)
class BatchReport:
    """Summary rows (one per instance, in input order), failure lines, and how many tasks ran."""

    rows: list[dict[str, Any]]
    failures: list[str]
    solved: int
    skipped: int


def validate_task(task: SolveTask) -> str:
    """The one-line error of a bad instance file, or "" (runs on a worker)."""
    try:
        task.instance()
    except InputError as exc:
        return " ".join(str(exc).split())
    return ""


def solve_task(task: SolveTask) -> SolveOutput:
    """Parse, solve, verify and summarise one instance (runs on a worker)."""
    s = task.settings
    warm_up(s.solver)
    instance = task.instance()
    result: PlacementResult | None = None
    try:
        result = solve(
            instance,
            s.solver,
            time_limit=s.time_limit,
            seed=s.seed,
            num_workers=s.workers,
            export_model=task.export_model,
            deterministic=s.deterministic,
        )
    except PlanError as exc:
        violations = [str(exc)]
    else:
        # solve() verifies too; checking again here keeps the batch's promise independent of it.
        violations = [str(v) for v in verify(instance, result.plan)]
    row = summary_row(task.name, instance, result, violations)
    return SolveOutput(result, violations, row, library_versions(), sha256_bytes(task.text.encode()))


def solve_batch(
    files: Sequence[Path],
    settings: SolveSettings,
    out_dir: Path,
    executor: Executor,
    *,
    export_model: str | None = None,
    console: Console | None = None,
    progress: bool = True,
) -> BatchReport:
    """Solve every file not already done in ``out_dir``; write plans, manifest and ``summary.csv``.

    Every input still to solve is validated before any work (an :class:`~hetero_opt.errors.InputError`
    leaves ``out_dir`` untouched). ``export_model`` (a path prefix on the worker's file system)
    solves every file again, since skipped ones would export nothing.
    """
    inputs = [
        (f.stem, {"file": f.name, "instance_sha256": sha256_bytes(f.read_bytes())} | task_inputs(settings))
        for f in files
    ]
    todo = list(range(len(files))) if export_model else split_done(Manifest(out_dir, write=False), inputs)
    several = len(files) > 1

    def make(k: int) -> SolveTask:
        f = files[todo[k]]
        export = f"{export_model}.{f.stem}" if export_model and several else export_model
        return SolveTask(f.stem, str(f), read_text(f), settings, export)

    tasks = LazyTasks(len(todo), make)
    validate(executor, tasks, console, progress)
    jobs = [Job(*inputs[i]) for i in todo]
    failures: list[str] = []

    def finish(job: Job, outcome: Outcome[SolveOutput]) -> Entry:
        try:
            entry = record_output(job, outcome, out_dir)
        except InputError as exc:
            raise InputError(f"{exc}; {KEPT}") from None
        if entry.status == "failed":
            failures.append(f"{files[todo[outcome.index]]}: {entry.error}")
            print(failures[-1], file=sys.stderr)
        return entry

    what = f"solving {len(jobs)} instances with {settings.solver}" + (
        f" ({len(files) - len(jobs)} done before)" if len(jobs) < len(files) else ""
    )
    with Manifest(out_dir) as manifest:
        run_jobs(
            executor,
            solve_task,
            tasks,
            jobs,
            manifest,
            finish,
            num_cpus=settings.workers,
            description=what,
            console=console,
            progress=progress and len(jobs) > 1,
        )
        rows = [manifest.entries[key].record for key, _ in inputs]
    try:
        write_atomic(out_dir / "summary.csv", csv_text(rows))
    except InputError as exc:
        raise InputError(f"{exc}; the plans are kept, each with its manifest line: the same command again "
                         "writes the summary without solving them again") from None
    if len(jobs) < len(files) and progress:
        (console or Console()).print(
            f"{len(files) - len(jobs)} of {len(files)} instances were done before: not solved again"
        )
    return BatchReport(rows, failures, len(jobs), len(files) - len(jobs))


def validate(executor: Executor, tasks: Sequence[SolveTask], console: Console | None, progress: bool) -> None:
    """Validate every task's instance on ``executor``; :class:`InputError` of the first bad file."""
    bad = [""] * len(tasks)
    outcomes = executor.run(validate_task, tasks, num_cpus=1)
    for o in track(outcomes, len(tasks), f"validating {len(tasks)} instances", console, progress and len(tasks) > 1):
        bad[o.index] = o.value or (f"{tasks[o.index].path}: cannot validate: {o.error_line}" if o.error else "")
    first = next((b for b in bad if b), "")
    if first:
        raise InputError(first)


def read_text(path: Path) -> str:
    """A file's text, byte for byte (no newline translation: its hash is the file's)."""
    try:
        return path.read_bytes().decode()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read file ({exc})") from None


def warm_up(solver: str) -> None:
    """Import the solver's backend now, so a fresh worker's imports are not charged to a time limit."""
    if solver != "greedy":
        get_backend(solver)


def record_output(job: Job, outcome: Outcome[SolveOutput], out_dir: Path) -> Entry:
    """Write the plan of a successful task (a failed one removes a stale plan); the manifest entry."""
    name = f"{job.key}.plan.json"
    failed = _failed(job, outcome)
    if failed is not None or outcome.value is None or outcome.value.result is None:
        (out_dir / name).unlink(missing_ok=True)
        return failed or Entry(job.key, job.inputs, "failed", error="no result")
    text = outcome.value.result.to_json()
    write_atomic(out_dir / name, text)
    return Entry(job.key, job.inputs, "done", outcome.value.row, files={name: sha256_bytes(text.encode())})


def _failed(job: Job, outcome: Outcome[SolveOutput]) -> Entry | None:
    """The failed entry of an outcome that has no plan to write, with why; None if it has one."""
    out = outcome.value
    if out is None:
        row = summary_row(job.key, None, None, [outcome.error_line])
        return Entry(job.key, job.inputs, "failed", row, error=f"task failed: {outcome.error_line}")
    if out.instance_sha256 != job.inputs["instance_sha256"]:
        return Entry(job.key, job.inputs, "failed", out.row, error="instance file changed while the batch ran")
    if out.versions != library_versions():
        drift = {k: (v, library_versions().get(k)) for k, v in out.versions.items() if library_versions().get(k) != v}
        return Entry(
            job.key,
            job.inputs,
            "failed",
            out.row,
            error=f"worker libraries differ from the driver's (worker, driver): {drift}",
        )
    if out.result is None or out.violations:
        return Entry(job.key, job.inputs, "failed", out.row, error=f"plan fails verification: {out.violations[0]}")
    return None


def task_inputs(settings: SolveSettings) -> dict[str, Any]:
    """The manifest inputs every task of a batch shares: settings and library versions."""
    return {"kind": "solve", **asdict(settings), "versions": library_versions()}


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256."""
    return hashlib.sha256(data).hexdigest()


def served_gpus(inst: Instance, result: PlacementResult) -> int:
    """GPUs of requested units the plan adds or removes (at most each request's delta)."""
    return sum(build_view(inst).wanted_gpus_by_priority.values()) - sum(result.score.unserved_gpus)


def summary_row(
    name: str, inst: Instance | None, result: PlacementResult | None, violations: Sequence[str]
) -> dict[str, Any]:
    """One row of ``summary.csv`` (columns :data:`SUMMARY_COLUMNS`); no instance, no result: an error row."""
    if inst is None or result is None:
        return {c: "" for c in SUMMARY_COLUMNS} | {"instance": name, "status": "error", "violations": 1}
    sc = result.score
    return {
        "instance": name,
        "solver": result.solver,
        "status": result.status,
        "served_gpus": served_gpus(inst, result),
        "unserved_gpus": sum(sc.unserved_gpus),
        "unserved_gpus_by_priority": ";".join(f"{p}:{g}" for p, g in zip(sc.priorities, sc.unserved_gpus, strict=True)),
        "premium_cost": sc.premium_cost,
        "new_groups": sc.new_groups,
        "emptied_groups": sc.emptied_groups,
        "whole_free_nodes": sc.whole_free_nodes,
        "first_stage_gap": "" if result.first_stage_gap is None else result.first_stage_gap,
        "wall_time_s": round(result.wall_time_s, 4),
        "violations": len(violations),
        "fallback_reason": result.fallback_reason,
    }


def csv_text(rows: list[dict[str, Any]]) -> str:
    """``summary.csv`` text of ``rows``."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(SUMMARY_COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
