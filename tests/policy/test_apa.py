"""AIBrix APA baseline, ported from upstream test vectors.

Cases cite vllm-project/aibrix ``pkg/controller/podautoscaler/algorithm/apa_test.go``
(``TestAPAAlgorithm_ComputeTargetReplicas``, by case name): their ``currentPodCount`` and context
(target, current use per pod, tolerances, rates) map one to one onto :func:`apa_target_replicas`.
All ten cases are ported. Skipped: ``scaler/apa_test.go``'s ``TestAPAScale``, which upstream itself
skips (``t.Skip``; it builds a KPA decider and expects KPA's panic result, 10 pods, from an APA
call); its second half (a 1.1 up tolerance holds 5 ready pods at 100/5 = 20 per pod against 10) is
checked by :func:`test_scale_wide_up_tolerance_holds`.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hetero_opt.errors import InputError
from hetero_opt.policy.apa import APASpec, APAState, apa_scale, apa_target_replicas
from hetero_opt.policy.config import APAPolicyConfig, ServicePolicy, load_policy_config
from hetero_opt.policy.engine import ServiceMetrics, ServicePolicyState, decide

T0 = 1_000_000.0


@pytest.mark.parametrize(
    ("name", "pods", "use", "up_tol", "up_rate", "down_tol", "down_rate", "want"),
    [
        # 45/30 = 1.5 > 1.1: ceil(2 × 1.5) = 3 <= ceil(2 × 2) = 4
        ("basic_scale_up", 2, 45.0, 0.1, 2, 0.1, 2, 3),
        # 35/30 = 1.167 > 1.1: ceil(2.33) = 3
        ("scale_up_upto_ceiling", 2, 35.0, 0.1, 2, 0.1, 2, 3),
        # 90/30 = 3: ceil(6) = 6 capped at ceil(2 × 2) = 4
        ("scale_up_upto_max_scale_up", 2, 90.0, 0.1, 2, 0.1, 2, 4),
        # cap ceil(2.5 × 2) = 5
        ("scale_up_upto_max_scale_up_ceiling", 2, 90.0, 0.1, 2.5, 0.1, 2, 5),
        # 20/30 = 0.667 < 0.9: ceil(6 × 0.667) = 4 >= floor(6/2) = 3
        ("basic_scale_down", 6, 20.0, 0.1, 2, 0.1, 2, 4),
        # 18/30 = 0.6: ceil(3.6) = 4
        ("scale_down_upto_ceiling", 6, 18.0, 0.1, 2, 0.1, 2, 4),
        # 10/30: ceil(2) = 2 raised to floor(6/2) = 3
        ("scale_down_upto_max_scale_down", 6, 10.0, 0.1, 2, 0.1, 2, 3),
        # 5/30: ceil(1) = 1 raised to floor(6/2.5) = 2
        ("scale_down_upto_max_scale_down_floor", 6, 5.0, 0.1, 2, 0.1, 2.5, 2),
        # 33/30 = 1.1: not > 1.1 (strict) → 2
        ("no_scaling_as_within_up_tolerance", 2, 33.0, 0.1, 2, 0.1, 2, 2),
        # 27/30 = 0.9: not < 0.9 (strict) → 2
        ("no_scaling_as_within_down_tolerance", 2, 27.0, 0.1, 2, 0.1, 2, 2),
    ],
)
def test_compute_target_replicas(
    name: str, pods: int, use: float, up_tol: float, up_rate: float, down_tol: float, down_rate: float, want: int
) -> None:
    """TestAPAAlgorithm_ComputeTargetReplicas: target 30 per pod."""
    s = APASpec(target_value=30.0, up_fluctuation_tolerance=up_tol, down_fluctuation_tolerance=down_tol,
                max_scale_up_rate=up_rate, max_scale_down_rate=down_rate)
    assert apa_target_replicas(s, float(pods), use) == want, name


def test_scale_wide_up_tolerance_holds() -> None:
    """TestAPAScale (skipped upstream), second half: up tolerance 1.1, 5 ready, total 100 → 20 per pod
    against 10: 2.0 is not > 2.1 → hold 5. With the default 0.1: min(ceil(5 × 2), ceil(2 × 5)) = 10."""
    wide = APASpec(target_value=10.0, up_fluctuation_tolerance=1.1)
    assert apa_scale(wide, 5, 100.0) == 5
    assert apa_scale(APASpec(target_value=10.0), 5, 100.0) == 10


def test_scale_without_ready_pod_is_invalid() -> None:
    """ApaAutoscaler.Scale: no ready pod → no valid result (the engine holds)."""
    assert apa_scale(APASpec(target_value=10.0), 0, 100.0) is None


def test_defaults_are_upstreams() -> None:
    """NewApaScalingContext: tolerances 0.1 up / 0.2 down, 60 s window; BaseScalingContext: rates 2 and 2."""
    c = APAPolicyConfig()
    assert (c.up_fluctuation_tolerance, c.down_fluctuation_tolerance, c.window_s) == (0.1, 0.2, 60.0)
    assert (c.max_scale_up_rate, c.max_scale_down_rate) == (2.0, 2.0)


# --------------------------------------------------------------------------- engine


def policy(**kw: object) -> ServicePolicy:
    base: dict[str, object] = {
        "service": "s", "policy": "apa", "min_units": 1, "max_units": 100,
        "proportional": {"target_decode_tps_per_pod": 1000.0},
        "prefill_guard": {"prefill_tps_per_pod": 5000.0, "target_utilisation": 0.8},
    }
    return ServicePolicy.model_validate(base | kw)


def test_engine_window_and_whole_units() -> None:
    """2P:1D, 2 units (4 prefill, 2 decode pods, all ready).
    T0: decode 3000/2 = 1500 per pod over 1000: 1.5 > 1.1 → min(ceil(3), ceil(2 × 2)) = 3; prefill
    8000/4 = 2000 over 4000: 0.5 < 0.8 → max(ceil(2), floor(4/2)) = 2. Units max(ceil(2/2), 3) = 3.
    T0 + 30, decode 1000: window mean (3000 + 1000)/2 = 2000 → 1000 per pod: in the band → 2 ready;
    units max(1, 2) = 2 (supply 3: in)."""
    cfg = policy()
    m = ServiceMetrics(decode_tps=3000.0, prefill_tps=8000.0, prefill_ready_pods=4, decode_ready_pods=2)
    dec, st = decide(cfg, ServicePolicyState(), T0, m, 2, 0, (2, 1))
    assert (dec.prefill_pods, dec.decode_pods, dec.target_units, dec.action) == (2, 3, 3, "out")
    assert ServicePolicyState.model_validate_json(st.model_dump_json()) == st
    dec, st = decide(cfg, st, T0 + 30, m.replace(decode_tps=1000.0), 2, 1, (2, 1))
    assert (dec.decode_pods, dec.target_units, dec.action) == (2, 2, "in")
    assert len(st.apa_decode.samples) == 2


def test_engine_holds_without_metric_or_ready_pods() -> None:
    dec, st = decide(policy(), ServicePolicyState(), T0, ServiceMetrics(), 2, 0, (2, 1))
    assert (dec.prefill_pods, dec.decode_pods, dec.target_units, dec.action) == (4, 2, 2, "none")
    assert st.apa_decode == APAState()
    m = ServiceMetrics(decode_tps=5000.0, prefill_tps=1.0, prefill_ready_pods=0, decode_ready_pods=0)
    dec, _ = decide(policy(), ServicePolicyState(), T0, m, 0, 2, (2, 1))
    assert (dec.prefill_pods, dec.decode_pods, dec.target_units) == (4, 2, 2)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("up_fluctuation_tolerance", -0.1, "up_fluctuation_tolerance=-0.1 must be in [0, 1e6]"),
        ("up_fluctuation_tolerance", 2e6, "up_fluctuation_tolerance=2000000.0 must be in [0, 1e6]"),
        ("down_fluctuation_tolerance", 1.5, "down_fluctuation_tolerance=1.5 must be in [0, 1]"),
        ("window_s", 0.0, "window_s=0.0 must be > 0"),
        ("max_scale_up_rate", 0.5, "max_scale_up_rate=0.5 must be in [1, 1e9]"),
        ("max_scale_down_rate", 0.0, "max_scale_down_rate=0.0 must be in [1, 1e9]"),
        ("max_scale_down_rate", 2e9, "max_scale_down_rate=2000000000.0 must be in [1, 1e9]"),
        ("prefill_target_per_pod", 0.0, "prefill_target_per_pod=0.0 must be in [1e-06, 1e12]"),
    ],
)
def test_config_refuses_bad_values(field: str, value: object, message: str) -> None:
    with pytest.raises(ValidationError) as exc:
        APAPolicyConfig.model_validate({field: value})
    assert message in exc.value.errors()[0]["msg"]


def test_config_yaml_error_is_one_line(tmp_path: object) -> None:
    from pathlib import Path

    p = Path(str(tmp_path)) / "p.yaml"
    p.write_text("services:\n  - service: s\n    policy: apa\n    apa: {window_s: -5}\n")
    with pytest.raises(InputError) as exc:
        load_policy_config(p)
    assert "\n" not in str(exc.value)
    assert "Service 's': apa: window_s=-5.0 must be > 0" in str(exc.value)
