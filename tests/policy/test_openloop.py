"""Open-loop replay and flapping statistics: hand-made counts first, then the bundled demo day."""

from __future__ import annotations

from pathlib import Path

import pytest

from hetero_opt.errors import InputError
from hetero_opt.policy.config import ServicePolicy, StabilityConfig, load_policy_config
from hetero_opt.policy.engine import ServiceMetrics, ServicePolicyState, decide
from hetero_opt.policy.openloop import flap_stats, open_loop, servegen_series
from hetero_opt.replay import load_metrics

ROOT = Path(__file__).resolve().parents[2]
TRACE = ROOT / "instances" / "traces" / "servegen_2025_rate_10min.csv"
DEMO = ROOT / "instances" / "autoscale"


def test_flap_stats_counts_reversals_within_the_window() -> None:
    # out@0, in@600 (reversal, 600 s), out@3000 (2400 s after the in: not one), in@3500 (reversal)
    events = [(0.0, "out"), (600.0, "in"), (1200.0, "none"), (3000.0, "out"), (3500.0, "in")]
    s = flap_stats(events, days=0.5)  # type: ignore[arg-type]
    assert (s.actions, s.reversals, s.actions_per_day, s.reversals_per_day) == (4, 2, 8.0, 4.0)


def test_servegen_windows_are_stamped_at_their_end() -> None:
    # ServeGen m-large window 0 is [0, 600): known at 600 s, never at 0
    series = servegen_series(TRACE, "m-large")
    assert (series[0][0], series[1][0], len(series)) == (600.0, 1200.0, 2016)
    assert series[0][1].decode_tps is not None
    assert round(series[0][1].decode_tps, 1) == 62239.9
    demo = load_metrics(DEMO / "metrics.csv")
    assert demo[0][0] == 600.0
    assert demo[0][1]["chat"].decode_tps == round(62239.8623 / 8, 1)


def test_servegen_series_refuses_a_row_with_more_fields_than_the_header(tmp_path: Path) -> None:
    # pandas read the first row's extra field as an index: every value one column off
    lines = TRACE.read_text().splitlines()[:3]
    p = tmp_path / "rates.csv"
    p.write_text("\n".join([lines[0], lines[1] + ",1", lines[2]]) + "\n")
    with pytest.raises(InputError, match=r"rates\.csv: row 1 has 13 fields but the header has 12$"):
        servegen_series(p, "m-large")


def _cfg(**stability: float) -> ServicePolicy:
    return ServicePolicy.model_validate(
        {
            "service": "s",
            "policy": "proportional",
            "proportional": {"target_decode_tps_per_pod": 100},
            "stability": StabilityConfig(cooldown_out_s=600, cooldown_in_s=1200, **stability),
        }
    )


def test_no_scale_in_at_the_cooldown_boundary() -> None:
    # scale out to 10 units at t=0 (10 pods, d=1); load drops to 5 pods from t=600.
    # The in-cooldown (1200 s) ends at t=1200, but the default 1800 s window still holds the t=0
    # recommendation of 10 units until t=1800 inclusive; the scale-in comes at t=2400, to
    # ceil(5 × 1.1) = 6 units (10 % in-headroom).
    cfg = _cfg()
    state = ServicePolicyState()
    supply = 5
    actions = []
    for t, tps in [(0.0, 1000), (600.0, 500), (1200.0, 500), (1800.0, 500), (2400.0, 500)]:
        d, state = decide(cfg, state, t, ServiceMetrics(decode_tps=tps), supply, 0, (1, 1))
        actions.append((t, d.action, d.target_units))
        supply = d.target_units
    assert actions == [
        (0.0, "out", 10),
        (600.0, "none", 10),
        (1200.0, "none", 10),
        (1800.0, "none", 10),
        (2400.0, "in", 6),
    ]
    # without the window the scale-in fires exactly when the cooldown ends
    d, _ = decide(
        _cfg(scale_in_window_s=0), ServicePolicyState(last_scale_out_at=0.0), 1200.0,
        ServiceMetrics(decode_tps=500), 10, 0, (1, 1),
    )
    assert (d.action, d.target_units) == ("in", 6)


def test_demo_day_open_loop_flaps_at_most_four_times() -> None:
    cfg = load_policy_config(DEMO / "policy.yaml").by_service()["chat"]
    series = [(t, m["chat"]) for t, m in load_metrics(DEMO / "metrics.csv")]
    r = open_loop(cfg, series, (3, 1), start_units=3)
    assert r.flaps.days == 1.0
    assert r.flaps.reversals <= 4
    assert all(d.target_units >= cfg.min_units for d in r.decisions)
