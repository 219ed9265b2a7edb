"""Shared pieces of the service tests: the demo config, series and the uninterrupted reference run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hetero_opt.autoscaler import Autoscaler
from hetero_opt.io import load_instance
from hetero_opt.placement.apply import apply_plan
from hetero_opt.policy.config import load_policy_config
from hetero_opt.replay import load_metrics

DEMO = Path(__file__).resolve().parents[2] / "instances" / "autoscale"
CONFIG = DEMO / "serve.yaml"
STEPS = 6


def series() -> list[tuple[float, dict[str, Any]]]:
    """The first cycles of the demo metrics, as JSON-ready metrics per service."""
    return [
        (t, {s: m.model_dump(mode="json") for s, m in ms.items()})
        for t, ms in load_metrics(DEMO / "metrics.csv")[:STEPS]
    ]


def reference() -> list[list[dict[str, Any]]]:
    """Each cycle's per-service rows from one uninterrupted in-process Autoscaler (the config's settings)."""
    auto = Autoscaler(load_policy_config(DEMO / "policy.yaml"), "greedy", time_limit=2.0, startup_delay_s=120)
    inst = load_instance(DEMO / "cluster.yaml")
    rows = []
    for t, ms in load_metrics(DEMO / "metrics.csv")[:STEPS]:
        d = auto.step(t, ms, inst)
        if d.placement is not None:
            inst = apply_plan(inst, d.placement.plan)
        rows.append([r.model_dump(mode="json") for r in d.services])
    return rows


def drive(post: Any, start: int, stop: int, instance: Any) -> tuple[list[list[dict[str, Any]]], Any]:
    """POST /v1/step for cycles ``start..stop-1`` with ``post(path, json)``; returns rows and the cluster after."""
    from hetero_opt.io import parse_instance

    rows = []
    for t, ms in series()[start:stop]:
        body = post("/v1/step", {"time": t, "metrics": ms, "instance": instance.model_dump(mode="json")})
        assert body["services"], body
        rows.append(body["services"])
        if body["placement"] is not None:
            from hetero_opt.placement.plan import Plan

            instance = apply_plan(instance, Plan.model_validate(body["placement"]["plan"]))
    return rows, parse_instance(instance.model_dump(mode="json"))
