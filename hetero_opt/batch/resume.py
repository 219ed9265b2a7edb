"""Resumable batches: skip what the manifest holds as done, run the rest, record each as it ends."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from rich.console import Console

from hetero_opt.batch.executor import Executor, Outcome
from hetero_opt.batch.manifest import Entry, Manifest
from hetero_opt.batch.sweep import track

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Job:
    """A task's manifest ``key`` and the ``inputs`` that decide whether an old result still holds."""

    key: str
    inputs: dict[str, Any]


def run_jobs(
    executor: Executor,
    fn: Callable[[T], R],
    tasks: Sequence[T],
    jobs: Sequence[Job],
    manifest: Manifest,
    finish: Callable[[Job, Outcome[R]], Entry],
    *,
    num_cpus: int = 1,
    description: str = "",
    console: Console | None = None,
    progress: bool = True,
) -> None:
    """Run ``fn`` on ``tasks[i]`` for ``jobs[i]``; ``finish`` writes its files and returns its entry.

    ``tasks`` may be made lazily (:class:`~hetero_opt.batch.executor.LazyTasks`). Entries are added
    to ``manifest`` as tasks complete, so a batch stopped at any point keeps every task finished
    before the stop.
    """
    outcomes = executor.run(fn, tasks, num_cpus=num_cpus)
    for outcome in track(outcomes, len(jobs), description, console, progress):
        manifest.add(finish(jobs[outcome.index], outcome))


def split_done(manifest: Manifest, keyed_inputs: Sequence[tuple[str, dict[str, Any]]]) -> list[int]:
    """Indices of the ``(key, inputs)`` pairs the manifest does not hold as done."""
    return [i for i, (key, inputs) in enumerate(keyed_inputs) if manifest.done(key, inputs) is None]
