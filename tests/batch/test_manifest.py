"""The manifest: what counts as done, torn lines after a kill, the folder lock."""

from __future__ import annotations

from pathlib import Path

import pytest

from hetero_opt.batch.manifest import MANIFEST_NAME, Entry, Manifest, library_versions, sha256_file
from hetero_opt.errors import InputError

INPUTS = {"instance_sha256": "ab", "seed": 0, "shape": (1, 2)}


def _write(out: Path, key: str) -> Entry:
    (out / f"{key}.txt").write_text(key)
    return Entry(key, INPUTS, "done", {"row": key}, files={f"{key}.txt": sha256_file(out / f"{key}.txt")})


def test_done_needs_same_inputs_and_intact_files(tmp_path: Path) -> None:
    with Manifest(tmp_path) as m:
        m.add(_write(tmp_path, "a"))
        m.add(_write(tmp_path, "b"))
        m.add(Entry("c", INPUTS, "failed", error="boom"))
    m = Manifest(tmp_path, write=False)
    assert m.done("a", INPUTS) is not None  # the tuple compares equal to the list it reads back as
    assert m.done("a", INPUTS | {"seed": 1}) is None
    assert m.done("c", INPUTS) is None  # failed tasks run again
    (tmp_path / "b.txt").write_text("changed")
    assert m.done("b", INPUTS) is None
    (tmp_path / "a.txt").unlink()
    assert m.done("a", INPUTS) is None


def test_torn_last_line_is_dropped_and_compacted(tmp_path: Path) -> None:
    with Manifest(tmp_path) as m:
        m.add(_write(tmp_path, "a"))
        m.add(_write(tmp_path, "a"))  # superseded
    path = tmp_path / MANIFEST_NAME
    path.write_text(path.read_text() + '{"key": "b", "inp')  # killed mid-write
    with Manifest(tmp_path) as m:
        assert set(m.entries) == {"a"}
        assert path.read_text().count("\n") == 1
        m.add(_write(tmp_path, "b"))
    assert set(Manifest(tmp_path, write=False).entries) == {"a", "b"}


def test_one_batch_per_folder(tmp_path: Path) -> None:
    with Manifest(tmp_path), pytest.raises(InputError, match="another batch is writing to this folder"):
        Manifest(tmp_path)
    Manifest(tmp_path).close()  # released


def test_read_only_creates_nothing(tmp_path: Path) -> None:
    assert Manifest(tmp_path / "new", write=False).entries == {}
    assert not (tmp_path / "new").exists()


def test_library_versions_name_the_solvers() -> None:
    versions = library_versions()
    assert {"python", "hetero_opt", "ortools", "pulp", "highspy"} <= set(versions)
    assert "+" in versions["hetero_opt"]  # version + digest of the source
