"""Resumable, reproducible ``hetero-opt solve`` batches: in-process vs Ray, kill -9, a killed Ray worker."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from batch.helpers import FOLDER_INSTANCES, descendants, plans, summary
from hetero_opt.batch.executor import InProcessExecutor
from hetero_opt.batch.manifest import MANIFEST_NAME
from hetero_opt.batch.ray_executor import RayExecutor
from hetero_opt.batch.solve_batch import SolveSettings, solve_batch
from hetero_opt.cli import collect_instance_files, main
from hetero_opt.errors import InputError

# One CPU per task: two Ray tasks run side by side on the 2-CPU instance. CP-SAT proves these
# instances optimal in a few ms; the 10 s limit keeps the wall-clock safety net (which would make
# plans depend on load, e.g. while a killed worker's replacement starts) far away.
SETTINGS = SolveSettings(solver="cpsat", time_limit=10.0, seed=0, workers=1)
CLI_ARGS = ["--solver", "cpsat", "--time-limit", "10", "--seed", "0", "--workers", "1"]


@pytest.fixture(scope="module")
def reference(instance_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted in-process batch every other run must match."""
    out = tmp_path_factory.mktemp("reference")
    report = solve_batch(
        collect_instance_files([str(instance_dir)]), SETTINGS, out, InProcessExecutor(), progress=False
    )
    assert (report.failures, report.solved, report.skipped) == ([], len(FOLDER_INSTANCES), 0)
    return out


def test_rerun_skips_what_is_done(reference: Path, instance_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    files = collect_instance_files([str(instance_dir)])
    report = solve_batch(files, SETTINGS, out, InProcessExecutor(), progress=False)
    assert (report.solved, report.skipped) == (0, len(files))
    assert (out / "summary.csv").read_text() == (reference / "summary.csv").read_text()  # wall times too
    changed = SolveSettings(solver="cpsat", time_limit=10.0, seed=1, workers=1)  # another seed is another input
    assert solve_batch(files[:1], changed, out, InProcessExecutor(), progress=False).solved == 1


def test_ray_plans_equal_in_process_plans(
    reference: Path, instance_dir: Path, ray_executor: RayExecutor, tmp_path: Path
) -> None:
    files = collect_instance_files([str(instance_dir)])
    report = solve_batch(files, SETTINGS, tmp_path, ray_executor, progress=False)
    assert report.failures == []
    assert plans(tmp_path) == plans(reference)
    assert summary(tmp_path) == summary(reference)
    # the summary's wall time is the one each plan file recorded
    recorded = {name.removesuffix(".plan.json"): p for name, p in _wall_times(tmp_path).items()}
    assert {r["instance"]: float(r["wall_time_s"]) for r in summary(tmp_path, timing=True)} == recorded


def test_batch_killed_mid_run_resumes_to_the_same_result(reference: Path, instance_dir: Path, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "hetero_opt", "solve", str(instance_dir), "--out-dir", str(tmp_path), *CLI_ARGS]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = tmp_path / MANIFEST_NAME
    deadline = time.monotonic() + 60
    while _lines(manifest) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    kept = _lines(manifest)
    assert 3 <= kept < len(FOLDER_INSTANCES), "the batch must be killed mid-run"
    before = _wall_times(tmp_path)
    assert main(["solve", str(instance_dir), "--out-dir", str(tmp_path), *CLI_ARGS]) == 0
    assert plans(tmp_path) == plans(reference)
    assert summary(tmp_path) == summary(reference)
    after = _wall_times(tmp_path)
    assert {k: after[k] for k in before} == before  # plans written before the kill were kept, not solved again
    assert _lines(manifest) == len(FOLDER_INSTANCES)  # one line per plan: none lost, none duplicated
    assert not list(tmp_path.glob("*.tmp"))


def test_killed_ray_worker_is_retried_to_the_same_result(
    reference: Path, instance_dir: Path, ray_executor: RayExecutor, tmp_path: Path
) -> None:
    files = collect_instance_files([str(instance_dir)])
    reports = []
    batch = threading.Thread(
        target=lambda: reports.append(solve_batch(files, SETTINGS, tmp_path, ray_executor, progress=False))
    )
    batch.start()
    killed = None
    while killed is None and batch.is_alive():
        if _lines(tmp_path / MANIFEST_NAME) < 1:  # validation pass still on: wait for the solving pass
            time.sleep(0.002)
            continue
        for pid in descendants(os.getpid()):  # only our own Ray instance's workers
            try:
                title = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if title.startswith(b"ray::call_captured"):  # a worker running a task (Ray's process title)
                os.kill(pid, signal.SIGKILL)
                killed = pid
                break
        time.sleep(0.002)
    batch.join()
    assert killed is not None, "no Ray worker was found solving, to kill"
    assert reports[0].failures == []
    assert plans(tmp_path) == plans(reference)
    assert summary(tmp_path) == summary(reference)


def test_address_needs_the_ray_executor(instance_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["solve", str(instance_dir), "--out-dir", str(tmp_path / "o"), "--address", "auto"]
    assert main(args) == 2
    assert "--address='auto' needs --executor ray" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def _lines(manifest: Path) -> int:
    return manifest.read_text().count("\n") if manifest.exists() else 0


def _wall_times(out_dir: Path) -> dict[str, float]:
    import json

    return {p.name: round(json.loads(p.read_text())["wall_time_s"], 4) for p in out_dir.glob("*.plan.json")}


def test_a_failing_task_is_reported_and_solved_again_next_time(
    reference: Path, instance_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    (f,) = collect_instance_files([str(instance_dir / "tiny-0.json")])
    changed = SolveSettings(solver="cpsat", time_limit=10.0, seed=2, workers=1)

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("solver crashed")

    monkeypatch.setattr("hetero_opt.batch.solve_batch.solve", crash)
    report = solve_batch([f], changed, out, InProcessExecutor(), progress=False)
    assert report.failures == [f"{f}: task failed: RuntimeError: solver crashed"]
    assert summary(out)[0]["status"] == "error"
    assert not (out / "tiny-0.plan.json").exists()  # the plan of other inputs is not left behind as this one
    monkeypatch.undo()
    assert solve_batch([f], changed, out, InProcessExecutor(), progress=False).solved == 1
    assert (out / "tiny-0.plan.json").exists()


def test_a_bad_input_stops_the_batch_before_any_plan(
    instance_dir: Path, ray_executor: RayExecutor, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    shutil.copytree(instance_dir, folder)
    bad = folder / "tiny-2.json"
    bad.write_text(bad.read_text().replace('"gpus_free": 8', '"gpus_free": 9', 1))
    files = collect_instance_files([str(folder)])
    for executor in (InProcessExecutor(), ray_executor):  # workers validate: the message is the same
        with pytest.raises(InputError, match=r"tiny-2\.json: Node '.*': gpus_free=9 exceeds gpus_total=8"):
            solve_batch(files, SETTINGS, tmp_path / executor.name, executor, progress=False)
        assert not (tmp_path / executor.name).exists()


def test_cli_executor_flag(reference: Path, instance_dir: Path, ray_executor: RayExecutor, tmp_path: Path) -> None:
    # Ray is up (fixture): the CLI's executor joins it and leaves it running
    assert main(["solve", str(instance_dir), "--out-dir", str(tmp_path), *CLI_ARGS, "--executor", "ray"]) == 0
    assert plans(tmp_path) == plans(reference)
    assert summary(tmp_path) == summary(reference)
