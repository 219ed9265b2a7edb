"""``hetero-opt simulate``: the closed-loop serving simulator on a trace, a config and a cluster.

Writes into ``--out-dir``: ``cycles.csv`` (one row per service and control cycle),
``requests.csv`` (request mode), ``summary.json``, ``metrics.prom`` (the last state under vLLM's
Prometheus names) and PNG plots. Everything is validated before the run and written to a
temporary folder first, so bad input (exit 2) leaves nothing behind.

The loop's state is checkpointed (``--checkpoint``, default ``OUT_DIR.checkpoint`` beside the
output folder) every ``--checkpoint-every`` wall seconds and on SIGINT/SIGTERM, which stop the run
at the next cycle boundary (exit 130/143). The same command run again resumes from the checkpoint
to the same outputs; the checkpoint is removed once they are written. A signal after the last cycle
boundary finds the run complete: its outputs are written, and the exit code still says the signal.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from hetero_opt.cli_pipe import QuietOnClosedPipe, closed_pipe_exit
from hetero_opt.errors import InputError
from hetero_opt.io import load_instance
from hetero_opt.sim.checkpoint import (
    DEFAULT_EVERY_S,
    Checkpoint,
    SignalStop,
    SimInterrupted,
    file_sha256,
    is_checkpoint,
)
from hetero_opt.sim.config import check_against, load_sim_config
from hetero_opt.sim.loop import SimRun, check_trace_length, simulate
from hetero_opt.sim.report import plot, summary
from hetero_opt.sim.trace import (
    RateTrace,
    RequestTrace,
    Trace,
    cut_trace,
    load_trace,
    scale_rates,
    scale_trace,
)

#: ``--trace`` help of every subcommand that reads a trace.
TRACE_HELP = "Azure LLM 2023/2024 CSV, BurstGPT CSV, Mooncake JSONL or ServeGen rate CSV"


def add_trace_model_argument(p: argparse.ArgumentParser) -> None:
    """``--trace-model`` (old name ``--servegen-model``): the model to read from a trace of several."""
    p.add_argument("--trace-model", "--servegen-model", dest="trace_model", default=None,
                   help="model to read from a trace with several: ServeGen (default m-large), BurstGPT "
                        "(e.g. ChatGPT or GPT-4; default every model)")


def load_cli_trace(path: str | Path, model: str | None) -> Trace:
    """:func:`load_trace`, saying on stderr how many failed requests were left out."""
    trace = load_trace(path, model=model)
    if isinstance(trace, RequestTrace) and trace.num_failed_skipped:
        print(f"note: {path}: {trace.num_failed_skipped} failed requests (Response tokens = 0) left out",
              file=sys.stderr)
    return trace


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``simulate`` subcommand."""
    p = sub.add_parser("simulate", help="run the closed-loop serving simulator (autoscaler + placement in the loop)")
    p.add_argument("--trace", required=True, help=TRACE_HELP)
    p.add_argument("--config", required=True, help="simulation config YAML (hetero_opt.sim.config)")
    p.add_argument("--cluster", required=True, help="cluster instance file (its requests are ignored)")
    p.add_argument("--mode", default="request", choices=["request", "fluid"], help="request-level or window-level")
    p.add_argument("--out-dir", required=True, type=Path,
                   help="output folder: new, empty or a previous run's (replaced at the end; a folder holding other "
                   "files is refused)")
    p.add_argument("--scale", type=float, default=1.0,
                   help="request traces: superposed copies (integer); rate traces: rate multiplier")
    p.add_argument("--duration", type=float, help="simulate only the first S seconds of the trace")
    add_trace_model_argument(p)
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--checkpoint", type=Path, metavar="FILE",
                   help="the run's state, saved as it goes; a rerun of the same command resumes from it and it is "
                        "removed once the outputs are written (default: OUT_DIR.checkpoint, beside --out-dir)")
    p.add_argument("--checkpoint-every", type=float, default=DEFAULT_EVERY_S, metavar="S",
                   help=f"wall seconds between checkpoints (default {DEFAULT_EVERY_S:g}; also written on "
                        "SIGINT/SIGTERM, which stop the run at the next control cycle)")
    p.add_argument("--restart", action="store_true",
                   help="discard an existing checkpoint and simulate from the start")


def run(args: argparse.Namespace) -> int:
    """Validate, simulate, write; input errors propagate as InputError (exit 2 in the CLI)."""
    if not (args.scale > 0 and math.isfinite(args.scale)):
        raise ValueError(f"--scale={args.scale:g} must be a positive number")
    if args.duration is not None and not args.duration > 0:
        raise ValueError(f"--duration={args.duration:g} must be a positive number of seconds")
    if not (math.isfinite(args.checkpoint_every) and args.checkpoint_every >= 0):
        raise ValueError(f"--checkpoint-every={args.checkpoint_every:g} must be a number of seconds >= 0")
    cfg, policy = load_sim_config(args.config)
    instance = load_instance(args.cluster)
    check_against(cfg, policy, instance, str(args.config))
    trace = load_cli_trace(args.trace, args.trace_model)
    failed_skipped = trace.num_failed_skipped if isinstance(trace, RequestTrace) else 0
    if isinstance(trace, RateTrace):
        if args.scale != 1.0:
            trace = scale_rates(trace, args.scale)
    else:
        if args.scale < 1 or not args.scale.is_integer():
            raise ValueError(f"--scale={args.scale:g} must be a whole number of copies for a request trace")
        trace = scale_trace(trace, int(args.scale), cfg.seed)
        if args.duration is not None:
            trace = cut_trace(trace, args.duration)
        if trace.num_requests == 0:
            raise ValueError(f"{args.trace}: no request within --duration={args.duration}")
    if args.duration is not None and isinstance(trace, RateTrace):
        keep = trace.start_s < args.duration
        trace = RateTrace(trace.name, trace.start_s[keep], trace.window_s[keep], trace.rate_rps[keep],
                          trace.mean_input[keep], trace.mean_output[keep], trace.gaps[keep])
    check_trace_length(trace, cfg, str(args.trace))  # here, to name the trace file: simulate names the config
    # one line each, whatever the width: grep-able when piped; a reader that stops reading does not
    # stop the run (its products are the files): they are written, then the exit code says 141
    console = QuietOnClosedPipe(stderr=True, soft_wrap=True)
    out_dir: Path = args.out_dir
    _check_out_dir(out_dir)  # now, not after the whole run
    path = args.checkpoint if args.checkpoint is not None else default_checkpoint(out_dir)
    if path.resolve().is_relative_to(out_dir.resolve()):
        raise InputError(f"--checkpoint '{path}': inside --out-dir '{out_dir}', which is replaced whole at the end")
    checkpoint = Checkpoint(
        path, every_s=args.checkpoint_every, restart=args.restart, remove_on_success=False,
        inputs={
            "trace_file_sha256": file_sha256(Path(args.trace)),
            "config_file_sha256": file_sha256(Path(args.config)),
            "cluster_file_sha256": file_sha256(Path(args.cluster)),
            "scale": args.scale,
            "duration": args.duration,
            "trace_model": args.trace_model,
        },
        on_resume=lambda t, n: console.print(
            f"resuming from checkpoint {path}: simulated time {t:g} s, {n} control cycles done", markup=False),
    )
    if args.restart and path.is_file() and is_checkpoint(path):  # any other file: refused by the run, kept
        console.print(f"--restart: the checkpoint {path} is discarded; starting over", markup=False)
    start = time.perf_counter()
    stop = SignalStop()
    try:
        with stop, Progress(TextColumn("simulating"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                            TimeElapsedColumn(), console=console, transient=True) as bar:
            task = bar.add_task("sim", total=1.0)
            result = simulate(trace, cfg, policy, instance, args.mode, where=str(args.config),
                              on_cycle=lambda t, h: bar.update(task, completed=t / h if h else 1.0),
                              checkpoint=checkpoint, stop=stop)
    except SimInterrupted as exc:
        name = signal.Signals(stop.signum).name if stop.signum is not None else "request"
        console.print(f"simulate: interrupted by {name} at simulated time {exc.time_s:g} s ({exc.cycles} control "
                      f"cycles); state saved to {exc.path}; run the same command again to resume", markup=False)
        return 128 + (stop.signum or signal.SIGINT)
    except KeyboardInterrupt:
        kept = f"the last checkpoint written, {path}, is kept" if path.exists() else "no checkpoint was written yet"
        console.print(f"simulate: stopped at once by a second signal; {kept}", markup=False)
        return 128 + (stop.second or signal.SIGINT)
    wall = time.perf_counter() - start + result.extra["wall_s_before"]
    writing = SignalStop(at_once=True)  # a signal now: the half-written folder removed, one line said
    tmp: Path | None = None
    try:
        with writing:  # from the folder's creation on (a signal before it left a stale folder or no line)
            out_dir.parent.mkdir(parents=True, exist_ok=True)
            for stale in out_dir.parent.glob(f".{glob.escape(out_dir.name)}.*"):  # a run killed while writing
                if stale.is_dir() and re.fullmatch(rf"\.{re.escape(out_dir.name)}\.[a-z0-9_]{{8}}", stale.name):
                    shutil.rmtree(stale, ignore_errors=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it 0700; the outputs are for whoever the umask allows
            figures = _write_outputs(args, result, wall, failed_skipped, tmp, out_dir)
    except KeyboardInterrupt:  # a signal while the outputs were written: they are not, the checkpoint stays
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        kept = f"the checkpoint {path} is kept: run the same command again" if path.exists() else "rerun it"
        state = "left as it was" if out_dir.exists() else "not created"
        console.print(f"simulate: interrupted while writing {out_dir}, which is {state}; {kept}", markup=False)
        return 128 + (writing.second or signal.SIGINT)
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    path.unlink(missing_ok=True)  # the outputs are written: nothing left to resume
    console.print(
        f"{result.trace_name}: {figures['arrivals']:.0f} requests, {figures['completed']:.0f} completed, "
        f"{figures['dropped_total']:.0f} dropped; {figures['gpu_hours']:g} GPU-hours; SLO attainment TTFT "
        f"{figures['slo_attainment_ttft']}, TBT {figures['slo_attainment_tbt']}; {figures['actions']} actions; "
        f"wall {wall:.1f} s -> {out_dir}"
    )
    if stop.signum is not None:  # it came after the last cycle boundary: the run was complete, its outputs written
        name = signal.Signals(stop.signum).name
        console.print(f"simulate: {name} came after the last control cycle; the outputs are written", markup=False)
        return 128 + stop.signum
    return closed_pipe_exit() if console.pipe_closed else 0


def _write_outputs(args: argparse.Namespace, result: SimRun, wall: float, failed_skipped: int, tmp: Path,
                   out_dir: Path) -> dict[str, Any]:
    """Write the run's files into ``tmp``, then put ``tmp`` in place of ``out_dir``; the summary's figures."""
    result.cycles.to_csv(tmp / "cycles.csv", index=False)
    if result.requests is not None:
        result.requests.to_csv(tmp / "requests.csv", index=False)
    figures = summary(result, wall)
    figures["trace_failed_requests_skipped"] = failed_skipped  # BurstGPT's failed rows (Response tokens 0)
    if not args.no_plots:
        figures["plots"] = plot(result, tmp)
    (tmp / "summary.json").write_text(json.dumps(figures, indent=2) + "\n")
    (tmp / "metrics.prom").write_text(result.exporter.render())
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return figures


def default_checkpoint(out_dir: Path) -> Path:
    """``OUT_DIR.checkpoint``, beside the output folder (which is replaced whole at the end)."""
    folder = out_dir.resolve()
    return folder.with_name(folder.name + ".checkpoint")


#: What a run writes into its output folder; a folder holding anything else is not replaced.
_OUTPUTS = re.compile(
    r"cycles\.csv|requests\.csv|summary\.json|metrics\.prom|.+_(demand_capacity|pods|latency|actions)\.png"
    r"|\.DS_Store"  # what macOS's Finder leaves in a folder it showed
)


def _check_out_dir(out_dir: Path) -> None:
    """Raise :class:`InputError` unless ``out_dir`` can be written (replaced) at the end of the run.

    The folder is replaced whole, so it must be new, empty or a previous run's output: a folder holding
    anything a run does not write (the working directory, a results folder) is refused, not deleted.
    """
    if out_dir.is_symlink():
        raise InputError(f"--out-dir '{out_dir}': is a symbolic link; give the folder it points to")
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out-dir '{out_dir}': is a file, not a folder")
    if Path.cwd().resolve().is_relative_to(out_dir.resolve()):
        raise InputError(f"--out-dir '{out_dir}': holds the working directory; give a folder beside or below it")
    if out_dir.is_dir():
        foreign = sorted(e.name for e in out_dir.iterdir() if not (e.is_file() and _OUTPUTS.fullmatch(e.name)))
        if foreign:
            raise InputError(
                f"--out-dir '{out_dir}': holds {len(foreign)} entr{'y' if len(foreign) == 1 else 'ies'} a "
                f"simulation does not write (e.g. '{foreign[0]}'); the folder is replaced at the end, so give a "
                "new or empty folder or a previous run's output folder"
            )
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out-dir '{out_dir}': cannot create '{out_dir.parent}' ({exc.strerror})") from None
    if not os.access(out_dir.parent, os.W_OK | os.X_OK):
        raise InputError(f"--out-dir '{out_dir}': folder '{out_dir.parent}' is not writable")
