"""Configuration of the policy engine: one :class:`ServicePolicy` per service, loadable from YAML.

Defaults follow the paper where it gives numbers (tier steps +20 %/+10 %/−5 %) and Kubernetes
for the HPA baseline (tolerance 0.1, 300 s scale-down stabilisation, 15 s sync). Thresholds the
paper leaves open (θ, α/β/γ, cooldowns) have defaults documented in ``docs/policy.md``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from hetero_opt.errors import InputError
from hetero_opt.io import load_yaml_model
from hetero_opt.policy._base import Frozen
from hetero_opt.policy.anticipation import AnticipationConfig
from hetero_opt.policy.feedback import LatencyTiers
from hetero_opt.policy.headroom import HeadroomConfig
from hetero_opt.policy.hpa import HPABehavior, HPAControllerConfig
from hetero_opt.policy.periodic import PeriodicWindow
from hetero_opt.policy.profiles import ServingProfile, load_profiles

PolicyName = Literal["proportional", "feedback", "hybrid", "periodic", "hpa", "kpa", "apa", "static"]


class ProportionalConfig(Frozen):
    """Algorithm 2 on decode TPS."""

    target_decode_tps_per_pod: float | None = Field(
        default=None, ge=1e-3, le=1e12, description="Decode tokens/s per decode pod; None = from profile."
    )
    theta_out: float = Field(default=0.1, ge=0, description="Scale out when R > 1 + theta_out.")
    theta_in: float = Field(default=0.2, ge=0, lt=1, description="Scale in when R < 1 - theta_in.")
    in_headroom: float = Field(
        default=0.1, ge=0, description="A scale-in keeps this fraction of capacity above the load (in→out guard)."
    )


class FeedbackConfig(Frozen):
    """Algorithm 3 on latency."""

    signals: tuple[Literal["tbt", "ttft"], ...] = Field(
        default=("tbt",), min_length=1, description="Latency signals used (paper: TBT first)."
    )
    target_ttft_ms: float | None = Field(default=None, gt=0, description="TTFT target (ms); None = profile SLO.")
    target_tbt_ms: float | None = Field(default=None, gt=0, description="TBT target (ms); None = profile SLO.")
    tiers: LatencyTiers = Field(default_factory=LatencyTiers, description="Tier thresholds.")


#: The share of the per-pod figures a pool is sized at where neither the config nor the profile says.
DEFAULT_TARGET_UTILISATION = 0.8


class PrefillGuardConfig(Frozen):
    """The prefill guard (``policy/prefill_guard.py``): prefill TPS against prefill capacity."""

    enabled: bool = Field(default=True, description="Check prefill every cycle (needs prefill_tps and a per-pod rate).")
    prefill_tps_per_pod: float | None = Field(
        default=None, gt=0, description="Cache-missed prompt tokens/s per prefill pod; None = from profile."
    )
    min_prefill_per_decode: float | None = Field(
        default=None, gt=0, description="Lowest P:D the guard may move to; None = profile bounds (else no move)."
    )
    max_prefill_per_decode: float | None = Field(
        default=None, gt=0, description="Highest P:D the guard may move to; None = profile bounds (else no move)."
    )
    margin: float = Field(default=0.2, ge=0, lt=1, description="Headroom kept when moving prefill down.")
    move_ratio: bool = Field(
        default=True,
        description="Autoscaler: apply the guard's unit (a ratio move of every group, within the bounds); "
        "False: keep the instance's ratio and alert.",
    )
    scale_units: bool = Field(
        default=True,
        description="Proportional/hybrid: also hold enough units for prefill at the highest reachable P:D "
        "(prefill TPS / (p_max × prefill_tps_per_pod × target_utilisation)).",
    )
    hold_s: float | None = Field(
        default=None, ge=0, le=86_400,
        description="A move of p down waits until no higher p was wanted for this long (s); "
        "None = the scale-in window.",
    )
    saturated_util_percent: float | None = Field(
        default=95.0, gt=0, le=100,
        description="Prefill GPU utilisation (%) at which the pool counts as saturated: its served prefill TPS "
        "then under-reads demand, so it is read as at least the pods serving × prefill_tps_per_pod; None = off.",
    )
    target_utilisation: float | None = Field(
        default=None, gt=0, le=1,
        description="Share of prefill_tps_per_pod a prefill pod is sized at (served prefill TPS cannot exceed "
        "capacity, so a saturated pool reads as short); None = the profile's target_utilisation, else 0.8.",
    )

    @property
    def utilisation(self) -> float:
        """``target_utilisation``, or the default where it is unset."""
        return DEFAULT_TARGET_UTILISATION if self.target_utilisation is None else self.target_utilisation


class HybridConfig(Frozen):
    """Hybrid: how long latency must stay relaxed before the units it added are released."""

    release_hold_s: float = Field(
        default=1800.0, ge=0, description="Release latency-added units after this long in the relaxed (γ) tier (s)."
    )


class PeriodicConfig(Frozen):
    """Time-of-day schedule."""

    windows: tuple[PeriodicWindow, ...] = Field(default=(), description="Windows, first wins.")
    default_units: int | None = Field(default=None, ge=0, description="Units outside all windows; None = keep current.")
    utc_offset_hours: float = Field(
        default=0.0, ge=-14, le=14, description="Fixed offset of the schedule's local time."
    )


class HPAPolicyConfig(Frozen):
    """The Kubernetes HPA baseline: each pool scaled alone on its GPU utilisation."""

    prefill_target_util_percent: int = Field(default=60, gt=0, description="Prefill pool target GPU utilisation (%).")
    decode_target_util_percent: int = Field(default=60, gt=0, description="Decode pool target GPU utilisation (%).")
    behavior: HPABehavior | None = Field(default=None, description="spec.behavior for both pools; None = legacy path.")
    controller: HPAControllerConfig = Field(default_factory=HPAControllerConfig, description="Controller flags.")


def _check(ok: bool, name: str, value: object, rule: str) -> None:
    """Refuse ``name=value`` in one line naming the rule it breaks."""
    if not ok:
        raise ValueError(f"{name}={value!r} {rule}")


class PerPodMetricConfig(Frozen):
    """The metric a KPA or APA baseline holds per pod, for each pool (prefill and decode alone)."""

    metric: Literal["tps", "gpu_util"] = Field(
        default="tps",
        description="tps: prefill pool on prefill TPS, decode pool on decode TPS (tokens/s per pod); "
        "gpu_util: each pool on its GPU utilisation (percent per pod).",
    )
    prefill_target_per_pod: float | None = Field(
        default=None,
        description="Prefill pool's target per pod; None = tps: prefill_guard.prefill_tps_per_pod × "
        "prefill_guard.target_utilisation (as decode-TPS control sizes prefill), gpu_util: 60.",
    )
    decode_target_per_pod: float | None = Field(
        default=None,
        description="Decode pool's target per pod; None = tps: proportional.target_decode_tps_per_pod, gpu_util: 60.",
    )

    def _check_targets(self) -> None:
        for name in ("prefill_target_per_pod", "decode_target_per_pod"):
            v = getattr(self, name)
            # at least 1e-6 per pod: a smaller target overflows the pod counts (1e9 tokens/s over it)
            _check(v is None or 1e-6 <= v <= 1e12, name, v, "must be in [1e-06, 1e12]")
            if self.metric == "gpu_util" and v is not None:
                _check(v <= 100, name, v, "must be <= 100 (percent) with metric gpu_util")


class KPAPolicyConfig(PerPodMetricConfig):
    """The Knative Pod Autoscaler baseline; defaults and ranges of knative/serving ``config-autoscaler``."""

    stable_window_s: float = Field(default=60.0, description="stable-window (s), whole seconds in [6, 3600].")
    panic_window_percentage: float = Field(
        default=10.0, description="panic-window-percentage: panic window as % of the stable window, in [1, 100]."
    )
    panic_threshold_percentage: float = Field(
        default=200.0,
        description="panic-threshold-percentage: panic at this % of the ready pods' target, in [110, 1000].",
    )
    max_scale_up_rate: float = Field(default=1000.0, description="max-scale-up-rate, > 1.")
    max_scale_down_rate: float = Field(default=2.0, description="max-scale-down-rate, > 1.")
    scale_down_delay_s: float = Field(
        default=0.0, description="scale-down-delay (s), whole seconds in [0, 3600]; 0 = none."
    )
    activation_scale: int = Field(default=1, description="activation-scale: least non-zero pod count, >= 1.")

    @model_validator(mode="after")
    def _ranges(self) -> KPAPolicyConfig:
        self._check_targets()
        w = self.stable_window_s
        _check(6 <= w <= 3600 and float(w).is_integer(), "stable_window_s", w, "must be whole seconds in [6, 3600]")
        p = self.panic_window_percentage
        _check(1 <= p <= 100, "panic_window_percentage", p, "must be in [1, 100]")
        t = self.panic_threshold_percentage
        _check(110 <= t <= 1000, "panic_threshold_percentage", t, "must be in [110, 1000]")
        up, down = self.max_scale_up_rate, self.max_scale_down_rate
        _check(1 < up <= 1e9, "max_scale_up_rate", up, "must be > 1 and <= 1e9")
        _check(1 < down <= 1e9, "max_scale_down_rate", down, "must be > 1 and <= 1e9")
        d = self.scale_down_delay_s
        _check(0 <= d <= 3600 and float(d).is_integer(), "scale_down_delay_s", d,
               "must be whole seconds in [0, 3600]")
        _check(1 <= self.activation_scale <= 1_000_000, "activation_scale", self.activation_scale,
               "must be in [1, 1000000]")
        return self


class APAPolicyConfig(PerPodMetricConfig):
    """AIBrix's Advanced Pod Autoscaler baseline; defaults of ``NewApaScalingContext``."""

    up_fluctuation_tolerance: float = Field(default=0.1, description="Scale up above (1 + this) × target, >= 0.")
    down_fluctuation_tolerance: float = Field(
        default=0.2, description="Scale down below (1 - this) × target, in [0, 1]."
    )
    window_s: float = Field(default=60.0, description="Metric window (s), > 0.")
    max_scale_up_rate: float = Field(default=2.0, description="At most ceil(rate × ready pods) per cycle, >= 1.")
    max_scale_down_rate: float = Field(default=2.0, description="At least floor(ready pods / rate) per cycle, >= 1.")

    @model_validator(mode="after")
    def _ranges(self) -> APAPolicyConfig:
        self._check_targets()
        u, d = self.up_fluctuation_tolerance, self.down_fluctuation_tolerance
        _check(0 <= u <= 1e6, "up_fluctuation_tolerance", u, "must be in [0, 1e6]")
        _check(0 <= d <= 1, "down_fluctuation_tolerance", d, "must be in [0, 1]")
        _check(0 < self.window_s <= 86_400, "window_s", self.window_s, "must be > 0 and <= 86400")
        up, down = self.max_scale_up_rate, self.max_scale_down_rate
        _check(1 <= up <= 1e9, "max_scale_up_rate", up, "must be in [1, 1e9]")
        _check(1 <= down <= 1e9, "max_scale_down_rate", down, "must be in [1, 1e9]")
        return self


class StabilityConfig(Frozen):
    """Anti-flapping mechanisms of §3.6."""

    cooldown_out_s: float = Field(default=60.0, ge=0, description="Scale-out cooldown (s).")
    cooldown_in_s: float = Field(default=300.0, ge=0, description="Scale-in cooldown (s).")
    cooldown_from: Literal["last_action", "same_direction"] = Field(
        default="last_action",
        description="Count cooldowns from the last action of any direction (paper) or the same.",
    )
    max_step_out_units: int | None = Field(default=None, ge=1, description="Dampening: most units added per action.")
    max_step_out_percent: float | None = Field(
        default=None, gt=0, description="Dampening: most percent of supply added per action."
    )
    max_step_in_units: int | None = Field(default=None, ge=1, description="Dampening: most units removed per action.")
    max_step_in_percent: float | None = Field(
        default=None, gt=0, le=100, description="Dampening: most percent removed per action."
    )
    scale_in_window_s: float = Field(
        default=1800.0, ge=0, description="Scale-in stabilisation window (s); 0 = off."
    )
    count_pending: bool = Field(default=True, description="Count starting units as supply (no double scale-out).")
    soft_scale_in_s: float = Field(
        default=0.0, ge=0, description="Soft scale-in: drain removed pods this long before deleting them (s); 0 = off."
    )


class ServicePolicy(Frozen):
    """How one service is scaled."""

    service: str = Field(min_length=1, description="Service id (matches the instance).")
    policy: PolicyName = Field(description="Which policy decides.")
    min_units: int = Field(default=1, ge=0, description="Fewest units.")
    max_units: int = Field(default=1000, ge=0, description="Most units.")
    max_gpus: int | None = Field(
        default=None, ge=0,
        description="GPU budget of the service (prefill + decode pods' GPUs); None = no budget. A hard cap: "
        "the units are cut to what fits (below min_units too, with an alert).",
    )
    gpus_per_pod: tuple[int, int] | None = Field(
        default=None,
        description="(prefill, decode) GPUs per pod for max_gpus; None = from the profile (the Autoscaler uses "
        "the instance's).",
    )
    static_units: int | None = Field(default=None, ge=0, description="Units of the static policy (peak provisioning).")
    profile: str | None = Field(default=None, description="Serving profile name (models/).")
    gpu_type: str | None = Field(default=None, description="GPU type to read the profile at.")
    proportional: ProportionalConfig = Field(default_factory=ProportionalConfig, description="Algorithm 2 settings.")
    feedback: FeedbackConfig = Field(default_factory=FeedbackConfig, description="Algorithm 3 settings.")
    hybrid: HybridConfig = Field(default_factory=HybridConfig, description="Hybrid memory settings.")
    prefill_guard: PrefillGuardConfig = Field(default_factory=PrefillGuardConfig, description="Prefill guard.")
    anticipation: AnticipationConfig = Field(
        default_factory=AnticipationConfig, description="Anticipation floor: learned schedule and trend look-ahead."
    )
    periodic: PeriodicConfig = Field(default_factory=PeriodicConfig, description="Periodic schedule.")
    hpa: HPAPolicyConfig = Field(default_factory=HPAPolicyConfig, description="HPA baseline.")
    kpa: KPAPolicyConfig = Field(default_factory=KPAPolicyConfig, description="Knative KPA baseline.")
    apa: APAPolicyConfig = Field(default_factory=APAPolicyConfig, description="AIBrix APA baseline.")
    stability: StabilityConfig = Field(default_factory=StabilityConfig, description="Stability mechanisms.")
    headroom: HeadroomConfig = Field(
        default_factory=HeadroomConfig, description="SLO-tuned target utilisation (proportional and hybrid)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> ServicePolicy:
        if self.min_units > self.max_units:
            raise ValueError(f"Service '{self.service}': min_units={self.min_units} exceeds max_units={self.max_units}")
        if self.policy == "static" and self.static_units is None:
            raise ValueError(f"Service '{self.service}': policy 'static' needs static_units")
        if self.policy == "periodic" and not self.periodic.windows:
            raise ValueError(f"Service '{self.service}': policy 'periodic' needs windows")
        if self.gpus_per_pod is not None and min(self.gpus_per_pod) < 1:
            raise ValueError(f"Service '{self.service}': gpus_per_pod={self.gpus_per_pod} needs >= 1 GPU per pod")
        if (self.profile is None) != (self.gpu_type is None):
            raise ValueError(f"Service '{self.service}': profile and gpu_type must be given together")
        return self

    def resolve(self, profiles: Mapping[str, ServingProfile]) -> ServicePolicy:
        """Fill targets left None from the service's serving profile."""
        if self.profile is None or self.gpu_type is None:
            return self
        if self.profile not in profiles:
            raise InputError(f"Service '{self.service}': profile='{self.profile}' not found")
        prof = profiles[self.profile]
        # A curated headroom (decision 63) sizes both pools at that share of the figures; a target_utilisation
        # given here replaces it for both. Neither: the decode figure itself is the target (hand-written
        # profiles, whose figures are what a pod sustains within the SLO) and prefill at the guard's default.
        curated = prof.gpu(self.gpu_type).target_utilisation
        given = self.prefill_guard.target_utilisation
        headroom = given if given is not None else curated.value if curated is not None else None
        prop = self.proportional
        if prop.target_decode_tps_per_pod is None:
            share = headroom if headroom is not None else 1.0
            prop = prop.replace(target_decode_tps_per_pod=prof.decode_tps_per_pod(self.gpu_type) * share)
        fb = self.feedback
        if fb.target_ttft_ms is None:
            fb = fb.replace(target_ttft_ms=prof.slo.ttft_ms)
        if fb.target_tbt_ms is None:
            fb = fb.replace(target_tbt_ms=prof.slo.tbt_ms)
        guard = self.prefill_guard
        if given is None and curated is not None:
            guard = guard.replace(target_utilisation=curated.value)
        if guard.prefill_tps_per_pod is None:
            guard = guard.replace(prefill_tps_per_pod=prof.prefill_tps_per_pod(self.gpu_type))
        bounds = prof.gpu(self.gpu_type).unit.bounds
        if bounds is not None and guard.min_prefill_per_decode is None and guard.max_prefill_per_decode is None:
            guard = guard.replace(
                min_prefill_per_decode=bounds.min_prefill_per_decode,
                max_prefill_per_decode=bounds.max_prefill_per_decode,
            )
        gpus = self.gpus_per_pod
        if gpus is None:
            g = prof.gpu(self.gpu_type)
            gpus = (g.prefill.gpus_per_pod, g.decode.gpus_per_pod)
        return self.replace(proportional=prop, feedback=fb, prefill_guard=guard, gpus_per_pod=gpus)


class AutoscalerConfig(Frozen):
    """All services' policies."""

    services: tuple[ServicePolicy, ...] = Field(description="One entry per service.")
    models_dir: str | None = Field(default=None, description="Profiles folder, relative to the config file.")

    @model_validator(mode="after")
    def _unique(self) -> AutoscalerConfig:
        check_listed_once(s.service for s in self.services)
        return self

    def by_service(self) -> dict[str, ServicePolicy]:
        """Policies keyed by service id."""
        return {s.service: s for s in self.services}


def load_policy_config(path: str | Path, profiles: Mapping[str, ServingProfile] | None = None) -> AutoscalerConfig:
    """Load an :class:`AutoscalerConfig` from YAML and resolve profile targets.

    Profiles come from ``profiles`` if given, else from ``models_dir`` (relative to the file).
    """
    p = Path(path)
    cfg = load_yaml_model(p, AutoscalerConfig, "Policy config", kinds={"services": "Service"})
    if not any(s.profile for s in cfg.services):
        return cfg
    where = f"Policy config '{p}'"
    if profiles is None:
        if cfg.models_dir is None:
            raise InputError(f"{where}: services name profiles but no models_dir")
        folder = p.parent / cfg.models_dir
        if not folder.is_dir():
            raise InputError(f"{where}: models_dir='{cfg.models_dir}': no such folder ({folder})")
        profiles = load_profiles(folder)
        source = f"models_dir '{folder}'"
    else:
        source = "the profiles given"
    for s in cfg.services:
        if s.profile is not None and s.profile not in profiles:
            known = ", ".join(sorted(profiles)) or "none"
            raise InputError(f"{where}: Service '{s.service}': profile='{s.profile}' not found in {source} "
                             f"(known: {known})")
    return cfg.replace(services=tuple(s.resolve(profiles) for s in cfg.services))


def check_listed_once(service_ids: Iterable[str]) -> None:
    """Raise ``ValueError`` naming the first service listed twice (configs list each service once)."""
    seen: set[str] = set()
    for sid in service_ids:
        if sid in seen:
            raise ValueError(f"Service '{sid}': listed twice")
        seen.add(sid)
