"""How many: HeteroScale's policy engine (paper §3.3, §3.6, Appendix 9) and the HPA baseline."""

from hetero_opt.policy.config import (
    AutoscalerConfig,
    FeedbackConfig,
    HPAPolicyConfig,
    HybridConfig,
    PeriodicConfig,
    PrefillGuardConfig,
    ProportionalConfig,
    ServicePolicy,
    StabilityConfig,
    load_policy_config,
)
from hetero_opt.policy.engine import (
    Decision,
    EngineState,
    PolicyEngine,
    ServiceMetrics,
    ServicePolicyState,
    decide,
    metrics_from_frame,
)
from hetero_opt.policy.feedback import LatencyTiers
from hetero_opt.policy.headroom import HeadroomConfig, HeadroomMemory
from hetero_opt.policy.hybrid import HybridMemory
from hetero_opt.policy.openloop import FlapStats, OpenLoopResult, flap_stats, open_loop, servegen_series
from hetero_opt.policy.periodic import PeriodicWindow
from hetero_opt.policy.prefill_guard import GuardResult, prefill_guard
from hetero_opt.policy.profiles import ServingProfile, load_profile, load_profiles
from hetero_opt.policy.prometheus import (
    PromSample,
    parse_exposition,
    service_metrics_from_samples,
)

__all__ = [
    "AutoscalerConfig",
    "Decision",
    "EngineState",
    "FeedbackConfig",
    "FlapStats",
    "GuardResult",
    "HPAPolicyConfig",
    "HeadroomConfig",
    "HeadroomMemory",
    "HybridConfig",
    "HybridMemory",
    "LatencyTiers",
    "OpenLoopResult",
    "PeriodicConfig",
    "PeriodicWindow",
    "PolicyEngine",
    "PrefillGuardConfig",
    "PromSample",
    "ProportionalConfig",
    "ServiceMetrics",
    "ServicePolicy",
    "ServicePolicyState",
    "ServingProfile",
    "StabilityConfig",
    "decide",
    "flap_stats",
    "load_policy_config",
    "load_profile",
    "load_profiles",
    "metrics_from_frame",
    "open_loop",
    "parse_exposition",
    "prefill_guard",
    "servegen_series",
    "service_metrics_from_samples",
]
