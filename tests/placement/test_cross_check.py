"""CP-SAT and the independent MILP reach the same optimal objective terms (1-4)."""

from __future__ import annotations

import pytest
from conftest import BUNDLED

import hetero_opt as ho
from hetero_opt.generate import generate_instance

GENERATED = [(f, s) for f in ("tiny", "small", "contention", "moe") for s in range(3)] + [("medium", 0)]


def _instances() -> list[tuple[str, ho.Instance]]:
    out = [(p.stem, ho.load_instance(p)) for p in BUNDLED]
    out += [(f"{f}-{s}", generate_instance(f, s)) for f, s in GENERATED]
    return out


@pytest.mark.parametrize(("name", "instance"), _instances(), ids=lambda x: x if isinstance(x, str) else "")
def test_cpsat_and_milp_agree_when_both_prove_optimality(name: str, instance: ho.Instance) -> None:
    cpsat = ho.solve(instance, "cpsat", time_limit=20.0)
    milp = ho.solve(instance, "milp", time_limit=20.0)
    assert ho.verify(instance, cpsat.plan) == []
    assert ho.verify(instance, milp.plan) == []
    assert cpsat.status == "optimal", cpsat.termination
    assert milp.status == "optimal", milp.termination
    # terms 1-4: unserved GPUs per priority class, premium cost, new groups, emptied groups
    assert cpsat.score.key()[:4] == milp.score.key()[:4], name
