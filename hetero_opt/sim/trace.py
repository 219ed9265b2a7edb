"""Request and rate traces the simulator replays.

Three formats, told apart by their columns/fields:

- Azure LLM inference 2023 CSV (``TIMESTAMP, ContextTokens, GeneratedTokens``): one request a row.
- Mooncake JSONL (``timestamp`` ms, ``input_length``, ``output_length``, ``hash_ids``): one request
  a line; ``hash_ids`` are 512-token prefix blocks, turned into cache hits by :func:`prefix_hits`.
- ServeGen rate CSV (``servegen_2025_rate_10min.csv``): one window per model, for fluid mode.

Every error names the file, the row and the field.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from hetero_opt.errors import InputError

AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
SERVEGEN_COLUMNS = (
    "category",
    "model",
    "window_start_s",
    "window_s",
    "is_gap",
    "rate_rps",
    "active_clients",
    "mean_input_tokens",
    "mean_output_tokens",
    "input_tokens_per_s",
    "output_tokens_per_s",
    "token_coverage",
)
MOONCAKE_FIELDS = frozenset({"timestamp", "input_length", "output_length", "hash_ids"})
#: Tokens per Mooncake prefix block (kvcache-ai/Mooncake FAST25-release README).
MOONCAKE_BLOCK_TOKENS = 512


@dataclass(frozen=True)
class RequestTrace:
    """Requests sorted by arrival: times (s from the first), prompt and output tokens, prefix blocks."""

    name: str
    arrival_s: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    hash_ids: tuple[tuple[int, ...], ...] | None = None

    @property
    def num_requests(self) -> int:
        """Requests in the trace."""
        return int(self.arrival_s.size)

    @property
    def duration_s(self) -> float:
        """Time of the last arrival."""
        return float(self.arrival_s[-1]) if self.arrival_s.size else 0.0


@dataclass(frozen=True)
class RateTrace:
    """Windows of one model: start (s), length (s), rate (req/s), mean prompt and output tokens."""

    name: str
    start_s: np.ndarray
    window_s: np.ndarray
    rate_rps: np.ndarray
    mean_input: np.ndarray
    mean_output: np.ndarray
    gaps: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    @property
    def duration_s(self) -> float:
        """End of the last window."""
        return float(self.start_s[-1] + self.window_s[-1]) if self.start_s.size else 0.0


Trace = RequestTrace | RateTrace


def load_trace(path: str | Path, *, model: str = "m-large") -> Trace:
    """Read any supported trace; ``model`` picks the ServeGen model."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such trace file")
    if p.suffix.lower() == ".jsonl":
        return _load_mooncake(p)
    try:
        df = pd.read_csv(p)
    except (OSError, ValueError) as exc:
        raise InputError(f"{p}: cannot read trace CSV ({' '.join(str(exc).split())})") from None
    cols = tuple(str(c) for c in df.columns)
    if set(AZURE_COLUMNS) <= set(cols):
        _unknown(p, cols, AZURE_COLUMNS)
        return _azure(p, df)
    if set(SERVEGEN_COLUMNS) <= set(cols):
        _unknown(p, cols, SERVEGEN_COLUMNS)
        return _servegen(p, df, model)
    raise InputError(
        f"{p}: columns={list(cols)} are neither Azure {list(AZURE_COLUMNS)} nor ServeGen rate columns"
    )


def _unknown(p: Path, cols: tuple[str, ...], known: tuple[str, ...]) -> None:
    extra = [c for c in cols if c not in known]
    if extra:
        raise InputError(f"{p}: column='{extra[0]}' is unknown (expected {list(known)})")


def _check_lengths(p: Path, name: str, values: np.ndarray, minimum: int) -> None:
    bad = np.flatnonzero(~(values >= minimum))
    if bad.size:
        i = int(bad[0])
        raise InputError(f"{p}: row {i + 1}: {name}={values[i]} must be at least {minimum}")


def _check_times(p: Path, name: str, t: np.ndarray) -> None:
    if np.isnan(t).any():
        i = int(np.flatnonzero(np.isnan(t))[0])
        raise InputError(f"{p}: row {i + 1}: {name} is missing")
    back = np.flatnonzero(np.diff(t) < 0)
    if back.size:
        i = int(back[0]) + 1
        raise InputError(f"{p}: row {i + 1}: {name} goes back in time ({t[i]} after {t[i - 1]})")


def _azure(p: Path, df: pd.DataFrame) -> RequestTrace:
    try:
        ts = pd.to_datetime(df["TIMESTAMP"], format="mixed")
    except (ValueError, TypeError) as exc:
        raise InputError(f"{p}: TIMESTAMP: cannot parse ({' '.join(str(exc).split())[:80]})") from None
    t = (ts - ts.iloc[0]).dt.total_seconds().to_numpy(dtype=float)
    _check_times(p, "TIMESTAMP", t)
    inp = pd.to_numeric(df["ContextTokens"], errors="coerce").to_numpy(dtype=float)
    out = pd.to_numeric(df["GeneratedTokens"], errors="coerce").to_numpy(dtype=float)
    _check_lengths(p, "ContextTokens", inp, 1)
    _check_lengths(p, "GeneratedTokens", out, 1)
    return RequestTrace(p.stem, t, inp.astype(np.int64), out.astype(np.int64))


def _load_mooncake(p: Path) -> RequestTrace:
    times: list[float] = []
    inp: list[int] = []
    out: list[int] = []
    hashes: list[tuple[int, ...]] = []
    with p.open(encoding="utf-8") as f:
        for i, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{p}: line {i}: not JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise InputError(f"{p}: line {i}: not a JSON object")
            extra = sorted(set(row) - MOONCAKE_FIELDS)
            if extra:
                raise InputError(f"{p}: line {i}: field='{extra[0]}' is unknown (expected {sorted(MOONCAKE_FIELDS)})")
            for k in ("timestamp", "input_length", "output_length"):
                v = row.get(k)
                if not isinstance(v, int | float) or isinstance(v, bool):
                    raise InputError(f"{p}: line {i}: {k}={v!r} must be a number")
            times.append(float(row["timestamp"]) / 1000.0)
            inp.append(int(row["input_length"]))
            out.append(int(row["output_length"]))
            hashes.append(tuple(int(h) for h in row.get("hash_ids", [])))
    t = np.asarray(times, dtype=float)
    _check_times(p, "timestamp", t)
    ia, oa = np.asarray(inp, dtype=np.int64), np.asarray(out, dtype=np.int64)
    _check_lengths(p, "input_length", ia, 1)
    _check_lengths(p, "output_length", oa, 1)
    return RequestTrace(p.stem, t - (t[0] if t.size else 0.0), ia, oa, tuple(hashes))


def _servegen(p: Path, df: pd.DataFrame, model: str) -> RateTrace:
    sel = df[df["model"] == model]
    if sel.empty:
        raise InputError(f"{p}: model='{model}' has no rows (models: {sorted(df['model'].unique())})")
    start = sel["window_start_s"].to_numpy(dtype=float)
    _check_times(p, "window_start_s", start)
    rate = sel["rate_rps"].to_numpy(dtype=float)
    _check_lengths(p, "rate_rps", rate, 0)
    gaps = sel["is_gap"].to_numpy(dtype=int) == 1
    mean_in = sel["mean_input_tokens"].to_numpy(dtype=float)
    mean_out = sel["mean_output_tokens"].to_numpy(dtype=float)
    # gap windows carry no lengths: treat as missing and hold the last known mix
    mean_in = pd.Series(mean_in).ffill().bfill().to_numpy(dtype=float)
    mean_out = pd.Series(mean_out).ffill().bfill().to_numpy(dtype=float)
    return RateTrace(
        f"{p.stem}:{model}", start - start[0], sel["window_s"].to_numpy(dtype=float), rate, mean_in, mean_out, gaps
    )


def scale_trace(trace: RequestTrace, factor: int, seed: int) -> RequestTrace:
    """``factor`` superposed copies, each shifted by a random offset (circular over the duration)."""
    if factor < 1:
        raise InputError(f"scale={factor} must be at least 1")
    if factor == 1:
        return trace
    rng = np.random.default_rng(seed)
    span = max(trace.duration_s, 1e-9)
    parts_t, parts_i, parts_o = [], [], []
    parts_h: list[tuple[int, ...]] = []
    for k in range(factor):
        shift = 0.0 if k == 0 else float(rng.uniform(0, span))
        parts_t.append((trace.arrival_s + shift) % span if k else trace.arrival_s)
        parts_i.append(trace.input_tokens)
        parts_o.append(trace.output_tokens)
        if trace.hash_ids is not None:
            parts_h.extend(trace.hash_ids)
    t = np.concatenate(parts_t)
    order = np.argsort(t, kind="stable")
    hashes = tuple(parts_h[i] for i in order) if trace.hash_ids is not None else None
    return RequestTrace(
        f"{trace.name}x{factor}", t[order], np.concatenate(parts_i)[order], np.concatenate(parts_o)[order], hashes
    )


def cut_trace(trace: RequestTrace, duration_s: float) -> RequestTrace:
    """The requests arriving in ``[0, duration_s)``."""
    keep = trace.arrival_s < duration_s
    n = int(keep.sum())
    hashes = trace.hash_ids[:n] if trace.hash_ids is not None else None
    return RequestTrace(trace.name, trace.arrival_s[:n], trace.input_tokens[:n], trace.output_tokens[:n], hashes)


def requests_from_rates(trace: RateTrace, seed: int) -> RequestTrace:
    """Poisson arrivals per window; prompt/output lengths geometric around the window's means."""
    rng = np.random.default_rng(seed)
    ts, ins, outs = [], [], []
    for s, w, r, mi, mo in zip(trace.start_s, trace.window_s, trace.rate_rps, trace.mean_input, trace.mean_output,
                               strict=True):
        n = int(rng.poisson(r * w))
        ts.append(np.sort(rng.uniform(s, s + w, n)))
        ins.append(rng.geometric(1.0 / max(mi, 1.0), n))
        outs.append(rng.geometric(1.0 / max(mo, 1.0), n))
    return RequestTrace(trace.name, np.concatenate(ts), np.concatenate(ins), np.concatenate(outs))


def prefix_hits(trace: RequestTrace, capacity_blocks: int) -> np.ndarray:
    """Cached prompt tokens per request: leading ``hash_ids`` already in an LRU pool of blocks.

    The pool is the service's shared KV store (Mooncake-style); a request's blocks enter it at
    arrival. At least one prompt token is always computed.
    """
    hits = np.zeros(trace.num_requests, dtype=np.int64)
    if trace.hash_ids is None or capacity_blocks <= 0:
        return hits
    lru: OrderedDict[int, None] = OrderedDict()
    for i, blocks in enumerate(trace.hash_ids):
        n = 0
        for h in blocks:
            if h in lru:
                n += 1
            else:
                break
        hits[i] = min(n * MOONCAKE_BLOCK_TOKENS, int(trace.input_tokens[i]) - 1)
        for h in blocks:
            lru[h] = None
            lru.move_to_end(h)
        while len(lru) > capacity_blocks:
            lru.popitem(last=False)
    return hits


def scale_rates(trace: RateTrace, factor: float) -> RateTrace:
    """The same windows with every rate multiplied by ``factor``."""
    if factor <= 0:
        raise InputError(f"scale={factor} must be positive")
    return RateTrace(f"{trace.name}x{factor:g}", trace.start_s, trace.window_s, trace.rate_rps * factor,
                     trace.mean_input, trace.mean_output, trace.gaps)
