"""This checkout's ``solve()`` against an earlier revision's, in one process, called alternately.

On a shared machine a call's wall time moves by tens of percent from one run to the next, so two
versions timed in separate runs cannot be told apart by a few percent. Here the revision's package
is extracted from git under another name (``hetero_opt_base``), both are imported side by side, each
loads the same instance file, and the calls alternate (the order flips every round), so a change in
machine load shifts both alike. The greedy plans of both are compared byte for byte (a speed change of the
greedy, the view or binding must leave them identical); the timed solver's scores are printed side by side
(under a time limit they may differ from run to run).

    .venv/bin/python benchmarks/ab_versions.py --base 441726c --size 4x --solver cpsat --time-limit 0.25
"""

from __future__ import annotations

import argparse
import gc
import importlib
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import hetero_opt
from hetero_opt.generate import generate_instance
from hetero_opt.io import save_instance

ROOT = Path(__file__).resolve().parents[1]
SIZES: dict[str, dict[str, int]] = {
    "1x": {},
    "2x": {"num_nodes": 40_960, "num_clusters": 8, "num_services": 400, "num_requests": 100},
    "4x": {"num_nodes": 81_920, "num_clusters": 16, "num_services": 800, "num_requests": 200},
}


def extract(rev: str, into: Path) -> ModuleType:
    """The package as it was at ``rev``, importable as ``hetero_opt_base``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "hetero_opt"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    package = into / "hetero_opt_base"
    (into / "hetero_opt").rename(package)
    for path in package.rglob("*.py"):
        path.write_text(re.sub(r"\bhetero_opt\b", "hetero_opt_base", path.read_text()))
    sys.path.insert(0, str(into))
    return importlib.import_module("hetero_opt_base")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="git revision to compare against (e.g. HEAD~3)")
    parser.add_argument("--size", choices=list(SIZES), default="4x", help="production instance size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--solver", default="cpsat")
    parser.add_argument("--time-limit", type=float, default=0.25)
    parser.add_argument("--calls", type=int, default=12, help="calls per version")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = extract(args.base, Path(tmp))
        path = Path(tmp) / "instance.json"
        # Rows in format 1.1, which revisions before format 1.2 (columnar nodes, decision 52) read too.
        inst = generate_instance("production", args.seed, **SIZES[args.size])
        save_instance(inst.model_copy(update={"format_version": "1.1"}), path, columnar=False)
        del inst  # then freed
        versions: dict[str, tuple[Any, Any]] = {
            "this": (hetero_opt, hetero_opt.load_instance(path)),
            args.base: (base, base.load_instance(path)),
        }
        scores, greedy_plans = {}, {}
        for name, (pkg, inst) in versions.items():  # first calls: imports and warm-up, not timed
            scores[name] = pkg.solve(inst, args.solver, time_limit=args.time_limit).score.key()
            greedy_plans[name] = pkg.solve(inst, "greedy").plan.model_dump_json()
        walls: dict[str, list[float]] = {name: [] for name in versions}
        cpus: dict[str, list[float]] = {name: [] for name in versions}
        for round_ in range(args.calls):
            for name in list(versions)[:: 1 if round_ % 2 else -1]:
                pkg, inst = versions[name]
                gc.collect()  # each call starts from the same heap, not from the other's garbage
                start, cpu = time.perf_counter(), time.process_time()
                pkg.solve(inst, args.solver, time_limit=args.time_limit)
                walls[name].append(time.perf_counter() - start)
                cpus[name].append(time.process_time() - cpu)
    print(f"production {args.size} seed {args.seed}, {args.solver} at {args.time_limit:g} s, {args.calls} calls each")
    for clock, times in (("wall", walls), ("process time", cpus)):
        for name, w in times.items():
            print(f"  {clock:>12} {name:>12}: min {min(w):.3f}  median {statistics.median(w):.3f}  max {max(w):.3f} s")
        this, other = times["this"], times[args.base]
        print(
            f"  {clock:>12} this / {args.base}: median {statistics.median(this) / statistics.median(other):.3f}, "
            f"min {min(this) / min(other):.3f}"
        )
    print(f"  greedy plans identical: {greedy_plans['this'] == greedy_plans[args.base]}")
    print(f"  {args.solver} scores: this {scores['this']}, {args.base} {scores[args.base]}")


if __name__ == "__main__":
    main()
