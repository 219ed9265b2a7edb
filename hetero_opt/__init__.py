"""hetero_opt: autoscaling and topology-aware placement of P/D-disaggregated LLM serving.

Implements HeteroScale (arXiv 2508.19559): the policy engine decides *how many*, the placement
engine (greedy, CP-SAT, MILP) decides *where*, and an independent verifier checks every plan.
"""

from hetero_opt.autoscaler import Autoscaler, AutoscalerState, CycleDecision, ServiceCycle
from hetero_opt.errors import InputError, PlanError
from hetero_opt.instance import Instance
from hetero_opt.io import load_instance, parse_instance, save_instance
from hetero_opt.placement.apply import apply_plan
from hetero_opt.placement.objective import Score, score
from hetero_opt.placement.plan import Plan
from hetero_opt.placement.result import PlacementResult
from hetero_opt.placement.solve import solve
from hetero_opt.placement.verify import Violation, verify
from hetero_opt.policy.config import AutoscalerConfig, ServicePolicy, load_policy_config
from hetero_opt.policy.engine import ServiceMetrics
from hetero_opt.topology import TopologyView, build_view

__all__ = [
    "Autoscaler",
    "AutoscalerConfig",
    "AutoscalerState",
    "CycleDecision",
    "InputError",
    "Instance",
    "PlacementResult",
    "Plan",
    "PlanError",
    "Score",
    "ServiceCycle",
    "ServiceMetrics",
    "ServicePolicy",
    "TopologyView",
    "Violation",
    "apply_plan",
    "build_view",
    "load_instance",
    "load_policy_config",
    "parse_instance",
    "save_instance",
    "score",
    "solve",
    "verify",
]
__version__ = "0.1.0"
