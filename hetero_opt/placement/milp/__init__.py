"""Independent MILP placement backend (PuLP with HiGHS or CBC), the cross-check of CP-SAT."""

from hetero_opt.placement.milp.backend import MilpBackend
from hetero_opt.placement.milp.model import MilpModel, build_model

__all__ = ["MilpBackend", "MilpModel", "build_model"]
