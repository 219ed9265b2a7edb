"""The one-call autoscaler: policy → requests → placement → verification, with explicit state."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hetero_opt as ho
from hetero_opt.autoscaler import Autoscaler, AutoscalerState
from hetero_opt.instance import ScalingRequest, current_units, group_units
from hetero_opt.policy.config import AutoscalerConfig, ServicePolicy, load_policy_config
from hetero_opt.policy.engine import ServiceMetrics
from hetero_opt.replay import load_metrics, replay

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "instances" / "autoscale"


def _cluster() -> ho.Instance:
    return ho.load_instance(DEMO / "cluster.yaml")


def _config(min_units: int = 2, max_units: int = 40) -> AutoscalerConfig:
    return AutoscalerConfig(
        services=(
            ServicePolicy.model_validate(
                {
                    "service": "chat",
                    "policy": "proportional",
                    "min_units": min_units,
                    "max_units": max_units,
                    "proportional": {"target_decode_tps_per_pod": 1300},
                    "stability": {"cooldown_out_s": 0, "cooldown_in_s": 0},
                }
            ),
        )
    )


def test_scale_out_sizes_both_pools_through_whole_units() -> None:
    # 6,500 tok/s / 1,300 per decode pod = 5 decode pods; unit 3P:1D → 5 units (15 P + 5 D)
    a = Autoscaler(_config(), solver="greedy")
    d = a.step(0.0, {"chat": ServiceMetrics(decode_tps=6_500)}, _cluster())
    row = d.services[0]
    assert (row.action, row.current_units, row.wanted_units, row.placed_units) == ("out", 3, 5, 5)
    assert d.placement is not None
    cycle = _cluster().model_copy(update={"requests": [ScalingRequest(service="chat", target_units=5)]})
    assert ho.verify(cycle, d.placement.plan) == []


def test_gpu_budget_uses_the_instance_gpus_per_pod() -> None:
    # 5 units wanted (as above); a 3P:1D unit of 4-GPU pods is 16 GPUs, max_gpus 64 → 4 units. The
    # config gives no gpus_per_pod and no profile: the Autoscaler passes the instance's.
    svc = _config().services[0].replace(max_gpus=64)
    a = Autoscaler(AutoscalerConfig(services=(svc,)), solver="greedy")
    d = a.step(0.0, {"chat": ServiceMetrics(decode_tps=6_500)}, _cluster())
    row = d.services[0]
    assert (row.action, row.wanted_units, row.placed_units) == ("out", 4, 4)
    assert "GPU budget 64: 5 units × 16 GPUs → 4" in row.reason


def test_metrics_of_a_service_that_is_not_configured_are_named_in_a_warning() -> None:
    # a typo in a metrics source ('chatt') used to look like "no metric: hold", silently
    a = Autoscaler(_config(), solver="greedy")
    d = a.step(0.0, {"chatt": ServiceMetrics(decode_tps=6_500)}, _cluster())
    assert d.warnings == ("metrics for 'chatt' ignored: not a configured service ('chat')",)
    assert d.services[0].action == "none"
    assert a.step(600.0, {"chat": ServiceMetrics(decode_tps=6_500)}, _cluster()).warnings == ()


def _bounded(cluster: ho.Instance, **bounds: int) -> ho.Instance:
    return cluster.model_copy(update={"services": [s.replace(**bounds) for s in cluster.services]})


@pytest.mark.parametrize(
    ("bounds", "decode_tps", "want", "clamp"),
    [
        ({"min_units": 3}, 100.0, ("none", 3), "clamp 1 → 3"),  # the policy's scale-in held at the instance's min
        ({"min_units": 5}, 100.0, ("out", 5), "clamp 1 → 5"),  # ... and turned into a scale-out
        ({"min_units": 5}, None, ("out", 5), "clamp 3 → 5"),  # the policy holds (no metric); the instance adds
        ({"max_units": 2}, 20_000.0, ("in", 2), "clamp 16 → 2"),  # the policy's scale-out turned into a scale-in
    ],
)
def test_the_action_reported_is_the_one_the_instance_bounds_leave(
    bounds: dict[str, int], decode_tps: float | None, want: tuple[str, int], clamp: str
) -> None:
    # the policy allows 1..40 units; the instance's own bounds are narrower; the cluster runs 3 units
    cluster = _bounded(_cluster(), **bounds)
    metrics = {"chat": ServiceMetrics(decode_tps=decode_tps)}
    d = Autoscaler(_config(min_units=1), solver="greedy").step(0.0, metrics, cluster)
    row = d.services[0]
    assert (row.action, row.wanted_units) == want
    assert row.reason.endswith(clamp)


def test_a_scale_out_the_instance_max_units_blocks_starts_no_cooldown() -> None:
    # ten cycles of a scale-out the instance's max (= current 3 units) blocks, then the load drops: the
    # scale-in is not held by the in-cooldown of scale-outs that never happened
    config = AutoscalerConfig(
        services=(
            ServicePolicy.model_validate(
                {
                    "service": "chat",
                    "policy": "proportional",
                    "min_units": 1,
                    "max_units": 40,
                    "proportional": {"target_decode_tps_per_pod": 1300},
                    "stability": {"cooldown_out_s": 0, "cooldown_in_s": 600, "scale_in_window_s": 0,
                                  "soft_scale_in_s": 0},
                }
            ),
        )
    )
    a = Autoscaler(config, solver="greedy")
    cluster = _bounded(_cluster(), max_units=3)
    for t in range(0, 600, 60):
        assert a.step(float(t), {"chat": ServiceMetrics(decode_tps=20_000)}, cluster).services[0].action == "none"
    after = a.step(660.0, {"chat": ServiceMetrics(decode_tps=100)}, cluster).services[0]
    assert after.action == "in", after.reason


def test_infeasible_target_is_fed_back_as_placed() -> None:
    # 1,000,000 tok/s asks 770 units, max_units 40 caps it; the cluster's 288 H20 GPUs hold 18 units
    # of 16 GPUs (3 already running): placed < wanted and the next cycle starts from what was placed.
    a = Autoscaler(_config(), solver="greedy", startup_delay_s=0)
    decisions = [
        d for d, _ in replay(a, _cluster(), [(t, {"chat": ServiceMetrics(decode_tps=1e6)}) for t in (0.0, 60.0)])
    ]
    first, second = decisions[0].services[0], decisions[1].services[0]
    assert first.wanted_units == 40
    assert first.placed_units < 40
    assert first.unserved_reason
    assert second.current_units == first.placed_units


def test_saved_state_resumes_exactly() -> None:
    cfg = load_policy_config(DEMO / "policy.yaml")
    series = load_metrics(DEMO / "metrics.csv")[:24]
    whole = [d for d, _ in replay(Autoscaler(cfg, "greedy", startup_delay_s=900), _cluster(), series)]
    first = Autoscaler(cfg, "greedy", startup_delay_s=900)
    head = list(replay(first, _cluster(), series[:10]))
    saved = first.save_state()
    resumed = Autoscaler(cfg, "greedy", startup_delay_s=900, state=AutoscalerState.model_validate_json(saved))
    tail = [d for d, _ in replay(resumed, head[-1][1], series[10:])]
    got = [d for d, _ in head] + tail
    assert [d.services for d in got] == [d.services for d in whole]
    assert [d.state for d in got] == [d.state for d in whole]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=200_000, allow_nan=False), min_size=1, max_size=8))
def test_any_sequence_keeps_whole_units_within_min_and_max(loads: list[float]) -> None:
    a = Autoscaler(_config(min_units=2, max_units=12), solver="greedy", startup_delay_s=60)
    series = [(60.0 * i, {"chat": ServiceMetrics(decode_tps=x)}) for i, x in enumerate(loads)]
    for decision, inst in replay(a, _cluster(), series):
        svc = inst.services[0]
        for g in inst.groups:
            pods = {}
            for p in g.pods:
                pods[p.role] = pods.get(p.role, 0) + p.count
            units = group_units(svc, g)
            assert pods == {r: units * n for r, n in svc.pods_per_unit.items()}
        assert 2 <= current_units(inst, "chat") <= 12
        assert decision.services[0].placed_units == current_units(inst, "chat")



def _refused(call: Callable[[], object]) -> str:
    """The message of the :class:`InputError` ``call`` raises."""
    with pytest.raises(ho.InputError) as err:
        call()
    return str(err.value)


def test_a_decision_applied_twice_or_to_another_cluster_is_refused() -> None:
    # the cycle grows chat-g1 onto sa0-n6's last 4 free GPUs: applied twice it used to leave 26 nodes with negative
    # free GPUs (an instance load_instance refuses); applied to another cluster it raised KeyError: 'sa0-n6'
    policy = load_policy_config(DEMO / "policy.yaml")
    d = Autoscaler(policy, "greedy").step(600.0, {"chat": ServiceMetrics(decode_tps=20_000)}, _cluster())
    assert d.placement is not None
    plan = d.placement.plan
    once = d.apply(_cluster())
    assert min(n.gpus_free for n in once.nodes) == 0
    full = "plan: group 'chat-g1' adds 4 GPUs of pods on node 'sa0-n6', which has 0 free"
    assert _refused(lambda: d.apply(once)) == full
    other = ho.load_instance(ROOT / "instances" / "tier_preference.yaml")
    missing = "plan: group 'chat-g1' adds pods on node 'sa0-n6', which is not in the instance"
    assert _refused(lambda: d.apply(other)) == missing
    assert _refused(lambda: ho.score(other, plan)) == missing


def test_metrics_may_be_mappings_of_their_fields() -> None:
    as_model = Autoscaler(_config(), "greedy").step(0.0, {"chat": ServiceMetrics(decode_tps=6_500)}, _cluster())
    as_dict = Autoscaler(_config(), "greedy").step(0.0, {"chat": {"decode_tps": 6_500}}, _cluster())
    assert as_dict.services == as_model.services
    assert as_dict.placement is not None
    assert as_model.placement is not None
    assert as_dict.placement.plan == as_model.placement.plan


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        ({"chat": {"decode_tsp": 1}}, "metrics['chat'].decode_tsp=1: Extra inputs are not permitted"),
        ({"chat": {"decode_tps": -1}}, "metrics['chat'].decode_tps=-1: Input should be greater than or equal to 0"),
        ({"chat": 6_500}, "metrics['chat'] is of type int, not ServiceMetrics or a mapping of its fields"),
        ([ServiceMetrics()], "metrics must map service ids to ServiceMetrics, not be of type list"),
    ],
)
def test_bad_metrics_are_refused_naming_the_service_field_and_value(metrics: Any, message: str) -> None:
    a = Autoscaler(_config(), "greedy")
    assert _refused(lambda: a.step(0.0, metrics, _cluster())) == f"Autoscaler: {message}"
    assert a.state == AutoscalerState()  # nothing recorded


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"solver": "nosuch"}, "Autoscaler: solver='nosuch' is not one of ['greedy', 'cpsat', 'milp', 'milp-cbc']"),
        ({"time_limit": "2"}, "Autoscaler: time_limit='2' must be a number in (0, 86400] seconds"),
        ({"startup_delay_s": "60"}, "Autoscaler: startup_delay_s='60' must be in 0..1e+09 s"),
    ],
)
def test_bad_options_are_refused_at_construction(options: dict[str, Any], message: str) -> None:
    assert _refused(lambda: Autoscaler(_config(), **options)).startswith(message)


def test_wrong_types_are_refused_naming_what_to_pass() -> None:
    wrong_config = _refused(lambda: Autoscaler({"services": []}))  # type: ignore[arg-type]
    assert wrong_config.startswith("Autoscaler() takes an AutoscalerConfig, not dict: use load_policy_config(path)")
    a = Autoscaler(_config(), "greedy")
    path = str(DEMO / "cluster.yaml")
    wrong_instance = _refused(lambda: a.step(0.0, {}, path))  # type: ignore[arg-type]
    assert wrong_instance.startswith("Autoscaler.step() takes an Instance, not str: use load_instance(path)")
    assert _refused(lambda: a.step("0", {}, _cluster())).startswith("Autoscaler: now='0' must be a finite time")  # type: ignore[arg-type]
