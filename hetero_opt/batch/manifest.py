"""The manifest of a resumable batch: one JSON line per finished task in ``OUT/manifest.jsonl``.

A line records the task's key, its inputs (instance hash, solver, seed, time limit, library
versions, ...), its status, the files it wrote with their SHA-256, and its record (summary rows).
A task counts as done on a re-run when its last line has the same inputs, status ``done``, and
every file it wrote is still there with the same hash. Lines are appended after the files are
written (atomically), so a batch killed at any point leaves either a complete task or none: a torn
last line is dropped and the manifest compacted when it is next opened. The output folder is
locked (``flock``) while a batch holds it open.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import platform
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from hetero_opt.errors import InputError
from hetero_opt.io import write_atomic

MANIFEST_NAME = "manifest.jsonl"
Status = Literal["done", "failed"]


@dataclass(frozen=True)
class Entry:
    """One finished task: ``done`` (its files are written) or ``failed`` (to run again next time)."""

    key: str
    inputs: dict[str, Any]
    status: Status
    record: Any = None
    files: dict[str, str] = field(default_factory=dict)
    error: str = ""


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


@functools.cache
def library_versions() -> dict[str, str]:
    """Versions that can change a plan: Python, hetero_opt (with a digest of its source and data), solvers."""
    import hetero_opt

    package = Path(hetero_opt.__file__).parent
    digest = hashlib.sha256()
    # Sources and package data (performance figures, profiles): either can change a plan or a simulation.
    files = (f for f in package.rglob("*") if f.is_file() and "__pycache__" not in f.parts and f.suffix != ".pyc")
    for f in sorted(files):
        digest.update(f.relative_to(package).as_posix().encode())
        digest.update(f.read_bytes())
    versions = {
        "python": platform.python_version(),
        "hetero_opt": f"{hetero_opt.__version__}+{digest.hexdigest()[:12]}",
    }
    for dist in ("ortools", "pulp", "highspy"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "missing"
    return versions


class Manifest:
    """Entries by key; on disk in ``out_dir/manifest.jsonl`` (``out_dir=None``: in memory only).

    ``write=False`` only reads what is there: no folder is created, locked or rewritten.
    """

    def __init__(self, out_dir: Path | None = None, *, write: bool = True) -> None:
        self.out_dir = out_dir
        self.entries: dict[str, Entry] = {}
        self._file: Any = None
        self._lock_fd: int | None = None
        if out_dir is None:
            return
        if write:
            self._lock(out_dir)
        path = out_dir / MANIFEST_NAME
        lines = path.read_text().splitlines() if path.exists() else []
        for line in lines:
            try:
                entry = Entry(**json.loads(line))
            except (ValueError, TypeError):
                continue  # a line torn by a kill mid-write: its task runs again
            self.entries[entry.key] = entry
        if write:
            if len(self.entries) != len(lines):  # torn or superseded lines: rewrite once, compacted
                write_atomic(path, "".join(_line(e) for e in self.entries.values()))
            self._file = path.open("a")

    @property
    def path(self) -> Path | None:
        """The manifest file, if on disk."""
        return None if self.out_dir is None else self.out_dir / MANIFEST_NAME

    def done(self, key: str, inputs: dict[str, Any]) -> Entry | None:
        """The entry of ``key`` if it is done with these ``inputs`` and its files are intact."""
        entry = self.entries.get(key)
        if entry is None or entry.status != "done" or entry.inputs != _jsonable(inputs):
            return None
        for name, digest in entry.files.items():
            f = self._dir / name
            if not f.is_file() or sha256_file(f) != digest:
                return None
        return entry

    def add(self, entry: Entry) -> None:
        """Record ``entry`` (after its files are written): appended as one line, then kept."""
        entry = Entry(**_jsonable(asdict(entry)))
        if self._file is not None:
            self._file.write(_line(entry))
            self._file.flush()
        self.entries[entry.key] = entry

    def close(self) -> None:
        """Close the file and release the folder's lock."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Manifest:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def _dir(self) -> Path:
        return self.out_dir if self.out_dir is not None else Path(".")

    def _lock(self, out_dir: Path) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(out_dir, os.O_RDONLY)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.close()
            raise InputError(f"--out-dir='{out_dir}': another batch is writing to this folder") from None


def _line(entry: Entry) -> str:
    return json.dumps(asdict(entry)) + "\n"  # key order kept: it is the column order of tables


def _jsonable(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists), so comparisons hold across runs."""
    return json.loads(json.dumps(value))
