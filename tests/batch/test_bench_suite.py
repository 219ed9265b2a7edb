"""Benchmark suites through the executor: Ray gives the in-process table (timings aside)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from hetero_opt.batch.executor import Executor, InProcessExecutor
from hetero_opt.batch.ray_executor import RayExecutor
from hetero_opt.bench import run_suite

TIMING = ["gen_time_s", "wall_time_s", "cpsat_time_ratio"]


def _suite(executor: Executor, out_dir: Path) -> pd.DataFrame:
    return run_suite(
        "contention", ("greedy", "cpsat"), (0, 1), 10.0, out_dir, num_workers=1, progress=False, executor=executor
    )


def test_suite_on_ray_equals_in_process(ray_executor: RayExecutor, tmp_path: Path) -> None:
    local = _suite(InProcessExecutor(), tmp_path / "local")
    remote = _suite(ray_executor, tmp_path / "ray")
    assert remote.drop(columns=TIMING).equals(local.drop(columns=TIMING))
    assert (tmp_path / "ray" / "bench.csv").exists()
