"""Checkpoints of the closed loop: its whole state, written atomically at control-cycle boundaries.

A checkpoint file is a magic line, one JSON header line (checkpoint format, the fingerprint of the
run's inputs, simulated time, cycles done, the payload's length and SHA-256), then the pickled
loop state. The header is read and checked before anything is unpickled: a file of another format,
of other inputs (trace, config, policy, cluster, mode, seed, package versions — any field differs),
torn or altered is refused with an :class:`CheckpointError` naming the file and what differs,
never silently reused. The fingerprint holds the hetero_opt source digest, so the pickled classes
are always the ones that wrote them. A checkpoint is local state: pickle runs code when it loads,
so load only checkpoints this machine wrote.

Writes go to a temporary file in the same folder, are fsynced and renamed over the old checkpoint
(then the folder is fsynced): a kill at any point leaves the previous checkpoint or the new one.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import pickle
import signal
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import pydantic

from hetero_opt.errors import InputError
from hetero_opt.instance import Instance
from hetero_opt.io import replace_synced
from hetero_opt.policy.config import AutoscalerConfig
from hetero_opt.sim.config import SimConfig
from hetero_opt.sim.trace import RateTrace, RequestTrace, Trace

#: Version of the file layout and of the state it holds; a file of another format is refused.
CHECKPOINT_FORMAT = 1
MAGIC = b"hetero-opt simulate checkpoint\n"
#: Default wall seconds between two checkpoints.
DEFAULT_EVERY_S = 30.0
#: Saving may take at most this share of the loop's wall time: after a save of ``d`` seconds the next
#: waits at least ``d / MAX_SAVE_SHARE`` (a state of millions of requests takes seconds to pickle).
MAX_SAVE_SHARE = 0.05
#: Longest header line read (the fingerprint is a few hundred bytes).
MAX_HEADER_BYTES = 1 << 16


class CheckpointError(InputError):
    """A checkpoint that cannot be used: unreadable, of another format, or of other inputs."""


class SimInterrupted(Exception):
    """The run stopped at a cycle boundary on request (``stop``); ``path`` holds its state, if set."""

    def __init__(self, time_s: float, cycles: int, path: Path | None) -> None:
        self.time_s = time_s
        self.cycles = cycles
        self.path = path
        saved = f"state saved to {path}" if path is not None else "no checkpoint configured, state not saved"
        super().__init__(f"stopped at simulated time {time_s:g} s after {cycles} cycles; {saved}")


@dataclass(frozen=True)
class Checkpoint:
    """Where and how often :func:`hetero_opt.sim.loop.simulate` saves its state, and resumes from it.

    Parameters
    ----------
    path
        The checkpoint file. If it exists when the run starts, the run resumes from it (after its
        fingerprint is checked); its folder must exist.
    every_s
        Wall seconds between two saves (0: every cycle); saves are also spaced so they take at most
        :data:`MAX_SAVE_SHARE` of the run. A run stopped through ``stop`` saves at once.
    restart
        Discard an existing checkpoint and start from the beginning.
    inputs
        More fingerprint entries (the CLI adds its files' SHA-256, ``--scale``, ``--duration``).
    remove_on_success
        Delete the file when the run completes (the CLI removes it itself, once its outputs are written).
    on_resume
        Called with the simulated time and cycles done when the run resumes from the file.
    """

    path: Path
    every_s: float = DEFAULT_EVERY_S
    restart: bool = False
    inputs: Mapping[str, Any] = field(default_factory=dict)
    remove_on_success: bool = True
    on_resume: Callable[[float, int], None] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))
        if not (math.isfinite(self.every_s) and self.every_s >= 0):
            raise InputError(f"checkpoint every_s={self.every_s} must be a finite number of seconds >= 0")

    def check_writable(self) -> None:
        """Raise :class:`InputError` now, not after hours, if the checkpoint cannot be written."""
        p = self.path
        if p.is_dir():
            raise InputError(f"checkpoint '{p}': is a folder, not a file")
        folder = p.parent
        if not folder.is_dir():
            raise InputError(f"checkpoint '{p}': folder '{folder}' does not exist")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise InputError(f"checkpoint '{p}': folder '{folder}' is not writable")


def fingerprint(trace: Trace, cfg: SimConfig, policy: AutoscalerConfig, instance: Instance, mode: str,
                inputs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What a run's result depends on, as JSON values: hashes of the inputs, mode, seed, versions."""
    from hetero_opt.batch.manifest import library_versions

    fp: dict[str, Any] = {
        "mode": mode,
        "trace": trace.name,
        "trace_sha256": _trace_digest(trace),
        "duration_s": trace.duration_s,
        "seed": cfg.seed,
        "config_sha256": _sha(cfg.model_dump_json()),
        "policy_sha256": _sha(policy.model_dump_json()),
        "cluster_sha256": _sha(instance.model_dump_json()),
        "numpy": np.__version__,
        "pydantic": pydantic.VERSION,  # the state holds pydantic models
        **{f"{k}_version" if k in ("python", "hetero_opt") else k: v for k, v in library_versions().items()},
    }
    for k, v in (inputs or {}).items():
        fp[k] = v
    out: dict[str, Any] = json.loads(json.dumps(fp))  # as it reads back (tuples become lists)
    return out


class _Pickler(pickle.Pickler):
    """Pickles a numpy float64 scalar as ``np.float64(float)``: the same value and type, ~10x faster
    than numpy's own reduce (dtype and bytes), which took 90 % of pickling the ``cycles.csv`` rows."""

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is np.float64:
            return np.float64, (float(obj),)
        return NotImplemented


def dumps(obj: object) -> bytes:
    """``obj`` pickled as a checkpoint pickles it (read back with :func:`pickle.loads`)."""
    buf = io.BytesIO()
    _Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return buf.getvalue()


def save(path: Path, state: object, fp: Mapping[str, Any], time_s: float, cycles: int) -> None:
    """Write ``state`` to ``path`` atomically: a temporary file, fsync, rename, fsync of the folder."""
    payload = dumps(state)
    header = {
        "format": CHECKPOINT_FORMAT,
        "time_s": time_s,
        "cycles": cycles,
        "payload_bytes": len(payload),
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
        "fingerprint": dict(fp),
    }
    replace_synced(path, MAGIC + json.dumps(header).encode() + b"\n" + payload)


@dataclass(frozen=True)
class Loaded:
    """A checkpoint read back: the state, and the simulated time and cycles it was saved at."""

    state: Any
    time_s: float
    cycles: int


def load(path: Path, fp: Mapping[str, Any], kind: type[object],
         clock: Callable[[Any], tuple[float, int]] | None = None) -> Loaded | None:
    """The state saved in ``path`` (None if there is no file); :class:`CheckpointError` if it cannot be used.

    ``clock`` reads the simulated time and cycles done off the state: a header that says otherwise
    does not belong to its state (the payload's SHA-256 covers the state only) and is refused.
    """
    try:
        with path.open("rb") as f:
            magic = f.read(len(MAGIC))
            if magic != MAGIC:  # another file: not read further, and --restart will not delete it
                raise CheckpointError(f"checkpoint '{path}': not a hetero-opt simulate checkpoint; give "
                                      "--checkpoint (Checkpoint.path) another file") from None
            line = f.readline(MAX_HEADER_BYTES)
            payload = f.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CheckpointError(f"checkpoint '{path}': cannot read ({exc.strerror or type(exc).__name__})"
                              f"{_DISCARD}") from None
    try:
        header = json.loads(line)
    except ValueError:
        header = None
    fmt = header.get("format") if isinstance(header, dict) else None
    if fmt is not None and fmt != CHECKPOINT_FORMAT:  # the format first: a later one may have other fields
        raise CheckpointError(f"checkpoint '{path}': format {fmt!r}, this version reads format "
                              f"{CHECKPOINT_FORMAT}{_DISCARD}")
    try:
        if not isinstance(header, dict) or fmt is None:
            raise ValueError
        old_fp, time_s, cycles = header["fingerprint"], float(header["time_s"]), int(header["cycles"])
        size, digest = int(header["payload_bytes"]), str(header["payload_sha256"])
        if not (math.isfinite(time_s) and time_s >= 0 and cycles >= 0):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise CheckpointError(f"checkpoint '{path}': header is damaged{_DISCARD}") from None
    diff = differences(old_fp, fp) if isinstance(old_fp, dict) else ["fingerprint unreadable"]
    if diff:
        raise CheckpointError(f"checkpoint '{path}' was written by a run with other inputs ({'; '.join(diff)})"
                              f"{_DISCARD}")
    if len(payload) != size or hashlib.sha256(payload).hexdigest() != digest:
        raise CheckpointError(f"checkpoint '{path}': state is damaged ({len(payload)} of {size} bytes, or "
                              f"their SHA-256 differs){_DISCARD}")
    try:
        state = pickle.loads(payload)  # our own file, its SHA-256 checked (see the module docstring)
    except Exception as exc:  # any unpickling failure is an unusable file, not our bug
        raise CheckpointError(f"checkpoint '{path}': state cannot be read ({type(exc).__name__}){_DISCARD}") from None
    if not isinstance(state, kind):
        raise CheckpointError(f"checkpoint '{path}': holds a {type(state).__name__}, not a "
                              f"{kind.__name__}{_DISCARD}")
    if clock is not None:
        held_s, held_cycles = clock(state)
        if (held_s, held_cycles) != (time_s, cycles):
            raise CheckpointError(
                f"checkpoint '{path}': header is damaged (it says simulated time {time_s:g} s, {cycles} control "
                f"cycles; the state holds {held_s:g} s, {held_cycles} cycles){_DISCARD}"
            )
    return Loaded(state, time_s, cycles)


_DISCARD = "; rerun with --restart (restart=True) to discard it and start over"


def is_checkpoint(path: Path) -> bool:
    """True when ``path`` is a file that starts as a checkpoint (False if absent; OSError if unreadable)."""
    try:
        with path.open("rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except FileNotFoundError:
        return False


def discard(path: Path) -> None:
    """Delete the checkpoint at ``path`` (``--restart``): only a file that starts as a checkpoint does."""
    if not path.exists():
        return
    try:
        ours = is_checkpoint(path)
    except OSError as exc:
        raise CheckpointError(f"checkpoint '{path}': cannot read ({exc.strerror or type(exc).__name__})") from None
    if not ours:
        raise CheckpointError(f"checkpoint '{path}': not a hetero-opt simulate checkpoint, not deleted; give "
                              "--checkpoint (Checkpoint.path) another file")
    path.unlink(missing_ok=True)


#: Units of the fingerprint's numbers, as the messages print them.
_UNITS = {"duration_s": "s", "duration": "s"}


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``field: old -> new`` for every fingerprint field that differs, as a user reads them.

    Numbers are printed with ``%g`` and their unit (``duration: 900 s -> 1800 s``; more digits only
    when ``%g`` shows two different values alike), a missing value as ``none``, hashes shortened.
    """
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k, "(none)"), new.get(k, "(none)")
        if a != b:
            exact = _show(k, a) == _show(k, b)
            out.append(f"{k}: {_show(k, a, exact)} -> {_show(k, b, exact)}")
    return out


def _show(key: str, v: Any, exact: bool = False) -> str:
    if v is None:
        return "none"
    if isinstance(v, bool) or not isinstance(v, int | float):
        return _short(v)
    text = str(v) if isinstance(v, int) else repr(v) if exact else f"{v:g}"  # an int in full (a seed)
    return f"{text} {_UNITS[key]}" if key in _UNITS else text


def _short(v: Any) -> str:
    s = v if isinstance(v, str) else json.dumps(v)
    return s[:12] + "..." if len(s) == 64 and all(c in "0123456789abcdef" for c in s) else s


def _sha(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def _trace_digest(trace: Trace) -> str:
    """SHA-256 over the arrays the loop reads (after any scaling or cut), with their dtypes and shapes."""
    h = hashlib.sha256(trace.name.encode())
    arrays: tuple[np.ndarray, ...]
    if isinstance(trace, RequestTrace):
        arrays = (trace.arrival_s, trace.input_tokens, trace.output_tokens)
        if trace.hash_ids is not None:
            h.update(json.dumps(trace.hash_ids).encode())
    else:
        assert isinstance(trace, RateTrace)
        arrays = (trace.start_s, trace.window_s, trace.rate_rps, trace.mean_input, trace.mean_output, trace.gaps)
    for a in arrays:
        c = np.ascontiguousarray(a)
        h.update(f"{c.dtype.str}{c.shape}".encode())
        h.update(c.tobytes())
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1-MiB blocks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class SignalStop:
    """SIGINT and SIGTERM as a request to stop at the next cycle boundary (pass it as ``stop``).

    The first signal sets :attr:`signum`; the run saves its checkpoint and raises
    :class:`SimInterrupted`. A second signal (with ``at_once``, the first) restores the old handlers,
    sets :attr:`second` and raises :class:`KeyboardInterrupt` at once (the last checkpoint written
    stays). Handlers are installed only in the main thread, for the ``with`` block, and not for a
    signal the process ignores (a shell's ``cmd &`` starts it with SIGINT ignored: it stays so).
    """

    def __init__(self, *, at_once: bool = False) -> None:
        self.signum: int | None = None
        self.second: int | None = None  # the signal that stopped the run at once
        self._at_once = at_once
        self._old: dict[int, Any] = {}

    def __call__(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None or self._at_once:
            self._restore()
            self.second = signum
            raise KeyboardInterrupt
        self.signum = signum

    def _restore(self) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old = {}

    def __enter__(self) -> SignalStop:
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                if signal.getsignal(s) is signal.SIG_IGN:  # ignored by whoever started us: kept so
                    continue
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        self._restore()

