"""Shared fixtures of the benchmark suites (run with ``make bench``, not ``make test``)."""

from __future__ import annotations

import pytest

from hetero_opt.generate import generate_instance
from hetero_opt.instance import Instance


@pytest.fixture(scope="session")
def production() -> Instance:
    """The production-size instance (seed 0): 20,480 nodes, 163,840 GPUs, 200 services, 50 requests."""
    return generate_instance("production", 0)
