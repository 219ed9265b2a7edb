"""NVIDIA Dynamo's Planner scenarios, ported to our policy engine.

Every case is one of the Dynamo planner's own unit tests (ai-dynamo/dynamo), cited by file, commit
and test name; the expected numbers are recomputed by hand in the comments: their inputs → our
inputs → expected pods.

- ``tests/planner/test_replica_calculation.py`` at 002a7c31 (``TestReplicaCalculation``): the
  SLA / throughput planner's replica formulas.
- ``tests/planner/unit/test_sla_planner_scaling.py`` at 002a7c31: one scale-up, one scale-down.
- ``tests/planner/unit/test_load_based_scaling.py`` at 002a7c31: the load-based planner.
- ``components/src/dynamo/planner/tests/unit/test_budget.py`` at 1ed16fa2: the GPU budget.
- ``tests/planner/unit/test_planner_scaledown_nan.py`` at 3b16a5e8 (Dynamo issue #6985).
- ``tests/planner/unit/test_load_predictors.py`` at 4774e35d (``TestConstantPredictor``).

The mapping:

- Dynamo's throughput planner sizes each pool alone: ``P = ceil(num_req × ISL / interval /
  (thpt per GPU × GPUs per engine))`` and ``D = ceil(num_req × OSL / interval / (decode thpt per
  GPU at the ITL SLA × GPUs per engine))``, each at least ``min_endpoint``. We size whole P/D units
  from decode TPS (Algorithm 2) and hold enough units for prefill (the prefill floor), so
  ``prefill_tps = num_req × ISL / interval`` and ``decode_tps = num_req × OSL / interval``; the
  per-pod figures are Dynamo's per-GPU figures × GPUs per engine. Dynamo's interpolated throughput
  is already the rate at the SLO, so the prefill floor is read at ``target_utilisation = 1``
  (our default 0.8 sizes prefill 1.25× larger, on purpose: served TPS cannot exceed capacity).
- **By design our pools move as units**: where Dynamo's pair (P, D) is not a multiple of our unit,
  the comparable quantity is the pool the unit is sized on (decode, or prefill through the floor);
  the other pool is the unit's multiple. Each such case says which unit gives Dynamo's pair exactly.
- Dynamo's ``min_endpoint`` (per pool) is ``min_units`` (per unit: ``max(ceil(m/p), ceil(m/d))``).
- Dynamo's ``max_gpu_budget`` is our ``max_gpus`` (added for this port, decision 50): a hard cap
  on the service's prefill + decode GPUs. Dynamo shrinks both pools by ``budget / total`` and gives
  the rest to decode; whole units keep the ratio, so ours is ``floor(budget / GPUs per unit)``.
- Dynamo's load-based planner adds or removes one worker per 5-s tick when *every* worker is above
  the load at the SLA (from a latency regression) or below ``target × (n−1)/n``. Its per-worker
  target is our per-pod figure at the SLO; the pool's load is the sum of the workers'. We jump to
  the needed count; ``max_step_{out,in}_units: 1`` is Dynamo's one step.
- Dynamo's planner state is reset per case; ours starts from ``ServicePolicyState()`` with the
  scale-in window at 0 (Dynamo has none) and no cooldown pending.

Skipped kinds of upstream cases: interpolation over profiling data (``perf_interpolation``, the
H200 ``.npz`` sweeps; we take per-pod figures from the serving profile), the Kalman and Prophet
predictors (our anticipation learns a daily schedule instead, ``test_anticipation.py``), the
regression fit of the load-based planner (``LoadBasedRegressionModel``: we take the SLO figure from
the profile), GPU counts read from a DGD, Prometheus parsing of Dynamo's own metric names,
``min_gpu_budget`` (a floor in GPUs; ours is ``min_units``), the direction-preserving rebalance
guards between pools (one pool up, the other down: our pools never move in opposite directions),
and connectors.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pytest
from pydantic import ValidationError

from hetero_opt.policy.config import ServicePolicy
from hetero_opt.policy.engine import (
    Decision,
    ServiceMetrics,
    ServicePolicyState,
    decide,
    is_idle,
    metrics_from_frame,
    prefill_units_needed,
)

INTERVAL = 60.0  # Dynamo's adjustment_interval in these tests: num_req counts requests per 60 s


def dynamo_load(num_req: float, isl: float, osl: float) -> ServiceMetrics:
    """Dynamo's (num_req per interval, ISL, OSL) as our token rates."""
    return ServiceMetrics(prefill_tps=num_req * isl / INTERVAL, decode_tps=num_req * osl / INTERVAL)


def policy(
    decode_per_pod: float,
    prefill_per_pod: float | None = None,
    *,
    name: str = "proportional",
    min_units: int = 1,
    bounds: tuple[float, float] | None = None,
    **extra: Any,
) -> ServicePolicy:
    """A service policy with Dynamo's per-pod figures, the window off and anticipation off."""
    data: dict[str, Any] = {
        "service": "llm",
        "policy": name,
        "min_units": min_units,
        "proportional": {"target_decode_tps_per_pod": decode_per_pod},
        "prefill_guard": {"prefill_tps_per_pod": prefill_per_pod, "target_utilisation": 1.0},
        "anticipation": {"schedule_days": 0},
        "stability": {"scale_in_window_s": 0},
    }
    if bounds is not None:
        data["prefill_guard"] |= {"min_prefill_per_decode": bounds[0], "max_prefill_per_decode": bounds[1]}
    for key, value in extra.items():
        data[key] = data[key] | value if isinstance(data.get(key), dict) else value
    return ServicePolicy.model_validate(data)


def once(cfg: ServicePolicy, m: ServiceMetrics, supply: int, unit: tuple[int, int], **kw: Any) -> Decision:
    """One decision from a fresh state at t=0."""
    return decide(cfg, ServicePolicyState(), 0.0, m, supply, 0, unit, **kw)[0]


def pods(d: Decision) -> tuple[int, int]:
    return d.prefill_pods, d.decode_pods


# ---------------------------------------------------------------------------------------------
# tests/planner/test_replica_calculation.py @ 002a7c31, TestReplicaCalculation
# mocked figures: prefill 40,000 tok/s per GPU, decode 10,000 tok/s per GPU, 1 GPU per engine
# ---------------------------------------------------------------------------------------------


def test_prefill_replica_calculation_basic() -> None:
    """Dynamo: 10 req × ISL 3000 / 60 s = 500 tok/s / 40,000 → ceil(0.0125) = 1 prefill replica.

    Ours: prefill_tps 500 at 40,000 per pod needs 0.0125 units of 1P:1D (the floor's input); decode
    10 × 150 / 60 = 25 tok/s is 0.0025 pods, R = 0.0025 < 0.8 but ceil(0.0025 × 1.1) = 1 unit is
    the supply → no change: 1 prefill pod, as Dynamo.
    """
    cfg = policy(10_000, 40_000)
    m = dynamo_load(10, 3000, 150)
    assert prefill_units_needed(cfg, m, (1, 1)) == pytest.approx(0.0125)
    d = once(cfg, m, 1, (1, 1))
    assert (d.action, d.prefill_pods) == ("none", 1)


def test_decode_replica_calculation_basic() -> None:
    """Dynamo: 10 req × OSL 150 / 60 s = 25 tok/s / 10,000 → ceil(0.0025) = 1 decode replica.

    Ours: 25 / 10,000 = 0.0025 decode pods → ceil(0.0025 / d=1) = 1 unit → 1 decode pod.
    """
    d = once(policy(10_000, 40_000), dynamo_load(10, 3000, 150), 1, (1, 1))
    assert d.decode_pods == 1
    assert "0.0025 pods" in d.reason


@pytest.mark.parametrize(
    ("num_req", "decode_per_gpu", "dynamo_pd", "unit", "ours"),
    [
        # low_load_10_req_per_second: P = ceil(500 / 40,000) = 1; D = ceil(25 / 10,000) = 1 → (1, 1).
        # Ours at 1P:1D: 0.0025 decode pods → 1 unit → (1, 1), Dynamo's pair.
        (10, 10_000, (1, 1), (1, 1), (1, 1)),
        # The same load at 1P:2D: 1 unit → (1, 2): decode agrees, the unit adds a decode pod.
        (10, 10_000, (1, 1), (1, 2), (1, 2)),
        # high_load_500_req_per_second: P = ceil(500 × 3000 / 60 / 40,000) = ceil(0.625) = 1;
        # D = ceil(500 × 150 / 60 / 1,000) = ceil(1.25) = 2 → (1, 2).
        # Ours at 1P:2D: 1.25 decode pods on 1 unit, R = 0.625 < 0.8 but ceil(1.25 × 1.1 / 2) = 1 =
        # supply → no change, (1, 2): Dynamo's pair. At 1P:1D: R = 1.25 > 1.1 → ceil(1.25) = 2 units
        # → (2, 2): decode agrees (2), the unit holds one prefill pod more than 0.625 needs.
        (500, 1_000, (1, 2), (1, 2), (1, 2)),
        (500, 1_000, (1, 2), (1, 1), (2, 2)),
    ],
)
def test_scaling_scenario_low_to_high_load(
    num_req: int, decode_per_gpu: float, dynamo_pd: tuple[int, int], unit: tuple[int, int], ours: tuple[int, int]
) -> None:
    """Separate P and D sizing (Dynamo) against whole units (ours): ours covers Dynamo's pair in both
    pools and equals it where the unit is that pair's shape."""
    d = once(policy(decode_per_gpu, 40_000), dynamo_load(num_req, 3000, 150), 1, unit)
    assert pods(d) == ours
    assert d.prefill_pods >= dynamo_pd[0]
    assert d.decode_pods >= dynamo_pd[1]
    assert (pods(d) == dynamo_pd) == (unit == dynamo_pd)


def test_gpu_budget_constraint() -> None:
    """Dynamo: budget 3 GPUs, 1 GPU per engine; 50 req: P = ceil(2,500 / 40,000) = 1, D = ceil(125 /
    10,000) = 1 → 2 GPUs ≤ 3, the budget does not bind; asserted: total ≤ budget.

    Ours: max_gpus 3, 1P:1D of 1-GPU pods = 2 GPUs a unit → at most 3 // 2 = 1 unit; the load needs 1.
    """
    cfg = policy(10_000, 40_000, max_gpus=3, gpus_per_pod=(1, 1))
    d = once(cfg, dynamo_load(50, 3000, 150), 1, (1, 1))
    assert pods(d) == (1, 1)
    assert d.prefill_pods + d.decode_pods <= 3
    assert "budget" not in d.rule


def test_min_endpoint_constraint() -> None:
    """Dynamo: min_endpoint 2; 1 req, ISL 100, OSL 10: P = max(ceil(1.67 / 40,000) = 1, 2) = 2,
    D = max(1, 2) = 2.

    Ours: a per-pool minimum m is min_units = max(ceil(m / p), ceil(m / d)) = 2 at 1P:1D → (2, 2).
    """
    d = once(policy(10_000, 40_000, min_units=2), dynamo_load(1, 100, 10), 2, (1, 1))
    assert pods(d) == (2, 2)
    assert d.action == "none"


def test_prefill_correction_factor_clamping() -> None:
    """Dynamo: a TTFT correction factor of 2.5 (TTFT 2.5× the model's) is clamped to 1 for prefill:
    queueing, not more work, so prefill demand is never inflated: P = ceil(500 / 40,000) = 1.

    Ours: no correction factor; the comparable quantity is that a TTFT 2.5× its target does not
    change what the proportional policy (and the prefill floor) size: the same 1 unit either way.
    """
    cfg = policy(10_000, 40_000, feedback={"target_ttft_ms": 80.0, "target_tbt_ms": 10.0})
    base = dynamo_load(10, 3000, 150)
    slow = base.replace(ttft_ms=2.5 * 80.0)
    assert pods(once(cfg, slow, 1, (1, 1))) == pods(once(cfg, base, 1, (1, 1))) == (1, 1)


def test_decode_correction_factor_zero_handling() -> None:
    """Dynamo: an ITL correction factor of 0 or −1 falls back to the ITL SLA (no division by zero);
    decode stays ≥ 1.

    Ours: the factor's source is the observed ITL. A TBT of 0 ms is the relaxed tier: the hybrid
    policy keeps proportional's 1 unit (latency never removes units). A negative TBT (the only way to
    a negative factor) is refused where metrics enter.
    """
    cfg = policy(10_000, 40_000, name="hybrid", feedback={"target_ttft_ms": 80.0, "target_tbt_ms": 10.0})
    d = once(cfg, dynamo_load(10, 3000, 150).replace(tbt_ms=0.0), 1, (1, 1))
    assert d.decode_pods >= 1
    with pytest.raises(ValidationError):
        ServiceMetrics(tbt_ms=-1.0)


def test_multi_gpu_engines() -> None:
    """Dynamo: prefill engines of 2 GPUs, decode of 4; 20 req: P = ceil(20 × 3000 / 60 / 40,000 / 2)
    = ceil(0.0125) = 1; D = ceil(20 × 150 / 60 / 5,000 / 4) = ceil(0.0025) = 1.

    Ours: per-pod figures are per GPU × GPUs per pod (80,000 and 20,000) → 1 unit → (1, 1); a unit
    is 2 + 4 = 6 GPUs, so a budget of 6 holds it and 5 does not.
    """
    m = dynamo_load(20, 3000, 150)
    d = once(policy(5_000 * 4, 40_000 * 2), m, 1, (1, 1))
    assert pods(d) == (1, 1)
    fits = once(policy(5_000 * 4, 40_000 * 2, max_gpus=6, gpus_per_pod=(2, 4)), m, 1, (1, 1))
    assert pods(fits) == (1, 1)
    short = once(policy(5_000 * 4, 40_000 * 2, max_gpus=5, gpus_per_pod=(2, 4)), m, 1, (1, 1))
    assert pods(short) == (0, 0)
    assert short.alerts == ("GPU budget 5 holds 0 units of 1P:1D (6 GPUs each), below min_units=1",)


def test_complex_gpu_budget_scaling() -> None:
    """Dynamo: budget 5, 2-GPU engines both; 100 req: P = ceil(5,000 / 10,000 / 2) = 1, D =
    ceil(250 / 1,000 / 2) = 1 → 4 GPUs ≤ 5; asserted: total ≤ 5, each pool ≥ min_endpoint.

    Ours: a 1P:1D unit of 2-GPU pods is 4 GPUs; 5 // 4 = 1 unit → (1, 1), 4 GPUs.
    """
    cfg = policy(1_000 * 2, 10_000 * 2, max_gpus=5, gpus_per_pod=(2, 2))
    d = once(cfg, dynamo_load(100, 3000, 150), 1, (1, 1))
    assert pods(d) == (1, 1)
    assert 2 * d.prefill_pods + 2 * d.decode_pods <= 5


# ---------------------------------------------------------------------------------------------
# components/src/dynamo/planner/tests/unit/test_budget.py @ 1ed16fa2 (proportional_clamp_pair and
# the direction-preserving guards): budgets that bind
# ---------------------------------------------------------------------------------------------


def test_clamp_pair_shrinks_to_ceiling_when_only_max_set() -> None:
    """Dynamo: (5P, 5D) of 1 GPU, ceiling 4: scale 4/10 = 0.4, P = max(1, min(floor((4 − 1)/1) = 3,
    floor(5 × 0.4) = 2)) = 2, D = floor((4 − 2)/1) = 2 → (2, 2), total 4.

    Ours: the load wants 5 units of 1P:1D (5 decode pods, R = 5 > 1.1); a unit is 2 GPUs, 4 // 2 = 2
    units → (2, 2): the same pair (whole units are Dynamo's proportional shrink at this ratio).
    """
    cfg = policy(1_000, max_gpus=4, gpus_per_pod=(1, 1))
    d = once(cfg, ServiceMetrics(decode_tps=5_000), 1, (1, 1))
    assert (d.action, pods(d)) == ("out", (2, 2))
    assert d.rule == "proportional+budget"
    assert "GPU budget 4: 5 units × 2 GPUs → 2" in d.reason


def test_clamp_pair_ceiling_below_min_endpoint_returns_zero() -> None:
    """Dynamo: (5, 5) of 1 GPU, ceiling 1 < min_endpoint's 2 GPUs → (0, 0): the cap is hard.

    Ours: a 2-GPU unit does not fit 1 GPU → 0 units, below min_units = 1, with an alert.
    """
    cfg = policy(1_000, max_gpus=1, gpus_per_pod=(1, 1))
    d = once(cfg, ServiceMetrics(decode_tps=5_000), 1, (1, 1))
    assert (d.action, pods(d)) == ("in", (0, 0))
    assert d.alerts == ("GPU budget 1 holds 0 units of 1P:1D (2 GPUs each), below min_units=1",)


@pytest.mark.parametrize(
    ("num_p", "num_d", "p_gpu", "d_gpu", "ceiling"),
    [(12, 1, 8, 1, 32), (8, 2, 8, 1, 20), (6, 1, 4, 1, 12), (5, 5, 1, 1, 4)],
)
def test_clamp_pair_ceiling_never_grows_either_pool(
    num_p: int, num_d: int, p_gpu: int, d_gpu: int, ceiling: int
) -> None:
    """Dynamo: the ceiling path is a shrink: neither pool above its request, total ≤ ceiling (at
    002a7c31 ``_apply_global_gpu_budget`` gave decode the whole remainder: (10P, 1D) of 8 + 1 GPUs
    under 20 became (2, 4), which this later test forbids).

    Ours: the pair is g units of (num_p/g, num_d/g), g = gcd; the cap only removes whole units, so
    no pool grows by construction. Where one unit is over the ceiling (12P:1D = 97 GPUs > 32) we
    hold 0 units and alert, where Dynamo breaks the ratio to (3, 1): by design we keep the ratio.
    """
    g = math.gcd(num_p, num_d)
    unit = (num_p // g, num_d // g)
    per_unit = unit[0] * p_gpu + unit[1] * d_gpu
    cfg = policy(1_000, max_gpus=ceiling, gpus_per_pod=(p_gpu, d_gpu))
    d = once(cfg, ServiceMetrics(decode_tps=1_000 * num_d), g, unit)  # the load holds g units (R = 1)
    assert d.prefill_pods <= num_p
    assert d.decode_pods <= num_d
    assert d.prefill_pods * p_gpu + d.decode_pods * d_gpu <= ceiling
    assert d.target_units == min(g, ceiling // per_unit)


def test_throughput_fit_holds_when_both_roles_scale_up_at_ceiling() -> None:
    """Dynamo: current (24P, 40D) of 1 GPU = 64 = budget; a proposal up in both pools (32, 48) →
    held at (24, 40).

    Ours: 8 units of 3P:5D (8 GPUs each) = 64; 48 decode pods want ceil(48 / 5) = 10 units (R =
    1.2 > 1.1); 64 // 8 = 8 units = supply → no change, (24, 40).
    """
    cfg = policy(100, max_gpus=64, gpus_per_pod=(1, 1))
    d = once(cfg, ServiceMetrics(decode_tps=4_800), 8, (3, 5))
    assert (d.action, pods(d)) == ("none", (24, 40))


def test_single_budget_recovery_can_override_throughput_delta() -> None:
    """Dynamo: current 70 GPUs above a ceiling of 64, load proposes 69 → reconciled to 64 at once,
    past the load's own step.

    Ours: 35 units of 1P:1D (1-GPU pods) = 70 GPUs; 34 decode pods: R = 34/35 = 0.97, no change by
    the load; the cap 64 // 2 = 32 units applies anyway, and also while the in-cooldown runs
    (it clamps as max_units does, after the cooldowns) → 32 units = 64 GPUs.
    """
    cfg = policy(100, max_gpus=64, gpus_per_pod=(1, 1))
    m = ServiceMetrics(decode_tps=3_400)
    d = once(cfg, m, 35, (1, 1))
    assert (d.action, d.target_units) == ("in", 32)
    cooling = ServicePolicyState(last_scale_out_at=-10.0)
    d, _ = decide(cfg, cooling, 0.0, m, 35, 0, (1, 1))
    assert (d.action, d.target_units) == ("in", 32)


def test_budget_holds_a_ratio_move_up_within_the_budget() -> None:
    """Not an upstream case: the budget also bounds the prefill guard's ratio move (Dynamo has no
    ratio; its shrink takes GPUs from prefill first).

    2 units of 1P:1D, 1-GPU pods, budget 6: 6 // 2 = 3 units fit. Decode 2 pods at 1,000 → R = 1,
    no change; prefill 5,000 tok/s at 1,000 per pod needs 5 pods: the guard moves to 3P:1D
    (ceil(5 / 2) = 3, bounds 0.5–4 P per D); 2 × (3 + 1) = 8 GPUs > 6, so p is held at
    (6 // 2 − 1) // 1 = 2 → 2P:1D = 6 GPUs, with an alert.
    """
    cfg = policy(1_000, 1_000, bounds=(0.5, 4.0), max_gpus=6, gpus_per_pod=(1, 1),
                 prefill_guard={"scale_units": False})
    d = once(cfg, ServiceMetrics(decode_tps=2_000, prefill_tps=5_000), 2, (1, 1))
    assert (d.unit, pods(d)) == ((2, 1), (4, 2))
    assert d.alerts == ("prefill move to 3P:1D held at 2P by the GPU budget 6 (2 units)",)


def test_budget_needs_gpus_per_pod() -> None:
    """A budget without GPUs per pod (no profile, no gpus_per_pod, no instance) is refused."""
    from hetero_opt.errors import InputError

    with pytest.raises(InputError, match="max_gpus=8 needs GPUs per pod"):
        once(policy(1_000, max_gpus=8), ServiceMetrics(decode_tps=1_000), 1, (1, 1))
    # given per call (the Autoscaler passes the instance's), it applies: 8 // (1×4 + 1×4) = 1 unit
    d = once(policy(1_000, max_gpus=8), ServiceMetrics(decode_tps=5_000), 1, (1, 1), gpus_per_pod=(4, 4))
    assert d.target_units == 1


def test_budget_reads_gpus_per_pod_from_the_profile() -> None:
    """Llama-3-70B on H100: 4-GPU prefill and decode pods; 1P:2D units are 12 GPUs, 40 // 12 = 3."""
    from pathlib import Path

    from hetero_opt.policy.profiles import load_profiles

    profiles = load_profiles(Path(__file__).resolve().parents[2] / "models")
    cfg = ServicePolicy(service="llm", policy="proportional", profile="llama3-70b-pd", gpu_type="H100",
                        max_gpus=40).resolve(profiles)
    assert cfg.gpus_per_pod == (4, 4)
    d = once(cfg, ServiceMetrics(decode_tps=10 * 1480.0), 1, (1, 2))  # 10 pods → 5 units wanted
    assert (d.target_units, pods(d)) == (3, (3, 6))


# ---------------------------------------------------------------------------------------------
# tests/planner/unit/test_sla_planner_scaling.py @ 002a7c31
# ---------------------------------------------------------------------------------------------


def test_disagg_scale_up_then_down() -> None:
    """Dynamo ``test_disagg_scale_up`` / ``test_disagg_scale_down``: 10 → 5000 req per 60 s (ISL 3000,
    OSL 150) raises both pools, 5000 → 10 lowers both, to the formulas' values over H200
    interpolation data. We use the mocked figures of test_replica_calculation instead (40,000
    prefill, 10,000 decode per pod); Dynamo's pairs at them: 5000 req → P = ceil(250,000 / 40,000)
    = 7, D = ceil(12,500 / 10,000) = 2; 10 req → (1, 1).

    Ours, 1P:1D with bounds 0.5–4 P per D: at 5000 req, decode 1.25 pods → 2 units (R = 1.25); the
    floor needs 250,000 / (4 × 40,000) = 1.56 units → 2; the guard moves to ceil(6.25 / 2) = 4P:1D
    → (8, 2): decode as Dynamo, prefill one pod over (whole units). Back at 10 req: decode 0.0025 pods
    → ceil(0.0025 × 1.1) = 1 unit; prefill 500 tok/s needs 0.0125 pods: surplus → max(ceil(0.5), 1)
    = 1P → (1, 1), Dynamo's pair. Dynamo acts every interval with no cooldown: cooldowns 0 here.
    """
    cfg = policy(10_000, 40_000, bounds=(0.5, 4.0), stability={"cooldown_out_s": 0, "cooldown_in_s": 0})
    state = ServicePolicyState()
    high, state = decide(cfg, state, 0.0, dynamo_load(5000, 3000, 150), 1, 0, (1, 1))
    assert (high.action, high.unit, pods(high)) == ("out", (4, 1), (8, 2))
    low, state = decide(cfg, state, 60.0, dynamo_load(10, 3000, 150), 2, 0, (4, 1))
    assert (low.action, low.unit, pods(low)) == ("in", (1, 1), (1, 1))


# ---------------------------------------------------------------------------------------------
# tests/planner/unit/test_load_based_scaling.py @ 002a7c31 (load-based planner, ±1 a tick)
# ---------------------------------------------------------------------------------------------


def test_prefill_scale_up_all_workers_above_target() -> None:
    """Dynamo: TTFT = 0.1 × (active tokens + ISL) + 100, SLA 500 ms → x_sla 4000, − ISL 3000 →
    target 1000 active tokens a worker; workers at 1500 and 1200, all above → 2 + 1 = 3.

    Ours: 1000 tokens a prefill pod; the pool's 2,700 need 2.7 units of 1P:1D, above 2 × 1.1 = 2.2
    (Algorithm 2's band on the floor) → 3 units: 3 prefill pods, as Dynamo (no decode metric: hold).
    """
    d = once(policy(1_000, 1_000), ServiceMetrics(prefill_tps=2_700), 2, (1, 1))
    assert (d.action, d.prefill_pods) == ("out", 3)
    assert "prefill needs 2.7 units → 3" in d.reason


def test_prefill_no_change_mixed_workers() -> None:
    """Dynamo: workers at 1500 and 100 against 1000: not all above, not all below → no change.

    Ours reads the pool's total (routing spreads load; a hot worker alone is not capacity): 1,600
    tokens need 1.6 units, within the band (≤ 2.2, ≥ 2 held) → no change.
    """
    d = once(policy(1_000, 1_000), ServiceMetrics(prefill_tps=1_600), 2, (1, 1))
    assert (d.action, d.prefill_pods) == ("none", 2)


def test_prefill_scale_down_all_workers_below_boundary() -> None:
    """Dynamo: 3 workers, sensitivity 100 %: boundary 1000 × 2/3 = 666.7; workers at 100, 200, 150
    all below → 3 − 1 = 2.

    Ours: prefill alone never scales units in (decode drives; the floor only holds a scale-in at
    prefill's need), so decode is light too (45 tok/s at 80 a pod = 0.56 pods → 1 unit); prefill's
    450 tokens need 0.45 units → 1; Dynamo's one step is max_step_in_units 1 → 2 units: 2 prefill pods.
    """
    cfg = policy(80, 1_000, stability={"max_step_in_units": 1})
    d = once(cfg, ServiceMetrics(prefill_tps=450, decode_tps=45), 3, (1, 1))
    assert (d.action, d.prefill_pods) == ("in", 2)
    unstepped = once(policy(80, 1_000), ServiceMetrics(prefill_tps=450, decode_tps=45), 3, (1, 1))
    assert unstepped.prefill_pods == 1  # ours jumps to the need at once


def test_decode_scale_up_all_workers_above_target() -> None:
    """Dynamo: ITL = 0.5 × active blocks + 10, SLA 50 ms → x_sla 80 blocks; workers at 100 and 95 →
    2 + 1 = 3.

    Ours: 80 a decode pod; the pool's 195 is 2.44 pods, R = 1.22 > 1.1 → ceil(2.44) = 3 units, one
    step here too.
    """
    d = once(policy(80), ServiceMetrics(decode_tps=195), 2, (1, 1))
    assert (d.action, d.decode_pods) == ("out", 3)


def test_decode_scale_down_all_workers_below_boundary() -> None:
    """Dynamo: 3 workers, boundary 80 × 2/3 = 53.3, workers at 10, 15, 20 → 3 − 1 = 2.

    Ours: 45 / 80 = 0.5625 pods, R = 0.19 < 0.8 → ceil(0.5625 × 1.1) = 1 unit; with Dynamo's one
    step (max_step_in_units 1) → 2. The boundary's (n−1)/n is our "the load fits fewer units"
    (with 10 % headroom).
    """
    d = once(policy(80, stability={"max_step_in_units": 1}), ServiceMetrics(decode_tps=45), 3, (1, 1))
    assert (d.action, d.decode_pods) == ("in", 2)
    assert once(policy(80), ServiceMetrics(decode_tps=45), 3, (1, 1)).decode_pods == 1


@pytest.mark.parametrize("role", ["prefill", "decode"])
def test_cold_start_returns_none(role: str) -> None:
    """Dynamo: too few regression observations → no decision. Ours: no observation → hold."""
    d = once(policy(80, 1_000), ServiceMetrics(), 2, (1, 1))
    assert (d.action, d.target_units) == ("none", 2)
    assert "no decode TPS metric; hold" in d.reason


def test_throughput_lower_bound_respected() -> None:
    """Dynamo: with both planners on, the throughput planner's count (4) is a floor for the
    load-based one; 5 idle workers → load-based 5 − 1 = 4, floored at 4.

    Ours: hybrid, where proportional (throughput) drives and the latency layer (reactive) only adds:
    3.6 decode pods at 1P:1D → ceil(3.6 × 1.1) = 4 units; TBT relaxed. 5 → 4 as Dynamo; at 4 the
    relaxed latency stays at 4 (R = 0.9), where the reactive feedback policy alone would go on to
    floor(4 × 0.95) = 3.
    """
    fb = {"target_tbt_ms": 50.0, "target_ttft_ms": 500.0}
    m = ServiceMetrics(decode_tps=360, tbt_ms=10.0)
    assert once(policy(100, name="hybrid", feedback=fb), m, 5, (1, 1)).target_units == 4
    assert once(policy(100, name="hybrid", feedback=fb), m, 4, (1, 1)).target_units == 4
    assert once(policy(100, name="feedback", feedback=fb), m, 4, (1, 1)).target_units == 3


def test_scaling_down_sensitivity_zero_never_scales_down() -> None:
    """Dynamo: sensitivity 0 → boundary 0; idle workers (0 < 0 is false) never scale down.

    Ours by design: θ_in < 1, so an idle pool always scales in, to min_units; "never below n" is
    min_units = n. 0 decode TPS on 3 units → 1 unit at min_units 1, no change at min_units 3.
    """
    idle = ServiceMetrics(decode_tps=0.0)
    assert once(policy(100), idle, 3, (1, 1)).target_units == 1
    d = once(policy(100, min_units=3), idle, 3, (1, 1))
    assert (d.action, d.target_units) == ("none", 3)


# ---------------------------------------------------------------------------------------------
# tests/planner/unit/test_planner_scaledown_nan.py @ 3b16a5e8 (Dynamo issue #6985): with no traffic
# Prometheus returns NaN latencies, the planner skipped every adjustment and held its GPUs forever;
# the fix scales to min_endpoint after nan_scaledown_threshold (3) such intervals.
# ---------------------------------------------------------------------------------------------


def _hybrid() -> ServicePolicy:
    return policy(100, name="hybrid", feedback={"target_tbt_ms": 50.0, "target_ttft_ms": 1000.0},
                  hybrid={"release_hold_s": 1800.0}, stability={"cooldown_out_s": 60, "cooldown_in_s": 300})


def test_scale_down_after_threshold_nan_intervals() -> None:
    """Ours had the same defect in the hybrid policy: with no requests the adapter gives decode TPS 0
    (a counter's rate) and no TBT (no histogram increase), so latency was never "relaxed" and the
    units it had added were held forever. Idle now counts as relaxed; they go after release_hold_s.

    t=0: 20 decode pods on 10 units of 1P:2D (R = 1), TBT 75 ≥ 1.2 × 50 → +20 % → 12 units, 2 of them
    latency-held. From t=600 idle: proportional's share (10) → 0, the 2 latency units held → 2 units;
    released at 600 + 1800 = 2400 → min_units 1 (Dynamo: min_endpoint after 3 intervals).
    """
    cfg = _hybrid()
    state = ServicePolicyState()
    d, state = decide(cfg, state, 0.0, ServiceMetrics(decode_tps=2000, tbt_ms=75), 10, 0, (1, 2))
    assert (d.target_units, state.hybrid.latency_units) == (12, 2)
    seen = []
    supply = d.target_units
    for t in (600.0, 1200.0, 2399.0, 2400.0):
        d, state = decide(cfg, state, t, ServiceMetrics(decode_tps=0.0, prefill_tps=0.0), supply, 0, (1, 2))
        seen.append((t, d.action, d.target_units))
        supply = d.target_units
    assert seen == [(600.0, "in", 2), (1200.0, "none", 2), (2399.0, "none", 2), (2400.0, "in", 1)]
    assert state.hybrid.latency_units == 0


def test_counter_resets_on_valid_metrics() -> None:
    """Dynamo: a valid interval resets the NaN count. Ours: a latency reading outside the relaxed
    tier (TBT 40 > 0.6 × 50) restarts the release clock; idle again from 1800 → released at 3600."""
    cfg = _hybrid()
    state = ServicePolicyState()
    _, state = decide(cfg, state, 0.0, ServiceMetrics(decode_tps=2000, tbt_ms=75), 10, 0, (1, 2))
    idle = ServiceMetrics(decode_tps=0.0)
    _, state = decide(cfg, state, 600.0, idle, 12, 0, (1, 2))
    assert state.hybrid.relaxed_since == 600.0
    _, state = decide(cfg, state, 1200.0, ServiceMetrics(decode_tps=50, tbt_ms=40), 2, 0, (1, 2))
    assert state.hybrid.relaxed_since is None
    for t in (1800.0, 3599.0):
        d, state = decide(cfg, state, t, idle, 2, 0, (1, 2))
        assert d.target_units == 2
    d, state = decide(cfg, state, 3600.0, idle, 2, 0, (1, 2))
    assert d.target_units == 1


def test_feedback_policy_scales_an_idle_service_down() -> None:
    """The latency-only policy had the defect in full: no reading, "no latency signal", hold. Idle
    is now the relaxed tier: −5 % a step, at least one unit, every in-cooldown (300 s), to min 1
    (Dynamo goes to min_endpoint in one step after its threshold)."""
    cfg = policy(100, name="feedback", feedback={"target_tbt_ms": 50.0, "target_ttft_ms": 1000.0})
    state = ServicePolicyState()
    supply, seen = 4, []
    for t in (0.0, 300.0, 600.0, 900.0):
        d, state = decide(cfg, state, t, ServiceMetrics(decode_tps=0.0), supply, 0, (1, 1))
        seen.append(d.target_units)
        supply = d.target_units
    assert seen == [3, 2, 1, 1]
    assert "no requests (decode TPS 0)" in d.reason


def test_missing_metric_is_not_idle() -> None:
    """``TestConstantPredictor.test_nan_treated_as_zero`` (test_load_predictors.py @ 4774e35d): Dynamo's
    constant predictor reads NaN as 0 load. By design ours reads NaN as a missing metric: a failed
    scrape holds, only a measured zero releases capacity (proportional, feedback and hybrid)."""
    frame = pd.DataFrame({"time": [0.0], "service": ["llm"], "decode_tps": [float("nan")]})
    [(_, by_service)] = list(metrics_from_frame(frame))
    assert by_service["llm"].decode_tps is None
    for name in ("proportional", "feedback", "hybrid"):
        cfg = policy(100, name=name, feedback={"target_tbt_ms": 50.0, "target_ttft_ms": 1000.0})
        d = once(cfg, by_service["llm"], 3, (1, 1))
        assert (d.action, d.target_units) == ("none", 3), name


def test_constant_predictor_returns_last_added_value() -> None:
    """``TestConstantPredictor.test_returns_last_added_value``: the next interval is predicted as the
    last one (10, 20, 30 → 30). Ours with anticipation off does the same: each cycle sizes on the
    window just ended. ×100 tok/s at 1,000 a pod: 1 → 2 → 3 units, the last from 3,000 alone."""
    cfg = policy(1_000)
    state = ServicePolicyState()
    supply = 1
    for t, tps in ((0.0, 1_000.0), (60.0, 2_000.0), (120.0, 3_000.0)):
        d, state = decide(cfg, state, t, ServiceMetrics(decode_tps=tps), supply, 0, (1, 1))
        supply = d.target_units
    assert supply == math.ceil(3_000 / 1_000)


@pytest.mark.parametrize(
    ("metrics", "idle"),
    [
        (ServiceMetrics(decode_tps=0.0), True),  # no request: nothing measured but the zero rate
        (ServiceMetrics(decode_tps=0.0, prefill_tps=0.0, decode_ready_pods=4, decode_gpu_util=0.5), True),
        (ServiceMetrics(), False),  # a failed scrape is no reading at all
        (ServiceMetrics(decode_tps=0.0, decode_ready_pods=0, decode_unready_pods=10), False),  # starting/crashed
        (ServiceMetrics(decode_tps=0.0, decode_ready_pods=10, decode_gpu_util=100.0), False),  # stalled, busy
        (ServiceMetrics(decode_tps=0.0, prefill_tps=1200.0), False),  # prompts still arrive
    ],
)
def test_idle_is_a_measured_zero_on_ready_quiet_pools(metrics: ServiceMetrics, idle: bool) -> None:
    """Releasing capacity on an idle service (Dynamo issue #6985) must not release it on a stalled one:
    zero tokens from pools that are not ready, or whose GPUs are busy, is a fault, not a quiet hour."""
    assert is_idle(metrics) is idle
