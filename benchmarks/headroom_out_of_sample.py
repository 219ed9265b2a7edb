"""The curated headroom out of sample (decisions 63 and 64): curate on one week of ServeGen, run on the other.

Each week of the 14-day ServeGen trace is curated on its own (pressure test, unit, ratio bounds,
then decode-TPS control at every rung of the headroom ladder and static-at-peak in the closed loop),
each rung with the utilisation held where it is (decision 63 alone, "held") and tuned below it (the
SLO-tuned headroom of decision 64, the default); the table shows each week's rungs and which rung
each week's curation chooses, so the rung chosen on week 1 can be read on week 2 and the reverse.
Prints only.

    .venv/bin/python benchmarks/headroom_out_of_sample.py     # ~4 min on 2 cores
"""

from __future__ import annotations

from policy_goals import ATTAINMENT, cases, curated

from hetero_opt.sim.curate import HEADROOM_LEVELS, choose, compare_policies, headroom_name
from hetero_opt.sim.harness import head
from hetero_opt.sim.trace import RateTrace

WEEK_S = 7 * 86400.0


def weeks(trace: RateTrace) -> dict[str, RateTrace]:
    """Days 1-7 and days 8-14, each starting at time 0."""
    k = trace.start_s >= WEEK_S
    second = RateTrace(trace.name, trace.start_s[k] - WEEK_S, trace.window_s[k], trace.rate_rps[k],
                       trace.mean_input[k], trace.mean_output[k], trace.gaps[k] if trace.gaps.size else trace.gaps)
    first = head(trace, WEEK_S)
    assert isinstance(first, RateTrace)
    return {"days 1-7": first, "days 8-14": second}


def main() -> None:
    _, trace, mode, period = cases(False)[0]
    assert isinstance(trace, RateTrace)
    ladder = [headroom_name(u) for u in HEADROOM_LEVELS]
    for label, week in weeks(trace).items():
        settings, best, bounds, pols = curated(week, mode, period)
        held = {f"{k} held": {**v, "headroom": {"adaptive": False}} for k, v in pols.items() if k in ladder}
        pols = {**{k: v for k, v in pols.items() if k in (*ladder, "static")}, **held}
        rows = compare_policies(week, settings, best.unit, best.prefill_tps_per_pod, best.decode_tps_per_pod,
                                policies=pols, bounds=bounds)
        chosen = choose([r for r in rows if r["name"] in ladder], ATTAINMENT)[0]
        chosen_held = choose([r for r in rows if r["name"] in held], ATTAINMENT)[0]
        print(f"{label}: unit {best.unit[0]}P:{best.unit[1]}D, curation chooses {chosen} (tuned), "
              f"{chosen_held}", flush=True)
        for r in rows:
            print(f"  {r['name']:25s} TTFT ok {r['att_ttft']:.4f}  dropped {r['dropped'] / r['arrivals']:.1e}  "
                  f"GPU-hours {r['gpu_hours']:8.0f}  vs static {r['vs_static']:+.1%}", flush=True)


if __name__ == "__main__":
    main()
