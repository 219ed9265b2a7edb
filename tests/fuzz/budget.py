"""How many cases each fuzz test runs: the CI profile by default, the long one with ``HETERO_FUZZ=long``.

``HETERO_FUZZ_CASES=N`` scales the chosen profile to about ``N`` cases in total (a reduced long
run on a busy machine). Shares are per test, so the total is what ``docs/reliability.md`` reports.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

#: Share of the total per fuzz test: solver runs are the slow ones.
SHARES = {"instances": 0.15, "raw_bytes": 0.35, "cli_mutation": 0.35, "autoscaler": 0.15}
TOTALS = {"ci": 300, "long": 10_000}


def profile() -> str:
    """The selected profile name (``ci`` unless ``HETERO_FUZZ`` says ``long``)."""
    name = os.environ.get("HETERO_FUZZ", "ci")
    if name not in TOTALS:
        raise ValueError(f"HETERO_FUZZ={name!r} is not one of {sorted(TOTALS)}")
    return name


def total_cases() -> int:
    """Cases of the selected profile, or ``HETERO_FUZZ_CASES`` when set."""
    raw = os.environ.get("HETERO_FUZZ_CASES")
    return int(raw) if raw else TOTALS[profile()]


def fuzz_settings(test: str) -> settings:
    """Hypothesis settings of one fuzz test: its share of the cases, no deadline, no shrink limits."""
    return settings(
        max_examples=max(1, round(total_cases() * SHARES[test])),
        deadline=None,
        derandomize=profile() == "ci",  # CI runs the same cases every time; the long run explores
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
        database=None,
    )
