"""Resumable batches: skip what the manifest holds as done, run the rest, record each as it ends."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from rich.console import Console

from hetero_opt.batch.executor import Executor, Outcome
from hetero_opt.batch.manifest import Entry, Manifest
from hetero_opt.batch.sweep import track

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Job(Generic[T]):
    """A task with its manifest ``key`` and the ``inputs`` that decide whether an old result still holds."""

    key: str
    inputs: dict[str, Any]
    task: T


def run_jobs(
    executor: Executor,
    fn: Callable[[T], R],
    jobs: Sequence[Job[T]],
    manifest: Manifest,
    finish: Callable[[Job[T], Outcome[R]], Entry],
    *,
    num_cpus: int = 1,
    description: str = "",
    console: Console | None = None,
    progress: bool = True,
) -> None:
    """Run ``fn`` on each job's task; ``finish`` writes its files and returns the entry to record.

    Entries are added to ``manifest`` as tasks complete, so a batch stopped at any point keeps
    every task finished before the stop.
    """
    outcomes = executor.run(fn, [j.task for j in jobs], num_cpus=num_cpus)
    for outcome in track(outcomes, len(jobs), description, console, progress):
        manifest.add(finish(jobs[outcome.index], outcome))


def split_done(manifest: Manifest, keyed_inputs: Sequence[tuple[str, dict[str, Any]]]) -> list[int]:
    """Indices of the ``(key, inputs)`` pairs the manifest does not hold as done."""
    return [i for i, (key, inputs) in enumerate(keyed_inputs) if manifest.done(key, inputs) is None]
