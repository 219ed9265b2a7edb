"""Anticipation: a floor that covers the demand expected before new capacity can serve.

Decode-TPS control reacts to the window just ended; pods it asks for serve ``start-up`` seconds
later and the next decision comes a control interval later, so a rise inside that *lead* is met
late. Two forecasts, both from the service's own past observations only (the state), look ahead
over the lead and become a floor beside Algorithm 2 (paper §3.3.1's periodic schedules, learned
instead of written by hand):

- **learned schedule** (``schedule_days`` > 0): on each of the last ``schedule_days`` periods
  (days), the rise the service saw at the same time of period over the lead, as a ratio
  ``peak over (t_k, t_k + lead] / level at t_k``; the median over the periods that have data, times
  the current observation. A ramp that recurs on most days lifts the floor before it starts; a rise
  seen on one day only does not. Relative, so a quieter or busier day scales it.
- **trend** (``trend``): the rise of the last two observations, continued linearly over the lead,
  when it exceeds ``trend_min_rise`` of the previous one (smaller rises are the signal's noise).

The forecast peak times ``1 + margin`` is sized into units by the caller at the policy's own per-pod
targets (decode TPS per decode pod; prefill at the highest reachable P:D). The history keeps one
sample per ``resolution_s`` (the highest observation in it, stamped at its first), for
``schedule_days`` periods.
"""

from __future__ import annotations

import bisect
import math
import statistics

from pydantic import Field, model_validator

from hetero_opt.policy._base import Frozen

#: Most periods of history the schedule reads (4 weeks of days).
MAX_SCHEDULE_DAYS = 28


class AnticipationConfig(Frozen):
    """The anticipation floor (``policy/anticipation.py``): proportional and hybrid only."""

    schedule_days: int = Field(
        default=3, ge=0, le=MAX_SCHEDULE_DAYS,
        description="Periods (days) of the service's own history the learned schedule reads; 0 = off.",
    )
    period_s: float = Field(
        default=86_400.0, ge=60, le=7 * 86_400,
        description="Length of the schedule's period (s): 86400 daily, 604800 weekly.",
    )
    trend: bool = Field(default=False, description="Continue the last two observations' rise over the lead.")
    trend_min_rise: float = Field(
        default=0.1, ge=0, le=10,
        description="Trend: only a rise above this share of the previous observation is continued "
        "(smaller ones are noise).",
    )
    margin: float = Field(default=0.0, ge=0, le=1, description="Added to the forecast peak (share).")
    lead_s: float | None = Field(
        default=None, gt=0, le=86_400,
        description="Horizon the floor covers (s); None = time since the previous cycle + the start-up delay.",
    )
    hold_scale_in: bool = Field(
        default=True,
        description="Learned schedule: a scale-in never goes below what the schedule expects over the scale-in "
        "window (a scale-in followed by a foreseen rise would be a reversal).",
    )
    resolution_s: float = Field(
        default=300.0, gt=0, le=3_600, description="History resolution (s): the highest observation per bucket is kept."
    )

    @model_validator(mode="after")
    def _fits(self) -> AnticipationConfig:
        if self.schedule_days and self.resolution_s * 2 > self.period_s:
            raise ValueError(
                f"anticipation: resolution_s={self.resolution_s:g} must be at most half of period_s={self.period_s:g}"
            )
        return self

    @property
    def enabled(self) -> bool:
        """True when a forecast is on."""
        return self.schedule_days > 0 or self.trend


class DemandHistory(Frozen):
    """Past observations of one service (times ascending), the anticipation's only input besides now."""

    at: tuple[float, ...] = Field(
        default=(), description="Time of each resolution bucket's first observation (s), ascending."
    )
    decode_tps: tuple[float, ...] = Field(default=(), description="Highest decode TPS observed in the bucket.")
    prefill_tps: tuple[float, ...] = Field(
        default=(), description="Highest prefill TPS observed in the bucket (0: none)."
    )
    last_at: float | None = Field(default=None, description="Time of the previous cycle's observation.")
    last: tuple[float, float] | None = Field(default=None, description="Previous cycle's (decode, prefill) TPS.")

    @model_validator(mode="after")
    def _aligned(self) -> DemandHistory:
        if not len(self.at) == len(self.decode_tps) == len(self.prefill_tps):
            raise ValueError("DemandHistory: at, decode_tps and prefill_tps must have one entry each")
        return self


class Forecast(Frozen):
    """The anticipated peak over the lead, per pool, and how it was found."""

    decode_tps: float = Field(ge=0, description="Anticipated peak decode TPS (margin included).")
    prefill_tps: float = Field(ge=0, description="Anticipated peak prefill TPS (margin included).")
    lead_s: float = Field(ge=0, description="Horizon covered (s).")
    reason: str = Field(description="Which forecast gave the peak and its numbers.")


def lead_of(cfg: AnticipationConfig, history: DemandHistory, now: float, startup_delay_s: float) -> float:
    """The horizon to cover: ``lead_s``, else the last control interval plus the start-up delay."""
    if cfg.lead_s is not None:
        return cfg.lead_s
    interval = now - history.last_at if history.last_at is not None and now > history.last_at else 0.0
    return interval + startup_delay_s


def _schedule_ratio(
    cfg: AnticipationConfig, h: DemandHistory, now: float, lead: float, pool: int
) -> tuple[float, int]:
    """Median over past periods of (peak over the lead) / (level at the same time of period); and
    how many periods had data. ``pool`` 0 = decode, 1 = prefill."""
    values = h.decode_tps if pool == 0 else h.prefill_tps
    ratios: list[float] = []
    for k in range(1, cfg.schedule_days + 1):
        t_k = now - k * cfg.period_s
        i = bisect.bisect_right(h.at, t_k)  # samples at <= t_k before i
        if i == 0 or t_k - h.at[i - 1] > cfg.resolution_s:
            continue  # no level at that time
        j = bisect.bisect_right(h.at, t_k + lead)
        if j == i and i < len(h.at) and h.at[i] - t_k <= cfg.resolution_s:
            j = i + 1  # a lead shorter than the resolution: the bucket after t_k holds its demand
        level = values[i - 1]
        if j <= i or level <= 0:
            continue
        ratios.append(max(values[i:j]) / level)
    return (statistics.median(ratios) if ratios else 1.0), len(ratios)


def forecast(
    cfg: AnticipationConfig, history: DemandHistory, now: float, decode_tps: float, prefill_tps: float | None,
    startup_delay_s: float, horizon_s: float | None = None,
) -> Forecast | None:
    """The peak expected over the lead from ``history`` (observations before ``now``) and this cycle's
    observation; None when no forecast is on or none rises above the observation.

    ``horizon_s`` replaces the lead and leaves the trend out (the schedule alone looks that far).
    """
    if not cfg.enabled:
        return None
    lead = lead_of(cfg, history, now, startup_delay_s) if horizon_s is None else horizon_s
    now_obs = (decode_tps, prefill_tps or 0.0)
    peaks = list(now_obs)
    why: list[str] = []
    for pool, name in ((0, "decode"), (1, "prefill")):
        cur = now_obs[pool]
        if cfg.schedule_days:
            ratio, days = _schedule_ratio(cfg, history, now, lead, pool)
            if ratio > 1 and cur * ratio > peaks[pool]:
                peaks[pool] = cur * ratio
                why.append(f"{name} rose ×{ratio:.2f} over the next {lead:g} s at this time (median of {days} "
                           f"{'day' if cfg.period_s == 86_400 else 'period'}{'s' if days != 1 else ''})")
        trend = cfg.trend and horizon_s is None and history.last is not None
        if trend and history.last is not None and history.last_at is not None and now > history.last_at:
            prev = history.last[pool]
            slope = (cur - prev) / (now - history.last_at)
            if cur > prev * (1 + cfg.trend_min_rise) and cur + slope * lead > peaks[pool]:
                peaks[pool] = cur + slope * lead
                why.append(f"{name} trend +{slope:.3g} tok/s² over {lead:g} s → {peaks[pool]:.4g}")
    if not why:
        return None
    f = 1 + cfg.margin
    margin = f" (+{cfg.margin:.0%})" if cfg.margin else ""
    return Forecast(decode_tps=peaks[0] * f, prefill_tps=peaks[1] * f, lead_s=lead,
                    reason="anticipation: " + "; ".join(why) + margin)


def record(cfg: AnticipationConfig, history: DemandHistory, now: float, decode_tps: float,
           prefill_tps: float | None) -> DemandHistory:
    """``history`` with this cycle's observation added (highest per ``resolution_s`` bucket) and the
    samples older than the schedule needs dropped."""
    if not cfg.enabled:
        return history
    pre = prefill_tps or 0.0
    at, dec, pf = list(history.at), list(history.decode_tps), list(history.prefill_tps)
    if cfg.schedule_days:
        if at and math.floor(at[-1] / cfg.resolution_s) == math.floor(now / cfg.resolution_s) and now >= at[-1]:
            # stamped at its first observation: the bucket's peak counts from the bucket's start
            dec[-1], pf[-1] = max(dec[-1], decode_tps), max(pf[-1], pre)
        else:
            at.append(now)
            dec.append(decode_tps)
            pf.append(pre)
        oldest = now - cfg.schedule_days * cfg.period_s - cfg.resolution_s
        cut = bisect.bisect_left(at, oldest)
        at, dec, pf = at[cut:], dec[cut:], pf[cut:]
    return DemandHistory(at=tuple(at), decode_tps=tuple(dec), prefill_tps=tuple(pf), last_at=now,
                         last=(decode_tps, pre))
