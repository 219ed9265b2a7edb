"""The periodic policy of paper §3.3.1: time-of-day windows with static target units.

A window runs from ``start`` to ``end`` ("HH:MM", end exclusive) on the listed weekdays
(0 = Monday … 6 = Sunday; None = every day). When ``end <= start`` the window wraps past
midnight, and the weekday is the day the window *starts* (Friday 22:00–06:00 covers Saturday
00:00–06:00). ``start == end`` means the whole day. The first matching window wins.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

from pydantic import Field, field_validator

from hetero_opt.errors import InputError
from hetero_opt.policy._base import Frozen

#: Latest ``now`` a schedule accepts: 9999-12-31 00:00 UTC in epoch seconds (the calendar's end).
#: Epoch *milliseconds* (1.7e12 today) lie far above it and are refused rather than misread.
MAX_EPOCH_S = 253_402_214_400


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


class PeriodicWindow(Frozen):
    """One scheduled window and its static target."""

    start: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="Start, 'HH:MM'.")
    end: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="End, 'HH:MM' (excl.).")
    weekdays: tuple[int, ...] | None = Field(
        default=None, description="Days the window starts on, 0=Mon..6=Sun; None = all."
    )
    units: int = Field(ge=0, description="Static target units inside the window.")
    name: str | None = Field(default=None, description="Optional label for reasons.")

    @field_validator("weekdays")
    @classmethod
    def _days(cls, v: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if v is not None:
            bad = [d for d in v if not 0 <= d <= 6]
            if bad:
                raise ValueError(f"weekdays={bad} outside 0..6")
        return v

    def label(self) -> str:
        """Short description used in reasons."""
        return self.name or f"{self.start}-{self.end}"

    def contains(self, weekday: int, minute: int) -> bool:
        """Return True when ``minute`` of day ``weekday`` lies in the window."""
        s, e = _minutes(self.start), _minutes(self.end)
        days = self.weekdays

        def on(day: int) -> bool:
            return days is None or day in days

        if s < e:
            return on(weekday) and s <= minute < e
        if s == e:
            return on(weekday)
        return (minute >= s and on(weekday)) or (minute < e and on((weekday - 1) % 7))


def local_time(now: float, utc_offset_hours: float) -> tuple[int, int]:
    """Return ``(weekday, minute of day)`` of epoch seconds ``now`` at a fixed UTC offset.

    Raises :class:`InputError` unless ``now`` is finite and within ``0..MAX_EPOCH_S`` seconds.
    """
    if not (math.isfinite(now) and 0 <= now <= MAX_EPOCH_S):
        raise InputError(
            f"periodic policy: now={now} is not a time in epoch seconds (0..{MAX_EPOCH_S}); "
            "epoch milliseconds must be divided by 1000"
        )
    t = dt.datetime.fromtimestamp(now, tz=dt.UTC) + dt.timedelta(hours=utc_offset_hours)
    return t.weekday(), t.hour * 60 + t.minute


def periodic_target(
    now: float,
    windows: Sequence[PeriodicWindow],
    default_units: int | None,
    utc_offset_hours: float = 0.0,
) -> tuple[int | None, str]:
    """Target units at ``now`` and which rule gave it; ``None`` when nothing applies."""
    weekday, minute = local_time(now, utc_offset_hours)
    for w in windows:
        if w.contains(weekday, minute):
            return w.units, f"periodic window {w.label()} → {w.units} units"
    if default_units is not None:
        return default_units, f"outside all windows → default {default_units} units"
    return None, "outside all windows, no default"
