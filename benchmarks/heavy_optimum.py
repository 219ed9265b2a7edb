"""Proven optima of the heavy family's served terms, for the bench to print the gap to (issue 8).

    .venv/bin/python benchmarks/heavy_optimum.py --seeds 0-14
    .venv/bin/python benchmarks/heavy_optimum.py --seeds 6 --time-limit 900 --force

The project's MILP backend proves heavy instances in tens of minutes (seed 6: 1,497 s), too long to run
beside the solver in one bench. This script solves the same counts model (the relaxation's columns and
rows with every column integer: exact where pod sizes form a divisibility chain, as in the heavy family)
in HiGHS directly, one MIP per class, highest priority first, each keeping the served GPUs of the classes
before it and started from the last one's solution:

- ``optimum``: GPUs unserved per class at the lexicographic optimum of the served terms (premium and the
  later terms are not solved: the bench's own LP bound covers premium);
- ``proven``: per class, whether its MIP closed its gap within ``--time-limit`` (and every class before it
  is proven); else ``optimum`` holds the best found and ``bound`` the MIP's dual bound (None for the
  classes after an unproven one: their MIPs keep a served level that is not the optimum's, so their bounds
  bound nothing);
- ``greedy``: the greedy's unserved GPUs per class;
- ``no_class_worse_than_greedy``: whether some plan has the top class at its optimum and no class short of
  more GPUs than the greedy leaves short (issue 8's heavy goal): True when the optimum is such a plan,
  else a feasibility MIP decides (None where it ran out of time, or the top class is not proven).

Results go to ``--out`` (default ``benchmarks/heavy_optimum.json``), one entry per seed, written after each
seed (atomically): a run stopped part way resumes with the seeds not yet there; ``--force`` solves the seeds
given again (a longer ``--time-limit`` for one not proven).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import highspy
import numpy as np
from repeatability import seeds_of  # this folder's script (run as a script, its folder is on sys.path)

from hetero_opt import solve
from hetero_opt.generate import generate_instance
from hetero_opt.placement.relaxation import Relaxation, build_relaxation, highs_model
from hetero_opt.topology import build_view

OUT = Path(__file__).with_name("heavy_optimum.json")


def _mip(lp: Relaxation) -> highspy.Highs:
    """HiGHS's model of ``lp`` with every column integer (quiet; no costs yet)."""
    h = highs_model(lp)
    n = lp.num_cols
    h.changeColsIntegrality(n, np.arange(n, dtype=np.int32), np.full(n, highspy.HighsVarType.kInteger))
    h.setOptionValue("mip_rel_gap", 0.0)
    return h


def _at_least(h: highspy.Highs, coef: np.ndarray, lower: float) -> None:
    nz = np.flatnonzero(coef)
    h.addRow(lower, highspy.kHighsInf, len(nz), nz.astype(np.int32), coef[nz])


def reference(seed: int, time_limit: float) -> dict[str, Any]:
    """The served terms' optimum of heavy ``seed`` and whether the heavy goal can hold there (module doc)."""
    start = time.perf_counter()
    inst = generate_instance("heavy", seed)
    view = build_view(inst)
    part = [r for r in view.requests if r.delta > 0]
    lp = build_relaxation(view, part)
    if lp.relaxed:
        raise SystemExit(f"heavy seed {seed}: pod sizes outside a chain, the counts model is not exact")
    if any(r.all_or_nothing for r in part):  # their 0/1 rows (relaxation._all_or_nothing_rows) are not modelled
        raise SystemExit(f"heavy seed {seed}: an all-or-nothing request, which this model does not express")
    classes = sorted({r.service.priority for r in view.requests}, reverse=True)
    wanted = {p: sum(r.delta * r.service.gpus_per_unit for r in part if r.service.priority == p) for p in classes}
    served = {p: lp.cost_vector(("served", p)) for p in classes}
    h = _mip(lp)
    n = lp.num_cols
    everything = np.arange(n, dtype=np.int32)
    optimum: list[int] = []
    bound: list[int | None] = []
    proven: list[bool] = []
    solution = None
    for p in classes:
        h.changeColsCost(n, everything, served[p])
        h.changeObjectiveSense(highspy.ObjSense.kMaximize)
        h.setOptionValue("time_limit", time_limit)
        if solution is not None:
            h.setSolution(solution)
        h.run()
        info = h.getInfo()
        if info.primal_solution_status != 2:
            raise SystemExit(f"heavy seed {seed}: no solution for class {p} in {time_limit} s")
        solution = h.getSolution()
        best = round(float(served[p] @ np.array(solution.col_value)))
        optimum.append(wanted[p] - best)
        exact = all(proven)  # the classes before are at their optimum: this MIP's dual bound bounds the class
        bound.append(max(0, wanted[p] - int(info.mip_dual_bound + 1e-6)) if exact else None)
        proven.append(exact and h.getModelStatus() == highspy.HighsModelStatus.kOptimal)
        _at_least(h, served[p], float(best))
    greedy = solve(inst, "greedy").score.unserved_gpus
    feasible: bool | None = None  # unknown where the top class's optimum is not proven
    if proven[0] and all(o <= g for o, g in zip(optimum, greedy, strict=True)):
        feasible = True  # the optimum is such a plan
    elif proven[0]:  # another plan with the top class at its optimum may still be no worse
        g = _mip(lp)
        _at_least(g, served[classes[0]], float(wanted[classes[0]] - optimum[0]))
        for p, short in zip(classes[1:], greedy[1:], strict=True):
            _at_least(g, served[p], float(wanted[p] - short))
        g.setOptionValue("time_limit", time_limit)
        g.run()
        status = g.getModelStatus()
        feasible = (
            True
            if g.getInfo().primal_solution_status == 2
            else False
            if status == highspy.HighsModelStatus.kInfeasible
            else None
        )
    return {
        "seed": seed,
        "classes": classes,
        "optimum": optimum,
        "proven": proven,
        "bound": bound,
        "greedy": greedy,
        "no_class_worse_than_greedy": feasible,
        "seconds": round(time.perf_counter() - start, 1),
        "time_limit": time_limit,
    }


def load(path: Path) -> dict[int, dict[str, Any]]:
    """The references in ``path`` by seed (none if it does not exist)."""
    if not path.exists():
        return {}
    return {int(k): v for k, v in json.loads(path.read_text())["seeds"].items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0-14", help="e.g. 0-14 or 0,3,5")
    parser.add_argument("--time-limit", type=float, default=300.0, help="seconds per MIP")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--force", action="store_true", help="solve the seeds given even if already in --out")
    args = parser.parse_args()
    done = load(args.out)
    for seed in seeds_of(args.seeds):
        if seed in done and not args.force:
            print(f"seed {seed}: already in {args.out}", flush=True)
            continue
        done[seed] = reference(seed, args.time_limit)
        tmp = args.out.with_suffix(".tmp")
        body = {"family": "heavy", "seeds": {str(s): done[s] for s in sorted(done)}}
        tmp.write_text(json.dumps(body, indent=1) + "\n")
        os.replace(tmp, args.out)
        r = done[seed]
        print(
            f"seed {seed}: optimum {r['optimum']} (proven {r['proven']}, bound {r['bound']}), greedy {r['greedy']}, "
            f"no class worse than greedy possible: {r['no_class_worse_than_greedy']}, {r['seconds']} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
