"""Policy curation (paper Algorithm 1) in the simulator: pressure test, P/D ratio, serving profile, policy choice.

1. **Pressure test per candidate unit.** For P/D units around the roofline's balance
   (:func:`hetero_opt.sim.pressure.capacity_at_slo`), a static allocation of one unit serves the
   trace's mix, its rate scaled up by bisection until SLO attainment (both targets, drops count as
   misses) falls below ``attainment``; the largest rate that holds is the unit's goodput.
2. **Best ratio**: the unit with the most goodput per GPU; its per-pod prefill and decode tokens/s at
   that rate are the profile's figures; the guard's bounds are the units within 90 % of the best,
   widened to the P per D those figures balance at the trace's 10 %-90 % prompt:output mix.
3. **Policy choice**: proportional (the defaults: ratio moves, the prefill floor, anticipation, the
   SLO-tuned headroom with the rung as its ceiling) at
   each target utilisation of :data:`HEADROOM_LEVELS` (the headroom ladder, decision 63),
   proportional at the fixed unit (Algorithm 2 alone: no ratio move, no floor, no anticipation, no tuning),
   hybrid, the per-pool HPA and a static allocation at the trace's peak run in the closed loop on
   the trace; the choice is the fewest GPU-hours among policies meeting ``attainment``, else the
   best attainment. A chosen rung of the ladder is written into the profile
   (``gpu_types.<G>.target_utilisation``), which the autoscaler then sizes both pools at.

Every grid runs through :func:`hetero_opt.batch.sweep` on the given executor.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from hetero_opt.batch.executor import Executor
from hetero_opt.batch.sweep import sweep
from hetero_opt.errors import InputError
from hetero_opt.policy.config import DEFAULT_TARGET_UTILISATION
from hetero_opt.sim.harness import (
    Case,
    Mix,
    demand,
    flat_rate,
    goodput_attainment,
    head,
    rate_scaled,
    run_case,
    workload_mix,
)
from hetero_opt.sim.pressure import Capacity, best_unit, capacity_at_slo
from hetero_opt.sim.trace import RateTrace, Trace

#: Decode-TPS control targets this share of the pressure-tested per-pod figure: served decode TPS
#: cannot exceed capacity, so a target at capacity never sees R > 1 + theta_out when short. The
#: policy's own default (the prefill guard's), one number for both.
TARGET_UTILISATION = DEFAULT_TARGET_UTILISATION
#: The headroom ladder curation tries decode-TPS control at (decision 63): the share of the curated
#: per-pod figures both pools are sized at. 0.8 is the default; lower rungs buy TTFT where demand
#: steps faster than a reactive policy follows (ServeGen: 0.976 at 0.8, 0.992 at 0.65).
HEADROOM_LEVELS = (0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5)
#: Candidate P/D ratios as multiples of the roofline's balance (both sides of it).
RATIO_MULTIPLES = (0.25, 0.4, 0.6, 0.8, 1.0, 1.25, 1.6, 2.5, 4.0)
BISECTION_STEPS = 7
#: Each candidate unit is tested as whole units totalling about this many pods, so that small and
#: large units compare at one scale (pooling more servers alone raises goodput per GPU).
PRESSURE_POOL_PODS = 12


@dataclass(frozen=True)
class PressureTask:
    """One candidate unit's pressure test."""

    case: Case
    base_rate: float
    attainment: float


@dataclass(frozen=True)
class UnitResult:
    """Goodput of one unit under SLO."""

    unit: tuple[int, int]
    ratio: float
    rate_rps: float
    goodput_per_gpu: float
    attainment: float
    prefill_tps_per_pod: float
    decode_tps_per_pod: float


def pressure_test(task: PressureTask) -> UnitResult:
    """Largest rate factor whose attainment holds (bisection on the trace's rate), for one unit."""
    case = task.case
    p, d = case.unit
    lo, hi, best_att = 0.0, 1.0, float("nan")

    def attained(f: float) -> float:
        r = run_case(replace(case, trace=rate_scaled(case.trace, f, case.seed)))
        return goodput_attainment(r)

    # grow until it fails (at most 2^6 times the first guess), then bisect
    for _ in range(7):
        a = attained(hi)
        if a < task.attainment:
            break
        lo, best_att, hi = hi, a, hi * 2
    for _ in range(BISECTION_STEPS):
        mid = (lo + hi) / 2
        a = attained(mid)
        if a >= task.attainment:
            lo, best_att = mid, a
        else:
            hi = mid
    rate = lo * task.base_rate
    k = case.initial_units
    gpus = k * (p + d) * case.gpus_per_pod
    mix: Mix = _mix_of(case)
    return UnitResult(case.unit, p / d, rate, rate / gpus, best_att,
                      rate * mix.missed / (k * p), rate * mix.output / (k * d))


def _mix_of(case: Case) -> Mix:
    return workload_mix(case.trace, 200_000)


@dataclass(frozen=True)
class CurateSettings:
    """What to curate for and how hard to try."""

    model: str
    gpu: str
    gpus_per_pod: int
    ttft_ms: float
    tbt_ms: float
    attainment: float = 0.9
    pressure_window_s: float = 1200.0
    compare_window_s: float = 6 * 3600.0
    mode: str = "fluid"
    control_period_s: float = 60.0
    seed: int = 0


def candidate_units(cap: Capacity, max_pods: int = 9) -> list[tuple[int, int]]:
    """Units nearest to the roofline ratio times each of :data:`RATIO_MULTIPLES` (no repeats)."""
    units: list[tuple[int, int]] = []
    for m in RATIO_MULTIPLES:
        u = best_unit(cap.pd_ratio * m, max_pods)
        if u not in units:
            units.append(u)
    return sorted(units, key=lambda u: u[0] / u[1])


def roofline(settings: CurateSettings, mix: Mix) -> Capacity:
    """Algorithm 1 on the roofline: per-pod capacity at SLO and the balancing unit for ``mix``."""
    return capacity_at_slo(settings.model, settings.gpu, settings.gpus_per_pod, ttft_ms=settings.ttft_ms,
                           tbt_ms=settings.tbt_ms, prompt_tokens=mix.prompt, output_tokens=mix.output,
                           cached_tokens=mix.prompt - mix.missed)


def pd_sweep(trace: Trace, settings: CurateSettings, units: list[tuple[int, int]] | None = None,
             executor: Executor | None = None, progress: bool = False) -> tuple[Capacity, list[UnitResult]]:
    """Pressure-test each candidate unit on ``pressure_window_s`` of ``trace``.

    Request traces: their first ``pressure_window_s``; rate traces: that long at the whole trace's
    mean mix (a rate trace's mix drifts over days: its first windows are not its workload).
    """
    window = (flat_rate(trace, settings.pressure_window_s) if isinstance(trace, RateTrace)
              else head(trace, settings.pressure_window_s))
    mix = workload_mix(window, 200_000)
    cap = roofline(settings, mix)
    units = units or candidate_units(cap)
    tasks = []
    for u in units:
        p, d = u
        k = max(1, round(PRESSURE_POOL_PODS / (p + d)))
        # first guess: what the units' bottleneck side sustains at the roofline figures
        guess = k * min(p * cap.prefill_tps / max(mix.missed, 1.0), d * cap.decode_tps / max(mix.output, 1.0))
        case = Case(f"pd {p}P:{d}D", window, settings.model, settings.gpu, settings.gpus_per_pod, u, k, k,
                    {"policy": "static", "static_units": k}, settings.ttft_ms, settings.tbt_ms,
                    control_period_s=settings.control_period_s, seed=settings.seed)
        tasks.append(PressureTask(replace(case, trace=rate_scaled(window, guess / mix.rate_rps, settings.seed)),
                                  guess, settings.attainment))
    results = sweep(pressure_test, tasks, executor=executor, description="pressure test", progress=progress).values()
    if all(r.rate_rps <= 0 for r in results):
        raise InputError(
            f"SLO TTFT {settings.ttft_ms:g} ms / TBT {settings.tbt_ms:g} ms: no unit reaches attainment="
            f"{settings.attainment:g} at any rate on this trace (prompts too long for the TTFT target?)")
    return cap, results


#: Mix quantiles (prompt:output, output-token weighted over control windows) the ratio bounds cover.
MIX_QUANTILES = (0.1, 0.9)


def ratio_bounds(results: list[UnitResult], share: float = 0.9, trace: Trace | None = None,
                 period_s: float = 60.0) -> tuple[float, float]:
    """The prefill guard's curated P-per-D bounds.

    The units within ``share`` of the best goodput per GPU; with ``trace``, widened to the P per D the
    best unit's per-pod figures balance at the trace's :data:`MIX_QUANTILES` of the cache-missed
    prompt : output token ratio over control windows of ``period_s`` (a mix that drifts over the day
    needs a unit that follows it; within those bounds the guard moves the unit).
    """
    best = best_of(results)
    near = [r.ratio for r in results if r.goodput_per_gpu >= share * best.goodput_per_gpu]
    lo, hi = min(near), max(near)
    if trace is not None:
        q_lo, q_hi = mix_quantiles(trace, period_s, MIX_QUANTILES)
        per = best.decode_tps_per_pod / best.prefill_tps_per_pod
        lo, hi = min(lo, q_lo * per), max(hi, q_hi * per)
    return round(lo, 4), round(hi, 4)


def mix_quantiles(trace: Trace, period_s: float, quantiles: tuple[float, float]) -> tuple[float, float]:
    """Quantiles of the cache-missed prompt : output token ratio over control windows, output-token weighted."""
    _, missed, out = demand(trace, period_s, 200_000)
    ok = out > 0
    if not ok.any():
        return 0.0, 0.0
    r, w = missed[ok] / out[ok], out[ok]
    order = r.argsort()
    cum = w[order].cumsum() / w.sum()
    pick = [float(r[order][min(int(cum.searchsorted(q)), len(r) - 1)]) for q in quantiles]
    return pick[0], pick[1]


def best_of(results: list[UnitResult]) -> UnitResult:
    """The unit with the most goodput per GPU (fewest pods on ties)."""
    return max(results, key=lambda r: (round(r.goodput_per_gpu, 9), -sum(r.unit)))


def peak_units(trace: Trace, unit: tuple[int, int], prefill_tps: float, decode_tps: float, period_s: float) -> int:
    """Units the busiest control window needs at the per-pod figures."""
    _, missed, out = demand(trace, period_s, 200_000)
    need = max(float((missed / (unit[0] * prefill_tps)).max()), float((out / (unit[1] * decode_tps)).max()))
    return max(math.ceil(need), 1)


def oracle_gpu_hours(trace: Trace, unit: tuple[int, int], prefill_tps: float, decode_tps: float,
                     gpus_per_pod: int, period_s: float, bounds: tuple[float, float] | None = None) -> float:
    """Perfect foresight: each window holds exactly the units its demand needs, no start-up delay.

    With ``bounds`` (P per D) the oracle has the policy's freedom too: each window takes the cheapest
    unit ``p':d`` with ``p'`` within the bounds (whole units of it); without, the unit alone.
    """
    start, missed, out = demand(trace, period_s, 200_000)
    width = period_s if len(start) < 2 else float(start[1] - start[0])
    d = unit[1]
    ps = range(unit[0], unit[0] + 1) if bounds is None else range(*_p_range(unit, bounds))
    pods = 0
    for m, o in zip(missed, out, strict=True):
        pods += min(max(math.ceil(max(m / (p * prefill_tps), o / (d * decode_tps)) - 1e-9), 1) * (p + d) for p in ps)
    return float(pods * gpus_per_pod * width / 3600)


def _p_range(unit: tuple[int, int], bounds: tuple[float, float]) -> tuple[int, int]:
    """Prefill pods per unit allowed by ``bounds`` for the unit's ``d`` (the unit's own ``p`` included), as a range."""
    d = unit[1]
    lo = min(unit[0], max(1, math.ceil(bounds[0] * d - 1e-9)))
    hi = max(unit[0], math.floor(bounds[1] * d + 1e-9))
    return lo, hi + 1


def headroom_name(u: float) -> str:
    """The candidate name of decode-TPS control at target utilisation ``u`` ("proportional" at the default)."""
    return "proportional" if u == TARGET_UTILISATION else f"proportional-u{u:g}"


def ladder_rung(name: str) -> float | None:
    """The target utilisation of candidate ``name`` if it is a rung of the headroom ladder (a name
    :func:`headroom_name` gives), else None."""
    if name == "proportional":
        return TARGET_UTILISATION
    if not name.startswith("proportional-u"):
        return None
    try:
        u = float(name.removeprefix("proportional-u"))
    except ValueError:
        return None
    return u if 0 < u <= 1 and headroom_name(u) == name else None


def candidate_policies(target_decode: float, prefill_tps: float, static_units: int, settings: CurateSettings,
                       bounds: tuple[float, float] | None = None,
                       headroom: tuple[float, ...] = HEADROOM_LEVELS) -> dict[str, dict[str, Any]]:
    """The policies curation compares (the paper's control at each rung of ``headroom``, Algorithm 2 alone,
    its hybrid, the HPA baseline, peak static).

    ``bounds`` (P per D) are the curated ratio bounds the prefill guard may move the unit within.
    A rung ``u`` sizes decode pods at ``u`` x the curated decode figure and prefill pods at ``u`` x
    the prefill figure (the guard's ``target_utilisation``).
    """
    if not headroom or any(not 0 < u <= 1 for u in headroom):
        raise InputError(f"headroom={headroom}: give target utilisations in (0, 1]")
    if len({headroom_name(u) for u in headroom}) != len(headroom):
        raise InputError(f"headroom={headroom}: two rungs have the same name (repeated to 6 significant digits)")
    slo = {"target_ttft_ms": settings.ttft_ms, "target_tbt_ms": settings.tbt_ms}
    guard: dict[str, Any] = {"prefill_tps_per_pod": prefill_tps}
    if bounds is not None:
        guard |= {"min_prefill_per_decode": bounds[0], "max_prefill_per_decode": bounds[1]}
    target = {"target_decode_tps_per_pod": target_decode * TARGET_UTILISATION}
    ladder = {headroom_name(u): {"policy": "proportional",
                                 "proportional": {"target_decode_tps_per_pod": target_decode * u},
                                 "prefill_guard": {**guard, "target_utilisation": u}}
              for u in headroom}
    return {
        **ladder,
        # Algorithm 2 alone: no ratio move, no prefill floor or saturation reading, no anticipation, no
        # SLO-tuned headroom
        "proportional-fixed-unit": {"policy": "proportional", "proportional": target,
                                    "prefill_guard": {**guard, "move_ratio": False, "scale_units": False,
                                                      "saturated_util_percent": None},
                                    "anticipation": {"schedule_days": 0, "trend": False},
                                    "headroom": {"adaptive": False}},
        "hybrid": {"policy": "hybrid", "proportional": target,
                   "feedback": slo, "prefill_guard": guard},
        "hpa": {"policy": "hpa"},
        "static": {"policy": "static", "static_units": static_units},
    }


def compare_policies(trace: Trace, settings: CurateSettings, unit: tuple[int, int], prefill_tps: float,
                     decode_tps: float, executor: Executor | None = None, progress: bool = False,
                     policies: dict[str, dict[str, Any]] | None = None,
                     bounds: tuple[float, float] | None = None) -> list[dict[str, Any]]:
    """Each candidate policy in the closed loop on ``trace`` (plus the oracle's GPU-hours).

    With ``bounds`` (the curated P-per-D bounds) the oracle may pick each window's unit within them,
    as the prefill guard may; ``oracle_fixed_gpu_hours`` is the oracle held at ``unit``.
    """
    peak = peak_units(trace, unit, prefill_tps, decode_tps, settings.control_period_s)
    policies = policies or candidate_policies(decode_tps, prefill_tps, peak, settings, bounds)
    max_units = max(2 * peak, 4)
    _, missed, out = demand(trace, settings.control_period_s, 200_000)
    # every policy starts where decode-TPS control would hold the first window at its target utilisation
    # (a rung's own; the default for the others)
    need = max(float(out[0]) / (unit[1] * decode_tps), float(missed[0]) / (unit[0] * prefill_tps))

    def first(pol: dict[str, Any]) -> int:
        u = pol.get("prefill_guard", {}).get("target_utilisation") or TARGET_UTILISATION
        return min(max(1, math.ceil(need / u - 1e-9)), max_units)

    cases = [Case(name, trace, settings.model, settings.gpu, settings.gpus_per_pod, unit,
                  peak if pol["policy"] == "static" else first(pol), max_units, pol, settings.ttft_ms,
                  settings.tbt_ms, mode=settings.mode, control_period_s=settings.control_period_s,  # type: ignore[arg-type]
                  seed=settings.seed)
             for name, pol in policies.items()]
    rows = sweep(run_case, cases, executor=executor, description="policies", progress=progress).values()
    oracle = oracle_gpu_hours(trace, unit, prefill_tps, decode_tps, settings.gpus_per_pod, settings.control_period_s,
                              bounds)
    fixed = oracle_gpu_hours(trace, unit, prefill_tps, decode_tps, settings.gpus_per_pod, settings.control_period_s)
    static_gh = next((r["gpu_hours"] for r in rows if r["name"] == "static"), float("nan"))
    for r in rows:
        r["oracle_gpu_hours"] = oracle
        r["oracle_fixed_gpu_hours"] = fixed
        r["vs_static"] = r["gpu_hours"] / static_gh - 1 if static_gh == static_gh else float("nan")
        r["vs_oracle"] = r["gpu_hours"] / oracle - 1 if oracle else float("nan")
        r["peak_units"] = peak
    return rows


def choose(rows: list[dict[str, Any]], attainment: float) -> tuple[str, str]:
    """The policy with the fewest GPU-hours meeting ``attainment`` on both SLOs, and why.

    A dropped request counts as a miss of both (the rows' attainments judge completed requests only):
    a policy that drops a quarter of its requests does not meet 90 %, one that drops 4 in a million
    still may.
    """
    def score(r: dict[str, Any]) -> float:  # the worse SLO's attainment, a dropped request a miss
        served = 1.0 - r["dropped"] / r["arrivals"] if r["arrivals"] else 1.0
        return float(min(r["att_ttft"], r["att_tbt"]) * served)

    ok = [r for r in rows if score(r) >= attainment]
    if ok:  # equal GPU-hours: the better attainment, then the first listed
        best = min(ok, key=lambda r: (r["gpu_hours"], -score(r)))
        why = f"fewest GPU-hours ({best['gpu_hours']:.1f}) of those meeting {attainment:.0%} on TTFT and TBT"
        return best["name"], why
    best = max(rows, key=lambda r: (score(r), -r["gpu_hours"]))
    return best["name"], f"none meets {attainment:.0%}: best attainment ({score(best):.3f}, drops as misses)"


def _run_date() -> str:
    """The day of the curation (UTC): ``SOURCE_DATE_EPOCH`` where set (the reproducible-builds convention, so a
    profile can be regenerated byte for byte), else today: the one field of a profile that is not a function
    of its inputs."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = datetime.fromtimestamp(int(epoch), tz=UTC) if epoch and epoch.isdigit() else datetime.now(tz=UTC)
    return when.strftime("%Y-%m-%d")


def simulator_version() -> str:
    """Package version and a hash of the performance data the figures come from."""
    from hetero_opt import __version__

    h = hashlib.sha256()
    for name in ("perf_gpus.yaml", "perf_models.yaml", "perf_calibration.yaml"):
        h.update((resources.files("hetero_opt") / "data" / name).read_bytes())
    return f"hetero_opt {__version__}, perf data sha256:{h.hexdigest()[:12]}"


def data_date(path: str | Path) -> str:
    """The first date found in the trace's first lines (Azure stamps), else the file's modification date."""
    with open(path, errors="replace") as fh:
        text = "".join(fh.readline() for _ in range(3))
    m = re.search(r"\b(20\d\d-\d\d-\d\d)\b", text)
    if m:
        return m.group(1)
    return datetime.fromtimestamp(Path(path).stat().st_mtime, tz=UTC).strftime("%Y-%m-%d") + " (file date)"


def profile_document(settings: CurateSettings, trace_path: str, mix: Mix, cap: Capacity, best: UnitResult,
                     results: list[UnitResult], name: str, trace: Trace | None = None,
                     headroom: tuple[float, str] | None = None) -> dict[str, Any]:
    """The serving profile (``models/*.yaml`` schema) with its provenance in ``notes``.

    ``headroom``: the chosen rung of the headroom ladder and why, written as the GPU type's
    ``target_utilisation``.
    """
    from hetero_opt.sim.perfdata import model_catalog

    spec = model_catalog().models[settings.model]
    lo, hi = ratio_bounds(results, trace=trace, period_s=settings.control_period_s)
    p, d = best.unit
    src = (f"hetero-opt curate: pressure test in the simulator ({settings.mode} mode, static {p}P:{d}D, rate "
           f"bisected to {best.rate_rps:.3g} req/s at {settings.attainment:.0%} SLO attainment)")
    provenance = (f"Curated by hetero-opt curate on {_run_date()}; trace "
                  f"{Path(trace_path).name} (data of {data_date(trace_path)}), first {settings.pressure_window_s:g} s; "
                  f"{simulator_version()}; SLO TTFT {settings.ttft_ms:g} ms, TBT {settings.tbt_ms:g} ms at "
                  f"{settings.attainment:.0%}; seed {settings.seed}. Roofline at saturation: prefill "
                  f"{cap.prefill_tps:.0f}, decode {cap.decode_tps:.0f} tok/s per pod, P per D {cap.pd_ratio:.2f}.")
    role = {"gpus_per_pod": settings.gpus_per_pod}
    pre_src, dec_src = src + ": cache-missed prompt tok/s per prefill pod", src + ": output tok/s per decode pod"
    return {
        "name": name,
        "model": spec.hf_id,
        "architecture": spec.architecture,
        "engine": "hetero_opt roofline (vLLM-fitted)",
        "precision": "fp8" if spec.weight_bytes.value == 1 else "bf16",
        "workload": (f"{mix.prompt:.0f} prompt ({mix.missed:.0f} cache-missed) / {mix.output:.0f} output tokens "
                     f"per request, from {Path(trace_path).name}"),
        "slo": {"ttft_ms": settings.ttft_ms, "tbt_ms": settings.tbt_ms},
        "gpu_types": {settings.gpu: {
            "prefill": {**role, "prefill_tps_per_pod": {"value": round(best.prefill_tps_per_pod, 1),
                                                          "source": pre_src}},
            "decode": {**role, "decode_tps_per_pod": {"value": round(best.decode_tps_per_pod, 1),
                                                        "source": dec_src}},
            "unit": {"prefill": p, "decode": d,
                     "source": (f"Most goodput per GPU of {len(results)} units pressure-tested "
                                f"({best.goodput_per_gpu:.4g} req/s per GPU)"),
                     "bounds": {"min_prefill_per_decode": lo,
                                "max_prefill_per_decode": hi,
                                "source": ("Units within 90 % of the best goodput per GPU in the pressure test"
                                           + (", widened to the P per D its per-pod figures balance at the trace's "
                                              f"{MIX_QUANTILES[0]:.0%}-{MIX_QUANTILES[1]:.0%} prompt:output mix"
                                              if trace is not None else ""))}},
            **({"target_utilisation": {"value": headroom[0], "source": headroom[1]}} if headroom is not None else {}),
        }},
        "notes": provenance,
    }
