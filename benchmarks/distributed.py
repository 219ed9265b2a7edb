"""Throughput of a batch in-process vs on a local Ray instance, and Ray's per-task overhead.

Run: ``.venv/bin/python benchmarks/distributed.py [--count 200] [--family medium] [--solver cpsat]``.
It generates ``--count`` instances into a temporary folder, solves them with ``solve_batch`` in this
process and then on a local Ray instance with one CPU per task (``--workers 1``), and prints
instances per minute, the speed-up per CPU, how many plans are equal, and the overheads: Ray's
start-up, a round trip of an empty task, one validating an instance file sent as text, and the
driver's serial work per file.
Figures and the protocol are in ``docs/distributed.md``.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

import ray
from rich.console import Console
from rich.table import Table

from hetero_opt.batch import InProcessExecutor, sweep
from hetero_opt.batch.executor import Executor
from hetero_opt.batch.ray_executor import RayExecutor
from hetero_opt.batch.solve_batch import SolveSettings, SolveTask, read_text, sha256_bytes, solve_batch, validate_task
from hetero_opt.cli import collect_instance_files
from hetero_opt.generate import generate_instance
from hetero_opt.io import load_instance, save_instance
from hetero_opt.placement.result import PlacementResult


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--family", default="medium")
    parser.add_argument("--solver", default="cpsat")
    parser.add_argument("--time-limit", type=float, default=1.0)
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 1, help="CPUs of the local Ray instance")
    args = parser.parse_args()
    console = Console()
    settings = SolveSettings(args.solver, args.time_limit, seed=0, workers=1)
    console.print(f"load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "instances"
        folder.mkdir()
        start = time.perf_counter()
        for seed in range(args.count):
            save_instance(generate_instance(args.family, seed), folder / f"{args.family}-{seed:04d}.json")
        console.print(f"generated {args.count} {args.family} instances in {time.perf_counter() - start:.1f} s")
        files = collect_instance_files([str(folder)])

        rows: list[tuple[str, float, int]] = []
        start = time.perf_counter()
        solve_batch(files, settings, Path(tmp) / "inprocess", InProcessExecutor(), console=console)
        rows.append(("in-process", time.perf_counter() - start, 1))

        start = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, logging_level=logging.WARNING)
        ray_start = time.perf_counter() - start
        try:
            executor = RayExecutor()
            empty, carrying = overheads(executor, folder, settings)
            start = time.perf_counter()
            solve_batch(files, settings, Path(tmp) / "ray", executor, console=console)
            rows.append((f"ray ({args.cpus} CPUs, 1 per task)", time.perf_counter() - start, args.cpus))
        finally:
            ray.shutdown()
        start = time.perf_counter()
        for f in files:
            load_instance(f)
        load = (time.perf_counter() - start) / len(files)
        start = time.perf_counter()
        for f in files:
            sha256_bytes(read_text(f).encode())
        read = (time.perf_counter() - start) / len(files)
        # Plans are reproducible while CP-SAT's deterministic budget, not the wall-clock safety net,
        # ends its stages; a solve that used most of its time limit may have been cut by the net.
        cut = {
            f.stem for f in files for d in ("inprocess", "ray") if _wall(Path(tmp) / d, f.stem) > 0.8 * args.time_limit
        }
        equal = [f.stem for f in files if _plan(Path(tmp) / "inprocess", f.stem) == _plan(Path(tmp) / "ray", f.stem)]

    table = Table(title=f"{args.count} {args.family} instances, {args.solver}, time limit {args.time_limit} s")
    for col in ("executor", "wall s", "instances/min", "speed-up", "speed-up per CPU"):
        table.add_column(col, justify="left" if col == "executor" else "right")
    base = rows[0][1]
    for name, wall, cpus in rows:
        speed_up = base / wall
        table.add_row(name, f"{wall:.1f}", f"{60 * args.count / wall:.1f}", f"{speed_up:.2f}", f"{speed_up / cpus:.2f}")
    console.print(table)
    console.print(f"plans equal in-process and on Ray: {len(equal)}/{args.count}")
    kept = [stem for stem in equal if stem not in cut]
    console.print(
        f"solves that used > 80 % of the time limit in either run (wall-clock net): {len(cut)}; "
        f"plans equal among the others: {len(kept)}/{args.count - len(cut)}"
    )
    console.print(f"driver: read and hash one {args.family} file: {1000 * read:.1f} ms (serial)")
    console.print(f"worker: load and validate one {args.family} instance: {1000 * load:.1f} ms (twice per task)")
    console.print(f"Ray start-up (ray.init, local): {ray_start:.1f} s (not in the Ray wall time above)")
    console.print(f"Ray round trip per task, empty: {1000 * empty:.1f} ms")
    console.print(f"Ray round trip per task validating one {args.family} file (text in): {1000 * carrying:.1f} ms")
    console.print(f"load average after: {os.getloadavg()}")


def overheads(executor: Executor, folder: Path, settings: SolveSettings, n: int = 200) -> tuple[float, float]:
    """Seconds per task of ``n`` tasks that do nothing: empty, and carrying one instance each way in."""
    sweep(abs, [1] * 4, executor=executor, progress=False)  # warm the workers
    start = time.perf_counter()
    sweep(abs, list(range(n)), executor=executor, progress=False).values()
    empty = (time.perf_counter() - start) / n
    path = next(iter(sorted(folder.iterdir())))
    tasks = [SolveTask(str(i), str(path), path.read_text(), settings) for i in range(n)]
    start = time.perf_counter()
    assert sweep(validate_task, tasks, executor=executor, progress=False).values() == [""] * n
    return empty, (time.perf_counter() - start) / n


def _wall(out_dir: Path, stem: str) -> float:
    return PlacementResult.from_json((out_dir / f"{stem}.plan.json").read_text()).wall_time_s


def _plan(out_dir: Path, stem: str) -> object:
    result = PlacementResult.from_json((out_dir / f"{stem}.plan.json").read_text())
    return result.model_dump(exclude={"wall_time_s", "stats"})


if __name__ == "__main__":
    main()
