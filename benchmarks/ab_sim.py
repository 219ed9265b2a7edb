"""This checkout's ``simulate()`` against an earlier revision's, in one process, runs alternated.

Three variants per round: the revision (``hetero_opt_base``, extracted as in ``ab_versions.py``), this
checkout without a checkpoint, and this checkout with the default checkpoint (30 s, in a temporary
folder); the order flips every round. Prints wall and process time per run and their medians.

    .venv/bin/python benchmarks/ab_sim.py --base main --run fluid300 --rounds 3

Runs: ``request`` (Azure conversation hour x10), ``fluid300`` (ServeGen 14 days x0.02, 300-s cycles:
``benchmarks/test_bench_sim.py``'s two runs) and ``fluid60`` (the same at the CLI's 60-s cycles).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from ab_versions import ROOT, extract

from hetero_opt.sim.checkpoint import Checkpoint


def _run(pkg: str, run: str) -> tuple[Any, tuple[Any, ...]]:
    io = importlib.import_module(f"{pkg}.io")
    config = importlib.import_module(f"{pkg}.sim.config")
    traces = importlib.import_module(f"{pkg}.sim.trace")
    loop = importlib.import_module(f"{pkg}.sim.loop")
    cfg, policy = config.load_sim_config(ROOT / "instances/sim/sim.yaml")
    inst = io.load_instance(ROOT / "instances/sim/cluster.yaml")
    if run == "request":
        trace = traces.scale_trace(traces.load_trace(ROOT / "instances/traces/azure_llm_2023_conv.csv"), 10, 0)
        return loop.simulate, (trace, cfg, policy, inst, "request")
    trace = traces.scale_rates(traces.load_trace(ROOT / "instances/traces/servegen_2025_rate_10min.csv"), 0.02)
    if run == "fluid300":
        cfg = cfg.replace(control_period_s=300.0)
    return loop.simulate, (trace, cfg, policy, inst, "fluid")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="git revision to compare against (e.g. main)")
    parser.add_argument("--run", choices=["request", "fluid300", "fluid60"], default="fluid300")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        extract(args.base, Path(tmp))
        variants = {
            args.base: (_run("hetero_opt_base", args.run), {}),
            "this": (_run("hetero_opt", args.run), {}),
            "this+checkpoint": (_run("hetero_opt", args.run), {"checkpoint": Checkpoint(Path(tmp) / "run.ckpt")}),
        }
        walls: dict[str, list[float]] = {name: [] for name in variants}
        cpus: dict[str, list[float]] = {name: [] for name in variants}
        for round_ in range(args.rounds):
            for name in list(variants)[:: 1 if round_ % 2 == 0 else -1]:
                (fn, fn_args), kwargs = variants[name]
                gc.collect()
                start, cpu = time.perf_counter(), time.process_time()
                result = fn(*fn_args, **kwargs)
                walls[name].append(time.perf_counter() - start)
                cpus[name].append(time.process_time() - cpu)
                print(f"  {name}: wall {walls[name][-1]:.2f} s, process {cpus[name][-1]:.2f} s, "
                      f"{len(result.cycles)} rows", flush=True)
    for clock, times in (("wall", walls), ("process time", cpus)):
        print(f"{args.run} {clock}: " + "; ".join(
            f"{name} median {statistics.median(t):.2f} min {min(t):.2f} s" for name, t in times.items()))


if __name__ == "__main__":
    main()
