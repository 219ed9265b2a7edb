"""The result of one placement solve: the plan and everything about how it was reached."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from hetero_opt.instance import Frozen
from hetero_opt.io import write_atomic
from hetero_opt.placement.objective import Score
from hetero_opt.placement.plan import Plan, Unserved

Status = Literal["optimal", "feasible", "fallback", "greedy"]


class PlacementResult(Frozen):
    """A verified plan with its objective terms, solver, status, timing and fallback reason."""

    instance: str = Field(default="", description="Instance name.")
    solver: str = Field(description="Solver that produced the plan: greedy, cpsat or milp.")
    solver_version: str = Field(default="", description="Version of the solver library.")
    status: Status = Field(
        description="optimal: terms 1-4 proven (whole free nodes, term 5, is decided by node binding and "
        "is heuristic; see gaps); feasible: a plan without full proof; fallback: the solver failed and the "
        "greedy plan is returned; greedy: the greedy solver."
    )
    termination: str = Field(default="", description="Why the solver stopped, in its own words.")
    fallback_reason: str = Field(default="", description="Why the greedy plan was returned.")
    plan: Plan = Field(description="The plan.")
    score: Score = Field(description="Objective terms (hetero_opt.placement.objective).")
    bound: Score | None = Field(
        default=None,
        description="Proven lexicographic lower bound on the terms (no plan scores better); terms not "
        "proven hold trivial bounds.",
    )
    wall_time_s: float = Field(ge=0, description="Wall time of the solve in seconds.")
    seed: int = Field(default=0, description="Random seed used.")
    warnings: list[str] = Field(default_factory=list, description="Warnings about the input.")
    stats: dict[str, float] = Field(default_factory=dict, description="Solver statistics.")

    @property
    def first_stage_gap(self) -> int | None:
        """Unserved GPUs of the top priority class above the proven bound (0: first stage optimal)."""
        if self.bound is None or not self.score.unserved_gpus:
            return None
        return self.score.first_stage_gap(self.bound)

    @property
    def gaps(self) -> dict[str, int | list[int]] | None:
        """Per objective term, the distance to the proven bound (:meth:`Score.gaps_to`); None without a bound."""
        return None if self.bound is None else self.score.gaps_to(self.bound)

    @property
    def unserved(self) -> list[Unserved]:
        """Per request, what was not served and why."""
        return self.plan.unserved

    def to_json(self, indent: int | None = 2) -> str:
        """Serialise to JSON."""
        return self.model_dump_json(indent=indent)

    @classmethod
    def from_json(cls, text: str) -> PlacementResult:
        """Load from JSON written by :meth:`to_json`."""
        return cls.model_validate_json(text)

    def write(self, path: Path) -> None:
        """Write atomically (temporary file, then rename)."""
        write_atomic(path, self.to_json())
