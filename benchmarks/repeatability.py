"""Same inputs, same plan? Solve each instance several times and count the distinct plans (issue 8; decision 60).

    .venv/bin/python benchmarks/repeatability.py --family production --seeds 10-19 --time-limit 2 --runs 3
    .venv/bin/python benchmarks/repeatability.py --family heavy --seeds 0-4 --time-limit 10 --runs 2

Each call is the one a user makes (``solve(instance, "cpsat", time_limit=...)``, deterministic mode, the
default). Budgets that do not depend on the machine (simplex iterations, MIP nodes, CP-SAT deterministic
time) decide where the machine allows; the wall-clock nets decide where it does not, and there plans may
differ from run to run. Printed per instance: the plans' scores (unserved GPUs per class / premium / new
groups), how many distinct plans the runs gave, and the wall times. Runs alternate between instances so
a change in machine load falls on every instance alike.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

from hetero_opt import Instance, solve
from hetero_opt.generate import generate_instance


def seeds_of(text: str) -> list[int]:
    """``"10-19"`` or ``"0,3,5"`` as a list of seeds."""
    if "-" in text:
        first, last = text.split("-")
        return list(range(int(first), int(last) + 1))
    return [int(s) for s in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", default="production")
    parser.add_argument("--seeds", default="10-19", help="e.g. 10-19 or 0,3,5")
    parser.add_argument("--time-limit", type=float, default=2.0)
    parser.add_argument("--runs", type=int, default=3, help="calls per instance")
    parser.add_argument(
        "--portfolio", action="store_true", help="deterministic=False: CP-SAT's portfolio, the wall decides every stage"
    )
    args = parser.parse_args()
    if args.runs < 2:
        parser.error("--runs must be at least 2 to compare plans")
    instances: dict[int, Instance] = {s: generate_instance(args.family, s) for s in seeds_of(args.seeds)}
    plans: dict[int, list[str]] = defaultdict(list)
    scores: dict[int, list[str]] = defaultdict(list)
    walls: dict[int, list[float]] = defaultdict(list)
    for run in range(args.runs):
        for seed, inst in instances.items():
            start = time.perf_counter()
            result = solve(inst, "cpsat", time_limit=args.time_limit, deterministic=not args.portfolio)
            walls[seed].append(time.perf_counter() - start)
            plans[seed].append(result.plan.model_dump_json())
            s = result.score
            scores[seed].append(f"{s.unserved_gpus}/{s.premium_cost}/{s.new_groups}")
        print(f"run {run + 1} of {args.runs} done", flush=True)
    mode = "portfolio" if args.portfolio else "deterministic"
    print(f"\n{args.family}, time_limit {args.time_limit} s, {mode} mode, {args.runs} runs each")
    print(f"{'seed':>4}  {'distinct plans':>14}  {'wall s':>11}  scores (unserved per class / premium / new groups)")
    same = 0
    for seed in instances:
        distinct = len(set(plans[seed]))
        same += distinct == 1
        wall = f"{min(walls[seed]):.2f}-{max(walls[seed]):.2f}"
        shown = " | ".join(dict.fromkeys(scores[seed]))  # each score once, in the order first seen
        print(f"{seed:>4}  {distinct:>14}  {wall:>11}  {shown}")
    print(f"\nthe same plan in every run: {same} of {len(instances)} instances")


if __name__ == "__main__":
    main()
