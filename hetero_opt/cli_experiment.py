"""``hetero-opt experiment {pd-ratio,signals,savings}``: the paper's Figures 4, 6 and 7 in the simulator.

Each writes ``<name>.csv`` (and ``signals_cycles.csv``) plus ``<name>.png`` into ``--out-dir``
(created if missing; files written atomically, all or none). Defaults are short runs in fluid mode
(well under a minute on 2 cores); ``--window``/``--days`` make them longer. See docs/experiments.md.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

from rich.console import Console

from hetero_opt.batch.executor import add_executor_arguments, executor_from_args
from hetero_opt.cli_checks import check_seed
from hetero_opt.cli_simulate import TRACE_HELP, add_trace_model_argument, load_cli_trace
from hetero_opt.errors import InputError
from hetero_opt.io import check_destination, write_all_atomic
from hetero_opt.sim import experiments as ex
from hetero_opt.sim.curate import CurateSettings
from hetero_opt.sim.harness import head, workload_mix
from hetero_opt.sim.perf import pod_perf
from hetero_opt.sim.perfdata import model_catalog
from hetero_opt.sim.trace import RateTrace, Trace, scale_rates

#: The bundled traces, each read from ``instances/traces`` of the working directory, else of the source tree
#: (a command run outside the repository's root still finds them).
ROOT_TRACES = Path("instances/traces")
_SOURCE_TRACES = Path(__file__).resolve().parent.parent / "instances" / "traces"


def _bundled(name: str) -> Path:
    """``instances/traces/NAME`` of the working directory, else of the source tree, if it has it."""
    return next((d / name for d in (ROOT_TRACES, _SOURCE_TRACES) if (d / name).is_file()), ROOT_TRACES / name)


DEFAULT_TRACE = {
    "pd-ratio": _bundled("azure_llm_2023_conv.csv"),
    "signals": _bundled("servegen_2025_rate_10min.csv"),
    "savings": _bundled("servegen_2025_rate_10min.csv"),
}
DEFAULT_WINDOW_S = {"pd-ratio": 600.0, "signals": 86400.0, "savings": 86400.0}
DEFAULT_PERIOD_S = {"pd-ratio": 60.0, "signals": 300.0, "savings": 300.0}


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``experiment`` with its three subcommands."""
    p = sub.add_parser("experiment", help="reproduce the paper's findings (Fig. 4, 6, 7) as CSV + PNG")
    kinds = p.add_subparsers(dest="experiment", required=True, metavar="EXPERIMENT")
    helps = {
        "pd-ratio": "goodput under SLO against the P/D ratio (Fig. 4)",
        "signals": "which signal tracks load: decode TPS, GPU utilisation, latency (Fig. 6)",
        "savings": "GPU-hours against static-at-peak, per-pool HPA and an oracle at equal SLO (Fig. 7)",
    }
    for name, text in helps.items():
        q = kinds.add_parser(name, help=text)
        q.add_argument("--out-dir", type=Path, required=True, help="folder for the CSV and PNG")
        q.add_argument("--trace", type=Path, default=DEFAULT_TRACE[name], help=f"{TRACE_HELP} (default: %(default)s)")
        q.add_argument("--model", default="llama3-70b", help="model (default: %(default)s)")
        q.add_argument("--gpu", default="H20", help="GPU type (default: %(default)s)")
        q.add_argument("--gpus-per-pod", type=int, default=4, help="GPUs per pod (default: %(default)s)")
        q.add_argument("--ttft-ms", type=float, default=2000.0, help="TTFT SLO (ms)")
        q.add_argument("--tbt-ms", type=float, default=100.0, help="TBT SLO (ms)")
        q.add_argument("--attainment", type=float, default=0.9 if name == "pd-ratio" else 0.99,
                       help="share of requests meeting both SLOs that counts as goodput (default: %(default)s)")
        q.add_argument("--window", type=float, default=DEFAULT_WINDOW_S[name],
                       help="seconds of the trace to run (default: %(default)s)")
        q.add_argument("--pressure-window", type=float, default=600.0,
                       help="seconds of the trace per pressure test (default: %(default)s)")
        q.add_argument("--period", type=float, default=DEFAULT_PERIOD_S[name], help="control period (s)")
        q.add_argument("--scale", type=float, default=0.25 if name != "pd-ratio" else 1.0,
                       help="rate traces: rate multiplier (default: %(default)s)")
        add_trace_model_argument(q)
        q.add_argument("--seed", type=int, default=0, help="seed")
        add_executor_arguments(q)


def _inputs(args: argparse.Namespace) -> tuple[Trace, CurateSettings]:
    check_seed(args.seed)
    if args.model not in model_catalog().models or model_catalog().models[args.model].architecture != "dense":
        raise InputError(f"--model='{args.model}' is not a dense model with performance data")
    if not 1 <= args.gpus_per_pod <= 64:
        raise InputError(f"--gpus-per-pod={args.gpus_per_pod} must be in 1..64")
    for flag, v in (("--ttft-ms", args.ttft_ms), ("--tbt-ms", args.tbt_ms), ("--window", args.window),
                    ("--pressure-window", args.pressure_window), ("--period", args.period), ("--scale", args.scale)):
        if not (math.isfinite(v) and v > 0):
            raise InputError(f"{flag}={v} must be a positive number")
    if not 0 < args.attainment < 1:
        raise InputError(f"--attainment={args.attainment} must be in (0, 1)")
    pod_perf(args.model, args.gpu, "decode", args.gpus_per_pod)
    trace = load_cli_trace(args.trace, args.trace_model)
    if isinstance(trace, RateTrace) and args.scale != 1.0:
        trace = scale_rates(trace, args.scale)
    trace = head(trace, args.window)
    if workload_mix(head(trace, args.pressure_window), 0).rate_rps <= 0:
        raise InputError(f"{args.trace}: no requests in the first --pressure-window={args.pressure_window:g} s")
    settings = CurateSettings(args.model, args.gpu, args.gpus_per_pod, args.ttft_ms, args.tbt_ms,
                              attainment=args.attainment, pressure_window_s=args.pressure_window,
                              control_period_s=args.period, seed=args.seed)
    return trace, settings


def run(args: argparse.Namespace) -> int:
    """Run one experiment; write its CSV and PNG."""
    trace, settings = _inputs(args)
    out: Path = args.out_dir
    check_destination(out, "--out-dir", folder=True)
    console = Console(stderr=True)
    what = f"{args.model} on {args.gpu}, {trace.name}, SLO TTFT {args.ttft_ms:g} / TBT {args.tbt_ms:g} ms"
    files: dict[Path, str] = {}
    with executor_from_args(args) as executor, tempfile.TemporaryDirectory() as tmp:
        png = Path(tmp) / "plot.png"
        if args.experiment == "pd-ratio":
            df = ex.pd_ratio(trace, settings, executor=executor, progress=True)
            ex.plot_pd_ratio(df, png, f"goodput per GPU vs P/D ratio: {what}")
            name = "pd_ratio"
        elif args.experiment == "signals":
            cycles, df = ex.signals(trace, settings, executor=executor, progress=True)
            ex.plot_signals(cycles, png, f"signals vs load: {what}")
            files[out / "signals_cycles.csv"] = cycles.to_csv(index=False)
            name = "signals"
        else:
            df = ex.savings(trace, settings, executor=executor, progress=True)
            ex.plot_savings(df, png, f"GPU-hours and SLO attainment (both SLOs) per policy: {what}")
            name = "savings"
        files[out / f"{name}.csv"] = df.to_csv(index=False)
        png_bytes = png.read_bytes()
    out.mkdir(parents=True, exist_ok=True)
    write_all_atomic(files)
    tmp_png = out / f".{name}.png.tmp"
    tmp_png.write_bytes(png_bytes)
    tmp_png.replace(out / f"{name}.png")
    shown = df.dropna(axis=1, how="all")  # the CSV keeps every column; the terminal only those with a value
    console.print(shown.to_string(index=False, na_rep="", float_format=lambda x: f"{x:.4g}"), markup=False,
                  soft_wrap=True)
    return 0
