"""Fuzz the instance model and every solver: a valid instance gets verified plans from greedy,
CP-SAT and MILP, CP-SAT never scores worse than greedy and repeats itself, and the instance after
the plan validates again; an invalid one is one :class:`InputError` line."""

from __future__ import annotations

from typing import Any

from hypothesis import event, given

from fuzz.budget import fuzz_settings
from fuzz.strategies import instance_dicts
from hetero_opt import InputError, Instance, parse_instance, solve, verify
from hetero_opt.placement.apply import apply_plan


@fuzz_settings("instances")
@given(data=instance_dicts())
def test_fuzz_instance_model_every_solver_verified_and_never_worse(data: dict[str, Any]) -> None:
    error = ""
    try:
        inst = parse_instance(data, "fuzz")
    except InputError as exc:
        error = str(exc)
    if error:
        event("invalid instance")
        assert "\n" not in error
        assert error.startswith("fuzz: ")
        return
    event("valid instance")
    greedy = solve(inst, "greedy")
    assert verify(inst, greedy.plan) == []
    cpsat = solve(inst, "cpsat", time_limit=1.0, seed=0)
    assert verify(inst, cpsat.plan) == []
    assert cpsat.score.key() <= greedy.score.key()
    assert solve(inst, "cpsat", time_limit=1.0, seed=0).plan == cpsat.plan
    milp = solve(inst, "milp", time_limit=1.0)
    assert verify(inst, milp.plan) == []
    for result in (greedy, cpsat, milp):
        after = apply_plan(inst, result.plan)
        Instance.model_validate(after.model_dump())  # the next cycle's instance is valid input
