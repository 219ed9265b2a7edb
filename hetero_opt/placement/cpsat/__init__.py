"""CP-SAT placement backend: aggregated count model, staged lexicographic objective, greedy hint."""

from hetero_opt.placement.cpsat.solver import CpSatBackend, ModelInvalidError, hint_is_feasible

__all__ = ["CpSatBackend", "ModelInvalidError", "hint_is_feasible"]
