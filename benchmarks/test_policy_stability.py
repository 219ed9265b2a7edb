"""Open-loop flapping of Algorithm 2 on the bundled 14-day ServeGen trace (docs/policy.md, "Defaults").

Run: ``.venv/bin/pytest benchmarks/test_policy_stability.py -s -p no:cacheprovider``. Each model of the
trace is one service at full traffic, 1,300 decode tok/s per decode pod (the demo profile), unit 3P:1D,
10-minute cycles stamped at window end. Open loop: the target is the next window's supply at once.
"""

from __future__ import annotations

from pathlib import Path

from hetero_opt.policy.config import ServicePolicy
from hetero_opt.policy.openloop import OpenLoopResult, open_loop, servegen_series

TRACE = Path(__file__).resolve().parents[1] / "instances" / "traces" / "servegen_2025_rate_10min.csv"
MODELS = ("m-large", "m-mid", "m-small")
MAX_REVERSALS_PER_DAY = 4.0  # issue 10 goal, per service

SETTINGS: dict[str, dict[str, object]] = {
    "defaults": {},
    "old demo (θ_in 0.1, no window, no headroom, 600/1200 s cooldowns)": {
        "proportional": {"theta_in": 0.1, "in_headroom": 0.0},
        "stability": {"scale_in_window_s": 0, "cooldown_out_s": 600, "cooldown_in_s": 1200},
    },
}


def _run(model: str, extra: dict[str, object]) -> OpenLoopResult:
    prop = {"target_decode_tps_per_pod": 1300, **extra.get("proportional", {})}  # type: ignore[dict-item]
    cfg = ServicePolicy.model_validate(
        {
            "service": model,
            "policy": "proportional",
            "min_units": 1,
            "max_units": 1000,
            "proportional": prop,
            "stability": extra.get("stability", {}),
        }
    )
    return open_loop(cfg, servegen_series(TRACE, model), (3, 1), start_units=10)


def test_defaults_flap_at_most_four_times_a_day() -> None:
    print()
    print(f"{'settings':<66} {'service':<8} {'actions/d':>9} {'rev30/d':>8} {'short':>6} {'units/need':>10}")
    worst = 0.0
    for name, extra in SETTINGS.items():
        for model in MODELS:
            r = _run(model, extra)
            print(
                f"{name:<66} {model:<8} {r.flaps.actions_per_day:9.1f} {r.flaps.reversals_per_day:8.1f}"
                f" {r.short_windows:6.1%} {r.mean_units / r.mean_needed_units:10.3f}"
            )
            if name == "defaults":
                worst = max(worst, r.flaps.reversals_per_day)
    assert worst <= MAX_REVERSALS_PER_DAY
