"""``hetero-opt curate`` and the harness: the profile loads, figures repeat with the seed, bad input writes nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from sim_helpers import CONV, TRACES

from hetero_opt.cli import main
from hetero_opt.errors import InputError
from hetero_opt.policy.profiles import load_profile
from hetero_opt.sim.curate import (
    HEADROOM_LEVELS,
    CurateSettings,
    candidate_policies,
    choose,
    headroom_name,
    ladder_rung,
)
from hetero_opt.sim.harness import build_cluster, flat_rate, head, rate_scaled, workload_mix
from hetero_opt.sim.trace import RateTrace, RequestTrace, load_trace

FAST = ["--model", "llama3-70b", "--gpu", "H20", "--trace", str(CONV), "--pressure-window", "300",
        "--compare-window", "600"]


def test_curate_writes_a_loadable_reproducible_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1798761600")  # the run's date, pinned: byte-identical profiles
    outs = []
    for run in ("a", "b"):
        out = tmp_path / run / "llama-h20.yaml"
        assert main(["curate", *FAST, "--out", str(out), "--seed", "3"]) == 0
        outs.append(out)
    prof = load_profile(outs[0])
    assert prof.name == "llama-h20"
    g = prof.gpu("H20")
    assert g.prefill.prefill_tps_per_pod is not None
    assert g.prefill.prefill_tps_per_pod.value > 0
    assert prof.decode_tps_per_pod("H20") > 0
    assert g.unit.bounds is not None
    b = g.unit.bounds
    assert b.min_prefill_per_decode <= g.unit.prefill / g.unit.decode <= b.max_prefill_per_decode
    words = ("on 2027-01-01", "azure_llm_2023_conv.csv", "2023-11-16", "perf data sha256", "TTFT 2000 ms", "seed 3")
    for word in words:
        assert word in prof.notes
    # same seed, same figures (the files differ at most in the date of the run, which is the same day here)
    assert outs[0].read_text() == outs[1].read_text()
    for suffix in (".pressure.csv", ".policies.csv"):
        assert (outs[0].with_suffix(suffix)).stat().st_size > 0
    assert "chosen policy:" in outs[0].read_text()
    # every rung of the headroom ladder ran; a chosen rung is the profile's target utilisation (decision 63)
    table = pd.read_csv(outs[0].with_suffix(".policies.csv"))
    assert {headroom_name(u) for u in HEADROOM_LEVELS} <= set(table["name"])
    chosen = table.loc[table["chosen"], "name"].item()
    rung = ladder_rung(chosen)
    assert g.target_utilisation is not None
    assert g.target_utilisation.value == (rung if rung is not None else 0.8)
    # without the comparison: the default, and no comparison of an earlier run left beside the profile
    assert main(["curate", *FAST[:-1], "0", "--out", str(outs[0]), "--seed", "3"]) == 0
    g = load_profile(outs[0]).gpu("H20")
    assert g.target_utilisation is not None
    assert g.target_utilisation.value == 0.8
    assert "no closed-loop comparison" in g.target_utilisation.source
    assert not outs[0].with_suffix(".policies.csv").exists()


def test_the_choice_is_the_fewest_gpu_hours_meeting_the_attainment_and_names_its_rung() -> None:
    def row(name: str, gpu_hours: float, ttft: float) -> dict[str, object]:
        return {"name": name, "gpu_hours": gpu_hours, "att_ttft": ttft, "att_tbt": 1.0, "att_both": ttft,
                "dropped": 0.0, "arrivals": 1000.0}

    rows = [row("proportional", 48.0, 0.976), row("proportional-u0.7", 55.0, 0.988),
            row("proportional-u0.65", 59.0, 0.992), row("proportional-u0.6", 64.0, 0.997), row("static", 118.0, 1.0)]
    assert choose(rows, 0.99)[0] == "proportional-u0.65"
    assert choose(rows, 0.95)[0] == "proportional"
    assert choose(rows, 0.999999)[0] == "static"
    # a dropped request is a miss: 2 % dropped takes 0.992 below 0.99, 4 in a million does not
    rows[2]["dropped"] = 20.0
    assert choose(rows, 0.99)[0] == "proportional-u0.6"
    rows[2]["dropped"], rows[2]["arrivals"] = 4.0, 1e6
    assert choose(rows, 0.99)[0] == "proportional-u0.65"
    assert [ladder_rung(n) for n in ("proportional", "proportional-u0.65", "proportional-u0.42", "static",
                                     "proportional-fixed-unit", "proportional-u1.5", "proportional-u0.650")] == [
        0.8, 0.65, 0.42, None, None, None, None]
    # ties on GPU-hours: the better attainment
    tie = [row("proportional", 59.0, 0.991), row("proportional-u0.6", 59.0, 0.995)]
    assert choose(tie, 0.99)[0] == "proportional-u0.6"
    # none meets it: the best attainment with drops counted as misses
    short = [row("a", 10.0, 0.98), {**row("b", 20.0, 0.985), "dropped": 100.0}]
    assert choose(short, 0.99)[0] == "a"
    settings = CurateSettings("llama3-70b", "H100", 4, 2000.0, 100.0)
    with pytest.raises(InputError, match="target utilisations in"):
        candidate_policies(1000.0, 1000.0, 2, settings, headroom=(1.5,))
    with pytest.raises(InputError, match="same name"):
        candidate_policies(1000.0, 1000.0, 2, settings, headroom=(0.7, 0.7000000001))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["--model", "gpt-9"], "--model='gpt-9'"),
        (["--gpu", "Z99"], "Z99"),
        (["--tbt-ms", "-1"], "--tbt-ms=-1"),
        (["--attainment", "1.5"], "--attainment=1.5"),
        (["--trace", "nope.csv"], "nope.csv"),
        (["--tbt-ms", "1"], "no unit reaches"),
    ],
)
def test_curate_bad_input_exits_2_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      change: list[str], message: str) -> None:
    args = list(FAST)
    i = args.index(change[0]) if change[0] in args else None
    if i is not None:
        args[i + 1] = change[1]
    else:
        args += change
    out = tmp_path / "p.yaml"
    assert main(["curate", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_rate_scaling_keeps_the_mix() -> None:
    tr = head(load_trace(CONV), 600)
    assert isinstance(tr, RequestTrace)
    base = workload_mix(tr, 0)
    for f in (0.5, 2.5):
        scaled = workload_mix(rate_scaled(tr, f, 0), 0)
        assert scaled.rate_rps == pytest.approx(f * base.rate_rps, rel=0.05)
        assert scaled.prompt == pytest.approx(base.prompt, rel=0.05)
    sg = load_trace(TRACES / "servegen_2025_rate_10min.csv")
    assert isinstance(sg, RateTrace)
    flat = flat_rate(sg, 1200)
    assert len(flat.start_s) == 2  # two 600-s windows
    assert workload_mix(flat, 0).output == pytest.approx(workload_mix(sg, 0).output)


def test_built_cluster_holds_the_units() -> None:
    from hetero_opt.instance import current_units

    inst = build_cluster("H20", 4, (3, 1), units=2, max_units=5)
    # 5 units x 4 pods at 2 pods per node = 10 nodes, + 2 spare
    assert len(inst.nodes) == 12
    assert current_units(inst, "svc") == 2
    assert sum(n.gpus_total - n.gpus_free for n in inst.nodes) == 2 * 4 * 4


def _rate(inputs: list[float], outputs: list[float], rate: float = 1.0) -> RateTrace:
    import numpy as np

    n = len(inputs)
    return RateTrace("hand", np.arange(n) * 600.0, np.full(n, 600.0), np.full(n, rate), np.array(inputs),
                     np.array(outputs))


def test_oracle_holds_each_windows_need_and_may_pick_the_unit_within_the_bounds() -> None:
    from hetero_opt.sim.curate import oracle_gpu_hours

    # 1 req/s, per pod 100 prompt / 10 output tok/s, unit 2P:1D, 1-GPU pods, 600-s windows.
    # window 1: 400 prompt, 10 output tok/s → 4 P pods, 1 D pod; window 2: 100 prompt, 30 output → 1 P, 3 D.
    tr = _rate([400, 100], [10, 30])
    # fixed 2P:1D: max(4/2, 1/1) = 2 units = 6 pods; max(1/2, 3/1) = 3 units = 9 pods → 15 pod-windows
    assert oracle_gpu_hours(tr, (2, 1), 100, 10, 1, 600) == pytest.approx(15 * 600 / 3600)
    # P per D in [1, 4]: window 1 takes 4P:1D (1 unit, 5 pods), window 2 1P:1D (3 units, 6 pods) → 11
    assert oracle_gpu_hours(tr, (2, 1), 100, 10, 1, 600, (1.0, 4.0)) == pytest.approx(11 * 600 / 3600)


def test_ratio_bounds_cover_the_traces_mix_quantiles() -> None:
    import numpy as np

    from hetero_opt.sim.curate import UnitResult, mix_quantiles, ratio_bounds

    # ten windows, output 10 tok/s each, prompt 10..100 → prompt:output 1..10; 10 % / 90 % (output
    # weighted) → 1 and 9
    tr = _rate([10.0 * k for k in range(1, 11)], [10.0] * 10)
    assert mix_quantiles(tr, 600.0, (0.1, 0.9)) == (1.0, 9.0)
    best = UnitResult((2, 1), 2.0, 1.0, 1.0, 0.99, prefill_tps_per_pod=1000.0, decode_tps_per_pod=250.0)
    worse = UnitResult((3, 1), 3.0, 1.0, 0.5, 0.99, 1000.0, 250.0)
    assert ratio_bounds([best, worse]) == (2.0, 2.0)  # 3P:1D is at 50 % of the best goodput
    # a decode pod emits 250 tok/s; at 1 prompt token per output token it needs 0.25 prefill pods, at 9 2.25
    assert ratio_bounds([best, worse], trace=tr, period_s=600.0) == (0.25, 2.25)
    assert np.isfinite(ratio_bounds([best], trace=_rate([5.0], [0.0]))[0])


def test_off_unit_cycles_are_counted_against_the_deployed_unit_and_the_bounds() -> None:
    import pandas as pd

    from hetero_opt.sim.harness import cycles_off_unit

    c = pd.DataFrame({"units": [2, 2, 2, 2], "unit_prefill": [3, 4, 4, 6], "unit_decode": [1, 1, 1, 1],
                      "prefill_pods": [6, 8, 7, 12], "decode_pods": [2, 2, 2, 2]})
    # row 2: a move to 4P:1D within the bounds is a new unit; row 3: 7 P pods are not 2 × 4; row 4: 6 > 5
    assert cycles_off_unit(c, (2.0, 5.0)) == 2
    assert cycles_off_unit(c.iloc[:1], (3.0, 3.0)) == 0


def test_the_day_of_the_run_follows_source_date_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    # the one field of a profile that is not a function of its inputs (a determinism audit): pinned, a profile
    # regenerates byte for byte on another day
    from hetero_opt.sim.curate import _run_date

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1798761600")
    assert _run_date() == "2027-01-01"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "not a number")
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert _run_date() == today or _run_date() == datetime.now(UTC).strftime("%Y-%m-%d")  # (midnight between)
