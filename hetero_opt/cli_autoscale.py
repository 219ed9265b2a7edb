"""``hetero-opt autoscale``: one cycle, or a replay of a metrics series, printed as a table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from hetero_opt.autoscaler import MAX_STARTUP_DELAY_S, Autoscaler
from hetero_opt.cli_checks import check_seconds, check_time_limit
from hetero_opt.io import check_destination, load_instance, write_atomic
from hetero_opt.policy.config import load_policy_config
from hetero_opt.replay import decisions_table, load_metrics, replay


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``autoscale`` subcommand."""
    p = sub.add_parser("autoscale", help="run the autoscaler over a metrics series and print its decisions")
    p.add_argument("--config", required=True, help="policy config YAML (hetero_opt.policy.config)")
    p.add_argument("--metrics", required=True,
                   help="metrics CSV: time (s), service, decode_tps, ttft_ms, ...; one row per service and time")
    p.add_argument("--instance", required=True, help="cluster instance file (its requests are ignored)")
    p.add_argument("--solver", default="greedy", choices=["greedy", "cpsat", "milp"],
                   help="placement solver (default: %(default)s)")
    p.add_argument("--time-limit", type=float, default=2.0,
                   help="solver time limit per cycle, s (default: %(default)g)")
    p.add_argument("--startup-delay", type=float, default=120.0,
                   help="seconds until placed units are ready (default: %(default)g)")
    p.add_argument("--once", action="store_true", help="run only the first time step")
    p.add_argument("--all", action="store_true", help="show cycles without a change too")
    p.add_argument("--state-out", help="write the autoscaler state JSON here at the end")


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; input errors propagate as InputError (exit 2 in the CLI)."""
    check_time_limit(args.time_limit)  # now, naming the flag, not once the inputs are read
    check_seconds(args.startup_delay, "--startup-delay", MAX_STARTUP_DELAY_S)
    if args.state_out:  # now, not after the whole table is printed
        inputs = {"--config": args.config, "--metrics": args.metrics, "--instance": args.instance}
        check_destination(Path(args.state_out), "--state-out", create=False, inputs=inputs)
    config = load_policy_config(args.config)
    instance = load_instance(args.instance)
    series = load_metrics(args.metrics)
    if args.once:
        series = series[:1]
    autoscaler = Autoscaler(
        config, args.solver, time_limit=args.time_limit, startup_delay_s=args.startup_delay
    )
    decisions = [d for d, _ in replay(autoscaler, instance, series)]
    Console(width=160).print(decisions_table(decisions, only_changes=not args.all))
    for warning in dict.fromkeys(w for d in decisions for w in d.warnings):  # each once, first seen first
        print(f"warning: {warning}", file=sys.stderr)
    if args.state_out:
        write_atomic(Path(args.state_out), autoscaler.save_state())
    return 0
