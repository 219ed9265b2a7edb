"""Where batch work runs: one :class:`Executor` protocol, an in-process engine and a Ray engine.

An executor runs one picklable function over a sequence of picklable tasks and yields one
:class:`Outcome` per task as it completes. A task that raises becomes a failed outcome carrying the
exception's type, message and traceback; nothing is dropped. The Ray engine lives in
:mod:`hetero_opt.batch.ray_executor` and is imported only when asked for.
"""

from __future__ import annotations

import argparse
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Generic, Protocol, TypeVar, overload

from hetero_opt.errors import InputError

T = TypeVar("T")
R = TypeVar("R")
EXECUTORS = ("inprocess", "ray")


@dataclass(frozen=True)
class Outcome(Generic[R]):
    """What became of task number ``index``: its ``value``, or ``error`` (type, message, traceback)."""

    index: int
    value: R | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        """True when the task returned."""
        return not self.error

    @property
    def error_line(self) -> str:
        """The last line of the error (``Type: message``), for one-line reports."""
        lines = self.error.strip().splitlines()
        return lines[-1] if lines else ""


class LazyTasks(Sequence[T]):
    """Tasks ``make(0) ... make(n - 1)``, each made when an executor reaches it.

    Executors take tasks in order and keep only those in flight, so a batch of large tasks (an
    instance file's text each) never sits in the driver's memory at once.
    """

    def __init__(self, n: int, make: Callable[[int], T]) -> None:
        self._n = n
        self._make = make

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, i: int) -> T: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[T]: ...

    def __getitem__(self, i: int | slice) -> T | Sequence[T]:
        if isinstance(i, slice):
            return [self._make(k) for k in range(self._n)[i]]
        if not -self._n <= i < self._n:
            raise IndexError(f"task {i} of {self._n}")
        return self._make(i % self._n)


def call_captured(fn: Callable[[T], R], task: T) -> tuple[R | None, str]:
    """``(fn(task), "")``, or ``(None, traceback)`` when it raises: errors travel as text."""
    try:
        return fn(task), ""
    except Exception:
        return None, traceback.format_exc()


class Executor(Protocol):
    """Runs ``fn`` over ``tasks``; a context manager that releases what it started on exit."""

    name: str

    def run(self, fn: Callable[[T], R], tasks: Sequence[T], *, num_cpus: int = 1) -> Iterator[Outcome[R]]:
        """Yield one outcome per task, in completion order; each task may use ``num_cpus`` CPUs."""
        ...

    def close(self) -> None:
        """Release what the executor started."""
        ...

    def __enter__(self) -> Executor: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class InProcessExecutor:
    """Runs tasks one after another in this process (the default; ``num_cpus`` is not enforced)."""

    name = "inprocess"

    def run(self, fn: Callable[[T], R], tasks: Sequence[T], *, num_cpus: int = 1) -> Iterator[Outcome[R]]:
        """Yield the outcome of each task in order."""
        for i, task in enumerate(tasks):
            value, error = call_captured(fn, task)
            yield Outcome(i, value, error)

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> InProcessExecutor:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def get_executor(name: str = "inprocess", address: str | None = None) -> Executor:
    """The executor called ``name``; ``address`` (Ray only) joins an existing Ray cluster.

    Without an address the Ray engine starts a local Ray instance on this machine's CPUs.
    """
    if name == "inprocess":
        if address is not None:
            raise ValueError(f"--address='{address}' needs --executor ray")
        return InProcessExecutor()
    if name == "ray":
        try:
            from hetero_opt.batch.ray_executor import RayExecutor
        except ModuleNotFoundError as exc:
            if exc.name != "ray":
                raise
            raise InputError("executor='ray': Ray is not installed; pip install 'hetero_opt[distributed]'") from None
        return RayExecutor(address=address)
    raise ValueError(f"executor='{name}' is not one of {list(EXECUTORS)}")


def add_executor_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--executor`` and ``--address`` to a subcommand."""
    parser.add_argument(
        "--executor", default="inprocess", choices=EXECUTORS, help="where tasks run (default: %(default)s)"
    )
    parser.add_argument(
        "--address",
        metavar="ADDR",
        help="Ray cluster to join (e.g. 'auto' or 'ray://head:10001'); default: start a local Ray instance",
    )


def executor_from_args(args: argparse.Namespace) -> Executor:
    """The executor that ``--executor`` and ``--address`` ask for."""
    return get_executor(args.executor, args.address)
