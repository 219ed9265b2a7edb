"""Fuzz ``Autoscaler.step`` with adversarial metrics under every policy: targets are whole units
within the service's limits, plans are verified, errors are :class:`InputError`, and a restart from
the saved state makes exactly the decisions an uninterrupted run makes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import event, given
from hypothesis import strategies as st

from fuzz.budget import fuzz_settings
from hetero_opt import InputError, load_instance
from hetero_opt.autoscaler import Autoscaler, AutoscalerState, CycleDecision
from hetero_opt.instance import Instance
from hetero_opt.placement.apply import apply_plan
from hetero_opt.policy.config import AutoscalerConfig, ServicePolicy
from hetero_opt.policy.engine import MAX_TOKENS_PER_S, ServiceMetrics

CLUSTER = load_instance(Path(__file__).resolve().parents[2] / "instances" / "autoscale" / "cluster.yaml")
POLICIES: dict[str, dict[str, Any]] = {
    "proportional": {"proportional": {"target_decode_tps_per_pod": 2000}},
    "feedback": {"feedback": {"signals": ["tbt", "ttft"], "target_ttft_ms": 500, "target_tbt_ms": 50}},
    "hybrid": {
        "proportional": {"target_decode_tps_per_pod": 2000},
        "feedback": {"target_ttft_ms": 500, "target_tbt_ms": 50},
    },
    "periodic": {"periodic": {"windows": [{"start": "22:00", "end": "06:00", "units": 4}], "default_units": 2}},
    "hpa": {},
    "static": {"static_units": 5},
}
#: Metric values: zero, ordinary, huge (finite) and absent.
FLOATS = st.one_of(st.none(), st.sampled_from([0.0, 1e-9, 1e308]), st.floats(0, 1e7, allow_nan=False))
PODS = st.one_of(st.none(), st.integers(0, 10**6))


@st.composite
def metrics(draw: st.DrawFn) -> ServiceMetrics:
    """One cycle's observations of the service, any field possibly missing."""
    floats = ("decode_tps", "prefill_tps", "ttft_ms", "tbt_ms", "prefill_gpu_util", "decode_gpu_util")
    pods = ("prefill_ready_pods", "prefill_unready_pods", "decode_ready_pods", "decode_unready_pods")
    values = {f: draw(FLOATS) for f in floats} | {f: draw(PODS) for f in pods}
    for rate in ("decode_tps", "prefill_tps"):  # token rates are bounded (the largest one allowed is kept)
        if values[rate] is not None:
            values[rate] = min(values[rate], MAX_TOKENS_PER_S)
    return ServiceMetrics.model_validate({k: v for k, v in values.items() if v is not None})


def _config(policy: str, lo: int, hi: int, cooldown: float) -> AutoscalerConfig:
    body = {
        "service": "chat",
        "policy": policy,
        "min_units": lo,
        "max_units": hi,
        "stability": {"cooldown_out_s": cooldown, "cooldown_in_s": cooldown},
    }
    return AutoscalerConfig(services=(ServicePolicy.model_validate(body | POLICIES[policy]),))


def _run(a: Autoscaler, instance: Instance, steps: list[tuple[float, ServiceMetrics]]) -> list[CycleDecision]:
    out = []
    for now, m in steps:
        d = a.step(now, {"chat": m}, instance)
        if d.placement is not None:
            instance = apply_plan(instance, d.placement.plan)
        out.append(d)
    return out


def _comparable(d: CycleDecision) -> tuple[object, ...]:
    plan = None if d.placement is None else d.placement.plan
    return (d.time, d.services, plan, d.state)


@fuzz_settings("autoscaler")
@given(
    policy=st.sampled_from(sorted(POLICIES)),
    limits=st.tuples(st.integers(0, 8), st.integers(0, 60)).map(sorted),
    cooldown=st.sampled_from([0.0, 60.0, 600.0]),
    start=st.sampled_from([0.0, 1.7e9, 1e12]),
    gaps=st.lists(st.sampled_from([0.0, 1.0, 15.0, 60.0, 3600.0]), min_size=2, max_size=6),
    data=st.data(),
)
def test_fuzz_autoscaler_targets_whole_and_state_reloads_to_identical_decisions(
    policy: str, limits: list[int], cooldown: float, start: float, gaps: list[float], data: st.DataObject
) -> None:
    config = _config(policy, limits[0], limits[1], cooldown)
    times = [start + sum(gaps[: i + 1]) for i in range(len(gaps))]
    steps = [(t, data.draw(metrics())) for t in times]
    split = data.draw(st.integers(1, len(steps) - 1))
    whole = Autoscaler(config, solver="greedy", startup_delay_s=30.0)
    error = ""
    try:
        decisions = _run(whole, CLUSTER, steps)
    except InputError as exc:  # e.g. a periodic schedule asked about a time beyond year 9999
        error = str(exc)
    if error:
        event(f"{policy}: InputError")
        assert "\n" not in error
        return
    event(f"{policy}: ran")
    svc = next(s for s in CLUSTER.services if s.id == "chat")
    for d in decisions:
        (row,) = d.services
        assert isinstance(row.wanted_units, int)
        assert svc.min_units <= row.wanted_units <= svc.max_units
        assert row.placed_units >= 0
    first = Autoscaler(config, solver="greedy", startup_delay_s=30.0)
    head = _run(first, CLUSTER, steps[:split])
    instance = CLUSTER
    for d in head:
        if d.placement is not None:
            instance = apply_plan(instance, d.placement.plan)
    saved = first.save_state()
    resumed = Autoscaler(
        config, solver="greedy", startup_delay_s=30.0, state=AutoscalerState.model_validate_json(saved)
    )
    tail = _run(resumed, instance, steps[split:])
    assert [_comparable(d) for d in head + tail] == [_comparable(d) for d in decisions]
