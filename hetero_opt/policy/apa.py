"""AIBrix's Advanced Pod Autoscaler (APA), as a pure baseline.

Follows vllm-project/aibrix ``pkg/controller/podautoscaler/algorithm/apa.go``
(``computeTargetReplicas``) and ``scaler/apa.go`` (``ApaAutoscaler.Scale``, the defaults of
``NewApaScalingContext`` and ``common.NewBaseScalingContext``); see ``docs/policy.md``, "APA
baseline". Read to learn; no code copied. AIBrix credits the rule to Huo et al., "High Concurrency
Response Strategy based on Kubernetes Horizontal Pod Autoscaler" (2023).

With ``r = use per pod / target``:

* ``r > 1 + up_tolerance``: ``min(ceil(pods × r), ceil(max_scale_up_rate × pods))``;
* ``r < 1 - down_tolerance``: ``max(ceil(pods × r), floor(pods / max_scale_down_rate))``;
* otherwise ``pods`` (both band ends are no change: the comparisons are strict).

``Scale`` averages the metric over ``window_s`` (the APA metrics client's window), divides it by the
ready pods and applies the rule to the ready pods; with no ready pod it returns no valid result.
APA keeps no state besides the metric window: no stabilisation, no delay, no panic mode.
"""

from __future__ import annotations

import math

from pydantic import Field

from hetero_opt.policy._base import Frozen
from hetero_opt.policy.kpa import MetricSample


class APASpec(Frozen):
    """The parts of upstream's ``ApaScalingContext`` the rule reads (defaults from upstream)."""

    target_value: float = Field(gt=0, description="Metric per pod to hold (TargetValue).")
    up_fluctuation_tolerance: float = Field(default=0.1, ge=0, description="Scale up above (1 + this) × target.")
    down_fluctuation_tolerance: float = Field(
        default=0.2, ge=0, le=1, description="Scale down below (1 - this) × target."
    )
    max_scale_up_rate: float = Field(default=2.0, gt=0, description="At most ceil(rate × pods) after a scale-up.")
    max_scale_down_rate: float = Field(default=2.0, gt=0, description="At least floor(pods / rate) after a scale-down.")


def apa_target_replicas(spec: APASpec, current_pods: float, use_per_pod: float) -> int:
    """Upstream ``computeTargetReplicas``: the fluctuation band, then the rate caps."""
    ratio = use_per_pod / spec.target_value
    if ratio > 1 + spec.up_fluctuation_tolerance:
        cap = math.ceil(spec.max_scale_up_rate * current_pods)
        return int(min(math.ceil(current_pods * ratio), cap))
    if ratio < 1 - spec.down_fluctuation_tolerance:
        floor = math.floor(current_pods / spec.max_scale_down_rate)
        return int(max(math.ceil(current_pods * ratio), floor))
    return int(current_pods)


def apa_scale(spec: APASpec, ready_pods: int, observed_total: float) -> int | None:
    """Upstream ``ApaAutoscaler.Scale``: the pool's windowed total over its ready pods; None (no
    valid result, hold) without a ready pod."""
    if ready_pods <= 0:
        return None
    return apa_target_replicas(spec, float(ready_pods), observed_total / ready_pods)


class APAState(Frozen):
    """What one pool's APA remembers between cycles: its metric samples over the window."""

    samples: tuple[MetricSample, ...] = Field(default=(), description="The metric over the window.")
