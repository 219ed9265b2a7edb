"""Open-loop replay of one service's policy over a metrics series, and flapping statistics.

Open loop: each cycle the policy sees the observed load of the window just ended; its target
becomes the next cycle's supply at once (no start-up delay, no placement limits), and the load
does not depend on the capacity. It measures how often a policy acts and reverses on a real trace,
not SLO attainment (that needs the closed-loop simulator). :func:`flap_stats` counts actions and
reversals from any ``(time, action)`` sequence, so a closed loop can reuse it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path

from pydantic import Field

from hetero_opt.csv_input import read_csv
from hetero_opt.policy._base import Frozen
from hetero_opt.policy.config import ServicePolicy
from hetero_opt.policy.engine import Decision, ServiceMetrics, ServicePolicyState, decide
from hetero_opt.policy.stability import Action

DAY_S = 86_400.0


class FlapStats(Frozen):
    """Actions and direction reversals of one service over a replay."""

    days: float = Field(gt=0, description="Length of the replay (days).")
    actions: int = Field(ge=0, description="Scale-out plus scale-in actions.")
    reversals: int = Field(ge=0, description="Actions opposite to the previous action within the window.")
    within_s: float = Field(gt=0, description="Reversal window (s).")

    @property
    def actions_per_day(self) -> float:
        """Actions per day."""
        return self.actions / self.days

    @property
    def reversals_per_day(self) -> float:
        """Reversals per day."""
        return self.reversals / self.days


def flap_stats(events: Iterable[tuple[float, Action]], days: float, within_s: float = 1800.0) -> FlapStats:
    """Count actions and reversals: an action whose direction differs from the previous action's
    and which comes at most ``within_s`` seconds after it."""
    actions = reversals = 0
    last: tuple[float, Action] | None = None
    for t, a in events:
        if a == "none":
            continue
        actions += 1
        if last is not None and last[1] != a and t - last[0] <= within_s:
            reversals += 1
        last = (t, a)
    return FlapStats(days=days, actions=actions, reversals=reversals, within_s=within_s)


def servegen_series(path: str | Path, model: str, scale: float = 1.0) -> list[tuple[float, ServiceMetrics]]:
    """One model's windows of the bundled ServeGen rate trace, stamped at each window's **end**.

    ``decode_tps`` = output tokens/s × ``scale``, ``prefill_tps`` = input tokens/s × ``scale``
    (no cache hits are given, so all count as missed). Gap windows carry no metrics (hold).
    """
    df = read_csv(Path(path), "ServeGen rate CSV")
    rows = df[df["model"] == model].sort_values("window_start_s")
    cols = ("window_start_s", "window_s", "is_gap", "output_tokens_per_s", "input_tokens_per_s")
    out: list[tuple[float, ServiceMetrics]] = []
    for start, length, gap, out_tps, in_tps in zip(*(rows[c].astype(float).tolist() for c in cols), strict=True):
        end = start + length
        if gap or math.isnan(out_tps):
            out.append((end, ServiceMetrics()))
        else:
            out.append((end, ServiceMetrics(decode_tps=out_tps * scale, prefill_tps=in_tps * scale)))
    return out


class OpenLoopResult(Frozen):
    """Decisions of an open-loop replay and the capacity they left for the next window."""

    decisions: list[Decision] = Field(description="One decision per cycle.")
    times: list[float] = Field(description="Cycle times (s).")
    flaps: FlapStats = Field(description="Actions and reversals.")
    short_windows: float = Field(ge=0, le=1, description="Share of windows whose load exceeded the units set before.")
    mean_units: float = Field(ge=0, description="Mean units held.")
    mean_needed_units: float = Field(ge=0, description="Mean of each window's load in (fractional) units.")


def open_loop(
    config: ServicePolicy,
    series: Sequence[tuple[float, ServiceMetrics]],
    unit: tuple[int, int],
    start_units: int,
    within_s: float = 1800.0,
) -> OpenLoopResult:
    """Replay ``series`` through :func:`decide`; each target is the next cycle's supply.

    A window is *short* when its decode load needs more decode pods than the units set at the
    previous cycle hold (the load it had to be served with).
    """
    target_tps = config.proportional.target_decode_tps_per_pod
    state = ServicePolicyState()
    supply = start_units
    decisions: list[Decision] = []
    times: list[float] = []
    short = counted = 0
    held = needed = 0.0
    for now, m in series:
        if m.decode_tps is not None and target_tps is not None:
            need = m.decode_tps / target_tps / unit[1]
            counted += 1
            short += need > supply
            held += supply
            needed += need
        d, state = decide(config, state, now, m, supply, 0, unit)
        decisions.append(d)
        times.append(now)
        supply = d.target_units
    days = (times[-1] - times[0] + (times[1] - times[0] if len(times) > 1 else DAY_S)) / DAY_S if times else 1.0
    return OpenLoopResult(
        decisions=decisions,
        times=times,
        flaps=flap_stats(zip(times, (d.action for d in decisions), strict=True), days, within_s),
        short_windows=short / counted if counted else 0.0,
        mean_units=held / counted if counted else 0.0,
        mean_needed_units=needed / counted if counted else 0.0,
    )
