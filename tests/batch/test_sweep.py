"""Sweeps on both engines: values in task order, every failure reported, never dropped."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import ray

from hetero_opt.batch import LazyTasks, SweepError, get_executor, sweep
from hetero_opt.batch.executor import Executor, InProcessExecutor
from hetero_opt.batch.ray_executor import RayExecutor


@pytest.fixture(params=["inprocess", "ray"])
def executor(request: pytest.FixtureRequest) -> Executor:
    if request.param == "ray":
        ray_executor: RayExecutor = request.getfixturevalue("ray_executor")
        return ray_executor
    return InProcessExecutor()


def test_sweep_returns_values_in_task_order(executor: Executor) -> None:
    result = sweep(math.sqrt, [16.0, 4.0, 9.0, 1.0], executor=executor, progress=False)
    assert result.values() == [4.0, 2.0, 3.0, 1.0]


def test_failed_tasks_are_reported_not_dropped(executor: Executor) -> None:
    result = sweep(math.sqrt, [4.0, -1.0, 9.0, -4.0], executor=executor, progress=False)
    assert [o.value for o in result.outcomes] == [2.0, None, 3.0, None]
    assert [o.index for o in result.failures] == [1, 3]
    assert result.failures[0].error_line == "ValueError: math domain error"
    with pytest.raises(SweepError, match=r"2 of 4 tasks failed: task 1: ValueError: math domain error"):
        result.values()


def test_ray_refuses_tasks_larger_than_any_node(ray_executor: RayExecutor) -> None:
    with pytest.raises(ValueError, match="num_cpus=3 per task: the largest Ray node has 2 CPUs"):
        sweep(math.sqrt, [1.0], executor=ray_executor, num_cpus=3, progress=False)


def test_get_executor() -> None:
    assert isinstance(get_executor("inprocess"), InProcessExecutor)
    assert isinstance(get_executor("ray"), RayExecutor)  # Ray starts only when it gets work
    with pytest.raises(ValueError, match="executor='dask' is not one of"):
        get_executor("dask")


def test_readme_sweep_example_runs_as_written(ray_executor: RayExecutor, capsys: pytest.CaptureFixture[str]) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("**6. Batches beyond one process**")[1].split("```python\n")[1].split("```")[0]
    exec(compile(block, "README.md", "exec"), {})  # Ray is up (fixture): the example joins it and leaves it up
    assert capsys.readouterr().out.strip() == "[1.0, 2.0, 3.0]"
    assert ray.is_initialized()


def test_lazy_tasks_are_made_when_reached() -> None:
    made: list[int] = []

    def make(i: int) -> float:
        made.append(i)
        return float(i * i)

    tasks = LazyTasks(3, make)
    assert (len(tasks), made) == (3, [])
    outcomes = InProcessExecutor().run(math.sqrt, tasks)
    assert next(outcomes).value == 0.0
    assert made == [0]  # the rest are not made yet
    assert [o.value for o in outcomes] == [1.0, 2.0]
    assert (tasks[-1], list(tasks[1:])) == (4.0, [1.0, 4.0])
    with pytest.raises(IndexError, match="task 3 of 3"):
        tasks[3]
