"""The simulator's speed with the autoscaler and greedy placement in the loop (``make bench``).

Prints simulated requests per wall second and the wall time of the two runs the simulator issue
asks for: the Azure conversation hour x10 in request mode (aim < 2 min) and the 14-day ServeGen
trace in fluid mode (aim < 30 s), both on ``instances/sim``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from hetero_opt.io import load_instance
from hetero_opt.sim.config import load_sim_config
from hetero_opt.sim.loop import simulate
from hetero_opt.sim.trace import RateTrace, RequestTrace, load_trace, scale_rates, scale_trace

ROOT = Path(__file__).resolve().parents[1]
REQUEST_LIMIT_S = 120.0
FLUID_LIMIT_S = 30.0


def _inputs() -> tuple[Any, Any, Any]:
    cfg, policy = load_sim_config(ROOT / "instances/sim/sim.yaml")
    return cfg, policy, load_instance(ROOT / "instances/sim/cluster.yaml")


def test_request_mode_azure_conv_x10(benchmark: Any) -> None:
    cfg, policy, inst = _inputs()
    trace = load_trace(ROOT / "instances/traces/azure_llm_2023_conv.csv")
    assert isinstance(trace, RequestTrace)
    trace = scale_trace(trace, 10, 0)
    start, cpu = time.perf_counter(), time.process_time()
    run = benchmark.pedantic(simulate, args=(trace, cfg, policy, inst, "request"), rounds=1, iterations=1)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(f"\nrequest mode, Azure conv x10: {trace.num_requests} requests in {wall:.1f} s wall ({cpu:.1f} s CPU) = "
          f"{trace.num_requests / wall:,.0f} simulated requests per wall s "
          f"({trace.num_requests / cpu:,.0f} per CPU s); "
          f"{run.completed:.0f} completed, dropped {run.dropped}; {len(run.cycles)} cycles")
    assert run.arrivals == run.completed + sum(run.dropped.values())
    assert wall < REQUEST_LIMIT_S


def test_fluid_mode_servegen_14_days(benchmark: Any) -> None:
    cfg, policy, inst = _inputs()
    trace = load_trace(ROOT / "instances/traces/servegen_2025_rate_10min.csv")
    assert isinstance(trace, RateTrace)
    trace = scale_rates(trace, 0.02)  # m-large at 2 % fits the 384-GPU example cluster
    cfg = cfg.replace(control_period_s=300.0)
    start, cpu = time.perf_counter(), time.process_time()
    run = benchmark.pedantic(simulate, args=(trace, cfg, policy, inst, "fluid"), rounds=1, iterations=1)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    days = trace.duration_s / 86400
    print(f"\nfluid mode, ServeGen m-large x0.02, {days:.0f} days: {wall:.1f} s wall ({cpu:.1f} s CPU), "
          f"{run.arrivals / wall:,.0f} simulated requests/s, {run.cycles['time'].nunique()} control cycles")
    assert wall < FLUID_LIMIT_S
