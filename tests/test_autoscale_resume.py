"""``hetero-opt autoscale --state-in``: a replay cut in two and resumed from its saved state and cluster
(``--state-out``, ``--instance-out``) ends where the uncut replay ends, decision for decision."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from conftest import refused

from hetero_opt.cli import main

DEMO = Path(__file__).resolve().parent.parent / "instances" / "autoscale"


def _metrics(tmp_path: Path, name: str, rows: int) -> Path:
    lines = (DEMO / "metrics.csv").read_text().splitlines()
    path = tmp_path / name
    path.write_text("\n".join(lines[: rows + 1]) + "\n")
    return path


def _run(metrics: Path, instance: Path, out: Path, *extra: str) -> None:
    args = ["autoscale", "--config", str(DEMO / "policy.yaml"), "--metrics", str(metrics), "--instance",
            str(instance), "--state-out", str(out / "state.json"), "--instance-out", str(out / "cluster.json"),
            "--all", *extra]
    assert main(args) == 0


def test_a_replay_cut_in_two_and_resumed_ends_as_the_uncut_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    whole, first, second = (tmp_path / d for d in ("whole", "first", "second"))
    for d in (whole, first, second):
        d.mkdir()
    metrics = _metrics(tmp_path, "m.csv", 48)
    _run(metrics, DEMO / "cluster.yaml", whole)
    whole_table = capsys.readouterr().out
    _run(_metrics(tmp_path, "half.csv", 20), DEMO / "cluster.yaml", first)
    capsys.readouterr()
    _run(metrics, first / "cluster.json", second, "--state-in", str(first / "state.json"))
    out, err = capsys.readouterr()
    assert "--state-in: 20 cycles at or before its last cycle (t=12000) skipped" in err
    assert json.loads((second / "state.json").read_text()) == json.loads((whole / "state.json").read_text())
    assert (second / "cluster.json").read_text() == (whole / "cluster.json").read_text()
    # the resumed table starts at the first cycle after the saved one (the uncut table shows both)
    assert "│ 12600 " in out
    assert "│ 12000 " not in out
    assert "│ 12000 " in whole_table


def test_a_chain_of_runs_updates_its_state_and_cluster_in_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _run(_metrics(tmp_path, "a.csv", 3), DEMO / "cluster.yaml", tmp_path)
    state = str(tmp_path / "state.json")
    _run(_metrics(tmp_path, "b.csv", 5), tmp_path / "cluster.json", tmp_path, "--state-in", state)
    assert json.loads((tmp_path / "state.json").read_text())["last_time"] == 3000.0
    assert "3 cycles at or before" in capsys.readouterr().err


SAVED = '"engine": {}, "last_time": 600.0'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1]", "must be a JSON object (an autoscaler state), got list"),
        ("{}", "holds no autoscaler state (no 'last_time' or 'engine'); move it away to start afresh"),
        ('{"engine": {}}', "holds no autoscaler state (no 'last_time')"),
        ('{"engine": {}, "last_time": "soon"}', "last_time='soon': Input should be a valid number"),
        ("{" + SAVED + ', "extra": 2}', "extra=2: Extra inputs are not permitted"),
        ("{" + SAVED + ', "starting": {"other": []}}', "service 'other' is not in --config"),
        ("{" + SAVED + ', "cluster_sha256": "abc"}', "cluster_sha256='abc': must be a SHA-256 in hex"),
        ("{", "malformed JSON: Expecting property name"),
    ],
)
@pytest.mark.parametrize("name", ["state.json", "state.txt"])
def test_a_bad_state_is_one_line_naming_the_flag_and_the_file(
    text: str, message: str, name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / name
    state.write_text(text)
    args = ["autoscale", "--config", str(DEMO / "policy.yaml"), "--metrics", str(DEMO / "metrics.csv"),
            "--instance", str(DEMO / "cluster.yaml"), "--state-in", str(state)]
    refused(capsys, args, f"--state-in {state}: {message}")


def test_a_missing_state_names_the_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "none.json"
    args = ["autoscale", "--config", str(DEMO / "policy.yaml"), "--metrics", str(DEMO / "metrics.csv"),
            "--instance", str(DEMO / "cluster.yaml"), "--state-in", str(state)]
    refused(capsys, args, f"--state-in {state}: cannot read file")


def test_a_cluster_other_than_the_one_saved_with_the_state_is_warned_about(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The state, renamed after the cluster, records the cluster written with it: a resume from another file (a
    live cluster, or a pair from two runs) says so on stderr and runs."""
    _run(_metrics(tmp_path, "a.csv", 3), DEMO / "cluster.yaml", tmp_path)
    saved = json.loads((tmp_path / "state.json").read_text())
    assert saved["cluster_sha256"] == hashlib.sha256((tmp_path / "cluster.json").read_bytes()).hexdigest()
    capsys.readouterr()
    out = tmp_path / "next"
    out.mkdir()
    _run(_metrics(tmp_path, "b.csv", 5), DEMO / "cluster.yaml", out, "--state-in", str(tmp_path / "state.json"))
    assert "is not the cluster saved with --state-in" in capsys.readouterr().err
    _run(_metrics(tmp_path, "b.csv", 5), tmp_path / "cluster.json", out, "--state-in", str(tmp_path / "state.json"))
    assert "is not the cluster saved" not in capsys.readouterr().err


def test_the_cluster_is_renamed_before_the_state_that_records_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    renamed: list[str] = []
    real = Path.replace

    def replace(self: Path, target: Path) -> Path:
        renamed.append(Path(target).name)
        return real(self, target)

    monkeypatch.setattr(Path, "replace", replace)
    _run(_metrics(tmp_path, "a.csv", 2), DEMO / "cluster.yaml", tmp_path)
    assert renamed == ["cluster.json", "state.json"]


@pytest.mark.parametrize("flag", ["--state-out", "--state-in"])
def test_the_cluster_and_the_state_must_be_two_files(
    flag: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.json"
    args = ["autoscale", "--config", str(DEMO / "policy.yaml"), "--metrics", str(DEMO / "metrics.csv"),
            "--instance", str(DEMO / "cluster.yaml"), flag, str(out), "--instance-out", str(out)]
    refused(capsys, args, f"--instance-out {out}: is also {flag}: name two files")
    assert not out.exists()
