"""``hetero-opt curate``: Algorithm 1 in the simulator; writes a serving profile and compares policies.

Outputs (written to temporary files, then renamed; bad input exits 2 with nothing written):
``--out`` (the profile YAML, ``models/*.yaml`` schema, provenance in ``notes``) and beside it
``<stem>.pressure.csv`` (goodput per candidate unit) and ``<stem>.policies.csv`` (the comparison).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd
import yaml
from rich.console import Console
from rich.table import Table

from hetero_opt.batch.executor import add_executor_arguments, executor_from_args
from hetero_opt.cli_checks import check_seed
from hetero_opt.cli_simulate import TRACE_HELP, add_trace_model_argument, load_cli_trace
from hetero_opt.errors import InputError
from hetero_opt.io import check_destination, write_all_atomic
from hetero_opt.policy.profiles import ServingProfile
from hetero_opt.sim.curate import (
    TARGET_UTILISATION,
    CurateSettings,
    best_of,
    choose,
    compare_policies,
    ladder_rung,
    pd_sweep,
    profile_document,
    ratio_bounds,
)
from hetero_opt.sim.harness import head, workload_mix
from hetero_opt.sim.perf import pod_perf
from hetero_opt.sim.perfdata import model_catalog


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``curate`` subcommand."""
    p = sub.add_parser("curate", help="pressure-test a model on a GPU type in the simulator; write a profile")
    p.add_argument("--model", required=True, help="model in hetero_opt/data/perf_models.yaml (e.g. llama3-70b)")
    p.add_argument("--gpu", required=True, help="GPU type (e.g. H20)")
    p.add_argument("--trace", required=True, help=TRACE_HELP)
    p.add_argument("--out", type=Path, default=Path("profile.yaml"), help="profile YAML to write")
    p.add_argument("--gpus-per-pod", type=int, default=4, help="GPUs per pod (default 4)")
    p.add_argument("--ttft-ms", type=float, default=2000.0, help="TTFT SLO (ms)")
    p.add_argument("--tbt-ms", type=float, default=100.0, help="TBT SLO (ms)")
    p.add_argument("--attainment", type=float, default=0.9,
                   help="share of requests that must meet both SLOs (default: %(default)s)")
    p.add_argument("--pressure-window", type=float, default=1200.0,
                   help="seconds of the trace per pressure test (default: %(default)g)")
    p.add_argument("--compare-window", type=float, default=3600.0,
                   help="seconds of the trace for the policy comparison, 0 = skip it (default: %(default)g)")
    p.add_argument("--mode", default="fluid", choices=["fluid", "request"],
                   help="simulator mode of the comparison (default: %(default)s)")
    add_trace_model_argument(p)
    p.add_argument("--name", help="profile name (default: the --out file stem)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    add_executor_arguments(p)


def _check(args: argparse.Namespace) -> None:
    check_seed(args.seed)
    if args.model not in model_catalog().models:
        raise InputError(f"--model='{args.model}' has no performance data (known: {', '.join(model_catalog().models)})")
    if model_catalog().models[args.model].architecture != "dense":
        raise InputError(f"--model='{args.model}': MoE models are not simulated in the loop")
    if not 1 <= args.gpus_per_pod <= 64:
        raise InputError(f"--gpus-per-pod={args.gpus_per_pod} must be in 1..64")
    checks = (("--ttft-ms", args.ttft_ms), ("--tbt-ms", args.tbt_ms), ("--pressure-window", args.pressure_window))
    for flag, v in checks:
        if not (math.isfinite(v) and v > 0):
            raise InputError(f"{flag}={v} must be a positive number")
    if not (math.isfinite(args.compare_window) and args.compare_window >= 0):
        raise InputError(f"--compare-window={args.compare_window} must be 0 or more")
    if not 0 < args.attainment < 1:
        raise InputError(f"--attainment={args.attainment} must be in (0, 1)")
    if args.out.suffix not in (".yaml", ".yml"):
        raise InputError(f"--out='{args.out}' must end in .yaml or .yml")
    for out in (args.out, args.out.with_suffix(".pressure.csv"), args.out.with_suffix(".policies.csv")):
        check_destination(out, "--out", inputs={"--trace": args.trace})
    pod_perf(args.model, args.gpu, "decode", args.gpus_per_pod)  # InputError names an unknown GPU type


def run(args: argparse.Namespace) -> int:
    """Validate, pressure-test, compare, write."""
    _check(args)
    trace = load_cli_trace(args.trace, args.trace_model)
    if workload_mix(head(trace, args.pressure_window), 0).rate_rps <= 0:
        raise InputError(f"{args.trace}: no requests in the first --pressure-window={args.pressure_window:g} s")
    settings = CurateSettings(args.model, args.gpu, args.gpus_per_pod, args.ttft_ms, args.tbt_ms,
                              attainment=args.attainment, pressure_window_s=args.pressure_window,
                              compare_window_s=args.compare_window, mode=args.mode, seed=args.seed)
    console = Console(stderr=True, width=120)
    with executor_from_args(args) as executor:
        cap, results = pd_sweep(trace, settings, executor=executor, progress=True)
        best = best_of(results)
        bounds = ratio_bounds(results, trace=trace, period_s=settings.control_period_s)
        rows = []
        if args.compare_window > 0:
            rows = compare_policies(head(trace, args.compare_window), settings, best.unit, best.prefill_tps_per_pod,
                                    best.decode_tps_per_pod, executor=executor, progress=True, bounds=bounds)
    # The profile always says what decode-TPS control is sized at: the chosen rung of the headroom ladder, or
    # the default the other candidates ran at (a profile without it would be read at 1.0 x the figures).
    choice, headroom = "", (TARGET_UTILISATION, "hetero-opt curate: the default; no closed-loop comparison was run "
                                                "(--compare-window 0)")
    if rows:
        name, why = choose(rows, args.attainment)
        choice = f"chosen policy: {name} ({why})"
        rung = ladder_rung(name)
        where = f"closed-loop comparison over the first {args.compare_window:g} s of {Path(args.trace).name} " \
                f"({args.mode} mode)"
        if rung is not None:  # a rung of the headroom ladder: the autoscaler sizes both pools at it
            headroom = (rung, f"hetero-opt curate: {where}: {why}, at target utilisation {rung:g}")
        else:
            headroom = (TARGET_UTILISATION, f"hetero-opt curate: the default, which {name} ran at in the {where}; "
                                            f"it was chosen ({why}), not a rung of the headroom ladder")
        choice += f"; profile target_utilisation {headroom[0]:g}"
    mix = workload_mix(head(trace, args.pressure_window), 200_000)
    doc = profile_document(settings, args.trace, mix, cap, best, results, args.name or args.out.stem, trace=trace,
                           headroom=headroom)
    ServingProfile.model_validate(doc)  # the profile loads (our bug if not)
    header = "# Serving profile written by hetero-opt curate; provenance in notes.\n"
    text = header + yaml.safe_dump(doc, sort_keys=False)
    pressure = pd.DataFrame([{"prefill": r.unit[0], "decode": r.unit[1], "pd_ratio": r.ratio,
                              "goodput_rps": r.rate_rps, "goodput_per_gpu": r.goodput_per_gpu,
                              "attainment": r.attainment, "prefill_tps_per_pod": r.prefill_tps_per_pod,
                              "decode_tps_per_pod": r.decode_tps_per_pod} for r in results])
    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    files = {out.with_suffix(".pressure.csv"): pressure.to_csv(index=False)}
    if rows:
        files[out.with_suffix(".policies.csv")] = (
            pd.DataFrame(rows).assign(chosen=lambda d: d["name"] == name).to_csv(index=False))
        text += f"# {choice}\n"
    files[out] = text
    write_all_atomic(files)
    if not rows:  # a comparison of an earlier run beside this profile would claim a choice it did not make
        out.with_suffix(".policies.csv").unlink(missing_ok=True)
    _print(console, best, results, rows, choice)
    return 0


def _print(console: Console, best: object, results: list, rows: list, choice: str) -> None:  # type: ignore[type-arg]
    t = Table(title="pressure test: goodput under SLO per P/D unit")
    for col in ("unit", "P/D", "req/s", "req/s per GPU", "attainment"):
        t.add_column(col, justify="right")
    for r in results:
        t.add_row(f"{r.unit[0]}P:{r.unit[1]}D", f"{r.ratio:.2f}", f"{r.rate_rps:.2f}", f"{r.goodput_per_gpu:.4f}",
                  f"{r.attainment:.4f}", style="bold" if r is best else None)
    console.print(t)
    if rows:
        t = Table(title="policies in the closed loop")
        for col in ("policy", "GPU-h", "vs static", "vs oracle", "TTFT ok", "TBT ok", "actions", "reversals"):
            t.add_column(col, justify="right")
        for r in rows:
            t.add_row(r["name"], f"{r['gpu_hours']:.1f}", f"{r['vs_static']:+.1%}", f"{r['vs_oracle']:+.1%}",
                      f"{r['att_ttft']:.4f}", f"{r['att_tbt']:.4f}", str(r["actions"]), str(r["reversals"]))
        console.print(t)
        console.print(choice)
