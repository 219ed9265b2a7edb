"""Count the seam's work per ``solve()`` call: views built, verifications, score calls, binds, plan sorts
and plan-to-count conversions (issue 8, item 4; docs/decisions.md, decision 36).

    .venv/bin/hetero-opt generate --family production --seed 0 --out /tmp/p0.json
    .venv/bin/python benchmarks/seam_counts.py /tmp/p0.json --solver greedy cpsat --time-limit 2

Counts depend on the path CP-SAT takes (LP-guided, class blocks, full model), which depends on the
time limit; the wall-clock safety nets make them depend on machine load too.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections import Counter
from collections.abc import Callable
from typing import Any

import hetero_opt as ho

COUNTED = [  # (module, attribute, label); a function missing from this version is skipped
    ("hetero_opt.topology", "build_view", "views built"),
    ("hetero_opt.topology", "TopologyView.with_taken", "residual views"),
    ("hetero_opt.placement.verify", "verify", "verifications"),
    ("hetero_opt.placement.objective", "score", "score calls"),
    ("hetero_opt.placement.binding", "bind", "binds"),
    ("hetero_opt.placement.plan", "Plan.canonical", "plan re-sorts (canonical)"),
    ("hetero_opt.placement.cpsat.model", "plan_values", "plan -> counts (CP-SAT hint)"),
    ("hetero_opt.placement.milp.model", "hint_values", "plan or counts -> MILP start"),
    ("hetero_opt.placement.binding", "drafts_of", "plan -> counts (drafts_of)"),
]


def instrument(counts: Counter[str]) -> None:
    """Wrap every counted function, in its module and wherever it was imported by name."""
    for mod_name in ("hetero_opt.placement.solve", "hetero_opt.placement.cpsat.solver", "hetero_opt.placement.milp"):
        importlib.import_module(mod_name)
    for mod_name, attr, label in COUNTED:
        owner: Any = importlib.import_module(mod_name)
        *path, name = attr.split(".")
        for part in path:
            owner = getattr(owner, part)
        fn = getattr(owner, name, None)
        if fn is None:
            continue
        wrapped = _counting(fn, label, counts)
        setattr(owner, name, wrapped)
        for module in list(sys.modules.values()):
            if getattr(module, "__name__", "").startswith("hetero_opt") and getattr(module, name, None) is fn:
                setattr(module, name, wrapped)


def _counting(fn: Callable[..., Any], label: str, counts: Counter[str]) -> Callable[..., Any]:
    def counted(*args: Any, **kwargs: Any) -> Any:
        counts[label] += 1
        return fn(*args, **kwargs)

    return counted


def main() -> None:
    """Solve the instance with each solver and print the counts of one call."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("instance")
    parser.add_argument("--solver", nargs="+", default=["greedy", "cpsat"])
    parser.add_argument("--time-limit", type=float, default=2.0)
    args = parser.parse_args()
    counts: Counter[str] = Counter()
    instrument(counts)
    instance = ho.load_instance(args.instance)
    for solver in args.solver:
        counts.clear()
        result = ho.solve(instance, solver, time_limit=args.time_limit, seed=0)
        print(f"{solver}: status={result.status} score={result.score.key()} wall={result.wall_time_s:.2f} s")
        for label in [c[2] for c in COUNTED]:
            if counts[label]:
                print(f"  {label}: {counts[label]}")


if __name__ == "__main__":
    main()
