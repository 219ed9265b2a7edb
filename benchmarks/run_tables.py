"""Run the benchmark suites and print their tables: ``python benchmarks/run_tables.py [SUITE ...]``.

Writes ``out/bench/<suite>/bench.csv`` and ``bench.png``. Default suites: small, contention, moe,
medium, production (see ``hetero_opt.bench.SUITES`` and ``docs/benchmarks.md``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from hetero_opt.bench import DEFAULT_SOLVERS, SUITES, print_report, run_suite

DEFAULT = ("small", "contention", "moe", "medium", "production")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suites", nargs="*", default=list(DEFAULT), choices=sorted(SUITES))
    parser.add_argument("--solvers", default=",".join(DEFAULT_SOLVERS))
    parser.add_argument("--time-limit", type=float, default=2.0)
    parser.add_argument("--out", type=Path, default=Path("out/bench"))
    args = parser.parse_args()
    console = Console(width=180)
    for suite in args.suites:
        df = run_suite(
            suite,
            solvers=tuple(args.solvers.split(",")),
            time_limit=args.time_limit,
            out_dir=args.out / suite,
            console=console,
        )
        console.rule(f"suite {suite}")
        print_report(df, console)


if __name__ == "__main__":
    main()
