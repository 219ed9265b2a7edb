"""The Kubernetes HorizontalPodAutoscaler algorithm, as a pure, replayable baseline.

Follows ``pkg/controller/podautoscaler`` of kubernetes/kubernetes (see
``docs/policy.md`` and the research note ``hpa-semantics.md``): integer-percent utilization,
an inclusive tolerance interval with per-direction tolerances, the ``groupPods`` treatment of
unready and missing pods, the legacy stabilization (no ``behavior``) and the behavior path
(stabilization windows, Pods/Percent rate policies, scale-event storage).

The pod-level replica calculator (:func:`group_pods` … :func:`get_usage_ratio_replica_count`) is
the upstream code ported as a reference and checked against the ported upstream test tables;
the engine's baseline works on pool averages through :func:`utilization_replicas`.

Differences from the controller, all deliberate: time is a float of seconds passed in as
``now`` (never the wall clock); history is an explicit immutable :class:`HPAHistory` returned
anew by every stage; metric values are integers in milli-units, as ``Quantity.MilliValue()``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

from pydantic import Field

from hetero_opt.policy._base import Frozen

MAX_INT32 = 2**31 - 1
MAX_INT64 = 2**63 - 1

Reason = Literal[
    "DesiredWithinRange",
    "TooFewReplicas",
    "TooManyReplicas",
    "ScaleUpLimit",
    "ScaleDownLimit",
]


# --------------------------------------------------------------------------- data


class Tolerances(Frozen):
    """The no-scale band ``1 - down <= ratio <= 1 + up`` (both ends inclusive)."""

    scale_up: float = Field(default=0.1, ge=0, description="Up tolerance (flag default 0.1).")
    scale_down: float = Field(default=0.1, ge=0, description="Down tolerance (default 0.1).")

    def is_within(self, ratio: float) -> bool:
        """Return True when ``ratio`` is inside the tolerance band (no scaling)."""
        return (1.0 - self.scale_down) <= ratio <= (1.0 + self.scale_up)


class Pod(Frozen):
    """A pod as ``groupPods`` sees it. Times are seconds on the caller's clock."""

    name: str = Field(min_length=1, description="Pod name; keys the metrics mapping.")
    phase: Literal["Pending", "Running", "Succeeded", "Failed", "Unknown"] = Field(
        default="Running", description="Pod phase."
    )
    deleted: bool = Field(default=False, description="True when a deletion timestamp is set.")
    ready: bool | None = Field(default=True, description="Ready condition status; None when the pod has no condition.")
    ready_transition_time: float = Field(default=-1e9, description="Last transition time of the Ready condition (s).")
    start_time: float | None = Field(default=-1e9, description="Pod start time (s); None when the pod has not started.")
    request_milli: int | None = Field(
        default=None, ge=0, description="Sum of the pod's requests of the resource (milli); None = not set."
    )


class PodMetric(Frozen):
    """One per-pod metric sample."""

    value: int = Field(description="Sample value in milli-units.")
    timestamp: float = Field(default=0.0, description="When the sample was taken (s).")
    window: float = Field(default=60.0, ge=0, description="Metric window of the sample (s).")


class PodGroups(Frozen):
    """The result of :func:`group_pods`."""

    ready_count: int = Field(ge=0, description="Pods that count as ready.")
    unready: frozenset[str] = Field(description="Pending pods, and untrusted pods for cpu.")
    missing: frozenset[str] = Field(description="Pods without a metric sample.")
    ignored: frozenset[str] = Field(description="Deleted or Failed pods.")


class ScalingPolicy(Frozen):
    """One rate policy: at most ``value`` pods or percent per ``period_seconds``."""

    type: Literal["Pods", "Percent"] = Field(description="Pods or Percent.")
    value: int = Field(gt=0, description="Pods, or percent of the period-start count.")
    period_seconds: int = Field(gt=0, le=1800, description="Look-back period (s).")


class ScalingRules(Frozen):
    """``HPAScalingRules`` for one direction; None fields take the API defaults."""

    stabilization_window_seconds: int | None = Field(
        default=None, ge=0, le=3600, description="Stabilization window (s); None = default."
    )
    select_policy: Literal["Max", "Min", "Disabled"] | None = Field(
        default=None, description="Which policy proposal wins; None = Max."
    )
    policies: tuple[ScalingPolicy, ...] | None = Field(
        default=None,
        min_length=1,
        description="Rate policies; None = defaults; a list replaces them all and, as the API server "
        "requires, holds at least one (use select_policy Disabled to forbid a direction).",
    )
    tolerance: float | None = Field(
        default=None, ge=0, description="Per-direction tolerance (HPAConfigurableTolerance)."
    )


class HPABehavior(Frozen):
    """``spec.behavior``: rules for scaling up and down."""

    scale_up: ScalingRules | None = Field(default=None, description="Scale-up rules.")
    scale_down: ScalingRules | None = Field(default=None, description="Scale-down rules.")


class HPAControllerConfig(Frozen):
    """Controller flags (``kube-controller-manager``) with their upstream defaults."""

    tolerance: float = Field(default=0.1, ge=0, description="Cluster-wide tolerance.")
    downscale_stabilization_s: float = Field(
        default=300.0, ge=0, description="Legacy window and the nil scale-down window (s)."
    )
    cpu_initialization_period_s: float = Field(default=300.0, ge=0, description="CPU initialization period (s).")
    initial_readiness_delay_s: float = Field(default=30.0, ge=0, description="Initial readiness delay (s).")
    scale_up_limit_factor: float = Field(default=2.0, gt=0, description="Legacy per-cycle scale-up cap factor.")
    scale_up_limit_minimum: float = Field(default=4.0, ge=0, description="Legacy per-cycle scale-up cap minimum.")


class HPASpec(Frozen):
    """The parts of an HPA spec the algorithm reads."""

    min_replicas: int = Field(default=1, ge=0, description="spec.minReplicas (1 when unset).")
    max_replicas: int = Field(ge=1, description="spec.maxReplicas.")
    behavior: HPABehavior | None = Field(default=None, description="spec.behavior; None selects the legacy path.")


class Recommendation(Frozen):
    """A stored (unstabilized) replica recommendation."""

    replicas: int = Field(description="Recommended replicas.")
    timestamp: float = Field(description="When it was made (s).")


class ScaleEvent(Frozen):
    """A stored scale change (always positive) in one direction."""

    change: int = Field(ge=0, description="Replicas added (up list) or removed (down list).")
    timestamp: float = Field(description="When the change was made (s).")
    outdated: bool = Field(default=False, description="Older than the longest policy period.")


class HPAHistory(Frozen):
    """Everything the controller remembers about one HPA between syncs."""

    recommendations: tuple[Recommendation, ...] | None = Field(
        default=None, description="Stored recommendations; None until the first sync."
    )
    scale_up_events: tuple[ScaleEvent, ...] = Field(default=(), description="Scale-up events.")
    scale_down_events: tuple[ScaleEvent, ...] = Field(default=(), description="Scale-down events.")


class HPAResult(Frozen):
    """The outcome of one :func:`reconcile`."""

    desired_replicas: int = Field(ge=0, description="Replicas to set.")
    rescale: bool = Field(description="True when desired differs from current.")
    reason: str = Field(description="Condition reason (e.g. ScaleUpLimit) or short-circuit.")
    metric_replicas: int | None = Field(description="Largest per-metric proposal, if computed.")
    stabilized_replicas: int | None = Field(description="After stabilization, if computed.")


# --------------------------------------------------------------------------- defaults


def default_scale_up_rules() -> ScalingRules:
    """Return the API default scale-up rules: window 0, Max, Pods 4/15 s and Percent 100/15 s."""
    return ScalingRules(
        stabilization_window_seconds=0,
        select_policy="Max",
        policies=(
            ScalingPolicy(type="Pods", value=4, period_seconds=15),
            ScalingPolicy(type="Percent", value=100, period_seconds=15),
        ),
    )


def default_scale_down_rules() -> ScalingRules:
    """Return the API default scale-down rules: window nil, Max, Percent 100/15 s."""
    return ScalingRules(
        stabilization_window_seconds=None,
        select_policy="Max",
        policies=(ScalingPolicy(type="Percent", value=100, period_seconds=15),),
    )


def _fill(rules: ScalingRules | None, default: ScalingRules) -> ScalingRules:
    if rules is None:
        return default
    return ScalingRules(
        stabilization_window_seconds=(
            rules.stabilization_window_seconds
            if rules.stabilization_window_seconds is not None
            else default.stabilization_window_seconds
        ),
        select_policy=rules.select_policy or default.select_policy,
        policies=rules.policies if rules.policies is not None else default.policies,
        tolerance=rules.tolerance,
    )


def generate_scale_up_rules(rules: ScalingRules | None) -> ScalingRules:
    """Fill the nil fields of user scale-up rules with the defaults (``GenerateHPAScaleUpRules``)."""
    return _fill(rules, default_scale_up_rules())


def generate_scale_down_rules(rules: ScalingRules | None) -> ScalingRules:
    """Fill the nil fields of user scale-down rules (``GenerateHPAScaleDownRules``)."""
    return _fill(rules, default_scale_down_rules())


def tolerances_for(spec: HPASpec, controller: HPAControllerConfig) -> Tolerances:
    """Per-direction tolerances: behavior overrides, else the controller flag."""
    up = down = controller.tolerance
    if spec.behavior is not None:
        if spec.behavior.scale_up is not None and spec.behavior.scale_up.tolerance is not None:
            up = spec.behavior.scale_up.tolerance
        sd = spec.behavior.scale_down
        if sd is not None and sd.tolerance is not None:
            down = sd.tolerance
    return Tolerances(scale_up=up, scale_down=down)


# --------------------------------------------------------------------------- calculator


def group_pods(
    pods: Sequence[Pod],
    metrics: Mapping[str, PodMetric],
    *,
    cpu: bool,
    now: float,
    cpu_initialization_period_s: float = 300.0,
    initial_readiness_delay_s: float = 30.0,
) -> PodGroups:
    """Sort pods into ready, unready, missing and ignored (``groupPods``).

    Deleted and Failed pods are ignored; Pending pods are unready; pods without a sample are
    missing; for ``cpu`` only, a pod whose sample cannot be trusted yet is unready.
    """
    ready = 0
    unready: set[str] = set()
    missing: set[str] = set()
    ignored: set[str] = set()
    for pod in pods:
        if pod.deleted or pod.phase == "Failed":
            ignored.add(pod.name)
            continue
        if pod.phase == "Pending":
            unready.add(pod.name)
            continue
        metric = metrics.get(pod.name)
        if metric is None:
            missing.add(pod.name)
            continue
        if cpu:
            if pod.ready is None or pod.start_time is None:
                is_unready = True
            elif pod.start_time + cpu_initialization_period_s > now:
                # Within initialization: unready, or no full metric window since readiness.
                is_unready = (not pod.ready) or (metric.timestamp < pod.ready_transition_time + metric.window)
            else:
                # After it: unready only if it has never been ready.
                is_unready = (not pod.ready) and (
                    pod.start_time + initial_readiness_delay_s > pod.ready_transition_time
                )
            if is_unready:
                unready.add(pod.name)
                continue
        ready += 1
    return PodGroups(
        ready_count=ready,
        unready=frozenset(unready),
        missing=frozenset(missing),
        ignored=frozenset(ignored),
    )


def go_quo(a: int, b: int) -> int:
    """Integer division truncated toward zero, as Go's ``/`` on integers (Python's ``//`` floors)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def resource_utilization_ratio(
    values: Mapping[str, int], requests: Mapping[str, int], target_percent: int
) -> tuple[float, int, int]:
    """Return ``(ratio, utilization %, raw average usage)`` (``GetResourceUtilizationRatio``).

    Utilization ``Σusage·100 / Σrequest`` and the raw average ``Σusage / n`` are integers
    truncated toward zero; samples of pods without a request are skipped.
    """
    total = 0
    requested = 0
    entries = 0
    for name, value in values.items():
        if name not in requests:
            continue
        total += value
        requested += requests[name]
        entries += 1
    if requested == 0:
        raise ValueError("no metrics returned matched known pods")
    utilization = go_quo(total * 100, requested)
    return utilization / target_percent, utilization, go_quo(total, entries)


def metric_usage_ratio(values: Mapping[str, int], target_milli: int) -> tuple[float, int]:
    """Return ``(ratio, average)``, the average truncated toward zero (``GetMetricUsageRatio``)."""
    average = go_quo(sum(values.values()), len(values))
    return average / target_milli, average


def calculate_requests(pods: Sequence[Pod], resource: str = "cpu") -> dict[str, int]:
    """Request of every pod (``calculateRequests``); a pod without one is an error, as upstream."""
    requests: dict[str, int] = {}
    for pod in pods:
        if pod.request_milli is None:
            raise ValueError(f"missing request for {resource} in Pod {pod.name}")
        requests[pod.name] = pod.request_milli
    return requests


def _direction_flip(old: float, new: float) -> bool:
    return (old < 1.0 < new) or (old > 1.0 > new)


def _ceil_capped(x: float) -> int:
    return math.ceil(min(x, float(MAX_INT32)))


def _rebalanced_replicas(
    current_replicas: int,
    values: dict[str, int],
    groups: PodGroups,
    ratio: float,
    missing_on_scale_down: Callable[[str], int],
    ratio_of: Callable[[dict[str, int]], float],
    tol: Tolerances,
) -> int:
    """Both calculators' shared tail: fill missing/unready samples, recompute, guard direction.

    Missing pods count as ``missing_on_scale_down(name)`` when ``ratio < 1``, 0 when ``ratio > 1``
    and are left out at exactly 1; unready pods count 0 when scaling up with them.
    """
    if ratio < 1.0:
        for name in groups.missing:
            values[name] = missing_on_scale_down(name)
    elif ratio > 1.0:
        for name in groups.missing:
            values[name] = 0
    if groups.unready and ratio > 1.0:
        for name in groups.unready:
            values[name] = 0
    new_ratio = ratio_of(values)
    if tol.is_within(new_ratio) or _direction_flip(ratio, new_ratio):
        return current_replicas
    new_replicas = _ceil_capped(new_ratio * len(values))
    if (new_ratio < 1.0 and new_replicas > current_replicas) or (new_ratio > 1.0 and new_replicas < current_replicas):
        return current_replicas
    return new_replicas


def get_resource_replicas(
    current_replicas: int,
    target_percent: int,
    pods: Sequence[Pod],
    metrics: Mapping[str, PodMetric],
    *,
    now: float,
    cpu: bool = True,
    tolerances: Tolerances | None = None,
    cpu_initialization_period_s: float = 300.0,
    initial_readiness_delay_s: float = 30.0,
) -> tuple[int, int, int]:
    """Replica count for a Resource ``Utilization`` target (``GetResourceReplicas``).

    Returns ``(replicas, utilization %, raw average usage)``. Every pod needs a request
    (:func:`calculate_requests`). Missing pods on scale-down count at
    ``max(100, target)`` % of their request, on scale-up at 0; unready pods count at 0 on
    scale-up. ``current_replicas`` is the scale's spec replicas.
    """
    tol = tolerances or Tolerances()
    groups = group_pods(
        pods,
        metrics,
        cpu=cpu,
        now=now,
        cpu_initialization_period_s=cpu_initialization_period_s,
        initial_readiness_delay_s=initial_readiness_delay_s,
    )
    values = {k: m.value for k, m in metrics.items() if k not in groups.ignored | groups.unready}
    if not values:
        raise ValueError("no metrics returned from resource metrics API")
    requests = calculate_requests(pods)
    ratio, utilization, raw = resource_utilization_ratio(values, requests, target_percent)
    scale_up_with_unready = bool(groups.unready) and ratio > 1.0
    if not scale_up_with_unready and not groups.missing:
        if tol.is_within(ratio):
            return current_replicas, utilization, raw
        return _ceil_capped(ratio * groups.ready_count), utilization, raw
    fallback = max(100, target_percent)
    replicas = _rebalanced_replicas(
        current_replicas,
        values,
        groups,
        ratio,
        lambda name: requests[name] * fallback // 100,
        lambda v: resource_utilization_ratio(v, requests, target_percent)[0],
        tol,
    )
    return replicas, utilization, raw


def get_plain_metric_replicas(
    current_replicas: int,
    target_milli: int,
    pods: Sequence[Pod],
    metrics: Mapping[str, PodMetric],
    *,
    now: float,
    tolerances: Tolerances | None = None,
) -> tuple[int, int]:
    """Replica count for a Pods ``AverageValue`` target (``calcPlainMetricReplicas``).

    Readiness is ignored (only Pending pods are unready); missing pods count at exactly the
    target on scale-down and at 0 on scale-up. Returns ``(replicas, average usage)``.
    """
    tol = tolerances or Tolerances()
    groups = group_pods(pods, metrics, cpu=False, now=now)
    values = {k: m.value for k, m in metrics.items() if k not in groups.ignored | groups.unready}
    if not values:
        raise ValueError("no metrics returned")
    ratio, usage = metric_usage_ratio(values, target_milli)
    scale_up_with_unready = bool(groups.unready) and ratio > 1.0
    if not scale_up_with_unready and not groups.missing:
        if tol.is_within(ratio):
            return current_replicas, usage
        return _ceil_capped(ratio * groups.ready_count), usage
    replicas = _rebalanced_replicas(
        current_replicas,
        values,
        groups,
        ratio,
        lambda _name: target_milli,
        lambda v: metric_usage_ratio(v, target_milli)[0],
        tol,
    )
    return replicas, usage


def get_usage_ratio_replica_count(
    current_replicas: int,
    usage_ratio: float,
    ready_pod_count: int,
    tolerances: Tolerances | None = None,
) -> int:
    """Replica count for Object/External ``Value`` targets (``getUsageRatioReplicaCount``).

    From zero replicas the result is ``ceil(ratio)`` with no tolerance.
    """
    tol = tolerances or Tolerances()
    if current_replicas == 0:
        return _ceil_capped(usage_ratio)
    if tol.is_within(usage_ratio):
        return current_replicas
    return _ceil_capped(usage_ratio * ready_pod_count)


def get_value_metric_replicas(
    current_replicas: int,
    value_milli: int,
    target_milli: int,
    ready_pod_count: int,
    tolerances: Tolerances | None = None,
) -> tuple[int, int]:
    """Object/External ``Value`` target: ratio ``value / target`` over ready pods.

    Returns ``(replicas, usage)``; the usage is the metric value, as upstream reports it.
    """
    replicas = get_usage_ratio_replica_count(current_replicas, value_milli / target_milli, ready_pod_count, tolerances)
    return replicas, value_milli


def get_per_pod_metric_replicas(
    status_replicas: int,
    total_milli: int,
    target_per_pod_milli: int,
    tolerances: Tolerances | None = None,
) -> tuple[int, int]:
    """Object/External ``AverageValue`` target (``GetExternalPerPodMetricReplicas``).

    ``ratio = total / (target × status replicas)``; inside tolerance keep ``status_replicas``,
    else ``ceil(total / target)``. This is the shape of HeteroScale's decode-TPS policy.
    Returns ``(replicas, usage)`` with usage ``ceil(total / status replicas)``.

    At zero status replicas the ratio is Go's float64 division by zero (±Inf or NaN): never
    within tolerance, so the result is ``ceil(total / target)``. The usage is then ±Inf or NaN
    converted to int64, which Go leaves to the platform; we saturate (±MaxInt64, NaN → 0).
    """
    tol = tolerances or Tolerances()
    if status_replicas == 0:
        replicas = _ceil_capped(total_milli / target_per_pod_milli)
        return replicas, MAX_INT64 if total_milli > 0 else (-MAX_INT64 if total_milli < 0 else 0)
    ratio = total_milli / (target_per_pod_milli * status_replicas)
    replicas = status_replicas if tol.is_within(ratio) else _ceil_capped(total_milli / target_per_pod_milli)
    usage = MAX_INT64 if float(total_milli) >= float(MAX_INT64) else math.ceil(total_milli / status_replicas)
    return replicas, usage


def utilization_replicas(
    current_replicas: int,
    ready_pods: int,
    unready_pods: int,
    utilization_percent: int,
    target_percent: int,
    tolerances: Tolerances | None = None,
    *,
    ready_request_milli: int = 1000,
    unready_request_milli: int | None = None,
) -> int:
    """Resource rule on a pool average (all ready pods sampled, unready pods without samples).

    Exactly :func:`get_resource_replicas` on ``ready_pods`` pods of request ``ready_request_milli``
    each using ``utilization_percent`` of it and ``unready_pods`` unsampled pods of request
    ``unready_request_milli`` (default: the same): unready pods are left out on scale-down and
    count at 0 usage, with their own requests, on scale-up. This is what the engine's HPA
    baseline calls per pool (its pods all have one size, so the requests are equal).
    """
    if ready_pods <= 0:
        return current_replicas
    tol = tolerances or Tolerances()
    ratio = utilization_percent / target_percent
    if unready_pods == 0 or ratio <= 1.0:
        if tol.is_within(ratio):
            return current_replicas
        return _ceil_capped(ratio * ready_pods)
    total = ready_pods + unready_pods
    ready_requests = ready_request_milli * ready_pods
    unready_each = ready_request_milli if unready_request_milli is None else unready_request_milli
    requested = ready_requests + unready_each * unready_pods
    if requested == 0:
        raise ValueError("no metrics returned matched known pods")
    new_util = go_quo(utilization_percent * ready_requests, requested)
    new_ratio = new_util / target_percent
    if tol.is_within(new_ratio) or _direction_flip(ratio, new_ratio):
        return current_replicas
    new_replicas = _ceil_capped(new_ratio * total)
    if new_ratio > 1.0 and new_replicas < current_replicas:
        return current_replicas
    return new_replicas


# --------------------------------------------------------------------------- normalization


def record_initial_recommendation(history: HPAHistory, current_replicas: int, now: float) -> HPAHistory:
    """Seed a nil recommendation list with ``{current, now}`` (``recordInitialRecommendation``)."""
    if history.recommendations is not None:
        return history
    return history.replace(recommendations=(Recommendation(replicas=current_replicas, timestamp=now),))


def _store_recommendation(
    recs: tuple[Recommendation, ...], old_index: int | None, new: Recommendation
) -> tuple[Recommendation, ...]:
    if old_index is None:
        return (*recs, new)
    return (*recs[:old_index], new, *recs[old_index + 1 :])


def stabilize_recommendation(
    history: HPAHistory, desired: int, now: float, window_s: float = 300.0
) -> tuple[int, HPAHistory]:
    """Legacy stabilization: max of ``desired`` and every recommendation not older than the window.

    The last entry older than the window is overwritten by ``{desired, now}``, else it is
    appended (``stabilizeRecommendation``).
    """
    recs = history.recommendations or ()
    cutoff = now - window_s
    best = desired
    old_index: int | None = None
    for i, rec in enumerate(recs):
        if rec.timestamp < cutoff:
            old_index = i
        elif rec.replicas > best:
            best = rec.replicas
    new = Recommendation(replicas=desired, timestamp=now)
    return best, history.replace(recommendations=_store_recommendation(recs, old_index, new))


def convert_desired_replicas_with_rules(
    current: int,
    desired: int,
    min_replicas: int,
    max_replicas: int,
    *,
    scale_up_limit_factor: float = 2.0,
    scale_up_limit_minimum: float = 4.0,
) -> tuple[int, Reason]:
    """Legacy limits: ``[min, min(max, max(factor × current, minimum))]``."""
    scale_up_limit = int(max(scale_up_limit_factor * current, scale_up_limit_minimum))
    if max_replicas > scale_up_limit:
        maximum: int = scale_up_limit
        limiting: Reason = "ScaleUpLimit"
    else:
        maximum = max_replicas
        limiting = "TooManyReplicas"
    if desired < min_replicas:
        return min_replicas, "TooFewReplicas"
    if desired > maximum:
        return maximum, limiting
    return desired, "DesiredWithinRange"


def stabilize_recommendation_with_behaviors(
    history: HPAHistory,
    current: int,
    desired: int,
    now: float,
    up_window_s: float,
    down_window_s: float,
) -> tuple[int, HPAHistory]:
    """Clamp ``current`` into ``[min over up window, max over down window]``.

    Entries strictly after a cutoff are in that window; the last entry older than both cutoffs
    is overwritten by ``{desired, now}``, else it is appended.
    """
    recs = history.recommendations or ()
    up_cutoff = now - up_window_s
    down_cutoff = now - down_window_s
    up_limit = desired
    down_limit = desired
    old_index: int | None = None
    for i, rec in enumerate(recs):
        if rec.timestamp > up_cutoff:
            up_limit = min(up_limit, rec.replicas)
        if rec.timestamp > down_cutoff:
            down_limit = max(down_limit, rec.replicas)
        if rec.timestamp < up_cutoff and rec.timestamp < down_cutoff:
            old_index = i
    result = current
    if result < up_limit:
        result = up_limit
    if result > down_limit:
        result = down_limit
    new = Recommendation(replicas=desired, timestamp=now)
    return result, history.replace(recommendations=_store_recommendation(recs, old_index, new))


def replicas_change_per_period(events: Sequence[ScaleEvent], period_s: float, now: float) -> int:
    """Sum of the changes strictly younger than ``period_s`` (``getReplicasChangePerPeriod``)."""
    cutoff = now - period_s
    return sum(e.change for e in events if e.timestamp > cutoff)


def _period_start(current: int, policy: ScalingPolicy, history: HPAHistory, now: float) -> int:
    added = replicas_change_per_period(history.scale_up_events, policy.period_seconds, now)
    removed = replicas_change_per_period(history.scale_down_events, policy.period_seconds, now)
    return current - added + removed


def calculate_scale_up_limit(current: int, history: HPAHistory, rules: ScalingRules, now: float) -> int:
    """Scale-up limit of the rate policies (``calculateScaleUpLimitWithScalingRules``).

    Each policy proposes from its period-start count: Pods ``start + value``, Percent
    ``ceil(start × (1 + value/100))``. ``Max`` keeps the largest, ``Min`` the smallest,
    ``Disabled`` returns ``current``.
    """

    def step(start: int, policy: ScalingPolicy) -> int:
        if policy.type == "Pods":
            return start + policy.value
        return math.ceil(start * (1 + policy.value / 100))

    return _rate_limit(current, history, rules, now, step, up=True)


def calculate_scale_down_limit(current: int, history: HPAHistory, rules: ScalingRules, now: float) -> int:
    """Scale-down limit (``calculateScaleDownLimitWithBehaviors``); Percent truncates toward 0.

    ``Max`` (the most change) keeps the smallest proposal, ``Min`` the largest.
    """

    def step(start: int, policy: ScalingPolicy) -> int:
        if policy.type == "Pods":
            return start - policy.value
        return int(start * (1 - policy.value / 100))

    return _rate_limit(current, history, rules, now, step, up=False)


def _rate_limit(
    current: int,
    history: HPAHistory,
    rules: ScalingRules,
    now: float,
    step: Callable[[int, ScalingPolicy], int],
    *,
    up: bool,
) -> int:
    """Every policy's proposal from its period-start count; ``Max`` selects the most change."""
    select = rules.select_policy or "Max"
    if select == "Disabled":
        return current
    proposals = [step(_period_start(current, p, history, now), p) for p in rules.policies or ()]
    if not proposals:
        return current
    most = max if up else min
    least = min if up else max
    return most(proposals) if select == "Max" else least(proposals)


def convert_desired_replicas_with_behavior_rate(
    current: int,
    desired: int,
    min_replicas: int,
    max_replicas: int,
    history: HPAHistory,
    scale_up: ScalingRules,
    scale_down: ScalingRules,
    now: float,
) -> tuple[int, Reason]:
    """Apply the behavior rate limits to a stabilized recommendation."""
    if desired > current:
        limit = max(calculate_scale_up_limit(current, history, scale_up, now), current)
        if max_replicas > limit:
            maximum: int = limit
            up_reason: Reason = "ScaleUpLimit"
        else:
            maximum = max_replicas
            up_reason = "TooManyReplicas"
        if desired > maximum:
            return maximum, up_reason
    elif desired < current:
        limit = min(calculate_scale_down_limit(current, history, scale_down, now), current)
        if min_replicas < limit:
            minimum: int = limit
            down_reason: Reason = "ScaleDownLimit"
        else:
            minimum = min_replicas
            down_reason = "TooFewReplicas"
        if desired < minimum:
            return minimum, down_reason
    return desired, "DesiredWithinRange"


def longest_policy_period(rules: ScalingRules) -> int:
    """Longest ``period_seconds`` among the rules' policies (0 when none)."""
    return max((p.period_seconds for p in rules.policies or ()), default=0)


def _mark_and_store(events: tuple[ScaleEvent, ...], longest: int, change: int, now: float) -> tuple[ScaleEvent, ...]:
    cutoff = now - longest
    marked = tuple(e.replace(outdated=True) if e.timestamp < cutoff else e for e in events)
    old_index: int | None = None
    for i, e in enumerate(marked):
        if e.outdated:
            old_index = i
    new = ScaleEvent(change=change, timestamp=now, outdated=False)
    if old_index is None:
        return (*marked, new)
    return (*marked[:old_index], new, *marked[old_index + 1 :])


def store_scale_event(
    history: HPAHistory,
    behavior: HPABehavior | None,
    prev_replicas: int,
    new_replicas: int,
    now: float,
) -> HPAHistory:
    """Record a scale change when ``behavior`` is set (``storeScaleEvent``).

    Events older than the longest policy period of that direction are marked outdated and the
    last outdated one is overwritten; otherwise the event is appended.
    """
    if behavior is None or new_replicas == prev_replicas:
        return history
    if new_replicas > prev_replicas:
        rules = generate_scale_up_rules(behavior.scale_up)
        return history.replace(
            scale_up_events=_mark_and_store(
                history.scale_up_events,
                longest_policy_period(rules),
                new_replicas - prev_replicas,
                now,
            )
        )
    rules = generate_scale_down_rules(behavior.scale_down)
    return history.replace(
        scale_down_events=_mark_and_store(
            history.scale_down_events,
            longest_policy_period(rules),
            prev_replicas - new_replicas,
            now,
        )
    )


# --------------------------------------------------------------------------- reconcile


def reconcile(
    spec: HPASpec,
    history: HPAHistory,
    now: float,
    current_replicas: int,
    metric_replicas: Sequence[int],
    controller: HPAControllerConfig | None = None,
) -> tuple[HPAResult, HPAHistory]:
    """One sync of one HPA (``reconcileAutoscaler``) given the per-metric proposals.

    ``metric_replicas`` holds each valid metric's replica count (the largest wins). Short
    circuits, in order: zero replicas with ``min != 0`` (disabled), above max, below min.
    Then legacy or behavior normalization, and a scale event when ``behavior`` is set.
    """
    ctl = controller or HPAControllerConfig()
    hist = record_initial_recommendation(history, current_replicas, now)
    if current_replicas == 0 and spec.min_replicas != 0:
        return (
            HPAResult(
                desired_replicas=0,
                rescale=False,
                reason="ScalingDisabled",
                metric_replicas=None,
                stabilized_replicas=None,
            ),
            hist,
        )
    if current_replicas > spec.max_replicas or current_replicas < spec.min_replicas:
        desired = min(max(current_replicas, spec.min_replicas), spec.max_replicas)
        reason = "AboveMax" if current_replicas > spec.max_replicas else "BelowMin"
        result = HPAResult(
            desired_replicas=desired,
            rescale=desired != current_replicas,
            reason=reason,
            metric_replicas=None,
            stabilized_replicas=None,
        )
        hist = store_scale_event(hist, spec.behavior, current_replicas, desired, now)
        return result, hist
    if not metric_replicas:
        raise ValueError("reconcile needs at least one valid metric proposal")
    proposal = max(0, *metric_replicas)
    if spec.behavior is None:
        stabilized, hist = stabilize_recommendation(hist, proposal, now, ctl.downscale_stabilization_s)
        desired, why = convert_desired_replicas_with_rules(
            current_replicas,
            stabilized,
            spec.min_replicas,
            spec.max_replicas,
            scale_up_limit_factor=ctl.scale_up_limit_factor,
            scale_up_limit_minimum=ctl.scale_up_limit_minimum,
        )
    else:
        up = generate_scale_up_rules(spec.behavior.scale_up)
        down = generate_scale_down_rules(spec.behavior.scale_down)
        up_window = float(up.stabilization_window_seconds or 0)
        down_window = (
            float(down.stabilization_window_seconds)
            if down.stabilization_window_seconds is not None
            else ctl.downscale_stabilization_s
        )
        stabilized, hist = stabilize_recommendation_with_behaviors(
            hist, current_replicas, proposal, now, up_window, down_window
        )
        desired, why = convert_desired_replicas_with_behavior_rate(
            current_replicas,
            stabilized,
            spec.min_replicas,
            spec.max_replicas,
            hist,
            up,
            down,
            now,
        )
    hist = store_scale_event(hist, spec.behavior, current_replicas, desired, now)
    return (
        HPAResult(
            desired_replicas=desired,
            rescale=desired != current_replicas,
            reason=why,
            metric_replicas=proposal,
            stabilized_replicas=stabilized,
        ),
        hist,
    )
