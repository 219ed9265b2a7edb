"""Batches, benchmarks and sweeps on one machine or a Ray cluster; resumable and reproducible.

- :func:`sweep` maps a function over a grid of picklable tasks on an :class:`Executor` and
  reports every failed task.
- :func:`get_executor` gives the in-process engine (default) or the Ray engine (optional extra
  ``hetero_opt[distributed]``).
- :func:`~hetero_opt.batch.solve_batch.solve_batch` is ``hetero-opt solve`` as a resumable batch,
  kept by a :class:`Manifest` in the output folder.

See ``docs/distributed.md``.
"""

from hetero_opt.batch.executor import EXECUTORS, Executor, InProcessExecutor, LazyTasks, Outcome, get_executor
from hetero_opt.batch.manifest import Entry, Manifest, library_versions
from hetero_opt.batch.resume import Job, run_jobs
from hetero_opt.batch.sweep import SweepError, SweepResult, sweep

__all__ = [
    "EXECUTORS",
    "Entry",
    "Executor",
    "InProcessExecutor",
    "Job",
    "LazyTasks",
    "Manifest",
    "Outcome",
    "SweepError",
    "SweepResult",
    "get_executor",
    "library_versions",
    "run_jobs",
    "sweep",
]
