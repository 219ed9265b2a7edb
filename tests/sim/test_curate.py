"""``hetero-opt curate`` and the harness: the profile loads, figures repeat with the seed, bad input writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from sim_helpers import CONV, TRACES

from hetero_opt.cli import main
from hetero_opt.policy.profiles import load_profile
from hetero_opt.sim.harness import build_cluster, flat_rate, head, rate_scaled, workload_mix
from hetero_opt.sim.trace import RateTrace, RequestTrace, load_trace

FAST = ["--model", "llama3-70b", "--gpu", "H20", "--trace", str(CONV), "--pressure-window", "300",
        "--compare-window", "600"]


def test_curate_writes_a_loadable_reproducible_profile(tmp_path: Path) -> None:
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
    for word in ("azure_llm_2023_conv.csv", "2023-11-16", "perf data sha256", "TTFT 2000 ms", "seed 3"):
        assert word in prof.notes
    # same seed, same figures (the files differ at most in the date of the run, which is the same day here)
    assert outs[0].read_text() == outs[1].read_text()
    for suffix in (".pressure.csv", ".policies.csv"):
        assert (outs[0].with_suffix(suffix)).stat().st_size > 0
    assert "chosen policy:" in outs[0].read_text()


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
