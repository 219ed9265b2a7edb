"""The paper's findings reproduced in the simulator (Figures 4, 6 and 7): tables and plots.

* :func:`pd_ratio` — goodput under SLO per GPU against the P/D ratio (Fig. 4);
* :func:`signals` — how candidate scaling signals follow load at a fixed allocation, and how
  TTFT-driven scaling behaves against decode-TPS control (Fig. 6);
* :func:`savings` — GPU-hours of decode-TPS control against a static peak allocation, the per-pool
  HPA and a perfect-foresight oracle at the same SLO (Fig. 7).

Each returns DataFrames; :func:`plot_pd_ratio`, :func:`plot_signals` and :func:`plot_savings` draw them.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hetero_opt.batch.executor import Executor
from hetero_opt.batch.sweep import sweep
from hetero_opt.sim.curate import (
    TARGET_UTILISATION,
    CurateSettings,
    best_of,
    compare_policies,
    pd_sweep,
    peak_units,
    ratio_bounds,
)
from hetero_opt.sim.harness import Case, run_case
from hetero_opt.sim.trace import Trace

#: Signals whose correlation with load the ``signals`` experiment reports (cycles.csv columns).
SIGNALS = ("decode_tps", "prefill_tps", "decode_gpu_util", "prefill_gpu_util", "ttft_mean_ms", "tbt_mean_ms")


def pd_ratio(trace: Trace, settings: CurateSettings, executor: Executor | None = None,
             progress: bool = False) -> pd.DataFrame:
    """Goodput (req/s at ``settings.attainment``) per GPU for each candidate P/D unit."""
    _, results = pd_sweep(trace, settings, executor=executor, progress=progress)
    best = best_of(results)
    return pd.DataFrame([{
        "prefill": r.unit[0], "decode": r.unit[1], "pd_ratio": r.ratio, "goodput_rps": r.rate_rps,
        "goodput_per_gpu": r.goodput_per_gpu, "relative": r.goodput_per_gpu / best.goodput_per_gpu,
        "attainment": r.attainment, "best": r is best,
    } for r in results])


def signals(trace: Trace, settings: CurateSettings, executor: Executor | None = None,
            progress: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-cycle signals of a fixed peak allocation, and TTFT-driven vs decode-TPS-driven scaling.

    Returns ``(cycles, summary)``: the static run's cycles with a ``load_rps`` column (and the
    two scaling runs' units), and one row per run with each signal's correlation with load,
    actions and reversals.
    """
    _, results = pd_sweep(trace, settings, executor=executor, progress=progress)
    best = best_of(results)
    unit, pre, dec = best.unit, best.prefill_tps_per_pod, best.decode_tps_per_pod
    peak = peak_units(trace, unit, pre, dec, settings.control_period_s)
    slo = {"target_ttft_ms": settings.ttft_ms, "target_tbt_ms": settings.tbt_ms}
    policies: dict[str, dict[str, Any]] = {
        "static": {"policy": "static", "static_units": peak},
        "ttft-feedback": {"policy": "feedback", "feedback": {"signals": ["ttft"], **slo}},
        "decode-tps": {"policy": "proportional",
                       "proportional": {"target_decode_tps_per_pod": dec * TARGET_UTILISATION},
                       # the signal alone (Algorithm 2): no prefill floor
                       "prefill_guard": {"prefill_tps_per_pod": pre, "scale_units": False,
                                         "saturated_util_percent": None},
                       "anticipation": {"schedule_days": 0}},
    }
    cases = [Case(name, trace, settings.model, settings.gpu, settings.gpus_per_pod, unit,
                  peak if name == "static" else max(peak // 2, 1), 2 * peak, pol, settings.ttft_ms, settings.tbt_ms,
                  control_period_s=settings.control_period_s, seed=settings.seed, keep_cycles=True)
             for name, pol in policies.items()]
    runs = sweep(run_case, cases, executor=executor, description="signals", progress=progress).values()
    rows = []
    frames = []
    for r in runs:
        c = r["cycles"].copy()
        dt = c["time"].diff().fillna(c["time"].iloc[0])
        c["load_rps"] = c["arrivals"] / dt
        c["load_tps"] = c["decode_demand_tps"]  # offered output tokens/s: the load decode pods carry
        with_load = c[c["arrivals"] > 0]
        row: dict[str, Any] = {"run": r["name"], "actions": r["actions"], "reversals": r["reversals"],
                               "gpu_hours": r["gpu_hours"], "att_ttft": r["att_ttft"], "att_tbt": r["att_tbt"]}
        for s in SIGNALS:
            row[f"corr_{s}"] = _corr(with_load["load_tps"], with_load[s])
            row[f"cv_{s}"] = _cv(with_load[s])
        rows.append(row)
        frames.append(c.assign(run=r["name"]))
    cols = ["run", "time", "load_rps", "load_tps", "units", *SIGNALS, "action"]
    return pd.concat(frames)[cols].reset_index(drop=True), pd.DataFrame(rows)


def _corr(a: pd.Series, b: pd.Series) -> float:
    a, b = pd.to_numeric(a, errors="coerce"), pd.to_numeric(b, errors="coerce")
    ok = a.notna() & b.notna()
    if ok.sum() < 3 or a[ok].std() == 0 or b[ok].std() == 0:
        return float("nan")
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def _cv(s: pd.Series) -> float:
    s = pd.to_numeric(s, errors="coerce").dropna()
    return float(s.std() / s.mean()) if len(s) > 1 and s.mean() else float("nan")


def savings(trace: Trace, settings: CurateSettings, executor: Executor | None = None,
            progress: bool = False, pressure_trace: Trace | None = None) -> pd.DataFrame:
    """GPU-hours and attainment of decode-TPS control (each rung of the headroom ladder), Algorithm 2 alone,
    hybrid, per-pool HPA and static-at-peak, plus the oracle."""
    _, results = pd_sweep(pressure_trace or trace, settings, executor=executor, progress=progress)
    best = best_of(results)
    bounds = ratio_bounds(results, trace=trace, period_s=settings.control_period_s)
    rows = compare_policies(trace, settings, best.unit, best.prefill_tps_per_pod, best.decode_tps_per_pod,
                            executor=executor, progress=progress, bounds=bounds)
    oracle = rows[0]["oracle_gpu_hours"]
    rows.append({"name": "oracle", "gpu_hours": oracle, "oracle_gpu_hours": oracle,
                 "vs_static": oracle / next(r["gpu_hours"] for r in rows if r["name"] == "static") - 1,
                 "vs_oracle": 0.0})
    df = pd.DataFrame(rows)
    df.insert(1, "unit", f"{best.unit[0]}P:{best.unit[1]}D")
    return df


def plot_pd_ratio(df: pd.DataFrame, path: Path, title: str) -> None:
    """Relative goodput per GPU against P/D ratio (log x)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(df["pd_ratio"], df["relative"], marker="o")
    for _, r in df.iterrows():
        ax.annotate(f"{int(r['prefill'])}P:{int(r['decode'])}D", (r["pd_ratio"], r["relative"]), fontsize=7,
                    textcoords="offset points", xytext=(0, 5), ha="center")
    ax.set_xscale("log")
    ax.set_xlabel("prefill pods per decode pod")
    ax.set_ylabel("goodput per GPU (relative to best)")
    ax.set_title(title, fontsize=9)
    _save(plt, fig, path)


def plot_signals(cycles: pd.DataFrame, path: Path, title: str) -> None:
    """Top: signals of the static run normalised to their max, against load; bottom: units per scaling run."""
    plt = _plt()
    fig, ax = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    st = cycles[cycles["run"] == "static"]
    h = st["time"] / 3600
    for col in ("load_tps", "decode_tps", "decode_gpu_util", "ttft_mean_ms"):
        s = pd.to_numeric(st[col], errors="coerce")
        ax[0].plot(h, s / s.max(), label=col)
    ax[0].set_ylabel("relative to max")
    ax[0].legend(fontsize=7)
    for run in ("ttft-feedback", "decode-tps"):
        g = cycles[cycles["run"] == run]
        ax[1].step(g["time"] / 3600, g["units"], where="post", label=f"units: {run}")
    ax[1].set_xlabel("hours")
    ax[1].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    _save(plt, fig, path)


def plot_savings(df: pd.DataFrame, path: Path, title: str) -> None:
    """GPU-hours per policy, annotated with SLO attainment."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(7.0, 0.75 * len(df)), 4))
    ax.bar(df["name"], df["gpu_hours"])
    ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    for i, r in df.reset_index(drop=True).iterrows():
        att = r.get("att_both")
        label = f"{r['gpu_hours']:.0f}" + (f"\nSLO {att:.3f}" if isinstance(att, float) and att == att else "")
        ax.annotate(label, (i, r["gpu_hours"]), ha="center", fontsize=7, textcoords="offset points", xytext=(0, 3))
    ax.set_ylim(0, 1.2 * float(df["gpu_hours"].max()))  # room for the labels above the tallest bar
    ax.set_ylabel("GPU-hours")
    ax.set_title(title, fontsize=9)
    _save(plt, fig, path)


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def with_window(settings: CurateSettings, **kw: Any) -> CurateSettings:
    """``settings`` with fields replaced."""
    return replace(settings, **kw)
