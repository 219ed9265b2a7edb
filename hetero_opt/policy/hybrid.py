"""The hybrid policy: proportional control drives, latency tiers only ever add capacity, and the
capacity latency added is remembered, so the two layers never undo each other.

Supply is split in two: ``latency_units`` added by the latency layer (remembered in
:class:`HybridMemory`) and the rest, which Algorithm 2 sizes on its own. The target is
``proportional's target for its share + latency_units``. A latency scale-out raises the target to
its tier's step and remembers the excess over proportional. Proportional never sees those units, so
it cannot remove them; they are released only after every latency signal has stayed in the relaxed
(γ) tier for ``release_hold_s``.
"""

from __future__ import annotations

from pydantic import Field

from hetero_opt.policy._base import Frozen
from hetero_opt.policy.feedback import FeedbackResult
from hetero_opt.policy.proportional import ProportionalResult
from hetero_opt.policy.stability import Action, action_for


class HybridMemory(Frozen):
    """What the hybrid policy remembers about latency-added capacity."""

    latency_units: int = Field(default=0, ge=0, description="Units the latency layer added and still holds.")
    relaxed_since: float | None = Field(
        default=None, description="Since when every latency signal has been relaxed (γ tier); None = not relaxed."
    )


class HybridResult(Frozen):
    """Combined decision of the proportional driver and the latency safety layer."""

    action: Action = Field(description="out, in or none.")
    target_units: int = Field(ge=0, description="Target units.")
    proportional_units: int = Field(ge=0, description="Proportional's target for its share of supply.")
    driver: str = Field(description="Which layer set the target: proportional or latency.")
    memory: HybridMemory = Field(description="Latency-added units and relaxation clock after this cycle.")
    reason: str = Field(description="Both layers' reasons.")


def proportional_share(supply_units: int, memory: HybridMemory) -> int:
    """Units Algorithm 2 sizes: supply without the remembered latency-added units."""
    return max(0, supply_units - memory.latency_units)


def combine(
    proportional: ProportionalResult,
    latency: FeedbackResult,
    supply_units: int,
    memory: HybridMemory,
    now: float,
    release_hold_s: float,
    relaxed: bool,
) -> HybridResult:
    """Combine the layers for one cycle.

    Parameters
    ----------
    proportional
        Algorithm 2 run on :func:`proportional_share` of the supply.
    latency
        Algorithm 3 run on the whole supply with scale-in disabled (``allow_in=False``).
    supply_units
        All units counted as supply.
    memory
        The previous cycle's memory.
    now
        Current time (s).
    release_hold_s
        How long latency must stay relaxed before its units are released.
    relaxed
        Every latency signal is present and in the relaxed (γ) tier this cycle.
    """
    held = min(memory.latency_units, supply_units)
    relaxed_since = (memory.relaxed_since if memory.relaxed_since is not None else now) if relaxed else None
    why_hold = ""
    if held and relaxed_since is not None and now - relaxed_since >= release_hold_s:
        why_hold = f"; latency relaxed since {relaxed_since:g} s (≥ {release_hold_s:g} s): {held} units released"
        held = 0
    elif held:
        why_hold = f"; {held} latency-added units held"
    target = proportional.target_units + held
    driver = "proportional"
    if latency.action == "out" and latency.target_units > target:
        target = latency.target_units
        driver = "latency"
    new_memory = HybridMemory(latency_units=max(0, target - proportional.target_units), relaxed_since=relaxed_since)
    reason = f"[proportional] {proportional.reason}; [latency] {latency.reason}{why_hold}"
    return HybridResult(
        action=action_for(supply_units, target),
        target_units=target,
        proportional_units=proportional.target_units,
        driver=driver,
        memory=new_memory,
        reason=reason,
    )
