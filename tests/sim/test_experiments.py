"""``hetero-opt experiment``: each writes its CSV and PNG on a tiny run; bad input writes nothing; Fig. 4's shape."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sim_helpers import CONV, TRACES

from hetero_opt.cli import main
from hetero_opt.sim.curate import HEADROOM_LEVELS, headroom_name

SERVEGEN = str(TRACES / "servegen_2025_rate_10min.csv")
TINY = {
    "pd-ratio": ["--trace", str(CONV), "--pressure-window", "300"],
    "signals": ["--trace", SERVEGEN, "--window", "7200", "--pressure-window", "600", "--period", "600",
                "--scale", "0.05"],
    "savings": ["--trace", SERVEGEN, "--window", "7200", "--pressure-window", "600", "--period", "600",
                "--scale", "0.05"],
}


@pytest.mark.parametrize("name", sorted(TINY))
def test_experiment_writes_csv_and_png(tmp_path: Path, name: str) -> None:
    assert main(["experiment", name, "--out-dir", str(tmp_path), *TINY[name]]) == 0
    stem = name.replace("-", "_")
    df = pd.read_csv(tmp_path / f"{stem}.csv")
    assert len(df) > 0
    assert (tmp_path / f"{stem}.png").read_bytes()[:4] == b"\x89PNG"
    if name == "savings":
        ladder = {headroom_name(u) for u in HEADROOM_LEVELS}
        assert set(df["name"]) == {*ladder, "proportional-fixed-unit", "hybrid", "hpa", "static", "oracle"}
    if name == "signals":
        assert set(df["run"]) == {"static", "ttft-feedback", "decode-tps"}
        static = df[df["run"] == "static"].iloc[0]
        # decode GPU utilisation barely moves with load (paper Fig. 2c/6): far flatter than decode TPS
        assert static["cv_decode_gpu_util"] < static["cv_decode_tps"]


def test_pd_ratio_peaks_mid_range(tmp_path: Path) -> None:
    assert main(["experiment", "pd-ratio", "--out-dir", str(tmp_path), *TINY["pd-ratio"]]) == 0
    df = pd.read_csv(tmp_path / "pd_ratio.csv").sort_values("pd_ratio")
    best = df["goodput_per_gpu"].max()
    # known answer: the lowest and highest P/D ratios lose goodput against the best one
    assert df["goodput_per_gpu"].iloc[0] < 0.9 * best
    assert df["goodput_per_gpu"].iloc[-1] < 0.9 * best
    assert 0 < df["pd_ratio"].iloc[int(df["goodput_per_gpu"].to_numpy().argmax())] < df["pd_ratio"].max()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["pd-ratio", "--trace", "missing.csv"], "missing.csv"),
        (["savings", "--window", "0"], "--window=0"),
        (["signals", "--model", "deepseek-v3"], "--model='deepseek-v3'"),
        (["pd-ratio", "--gpu", "Z99"], "Z99"),
    ],
)
def test_experiment_bad_input_exits_2_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         args: list[str], message: str) -> None:
    out = tmp_path / "out"
    assert main(["experiment", args[0], "--out-dir", str(out), *args[1:]]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert len(err.splitlines()) == 1
    assert not out.exists()
