"""The Ray engine: Ray tasks with bounded in-flight work, per-task CPU requests and retries.

Needs the optional extra ``hetero_opt[distributed]``. Without an address it starts a local Ray
instance on this machine's CPUs (no dashboard) and stops it on :meth:`RayExecutor.close`; with one
it joins that cluster and leaves it running. If Ray is already initialised in this process (a
notebook, a test fixture) the executor uses it and leaves it alone.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import Any, TypeVar

import ray
from ray.exceptions import RayError

from hetero_opt.batch.executor import Outcome, call_captured

T = TypeVar("T")
R = TypeVar("R")

#: Ray re-runs a task whose worker process died this many times before reporting it failed.
MAX_RETRIES = 3


class RayExecutor:
    """Runs each task as a Ray task requesting ``num_cpus`` CPUs.

    Parameters
    ----------
    address
        Ray cluster to join (``auto``, ``ray://host:10001``, ...); ``None`` starts a local instance.
    num_cpus
        CPUs of a local instance (default: this machine's); ignored when joining a cluster.
    max_in_flight
        Tasks submitted and not yet collected; default: twice the tasks the cluster can run at once.
    max_retries
        Retries of a task whose worker died (exceptions raised by the task are not retried: they
        would recur, and come back as failed outcomes).
    runtime_env
        Passed to ``ray.init`` when this executor starts or joins Ray, e.g.
        ``{"py_modules": [path_to_hetero_opt]}`` to ship this code to a cluster.
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        *,
        num_cpus: int | None = None,
        max_in_flight: int | None = None,
        max_retries: int = MAX_RETRIES,
        runtime_env: dict[str, Any] | None = None,
    ) -> None:
        self.address = address
        self.num_cpus = num_cpus
        self.max_in_flight = max_in_flight
        self.max_retries = max_retries
        self.runtime_env = runtime_env
        self._owns_ray = False
        self._remote: Any = None

    def start(self) -> None:
        """Start or join Ray unless this process is already connected."""
        if self._remote is not None:
            return
        if not ray.is_initialized():
            if self.address is None:
                ray.init(
                    address="local",
                    num_cpus=self.num_cpus or os.cpu_count() or 1,
                    include_dashboard=False,
                    logging_level=logging.WARNING,
                    runtime_env=self.runtime_env,
                )
            else:
                ray.init(address=self.address, logging_level=logging.WARNING, runtime_env=self.runtime_env)
            self._owns_ray = True
        self._remote = ray.remote(call_captured)

    def cluster_cpus(self) -> tuple[int, int]:
        """(CPUs of the whole cluster, CPUs of its largest node)."""
        self.start()
        nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
        per_node = [int(n["Resources"].get("CPU", 0)) for n in nodes if n.get("Alive")]
        return sum(per_node), max(per_node, default=0)

    def run(self, fn: Callable[[T], R], tasks: Sequence[T], *, num_cpus: int = 1) -> Iterator[Outcome[R]]:
        """Submit tasks while fewer than ``max_in_flight`` are pending; yield each as it completes."""
        if not tasks:
            return  # nothing to do: do not start Ray for it
        total, largest = self.cluster_cpus()
        if num_cpus > largest:
            raise ValueError(f"num_cpus={num_cpus} per task: the largest Ray node has {largest} CPUs")
        limit = self.max_in_flight or max(1, 2 * (total // num_cpus))
        remote = self._remote.options(num_cpus=num_cpus, max_retries=self.max_retries)
        pending: dict[Any, int] = {}
        queue = iter(enumerate(tasks))
        try:
            while True:
                while len(pending) < limit and (item := next(queue, None)) is not None:
                    pending[remote.remote(fn, item[1])] = item[0]
                if not pending:
                    return
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    index = pending.pop(ref)
                    try:
                        value, error = ray.get(ref)
                    except RayError as exc:
                        value, error = None, f"{type(exc).__name__}: {' '.join(str(exc).split())}"
                    yield Outcome(index, value, error)
        finally:
            for ref in pending:  # the caller stopped early (an error, Ctrl-C): do not leave work behind
                ray.cancel(ref)

    def close(self) -> None:
        """Shut Ray down if this executor started or joined it."""
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()
        self._owns_ray = False
        self._remote = None

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
