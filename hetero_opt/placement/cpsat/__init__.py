"""CP-SAT placement backend: aggregated count model, staged lexicographic objective, greedy hint."""

from hetero_opt.placement.cpsat.solver import CpSatBackend, hint_is_feasible
from hetero_opt.placement.cpsat.stages import ModelInvalidError

__all__ = ["CpSatBackend", "ModelInvalidError", "hint_is_feasible"]
