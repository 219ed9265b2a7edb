"""Checkpoint and resume of the closed loop: an interrupted run resumes to the uninterrupted run's outputs."""

from __future__ import annotations

import json
import os
import pickle
import re
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sim_helpers import CONV, SIM_DIR, TRACES, conv, example

from hetero_opt.cli import main
from hetero_opt.sim.checkpoint import MAGIC, Checkpoint, CheckpointError, SimInterrupted
from hetero_opt.sim.harness import head
from hetero_opt.sim.loop import Mode, SimRun, simulate
from hetero_opt.sim.prom_export import PromExporter
from hetero_opt.sim.trace import Trace, load_trace, scale_rates
from hetero_opt.sim.window import Window


def _case(mode: Mode) -> tuple[Trace, Any, Any, Any]:
    cfg, policy, inst = example()
    if mode == "request":
        return conv(1200), cfg, policy, inst  # 20 one-minute cycles, then the drain
    rates = scale_rates(load_trace(TRACES / "servegen_2025_rate_10min.csv"), 0.02)
    return head(rates, 86400), cfg.replace(control_period_s=600.0), policy, inst  # a day of 10-min cycles


def _stop_after(*counts: int) -> Callable[[], bool]:
    """A ``stop`` that answers true on its ``counts[0]``-th call (one call per cycle)."""
    calls = [0]

    def stop() -> bool:
        calls[0] += 1
        return calls[0] in counts

    return stop


def _outputs(run: SimRun) -> tuple[str, str, str, Any]:
    """The run's files as the CLI writes them; counters' ``_created`` lines are wall-clock times."""
    prom = "".join(line for line in run.exporter.render().splitlines(keepends=True) if "_created" not in line)
    requests = run.requests.to_csv(index=False) if run.requests is not None else ""
    return run.cycles.to_csv(index=False), requests, prom, (run.arrivals, run.completed, run.dropped, run.gpu_hours)


@pytest.mark.parametrize("mode", ["request", "fluid"])
def test_interrupted_twice_resumes_to_the_same_outputs(tmp_path: Path, mode: Mode) -> None:
    trace, cfg, policy, inst = _case(mode)
    plain = simulate(trace, cfg, policy, inst, mode)
    path = tmp_path / "run.checkpoint"
    resumed: list[tuple[float, int]] = []
    ckpt = Checkpoint(path, every_s=0, on_resume=lambda t, n: resumed.append((t, n)))
    # stopped after cycle 3, resumed and stopped 6 cycles later (cycle 9), resumed to the end
    with pytest.raises(SimInterrupted, match="after 3 cycles") as first:
        simulate(trace, cfg, policy, inst, mode, checkpoint=ckpt, stop=_stop_after(3))
    assert first.value.path == path
    assert first.value.time_s == 3 * cfg.control_period_s
    with pytest.raises(SimInterrupted, match="after 9 cycles"):
        simulate(trace, cfg, policy, inst, mode, checkpoint=ckpt, stop=_stop_after(6))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.checkpoint"]  # no temporary file left
    saved: list[int] = []  # cycles done in the checkpoint on disk, seen at each cycle
    run = simulate(trace, cfg, policy, inst, mode, checkpoint=ckpt, on_cycle=lambda t, h: saved.append(_cycles(path)))
    assert resumed == [(3 * cfg.control_period_s, 3), (9 * cfg.control_period_s, 9)]
    assert run.extra["resumed_from_s"] == 9 * cfg.control_period_s
    assert _outputs(run) == _outputs(plain)
    assert len(run.cycles) == len(plain.cycles) > 12
    assert saved[0] == 9
    assert saved == sorted(saved)
    assert saved[-1] > 9  # saved as it went (every_s=0: as often as the cap on saving time allows) ...
    assert not path.exists()  # ... and removed once the run completed


def test_a_resumed_run_keeps_the_tuned_headroom(tmp_path: Path) -> None:
    # an hour's window and no short cycle allowed: the tuning acts within the day, and a run stopped
    # after it acted resumes with the tuned utilisation (decision 64), to the same outputs
    trace, cfg, policy, inst = _case("fluid")
    tuned = {"adaptive": True, "window_s": 3600, "short_budget": 0}
    policy = policy.replace(services=tuple(s.replace(headroom=tuned) for s in policy.services))
    plain = simulate(trace, cfg, policy, inst, "fluid")
    used = plain.cycles["target_utilisation"]
    assert used.nunique() > 1  # it moved
    stop = int((used != used.iloc[0]).to_numpy().argmax()) + 2  # stopped two cycles after the first change
    ckpt = Checkpoint(tmp_path / "run.checkpoint", every_s=0)
    with pytest.raises(SimInterrupted):
        simulate(trace, cfg, policy, inst, "fluid", checkpoint=ckpt, stop=_stop_after(stop))
    assert _outputs(simulate(trace, cfg, policy, inst, "fluid", checkpoint=ckpt)) == _outputs(plain)


def _cycles(path: Path) -> int:
    """Cycles done in the checkpoint ``path`` (read from its header)."""
    with path.open("rb") as f:
        assert f.read(len(MAGIC)) == MAGIC
        cycles: int = json.loads(f.readline())["cycles"]
        return cycles


def test_exporter_pickles_to_the_same_text() -> None:
    exp = PromExporter(["chat"])
    exp.observe("chat", Window(0, 60, decode_tokens=5.0, prefill_tokens=7.0, decode_busy_s=30.0, decode_ready_s=60.0,
                               running=3, ttft=np.array([0.2, 3.0]), tbt=np.array([0.05])))
    back = pickle.loads(pickle.dumps(exp))
    assert back.render() == exp.render()  # counters' creation times included
    back.observe("chat", Window(60, 120, decode_tokens=1.0))
    exp.observe("chat", Window(60, 120, decode_tokens=1.0))
    assert back.render() == exp.render()


def test_other_inputs_are_refused_naming_what_differs(tmp_path: Path) -> None:
    trace, cfg, policy, inst = _case("request")
    path = tmp_path / "run.checkpoint"
    with pytest.raises(SimInterrupted):
        simulate(trace, cfg, policy, inst, "request", checkpoint=Checkpoint(path), stop=_stop_after(2))
    other = cfg.replace(seed=1)
    # the config's hash differs too: "(config_sha256: ... -> ...; seed: 0 -> 1)"
    differs = r"run\.checkpoint' was written by a run with other inputs \(config_sha256: .*; seed: 0 -> 1\)"
    with pytest.raises(CheckpointError, match=differs):
        simulate(trace, other, policy, inst, "request", checkpoint=Checkpoint(path))
    with pytest.raises(CheckpointError, match=r"mode: request -> fluid"):
        simulate(trace, cfg, policy, inst, "fluid", checkpoint=Checkpoint(path))
    assert path.exists()  # refused, not discarded
    # restart=True discards it: the run is the plain run with the other seed
    run = simulate(trace, other, policy, inst, "request", checkpoint=Checkpoint(path, restart=True))
    assert run.extra["resumed_from_s"] is None
    assert _outputs(run) == _outputs(simulate(trace, other, policy, inst, "request"))
    assert not path.exists()


def test_other_inputs_are_named_with_their_numbers_as_a_user_reads_them(tmp_path: Path) -> None:
    # before: "duration: 900.0 -> null; scale: 1.0 -> 2.0"
    trace, cfg, policy, inst = _case("request")
    path = tmp_path / "run.checkpoint"
    with pytest.raises(SimInterrupted):
        simulate(trace, cfg, policy, inst, "request", stop=_stop_after(2),
                 checkpoint=Checkpoint(path, inputs={"duration": 900.0, "scale": 1.0}))
    with pytest.raises(CheckpointError, match=r"other inputs \(duration: 900 s -> none; scale: 1 -> 2\);"):
        simulate(trace, cfg, policy, inst, "request",
                 checkpoint=Checkpoint(path, inputs={"duration": None, "scale": 2.0}))


def _cli(out: Path, *extra: str) -> list[str]:
    return ["simulate", "--trace", str(CONV), "--config", str(SIM_DIR / "sim.yaml"), "--cluster",
            str(SIM_DIR / "cluster.yaml"), "--duration", "900", "--no-plots", "--out-dir", str(out), *extra]


def _files(out: Path) -> dict[str, Any]:
    summary = json.loads((out / "summary.json").read_text())
    for wall_clock in ("wall_time_s", "simulated_requests_per_wall_s"):
        summary.pop(wall_clock)
    prom = [line for line in (out / "metrics.prom").read_text().splitlines() if "_created" not in line]
    return {"cycles": (out / "cycles.csv").read_bytes(), "requests": (out / "requests.csv").read_bytes(),
            "summary": summary, "prom": prom}


def test_cli_sigint_saves_and_a_rerun_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_cli(tmp_path / "plain")) == 0
    import hetero_opt.cli_simulate as cli_simulate

    real = cli_simulate.simulate

    def interrupted(*args: Any, **kwargs: Any) -> SimRun:
        progress = kwargs["on_cycle"]
        cycles = [0]

        def on_cycle(t: float, h: float) -> None:
            progress(t, h)
            cycles[0] += 1
            if cycles[0] == 5:
                os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C would: the run stops after this cycle

        return real(*args, **{**kwargs, "on_cycle": on_cycle})

    out = tmp_path / "sim"
    ckpt = tmp_path / "sim.checkpoint"  # the default: beside the output folder
    monkeypatch.setattr(cli_simulate, "simulate", interrupted)
    capsys.readouterr()
    assert main(_cli(out)) == 130
    err = " ".join(capsys.readouterr().err.split())
    assert f"interrupted by SIGINT at simulated time 300 s (5 control cycles); state saved to {ckpt}" in err
    assert ckpt.exists()
    assert not out.exists()
    monkeypatch.setattr(cli_simulate, "simulate", real)
    assert main(_cli(out)) == 0
    assert f"resuming from checkpoint {ckpt}: simulated time 300 s, 5 control cycles done" in " ".join(
        capsys.readouterr().err.split())
    assert _files(out) == _files(tmp_path / "plain")
    assert not ckpt.exists()


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (lambda b: b"not a checkpoint at all\n", "not a hetero-opt simulate checkpoint"),
        (lambda b: b[: len(b) // 2], "state is damaged"),
        (lambda b: MAGIC + b"{oops\n" + b[b.index(b"\n", len(MAGIC)) + 1:], "header is damaged"),
        (lambda b: b.replace(b'"format": 1', b'"format": 99'), "format 99, this version reads format 1"),
        # the payload's SHA-256 does not cover the header: a header edited alone was trusted (before)
        (lambda b: re.sub(rb'"cycles": \d+', b'"cycles": 99', b, count=1),
         "header is damaged (it says simulated time 60 s, 99 control cycles; the state holds 60 s, 1 cycles)"),
    ],
    ids=["garbage", "truncated", "torn-header", "other-format", "header-disagrees-with-state"],
)
def test_cli_refuses_a_damaged_checkpoint_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      damage: Callable[[bytes], bytes], match: str) -> None:
    ckpt = tmp_path / "sim.checkpoint"
    out = tmp_path / "sim"
    # a checkpoint of exactly this command, as a kill during the run would leave it: copied mid-run
    copies: list[bytes] = []
    import hetero_opt.cli_simulate as cli_simulate

    real = cli_simulate.simulate

    def copying(*args: Any, **kwargs: Any) -> SimRun:
        progress = kwargs["on_cycle"]

        def on_cycle(t: float, h: float) -> None:
            progress(t, h)
            if ckpt.exists() and not copies:
                copies.append(ckpt.read_bytes())

        return real(*args, **{**kwargs, "on_cycle": on_cycle})

    with monkeypatch.context() as m:
        m.setattr(cli_simulate, "simulate", copying)
        assert main(_cli(out, "--checkpoint-every", "0")) == 0
    ckpt.write_bytes(damage(copies[0]))
    capsys.readouterr()
    assert main(_cli(out)) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert "Traceback" not in err
    assert f"checkpoint '{ckpt}'" in err
    assert match in err
    assert ckpt.exists()
    if match == "not a hetero-opt simulate checkpoint":
        # not ours: --restart is not offered and does not delete it (it may be any file the user named)
        assert "--restart" not in err
        assert main(_cli(out, "--restart")) == 2
        assert "not deleted" in capsys.readouterr().err
        assert ckpt.read_bytes() == b"not a checkpoint at all\n"
        return
    assert "--restart" in err
    assert main(_cli(out, "--restart")) == 0
    assert f"--restart: the checkpoint {ckpt} is discarded; starting over" in capsys.readouterr().err
    assert not ckpt.exists()


def test_cli_refuses_an_out_dir_that_is_a_file_before_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import hetero_opt.cli_simulate as cli_simulate

    out = tmp_path / "a-file"
    out.write_text("mine\n")
    ran: list[bool] = []
    monkeypatch.setattr(cli_simulate, "simulate", lambda *a, **k: ran.append(True))
    assert main(_cli(out)) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert ran == []
    assert out.read_text() == "mine\n"


def test_cli_refuses_an_out_dir_holding_files_it_did_not_write(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # the folder is replaced whole at the end: the working directory or a results folder given by
    # mistake must be refused before the run, not deleted after it
    import hetero_opt.cli_simulate as cli_simulate

    out = tmp_path / "results"
    (out / "sub").mkdir(parents=True)
    (out / "keep.txt").write_text("mine\n")
    (out / "summary.json").write_text("{}\n")  # a previous run's file alone would not stop it
    ran: list[bool] = []
    monkeypatch.setattr(cli_simulate, "simulate", lambda *a, **k: ran.append(True))
    assert main(_cli(out)) == 2
    err = capsys.readouterr().err
    assert f"--out-dir '{out}': holds 2 entries a simulation does not write (e.g. 'keep.txt')" in err
    assert ran == []
    assert (out / "keep.txt").read_text() == "mine\n"
    assert (out / "sub").is_dir()


@pytest.mark.parametrize("plots", [False, True])
def test_cli_replaces_a_previous_runs_output_folder(tmp_path: Path, plots: bool) -> None:
    out = tmp_path / "out"
    args = _cli(out) if not plots else [a for a in _cli(out) if a != "--no-plots"]
    assert main(args) == 0
    first = sorted(p.name for p in out.iterdir())
    assert any(n.endswith(".png") for n in first) == plots
    (out / ".DS_Store").write_bytes(b"")  # what a Finder window leaves
    assert main(args) == 0  # its own files only: replaced
    assert sorted(p.name for p in out.iterdir()) == first


@pytest.mark.parametrize("case", ["working directory", "its parent", "symbolic link"])
def test_cli_refuses_an_out_dir_it_cannot_replace_before_the_run(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import hetero_opt.cli_simulate as cli_simulate

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    out = {"working directory": Path("."), "its parent": Path(".."), "symbolic link": tmp_path / "link"}[case]
    if case == "symbolic link":
        (tmp_path / "real").mkdir()
        out.symlink_to(tmp_path / "real")
    ran: list[bool] = []
    monkeypatch.setattr(cli_simulate, "simulate", lambda *a, **k: ran.append(True))
    assert main(_cli(out)) == 2
    err = capsys.readouterr().err
    assert ("is a symbolic link" if case == "symbolic link" else "holds the working directory") in err
    assert ran == []


def test_a_signal_ignored_by_whoever_started_the_run_stays_ignored() -> None:
    from hetero_opt.sim.checkpoint import SignalStop

    old = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a shell's `cmd &` leaves it
    try:
        with SignalStop():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL  # SIGTERM is still caught
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, old)


def test_a_signal_while_the_outputs_are_written_leaves_no_half_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import hetero_opt.cli_simulate as cli_simulate

    out, ckpt = tmp_path / "sim", tmp_path / "sim.checkpoint"
    real = cli_simulate.summary

    def killed(*args: Any, **kwargs: Any) -> Any:
        os.kill(os.getpid(), signal.SIGTERM)  # as `kill` would, while the CSVs are written
        return real(*args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(cli_simulate, "summary", killed)
        assert main(_cli(out, "--checkpoint-every", "0")) == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    assert "interrupted while writing" in err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sim.checkpoint"]  # no half-written folder
    assert main(_cli(out)) == 0  # resumes from the end and writes
    assert (out / "summary.json").exists()
    assert not ckpt.exists()


def test_a_signal_after_the_last_cycle_writes_the_outputs_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # before: exit 0 and nothing said, the signal lost (found by running the README by hand)
    import hetero_opt.cli_simulate as cli_simulate

    out = tmp_path / "sim"
    real = cli_simulate.simulate

    def late(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)  # as `kill` would, after the last cycle boundary
        return result

    monkeypatch.setattr(cli_simulate, "simulate", late)
    assert main(_cli(out)) == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    assert "SIGTERM came after the last control cycle; the outputs are written" in err
    assert "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["cycles.csv", "metrics.prom", "requests.csv", "summary.json"]
    assert not (tmp_path / "sim.checkpoint").exists()


def test_ctrl_c_before_the_loop_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import hetero_opt.cli_simulate as cli_simulate

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt  # as Ctrl-C while a large trace loads

    monkeypatch.setattr(cli_simulate, "load_cli_trace", interrupted)
    assert main(_cli(tmp_path / "sim")) == 130
    err = capsys.readouterr().err
    assert err == "hetero-opt simulate: interrupted (Ctrl-C)\n"


def test_a_checkpoint_inside_the_out_dir_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sim"
    assert main(_cli(out, "--checkpoint", str(out / "ck"))) == 2
    assert "inside --out-dir" in capsys.readouterr().err
    assert not out.exists()


def test_outputs_are_readable_as_the_umask_says_and_leftovers_of_a_killed_run_go(tmp_path: Path) -> None:
    out = tmp_path / "sim"
    stale = tmp_path / ".sim.ab12cd_9"  # what a run killed while writing leaves (mkdtemp's 8 characters)
    stale.mkdir()
    (stale / "cycles.csv").write_text("half\n")
    other = tmp_path / ".sim.keep-me"  # not a name the CLI makes: left alone
    other.mkdir()
    old = os.umask(0o022)
    try:
        assert main(_cli(out)) == 0
    finally:
        os.umask(old)
    assert oct(out.stat().st_mode & 0o777) == oct(0o755)
    assert not stale.exists()
    assert other.exists()


def test_a_mismatch_prints_whole_numbers_in_full() -> None:
    from hetero_opt.sim.checkpoint import differences

    # two seeds %g shows alike (1.23457e+07) must read as the two numbers they are
    assert differences({"seed": 12345678}, {"seed": 12345679}) == ["seed: 12345678 -> 12345679"]
    assert differences({"duration_s": 900.0}, {"duration_s": 1800.0}) == ["duration_s: 900 s -> 1800 s"]
