"""The policy engine: one pure decision per service per control cycle.

:func:`decide` runs the service's policy (Algorithm 2, Algorithm 3, hybrid, periodic, static or
the HPA baseline), then the stability stages — scale-in stabilisation window, dampening, the
``[min, max]`` clamp — and returns a :class:`Decision` with the rule that fired and its numbers,
plus the new :class:`ServicePolicyState`. State is explicit and JSON round-trippable
(``model_dump_json`` / ``model_validate_json``); ``now`` is always an argument.

Supply: ``current_units`` are units serving now, ``pending_units`` units already requested and
still starting. With ``stability.count_pending`` (default) both count as supply, so a cycle does
not scale out again for capacity on its way. ``target_units`` is the desired *total* (serving
plus starting).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import Field

from hetero_opt.errors import InputError
from hetero_opt.policy._base import Frozen
from hetero_opt.policy.anticipation import DemandHistory, Forecast, forecast, lead_of, record
from hetero_opt.policy.apa import APASpec, APAState, apa_scale
from hetero_opt.policy.config import AutoscalerConfig, PerPodMetricConfig, ServicePolicy
from hetero_opt.policy.feedback import LatencySignal, classify, feedback_decision
from hetero_opt.policy.headroom import HeadroomMemory, tune
from hetero_opt.policy.hpa import (
    HPAHistory,
    HPASpec,
    reconcile,
    tolerances_for,
    utilization_replicas,
)
from hetero_opt.policy.hybrid import HybridMemory, HybridResult, combine, proportional_share
from hetero_opt.policy.kpa import KPASpec, KPAState, kpa_create, kpa_scale, record_sample, window_average
from hetero_opt.policy.periodic import periodic_target
from hetero_opt.policy.prefill_guard import GuardResult, prefill_bounds, prefill_guard
from hetero_opt.policy.proportional import ProportionalResult, exact, proportional_decision
from hetero_opt.policy.stability import (
    Action,
    UnitRecommendation,
    action_for,
    clamp_units,
    cooldown_passed,
    cooldown_reference,
    dampen,
    stabilize_scale_in,
)

COOLDOWN_POLICIES = frozenset({"proportional", "feedback", "hybrid"})
"""Policies whose actions wait for cooldowns (periodic and static follow their schedule)."""


MAX_TOKENS_PER_S = 1e12  # a bound on every token rate (metrics) and per-pod target (config)


class ServiceMetrics(Frozen):
    """One cycle's observations of one service. Every field may be missing (None)."""

    # Rates are bounded far above any cluster (160k GPUs x 10k tokens/s = 1.6e9), so that rate /
    # per-pod target stays a finite number of pods (1e308 / 1e-300 overflowed in Algorithm 2).
    decode_tps: float | None = Field(default=None, ge=0, le=MAX_TOKENS_PER_S, description="Decode tokens/s.")
    prefill_tps: float | None = Field(
        default=None, ge=0, le=MAX_TOKENS_PER_S, description="KV-cache-missed prefill tokens/s."
    )
    ttft_ms: float | None = Field(default=None, ge=0, description="Mean TTFT (ms).")
    tbt_ms: float | None = Field(default=None, ge=0, description="Mean TBT (ms).")
    prefill_gpu_util: float | None = Field(default=None, ge=0, description="Prefill pool mean GPU utilisation (%).")
    decode_gpu_util: float | None = Field(default=None, ge=0, description="Decode pool mean GPU utilisation (%).")
    prefill_ready_pods: int | None = Field(default=None, ge=0, description="Ready prefill pods.")
    prefill_unready_pods: int | None = Field(default=None, ge=0, description="Started but not ready prefill pods.")
    decode_ready_pods: int | None = Field(default=None, ge=0, description="Ready decode pods.")
    decode_unready_pods: int | None = Field(default=None, ge=0, description="Started but not ready decode pods.")

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any]) -> ServiceMetrics:
        """Build from a dict or pandas Series; unknown keys are skipped, NaN becomes None."""
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            if name in row:
                v = row[name]
                if v is None or (isinstance(v, float) and math.isnan(v)):
                    continue
                values[name] = _whole(name, v) if name.endswith("_pods") else _number(name, v)
        return cls.model_validate(values)


def _number(name: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{name}={value!r} is not a number") from None


def _whole(name: str, value: Any) -> int:
    """``value`` as a pod count; a fraction or a non-finite number is an error, not truncated."""
    f = _number(name, value)
    if not f.is_integer():
        raise ValueError(f"{name}={value} is not a whole number of pods")
    return int(f)


def metrics_from_frame(df: Any) -> Iterator[tuple[float, dict[str, ServiceMetrics]]]:
    """Yield ``(time, {service: ServiceMetrics})`` per time step of a pandas DataFrame.

    Columns: ``time``, ``service`` and any :class:`ServiceMetrics` field; times ascending.
    """
    for col in ("time", "service"):
        if col not in df.columns:
            raise InputError(f"Metrics frame: column '{col}' missing")
    import pandas as pd  # only here: the policy library itself needs no pandas

    df = df.reset_index(drop=True)
    for col in ("time", "service"):
        missing = df[col].isna().to_numpy()
        if missing.any():
            raise InputError(f"Metrics frame: row {int(missing.argmax()) + 1}: {col} is missing")
    times = pd.to_numeric(df["time"], errors="coerce")
    if times.isna().any():
        i = int(times.isna().to_numpy().argmax())
        raise InputError(f"Metrics frame: row {i + 1}: time={df['time'].iloc[i]!r} is not a number of seconds")
    df = df.assign(time=times, service=df["service"].astype(str))
    twice = df.duplicated(["time", "service"]).to_numpy()
    if twice.any():
        i = int(twice.argmax())
        raise InputError(
            f"Metrics frame: row {i + 1}: service='{df['service'].iloc[i]}' at time={df['time'].iloc[i]:g} "
            "appears twice (one row per service and time)"
        )
    for t, group in df.sort_values(["time", "service"], kind="stable").groupby("time", sort=True):
        yield float(t), {str(r["service"]): _row_metrics(int(i), r) for i, r in group.iterrows()}


def _row_metrics(index: int, row: Any) -> ServiceMetrics:
    """Row ``index`` (0-based) of a metrics frame; a bad value names the row, service and field."""
    from pydantic import ValidationError

    where = f"Metrics frame: row {index + 1} (service='{row['service']}', time={row['time']:g})"
    try:
        return ServiceMetrics.from_mapping(row)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(x) for x in err["loc"])
        raise InputError(f"{where}: {field}={err.get('input')!r}: {err['msg']}") from None
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: {' '.join(str(exc).split())}") from None


class ServicePolicyState(Frozen):
    """What the engine remembers about one service between cycles."""

    last_scale_out_at: float | None = Field(default=None, description="Last scale-out (s).")
    last_scale_in_at: float | None = Field(default=None, description="Last scale-in (s).")
    scale_in_history: tuple[UnitRecommendation, ...] = Field(
        default=(), description="Raw recommendations inside the scale-in window."
    )
    prefill_history: tuple[UnitRecommendation, ...] = Field(
        default=(), description="Prefill guard: raw prefill pods per unit inside the scale-in window (units = p)."
    )
    hybrid: HybridMemory = Field(default_factory=HybridMemory, description="Hybrid policy: latency-added units.")
    headroom: HeadroomMemory = Field(
        default_factory=HeadroomMemory, description="SLO-tuned target utilisation and its window's counts."
    )
    demand: DemandHistory = Field(
        default_factory=DemandHistory,
        description="Anticipation: the service's past observations (decode, prefill TPS).",
    )
    hpa_prefill: HPAHistory = Field(default_factory=HPAHistory, description="HPA baseline history, prefill pool.")
    hpa_decode: HPAHistory = Field(default_factory=HPAHistory, description="HPA baseline history, decode pool.")
    kpa_prefill: KPAState = Field(default_factory=KPAState, description="KPA baseline decider, prefill pool.")
    kpa_decode: KPAState = Field(default_factory=KPAState, description="KPA baseline decider, decode pool.")
    apa_prefill: APAState = Field(default_factory=APAState, description="APA baseline metric window, prefill pool.")
    apa_decode: APAState = Field(default_factory=APAState, description="APA baseline metric window, decode pool.")


class Decision(Frozen):
    """One service's decision for one cycle."""

    service: str = Field(description="Service id.")
    action: Action = Field(description="out, in or none (relative to supply).")
    target_units: int = Field(ge=0, description="Desired total units (serving + starting).")
    supply_units: int = Field(ge=0, description="Units counted as supply this cycle.")
    prefill_pods: int = Field(ge=0, description="Desired prefill pods (target_units × unit[0]).")
    decode_pods: int = Field(ge=0, description="Desired decode pods (target_units × unit[1]).")
    rule: str = Field(description="Policy that decided, e.g. proportional, hpa, clamp.")
    reason: str = Field(description="The rule that fired and its numbers.")
    unit: tuple[int, int] | None = Field(
        default=None, description="(p, d) the pods are sized with: the given unit, or the prefill guard's move."
    )
    alerts: tuple[str, ...] = Field(default=(), description="What needs a human, e.g. prefill short at the bound.")
    target_utilisation: float | None = Field(
        default=None, description="The prefill guard's target utilisation this cycle (proportional and hybrid; "
        "SLO-tuned where headroom.adaptive, the decode target scaled with it); None for the other policies."
    )


class EngineState(Frozen):
    """States of all services."""

    services: dict[str, ServicePolicyState] = Field(default_factory=dict, description="State per service id.")


#: GPU utilisation (%) above which a pool that produced no tokens is busy (stalled), not idle.
IDLE_GPU_UTIL = 5.0


def is_idle(m: ServiceMetrics) -> bool:
    """The service served nothing this window: decode TPS measured 0 and no prefill either (a counter's
    rate, not a missing metric). No request means no latency reading; feedback and hybrid read it as
    relaxed, so latency-held capacity is released (Dynamo planner issue #6985: a planner that waits
    for a latency reading never scales an idle service down).

    Not idle but stalled, where the metrics say so: a pool with no ready pod (starting, or crashed), or
    one whose GPUs are busy while no token comes out. Capacity is never released on those.
    """
    if m.decode_tps != 0 or m.prefill_tps:
        return False
    if 0 in (m.decode_ready_pods, m.prefill_ready_pods):
        return False
    return not any(u is not None and u > IDLE_GPU_UTIL for u in (m.decode_gpu_util, m.prefill_gpu_util))


def _latency_signals(config: ServicePolicy, m: ServiceMetrics) -> list[LatencySignal]:
    fb = config.feedback
    out: list[LatencySignal] = []
    for name in fb.signals:
        value = m.tbt_ms if name == "tbt" else m.ttft_ms
        target = fb.target_tbt_ms if name == "tbt" else fb.target_ttft_ms
        if target is None:
            raise InputError(f"Service '{config.service}': feedback.target_{name}_ms unset (no profile)")
        if value is not None:
            out.append(LatencySignal(name=name, value_ms=value, target_ms=target))
    return out


def _target_tps(config: ServicePolicy) -> float:
    t = config.proportional.target_decode_tps_per_pod
    if t is None:
        raise InputError(
            f"Service '{config.service}': proportional.target_decode_tps_per_pod unset (give it or a profile)"
        )
    return t


class Proposal(Frozen):
    """A policy's raw proposal for one cycle."""

    units: int = Field(ge=0, description="Proposed total units.")
    reason: str = Field(description="The rule that fired and its numbers.")
    hybrid: HybridResult | None = Field(default=None, description="The hybrid layers' outcome (hybrid only).")


def _propose(
    config: ServicePolicy,
    state: ServicePolicyState,
    now: float,
    m: ServiceMetrics,
    supply: int,
    unit: tuple[int, int],
) -> Proposal:
    """The policy's raw proposal: cooldowns are applied after the scale-in window has recorded it
    (:func:`decide`), so a recommendation counts even while a cooldown runs."""
    policy = config.policy
    if policy == "static":
        assert config.static_units is not None  # validated
        return Proposal(units=config.static_units, reason=f"static {config.static_units} units")
    if policy == "periodic":
        per = config.periodic
        units, why = periodic_target(now, per.windows, per.default_units, per.utc_offset_hours)
        return Proposal(units=supply if units is None else units, reason=why)
    signals = _latency_signals(config, m) if policy in ("feedback", "hybrid") else []
    idle = not signals and is_idle(m)
    latency = feedback_decision(
        signals=signals,
        supply_units=supply,
        tiers=config.feedback.tiers,
        min_units=config.min_units,
        out_cooldown_ok=True,
        in_cooldown_ok=True,
        allow_in=policy == "feedback",
        idle=idle,
    )
    if policy == "feedback":
        return Proposal(units=latency.target_units, reason=latency.reason)
    share = proportional_share(supply, state.hybrid) if policy == "hybrid" else supply
    if m.decode_tps is None:
        pres = ProportionalResult(
            action="none",
            target_units=share,
            expected_units=share,
            decode_pods_needed=0.0,
            ratio=None,
            reason="no decode TPS metric; hold",
        )
    else:
        pres = proportional_decision(
            decode_tps=m.decode_tps,
            target_tps_per_pod=_target_tps(config),
            supply_units=share,
            decode_per_unit=unit[1],
            theta_out=config.proportional.theta_out,
            theta_in=config.proportional.theta_in,
            in_headroom=config.proportional.in_headroom,
            out_cooldown_ok=True,
            in_cooldown_ok=True,
        )
    if policy == "proportional":
        return Proposal(units=pres.target_units, reason=pres.reason)
    relaxed = idle or (bool(signals) and all(classify(s, config.feedback.tiers) == "gamma" for s in signals))
    hres = combine(pres, latency, supply, state.hybrid, now, config.hybrid.release_hold_s, relaxed)
    return Proposal(units=hres.target_units, reason=hres.reason, hybrid=hres)


def _pods_of(units: int, unit: tuple[int, int]) -> tuple[int, int]:
    """(prefill, decode) pods of ``units`` whole units of ``unit``."""
    return units * unit[0], units * unit[1]


def _units_of_pools(desired: list[int], unit: tuple[int, int], config: ServicePolicy) -> int:
    """Whole units holding the pools' desired (prefill, decode) pods, within the service's unit bounds: how
    the per-pool baselines (HPA, KPA, APA), which size each pool alone, keep the P:D unit."""
    units = max(math.ceil(desired[0] / unit[0]), math.ceil(desired[1] / unit[1]))
    return clamp_units(units, config.min_units, config.max_units)


def _decide_hpa(
    config: ServicePolicy,
    state: ServicePolicyState,
    now: float,
    m: ServiceMetrics,
    current_units: int,
    pending_units: int,
    unit: tuple[int, int],
    current_pods: tuple[int, int] | None,
) -> tuple[Decision, ServicePolicyState]:
    hc = config.hpa
    p, d = unit
    current_pods = current_pods or _pods_of(current_units + pending_units, unit)
    pools = (
        (
            "prefill",
            p,
            current_pods[0],
            m.prefill_gpu_util,
            hc.prefill_target_util_percent,
            m.prefill_ready_pods,
            m.prefill_unready_pods,
            state.hpa_prefill,
        ),
        (
            "decode",
            d,
            current_pods[1],
            m.decode_gpu_util,
            hc.decode_target_util_percent,
            m.decode_ready_pods,
            m.decode_unready_pods,
            state.hpa_decode,
        ),
    )
    desired: list[int] = []
    histories: list[HPAHistory] = []
    reasons: list[str] = []
    for name, per_unit, spec_replicas, util, target, ready, unready, hist in pools:
        spec = HPASpec(
            min_replicas=config.min_units * per_unit,
            max_replicas=max(1, config.max_units * per_unit),
            behavior=hc.behavior,
        )
        if util is None:
            desired.append(spec_replicas)
            histories.append(hist)
            reasons.append(f"{name}: no GPU utilisation metric; hold {spec_replicas}")
            continue
        n_ready = ready if ready is not None else current_units * per_unit
        n_unready = unready if unready is not None else pending_units * per_unit
        proposal = utilization_replicas(
            spec_replicas,
            n_ready,
            n_unready,
            int(util),
            target,
            tolerances_for(spec, hc.controller),
        )
        res, new_hist = reconcile(spec, hist, now, spec_replicas, [proposal], hc.controller)
        desired.append(res.desired_replicas)
        histories.append(new_hist)
        reasons.append(
            f"{name}: util {int(util)}% / target {target}% over {n_ready} ready → "
            f"{proposal} pods, {res.reason} → {res.desired_replicas}"
        )
    units = _units_of_pools(desired, unit, config)
    if desired[0] > current_pods[0] or desired[1] > current_pods[1]:
        action: Action = "out"
    elif desired[0] < current_pods[0] or desired[1] < current_pods[1]:
        action = "in"
    else:
        action = "none"
    new_state = state.replace(
        hpa_prefill=histories[0],
        hpa_decode=histories[1],
        last_scale_out_at=now if action == "out" else state.last_scale_out_at,
        last_scale_in_at=now if action == "in" else state.last_scale_in_at,
    )
    decision = Decision(
        service=config.service,
        action=action,
        target_units=units,
        supply_units=current_units + pending_units,
        prefill_pods=desired[0],
        decode_pods=desired[1],
        rule="hpa",
        reason="; ".join(reasons) + " (pools scaled independently)",
    )
    return decision, new_state


def _per_pod_target(config: ServicePolicy, mc: PerPodMetricConfig, pool: str) -> float:
    """The per-pod target of ``pool`` for a KPA/APA baseline: given, else the decode-TPS settings' figure
    (at least 1e-6 per pod: a smaller one overflows the pod counts)."""
    target = _given_or_derived_target(config, mc, pool)
    if target < MIN_TARGET_PER_POD:
        raise InputError(
            f"Service '{config.service}': {config.policy} {pool} target per pod {target:g} is below "
            f"{MIN_TARGET_PER_POD:g} (from the decode-TPS settings; give {config.policy}.{pool}_target_per_pod)"
        )
    return target


#: The least per-pod target a KPA/APA baseline sizes a pool at (the config refuses less where given).
MIN_TARGET_PER_POD = 1e-6


def _given_or_derived_target(config: ServicePolicy, mc: PerPodMetricConfig, pool: str) -> float:
    given = mc.prefill_target_per_pod if pool == "prefill" else mc.decode_target_per_pod
    if given is not None:
        return given
    if mc.metric == "gpu_util":
        return 60.0
    if pool == "decode":
        if config.proportional.target_decode_tps_per_pod is None:
            raise InputError(
                f"Service '{config.service}': {config.policy}.decode_target_per_pod unset "
                "(give it, proportional.target_decode_tps_per_pod or a profile)"
            )
        return _target_tps(config)
    g = config.prefill_guard
    if g.prefill_tps_per_pod is None:
        raise InputError(
            f"Service '{config.service}': {config.policy}.prefill_target_per_pod unset "
            "(give it, prefill_guard.prefill_tps_per_pod or a profile)"
        )
    return g.prefill_tps_per_pod * g.utilisation


def _pool_total(mc: PerPodMetricConfig, m: ServiceMetrics, pool: str, ready: int) -> float | None:
    """The pool's metric summed over its pods: its TPS, or mean GPU utilisation × ready pods."""
    if mc.metric == "tps":
        return m.prefill_tps if pool == "prefill" else m.decode_tps
    util = m.prefill_gpu_util if pool == "prefill" else m.decode_gpu_util
    return None if util is None else util * ready


def _decide_per_pool(
    config: ServicePolicy,
    state: ServicePolicyState,
    now: float,
    m: ServiceMetrics,
    current_units: int,
    pending_units: int,
    unit: tuple[int, int],
    current_pods: tuple[int, int] | None,
) -> tuple[Decision, ServicePolicyState]:
    """The KPA and APA baselines: each pool sized alone on its own metric per pod, as upstream scales
    one revision or deployment, then turned into whole units as the HPA baseline's pools are."""
    policy = config.policy
    mc: PerPodMetricConfig = config.kpa if policy == "kpa" else config.apa
    p, d = unit
    current_pods = current_pods or _pods_of(current_units + pending_units, unit)
    pools = (
        ("prefill", p, current_pods[0], m.prefill_ready_pods),
        ("decode", d, current_pods[1], m.decode_ready_pods),
    )
    desired: list[int] = []
    states: dict[str, Any] = {}
    reasons: list[str] = []
    for name, per_unit, spec_replicas, ready_seen in pools:
        ready = ready_seen if ready_seen is not None else current_units * per_unit
        target = _per_pod_target(config, mc, name)
        total = _pool_total(mc, m, name, ready)
        lo, hi = config.min_units * per_unit, max(1, config.max_units * per_unit)
        field = f"{policy}_{name}"
        if total is None:
            desired.append(spec_replicas)
            reasons.append(f"{name}: no {mc.metric} metric; hold {spec_replicas}")
            continue
        if policy == "kpa":
            kc = config.kpa
            st: KPAState = getattr(state, field)
            if not st.created:
                st = kpa_create(ready, now)
            samples = record_sample(st.samples, now, total, kc.stable_window_s)
            stable = window_average(samples, now, kc.stable_window_s)
            panic = window_average(samples, now, kc.stable_window_s * kc.panic_window_percentage / 100)
            assert stable is not None  # the sample at now is in both windows
            assert panic is not None
            spec = KPASpec(
                target_value=target,
                max_scale_up_rate=kc.max_scale_up_rate,
                max_scale_down_rate=kc.max_scale_down_rate,
                panic_threshold=kc.panic_threshold_percentage / 100,
                stable_window_s=kc.stable_window_s,
                scale_down_delay_s=kc.scale_down_delay_s,
                activation_scale=kc.activation_scale,
            )
            res, st = kpa_scale(spec, st.replace(samples=samples), now, ready, stable, panic)
            states[field] = st
            pods = res.desired_pods
            why = (f"{name}: stable {stable:.4g} / panic {panic:.4g} over {target:.4g} per pod, {ready} ready → "
                   f"{res.stable_pods}/{res.panic_pods}{' panic' if res.panicking else ''}")
            if res.delayed_from is not None:
                why += f", delay holds {res.delayed_from} at {pods}"
        else:
            ac = config.apa
            ast: APAState = getattr(state, field)
            samples = record_sample(ast.samples, now, total, ac.window_s)
            states[field] = ast.replace(samples=samples)
            observed = window_average(samples, now, ac.window_s)
            assert observed is not None
            aspec = APASpec(
                target_value=target,
                up_fluctuation_tolerance=ac.up_fluctuation_tolerance,
                down_fluctuation_tolerance=ac.down_fluctuation_tolerance,
                max_scale_up_rate=ac.max_scale_up_rate,
                max_scale_down_rate=ac.max_scale_down_rate,
            )
            got = apa_scale(aspec, ready, observed)
            if got is None:
                desired.append(spec_replicas)
                reasons.append(f"{name}: no ready pod; hold {spec_replicas}")
                continue
            pods = got
            why = f"{name}: {observed:.4g} over {ready} ready / {target:.4g} per pod → {pods}"
        final = min(max(pods, lo), hi)
        if final != pods:
            why += f", clamped to {final}"
        desired.append(final)
        reasons.append(why)
    units = _units_of_pools(desired, unit, config)
    supply = current_units + pending_units
    action: Action = "out" if units > supply else "in" if units < supply else "none"
    new_state = state.replace(
        **states,
        last_scale_out_at=now if action == "out" else state.last_scale_out_at,
        last_scale_in_at=now if action == "in" else state.last_scale_in_at,
    )
    decision = Decision(
        service=config.service,
        action=action,
        target_units=units,
        supply_units=supply,
        prefill_pods=desired[0],
        decode_pods=desired[1],
        rule=policy,
        reason="; ".join(reasons) + " (pools scaled independently)",
    )
    return decision, new_state


def decide(
    config: ServicePolicy,
    state: ServicePolicyState,
    now: float,
    metrics: ServiceMetrics,
    current_units: int,
    pending_units: int,
    unit: tuple[int, int],
    *,
    current_pods: tuple[int, int] | None = None,
    startup_delay_s: float = 0.0,
    gpus_per_pod: tuple[int, int] | None = None,
) -> tuple[Decision, ServicePolicyState]:
    """Decide one service's target for this cycle.

    Parameters
    ----------
    config
        The service's policy, with profile targets resolved.
    state
        The state returned by the previous call (``ServicePolicyState()`` at first).
    now
        Current time in seconds (epoch seconds for the periodic policy).
    metrics
        This cycle's observations.
    current_units, pending_units
        Units serving, and units requested and still starting.
    unit
        ``(p, d)``: prefill and decode pods per unit.
    current_pods
        HPA, KPA and APA baselines only: actual ``(prefill, decode)`` pods when pools drifted off the ratio.
    startup_delay_s
        How long new units take to serve (s); the anticipation floor covers it (``Autoscaler`` passes its own).
    gpus_per_pod
        ``(prefill, decode)`` GPUs per pod for the ``max_gpus`` budget; None = ``config.gpus_per_pod``
        (the ``Autoscaler`` passes the instance's).

    Returns
    -------
    (Decision, ServicePolicyState)
    """
    if current_units < 0 or pending_units < 0:
        raise ValueError(f"Service '{config.service}': negative units current={current_units} pending={pending_units}")
    p, d = unit
    if p < 1 or d < 1:
        raise ValueError(f"Service '{config.service}': unit={unit} needs >= 1 pod per role")
    if config.policy == "hpa":
        return _decide_hpa(config, state, now, metrics, current_units, pending_units, unit, current_pods)
    if config.policy in ("kpa", "apa"):
        return _decide_per_pool(config, state, now, metrics, current_units, pending_units, unit, current_pods)
    headroom, tuned = state.headroom, ""
    if config.headroom.adaptive and config.policy in ("proportional", "hybrid"):
        config, headroom, tuned = _tuned(config, headroom, now, metrics)
    st = config.stability
    supply = current_units + (pending_units if st.count_pending else 0)
    out_ok = cooldown_passed(
        cooldown_reference("out", state.last_scale_out_at, state.last_scale_in_at, st.cooldown_from),
        now,
        st.cooldown_out_s,
    )
    in_ok = cooldown_passed(
        cooldown_reference("in", state.last_scale_out_at, state.last_scale_in_at, st.cooldown_from),
        now,
        st.cooldown_in_s,
    )
    observed = metrics
    metrics, saturated = _saturation(config, metrics, current_units, unit)
    proposal = _propose(config, state, now, metrics, supply, unit)
    proposed, reason = proposal.units, proposal.reason + saturated + tuned
    need = prefill_units_needed(config, metrics, unit)
    if need is not None:
        # Algorithm 2's band on the prefill side: prefill alone scales out only when it needs more than
        # (1 + θ_out) × supply, and always keeps a scale-in from going below what it needs
        floor = math.ceil(need - 1e-9)
        out_band = supply == 0 or exact(need) > supply * (1 + exact(config.proportional.theta_out))
        floor = floor if out_band else min(floor, supply)
        if floor > proposed:
            reason += f"; prefill needs {need:.3g} units → {floor}"
            proposed = floor
    demand = state.demand
    ahead = _anticipate(config, state.demand, now, metrics, unit, startup_delay_s)
    if ahead is not None:
        units_ahead, why = ahead
        if units_ahead > proposed:
            reason += f"; {why} → {units_ahead} units"
            proposed = units_ahead
    ant = config.anticipation
    if proposed < supply and ant.schedule_days and ant.hold_scale_in and st.scale_in_window_s > 0:
        # a scale-in looks as far ahead as the window looks back: no scale-in before a foreseen rise
        lead = lead_of(ant, state.demand, now, startup_delay_s)
        hold = _anticipate(config, state.demand, now, metrics, unit, startup_delay_s,
                           horizon_s=max(lead, st.scale_in_window_s))
        if hold is not None and min(hold[0], supply) > proposed:
            reason += f"; scale-in held at {min(hold[0], supply)}: {hold[1]}"
            proposed = min(hold[0], supply)
    if config.policy in ANTICIPATING_POLICIES and observed.decode_tps is not None:
        demand = record(config.anticipation, demand, now, observed.decode_tps, observed.prefill_tps)
    rule: str = config.policy
    target, history = stabilize_scale_in(state.scale_in_history, supply, proposed, now, st.scale_in_window_s)
    if target != proposed:
        reason += f"; scale-in held at {target} by {st.scale_in_window_s:g} s window"
    if config.policy in COOLDOWN_POLICIES and target != supply and not (out_ok if target > supply else in_ok):
        reason += f"; {'out' if target > supply else 'in'}-cooldown active"
        target = supply
    damped = dampen(
        supply,
        target,
        max_out_units=st.max_step_out_units,
        max_out_percent=st.max_step_out_percent,
        max_in_units=st.max_step_in_units,
        max_in_percent=st.max_step_in_percent,
    )
    if damped != target:
        reason += f"; dampened {target} → {damped}"
    final = clamp_units(damped, config.min_units, config.max_units)
    if final != damped:
        reason += f"; clamped {damped} → {final} to [{config.min_units}, {config.max_units}]"
        rule = f"{rule}+clamp"
    gpus = _budget_gpus(config, gpus_per_pod)
    alerts: list[str] = []
    cap: int | None = None
    per_unit = 0
    if gpus is not None and config.max_gpus is not None:
        per_unit = p * gpus[0] + d * gpus[1]
        cap = config.max_gpus // per_unit
    if cap is not None and final > cap:
        reason += f"; GPU budget {config.max_gpus}: {final} units × {per_unit} GPUs → {cap}"
        rule = f"{rule}+budget"
        if cap < config.min_units:
            alerts.append(
                f"GPU budget {config.max_gpus} holds {cap} units of {p}P:{d}D ({per_unit} GPUs each), "
                f"below min_units={config.min_units}"
            )
        final = cap
    action = action_for(supply, final)
    if action == "none":
        final = current_units + pending_units  # keep everything, starting units included (target is a total)
        if cap is not None and final > cap:  # starting units not counted as supply still count as GPUs
            final, action = cap, "in"
    hybrid = state.hybrid
    if proposal.hybrid is not None:
        # latency units are what this cycle really holds above proportional's target, at most
        # what the layer asked for (a blocked or dampened latency scale-out adds fewer)
        h = proposal.hybrid
        held = min(h.memory.latency_units, max(0, final - h.proportional_units))
        hybrid = h.memory.replace(latency_units=held)
    guard = _guard(config, metrics, final, unit)
    if guard.reason and not guard.alert:  # an alert is reported once, in alerts
        reason += f"; {guard.reason}"
    gp, gd = guard.unit
    # a move down of p waits out the scale-in window as a scale-in does (the ratio does not flap)
    p_window = st.scale_in_window_s if config.prefill_guard.hold_s is None else config.prefill_guard.hold_s
    held_p, p_history = stabilize_scale_in(state.prefill_history, p, gp, now, p_window)
    if held_p != gp:
        reason += f"; prefill move down held at {held_p}P by {p_window:g} s window"
        gp = held_p
    if gpus is not None and config.max_gpus is not None and final > 0 and gp > p:
        # a ratio move up never leaves the budget: p' at most what fits beside the d pods (p itself fits)
        p_fit = max(p, (config.max_gpus // final - gd * gpus[1]) // gpus[0])
        if gp > p_fit:
            alerts.append(
                f"prefill move to {gp}P:{gd}D held at {p_fit}P by the GPU budget {config.max_gpus} ({final} units)"
            )
            gp = p_fit
    new_state = state.replace(
        scale_in_history=history,
        prefill_history=p_history,
        hybrid=hybrid,
        demand=demand,
        headroom=headroom,
        last_scale_out_at=now if action == "out" else state.last_scale_out_at,
        last_scale_in_at=now if action == "in" else state.last_scale_in_at,
    )
    decision = Decision(
        service=config.service,
        action=action,
        target_units=final,
        supply_units=supply,
        prefill_pods=final * gp,
        decode_pods=final * gd,
        rule=rule,
        reason=reason,
        unit=(gp, gd),
        alerts=((guard.alert,) if guard.alert else ()) + tuple(alerts),
        target_utilisation=config.prefill_guard.utilisation if config.policy in ("proportional", "hybrid") else None,
    )
    return decision, new_state


def _budget_gpus(config: ServicePolicy, given: tuple[int, int] | None) -> tuple[int, int] | None:
    """GPUs per (prefill, decode) pod for the ``max_gpus`` budget: given, else the config's; None without a budget."""
    if config.max_gpus is None:
        return None
    gpus = given if given is not None else config.gpus_per_pod
    if gpus is None:
        raise InputError(
            f"Service '{config.service}': max_gpus={config.max_gpus} needs GPUs per pod "
            "(give gpus_per_pod or a profile)"
        )
    return gpus


ANTICIPATING_POLICIES = frozenset({"proportional", "hybrid"})
"""Policies the anticipation floor applies to (it sizes units as Algorithm 2 does)."""


def _anticipate(
    config: ServicePolicy, history: DemandHistory, now: float, m: ServiceMetrics, unit: tuple[int, int],
    startup_delay_s: float, horizon_s: float | None = None,
) -> tuple[int, str] | None:
    """Units the anticipated peak needs (decode at the proportional target, prefill at the highest
    reachable P:D as the prefill floor sizes it) and why; None without a forecast."""
    if config.policy not in ANTICIPATING_POLICIES or m.decode_tps is None:
        return None
    f: Forecast | None = forecast(config.anticipation, history, now, m.decode_tps, m.prefill_tps, startup_delay_s,
                                  horizon_s)
    if f is None:
        return None
    units = f.decode_tps / (_target_tps(config) * unit[1])
    pre = None if m.prefill_tps is None else prefill_units_needed(config, m.replace(prefill_tps=f.prefill_tps), unit)
    if pre is not None and pre > units:
        units = pre
    return math.ceil(units - 1e-9), f.reason


def is_short(config: ServicePolicy, m: ServiceMetrics) -> bool:
    """The cycle fell short of its SLO by what the metrics say: mean TTFT or TBT above its target, or the
    prefill pool at or above ``saturated_util_percent`` (its queue grows while it reads busy)."""
    fb, g = config.feedback, config.prefill_guard
    return bool(
        (m.ttft_ms is not None and fb.target_ttft_ms is not None and m.ttft_ms > fb.target_ttft_ms)
        or (m.tbt_ms is not None and fb.target_tbt_ms is not None and m.tbt_ms > fb.target_tbt_ms)
        or (g.enabled and m.prefill_gpu_util is not None and g.saturated_util_percent is not None
            and m.prefill_gpu_util >= g.saturated_util_percent)
    )


def _tuned(
    config: ServicePolicy, memory: HeadroomMemory, now: float, m: ServiceMetrics
) -> tuple[ServicePolicy, HeadroomMemory, str]:
    """``config`` sized at the SLO-tuned target utilisation (decision 64), the memory after this cycle, and why.

    The configured ``prefill_guard.target_utilisation`` (the curated headroom, or the default) is the
    ceiling; the decode target moves with it in proportion.
    """
    configured = config.prefill_guard.utilisation
    short = None if m.decode_tps is None else is_short(config, m)  # no decode reading: a gap in the metrics
    memory, u, why = tune(config.headroom, memory, configured, now, short)
    if u == configured:
        return config, memory, why
    target = config.proportional.target_decode_tps_per_pod
    tuned = config.model_copy(update={
        "prefill_guard": config.prefill_guard.model_copy(update={"target_utilisation": u}),
        "proportional": config.proportional.model_copy(
            update={"target_decode_tps_per_pod": None if target is None else target * u / configured}),
    })
    return tuned, memory, why or f"; target utilisation {u:g} (SLO-tuned, configured {configured:g})"


def _saturation(
    config: ServicePolicy, m: ServiceMetrics, serving_units: int, unit: tuple[int, int]
) -> tuple[ServiceMetrics, str]:
    """``m`` with a saturated prefill pool's TPS read as at least its pods × the per-pod figure, and why.

    Served prefill TPS cannot exceed what the pods do; where the per-pod figure overestimates them (a
    mix of longer prompts than curated), a saturated pool reads as *below* its figure and the
    ``target_utilisation`` rule never sees it short. At or above ``saturated_util_percent`` the pool is
    taken at its figure, so the guard and the floor size it ``1 / target_utilisation`` larger.
    """
    g = config.prefill_guard
    if (g.saturated_util_percent is None or not g.enabled or config.policy not in ("proportional", "hybrid")
            or m.prefill_gpu_util is None or m.prefill_tps is None or g.prefill_tps_per_pod is None
            or m.prefill_gpu_util < g.saturated_util_percent):
        return m, ""
    pods = serving_units * unit[0] if m.prefill_ready_pods is None else m.prefill_ready_pods
    floor = pods * g.prefill_tps_per_pod
    if floor <= m.prefill_tps:
        return m, ""
    why = (f"; prefill GPUs {m.prefill_gpu_util:g}% ≥ {g.saturated_util_percent:g}%: saturated, "
           f"prefill TPS {m.prefill_tps:.4g} read as {pods} pods × {g.prefill_tps_per_pod:g} = {floor:.4g}")
    return m.replace(prefill_tps=floor), why


def prefill_units_needed(config: ServicePolicy, m: ServiceMetrics, unit: tuple[int, int]) -> float | None:
    """Units prefill needs at the highest reachable P:D (``prefill_guard.scale_units``), else None.

    The highest reachable ``p`` is the bound's when the guard may move the ratio (``move_ratio``),
    else the unit's own. Served prefill TPS cannot exceed capacity, so pods are sized at
    ``target_utilisation`` of their rate: a saturated pool then reads as short and the need rises.
    """
    g = config.prefill_guard
    if (config.policy not in ("proportional", "hybrid") or not (g.enabled and g.scale_units)
            or m.prefill_tps is None or g.prefill_tps_per_pod is None):
        return None
    _, p_hi = prefill_bounds(unit[1], g.min_prefill_per_decode, g.max_prefill_per_decode, unit[0])
    p_max = max(p_hi, unit[0]) if g.move_ratio else unit[0]
    return m.prefill_tps / (p_max * g.prefill_tps_per_pod * g.utilisation)


def _guard(config: ServicePolicy, m: ServiceMetrics, units: int, unit: tuple[int, int]) -> GuardResult:
    g = config.prefill_guard
    if not g.enabled:
        return GuardResult(unit=unit, prefill_pods_needed=None)
    return prefill_guard(
        prefill_tps=m.prefill_tps,
        prefill_tps_per_pod=g.prefill_tps_per_pod,
        units=units,
        unit=unit,
        min_prefill_per_decode=g.min_prefill_per_decode,
        max_prefill_per_decode=g.max_prefill_per_decode,
        margin=g.margin,
        target_utilisation=g.utilisation,
    )


class PolicyEngine:
    """All services' policies; :meth:`step` is pure over an explicit :class:`EngineState`."""

    def __init__(self, config: AutoscalerConfig) -> None:
        self.config = config
        self._by_service = config.by_service()

    def step(
        self,
        state: EngineState,
        now: float,
        metrics: Mapping[str, ServiceMetrics],
        current_units: Mapping[str, int],
        pending_units: Mapping[str, int],
        units: Mapping[str, tuple[int, int]],
        *,
        startup_delay_s: float = 0.0,
        gpus_per_pod: Mapping[str, tuple[int, int]] | None = None,
    ) -> tuple[dict[str, Decision], EngineState]:
        """Decide every configured service, in sorted id order.

        A service without metrics this cycle gets empty :class:`ServiceMetrics`; ``startup_delay_s``
        is how long new units take to serve (the anticipation floor covers it); ``gpus_per_pod`` gives a
        service's ``(prefill, decode)`` GPUs per pod for its ``max_gpus`` budget (else its config's).
        """
        decisions: dict[str, Decision] = {}
        new_states = dict(state.services)
        for sid in sorted(self._by_service):
            cfg = self._by_service[sid]
            if sid not in units or sid not in current_units:
                raise InputError(f"Service '{sid}': no current units or unit shape given")
            dec, st = decide(
                cfg,
                state.services.get(sid, ServicePolicyState()),
                now,
                metrics.get(sid, ServiceMetrics()),
                current_units[sid],
                pending_units.get(sid, 0),
                units[sid],
                startup_delay_s=startup_delay_s,
                gpus_per_pod=(gpus_per_pod or {}).get(sid),
            )
            decisions[sid] = dec
            new_states[sid] = st
        return decisions, EngineState(services=new_states)
