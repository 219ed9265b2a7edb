"""A user's CSV file read by pandas, with every row held to the header's fields.

pandas' ``read_csv`` takes a first data row with more fields than the header as naming an index
(``600,chat,100,5,6`` under ``time,service,decode_tps`` read as service '5' at time 100). With
``index_col=False`` it drops the extra fields of the first data row instead (silently when they are
one trailing comma) and refuses a later longer row by its line in the file. Here a row with more
fields than the header is refused, named by its data row as the readers' other errors name rows
(the header and blank lines are not counted); duplicated or empty column names are refused by name,
not as pandas renames them (``decode_tps.1``, ``Unnamed: 3``).
"""

from __future__ import annotations

import csv
import gzip
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from hetero_opt.errors import InputError


def read_csv(p: Path, what: str) -> pd.DataFrame:
    """The CSV file ``p`` (UTF-8 with or without a byte-order mark; gzip for ``.gz``); ``what`` names it
    in errors (``"metrics CSV"``).

    A header ending with a comma is accepted when no row has a value under that unnamed last column.
    """
    if p.is_dir():
        raise InputError(f"{p}: is a folder, not a {what} file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", pd.errors.ParserWarning)  # a long first row: refused below
            df = pd.read_csv(p, encoding="utf-8-sig", skipinitialspace=True, index_col=False,
                             compression="gzip" if _gzipped(p) else None)
    except pd.errors.ParserError as exc:
        _refuse_long_row(p, what, rows=None)  # where the C parser says "line N", name the data row
        raise _unreadable(p, what, exc) from None
    except (OSError, ValueError, EOFError, zlib.error) as exc:
        raise _unreadable(p, what, exc) from None
    # A first data row longer than the header is the one pandas cuts short without an error.
    header = _refuse_long_row(p, what, rows=1)
    return _named_columns(p, df, header)


def _gzipped(p: Path) -> bool:
    return p.name.lower().endswith(".gz")


def _unreadable(p: Path, what: str, exc: BaseException) -> InputError:
    return InputError(f"{p}: cannot read {what} ({' '.join(str(exc).split())})")


def _records(p: Path) -> Iterator[list[str]]:
    """The file's records as :mod:`csv` splits them (as pandas does here), blank lines left out."""
    with (gzip.open(p, "rt", encoding="utf-8-sig", newline="") if _gzipped(p)
          else p.open(encoding="utf-8-sig", newline="")) as f:
        for record in csv.reader(f, skipinitialspace=True):
            if len(record) > 1 or (record and record[0].strip()):  # pandas skips whitespace-only lines too
                yield record


def _refuse_long_row(p: Path, what: str, rows: int | None) -> list[str]:
    """The header's names; :class:`InputError` for the first of the first ``rows`` data rows (every row
    if None) with more fields than the header."""
    long: tuple[int, list[str]] | None = None
    try:
        records = _records(p)
        header = next(records, [])
        for i, record in enumerate(records, start=1):
            if len(record) > len(header):
                long = i, record
                break
            if rows is not None and i >= rows:
                break
    except (OSError, ValueError, EOFError, zlib.error, csv.Error) as exc:
        raise _unreadable(p, what, exc) from None
    if long is not None:
        i, record = long
        empty = not any(x.strip() for x in record[len(header):])
        hint = " (the row ends with a comma, the header does not)" if empty else ""
        raise InputError(f"{p}: row {i} has {len(record)} fields but the header has {len(header)}{hint}")
    return header


def _named_columns(p: Path, df: pd.DataFrame, header: list[str]) -> pd.DataFrame:
    """``df`` with a doubled or empty column name refused, and unnamed last columns without values dropped."""
    if len(header) != len(df.columns):  # not split alike by csv and pandas (never seen): pandas' names
        header = [str(c) for c in df.columns]
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise InputError(f"{p}: column '{name}' appears twice")
        seen.add(name)
    named = len(header)
    while named and not header[named - 1].strip() and df.iloc[:, named - 1].isna().all():
        named -= 1  # the header and the rows end with a comma: an empty last column
    unnamed = [i for i, name in enumerate(header[:named]) if not name.strip()]
    if unnamed:
        i = unnamed[0]
        values = df.iloc[:, i]
        if i == named - 1:
            row = int(values.notna().to_numpy().argmax())
            value = values.iloc[row]
            shown = f"{value:g}" if pd.api.types.is_number(value) else f"'{value}'"
            raise InputError(f"{p}: row {row + 1}: value {shown} is in column {i + 1}, which has no name in the header")
        raise InputError(f"{p}: column {i + 1} has no name in the header")
    return df.iloc[:, :named] if named < len(df.columns) else df

