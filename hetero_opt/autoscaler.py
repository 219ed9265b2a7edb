"""The one-call API an existing autoscaler uses once per control cycle.

``Autoscaler(config).step(now, metrics, instance)`` runs the policy engine (*how many*), turns its
decisions into scaling requests, places them (*where*) with greedy, CP-SAT or MILP, verifies the
plan and returns a :class:`CycleDecision`. The state (policy histories, cooldown clocks, units still
starting) is explicit and serialises to JSON, so a restart from saved state continues exactly as an
uninterrupted run would. Infeasibility is fed back: the next cycle counts what was really placed.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import Field

from hetero_opt.errors import InputError
from hetero_opt.instance import Frozen, Instance, ScalingRequest, current_units
from hetero_opt.placement.apply import apply_plan
from hetero_opt.placement.result import PlacementResult
from hetero_opt.placement.solve import solve
from hetero_opt.policy.config import AutoscalerConfig
from hetero_opt.policy.engine import EngineState, PolicyEngine, ServiceMetrics


class Starting(Frozen):
    """Units placed at some time that are not ready yet."""

    ready_at: float = Field(description="Time (s) the units become ready.")
    units: int = Field(ge=1, description="Units starting.")


class AutoscalerState(Frozen):
    """Everything the autoscaler remembers between cycles."""

    engine: EngineState = Field(default_factory=EngineState, description="Policy engine state.")
    starting: dict[str, list[Starting]] = Field(default_factory=dict, description="Units still starting, per service.")
    last_time: float | None = Field(default=None, description="Time of the last cycle (s).")


class ServiceCycle(Frozen):
    """One service's outcome in one cycle."""

    service: str = Field(description="Service id.")
    action: str = Field(description="out, in or none.")
    rule: str = Field(description="Policy rule that decided.")
    reason: str = Field(description="The rule that fired and its numbers.")
    current_units: int = Field(description="Units in the cluster at the start of the cycle.")
    starting_units: int = Field(description="Of those, units still starting.")
    wanted_units: int = Field(description="Target units the policy asked for.")
    placed_units: int = Field(description="Target units after placement (what really happened).")
    unserved_reason: str = Field(default="", description="Why placement fell short, if it did.")
    unit: tuple[int, int] = Field(description="The service's (p, d) in the instance; placement keeps it.")
    wanted_unit: tuple[int, int] = Field(description="(p, d) the policy sized pods with (the prefill guard's move).")
    alerts: tuple[str, ...] = Field(default=(), description="Alerts: prefill short at the bound, ratio moves.")


class CycleDecision(Frozen):
    """Decisions, placement and new state of one control cycle."""

    time: float = Field(description="Cycle time (s).")
    services: list[ServiceCycle] = Field(description="Per service, sorted by id.")
    placement: PlacementResult | None = Field(description="Verified placement; None if no change.")
    state: AutoscalerState = Field(description="State after this cycle.")

    def apply(self, instance: Instance) -> Instance:
        """``instance`` once this cycle's plan has run (unchanged when nothing was placed)."""
        return instance if self.placement is None else apply_plan(instance, self.placement.plan)


class Autoscaler:
    """Policy engine + placement + verification, one call per cycle.

    Parameters
    ----------
    config
        Policies per service (``hetero_opt.policy.config``).
    solver
        Placement solver: ``greedy``, ``cpsat``, ``milp``.
    time_limit, seed
        Passed to :func:`hetero_opt.solve`.
    startup_delay_s
        How long placed units stay "starting" (counted as supply, not yet serving).
    state
        State to resume from (e.g. ``AutoscalerState.model_validate_json(saved)``).
    """

    def __init__(
        self,
        config: AutoscalerConfig,
        solver: str = "cpsat",
        *,
        time_limit: float = 2.0,
        seed: int = 0,
        startup_delay_s: float = 120.0,
        state: AutoscalerState | None = None,
    ) -> None:
        self.config = config
        self.solver = solver
        self.time_limit = time_limit
        self.seed = seed
        self.startup_delay_s = startup_delay_s
        self.engine = PolicyEngine(config)
        self.state = state or AutoscalerState()

    def step(self, now: float, metrics: Mapping[str, ServiceMetrics], instance: Instance) -> CycleDecision:
        """Run one cycle at time ``now`` on the live cluster ``instance``; updates :attr:`state`."""
        if self.state.last_time is not None and now < self.state.last_time:
            raise InputError(f"Autoscaler: now={now} is before the last cycle {self.state.last_time}")
        services = {s.id: s for s in instance.services}
        configured = sorted(s.service for s in self.config.services)
        for sid in configured:
            if sid not in services:
                raise InputError(f"Autoscaler: service '{sid}' is configured but not in the instance")
        cur = {sid: current_units(instance, sid) for sid in configured}
        starting: dict[str, list[Starting]] = {}
        for sid in configured:
            left = [s for s in self.state.starting.get(sid, []) if s.ready_at > now]
            if left:
                starting[sid] = left
        n_starting = {sid: min(cur[sid], sum(s.units for s in starting.get(sid, []))) for sid in configured}
        unit = {sid: (services[sid].pd_ratio.prefill, services[sid].pd_ratio.decode) for sid in configured}
        decisions, engine_state = self.engine.step(
            self.state.engine,
            now,
            metrics,
            {sid: cur[sid] - n_starting[sid] for sid in configured},
            n_starting,
            unit,
        )
        requests = []
        wanted: dict[str, int] = {}
        for sid in configured:
            svc = services[sid]
            wanted[sid] = min(max(decisions[sid].target_units, svc.min_units), svc.max_units)
            if wanted[sid] != cur[sid]:
                requests.append(ScalingRequest(service=sid, target_units=wanted[sid]))
        result: PlacementResult | None = None
        placed: dict[str, int] = {}
        unserved: dict[str, str] = {}
        if requests:
            cycle = instance.model_copy(update={"requests": requests})
            result = solve(cycle, self.solver, time_limit=self.time_limit, seed=self.seed)
            placed = result.plan.units_by_service()
            unserved = {u.service: u.reason for u in result.plan.unserved}
        rows = []
        for sid in configured:
            got = placed.get(sid, 0)
            if got > 0:
                starting.setdefault(sid, []).append(Starting(ready_at=now + self.startup_delay_s, units=got))
            d = decisions[sid]
            wanted_unit = d.unit or unit[sid]
            alerts = d.alerts
            if wanted_unit != unit[sid]:
                alerts += (
                    f"P:D move {unit[sid][0]}P:{unit[sid][1]}D → {wanted_unit[0]}P:{wanted_unit[1]}D wanted; "
                    "placement keeps the service's ratio until its groups are redeployed at the new one",
                )
            rows.append(
                ServiceCycle(
                    service=sid,
                    action=d.action,
                    rule=d.rule,
                    reason=d.reason,
                    current_units=cur[sid],
                    starting_units=n_starting[sid],
                    wanted_units=wanted[sid],
                    placed_units=cur[sid] + got,
                    unserved_reason=unserved.get(sid, ""),
                    unit=unit[sid],
                    wanted_unit=wanted_unit,
                    alerts=alerts,
                )
            )
        self.state = AutoscalerState(engine=engine_state, starting=starting, last_time=now)
        return CycleDecision(time=now, services=rows, placement=result, state=self.state)

    def save_state(self) -> str:
        """The state as JSON."""
        return self.state.model_dump_json()
