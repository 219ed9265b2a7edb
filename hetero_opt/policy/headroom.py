"""SLO-tuned headroom (decision 64): the target utilisation follows the service's own short cycles.

Curation (decision 63) picks a target utilisation ``u`` from a trace; the workload then drifts
(ServeGen's second week needs 0.6 where its first needs 0.8). Here the engine lowers ``u`` by one
``step`` when more than ``short_budget`` of the cycles in a ``window_s`` were *short* (mean TTFT or
TBT above its SLO target, or the prefill pool saturated), and raises it back one step, never above
the configured ``u``, after a window without one. A slow outer loop (one step a window) around the
fast proportional loop: it changes how much capacity a unit of demand gets, never the demand read.
"""

from __future__ import annotations

from pydantic import Field

from hetero_opt.policy._base import Frozen


class HeadroomConfig(Frozen):
    """``headroom``: the SLO-tuned target utilisation (proportional and hybrid only)."""

    adaptive: bool = Field(default=True, description="Tune the target utilisation from the short cycles seen.")
    floor: float = Field(default=0.5, gt=0, le=1, description="Lowest target utilisation it may go to.")
    step: float = Field(default=0.05, gt=0, le=0.5, description="Change per window (target utilisation).")
    window_s: float = Field(
        default=86_400.0, ge=60, le=30 * 86_400, description="Window the short cycles are counted over (s)."
    )
    short_budget: float = Field(
        default=0.005, ge=0, lt=1, description="Share of a window's cycles that may be short before it lowers."
    )


#: Steps down after which a window no less short than the one that began them holds the utilisation.
FUTILE_STEPS = 3


class HeadroomMemory(Frozen):
    """The tuned target utilisation and the current window's counts."""

    utilisation: float | None = Field(default=None, gt=0, le=1, description="Tuned value; None = the configured.")
    window_start: float | None = Field(default=None, description="Start of the current window (s).")
    cycles: int = Field(default=0, ge=0, description="Cycles seen in the current window.")
    short: int = Field(default=0, ge=0, description="Short cycles in the current window.")
    lowered_at: float | None = Field(
        default=None, ge=0, le=1,
        description="Short share of the window that began the current run of steps down; None after a window "
        "within budget.",
    )
    steps_down: int = Field(default=0, ge=0, description="Steps down in the current run.")


def tune(
    cfg: HeadroomConfig, memory: HeadroomMemory, configured: float, now: float, short: bool | None
) -> tuple[HeadroomMemory, float, str]:
    """Count this cycle, close the window if it is over; (memory, the utilisation to size at, why it changed).

    ``short`` None: no reading this cycle (a gap in the metrics); it neither counts nor changes anything.

    A window closes at the first cycle at least ``window_s`` after it opened: more than ``short_budget``
    of its cycles short lowers the utilisation one step (not below ``floor``, or ``configured`` where that
    is lower: a short window never raises it), none short raises it one step (not above ``configured``);
    between the two it stays. A window over budget right after a step down, with no smaller share of short
    cycles than the one that made it, holds instead: more headroom did not help (a latency target no
    capacity meets, say), and capacity is not added for nothing.
    """
    current = configured if memory.utilisation is None else min(memory.utilisation, configured)
    if short is None:
        return memory, current, ""
    if memory.window_start is None or now < memory.window_start:  # the first cycle, or the clock went back
        return HeadroomMemory(utilisation=current, window_start=now, cycles=1, short=int(short)), current, ""
    cycles, shorts = memory.cycles + 1, memory.short + int(short)
    if now - memory.window_start < cfg.window_s:
        return memory.replace(utilisation=current, cycles=cycles, short=shorts), current, ""
    share = shorts / cycles
    new, lowered_at, steps, why = current, memory.lowered_at, memory.steps_down, ""
    counted = f"{shorts} of {cycles} cycles short in {now - memory.window_start:g} s (budget {cfg.short_budget:.1%})"
    if share > cfg.short_budget and lowered_at is not None and steps >= FUTILE_STEPS and share >= lowered_at:
        why = (f"; target utilisation held at {current:g}: {counted}, no fewer than before the last {steps} steps "
               "down (more headroom did not help)")
    elif share > cfg.short_budget:
        new = max(min(cfg.floor, current), round(current - cfg.step, 6))
        if new < current:
            lowered_at, steps = (share, 1) if lowered_at is None else (lowered_at, steps + 1)
    else:
        lowered_at, steps = None, 0
        if shorts == 0:
            new = min(configured, round(current + cfg.step, 6))
    if new != current:
        why = f"; target utilisation {current:g} → {new:g}: {counted}"
    memory = HeadroomMemory(utilisation=new, window_start=now, cycles=0, short=0, lowered_at=lowered_at,
                            steps_down=steps)
    return memory, new, why
