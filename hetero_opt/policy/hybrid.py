"""The hybrid policy: proportional control drives, latency tiers only ever add capacity."""

from __future__ import annotations

from pydantic import Field

from hetero_opt.policy._base import Frozen
from hetero_opt.policy.feedback import FeedbackResult
from hetero_opt.policy.proportional import ProportionalResult
from hetero_opt.policy.stability import Action, action_for


class HybridResult(Frozen):
    """Combined decision of the proportional driver and the latency safety layer."""

    action: Action = Field(description="out, in or none.")
    target_units: int = Field(ge=0, description="Target units.")
    driver: str = Field(description="Which layer set the target: proportional or latency.")
    reason: str = Field(description="Both layers' reasons.")


def combine(proportional: ProportionalResult, latency: FeedbackResult, supply_units: int) -> HybridResult:
    """Take the proportional target, raised to the latency target when latency scales out.

    A latency scale-in is ignored (the safety layer can only add); a latency scale-out
    overrides a proportional scale-in or no-change.
    """
    target = proportional.target_units
    driver = "proportional"
    if latency.action == "out" and latency.target_units > target:
        target = latency.target_units
        driver = "latency"
    reason = f"[proportional] {proportional.reason}; [latency] {latency.reason}"
    return HybridResult(action=action_for(supply_units, target), target_units=target, driver=driver, reason=reason)
