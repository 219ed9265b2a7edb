"""Kubernetes HPA baseline, ported from upstream test vectors.

Each case cites its upstream test (kubernetes/kubernetes, pkg/controller/podautoscaler/
horizontal_test.go and replica_calculator_test.go) or the name used in hpa-semantics.md.
Numbers only; the arithmetic is in the comments. Time: ``now = 10_000`` s; ages are seconds ago.
"""

from __future__ import annotations

import pytest

from hetero_opt.policy.hpa import (
    HPABehavior,
    HPAControllerConfig,
    HPAHistory,
    HPASpec,
    Pod,
    PodMetric,
    Recommendation,
    ScaleEvent,
    ScalingPolicy,
    ScalingRules,
    Tolerances,
    calculate_scale_down_limit,
    calculate_scale_up_limit,
    convert_desired_replicas_with_behavior_rate,
    convert_desired_replicas_with_rules,
    generate_scale_down_rules,
    generate_scale_up_rules,
    get_per_pod_metric_replicas,
    get_plain_metric_replicas,
    get_resource_replicas,
    get_usage_ratio_replica_count,
    get_value_metric_replicas,
    reconcile,
    replicas_change_per_period,
    stabilize_recommendation,
    stabilize_recommendation_with_behaviors,
    store_scale_event,
)

NOW = 10_000.0


def rules(
    pods: int = 0, pods_period: int = 0, percent: int = 0, percent_period: int = 0, window: int = 0
) -> ScalingRules:
    """Upstream ``generateScalingRules``."""
    policies = []
    if pods:
        policies.append(ScalingPolicy(type="Pods", value=pods, period_seconds=pods_period))
    if percent:
        policies.append(ScalingPolicy(type="Percent", value=percent, period_seconds=percent_period))
    return ScalingRules(stabilization_window_seconds=window, select_policy="Max", policies=tuple(policies))


def uniform(changes: list[int], period: int) -> tuple[ScaleEvent, ...]:
    """Upstream ``generateEventsUniformDistribution``: centres of equal segments of the period."""
    seg = period / len(changes)
    return tuple(
        ScaleEvent(change=c, timestamp=NOW - (period - seg * (i + 1) + seg / 2)) for i, c in enumerate(changes)
    )


def cpu_pods(
    levels: list[int],
    requests: list[int],
    ready: list[bool] | None = None,
    phase: list[str] | None = None,
    deleted: list[bool] | None = None,
    n_pods: int | None = None,
) -> tuple[list[Pod], dict[str, PodMetric]]:
    """Pods with cool CPU (started long ago) and samples ``levels`` in pod order.

    Upstream uses two containers per pod; both usage and request double, ratios unchanged.
    """
    n = n_pods if n_pods is not None else len(requests)
    pods = [
        Pod(
            name=f"p{i}",
            phase=(phase[i] if phase else "Running"),  # type: ignore[arg-type]
            ready=(ready[i] if ready else True),
            deleted=(deleted[i] if deleted else False),
            start_time=NOW - 3600,
            ready_transition_time=NOW - 3600 + 5 if (ready[i] if ready else True) else NOW - 3600,
            request_milli=requests[i],
        )
        for i in range(n)
    ]
    metrics = {f"p{i}": PodMetric(value=v, timestamp=NOW) for i, v in enumerate(levels)}
    return pods, metrics


# ------------------------------------------------------------------ replica calculator


@pytest.mark.parametrize(
    ("name", "current", "levels", "requests", "target", "ready", "phase", "deleted", "expected"),
    [
        # 23500*100/4000 = 587 % (superfluous samples p4, p5 have no pod) → 5.87 × 4 → 24
        (
            "TestReplicaCalcSuperfluousMetrics",
            4,
            [4000, 9500, 3000, 7000, 3200, 2000],
            [1000] * 4,
            100,
            None,
            None,
            None,
            24,
        ),
        # 1400/5000 = 28 % / 50 → 0.56 × 5 = 2.8 → 3
        ("TestReplicaCalcScaleDown", 5, [100, 300, 500, 250, 250], [1000] * 5, 50, None, None, None, 3),
        # rc_cpu_scale_down_excludes_unready: 900/3000 = 30 % → 0.6 × 3 ready → 2
        (
            "TestReplicaCalcScaleDownIncludeUnreadyPods",
            5,
            [100, 300, 500, 250, 250],
            [1000] * 5,
            50,
            [True, True, True, False, False],
            None,
            None,
            2,
        ),
        # 4 Pending pods are unready; 10 % / 50 → 0.2 × 1 → 1
        (
            "TestReplicaCalcScaleDownExcludeUnscheduledPods",
            5,
            [100],
            [1000] * 5,
            50,
            [True, False, False, False, False],
            ["Running"] + ["Pending"] * 4,
            None,
            1,
        ),
        # Failed pods ignored: as TestReplicaCalcScaleDown → 3
        (
            "TestReplicaCalcScaleDownIgnoresFailedPods",
            5,
            [100, 300, 500, 250, 250],
            [1000] * 7,
            50,
            [True] * 5 + [False] * 2,
            ["Running"] * 5 + ["Failed"] * 2,
            None,
            3,
        ),
        # Deleting pods ignored → 3
        (
            "TestReplicaCalcScaleDownIgnoresDeletionPods",
            5,
            [100, 300, 500, 250, 250],
            [1000] * 7,
            50,
            [True] * 5 + [False] * 2,
            None,
            [False] * 5 + [True] * 2,
            3,
        ),
        # 3060*100/3000 = 102 % → 1.02 inside tolerance → current 3
        ("TestReplicaCalcTolerance", 3, [1010, 1030, 1020], [900, 1000, 1100], 100, None, None, None, 3),
        # missing p2, p3; 495*100/2000 = 24 % <1 → fill 100 % → 2495/4000 = 62 % → ceil(2.48)=3
        ("TestReplicaCalcMissingMetrics", 4, [400, 95], [1000] * 4, 100, None, None, None, 3),
        # rc_pods_missing_no_change_eq: ratio exactly 1 → missing not filled → inside → 2
        ("TestReplicaCalcMissingMetricsNoChangeEq", 2, [1000], [1000] * 2, 100, None, None, None, 2),
        # 190 % → missing at 0 → 95 % inside tolerance → 2
        ("TestReplicaCalcMissingMetricsNoChangeGt", 2, [1900], [1000] * 2, 100, None, None, None, 2),
        # 60 % → missing at 100 % → 80 % → ceil(1.6)=2 = current
        ("TestReplicaCalcMissingMetricsNoChangeLt", 2, [600], [1000] * 2, 100, None, None, None, 2),
        # ready p1 450 → 45 % (0.9); missing p2 → 100 % → 72 % → 1.44 flips direction → 3
        (
            "TestReplicaCalcMissingMetricsUnreadyChange",
            3,
            [100, 450],
            [1000] * 3,
            50,
            [False, True, True],
            None,
            None,
            3,
        ),
        # ready p1 200 % → 4.0; missing and unready at 0 → 2000/3000 = 66 % → 1.33×3 → 4
        (
            "TestReplicaCalcMissingMetricsUnreadyScaleUp",
            3,
            [100, 2000],
            [1000] * 3,
            50,
            [False, True, True],
            None,
            None,
            4,
        ),
        # ready 200/2000 = 10 % → missing at 100 % → 1200/3000 = 40 % → 0.8 × 3 → 3
        (
            "TestReplicaCalcMissingMetricsUnreadyScaleDown",
            4,
            [100, 100, 100],
            [1000] * 4,
            50,
            [False, True, True, True],
            None,
            None,
            3,
        ),
        # rc_cpu_rolling_update_max_surge: 3 pods, spec 2 → 40 % → 0.8×3 = 3 > 2 → keep 2
        ("TestReplicaCalcDuringRollingUpdateWithMaxSurge", 2, [100, 100], [1000] * 3, 50, None, None, None, 2),
        # TestScaleUp (horizontal_test.go): 1500/3000 = 50 % / 30 → 1.667 × 3 = 5
        ("TestScaleUp", 3, [300, 500, 700], [1000] * 3, 30, None, None, None, 5),
        # TestScaleUpUnreadyLessScale: ready 1200/2000 = 60 %; unready at 0 → 40 % → 1.33×3 → 4
        ("TestScaleUpUnreadyLessScale", 3, [300, 500, 700], [1000] * 3, 30, [False, True, True], None, None, 4),
        # rc_cpu_scale_up_unready_no_scale: 40 % → unready at 0 → 13 % flips → 3
        ("TestScaleUpUnreadyNoScale", 3, [400, 500, 700], [1000] * 3, 30, [True, False, False], None, None, 3),
    ],
)
def test_resource_replicas(
    name: str,
    current: int,
    levels: list[int],
    requests: list[int],
    target: int,
    ready: list[bool] | None,
    phase: list[str] | None,
    deleted: list[bool] | None,
    expected: int,
) -> None:
    pods, metrics = cpu_pods(levels, requests, ready, phase, deleted)
    got, _, _ = get_resource_replicas(current, target, pods, metrics, now=NOW)
    assert got == expected, name


def test_computed_tolerance_alg_implementation() -> None:
    # TestComputedToleranceAlgImplementation: 10 pods, 150 m each of ~300 m requests = 50 %.
    requests = [400, 200, 310, 290, 302, 298, 301, 299, 300, 300]
    pods, metrics = cpu_pods([150] * 10, requests)
    # target 56 % → 50/56 = 0.893 outside → ceil(8.93) = 9
    assert get_resource_replicas(10, 56, pods, metrics, now=NOW)[0] == 9
    # target 55 % → 0.909 inside → 10
    assert get_resource_replicas(10, 55, pods, metrics, now=NOW)[0] == 10


def test_min_replicas_integer_percent_truncation() -> None:
    # TestMinReplicas: 114*100/3000 = 3 % (3.8 truncated); 3/90 × 3 = 0.1 → 1 → min 2
    pods, metrics = cpu_pods([10, 95, 9], [1000] * 3)
    proposal, util, raw = get_resource_replicas(3, 90, pods, metrics, now=NOW)
    assert (proposal, util, raw) == (1, 3, 38)  # raw average usage 114 // 3 = 38
    res, _ = reconcile(
        HPASpec(min_replicas=2, max_replicas=5),
        HPAHistory(recommendations=()),
        NOW,
        3,
        [proposal],
        HPAControllerConfig(scale_up_limit_factor=8),
    )
    assert res.desired_replicas == 2
    assert res.reason == "TooFewReplicas"


def test_hot_cpu_pods_are_unready() -> None:
    # TestReplicaCalcScaleDownIgnoreHotCpuPods: pods 3, 4 started within the cpu
    # initialization period and ready for less than one metric window → 30 % → 0.6×3 → 2
    pods, metrics = cpu_pods([100, 300, 500, 250, 250], [1000] * 5)
    hot = [p.replace(start_time=NOW - 60, ready_transition_time=NOW - 30) if i >= 3 else p for i, p in enumerate(pods)]
    assert get_resource_replicas(5, 50, hot, metrics, now=NOW)[0] == 2


@pytest.mark.parametrize(
    ("name", "pods_kw", "cpu", "ready_count", "unready", "missing", "ignored"),
    [
        # TestGroupPods "count in a ready pod - memory": readiness ignored for non-cpu
        ("count in a ready pod - memory", {"ready": None}, False, 1, set(), set(), set()),
        # "ignore a pod without ready condition - CPU"
        ("no ready condition - CPU", {"ready": None}, True, 0, {"a"}, set(), set()),
        # "count in an unready pod that was ready after initialization period - CPU":
        # started 10 min ago, unready since 9 min ago (readiness delay 10 s passed)
        (
            "unready but was ready - CPU",
            {"ready": False, "start_time": NOW - 600, "ready_transition_time": NOW - 540},
            True,
            1,
            set(),
            set(),
            set(),
        ),
        # "ignore pod that has never been ready after initialization period - CPU":
        # transition 9 min 54 s ago = start + 6 s < start + 10 s delay
        (
            "never ready - CPU",
            {"ready": False, "start_time": NOW - 600, "ready_transition_time": NOW - 594},
            True,
            0,
            {"a"},
            set(),
            set(),
        ),
        # "pending pods are ignored" (unready)
        ("pending", {"phase": "Pending"}, True, 0, {"a"}, set(), set()),
    ],
)
def test_group_pods(
    name: str,
    pods_kw: dict[str, object],
    cpu: bool,
    ready_count: int,
    unready: set[str],
    missing: set[str],
    ignored: set[str],
) -> None:
    from hetero_opt.policy.hpa import group_pods

    pod = Pod.model_validate({"name": "a", **pods_kw})
    g = group_pods(
        [pod],
        {"a": PodMetric(value=1, timestamp=NOW)},
        cpu=cpu,
        now=NOW,
        cpu_initialization_period_s=120,
        initial_readiness_delay_s=10,
    )
    assert (g.ready_count, set(g.unready), set(g.missing), set(g.ignored)) == (
        ready_count,
        unready,
        missing,
        ignored,
    ), name


@pytest.mark.parametrize(
    ("name", "pods_kw", "sampled", "missing", "ignored"),
    [
        # groupPods: a pod with a deletion timestamp is ignored
        ("deleted", {"deleted": True}, True, set(), {"a"}),
        # groupPods: a Failed pod is ignored
        ("failed", {"phase": "Failed"}, True, set(), {"a"}),
        # groupPods: a running pod without a sample is missing
        ("no sample", {}, False, {"a"}, set()),
    ],
)
def test_group_pods_ignored_and_missing(
    name: str, pods_kw: dict[str, object], sampled: bool, missing: set[str], ignored: set[str]
) -> None:
    from hetero_opt.policy.hpa import group_pods

    pod = Pod.model_validate({"name": "a", **pods_kw})
    metrics = {"a": PodMetric(value=1, timestamp=NOW)} if sampled else {}
    g = group_pods([pod], metrics, cpu=True, now=NOW, cpu_initialization_period_s=120, initial_readiness_delay_s=10)
    assert (g.ready_count, set(g.unready), set(g.missing), set(g.ignored)) == (0, set(), missing, ignored)


def test_plain_metric_cases() -> None:
    pods3 = [Pod(name=f"p{i}") for i in range(3)]
    pods5 = [Pod(name=f"p{i}") for i in range(5)]

    def m(vals: list[int]) -> dict[str, PodMetric]:
        return {f"p{i}": PodMetric(value=v) for i, v in enumerate(vals)}

    # TestReplicaCalcToleranceCM: avg 20666 / 20000 = 1.033 inside → 3
    assert get_plain_metric_replicas(3, 20000, pods3, m([20000, 21000, 21000]), now=NOW)[0] == 3
    # TestReplicaCalcScaleDownCM: 12000 / 20000 = 0.6 × 5 → 3
    assert get_plain_metric_replicas(5, 20000, pods5, m([12000] * 5), now=NOW)[0] == 3
    # rc_pods_unready_ignored_for_non_cpu_2: avg (50000+15000+30000) // 3 = 31666;
    # 31666/15000 × 3 = 6.33 → 7, readiness ignored for non-cpu metrics
    unready = [p.replace(ready=False) if i == 0 else p for i, p in enumerate(pods3)]
    got, avg = get_plain_metric_replicas(3, 15000, unready, m([50000, 15000, 30000]), now=NOW)
    assert (got, avg) == (7, 31666)


def test_object_and_external_cases() -> None:
    # rc_object_uses_ready_pod_count (TestReplicaCalcScaleUpCMObject): ratio 5.0 × 1 ready → 5
    assert get_value_metric_replicas(3, 50000, 10000, ready_pod_count=1) == (5, 50000)  # usage: the value
    # TestReplicaCalcToleranceCMObject: 20666/20000 inside → 3
    assert get_value_metric_replicas(3, 20666, 20000, ready_pod_count=3)[0] == 3
    # TestReplicaCalcScaleUpCMExternalIgnoresUnreadyPods: 8600/4400 = 1.95 × 1 ready → 2
    assert get_value_metric_replicas(3, 8600, 4400, ready_pod_count=1)[0] == 2
    # rc_external_scale_down (TestReplicaCalcScaleDownCMExternal): 8600/14334 × 5 = 2.9999 → 3
    assert get_value_metric_replicas(5, 8600, 14334, ready_pod_count=5)[0] == 3
    # TestReplicaCalcToleranceCMExternal: 8600/8888 = 0.968 inside → 3
    assert get_value_metric_replicas(3, 8600, 8888, ready_pod_count=3)[0] == 3
    # hc_object_scale_from_zero_ignores_tolerance: from 0 replicas ceil(ratio), ratio 1.0 → 1
    assert get_usage_ratio_replica_count(0, 1.0, 0) == 1
    # TestReplicaCalcScaleUpPerPodCMExternal: 8600/(2150×3) = 1.33 → ceil(8600/2150) = 4
    assert get_per_pod_metric_replicas(3, 8600, 2150) == (4, 2867)  # usage ceil(8600 / 3)
    # TestReplicaCalcScaleDownPerPodCMExternal: 8600/(2867×5) = 0.6 → ceil(2.9997) = 3
    assert get_per_pod_metric_replicas(5, 8600, 2867) == (3, 1720)
    # TestReplicaCalcTolerancePerPodCMExternal: 8600/(2900×3) = 0.989 → 3
    assert get_per_pod_metric_replicas(3, 8600, 2900) == (3, 2867)
    # TestReplicaCalcTolerancePerPodCMObject: 20166/(5000×4) = 1.008 → 4
    assert get_per_pod_metric_replicas(4, 20166, 5000) == (4, 5042)  # ceil(5041.5)


@pytest.mark.parametrize(
    ("name", "status", "total", "expected"),
    [
        # TestHPAWithTolerance (it_tolerance_*): up 0.05, down 0.5, target 100 per pod
        ("it_tolerance_scale_up", 35, 3700, 37),  # 3700/3500 = +5.7 % > 5 % → 37
        ("it_tolerance_hold_up", 37, 3800, 37),  # +2.7 % → hold
        ("it_tolerance_scale_down_held", 10, 800, 10),  # −20 % within 50 % → hold
    ],
)
def test_per_direction_tolerance(name: str, status: int, total: int, expected: int) -> None:
    tol = Tolerances(scale_up=0.05, scale_down=0.5)
    assert get_per_pod_metric_replicas(status, total, 100, tol)[0] == expected, name


def test_tolerance_is_inclusive_interval() -> None:
    tol = Tolerances()
    assert tol.is_within(0.9)
    assert tol.is_within(1.1)
    assert not tol.is_within(0.8999)
    assert not tol.is_within(1.1001)
    # §9: 33 % over a 30 % target: 1.1 exactly in float64 → inside (new form holds)
    assert tol.is_within(33 / 30)


# ------------------------------------------------------------------ legacy normalization


@pytest.mark.parametrize(
    ("name", "recs", "desired", "expected", "length"),
    [
        # TestNormalizeDesiredReplicas (stab_legacy_*), window 300 s
        ("empty log", [], 5, 5, 1),
        ("stabilize", [(4, 120), (5, 60)], 3, 5, 3),
        ("no stabilize", [(1, 120), (2, 60)], 3, 3, 3),
        ("no stabilize - old recommendations", [(10, 600), (9, 540)], 3, 3, 2),
        ("stabilize - old recommendations", [(10, 600), (4, 60), (5, 120), (9, 540)], 3, 5, 4),
    ],
)
def test_stabilize_legacy(name: str, recs: list[tuple[int, int]], desired: int, expected: int, length: int) -> None:
    hist = HPAHistory(recommendations=tuple(Recommendation(replicas=r, timestamp=NOW - a) for r, a in recs))
    got, new = stabilize_recommendation(hist, desired, NOW, 300)
    assert got == expected, name
    assert new.recommendations is not None
    assert len(new.recommendations) == length


@pytest.mark.parametrize(
    ("name", "current", "desired", "lo", "hi", "expected", "reason"),
    [
        # TestConvertDesiredReplicasWithRules
        ("within range", 5, 7, 3, 8, 7, "DesiredWithinRange"),
        ("< minReplicas", 3, 1, 2, 8, 2, "TooFewReplicas"),
        ("zeroed within range", 1, 0, 0, 10, 0, "DesiredWithinRange"),
        ("maxReplicas < scaleUpLimit", 20, 1000, 1, 10, 10, "TooManyReplicas"),
        # scaleUpLimit = max(2×3, 4) = 6
        ("scaleUpLimit < maxReplicas", 3, 1000, 1, 2000, 6, "ScaleUpLimit"),
    ],
)
def test_convert_desired_replicas_with_rules(
    name: str, current: int, desired: int, lo: int, hi: int, expected: int, reason: str
) -> None:
    assert convert_desired_replicas_with_rules(current, desired, lo, hi) == (expected, reason)


def test_scale_down_stabilize_initial_size_vs_empty_history() -> None:
    # TestScaleDownStabilizeInitialSize: nil history seeds {5, now} → stays 5;
    # TestScaleDown: empty history → 1400/5000 = 28 % / 50 → 3
    pods, metrics = cpu_pods([100, 300, 500, 250, 250], [1000] * 5)
    proposal, _, _ = get_resource_replicas(5, 50, pods, metrics, now=NOW)
    spec = HPASpec(min_replicas=2, max_replicas=6)
    ctl = HPAControllerConfig(scale_up_limit_factor=8)
    nil, _ = reconcile(spec, HPAHistory(), NOW, 5, [proposal], ctl)
    empty, _ = reconcile(spec, HPAHistory(recommendations=()), NOW, 5, [proposal], ctl)
    assert (nil.desired_replicas, empty.desired_replicas) == (5, 3)


def test_reconcile_short_circuits() -> None:
    spec = HPASpec(min_replicas=2, max_replicas=6)
    # hc_zero_replicas_disabled
    assert reconcile(spec, HPAHistory(), NOW, 0, [4])[0].reason == "ScalingDisabled"
    # hc_above_max: 8 > 6 → 6 without metrics; hc_below_min: 1 < 2 → 2
    assert reconcile(spec, HPAHistory(), NOW, 8, [])[0].desired_replicas == 6
    assert reconcile(spec, HPAHistory(), NOW, 1, [])[0].desired_replicas == 2
    # hc_two_metrics_take_max
    res, _ = reconcile(spec, HPAHistory(recommendations=()), NOW, 3, [4, 5])
    assert res.desired_replicas == 5


# ------------------------------------------------------------------ behavior stabilization


@pytest.mark.parametrize(
    ("name", "recs", "current", "desired", "up", "down", "expected", "stored"),
    [
        # TestNormalizeDesiredReplicasWithBehavior (stab_behavior_01..11)
        ("stab_behavior_01 empty recommendations", [], 100, 5, 0, 0, 5, [5]),
        ("stab_behavior_02 simple scale down", [(4, 120), (5, 60)], 100, 3, 0, 180, 5, [4, 5, 3]),
        ("stab_behavior_03 simple scale up", [(4, 120), (5, 60)], 1, 7, 300, 0, 4, [4, 5, 7]),
        ("stab_behavior_04 no scale down stabilization", [(1, 120), (2, 60)], 100, 3, 300, 0, 3, [1, 2, 3]),
        ("stab_behavior_05 no scale up stabilization", [(4, 120), (5, 60)], 1, 3, 0, 300, 3, [4, 5, 3]),
        ("stab_behavior_06 reuse element (down)", [(10, 600), (9, 540)], 100, 3, 0, 0, 3, [10, 3]),
        ("stab_behavior_07 reuse element (up)", [(10, 600), (9, 540)], 1, 100, 0, 0, 100, [10, 100]),
        (
            "stab_behavior_08 scale down reuse obsolete",
            [(10, 600), (4, 60), (5, 120), (9, 540)],
            100,
            3,
            0,
            180,
            5,
            [10, 4, 5, 3],
        ),
        (
            "stab_behavior_09 scale up reuse obsolete",
            [(10, 6000), (6, 60), (5, 120), (9, 180)],
            1,
            100,
            300,
            0,
            5,
            [100, 6, 5, 9],
        ),
        ("stab_behavior_10 no scale up when rec goes down", [(2, 6000), (3, 180)], 2, 1, 300, 300, 2, None),
        ("stab_behavior_11 no scale down when rec goes up", [(2, 6000), (1, 180)], 2, 3, 300, 300, 2, None),
    ],
)
def test_stabilize_with_behaviors(
    name: str,
    recs: list[tuple[int, int]],
    current: int,
    desired: int,
    up: int,
    down: int,
    expected: int,
    stored: list[int] | None,
) -> None:
    hist = HPAHistory(recommendations=tuple(Recommendation(replicas=r, timestamp=NOW - a) for r, a in recs))
    got, new = stabilize_recommendation_with_behaviors(hist, current, desired, NOW, up, down)
    assert got == expected, name
    if stored is not None:
        assert new.recommendations is not None
        assert [r.replicas for r in new.recommendations] == stored, name


# ------------------------------------------------------------------ behavior rate limits

E159 = uniform([1, 5, 9], 120)  # ages 100, 60, 20 s


@pytest.mark.parametrize(
    ("name", "up_events", "down_events", "lo", "hi", "up", "down", "current", "desired", "expected", "reason"),
    [
        # TestScalingWithRules; rate_NN as in hpa-semantics.md where it names them
        ("within range", (), (), 3, 8, None, None, 5, 7, 7, "DesiredWithinRange"),
        ("< minReplicas", (), (), 2, 8, None, None, 3, 1, 2, "TooFewReplicas"),
        ("within range when minReplicas is 0", (), (), 0, 10, None, None, 1, 0, 0, "DesiredWithinRange"),
        ("maxReplicas < scaleUpLimit", (), (), 1, 10, None, None, 20, 1000, 10, "TooManyReplicas"),
        ("desired > max", (), (), 100, 150, None, None, 100, 1000, 150, "TooManyReplicas"),
        # Percent 1 %: ceil(3 × 1.01) = 4
        ("scaleUpLimit with user policies", (), (), 1, 2000, rules(0, 0, 1, 60), None, 3, 1000, 4, "ScaleUpLimit"),
        # rate_07 (upstream skipped by testThis): Pods 20 → 980
        (
            "rate_07 scaleDownLimit with user policies",
            (),
            (),
            3,
            2000,
            None,
            rules(20, 60),
            1000,
            3,
            980,
            "ScaleDownLimit",
        ),
        # default: max(10 + 4, 10 × 2) = 20
        ("scaleUp with default behavior", (), (), 1, 1000, None, None, 10, 50, 20, "ScaleUpLimit"),
        # rate_09: max(10 + 100, 20) = 110
        (
            "rate_09 pods policy larger than percent",
            (),
            (),
            1,
            1000,
            rules(100, 60, 100, 60),
            None,
            10,
            500,
            110,
            "ScaleUpLimit",
        ),
        ("percent policy larger than pods", (), (), 1, 1000, rules(2, 60, 100, 60), None, 10, 500, 20, "ScaleUpLimit"),
        ("pod policy limitation", (), (), 1, 1000, rules(30, 60), None, 10, 50, 40, "ScaleUpLimit"),
        # ceil(10 × 3) = 30
        ("percent policy limitation", (), (), 1, 1000, rules(0, 0, 200, 60), None, 10, 50, 30, "ScaleUpLimit"),
        # min(100 − 20, trunc(100 × 0.99)) = 80
        (
            "scaleDown percent larger than pod",
            (),
            (),
            1,
            1000,
            None,
            rules(20, 60, 1, 60, 300),
            100,
            2,
            80,
            "ScaleDownLimit",
        ),
        (
            "scaleDown pod larger than percent",
            (),
            (),
            1,
            1000,
            None,
            rules(2, 60, 1, 60, 300),
            100,
            2,
            98,
            "ScaleDownLimit",
        ),
        (
            "scaleDown min limitation large percent",
            (),
            (),
            5,
            1000,
            None,
            rules(0, 0, 100, 60, 300),
            10,
            2,
            5,
            "TooFewReplicas",
        ),
        ("scaleDown pod policy limitation", (), (), 1, 1000, None, rules(5, 60, 0, 0, 300), 10, 2, 5, "ScaleDownLimit"),
        # 200 < 100 − 15 + 300
        (
            "max limitation large pod policy and events",
            E159,
            (),
            1,
            200,
            rules(300, 60),
            None,
            100,
            500,
            200,
            "TooManyReplicas",
        ),
        # rate_23: start 100 − 15 = 85, 85 + 5 < 100 → limit raised to current
        (
            "rate_23 currentReplicas limitation with events",
            E159,
            (),
            1,
            1000,
            rules(5, 120),
            None,
            100,
            500,
            100,
            "ScaleUpLimit",
        ),
        # rate_24: 85 + 150 = 235
        (
            "rate_24 pod policy and previous events",
            E159,
            (),
            1,
            1000,
            rules(150, 120),
            None,
            100,
            500,
            235,
            "ScaleUpLimit",
        ),
        # 85 × 3 = 255
        (
            "percent policy and previous events",
            E159,
            (),
            1,
            1000,
            rules(0, 0, 200, 120),
            None,
            100,
            500,
            255,
            "ScaleUpLimit",
        ),
        # rate_26: start 6 − 4 + 2 = 4; ceil(4 × 4) = 16
        (
            "rate_26 percent with up and down events",
            uniform([4], 120),
            uniform([2], 120),
            1,
            1000,
            rules(0, 0, 300, 300),
            None,
            6,
            24,
            16,
            "ScaleUpLimit",
        ),
        ("scaleDown default policy and previous events", (), E159, 1, 1000, None, None, 10, 5, 5, "DesiredWithinRange"),
        # start 100 + 15 = 115; 115 − 5 = 110 > current → current
        (
            "scaleDown pod policy and previous events",
            (),
            E159,
            1,
            1000,
            None,
            rules(5, 120, 0, 0, 300),
            100,
            2,
            100,
            "ScaleDownLimit",
        ),
        # rate_32: start 100 + 12 = 112; trunc(112 × 0.5) = 56
        (
            "rate_32 percent policy and previous events",
            (),
            uniform([2, 4, 6], 120),
            1,
            1000,
            None,
            rules(0, 0, 50, 120, 300),
            100,
            0,
            56,
            "ScaleDownLimit",
        ),
        # start 10 − 2 + 4 = 12; trunc(12 × 0.5) = 6
        (
            "scaleDown percent with up and down events",
            uniform([2], 120),
            uniform([4], 120),
            1,
            1000,
            None,
            rules(0, 0, 50, 180, 0),
            10,
            1,
            6,
            "ScaleDownLimit",
        ),
        # rate_34: start 130; trunc(117) > 100 → current
        (
            "rate_34 previous events preventing scale down",
            (),
            uniform([10, 10, 10], 120),
            1,
            1000,
            None,
            rules(0, 0, 10, 120, 300),
            100,
            0,
            100,
            "ScaleDownLimit",
        ),
        (
            "previous events still allowing scale down",
            (),
            uniform([10, 10, 10], 120),
            1,
            1000,
            None,
            rules(0, 0, 1000, 120, 300),
            10,
            5,
            5,
            "DesiredWithinRange",
        ),
        # Upstream names kept: "outdated" events are those older than a policy's period, which the
        # port decides by timestamp alone (upstream's flag only marks them for cleanup).
        # Pods 1000/30 s: start 100 − 11 = 89 → 1089; Percent 100/60 s: start 80 → 160
        (
            "events marked outdated, two policies, up",
            uniform([8, 12, 9, 11], 120),
            (),
            1,
            1000,
            rules(1000, 30, 100, 60),
            None,
            100,
            200,
            200,
            "DesiredWithinRange",
        ),
        (
            "outdated flag, one behavior, down",
            (),
            uniform([8, 12, 9, 11], 120),
            1,
            1000,
            None,
            rules(1000, 60, 0, 0, 300),
            100,
            5,
            5,
            "DesiredWithinRange",
        ),
    ],
)
def test_scaling_with_rules(
    name: str,
    up_events: tuple[ScaleEvent, ...],
    down_events: tuple[ScaleEvent, ...],
    lo: int,
    hi: int,
    up: ScalingRules | None,
    down: ScalingRules | None,
    current: int,
    desired: int,
    expected: int,
    reason: str,
) -> None:
    hist = HPAHistory(scale_up_events=up_events, scale_down_events=down_events)
    got = convert_desired_replicas_with_behavior_rate(
        current,
        desired,
        lo,
        hi,
        hist,
        generate_scale_up_rules(up),
        generate_scale_down_rules(down),
        NOW,
    )
    assert got == (expected, reason), name


def test_select_policy_min() -> None:
    r = ScalingRules(
        select_policy="Min",
        policies=(
            ScalingPolicy(type="Pods", value=2, period_seconds=60),
            ScalingPolicy(type="Percent", value=50, period_seconds=60),
        ),
    )
    # TestCalculateScaleUpLimitWithScalingRules (limit_up_min_select): min(1+2, ceil(1.5)) = 2
    assert calculate_scale_up_limit(1, HPAHistory(), r, NOW) == 2
    # TestCalculateScaleDownLimitWithBehaviors (limit_down_min_select): max(5−2, trunc(2.5)) = 3
    assert calculate_scale_down_limit(5, HPAHistory(), r, NOW) == 3
    disabled = r.replace(select_policy="Disabled")
    assert calculate_scale_up_limit(7, HPAHistory(), disabled, NOW) == 7


@pytest.mark.parametrize(
    ("name", "prev", "new", "rules_", "sum60"),
    [
        # TestStoreScaleEvents (events_1..8), replica change 5 (10 → 15)
        ("events_1 empty, default behavior (not stored)", [], [], None, 0),
        ("events_2 empty, two-policy behavior", [], [(5, False)], rules(10, 60, 100, 60), 0),
        ("events_3 outdated kept without behavior", [(7, 61)], [(7, False)], None, 0),
        ("events_4 outdated replaced", [(7, 61)], [(5, False)], rules(10, 60, 100, 60), 0),
        ("events_5 actual entry kept", [(7, 58)], [(7, False), (5, False)], rules(10, 60, 100, 60), 7),
        ("events_6 two entries, one replaced", [(7, 61), (6, 59)], [(5, False), (6, False)], rules(10, 60), 6),
        (
            "events_7 different periods",
            [(8, 29), (6, 59), (7, 61), (9, 61)],
            [(8, False), (6, False), (7, True), (5, False)],
            rules(10, 60, 100, 30),
            14,
        ),
        ("events_8 both actual", [(7, 58), (6, 59)], [(7, False), (6, False), (5, False)], rules(10, 120, 100, 30), 13),
    ],
)
def test_store_scale_events(
    name: str,
    prev: list[tuple[int, int]],
    new: list[tuple[int, bool]],
    rules_: ScalingRules | None,
    sum60: int,
) -> None:
    events = tuple(ScaleEvent(change=c, timestamp=NOW - a) for c, a in prev)
    assert replicas_change_per_period(events, 60, NOW) == sum60, name
    behavior = None if rules_ is None else HPABehavior(scale_up=rules_)
    hist = store_scale_event(HPAHistory(scale_up_events=events), behavior, 10, 15, NOW)
    if behavior is None:
        assert hist.scale_up_events == events
    else:
        assert [(e.change, e.outdated) for e in hist.scale_up_events] == new, name


def test_behavior_reconcile_stores_event_and_history_round_trips() -> None:
    spec = HPASpec(min_replicas=1, max_replicas=100, behavior=HPABehavior())
    res, hist = reconcile(spec, HPAHistory(recommendations=()), NOW, 10, [50])
    # default behavior: max(10 + 4, 2 × 10) = 20
    assert (res.desired_replicas, res.reason) == (20, "ScaleUpLimit")
    assert [e.change for e in hist.scale_up_events] == [10]
    assert HPAHistory.model_validate_json(hist.model_dump_json()) == hist
    # 15 s later the 15 s period has passed (strictly after cutoff) → start 20 → 40
    res2, _ = reconcile(spec, hist, NOW + 15, 20, [50])
    assert res2.desired_replicas == 40


def test_empty_policy_list_is_refused_as_the_api_server_does() -> None:
    # validateScalingRules: "policies: Required value: must specify at least one Policy"; an empty
    # list used to freeze that direction silently (no proposal → the limit stayed at current)
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="policies"):
        ScalingRules(policies=())
    assert ScalingRules(policies=None).policies is None  # unset: the defaults fill it
    # forbidding a direction is said with select_policy: Disabled
    off = ScalingRules(select_policy="Disabled", policies=(ScalingPolicy(type="Pods", value=4, period_seconds=15),))
    assert calculate_scale_down_limit(10, HPAHistory(), generate_scale_down_rules(off), NOW) == 10
