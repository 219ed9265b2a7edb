"""Fuzz the CLI in-process: raw bytes and mutated bundled instances through ``validate`` and ``solve``.

Every run exits 0 (with plans that pass the verifier) or 2 (one stderr line naming the file,
nothing written); never 1, never a traceback.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from pathlib import Path
from typing import Any

import yaml
from conftest import BUNDLED
from hypothesis import event, given
from hypothesis import strategies as st

from fuzz.budget import fuzz_settings
from fuzz.strategies import byte_mutations, mutations
from hetero_opt import load_instance, verify
from hetero_opt.cli import main
from hetero_opt.placement.result import PlacementResult

RAW = {p.name: p.read_bytes() for p in BUNDLED}
DICTS = {p.name: yaml.safe_load(p.read_text()) for p in BUNDLED}


def run_cli(args: list[str], file: Path, out: Path | None = None) -> int:
    """Run ``hetero-opt args``; assert the exit-code contract; return the code."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(args)
    err = stderr.getvalue()
    event(f"{args[0]} exit {code}")
    assert code in (0, 2), (code, err)
    if code == 2:
        lines = err.splitlines()
        assert len(lines) == 1, lines
        assert lines[0].startswith(f"{file}: "), lines[0]
        assert out is None or not out.exists(), "exit 2 but something was written"
    return code


def _suffix(name: str, as_json: bool) -> str:
    return Path(name).stem + (".json" if as_json else ".yaml")


@fuzz_settings("raw_bytes")
@given(name=st.sampled_from(sorted(RAW)), data=st.data(), as_json=st.booleans())
def test_fuzz_raw_bytes_validate_exits_0_or_2_with_one_line(name: str, data: st.DataObject, as_json: bool) -> None:
    raw = RAW[name] if not as_json else json.dumps(DICTS[name]).encode()
    blob = data.draw(byte_mutations(raw))
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / _suffix(name, as_json)
        file.write_bytes(blob)
        run_cli(["validate", str(file)], file)


@fuzz_settings("cli_mutation")
@given(
    name=st.sampled_from(sorted(DICTS)),
    data=st.data(),
    as_json=st.booleans(),
    solver=st.sampled_from(["greedy", "greedy", "cpsat", "milp"]),
)
def test_fuzz_mutated_instances_solve_exits_0_verified_or_2_writing_nothing(
    name: str, data: st.DataObject, as_json: bool, solver: str
) -> None:
    mutated: dict[str, Any] = data.draw(mutations(DICTS[name]))
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / _suffix(name, as_json)
        try:
            text = json.dumps(mutated) if as_json else yaml.safe_dump(mutated)
        except ValueError:  # e.g. NaN is fine for json.dumps; other unserialisable values are skipped
            return
        file.write_text(text)
        out = Path(tmp) / "out"
        args = ["solve", str(file), "--solver", solver, "--time-limit", "1", "--out-dir", str(out)]
        if run_cli(args, file, out) == 0:
            result = PlacementResult.from_json((out / f"{file.stem}.plan.json").read_text())
            assert verify(load_instance(file), result.plan) == []
