"""``hetero-opt autoscale``: one cycle, or a replay of a metrics series, printed as a table."""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

from pydantic import ValidationError
from rich.console import Console

from hetero_opt.autoscaler import MAX_STARTUP_DELAY_S, Autoscaler, AutoscalerState, CycleDecision
from hetero_opt.cli_checks import check_seconds, check_time_limit
from hetero_opt.errors import InputError
from hetero_opt.instance import clip
from hetero_opt.io import (
    check_destination,
    instance_text,
    load_instance,
    read_bytes,
    read_text,
    require_keys,
    same_file,
    write_all_atomic,
)
from hetero_opt.policy.config import AutoscalerConfig, load_policy_config
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
    p.add_argument("--state-in", help="resume from this autoscaler state JSON (an earlier run's --state-out): "
                   "metrics at or before its last cycle are skipped")
    p.add_argument("--state-out", help="write the autoscaler state JSON here at the end")
    p.add_argument("--instance-out", help="write the cluster after the last cycle here (the instance with every "
                   "cycle's plan applied): with --state-out, what a later run resumes from")


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; input errors propagate as InputError (exit 2 in the CLI)."""
    check_time_limit(args.time_limit)  # now, naming the flag, not once the inputs are read
    check_seconds(args.startup_delay, "--startup-delay", MAX_STARTUP_DELAY_S)
    inputs = {"--config": args.config, "--metrics": args.metrics, "--instance": args.instance}
    for flag, out in (("--state-out", args.state_out), ("--instance-out", args.instance_out)):
        if out:  # now, not after the whole table is printed
            # a chain of runs updates its state and cluster in place: each is read first and written at the end
            mine = {k: v for k, v in inputs.items() if not (flag == "--instance-out" and k == "--instance")}
            check_destination(Path(out), flag, create=False, inputs=mine)
    for other, name in (("--state-out", args.state_out), ("--state-in", args.state_in)):
        if name and args.instance_out and same_file(Path(name), Path(args.instance_out)):
            raise InputError(f"--instance-out {args.instance_out}: is also {other}: name two files")
    config = load_policy_config(args.config)
    state, saved_cluster = None, None
    if args.state_in is not None:
        state, saved_cluster = _load_state(Path(args.state_in), config, args.config)
    instance = load_instance(args.instance)
    if saved_cluster is not None and hashlib.sha256(read_bytes(Path(args.instance))).hexdigest() != saved_cluster:
        print(f"warning: --instance {args.instance} is not the cluster saved with --state-in {args.state_in} (its "
              "--instance-out): right for a live cluster; otherwise the two files come from different runs",
              file=sys.stderr)
    series = load_metrics(args.metrics)
    if state is not None and state.last_time is not None:
        done = sum(1 for now, _ in series if now <= state.last_time)
        if done:  # the earlier run stepped these
            print(f"--state-in: {done} cycle{'s' * (done != 1)} at or before its last cycle "
                  f"(t={state.last_time:g}) skipped", file=sys.stderr)
        series = series[done:]
    if args.once:
        series = series[:1]
    autoscaler = Autoscaler(
        config, args.solver, time_limit=args.time_limit, startup_delay_s=args.startup_delay, state=state
    )
    decisions: list[CycleDecision] = []
    cluster = instance  # after each cycle, with its plan applied
    for decision, cluster in replay(autoscaler, instance, series):  # noqa: B007  # the last one is kept
        decisions.append(decision)
    Console(width=160).print(decisions_table(decisions, only_changes=not args.all))
    for warning in dict.fromkeys(w for d in decisions for w in d.warnings):  # each once, first seen first
        print(f"warning: {warning}", file=sys.stderr)
    files: dict[Path, str] = {}
    saved = autoscaler.state.model_dump(mode="json")  # save_state()'s fields
    if args.instance_out:  # written first: the state, renamed last, is what says the pair is complete
        text = files[Path(args.instance_out)] = instance_text(cluster, Path(args.instance_out))
        saved[CLUSTER_KEY] = hashlib.sha256(text.encode()).hexdigest()
    if args.state_out:
        files[Path(args.state_out)] = json.dumps(saved)
    write_all_atomic(files)
    return 0


#: The key a state file written with ``--instance-out`` adds: the SHA-256 of the cluster file written with it.
CLUSTER_KEY = "cluster_sha256"


def _load_state(path: Path, config: AutoscalerConfig, config_path: str) -> tuple[AutoscalerState, str | None]:
    """The autoscaler state saved in ``path`` (JSON, as ``--state-out`` writes it, whatever the file's name) and
    the SHA-256 of the cluster saved with it, if any; one-line errors naming the flag, the file, the field and
    the value, or a service the config does not hold."""
    where = f"--state-in {path}"
    try:
        data = json.loads(read_text(path))
    except InputError as exc:
        raise InputError(f"--state-in {exc}") from None
    except ValueError as exc:
        raise InputError(f"{where}: malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(f"{where}: must be a JSON object (an autoscaler state), got {type(data).__name__}")
    require_keys(data, ("last_time", "engine"), where)  # what save_state() always writes
    cluster = data.pop(CLUSTER_KEY, None)
    if cluster is not None and not (isinstance(cluster, str) and re.fullmatch(r"[0-9a-f]{64}", cluster)):
        raise InputError(f"{where}: {CLUSTER_KEY}={clip(repr(cluster))}: must be a SHA-256 in hex")
    try:
        state = AutoscalerState.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(map(str, err["loc"]))
        raise InputError(f"{where}: {field}={clip(repr(err.get('input')))}: {err['msg']}") from None
    known = {s.service for s in config.services}
    held = [*state.engine.services, *state.starting, *state.draining]
    stray = next((sid for sid in held if sid not in known), None)
    if stray is not None:
        raise InputError(
            f"{where}: service '{clip(stray)}' is not in --config {config_path}: a state resumes the services it "
            "was saved with"
        )
    return state, cluster
