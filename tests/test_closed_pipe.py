"""A reader that closes the output early (``hetero-opt ... | head -1``): the command stops quietly, exit 141."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
AUTOSCALE = ROOT / "instances" / "autoscale"
SIM = ROOT / "instances" / "sim"
CONV = ROOT / "instances" / "traces" / "azure_llm_2023_conv.csv"


def _run_into_closed_pipe(argv: list[str], stream: str = "stdout", unbuffered: bool = False
                          ) -> subprocess.CompletedProcess[str]:
    """Run ``hetero-opt argv`` with ``stream`` a pipe whose reader is already gone; the other stream captured."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    read, write = os.pipe()
    os.close(read)
    cmd = [sys.executable, "-m", "hetero_opt", *argv]
    try:
        if stream == "stdout":
            return subprocess.run(cmd, stdout=write, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT, check=False)
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=write, text=True, env=env, cwd=ROOT, check=False)
    finally:
        os.close(write)


@pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered", "unbuffered"])
def test_plain_output_into_a_closed_pipe_exits_141_quietly(unbuffered: bool) -> None:
    # before: exit 120 and "Exception ignored ... BrokenPipeError" (buffered), exit 2 "Broken pipe" (unbuffered)
    proc = _run_into_closed_pipe(["validate", "instances/expand_vs_new.yaml"], unbuffered=unbuffered)
    assert (proc.returncode, proc.stderr) == (141, "")


def test_a_rich_table_into_a_closed_pipe_exits_141_quietly() -> None:
    # before: exit 1 (rich's console raised SystemExit(1) on the broken pipe)
    proc = _run_into_closed_pipe(["autoscale", "--config", str(AUTOSCALE / "policy.yaml"), "--metrics",
                                  str(AUTOSCALE / "metrics.csv"), "--instance", str(AUTOSCALE / "cluster.yaml")])
    assert (proc.returncode, proc.stderr) == (141, "")


def test_simulate_with_its_messages_unread_still_writes_its_outputs(tmp_path: Path) -> None:
    # before: exit 1 (120 with PYTHONUNBUFFERED unset), the run ended by its own progress bar
    out = tmp_path / "sim"
    proc = _run_into_closed_pipe(["simulate", "--trace", str(CONV), "--config", str(SIM / "sim.yaml"), "--cluster",
                                  str(SIM / "cluster.yaml"), "--duration", "300", "--no-plots", "--out-dir", str(out)],
                                 stream="stderr")
    assert (proc.returncode, proc.stdout) == (141, "")
    assert sorted(p.name for p in out.iterdir()) == ["cycles.csv", "metrics.prom", "requests.csv", "summary.json"]
    assert not (tmp_path / "sim.checkpoint").exists()


@pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered", "unbuffered"])
def test_a_reader_that_stops_in_the_middle_of_the_output_gets_141(unbuffered: bool) -> None:
    # ~100 kB of decisions, more than a pipe holds: the reader takes one line and closes while the command
    # still writes. Before: with PYTHONUNBUFFERED the raw file's short write dropped the rest silently, exit 0.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    argv = ["autoscale", "--config", str(AUTOSCALE / "policy.yaml"), "--metrics", str(AUTOSCALE / "metrics.csv"),
            "--instance", str(AUTOSCALE / "cluster.yaml"), "--all"]
    with subprocess.Popen([sys.executable, "-m", "hetero_opt", *argv], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env=env, cwd=ROOT) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        assert proc.stdout.readline()
        proc.stdout.close()
        err = proc.stderr.read()
    assert (proc.returncode, err) == (141, b"")
