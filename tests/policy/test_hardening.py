"""Regression tests of issue 11 in the policy layer: non-finite metrics and times, periodic time
units, and the HPA port where it differed from upstream (``hpa-semantics.md``)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import hetero_opt as ho
from hetero_opt.autoscaler import Autoscaler, AutoscalerState
from hetero_opt.cli import main
from hetero_opt.errors import InputError
from hetero_opt.policy.config import AutoscalerConfig, ServicePolicy
from hetero_opt.policy.engine import ServiceMetrics
from hetero_opt.policy.hpa import (
    MAX_INT64,
    Pod,
    PodMetric,
    Tolerances,
    get_per_pod_metric_replicas,
    get_plain_metric_replicas,
    get_resource_replicas,
    go_quo,
    utilization_replicas,
)
from hetero_opt.policy.periodic import MAX_EPOCH_S, PeriodicWindow, local_time, periodic_target

DEMO = Path(__file__).resolve().parents[2] / "instances" / "autoscale"
FLOAT_FIELDS = ("decode_tps", "prefill_tps", "ttft_ms", "tbt_ms", "prefill_gpu_util", "decode_gpu_util")
NOW = 1_000_000.0


def _hpa_config() -> AutoscalerConfig:
    return AutoscalerConfig(
        services=(ServicePolicy(service="chat", policy="hpa", min_units=1, max_units=40),),
    )


# -------------------------------------------------------------------- defect 7: non-finite metrics


@pytest.mark.parametrize("field", FLOAT_FIELDS)
@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_non_finite_metrics_are_refused_by_the_metrics_model(field: str, value: float) -> None:
    with pytest.raises(ValidationError, match=field):
        ServiceMetrics.model_validate({field: value})


@pytest.mark.parametrize(
    ("cell", "needle"),
    [
        ("decode_ready_pods\ninf", "decode_ready_pods=inf is not a whole number of pods"),
        ("decode_ready_pods\n2.5", "decode_ready_pods=2.5 is not a whole number of pods"),
        ("decode_tps\ninf", "decode_tps"),
        ("decode_gpu_util\ninf", "decode_gpu_util"),
    ],
)
def test_non_finite_metrics_in_a_csv_exit_2_with_one_line(
    cell: str, needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    col, value = cell.split("\n")
    csv = tmp_path / "m.csv"
    csv.write_text(f"time,service,{col}\n0,chat,{value}\n")
    args = ["autoscale", "--config", str(DEMO / "policy.yaml"), "--metrics", str(csv)]
    assert main([*args, "--instance", str(DEMO / "cluster.yaml")]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"{csv}: "), line
    assert needle in line, line


# -------------------------------------------------------------------- defect 8: non-finite now


@pytest.mark.parametrize("now", [math.inf, -math.inf, math.nan, 1e16])
def test_non_finite_now_is_refused_and_state_still_reloads(now: float) -> None:
    cluster = ho.load_instance(DEMO / "cluster.yaml")
    a = Autoscaler(_hpa_config(), solver="greedy")
    a.step(0.0, {"chat": ServiceMetrics(decode_gpu_util=95)}, cluster)
    before = a.save_state()
    with pytest.raises(InputError, match=r"Autoscaler: now=.* must be a finite time in seconds"):
        a.step(now, {"chat": ServiceMetrics(decode_gpu_util=95)}, cluster)
    assert a.save_state() == before
    b = Autoscaler(_hpa_config(), solver="greedy", state=AutoscalerState.model_validate_json(before))
    b.step(NOW, {"chat": ServiceMetrics(decode_gpu_util=95)}, cluster)  # later steps still work


@pytest.mark.parametrize(("kwarg", "value"), [("startup_delay_s", math.nan), ("startup_delay_s", -1.0)])
def test_non_finite_autoscaler_settings_are_refused(kwarg: str, value: float) -> None:
    with pytest.raises(InputError, match=f"{kwarg}={value}"):
        Autoscaler(_hpa_config(), **{kwarg: value})  # type: ignore[arg-type]


# -------------------------------------------------------------------- defect 9: periodic time units


@pytest.mark.parametrize("now", [1.7e12, 1e18, math.nan, math.inf, -1.0])
def test_periodic_now_outside_epoch_seconds_is_refused(now: float) -> None:
    window = PeriodicWindow(start="08:00", end="20:00", units=5)
    with pytest.raises(InputError, match=r"now=.* is not a time in epoch seconds .*milliseconds"):
        periodic_target(now, [window], default_units=1)


def test_periodic_accepts_the_whole_epoch_second_range() -> None:
    assert local_time(0.0, 0.0) == (3, 0)  # 1970-01-01 was a Thursday (Monday = 0)
    assert local_time(float(MAX_EPOCH_S), 14.0) == (4, 14 * 60)  # 9999-12-31 (a Friday) 14:00
    assert local_time(1.7e9, 0.0) == (1, 22 * 60 + 13)  # 2023-11-14 22:13 UTC, a Tuesday


# -------------------------------------------------------------------- defect 11: HPA port


def test_hpa_per_pod_at_zero_status_replicas_scales_to_ceil_total_over_target() -> None:
    # Go: 8600 / (2150 * 0) = +Inf, outside tolerance → ceil(8600 / 2150) = 4; 0/0 = NaN → ceil(0) = 0
    assert get_per_pod_metric_replicas(0, 8600, 2150) == (4, MAX_INT64)
    assert get_per_pod_metric_replicas(0, 0, 2150) == (0, 0)


@pytest.mark.parametrize(("a", "b", "expected"), [(-7, 2, -3), (7, 2, 3), (-6, 3, -2), (7, -2, -3), (0, 5, 0)])
def test_hpa_integer_average_truncates_toward_zero(a: int, b: int, expected: int) -> None:
    assert go_quo(a, b) == expected


def test_hpa_negative_custom_metric_average_truncates_like_go() -> None:
    # Σ = -7000 - 4001 = -11001 over 2 pods: Go -5500 (toward zero); Python's // would give -5501
    pods = [Pod(name="p0"), Pod(name="p1")]
    metrics = {"p0": PodMetric(value=-7000), "p1": PodMetric(value=-4001)}
    _, usage = get_plain_metric_replicas(2, 1000, pods, metrics, now=NOW)
    assert usage == -5500


def test_hpa_missing_cpu_request_is_an_error() -> None:
    pods = [Pod(name="p0", request_milli=1000), Pod(name="p1")]  # p1 sets no cpu request
    metrics = {"p0": PodMetric(value=900, timestamp=NOW), "p1": PodMetric(value=900, timestamp=NOW)}
    with pytest.raises(ValueError, match="missing request for cpu in Pod p1"):
        get_resource_replicas(2, 50, pods, metrics, now=NOW)


def test_hpa_resource_replicas_returns_the_raw_average_usage() -> None:
    pods = [Pod(name=f"p{i}", request_milli=1000) for i in range(3)]
    metrics = {f"p{i}": PodMetric(value=v, timestamp=NOW) for i, v in enumerate([100, 200, 301])}
    # utilization 601*100 // 3000 = 20 %; raw average 601 // 3 = 200 m; 20/50 × 3 = 1.2 → 2
    assert get_resource_replicas(3, 50, pods, metrics, now=NOW) == (2, 20, 200)


def _pool(
    n_ready: int, n_unready: int, util: int, req_ready: int, req_unready: int
) -> tuple[list[Pod], dict[str, PodMetric]]:
    """Ready pods using exactly ``util`` % of their request (×100 keeps it integral), unready ones Pending."""
    pods = [Pod(name=f"r{i}", request_milli=req_ready * 100) for i in range(n_ready)]
    pods += [Pod(name=f"u{i}", phase="Pending", request_milli=req_unready * 100) for i in range(n_unready)]
    return pods, {f"r{i}": PodMetric(value=util * req_ready, timestamp=NOW) for i in range(n_ready)}


def test_hpa_pool_average_matches_pod_level_when_requests_differ() -> None:
    # two ready 1000m pods at 90 %, one unready 3000m pod, target 50 %: 90/50 > 1 with unready →
    # 1800 / 5000 = 36 % → 0.72 flips direction → keep 2 (the old pool average said 90·2//3 = 60 % → 4)
    pods, metrics = _pool(2, 1, 90, 1000, 3000)
    assert get_resource_replicas(2, 50, pods, metrics, now=NOW)[0] == 2
    assert utilization_replicas(2, 2, 1, 90, 50, ready_request_milli=1000, unready_request_milli=3000) == 2


@settings(max_examples=150, deadline=None)
@given(
    current=st.integers(0, 40),
    n_ready=st.integers(1, 12),
    n_unready=st.integers(0, 12),
    util=st.integers(0, 400),
    target=st.integers(1, 200),
    req_ready=st.integers(1, 4000),
    req_unready=st.integers(1, 4000),
    tol=st.sampled_from(
        [Tolerances(), Tolerances(scale_up=0.05, scale_down=0.5), Tolerances(scale_up=0, scale_down=0)]
    ),
)
def test_hpa_pool_average_equals_pod_level_calculator(
    current: int,
    n_ready: int,
    n_unready: int,
    util: int,
    target: int,
    req_ready: int,
    req_unready: int,
    tol: Tolerances,
) -> None:
    pods, metrics = _pool(n_ready, n_unready, util, req_ready, req_unready)
    want = get_resource_replicas(current, target, pods, metrics, now=NOW, tolerances=tol)[0]
    got = utilization_replicas(
        current, n_ready, n_unready, util, target, tol, ready_request_milli=req_ready, unready_request_milli=req_unready
    )
    assert got == want


def test_huge_rate_over_tiny_target_is_refused_not_an_overflow() -> None:
    # 1e308 tokens/s over a 1e-300 per-pod target overflowed Algorithm 2's ceil; both are now bounded
    from pydantic import ValidationError

    from hetero_opt.policy.config import ProportionalConfig
    from hetero_opt.policy.engine import ServiceMetrics

    with pytest.raises(ValidationError, match="decode_tps"):
        ServiceMetrics(decode_tps=1e308)
    with pytest.raises(ValidationError, match="target_decode_tps_per_pod"):
        ProportionalConfig(target_decode_tps_per_pod=1e-300)
