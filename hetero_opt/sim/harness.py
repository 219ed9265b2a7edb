"""Building blocks of curation and experiments: a synthetic cluster, load scaling, demand, one run.

A curation or experiment run needs a cluster of one GPU type holding one service at a given P/D
unit, a trace scaled to a chosen rate, and a policy; :func:`run_case` runs one closed loop and
returns its figures as a flat dict (picklable, so grids go through ``hetero_opt.batch.sweep``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from hetero_opt.instance import Instance
from hetero_opt.policy.config import AutoscalerConfig, ServicePolicy
from hetero_opt.sim.config import SimConfig, SimService, SimSLO
from hetero_opt.sim.loop import Mode, simulate
from hetero_opt.sim.report import reversals
from hetero_opt.sim.trace import RateTrace, RequestTrace, Trace, prefix_hits, scale_rates, scale_trace

SERVICE = "svc"
NODE_GPUS = 8
NODES_PER_S1 = 16


def build_cluster(gpu: str, gpus_per_pod: int, unit: tuple[int, int], units: int, max_units: int) -> Instance:
    """One service ``svc`` at ``unit`` (P, D) on nodes of ``gpu``: ``units`` placed, room for ``max_units``."""
    p, d = unit
    pods_per_node = max(NODE_GPUS // gpus_per_pod, 1)
    gpus_per_node = max(NODE_GPUS, gpus_per_pod)
    num_nodes = math.ceil(max_units * (p + d) / pods_per_node) + 2
    nodes: list[dict[str, Any]] = [
        {"id": f"n{i}", "gpu_type": gpu, "gpus_total": gpus_per_node, "gpus_free": gpus_per_node, "cluster": "c",
         "s2": "s2a", "s1": f"s1-{i // NODES_PER_S1}", "s0": f"s0-{i // 4}"}
        for i in range(num_nodes)
    ]
    pods: list[dict[str, Any]] = []
    slot = 0
    for role, count in (("prefill", p * units), ("decode", d * units)):
        for _ in range(count):
            node = nodes[slot // pods_per_node]
            node["gpus_free"] -= gpus_per_pod
            if pods and pods[-1]["role"] == role and pods[-1]["node"] == node["id"]:
                pods[-1]["count"] += 1
            else:
                pods.append({"role": role, "node": node["id"], "count": 1})
            slot += 1
    service = {
        "id": SERVICE, "priority": 10, "affinity": "cluster",
        "roles": [{"name": r, "gpus_per_pod": gpus_per_pod, "gpu_types": [gpu]} for r in ("prefill", "decode")],
        "pd_ratio": {"prefill": p, "decode": d}, "min_units": 1, "max_units": max_units, "max_new_groups": 4,
    }
    groups = [{"id": "g1", "service": SERVICE, "domain": "c", "pods": pods}] if pods else []
    return Instance.model_validate({
        "format_version": "1.0", "name": f"curate_{gpu}", "gpu_types": [{"id": gpu}], "nodes": nodes,
        "services": [service], "groups": groups, "requests": [],
    })


def rate_scaled(trace: Trace, factor: float, seed: int) -> Trace:
    """``trace`` with its arrival rate times ``factor``, same mix (request traces: shifted copies, thinned)."""
    if isinstance(trace, RateTrace):
        return scale_rates(trace, factor)
    copies = max(math.ceil(factor), 1)
    many = scale_trace(trace, copies, seed)
    # thin the copies to the exact rate (keeps the duration, so a low rate costs no more cycles)
    keep = np.random.default_rng(seed + 1).random(many.num_requests) < factor / copies
    if not keep.any():
        keep[0] = True
    idx = np.flatnonzero(keep)
    hashes = tuple(many.hash_ids[i] for i in idx) if many.hash_ids is not None else None
    return RequestTrace(f"{trace.name}@x{factor:.3g}", many.arrival_s[idx], many.input_tokens[idx],
                        many.output_tokens[idx], hashes)


def head(trace: Trace, seconds: float) -> Trace:
    """The first ``seconds`` of ``trace`` (whole rate windows)."""
    if isinstance(trace, RateTrace):
        keep = trace.start_s < seconds
        return RateTrace(trace.name, trace.start_s[keep], trace.window_s[keep], trace.rate_rps[keep],
                         trace.mean_input[keep], trace.mean_output[keep],
                         trace.gaps[keep] if trace.gaps.size else trace.gaps)
    keep = trace.arrival_s < seconds
    n = int(keep.sum())
    hashes = trace.hash_ids[:n] if trace.hash_ids is not None else None
    return RequestTrace(trace.name, trace.arrival_s[:n], trace.input_tokens[:n], trace.output_tokens[:n], hashes)


def flat_rate(trace: RateTrace, seconds: float, cache_blocks: int = 0) -> RateTrace:
    """``seconds`` of ``trace``'s mean rate and mix (request-weighted over the whole trace), 600-s windows."""
    mix = workload_mix(trace, cache_blocks)
    n = max(math.ceil(seconds / 600.0), 1)
    ones = np.ones(n)
    return RateTrace(f"{trace.name}:flat", np.arange(n) * 600.0, ones * 600.0, ones * mix.rate_rps,
                     ones * mix.prompt, ones * mix.output, np.zeros(n, dtype=bool))


@dataclass(frozen=True)
class Mix:
    """A trace's workload: request rate and mean prompt, cache-missed and output tokens."""

    rate_rps: float
    prompt: float
    missed: float
    output: float


def workload_mix(trace: Trace, cache_blocks: int) -> Mix:
    """Mean rate and lengths of ``trace`` (rate traces weighted by requests per window)."""
    if isinstance(trace, RateTrace):
        n = trace.rate_rps * trace.window_s
        total = float(n.sum())
        prompt = float((n * trace.mean_input).sum() / total)
        return Mix(total / trace.duration_s, prompt, prompt, float((n * trace.mean_output).sum() / total))
    hits = prefix_hits(trace, cache_blocks)
    return Mix(trace.num_requests / max(trace.duration_s, 1e-9), float(trace.input_tokens.mean()),
               float((trace.input_tokens - hits).mean()), float(trace.output_tokens.mean()))


def demand(trace: Trace, period_s: float, cache_blocks: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per control window: start (s), cache-missed prompt tok/s and output tok/s."""
    if isinstance(trace, RateTrace):
        return (trace.start_s.astype(float), trace.rate_rps * trace.mean_input,
                trace.rate_rps * trace.mean_output)
    hits = prefix_hits(trace, cache_blocks)
    n_bins = int(np.ceil(max(trace.duration_s, 1e-9) / period_s)) + 1
    idx = np.minimum((trace.arrival_s // period_s).astype(int), n_bins - 1)
    missed = np.bincount(idx, weights=(trace.input_tokens - hits).astype(float), minlength=n_bins) / period_s
    out = np.bincount(idx, weights=trace.output_tokens.astype(float), minlength=n_bins) / period_s
    return np.arange(n_bins) * period_s, missed, out


@dataclass(frozen=True)
class Case:
    """One closed-loop run: what to simulate and with which policy."""

    name: str
    trace: Trace
    model: str
    gpu: str
    gpus_per_pod: int
    unit: tuple[int, int]
    initial_units: int
    max_units: int
    policy: dict[str, Any]
    ttft_ms: float
    tbt_ms: float
    mode: Mode = "fluid"
    control_period_s: float = 60.0
    startup_delay_s: float = 120.0
    seed: int = 0
    keep_cycles: bool = False


def sim_config(case: Case) -> SimConfig:
    """The :class:`SimConfig` of ``case`` (greedy placement, policy in memory)."""
    return SimConfig(
        policy_file="(in memory)", solver="greedy", control_period_s=case.control_period_s,
        startup_delay_s=case.startup_delay_s, seed=case.seed,
        services=(SimService(service=SERVICE, model=case.model, slo=SimSLO(ttft_ms=case.ttft_ms, tbt_ms=case.tbt_ms)),),
    )


def run_case(case: Case) -> dict[str, Any]:
    """Simulate ``case``; the figures of merit (and the cycles if ``keep_cycles``)."""
    inst = build_cluster(case.gpu, case.gpus_per_pod, case.unit, case.initial_units, case.max_units)
    policy = AutoscalerConfig(services=(ServicePolicy.model_validate(
        {"service": SERVICE, "min_units": 1, "max_units": case.max_units, **case.policy}),))
    run = simulate(case.trace, sim_config(case), policy, inst, case.mode, where=case.name)
    c = run.cycles
    judged = float(c["judged"].sum())
    p, d = case.unit
    ratio = c["prefill_pods"] / c["decode_pods"].replace(0, np.nan)
    off = cycles_off_unit(c, bounds_of(case))
    days = max(run.cycles["time"].max() / 86400, 1e-9)
    out: dict[str, Any] = {
        "name": case.name,
        "gpu_hours": run.gpu_hours,
        "arrivals": run.arrivals,
        "completed": run.completed,
        "dropped": sum(run.dropped.values()),
        "att_ttft": float(c["ok_ttft"].sum()) / judged if judged else float("nan"),
        "att_tbt": float(c["ok_tbt"].sum()) / judged if judged else float("nan"),
        "att_both": float(c["ok_both"].sum()) / judged if judged else float("nan"),
        "actions": int(c["action"].isin(["out", "in"]).sum()),
        "reversals": reversals(c),
        "reversals_per_day": reversals(c) / days,
        "days": days,
        "cycles_off_unit": off,
        "ratio_moves": int(c["ratio_move"].sum()),
        "ratio_moves_per_day": float(c["ratio_move"].sum()) / days,
        "units_seen": " ".join(sorted({f"{a}P:{b}D" for a, b in zip(c["unit_prefill"], c["unit_decode"],
                                                                     strict=True)})),
        "pd_drift_max": float(((ratio - p / d).abs() / (p / d)).max()) if ratio.notna().any() else float("nan"),
        "startup_gpu_hours": startup_gpu_hours(c, case.gpus_per_pod, case.startup_delay_s),
    }
    if case.keep_cycles:
        out["cycles"] = c
    return out


def startup_gpu_hours(cycles: Any, gpus_per_pod: int, startup_delay_s: float) -> float:
    """GPU-hours of pods starting up: every pod added (cycle over cycle, serving or starting) costs
    ``startup_delay_s`` before it serves (reinstated soft scale-in pods are counted too)."""
    pods = (cycles["prefill_pods"] + cycles["decode_pods"]).to_numpy(dtype=float)
    added = float(np.clip(np.diff(pods), 0, None).sum()) if pods.size > 1 else 0.0
    return added * gpus_per_pod * startup_delay_s / 3600


def bounds_of(case: Case) -> tuple[float, float]:
    """P per D the case's service may hold: the prefill guard's bounds, else the case's unit alone."""
    g = case.policy.get("prefill_guard", {})
    r = case.unit[0] / case.unit[1]
    lo, hi = g.get("min_prefill_per_decode"), g.get("max_prefill_per_decode")
    return (r if lo is None else min(lo, r), r if hi is None else max(hi, r))


def cycles_off_unit(cycles: Any, bounds: tuple[float, float]) -> int:
    """Cycles whose pods are not whole units of the unit the service is deployed at, or whose unit is
    outside ``bounds`` (P per D). A ratio move within the bounds is a new unit, not drift."""
    c = cycles
    whole = (c["prefill_pods"] == c["units"] * c["unit_prefill"]) & (c["decode_pods"] == c["units"] * c["unit_decode"])
    r = c["unit_prefill"] / c["unit_decode"]
    inside = (r >= bounds[0] - 1e-9) & (r <= bounds[1] + 1e-9)
    return int((~(whole & inside)).sum())


def goodput_attainment(result: dict[str, Any]) -> float:
    """SLO attainment of both targets over arrivals (dropped requests count as misses)."""
    ok = result["att_both"] * (result["arrivals"] - result["dropped"])
    return float(ok / result["arrivals"]) if result["arrivals"] else float("nan")
