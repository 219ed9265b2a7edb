"""One local Ray instance for the whole session (its start-up is slow), and a folder of instances."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray

from batch.helpers import FOLDER_INSTANCES
from hetero_opt.batch.ray_executor import RayExecutor
from hetero_opt.generate import generate_instance
from hetero_opt.io import save_instance


@pytest.fixture(scope="session")
def ray_executor() -> Iterator[RayExecutor]:
    """A RayExecutor on a local 2-CPU Ray instance, shut down at the end of the session."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    try:
        yield RayExecutor()  # Ray is already up: the executor uses it and leaves it to this fixture
    finally:
        ray.shutdown()


@pytest.fixture(scope="session")
def instance_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ten generated instance files (tiny, contention, small)."""
    folder = tmp_path_factory.mktemp("instances")
    for family, seed in FOLDER_INSTANCES:
        save_instance(generate_instance(family, seed), folder / f"{family}-{seed}.json")
    return folder
