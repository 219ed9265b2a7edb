"""The command line's arguments and outputs: checked before any work, each error naming its flag.

The promise (README, ``docs/instance-format.md``): bad input gets exit 2 and one stderr line naming
the flag and the value, with nothing written and no input touched; an error names the user's path,
never a temporary file.
"""

from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import INSTANCES_DIR, failing_write, refused

import hetero_opt as ho
from hetero_opt.bench import run_suite
from hetero_opt.cli import main
from hetero_opt.errors import InputError
from hetero_opt.io import write_all_atomic, write_atomic

AUTOSCALE = INSTANCES_DIR / "autoscale"
K8S_NODES = Path(__file__).resolve().parent / "adapters" / "data" / "nodes-example.json"
TRACE = INSTANCES_DIR / "traces" / "azure_llm_2023_code.csv"
TWO = [INSTANCES_DIR / "s1_affinity.yaml", INSTANCES_DIR / "tier_preference.yaml"]


def _refused(capsys: pytest.CaptureFixture[str], args: list[str], *needles: str) -> str:
    """Run the CLI; assert exit 2, nothing on stdout and one stderr line holding every needle."""
    return refused(capsys, args, *needles, quiet=True)


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# -------------------------------------------------------------------- bench --solvers


@pytest.mark.parametrize("solvers", ["", ",", " , "])
def test_bench_naming_no_solver_is_refused_before_the_suite_runs(
    solvers: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("hetero_opt.bench.bench_instance", lambda task: pytest.fail("the suite ran"))
    _refused(capsys, ["bench", "tiny", "--solvers", solvers],
             f"--solvers={solvers!r} names no solver (one or more of greedy, cpsat, milp, milp-cbc)")


def test_run_suite_without_solvers_raises_input_error() -> None:
    with pytest.raises(InputError, match="names no solver"):
        run_suite("tiny", solvers=(), progress=False)


# -------------------------------------------------------------------- --export-model


@pytest.mark.parametrize("solver", ["cpsat", "milp"])
def test_export_model_to_a_missing_folder_is_refused_before_solving(
    solver: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # before: cpsat exited 0 without the model; milp's plan silently became the greedy's fallback
    missing = tmp_path / "nonexist"
    out = tmp_path / "out"
    _refused(capsys, ["solve", str(TWO[1]), "--solver", solver, "--out-dir", str(out),
                      "--export-model", str(missing / "model")],
             f"--export-model='{missing / 'model'}': folder '{missing}' does not exist")
    assert not out.exists()


def test_export_model_to_an_existing_folder_writes_the_model(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    args = ["solve", str(TWO[1]), "--solver", "milp", "--out-dir", str(tmp_path / "out"),
            "--export-model", str(tmp_path / "models") + "/"]
    assert main(args) == 0
    assert (tmp_path / "models" / ".mps").stat().st_size > 0


def test_library_solve_refuses_an_export_prefix_it_cannot_write(tmp_path: Path) -> None:
    inst = ho.load_instance(TWO[1])
    with pytest.raises(InputError, match=f"export_model='{tmp_path}/no/m': folder '{tmp_path}/no' does not exist"):
        ho.solve(inst, "milp", export_model=str(tmp_path / "no" / "m"))


def test_export_model_with_the_greedy_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # before: exit 0 and no model (the greedy, the default solver, has none), nothing said
    out = tmp_path / "out"
    _refused(capsys, ["solve", str(TWO[1]), "--out-dir", str(out), "--export-model", str(tmp_path / "m")],
             f"--export-model='{tmp_path / 'm'}': the greedy has no solver model to export")
    assert not out.exists()
    with pytest.raises(InputError, match="the greedy has no solver model to export"):
        ho.solve(ho.load_instance(TWO[1]), "greedy", export_model=str(tmp_path / "m"))


# -------------------------------------------------------------------- an output that is an input


def _autoscale(metrics: Path, state_out: Path | str) -> list[str]:
    return ["autoscale", "--config", str(AUTOSCALE / "policy.yaml"), "--instance", str(AUTOSCALE / "cluster.yaml"),
            "--metrics", str(metrics), "--state-out", str(state_out)]


def test_import_out_that_is_the_nodes_input_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nodes = tmp_path / "n.json"
    shutil.copy(K8S_NODES, nodes)
    before = nodes.read_bytes()
    _refused(capsys, ["import", "k8s", "--nodes", str(nodes), "--preset", "gke", "--out", str(nodes)],
             f"--out '{nodes}' is the --nodes input")
    link = tmp_path / "link.json"
    link.symlink_to(nodes)
    _refused(capsys, ["import", "k8s", "--nodes", str(nodes), "--preset", "gke", "--out", str(link)],
             f"--out '{link}' is the --nodes input")
    assert nodes.read_bytes() == before


def test_export_out_that_is_the_plan_input_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["solve", str(TWO[1]), "--out-dir", str(tmp_path)]) == 0
    plan = tmp_path / "tier_preference.plan.json"
    before = plan.read_bytes()
    capsys.readouterr()
    _refused(capsys, ["export", "k8s", "--plan", str(plan), "--instance", str(TWO[1]), "--format", "lws",
                      "--out", str(tmp_path / "." / plan.name)],
             "is the --plan input")
    assert plan.read_bytes() == before


def test_autoscale_state_out_that_is_the_metrics_input_is_refused_before_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = tmp_path / "m.csv"
    shutil.copy(AUTOSCALE / "metrics.csv", metrics)
    _refused(capsys, _autoscale(metrics, metrics), f"--state-out '{metrics}' is the --metrics input")
    assert metrics.read_bytes() == (AUTOSCALE / "metrics.csv").read_bytes()


def test_autoscale_state_out_in_a_missing_folder_is_refused_before_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # before: the whole decisions table was printed, then the write failed
    _refused(capsys, _autoscale(AUTOSCALE / "metrics.csv", tmp_path / "no" / "s.json"),
             f"--state-out '{tmp_path / 'no' / 's.json'}': folder '{tmp_path / 'no'}' does not exist")


@pytest.mark.parametrize(
    ("flag", "value", "needle"),
    [
        ("--time-limit", "-1", "--time-limit=-1.0 must be positive and finite, at most 86400 s"),
        ("--startup-delay", "nan", "--startup-delay=nan must be a finite number of seconds in 0..1e+09"),
    ],
)
def test_autoscale_numbers_are_refused_naming_the_flag_before_the_inputs_are_read(
    flag: str, value: str, needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # before: 'solve: time_limit=-1.0 ...' or 'Autoscaler: startup_delay_s=nan ...', once the inputs were read
    _refused(capsys, [*_autoscale(tmp_path / "missing.csv", tmp_path / "s.json"), flag, value], needle)


def test_solve_out_dir_that_is_an_input_folder_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # before: it worked once, then every rerun (the way to resume) read its own plans as instances
    folder = tmp_path / "in"
    folder.mkdir()
    for f in TWO:
        shutil.copy(f, folder)
    for spelled in (folder, tmp_path / "in" / ".." / "in"):
        _refused(capsys, ["solve", str(folder), "--out-dir", str(spelled)], "is the input folder", "another folder")
    assert _tree(folder) == ["s1_affinity.yaml", "tier_preference.yaml"]


def test_solve_out_dir_below_an_input_folder_resumes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for f in TWO:
        shutil.copy(f, folder)
    args = ["solve", str(folder), "--out-dir", str(folder / "plans")]
    assert main(args) == 0
    assert main(args) == 0
    assert "2 of 2 instances were done before" in capsys.readouterr().out


def test_solve_plan_that_would_overwrite_an_input_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, a_plan = tmp_path / "a.yaml", tmp_path / "a.plan.json"
    shutil.copy(TWO[0], a)
    a_plan.write_text(ho.load_instance(TWO[1]).model_dump_json())
    before = a_plan.read_bytes()
    _refused(capsys, ["solve", str(a), str(a_plan), "--out-dir", str(tmp_path)],
             f"the output '{a_plan}' would overwrite the input '{a_plan}'")
    assert a_plan.read_bytes() == before


# -------------------------------------------------------------------- writes that cannot happen


@pytest.mark.parametrize("blocked", ["tier_preference.plan.json", "summary.csv", "manifest.jsonl"])
def test_solve_with_a_folder_in_place_of_an_output_writes_nothing(
    blocked: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # before: exit 2 after the first plan (or both) and the manifest were written
    (tmp_path / blocked).mkdir()
    _refused(capsys, ["solve", *map(str, TWO), "--out-dir", str(tmp_path)],
             f"--out-dir '{tmp_path}': '{tmp_path / blocked}' is a folder")
    assert _tree(tmp_path) == [blocked]


def test_solve_plan_write_failing_mid_batch_keeps_earlier_plans_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Resumable batches (docs/distributed.md): what is solved is kept, as after a kill, and the error says so.
    failing_write(monkeypatch, "tier_preference.plan.json", OSError(28, "No space left on device"))
    args = ["solve", *map(str, TWO), "--out-dir", str(tmp_path)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err == (f"{tmp_path / 'tier_preference.plan.json'}: cannot write (No space left on device); plans written "
                   "before it are kept, each with its manifest line: the same command again solves the rest\n")
    assert _tree(tmp_path) == ["manifest.jsonl", "s1_affinity.plan.json"]
    monkeypatch.undo()
    assert main(args) == 0
    assert "1 of 2 instances were done before" in capsys.readouterr().out


def test_atomic_write_names_the_users_path_not_its_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "nofolder" / "g.json"
    with pytest.raises(InputError) as err:
        write_atomic(target, "{}")
    assert str(err.value) == f"{target}: cannot write (No such file or directory)"
    (tmp_path / "d.json").mkdir()
    with pytest.raises(InputError, match=r"d\.json: cannot write \(a folder is in its place\)$"):
        write_atomic(tmp_path / "d.json", "{}")
    assert _tree(tmp_path) == ["d.json"]


def test_generate_into_a_missing_folder_is_refused_naming_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "nofolder" / "g.json"
    _refused(capsys, ["generate", "--family", "tiny", "--out", str(out)],
             f"--out '{out}': folder '{out.parent}' does not exist")


def test_a_file_where_a_folder_is_needed_is_refused_naming_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # before: "F: File exists" (or a traceback of the service), no flag named
    f = tmp_path / "F"
    f.write_text("x")
    _refused(capsys, ["bench", "tiny", "--out-dir", str(f)], f"--out-dir '{f}': is a file, not a folder")
    _refused(capsys, ["serve", "--config", str(AUTOSCALE / "serve.yaml"), "--state-dir", str(f)],
             f"--state-dir '{f}': is a file, not a folder")
    _refused(capsys, ["curate", "--model", "llama3-70b", "--gpu", "H20", "--trace", str(TRACE),
                      "--out", str(f / "x.yaml")],
             f"--out '{f / 'x.yaml'}': '{f}' is a file, not a folder")
    assert f.read_text() == "x"
    assert os.listdir(tmp_path) == ["F"]


def test_atomic_write_is_on_disk_in_a_file_of_the_usual_mode_and_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    old = os.umask(0o022)
    try:
        write_atomic(tmp_path / "plan.json", "{}")
    finally:
        os.umask(old)
    assert (tmp_path / "plan.json").read_text() == "{}"
    assert (tmp_path / "plan.json").stat().st_mode & 0o777 == 0o644  # as open() makes it, not mkstemp's 0600
    assert len(synced) == 2  # the file before its rename, then the folder holding the rename
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json"]


def test_atomic_writes_of_one_file_from_threads_never_mix_or_fail(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    texts = [json.dumps({"writer": i, "pad": "x" * 20_000}) for i in range(8)]
    with ThreadPoolExecutor(8) as pool:  # one shared temporary name made the writers rename each other's file
        list(pool.map(lambda text: [write_atomic(target, text) for _ in range(20)], texts))
    assert target.read_text() in texts
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_an_interrupted_atomic_write_leaves_the_old_file_and_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text("old")
    real_replace = Path.replace

    def interrupted(self: Path, target: Path) -> Path:
        if Path(target) == b:
            raise KeyboardInterrupt
        return real_replace(self, target)

    monkeypatch.setattr(Path, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_all_atomic({b: "new b", a: "new a"})
    assert a.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
