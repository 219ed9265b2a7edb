"""Stability defaults measured in the closed loop (prints; asserts nothing).

Decode-TPS control with the library defaults (prefill guard with ratio moves within the curated
bounds, prefill floor) and one setting changed at a time: the scale-in window, the scale-in band
theta_in, the in->out headroom, ratio moves, the prefill floor and its utilisation target. Each
row: SLO attainment, GPU-hours against the oracle (same ratio freedom), actions and direction
reversals within 30 minutes per day, ratio moves per day.
ServeGen m-large (fluid, 300-s cycles, the first --days days) and the Azure 2023 code trace x10
(request mode, 60-s cycles, --minutes minutes), Llama-3-70B on TP4 H100, curated as in
``policy_goals.py``.

    .venv/bin/python benchmarks/stability_closed_loop.py                 # 3 days / 60 minutes
"""

from __future__ import annotations

import argparse
import copy
import time
from typing import Any

import pandas as pd
from policy_goals import cases, curated

from hetero_opt.sim.curate import compare_policies
from hetero_opt.sim.harness import head

#: (label, changes per config section): one setting changed from the defaults per row.
VARIANTS: list[tuple[str, dict[str, dict[str, Any]]]] = [
    ("defaults", {}),
    ("window 0 s", {"stability": {"scale_in_window_s": 0.0}}),
    ("window 900 s", {"stability": {"scale_in_window_s": 900.0}}),
    ("window 3600 s", {"stability": {"scale_in_window_s": 3600.0}}),
    ("theta_in 0.1", {"proportional": {"theta_in": 0.1}}),
    ("theta_in 0.3", {"proportional": {"theta_in": 0.3}}),
    ("headroom 0", {"proportional": {"in_headroom": 0.0}}),
    ("headroom 0.2", {"proportional": {"in_headroom": 0.2}}),
    ("ratio moves off", {"prefill_guard": {"move_ratio": False}}),
    ("prefill floor off", {"prefill_guard": {"scale_units": False}}),
    ("prefill util 0.65", {"prefill_guard": {"target_utilisation": 0.65}}),
]


def run_variants(variants: list[tuple[str, dict[str, dict[str, Any]]]], days: float, minutes: float,
                 traces: int = 2) -> pd.DataFrame:
    """Each variant of decode-TPS control (changes per config section from the defaults) in the closed
    loop on the first ``traces`` of ``policy_goals.cases`` (ServeGen ``days``, Azure ``minutes``)."""
    rows: list[dict[str, Any]] = []
    for label, trace, mode, period in cases(False)[:traces]:
        start = time.perf_counter()
        trace = head(trace, days * 86400 if mode == "fluid" else minutes * 60)
        settings, best, bounds, candidates = curated(trace, mode, period)
        base = candidates["proportional"]
        pols: dict[str, dict[str, Any]] = {}
        for name, changes in variants:
            pol = copy.deepcopy(base)
            for section, kv in changes.items():
                pol.setdefault(section, {}).update(kv)
            pols[name] = pol
        out = compare_policies(trace, settings, best.unit, best.prefill_tps_per_pod, best.decode_tps_per_pod,
                               policies=pols, bounds=bounds)
        for r in out:
            r["trace"] = label
        rows.extend(out)
        print(f"{label}: {time.perf_counter() - start:.1f} s", flush=True)
    df = pd.DataFrame(rows)
    df["dropped_share"] = df["dropped"] / df["arrivals"]
    df["actions_per_day"] = df["actions"] / df["days"]
    return df


COLUMNS = ["trace", "name", "att_ttft", "att_tbt", "dropped_share", "gpu_hours", "vs_oracle", "actions_per_day",
           "reversals_per_day", "ratio_moves_per_day", "cycles_off_unit"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=float, default=3.0)
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--csv", help="write the table here too")
    args = ap.parse_args()
    df = run_variants(VARIANTS, args.days, args.minutes)
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(df[COLUMNS].to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    if args.csv:
        df[COLUMNS].to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
