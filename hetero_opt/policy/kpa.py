"""The Knative Pod Autoscaler (KPA) decider, as a pure, replayable baseline.

Follows knative/serving ``pkg/autoscaler/scaling/autoscaler.go`` (``Scale``, ``newAutoscaler``),
``pkg/autoscaler/aggregation/max`` (the scale-down delay window) and the defaults of
``pkg/autoscaler/config/config.go`` (see ``docs/policy.md``, "KPA baseline"). Read to learn; no
code copied.

One :func:`kpa_scale` call is one ``Scale`` of the upstream decider:

1. ``ready = max(1, ready pods)``; ``max_up = ceil(max_scale_up_rate × ready)``;
   ``max_down = floor(ready / max_scale_down_rate)`` (0 when the revision is not reachable).
2. ``dspc = ceil(stable / target)``, ``dppc = ceil(panic / target)``, each clamped into
   ``[max_down, max_up]``; ``activation_scale`` (> 1) raises a non-zero proposal to it.
3. Panic when ``dppc / ready >= panic_threshold``: entering or staying sets ``panic_time = now``;
   leaving needs the threshold not met **and** a full stable window since ``panic_time``.
4. In panic: ``max(stable, panic)`` proposals, and **never down** (``max_panic_pods`` only rises).
5. The scale-down delay: the result is the maximum of all results recorded over the last
   ``scale_down_delay_s`` (2-s buckets, as upstream's ``tickInterval``). An unreachable revision
   is not delayed: upstream's ``TestAutoscalerScaleDownDelayNotReachable`` scales it to 0 at once
   (the ``autoscaler.go`` snapshots read do not show that branch; the test fixes it).

Differences from the controller, all deliberate: time is a float of seconds passed in as ``now``;
state is an explicit immutable :class:`KPAState` returned anew; the metric's stable and panic
averages come from the caller (the engine keeps its own samples, :func:`window_average`), where
upstream reads them from its metric collector. The excess burst capacity (which only decides whether
the activator stays in the request path) is not computed: hetero_opt has no activator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pydantic import Field

from hetero_opt.policy._base import Frozen

TICK_S = 2.0
"""Upstream ``tickInterval``: the granularity of the scale-down delay window (s)."""


class KPASpec(Frozen):
    """The parts of upstream's ``DeciderSpec`` the decider reads (defaults: ``config-autoscaler``)."""

    target_value: float = Field(gt=0, description="Metric per pod to hold (TargetValue; already × utilisation).")
    max_scale_up_rate: float = Field(default=1000.0, gt=1, description="max-scale-up-rate (default 1000).")
    max_scale_down_rate: float = Field(default=2.0, gt=1, description="max-scale-down-rate (default 2).")
    panic_threshold: float = Field(
        default=2.0, gt=0, description="Panic when panic pods / ready pods >= this (200 % → 2.0)."
    )
    stable_window_s: float = Field(default=60.0, gt=0, description="stable-window (s); panic ends a window after.")
    scale_down_delay_s: float = Field(default=0.0, ge=0, description="scale-down-delay (s); 0 = none.")
    activation_scale: int = Field(default=1, ge=1, description="activation-scale: least non-zero proposal.")
    reachable: bool = Field(default=True, description="False: no scale-down limit (revision not routed).")


class DelayEntry(Frozen):
    """One bucket of the scale-down delay window (a descending-maxima list, as upstream's)."""

    index: int = Field(description="Bucket index: floor(time / 2 s).")
    value: int = Field(ge=0, description="Largest pod count recorded in the bucket (or later ones).")


class MetricSample(Frozen):
    """One cycle's observation of a pool's metric (a total over the pool, e.g. decode tokens/s)."""

    time: float = Field(description="When it was observed (s).")
    value: float = Field(ge=0, description="The pool's total (all pods).")


class KPAState(Frozen):
    """What one pool's KPA decider remembers between cycles."""

    created: bool = Field(default=False, description="True once the decider exists (first valid cycle).")
    panic_time: float | None = Field(default=None, description="When panic began or was last extended; None = stable.")
    max_panic_pods: int = Field(default=0, ge=0, description="Highest proposal while panicking (never lowered).")
    delay: tuple[DelayEntry, ...] = Field(default=(), description="Scale-down delay window (descending maxima).")
    samples: tuple[MetricSample, ...] = Field(default=(), description="Engine: the metric over the stable window.")


class KPAResult(Frozen):
    """The outcome of one :func:`kpa_scale`."""

    desired_pods: int = Field(ge=0, description="Pods to run.")
    stable_pods: int = Field(ge=0, description="Stable-window proposal after the rate limits.")
    panic_pods: int = Field(ge=0, description="Panic-window proposal after the rate limits.")
    panicking: bool = Field(description="True when the decider is in panic mode after this call.")
    delayed_from: int | None = Field(default=None, description="The proposal before the delay window raised it.")


def kpa_create(ready_pods: int, now: float) -> KPAState:
    """Upstream ``newAutoscaler``: a decider created over more than one ready pod starts in panic,
    holding what runs until a stable window of data has accumulated."""
    if ready_pods > 1:
        return KPAState(created=True, panic_time=now, max_panic_pods=ready_pods)
    return KPAState(created=True, max_panic_pods=max(0, ready_pods))


def record_delay(entries: Sequence[DelayEntry], now: float, value: int, delay_s: float) -> tuple[DelayEntry, ...]:
    """Upstream ``max.TimeWindow.Record``: ``ceil(delay / 2 s)`` buckets, bucket ``floor(now / 2)``.

    Smaller-or-equal values before the new one are dropped (they can never be the maximum again),
    entries ``>= buckets`` buckets old fall out, and a second value in one bucket keeps the larger.
    The window's current value is the first entry's.
    """
    size = math.ceil(delay_s / TICK_S)
    index = math.floor(now) // int(TICK_S)
    kept = list(entries)
    while kept and not value < kept[-1].value:
        kept.pop()
    while kept and index - kept[0].index >= size:
        kept.pop(0)
    if kept and kept[-1].index == index:
        value = max(value, kept.pop().value)
    kept.append(DelayEntry(index=index, value=value))
    return tuple(kept)


def kpa_scale(
    spec: KPASpec,
    state: KPAState,
    now: float,
    ready_pods: int,
    stable_value: float,
    panic_value: float,
) -> tuple[KPAResult, KPAState]:
    """One ``Scale`` of the upstream decider. ``state`` must come from :func:`kpa_create` or a previous call.

    ``stable_value`` and ``panic_value`` are the metric's totals over the pool averaged over the
    stable and the panic window (upstream ``StableAndPanicConcurrency`` / ``…RPS``).
    """
    ready = float(max(1, ready_pods))
    max_up = math.ceil(spec.max_scale_up_rate * ready)
    max_down = math.floor(ready / spec.max_scale_down_rate) if spec.reachable else 0
    dspc = math.ceil(stable_value / spec.target_value)
    dppc = math.ceil(panic_value / spec.target_value)
    stable_pods = int(min(max(dspc, max_down), max_up))
    panic_pods = int(min(max(dppc, max_down), max_up))
    if spec.activation_scale > 1:
        if dspc > 0 and spec.activation_scale > stable_pods:
            stable_pods = spec.activation_scale
        if dppc > 0 and spec.activation_scale > panic_pods:
            panic_pods = spec.activation_scale
    over = dppc / ready >= spec.panic_threshold
    panic_time, max_panic = state.panic_time, state.max_panic_pods
    if over:
        panic_time = now  # begin, or extend, the panic
    elif panic_time is not None and panic_time + spec.stable_window_s < now:
        panic_time, max_panic = None, 0  # the surge has reached the stable window: un-panic
    desired = stable_pods
    if panic_time is not None:
        desired = max(desired, panic_pods)
        max_panic = max(max_panic, desired)  # never scale down while panicking
        desired = max_panic
    delay = state.delay
    delayed_from = None
    if spec.scale_down_delay_s > 0 and spec.reachable:
        delay = record_delay(delay, now, desired, spec.scale_down_delay_s)
        if delay[0].value != desired:
            delayed_from, desired = desired, delay[0].value
    result = KPAResult(
        desired_pods=desired,
        stable_pods=stable_pods,
        panic_pods=panic_pods,
        panicking=panic_time is not None,
        delayed_from=delayed_from,
    )
    return result, state.replace(created=True, panic_time=panic_time, max_panic_pods=max_panic, delay=delay)


def record_sample(
    samples: Sequence[MetricSample], now: float, value: float, keep_s: float
) -> tuple[MetricSample, ...]:
    """``samples`` plus ``(now, value)``, without those older than ``keep_s`` (or from the future: a
    clock that went back restarts the history)."""
    kept = tuple(s for s in samples if now - keep_s < s.time < now)
    return (*kept, MetricSample(time=now, value=value))


def window_average(samples: Sequence[MetricSample], now: float, window_s: float) -> float | None:
    """Mean of the samples in ``(now - window_s, now]``; None without any.

    Each engine cycle records one sample, a rate over that cycle; at a regular cycle this is the
    average of upstream's 1-s buckets over the window, each bucket filled by the cycle it lies in,
    with upstream's partial window while the history is younger than the window. A window shorter
    than the cycle holds the latest sample alone.
    """
    inside = [s.value for s in samples if now - window_s < s.time <= now]
    if not inside:
        return None
    return math.fsum(inside) / len(inside)
