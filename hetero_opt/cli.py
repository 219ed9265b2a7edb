"""The ``hetero-opt`` command line: validate, solve, schema, generate, bench.

Each subcommand is one ``add_*`` function (its arguments) and one ``run_*`` function (its work),
registered in :data:`COMMANDS`. Bad user input (:class:`~hetero_opt.errors.InputError` or
``ValueError``) becomes one line on stderr and exit code 2, never a traceback; a plan the
verifier rejects gives exit code 1. Outputs are written to a temporary file, then renamed. A
reader that closes the output early (``| head -1``) ends the command quietly, exit code 141.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeAlias, cast

from rich.console import Console
from rich.table import Table

from hetero_opt import cli_autoscale, cli_curate, cli_experiment, cli_k8s, cli_metrics, cli_serve, cli_simulate
from hetero_opt.batch.executor import add_executor_arguments, executor_from_args
from hetero_opt.batch.manifest import MANIFEST_NAME
from hetero_opt.batch.solve_batch import SUMMARY_COLUMNS as SUMMARY_COLUMNS  # re-exported: summary.csv's columns
from hetero_opt.batch.solve_batch import SolveSettings, solve_batch
from hetero_opt.batch.solve_batch import served_gpus as served_gpus  # re-exported for the demo
from hetero_opt.cli_checks import check_seed, check_time_limit
from hetero_opt.cli_pipe import closed_pipe_exit, whole_writes
from hetero_opt.errors import InputError
from hetero_opt.instance import Instance, node_column
from hetero_opt.io import check_destination, check_export_prefix, load_instance, same_file
from hetero_opt.placement.solve import MAX_WORKERS, SOLVERS
from hetero_opt.topology import build_view

SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
INSTANCE_SUFFIXES = (".json", ".yaml", ".yml")


# ---------------------------------------------------------------------------------------------
# validate


def add_validate(sub: SubParsers) -> None:
    """Register ``validate``."""
    p = sub.add_parser("validate", help="check instance files; one line per file; exit 2 if any is bad")
    p.add_argument("files", nargs="+", metavar="FILE", help="instance files (.json, .yaml, .yml)")


def run_validate(args: argparse.Namespace) -> int:
    """Validate every file; print ``ok`` with counts or the error; 2 if any is bad."""
    bad = 0
    for f in args.files:
        try:
            check_instance_suffix(Path(f))
            inst = load_instance(f)
        except InputError as exc:
            bad += 1
            print(_one_line(exc), file=sys.stderr)
            continue
        print(f"{f}: ok ({instance_summary(inst)})")
    return 2 if bad else 0


def check_instance_suffix(path: Path) -> None:
    """Refuse a file that is no instance file by its name (a trace CSV, a README): instance files are
    read by suffix, and any other one would be read as JSON ("malformed JSON at line 1")."""
    if path.suffix.lower() not in INSTANCE_SUFFIXES and not path.is_dir():
        got = f"a '{path.suffix}' file" if path.suffix else "a file without a suffix"
        raise InputError(f"{path}: not an instance file: expected .json, .yaml or .yml, got {got}")


def instance_summary(inst: Instance) -> str:
    """Counts of an instance, e.g. ``10 nodes, 80 GPUs (80 free), 4 S1s, 1 service, ...``."""
    view = build_view(inst)
    total = sum(node_column(inst.nodes, "gpus_total"))
    free = sum(node_column(inst.nodes, "gpus_free"))
    counts = [
        (len(inst.nodes), "node"),
        (total, "GPU"),
        (len(view.s1_ids), "S1"),
        (len(view.s1s_by_s2), "S2"),
        (len(inst.services), "service"),
        (len(inst.groups), "group"),
        (len(inst.requests), "request"),
    ]
    parts = [f"{n} {noun}{'s' * (n != 1)}" for n, noun in counts]
    parts[1] += f" ({free} free)"
    return ", ".join(parts)


# ---------------------------------------------------------------------------------------------
# solve


def add_solve(sub: SubParsers) -> None:
    """Register ``solve``."""
    p = sub.add_parser(
        "solve",
        help="solve instance files or folders; write <stem>.plan.json per instance and summary.csv",
    )
    p.add_argument("paths", nargs="+", metavar="FILE_OR_DIR", help="instance files, or folders of *.json/*.yaml/*.yml")
    p.add_argument("--solver", default="greedy", choices=SOLVERS, help="placement solver (default: greedy)")
    p.add_argument("--out-dir", required=True, type=Path, metavar="DIR", help="where plans and summary.csv go")
    p.add_argument("--time-limit", type=float, default=2.0, metavar="S", help="solver time limit in s (default: 2)")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="solver random seed (default: 0)")
    p.add_argument("--workers", type=int, default=2, metavar="N",
                   help="solver worker threads: CP-SAT and HiGHS (CBC runs serially) (default: 2)")
    p.add_argument(
        "--fast",
        action="store_true",
        help="CP-SAT: use the whole wall budget with its parallel portfolio (better plans, not reproducible)",
    )
    p.add_argument(
        "--export-model",
        metavar="PREFIX",
        help="write the solver model to PREFIX.* (PREFIX.<stem>.* for several instances)",
    )
    add_executor_arguments(p)


def run_solve(args: argparse.Namespace) -> int:
    """Validate the inputs still to solve, then solve, verify and write each; 1 if any plan fails."""
    check_time_limit(args.time_limit)
    if not 1 <= args.workers <= MAX_WORKERS:
        raise InputError(f"--workers={args.workers} must be at least 1 and at most {MAX_WORKERS}")
    check_seed(args.seed)
    files = collect_instance_files(args.paths)
    check_destination(args.out_dir, "--out-dir", folder=True)
    check_solve_outputs(args.paths, files, args.out_dir)
    if args.export_model is not None and args.solver == "greedy":
        raise InputError(f"--export-model='{args.export_model}': the greedy has no solver model to export (--solver "
                         "cpsat, milp or milp-cbc)")
    if args.export_model is not None and args.address is None:  # a cluster's workers write on their own disks
        check_export_prefix(args.export_model, "--export-model")
    settings = SolveSettings(args.solver, args.time_limit, args.seed, args.workers, not args.fast)
    console = _console()
    with executor_from_args(args) as executor:
        report = solve_batch(files, settings, args.out_dir, executor, export_model=args.export_model, console=console)
    console.print(summary_table(report.rows, args.solver))
    return 1 if report.failures else 0


def check_solve_outputs(paths: Sequence[str], files: Sequence[Path], out_dir: Path) -> None:
    """Refuse, before any work, outputs that would destroy an input or cannot be written.

    ``--out-dir`` may not be a folder given as input: its plans would be read as instances by the
    next run of the same command (the documented way to resume). No plan, ``summary.csv`` or
    ``manifest.jsonl`` may be an input file or have a folder in its place.
    """
    for raw in paths:
        if Path(raw).is_dir() and same_file(out_dir, Path(raw)):
            raise InputError(
                f"--out-dir '{out_dir}' is the input folder '{raw}': its plans would be read as instances "
                "when the command is run again; give another folder (a subfolder will do)"
            )
    outputs = [out_dir / f"{f.stem}.plan.json" for f in files] + [out_dir / "summary.csv", out_dir / MANIFEST_NAME]
    for out in outputs:
        for f in files:
            if same_file(out, f):
                raise InputError(f"--out-dir '{out_dir}': the output '{out}' would overwrite the input '{f}'")
        if out.is_dir():
            raise InputError(f"--out-dir '{out_dir}': '{out}' is a folder; no output file can take its place")


def collect_instance_files(paths: Sequence[str]) -> list[Path]:
    """Expand folders to their instance files (sorted); reject missing paths and clashing stems."""
    files: list[Path] = []
    for raw in paths:
        p = Path(raw)
        try:
            if p.is_dir():
                found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in INSTANCE_SUFFIXES)
                if not found:
                    raise InputError(f"{p}: folder holds no *.json, *.yaml or *.yml instance file")
                files.extend(found)
            elif p.exists():
                check_instance_suffix(p)
                files.append(p)
            else:
                raise InputError(f"{p}: no such file or folder")
        except OSError as exc:
            raise InputError(f"{p}: cannot read folder ({exc.strerror or type(exc).__name__})") from None
    stems: dict[str, Path] = {}
    for f in files:
        prev = stems.setdefault(f.stem, f)
        if prev != f:
            raise InputError(f"{f}: stem '{f.stem}' is also the stem of {prev}; plans would overwrite each other")
    return files


def summary_table(rows: list[dict[str, Any]], solver: str) -> Table:
    """The rows of ``summary.csv`` as a rich table."""
    table = Table(title=f"hetero-opt solve ({solver})")
    for col, head in (
        ("instance", "instance"),
        ("status", "status"),
        ("served_gpus", "served GPUs"),
        ("unserved_gpus_by_priority", "unserved GPUs (prio:GPUs)"),
        ("premium_cost", "premium cost"),
        ("new_groups", "new groups"),
        ("wall_time_s", "time (s)"),
        ("violations", "violations"),
    ):
        table.add_column(head, justify="left" if col in ("instance", "status") else "right", no_wrap=col == "instance")
    for r in rows:
        table.add_row(
            str(r["instance"]),
            str(r["status"]),
            str(r["served_gpus"]),
            str(r["unserved_gpus_by_priority"] or "-"),
            str(r["premium_cost"]),
            str(r["new_groups"]),
            str(r["wall_time_s"]),
            str(r["violations"]),
        )
    return table


# ---------------------------------------------------------------------------------------------
# schema, generate, bench


def add_schema(sub: SubParsers) -> None:
    """Register ``schema``."""
    sub.add_parser("schema", help="print the JSON Schema of the instance format")


def run_schema(args: argparse.Namespace) -> int:
    """Print ``Instance.model_json_schema()`` as JSON."""
    print(json.dumps(Instance.model_json_schema(), indent=2))
    return 0


def add_generate(sub: SubParsers) -> None:
    """Register ``generate``."""
    p = sub.add_parser("generate", help="write a synthetic instance of a generator family")
    p.add_argument("--family", required=True, help="generator family: tiny, small, medium, large, production, heavy, "
                   "moe or contention (hetero_opt.generate.FAMILIES)")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="instance seed (default: 0)")
    p.add_argument("--out", required=True, type=Path, metavar="FILE", help="output file (.json, .yaml or .yml)")
    p.add_argument("--nodes-as", choices=("auto", "rows", "columns", "plain-columns"), default="auto",
                   help="nodes and each group's pods as lists of objects (format 1.1) or as columns, repeated node "
                   "columns as runs (format 1.4, loads 2-3x faster; plain-columns: no runs, format 1.3, which "
                   "releases before 1.4 read); auto: columns from 1,000 nodes (default: auto)")


def run_generate(args: argparse.Namespace) -> int:
    """Generate the instance and save it (atomically)."""
    generate = _lazy("hetero_opt.generate", "generate_instance")
    from hetero_opt.io import save_instance

    out: Path = args.out
    if out.suffix.lower() not in INSTANCE_SUFFIXES:
        raise ValueError(f"--out='{out}' must end in .json, .yaml or .yml")
    families = cast("tuple[str, ...]", _lazy("hetero_opt.generate", "FAMILIES"))
    if args.family not in families:
        raise ValueError(f"family='{args.family}' is not one of {list(families)}")
    check_seed(args.seed)
    check_destination(out, "--out", create=False)
    columnar = {"auto": None, "rows": False, "columns": True, "plain-columns": True}[args.nodes_as]
    inst = generate(args.family, args.seed, columnar=columnar)
    save_instance(inst, out, runs=args.nodes_as != "plain-columns")
    print(f"{out}: {instance_summary(inst)}")
    return 0


def add_bench(sub: SubParsers) -> None:
    """Register ``bench``."""
    p = sub.add_parser("bench", help="run a benchmark suite and print its report")
    p.add_argument("suite", help="suite name (see hetero_opt.bench.SUITES) or a generator family")
    p.add_argument("--solvers", default="greedy,cpsat,milp", help="comma-separated solvers (default: %(default)s)")
    p.add_argument("--time-limit", type=float, default=2.0, metavar="S", help="solver time limit in s (default: 2)")
    p.add_argument("--out-dir", type=Path, metavar="DIR", help="write bench.csv and bench.png here (resumable)")
    add_executor_arguments(p)


def run_bench(args: argparse.Namespace) -> int:
    """Run the suite with :func:`hetero_opt.bench.run_suite` and print the report."""
    run_suite = _lazy("hetero_opt.bench", "run_suite")
    print_report = _lazy("hetero_opt.bench", "print_report")
    solvers = [s.strip() for s in args.solvers.split(",") if s.strip()]
    if not solvers:
        raise InputError(f"--solvers={args.solvers!r} names no solver (one or more of {', '.join(SOLVERS)})")
    for s in solvers:
        if s not in SOLVERS:
            raise ValueError(f"--solvers: solver='{s}' is not one of {list(SOLVERS)}")
    check_time_limit(args.time_limit)
    if args.out_dir is not None:
        check_destination(args.out_dir, "--out-dir", folder=True)
    console = _console()
    with executor_from_args(args) as executor:
        df = run_suite(
            args.suite, solvers, time_limit=args.time_limit, out_dir=args.out_dir, console=console, executor=executor
        )
    print_report(df, console=console)
    return 0


def _lazy(module: str, name: str) -> Callable[..., Any]:
    """Import ``module.name`` only when the subcommand runs; a missing module is an input error."""
    import importlib

    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        raise InputError(f"{module}: module is not installed in this build") from None
    fn: Callable[..., Any] = getattr(mod, name)
    return fn


# ---------------------------------------------------------------------------------------------
# registry and entry point

Command: TypeAlias = tuple[Callable[[SubParsers], None], Callable[[argparse.Namespace], int]]

#: Subcommands in help order. Adding one = one ``add_x``/``run_x`` pair + one line here.
COMMANDS: dict[str, Command] = {
    "validate": (add_validate, run_validate),
    "solve": (add_solve, run_solve),
    "schema": (add_schema, run_schema),
    "generate": (add_generate, run_generate),
    "bench": (add_bench, run_bench),
    "autoscale": (cli_autoscale.add_parser, cli_autoscale.run),
    "simulate": (cli_simulate.add_parser, cli_simulate.run),
    "curate": (cli_curate.add_parser, cli_curate.run),
    "experiment": (cli_experiment.add_parser, cli_experiment.run),
    "import": (cli_k8s.add_import, cli_k8s.run_import),
    "export": (cli_k8s.add_export, cli_k8s.run_export),
    "serve": (cli_serve.add_parser, cli_serve.run),
    "metrics": (cli_metrics.add_parser, cli_metrics.run),
}


def _version() -> str:
    """The installed package's version (the source tree's when not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hetero-opt")
    except PackageNotFoundError:
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="hetero-opt",
        description="Topology-aware placement of P/D-disaggregated LLM serving (HeteroScale).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add, _ in COMMANDS.values():
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hetero-opt``; return the exit code (0 ok, 1 plan failed verification, 2 bad input).

    A reader that closes the output early (``hetero-opt schema | head -1``) ends the command
    quietly with exit code 141, as the shell reports for a command ended by SIGPIPE.
    """
    with whole_writes():
        try:
            try:
                return _main(argv)
            finally:
                sys.stdout.flush()  # what is still buffered fails here, not in the interpreter's exit
        except BrokenPipeError:
            return closed_pipe_exit()
        except SystemExit as exc:  # rich's console ends the program on a closed pipe (Console.on_broken_pipe)
            if isinstance(exc.__context__, BrokenPipeError):
                return closed_pipe_exit()
            raise


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    _, run = COMMANDS[args.command]
    try:
        return run(args)
    except BrokenPipeError:  # not bad input: main() ends the command quietly
        raise
    except (InputError, ValueError) as exc:
        print(_one_line(exc), file=sys.stderr)
        return 2
    except OSError as exc:  # a file or folder the OS refuses: bad input, not a bug
        where = f"{exc.filename}: " if exc.filename else ""
        print(_one_line(f"{where}{exc.strerror or exc}"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C outside a command's own handling (e.g. while loading): one line
        print(f"hetero-opt {args.command}: interrupted (Ctrl-C)", file=sys.stderr)
        return 130


def _console() -> Console:
    """The terminal's width on a terminal (wider lines would wrap there); piped, at least 120 columns."""
    console = Console()
    return console if console.is_terminal else Console(width=max(console.width, 120))


def _one_line(exc: BaseException | str) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
