"""Sweeps: one function over a grid of picklable tasks on any executor, with progress and failures.

>>> import math
>>> from hetero_opt.batch import sweep
>>> result = sweep(math.sqrt, [4.0, 9.0, -1.0], progress=False)
>>> [o.value for o in result.outcomes], len(result.failures)
([2.0, 3.0, None], 1)

``result.values()`` raises :class:`SweepError` naming every failed task instead of returning a
short list: a failed task is reported, never silently dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hetero_opt.batch.executor import Executor, InProcessExecutor, Outcome

T = TypeVar("T")
R = TypeVar("R")


class SweepError(RuntimeError):
    """Some tasks of a sweep failed; ``failures`` holds their outcomes."""

    def __init__(self, failures: Sequence[Outcome[Any]], total: int) -> None:
        self.failures = list(failures)
        lines = "; ".join(f"task {o.index}: {o.error_line}" for o in self.failures[:5])
        more = f" (and {len(self.failures) - 5} more)" if len(self.failures) > 5 else ""
        super().__init__(f"{len(self.failures)} of {total} tasks failed: {lines}{more}")


@dataclass(frozen=True)
class SweepResult(Generic[R]):
    """One outcome per task, in task order."""

    outcomes: list[Outcome[R]]

    @property
    def failures(self) -> list[Outcome[R]]:
        """Outcomes of tasks that raised or whose worker was lost."""
        return [o for o in self.outcomes if not o.ok]

    def values(self) -> list[R]:
        """Every task's value, in task order; :class:`SweepError` if any task failed."""
        if self.failures:
            raise SweepError(self.failures, len(self.outcomes))
        return [o.value for o in self.outcomes]  # type: ignore[misc]  # every outcome is ok


def track(
    outcomes: Iterable[Outcome[R]], total: int, description: str, console: Console | None, enabled: bool = True
) -> Iterator[Outcome[R]]:
    """Pass ``outcomes`` through while a rich progress bar counts them and the failures so far."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    failed = 0
    with Progress(*columns, console=console, disable=not enabled, transient=True) as bar:
        task = bar.add_task(description, total=total)
        for outcome in outcomes:
            failed += not outcome.ok
            bar.update(task, advance=1, description=f"{description} ({failed} failed)" if failed else description)
            yield outcome


def sweep(
    fn: Callable[[T], R],
    tasks: Sequence[T],
    *,
    executor: Executor | None = None,
    num_cpus: int = 1,
    description: str = "sweep",
    progress: bool = True,
    console: Console | None = None,
) -> SweepResult[R]:
    """Run ``fn`` on every task with ``executor`` (default: in this process).

    Parameters
    ----------
    fn
        A module-level function (it travels to workers by reference, so workers must import it).
    tasks
        Picklable arguments, one call each.
    num_cpus
        CPUs each call uses (Ray reserves them; e.g. the solver's ``num_workers``).
    description, progress, console
        The progress bar over the whole grid; failed tasks are counted on it and listed at the end.
    """
    executor = executor or InProcessExecutor()
    outcomes: list[Outcome[R] | None] = [None] * len(tasks)
    for outcome in track(executor.run(fn, tasks, num_cpus=num_cpus), len(tasks), description, console, progress):
        outcomes[outcome.index] = outcome
    result = SweepResult([o for o in outcomes if o is not None])
    if len(result.outcomes) != len(tasks):  # an executor bug, not a task failure: never hide it
        raise RuntimeError(f"executor {executor.name} returned {len(result.outcomes)} of {len(tasks)} outcomes")
    if result.failures and progress:
        (console or Console(stderr=True)).print(str(SweepError(result.failures, len(tasks))), style="red", markup=False)
    return result
