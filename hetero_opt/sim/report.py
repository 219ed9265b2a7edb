"""What a run reports: ``summary.json`` fields, the CSV files and the PNG plots."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hetero_opt.sim.loop import SimRun

REVERSAL_WINDOW_S = 1800.0


def reversals(cycles: pd.DataFrame, window_s: float = REVERSAL_WINDOW_S) -> int:
    """Direction changes (out after in, or in after out) within ``window_s`` of the previous action."""
    n = 0
    for _, g in cycles[cycles["action"].isin(["out", "in"])].groupby("service"):
        acts = list(zip(g["time"], g["action"], strict=True))
        for (t0, a0), (t1, a1) in itertools.pairwise(acts):
            n += a0 != a1 and t1 - t0 <= window_s
    return n


def summary(run: SimRun, wall_s: float) -> dict[str, Any]:
    """The run's figures of merit (one flat JSON object)."""
    c = run.cycles
    judged = float(c["judged"].sum())
    scaling = c[c["action"] != ""]
    pd_ratio = c["prefill_pods"] / c["decode_pods"].replace(0, np.nan)
    drift = (pd_ratio - c["pd_ratio_target"]).abs() / c["pd_ratio_target"]
    with_load = c[c["arrivals"] > 0]
    prefill_short = int((with_load["prefill_demand_tps"] > with_load["prefill_capacity_tps"].fillna(0)).sum())
    decode_short = int((with_load["decode_demand_tps"] > with_load["decode_capacity_tps"].fillna(0)).sum())
    dropped = {k: round(v, 3) for k, v in run.dropped.items()}
    return {
        "trace": run.trace_name,
        "mode": run.mode,
        "solver": run.config.solver,
        "control_period_s": run.config.control_period_s,
        "cycles": int(c["time"].nunique()),
        "arrivals": round(run.arrivals, 3),
        "completed": round(run.completed, 3),
        "dropped": dropped,
        "dropped_total": round(sum(run.dropped.values()), 3),
        "gpu_hours": round(run.gpu_hours, 3),
        "slo_attainment_ttft": round(float(c["ok_ttft"].sum()) / judged, 5) if judged else None,
        "slo_attainment_tbt": round(float(c["ok_tbt"].sum()) / judged, 5) if judged else None,
        "slo_attainment_both": round(float(c["ok_both"].sum()) / judged, 5) if judged else None,
        "actions": int(scaling["action"].isin(["out", "in"]).sum()),
        "actions_out": int((scaling["action"] == "out").sum()),
        "actions_in": int((scaling["action"] == "in").sum()),
        "reversals_within_30min": reversals(c),
        "pd_ratio_drift_max": round(float(drift.max()), 4) if drift.notna().any() else None,
        "pd_ratio_drift_mean": round(float(drift.mean()), 4) if drift.notna().any() else None,
        "windows_with_load": len(with_load),
        "windows_prefill_short": prefill_short,
        "windows_decode_short": decode_short,
        "prefill_gpu_util_mean": _mean(c["prefill_gpu_util"]),
        "decode_gpu_util_mean": _mean(c["decode_gpu_util"]),
        # the share of the per-pod figures the policy sized at (proportional, hybrid): the SLO-tuned headroom
        "target_utilisation_min": _per_service(c, min),
        "target_utilisation_last": _per_service(c, lambda s: s[-1]),
        "wall_time_s": round(wall_s, 3),
        "simulated_requests_per_wall_s": round(run.arrivals / wall_s, 1) if wall_s > 0 else None,
    }


def _per_service(c: pd.DataFrame, pick: Any) -> dict[str, float]:
    """Per service, ``pick`` of its cycles' target utilisations (services whose policy sizes by none left out)."""
    out: dict[str, float] = {}
    for service, g in c.groupby("service", sort=True):
        s = pd.to_numeric(g["target_utilisation"], errors="coerce").dropna()
        if len(s):
            out[str(service)] = round(float(pick(s.to_list())), 4)
    return out


def _mean(s: pd.Series) -> float | None:
    s = pd.to_numeric(s, errors="coerce").dropna()
    return round(float(s.mean()), 3) if len(s) else None


def plot(run: SimRun, out_dir: Path) -> list[str]:
    """Four PNGs: demand vs capacity, pods per pool, latency vs SLO, actions. Returns file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = run.cycles
    slo = {s.service: s.slo for s in run.config.services}
    names = []
    for service, g in c.groupby("service"):
        h = g["time"] / 3600
        fig, ax = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
        ax[0].plot(h, g["prefill_demand_tps"], label="prefill demand (cache-missed tok/s)")
        ax[0].plot(h, g["prefill_capacity_tps"], label="prefill capacity")
        ax[0].legend(fontsize=8)
        ax[1].plot(h, g["decode_demand_tps"], label="decode demand (tok/s)")
        ax[1].plot(h, g["decode_capacity_tps"], label="decode capacity at TBT SLO")
        ax[1].legend(fontsize=8)
        ax[1].set_xlabel("hours")
        fig.suptitle(f"{service}: demand vs capacity")
        names.append(_save(fig, out_dir, f"{service}_demand_capacity.png"))
        fig, ax1 = plt.subplots(figsize=(10, 4))
        ax1.step(h, g["prefill_pods"], where="post", label="prefill pods")
        ax1.step(h, g["decode_pods"], where="post", label="decode pods")
        ax1.step(h, g["units"], where="post", label="units")
        ax1.set_xlabel("hours")
        ax1.legend(fontsize=8, loc="upper left")
        ax1.set_title(f"{service}: pods per pool")
        used = pd.to_numeric(g["target_utilisation"], errors="coerce")
        if used.notna().any():  # the SLO-tuned headroom, where the policy sizes by it
            ax2 = ax1.twinx()
            ax2.step(h, used, where="post", color="black", linestyle=":", label="target utilisation")
            ax2.set_ylim(0, 1.05)
            ax2.set_ylabel("target utilisation")
            ax2.legend(fontsize=8, loc="upper right")
        names.append(_save(fig, out_dir, f"{service}_pods.png"))
        fig, ax = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
        for q in ("p50", "p90", "p99"):
            if f"ttft_{q}_ms" in g:
                ax[0].plot(h, g[f"ttft_{q}_ms"], label=f"TTFT {q}")
            if f"tbt_{q}_ms" in g:
                ax[1].plot(h, g[f"tbt_{q}_ms"], label=f"TBT {q}")
        ax[0].axhline(slo[str(service)].ttft_ms, color="red", linestyle="--", label="SLO")
        ax[1].axhline(slo[str(service)].tbt_ms, color="red", linestyle="--", label="SLO")
        ax[0].set_yscale("log")
        ax[0].legend(fontsize=8)
        ax[1].legend(fontsize=8)
        ax[1].set_xlabel("hours")
        fig.suptitle(f"{service}: latency percentiles (ms) against the SLO")
        names.append(_save(fig, out_dir, f"{service}_latency.png"))
        fig, ax1 = plt.subplots(figsize=(10, 3))
        for act, colour in (("out", "tab:green"), ("in", "tab:red")):
            sel = g[g["action"] == act]
            ax1.scatter(sel["time"] / 3600, sel["wanted_units"], color=colour, label=f"scale {act}", s=12)
        ax1.step(h, g["units"], where="post", color="grey", label="units")
        ax1.set_xlabel("hours")
        ax1.legend(fontsize=8)
        ax1.set_title(f"{service}: scaling actions")
        names.append(_save(fig, out_dir, f"{service}_actions.png"))
    return names


def _save(fig: Any, out_dir: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(out_dir / name, dpi=90)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return name
