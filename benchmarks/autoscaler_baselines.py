"""Decode-TPS control beside the three Kubernetes-world autoscalers (HPA, Knative KPA, AIBrix APA).

One Azure 2023 trace (×10 superposed copies, 1 hour, request mode, 60-s cycles), curated as
``policy_goals.py`` curates it (pressure test → unit, per-pod figures, ratio bounds); then, from the
same start, decode-TPS control with the library defaults, the per-pool HPA on GPU utilisation (60 %),
KPA and APA each with their upstream defaults on each pool's own TPS at the per-pod targets decode-TPS
control uses (decode: 0.8 × the curated decode figure; prefill: the curated prefill figure × the
guard's 0.8), KPA again with a 300-s scale-down delay, and static-at-peak. Prints one table
(docs/experiments.md, "KPA and APA beside HPA").

    .venv/bin/python benchmarks/autoscaler_baselines.py                 # conversation trace, ~25 s
    .venv/bin/python benchmarks/autoscaler_baselines.py --trace code
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from policy_goals import AZURE_COPIES, TRACES, curated

from hetero_opt.sim.curate import compare_policies
from hetero_opt.sim.harness import head
from hetero_opt.sim.trace import RequestTrace, load_trace, scale_trace


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trace", choices=("conv", "code"), default="conv", help="Azure 2023 trace")
    ap.add_argument("--seconds", type=float, default=3600.0, help="simulated seconds")
    args = ap.parse_args()
    start = time.perf_counter()
    tr = load_trace(TRACES / f"azure_llm_2023_{args.trace}.csv")
    assert isinstance(tr, RequestTrace)
    trace = head(scale_trace(tr, AZURE_COPIES, 0), args.seconds)
    settings, best, bounds, pols = curated(trace, "request", 60.0)
    sizing = {k: v for k, v in pols["proportional"].items() if k in ("proportional", "prefill_guard")}
    policies: dict[str, dict[str, Any]] = {
        "decode TPS, defaults": pols["proportional"],
        "HPA (60 % GPU util)": pols["hpa"],
        "KPA (Knative defaults, TPS)": {"policy": "kpa", **sizing},
        "KPA, scale-down delay 300 s": {"policy": "kpa", "kpa": {"scale_down_delay_s": 300}, **sizing},
        "APA (AIBrix defaults, TPS)": {"policy": "apa", **sizing},
        "static": pols["static"],
    }
    rows = compare_policies(trace, settings, best.unit, best.prefill_tps_per_pod, best.decode_tps_per_pod,
                            policies=policies, bounds=bounds)
    df = pd.DataFrame(rows)
    df["dropped_share"] = df["dropped"] / df["arrivals"]
    cols = ["name", "att_ttft", "att_tbt", "dropped_share", "gpu_hours", "vs_static", "vs_oracle", "actions",
            "reversals", "cycles_off_unit"]
    print(f"azure {args.trace} x{AZURE_COPIES}, {args.seconds:g} s, unit {best.unit[0]}P:{best.unit[1]}D "
          f"[{bounds[0]:g}-{bounds[1]:g}], targets: decode {sizing['proportional']['target_decode_tps_per_pod']:.0f}"
          f" tok/s/pod, prefill {best.prefill_tps_per_pod * 0.8:.0f} tok/s/pod; oracle "
          f"{rows[0]['oracle_gpu_hours']:.1f} GPU-h")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(df[cols].to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print(f"{time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
