"""Request and rate traces the simulator replays.

Four layouts, told apart by their columns/fields. Column names are matched with case and spaces
ignored (``timestamp``, `` ContextTokens``, ``Request Tokens``), in any order; a file where two
columns match one name, or with a column of no listed name, is refused.

- Azure LLM inference CSV, 2023 (Splitwise) and 2024 (DynamoLLM, a week): ``TIMESTAMP,
  ContextTokens, GeneratedTokens``, one request a row. ``TIMESTAMP`` is a date-time (time-zone
  offsets, as in the 2024 trace's ``+00:00``, are converted to UTC) or, when every value is a
  number, seconds. The 2025 multimodal trace (an extra ``NumImages`` column) is refused by name.
- BurstGPT CSV (``Timestamp`` s from 0:00 of the first day, ``Model``, ``Request tokens``,
  ``Response tokens``, ``Total tokens``, ``Log Type``; release 2.0 adds ``Session ID``,
  ``Elapsed time``): one request a row. The four columns read are required (a file without
  ``Model`` cannot say whose requests it holds); ``Total tokens``, ``Log Type``, ``Session ID``
  and ``Elapsed time`` are not read. A row with ``Response tokens`` = 0 is a request that failed
  (BurstGPT's README) and is skipped, counted in :attr:`RequestTrace.num_failed_skipped`;
  ``model`` keeps one ``Model`` (default: every model).
- Mooncake JSONL (``timestamp`` ms, ``input_length``, ``output_length``, ``hash_ids``): one request
  a line; ``hash_ids`` are 512-token prefix blocks, turned into cache hits by :func:`prefix_hits`.
  The FAST'25 conversation and synthetic traces and the earlier ``mooncake_trace.jsonl`` share it.
- ServeGen rate CSV (``servegen_2025_rate_10min.csv``): one window per model, for fluid mode;
  ``model`` picks the model (default ``m-large``).

Any of them may be gzip-compressed (``.gz``); a UTF-8 byte-order mark is skipped. Token counts are
whole numbers from 1 to :data:`MAX_TOKENS`. Every error names the file, the row (the data row: the
header and blank lines are not counted) and the field. A row with more fields than the header is
refused (a header and rows that all end with a comma are read alike).
"""

from __future__ import annotations

import gzip
import json
import math
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from hetero_opt.csv_input import read_csv
from hetero_opt.errors import InputError

AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
#: BurstGPT columns (HPMLL/BurstGPT README, "Schema"); the first four are read (and required).
BURSTGPT_COLUMNS = ("Timestamp", "Request tokens", "Response tokens", "Model", "Total tokens", "Log Type")
#: Columns BurstGPT release 2.0 adds (its README's schema); not read.
BURSTGPT_V2_COLUMNS = ("Session ID", "Elapsed time")
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
#: ServeGen model read when none is named.
SERVEGEN_DEFAULT_MODEL = "m-large"
MOONCAKE_FIELDS = frozenset({"timestamp", "input_length", "output_length", "hash_ids"})
#: Tokens per Mooncake prefix block (kvcache-ai/Mooncake FAST25-release README).
MOONCAKE_BLOCK_TOKENS = 512
#: Largest prompt or output of one request (100x the longest context windows of 2025 models).
MAX_TOKENS = 10**9
#: Largest ``scale`` factor: superposed copies of a request trace, or a rate multiplier.
MAX_SCALE = 1000


@dataclass(frozen=True)
class RequestTrace:
    """Requests sorted by arrival: times (s from the first), prompt and output tokens, prefix blocks."""

    name: str
    arrival_s: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    hash_ids: tuple[tuple[int, ...], ...] | None = None
    #: Rows of the file left out as failed requests (BurstGPT's ``Response tokens`` = 0).
    num_failed_skipped: int = 0

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


def load_trace(path: str | Path, *, model: str | None = None) -> Trace:
    """Read any supported trace.

    ``model`` picks one model of a trace that holds several: ServeGen (default ``m-large``) and
    BurstGPT (default: every model's requests). Azure and Mooncake traces name no model, so a
    ``model`` given for them is refused rather than ignored.
    """
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{p}: is a folder, not a trace file")
    if not p.is_file():
        raise InputError(f"{p}: no such trace file")
    if p.name.lower().endswith((".jsonl", ".jsonl.gz")):
        _no_model(p, "Mooncake", model)
        return _load_mooncake(p)
    df = read_csv(p, "trace CSV")
    cols = tuple(str(c) for c in df.columns)
    keys = {_key(c) for c in cols}
    if {_key(c) for c in AZURE_COLUMNS} <= keys:
        if _key("NumImages") in keys:
            raise InputError(
                f"{p}: column='NumImages': the Azure 2025 multimodal trace is not read (image encoding is not "
                "simulated, and whether ContextTokens counts image tokens is not documented)"
            )
        _no_model(p, "Azure", model)
        return _azure(p, _canonical(p, df, cols, AZURE_COLUMNS))
    if {_key(c) for c in BURSTGPT_COLUMNS[:3]} <= keys:
        return _burstgpt(p, _canonical(p, df, cols, BURSTGPT_COLUMNS + BURSTGPT_V2_COLUMNS), model)
    if {_key(c) for c in SERVEGEN_COLUMNS} <= keys:
        return _servegen(p, _canonical(p, df, cols, SERVEGEN_COLUMNS), model or SERVEGEN_DEFAULT_MODEL)
    raise InputError(
        f"{p}: columns={list(cols)} are neither Azure {list(AZURE_COLUMNS)}, BurstGPT "
        f"{list(BURSTGPT_COLUMNS[:3])} nor ServeGen rate columns"
    )


def _stem(p: Path) -> str:
    """The trace's name: the file name without its format and compression suffixes (``a.csv.gz`` -> ``a``)."""
    name = p.name[: -len(".gz")] if p.name.lower().endswith(".gz") else p.name
    return Path(name).stem


def _no_model(p: Path, layout: str, model: str | None) -> None:
    if model is not None:
        raise InputError(f"{p}: model='{model}' is asked for, but {layout} traces name no model")


def _key(name: str) -> str:
    """A column name with case and spaces ignored: ``' contexttokens'`` matches ``ContextTokens``."""
    return "".join(name.split()).casefold()


def _canonical(p: Path, df: pd.DataFrame, cols: tuple[str, ...], known: tuple[str, ...]) -> pd.DataFrame:
    """``df`` with its columns renamed to the ``known`` spelling; unknown or doubled columns refused."""
    by_key = {_key(k): k for k in known}
    names: list[str] = []
    for c in cols:
        name = by_key.get(_key(c))
        if name is None:
            raise InputError(f"{p}: column='{c}' is unknown (expected {list(known)})")
        if name in names:
            first = cols[names.index(name)]
            raise InputError(
                f"{p}: columns '{first}' and '{c}' are both {name} (case and spaces in column names are ignored)"
            )
        names.append(name)
    if list(cols) == names:
        return df
    return df.set_axis(names, axis=1)


def _row(rows: np.ndarray | None, i: int) -> int:
    """File row of the ``i``-th value: ``rows[i]`` when values were selected from the file, else ``i + 1``."""
    return int(rows[i]) if rows is not None else i + 1


def _check_lengths(p: Path, name: str, values: np.ndarray, minimum: int, rows: np.ndarray | None = None) -> None:
    bad = np.flatnonzero(~(values >= minimum))
    if bad.size:
        i = int(bad[0])
        raise InputError(f"{p}: row {_row(rows, i)}: {name}={values[i]} must be at least {minimum}")


def _check_times(p: Path, name: str, t: np.ndarray, rows: np.ndarray | None = None) -> None:
    if np.isnan(t).any():
        i = int(np.flatnonzero(np.isnan(t))[0])
        raise InputError(f"{p}: row {_row(rows, i)}: {name} is missing")
    if not np.isfinite(t).all():
        i = int(np.flatnonzero(~np.isfinite(t))[0])
        raise InputError(f"{p}: row {_row(rows, i)}: {name}={t[i]} is not a finite time")
    back = np.flatnonzero(np.diff(t) < 0)
    if back.size:
        i = int(back[0]) + 1
        raise InputError(f"{p}: row {_row(rows, i)}: {name} goes back in time ({t[i]} after {t[i - 1]})")


def _numbers(p: Path, df: pd.DataFrame, name: str) -> np.ndarray:
    """Column ``name`` as floats; an empty cell is NaN, a value that is not a number an error.

    Rows are named by ``df``'s index (``read_csv`` numbers data rows from 0), so a selection of rows
    is still reported by its rows in the file.
    """
    raw = df[name]
    num = pd.to_numeric(raw, errors="coerce")
    bad = np.flatnonzero(num.isna().to_numpy() & raw.notna().to_numpy())
    if bad.size:
        i = int(bad[0])
        raise InputError(f"{p}: row {int(raw.index[i]) + 1}: {name}={raw.iloc[i]!r} is not a number")
    return num.to_numpy(dtype=float)


def _tokens(p: Path, name: str, values: np.ndarray, row: str = "row", rows: np.ndarray | None = None) -> np.ndarray:
    """Token counts: whole numbers in ``1..MAX_TOKENS`` (a fraction is an error, not truncated)."""
    _check_lengths(p, name, values, 1, rows)
    bad = np.flatnonzero((values > MAX_TOKENS) | (values != np.floor(values)))
    if bad.size:
        i = int(bad[0])
        raise InputError(
            f"{p}: {row} {_row(rows, i)}: {name}={values[i]:g} must be a whole number of tokens from 1 to "
            f"{MAX_TOKENS:g}"
        )
    return values.astype(np.int64)


def _seconds(p: Path, df: pd.DataFrame) -> np.ndarray:
    """``TIMESTAMP`` as seconds from the first request: numbers are seconds, else date-times."""
    raw = df["TIMESTAMP"]
    num = pd.to_numeric(raw, errors="coerce")
    if (num.notna() | raw.isna()).all():
        t = num.to_numpy(dtype=float)
    else:
        try:
            ts = pd.to_datetime(raw, format="mixed", utc=True)
        except (ValueError, TypeError, OverflowError) as exc:
            raise InputError(f"{p}: TIMESTAMP: cannot parse ({' '.join(str(exc).split())[:80]})") from None
        t = (ts - ts.iloc[0]).dt.total_seconds().to_numpy(dtype=float)
    _check_times(p, "TIMESTAMP", t)
    return np.asarray(t - t[0], dtype=float)


def _azure(p: Path, df: pd.DataFrame) -> RequestTrace:
    if df.empty:
        raise InputError(f"{p}: no requests (the file has a header and no rows)")
    t = _seconds(p, df)
    inp = _tokens(p, "ContextTokens", _numbers(p, df, "ContextTokens"))
    out = _tokens(p, "GeneratedTokens", _numbers(p, df, "GeneratedTokens"))
    return RequestTrace(_stem(p), t, inp, out)


def _burstgpt(p: Path, df: pd.DataFrame, model: str | None) -> RequestTrace:
    """BurstGPT rows (of ``model`` when named), failed requests (``Response tokens`` = 0) left out."""
    if "Model" not in df.columns:  # every BurstGPT file has it: without it, whose requests these are is unknown
        raise InputError(
            f"{p}: column='Model' is missing (BurstGPT logs each request's model; the file has {list(df.columns)})"
        )
    if df.empty:
        raise InputError(f"{p}: no requests (the file has a header and no rows)")
    name = _stem(p)
    if model is not None:
        models = df["Model"].astype(str).str.strip()  # as column names: surrounding spaces ignored
        model = model.strip()
        if not (models == model).any():
            raise InputError(f"{p}: model='{model}' has no rows (models: {sorted(models.unique())})")
        df = df[models == model]
        name = f"{_stem(p)}:{model}"
    rows = df.index.to_numpy() + 1  # data rows of the file, as every error counts them
    t = _numbers(p, df, "Timestamp")
    _check_times(p, "Timestamp", t, rows)
    if t[0] < 0:
        raise InputError(f"{p}: row {rows[0]}: Timestamp={t[0]:g} must be at least 0 s (s from 0:00 of the first day)")
    inp = _numbers(p, df, "Request tokens")
    out = _numbers(p, df, "Response tokens")
    negative = np.flatnonzero(out < 0)
    if negative.size:
        i = int(negative[0])
        raise InputError(
            f"{p}: row {rows[i]}: Response tokens={out[i]:g} must be a whole number of tokens from 0 (a failed "
            f"request) to {MAX_TOKENS:g}"
        )
    keep = out != 0
    if not keep.any():
        raise InputError(f"{p}: no requests (all {keep.size} rows are failed requests, Response tokens = 0)")
    ia = _tokens(p, "Request tokens", inp[keep], rows=rows[keep])
    oa = _tokens(p, "Response tokens", out[keep], rows=rows[keep])
    kept = t[keep]
    return RequestTrace(name, kept - kept[0], ia, oa, num_failed_skipped=int(keep.size - keep.sum()))


def _load_mooncake(p: Path) -> RequestTrace:
    times: list[float] = []
    inp: list[float] = []
    out: list[float] = []
    lines: list[int] = []
    hashes: list[tuple[int, ...]] = []
    gz = p.suffix.lower() == ".gz"
    try:
        with gzip.open(p, "rt", encoding="utf-8-sig") if gz else p.open(encoding="utf-8-sig") as f:
            for i, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                times_in = _mooncake_row(p, i, line, hashes)
                times.append(times_in[0])
                inp.append(times_in[1])
                out.append(times_in[2])
                lines.append(i)
    except UnicodeDecodeError as exc:
        raise InputError(f"{p}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise InputError(f"{p}: cannot read gzip data ({exc})") from None
    if not times:
        raise InputError(f"{p}: no requests (the file has no JSON lines)")
    t = np.asarray(times, dtype=float)
    back = np.flatnonzero(np.diff(t) < 0)
    if back.size:
        i = int(back[0]) + 1
        raise InputError(
            f"{p}: line {lines[i]}: timestamp goes back in time ({t[i] * 1000:g} ms after {t[i - 1] * 1000:g} ms)"
        )
    ia = _tokens(p, "input_length", np.asarray(inp, dtype=float), "request")
    oa = _tokens(p, "output_length", np.asarray(out, dtype=float), "request")
    return RequestTrace(_stem(p), t - t[0], ia, oa, tuple(hashes))


def _mooncake_row(p: Path, i: int, line: str, hashes: list[tuple[int, ...]]) -> tuple[float, float, float]:
    """Line ``i``'s (arrival s, prompt tokens, output tokens); its prefix blocks go to ``hashes``."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"{p}: line {i}: not JSON ({exc.msg})") from None
    except RecursionError:
        raise InputError(f"{p}: line {i}: nested too deeply") from None
    if not isinstance(row, dict):
        raise InputError(f"{p}: line {i}: not a JSON object")
    extra = sorted(set(row) - MOONCAKE_FIELDS)
    if extra:
        raise InputError(f"{p}: line {i}: field='{extra[0]}' is unknown (expected {sorted(MOONCAKE_FIELDS)})")
    values: list[float] = []
    for k in ("timestamp", "input_length", "output_length"):
        v = row.get(k)
        if not isinstance(v, int | float) or isinstance(v, bool):
            raise InputError(f"{p}: line {i}: {k}={v!r} must be a number")
        f = float(v) if isinstance(v, float) or abs(v) < 2**53 else math.inf
        if not math.isfinite(f) or (k != "timestamp" and not (1 <= f <= MAX_TOKENS and f.is_integer())):
            what = "a finite time in ms" if k == "timestamp" else f"a whole number of tokens from 1 to {MAX_TOKENS:g}"
            raise InputError(f"{p}: line {i}: {k}={v!r} must be {what}")
        values.append(f)
    blocks = row.get("hash_ids", [])
    if not isinstance(blocks, list) or not all(isinstance(h, int) and not isinstance(h, bool) for h in blocks):
        raise InputError(f"{p}: line {i}: hash_ids={_short(blocks)} must be a list of integer block ids")
    hashes.append(tuple(blocks))
    return values[0] / 1000.0, values[1], values[2]


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _servegen(p: Path, df: pd.DataFrame, model: str) -> RateTrace:
    sel = df[df["model"].astype(str) == model]
    if sel.empty:
        models = sorted(str(m) for m in df["model"].unique())
        raise InputError(f"{p}: model='{model}' has no rows (models: {models})")
    rows = sel.index.to_numpy() + 1  # data rows of the file, as the other errors count them

    def column(name: str, *, minimum: float, missing_ok: bool = False, strictly: bool = False) -> np.ndarray:
        values = _numbers(p, sel, name)
        bad = ~np.isfinite(values) | (values <= minimum if strictly else values < minimum)
        if missing_ok:
            bad &= ~np.isnan(values)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            shown = "missing" if np.isnan(values[i]) else f"{values[i]:g}"
            relation = "above" if strictly else "at least"
            raise InputError(f"{p}: row {rows[i]}: {name}={shown} must be a finite number {relation} {minimum:g}")
        return values

    start = column("window_start_s", minimum=-math.inf)
    window = column("window_s", minimum=0, strictly=True)
    overlap = np.flatnonzero(start[1:] < start[:-1] + window[:-1])
    if overlap.size:
        i = int(overlap[0]) + 1
        raise InputError(
            f"{p}: row {rows[i]}: window_start_s={start[i]:g} is before the end of the window before "
            f"({start[i - 1]:g} + {window[i - 1]:g} s) of model '{model}': windows must be in order and not overlap"
        )
    rate = column("rate_rps", minimum=0)
    gap_values = column("is_gap", minimum=0)
    if not np.isin(gap_values, (0, 1)).all():
        i = int(np.flatnonzero(~np.isin(gap_values, (0, 1)))[0])
        raise InputError(f"{p}: row {rows[i]}: is_gap={gap_values[i]:g} must be 0 or 1")
    gaps = gap_values == 1
    mean_in = column("mean_input_tokens", minimum=0, missing_ok=True)
    mean_out = column("mean_output_tokens", minimum=0, missing_ok=True)
    for name, values in (("mean_input_tokens", mean_in), ("mean_output_tokens", mean_out)):
        if np.isnan(values).all():
            raise InputError(f"{p}: {name} is missing in every window of model '{model}'")
    # gap windows carry no lengths: treat as missing and hold the last known mix
    mean_in = pd.Series(mean_in).ffill().bfill().to_numpy(dtype=float)
    mean_out = pd.Series(mean_out).ffill().bfill().to_numpy(dtype=float)
    return RateTrace(f"{_stem(p)}:{model}", start - start[0], window, rate, mean_in, mean_out, gaps)


def scale_trace(trace: RequestTrace, factor: int, seed: int) -> RequestTrace:
    """``factor`` superposed copies, each shifted by a random offset (circular over the duration)."""
    if not 1 <= factor <= MAX_SCALE:
        raise InputError(f"scale={factor} must be a whole number of copies from 1 to {MAX_SCALE}")
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
    if not 0 < factor <= MAX_SCALE:
        raise InputError(f"scale={factor} must be a rate multiplier above 0 and at most {MAX_SCALE}")
    return RateTrace(f"{trace.name}x{factor:g}", trace.start_s, trace.window_s, trace.rate_rps * factor,
                     trace.mean_input, trace.mean_output, trace.gaps)
