"""Simulation config values the solver or the autoscaler would refuse are refused by the config, naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest
from sim_helpers import SIM_DIR

from hetero_opt.errors import InputError
from hetero_opt.sim.config import load_sim_config

SIM = SIM_DIR


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # each was refused only once the run built its Autoscaler: 'solve: seed=...', 'Autoscaler: ...',
        # without the file (and seed: -1 as numpy's "expected non-negative integer")
        ("seed: -1", "seed=-1: Input should be greater than or equal to 0"),
        ("seed: 1e23", "seed='1e23': Input should be a valid integer"),
        ("seed: 4294967296", "seed=4294967296: Input should be less than or equal to 2147483647"),
        ("solver_time_limit_s: 1e9", "solver_time_limit_s='1e9': Input should be less than or equal to 86400"),
        ("startup_delay_s: 1e12", "startup_delay_s='1e12': Input should be less than or equal to 1000000000"),
    ],
)
def test_out_of_range_values_are_refused_naming_the_file(tmp_path: Path, line: str, expected: str) -> None:
    key = line.split(":")[0]
    text = (SIM / "sim.yaml").read_text(encoding="utf-8")
    kept = [x for x in text.splitlines() if not x.startswith(f"{key}:")]
    cfg = tmp_path / "sim.yaml"
    cfg.write_text("\n".join([*kept, line]) + "\n", encoding="utf-8")
    (tmp_path / "policy.yaml").write_text((SIM / "policy.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(InputError) as exc:
        load_sim_config(cfg)
    assert str(exc.value).startswith(f"Simulation config '{cfg}': {expected}")
