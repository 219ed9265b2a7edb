"""Anticipation defaults measured in the closed loop (prints; asserts nothing).

Decode-TPS control with the library defaults and one setting changed per row: the learned
schedule (off, days of history read, margin, its scale-in hold), the trend look-ahead, the prefill
guard's saturation reading, and both off (the defaults before anticipation). ServeGen m-large over
its 14 days by default (the schedule needs previous days: the first day has none), the Azure 2023
code and conversation traces x10 for 60 minutes (one hour: no previous day, so only the trend can
act there). Llama-3-70B on TP4 H100, curated as in ``policy_goals.py``.

    .venv/bin/python benchmarks/anticipation_closed_loop.py                # 14 days / 60 minutes, ~9 min
    .venv/bin/python benchmarks/anticipation_closed_loop.py --days 3       # quicker
"""

from __future__ import annotations

import argparse
from typing import Any

import pandas as pd
from stability_closed_loop import COLUMNS, run_variants

#: (label, changes per config section): anticipation settings, one row each.
VARIANTS: list[tuple[str, dict[str, dict[str, Any]]]] = [
    ("defaults", {}),
    ("anticipation off", {"anticipation": {"schedule_days": 0}}),
    ("schedule 1 day", {"anticipation": {"schedule_days": 1}}),
    ("schedule 7 days", {"anticipation": {"schedule_days": 7}}),
    ("schedule margin 0.1", {"anticipation": {"margin": 0.1}}),
    ("no scale-in hold", {"anticipation": {"hold_scale_in": False}}),
    ("trend on", {"anticipation": {"trend": True}}),
    ("saturation off", {"prefill_guard": {"saturated_util_percent": None}}),
    ("both off (before)", {"anticipation": {"schedule_days": 0}, "prefill_guard": {"saturated_util_percent": None}}),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=float, default=14.0)
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--csv", help="write the table here too")
    args = ap.parse_args()
    df = run_variants(VARIANTS, args.days, args.minutes, traces=3)
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(df[COLUMNS].to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    if args.csv:
        df[COLUMNS].to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
