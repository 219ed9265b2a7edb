"""The one-call API an existing autoscaler uses once per control cycle.

``Autoscaler(config).step(now, metrics, instance)`` runs the policy engine (*how many*), turns its
decisions into scaling requests, places them (*where*) with greedy, CP-SAT or MILP, verifies the
plan and returns a :class:`CycleDecision`. The state (policy histories, cooldown clocks, units still
starting) is explicit and serialises to JSON, so a restart from saved state continues exactly as an
uninterrupted run would. Infeasibility is fed back: the next cycle counts what was really placed.

Soft scale-in (paper §3.6, ``stability.soft_scale_in_s`` > 0): a scale-in's pods are chosen by the
placement engine and drained (:mod:`hetero_opt.drain`), reinstated if demand returns within the
window, deleted when it ends. :meth:`CycleDecision.apply` applies what the cycle placed and deleted.

Ratio moves (``prefill_guard.move_ratio``, default on): when the prefill guard sizes pods with a unit
``p':d`` other than the instance's ``p:d`` (within the profile's curated bounds), every group of the
service gets its prefill pods changed to the new unit first (:mod:`hetero_opt.ratio_move`, all or
nothing, placed greedily), then the cycle's units are placed at ``p':d``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field, ValidationError

from hetero_opt.drain import DrainBatch, expire, reinstate, without_draining
from hetero_opt.errors import InputError
from hetero_opt.instance import Frozen, Instance, ScalingRequest, Service, current_units, require_instance
from hetero_opt.placement.apply import apply_plan
from hetero_opt.placement.plan import Plan
from hetero_opt.placement.result import PlacementResult
from hetero_opt.placement.solve import check_options, check_solver, is_number, solve
from hetero_opt.policy.config import AutoscalerConfig
from hetero_opt.policy.engine import EngineState, PolicyEngine, ServiceMetrics, ServicePolicyState
from hetero_opt.ratio_move import RatioMove, apply_move, can_move, plan_move

#: Bounds that keep every stored time (``now + startup_delay_s``) finite and exact to the millisecond.
MAX_TIME_S = 1e15
MAX_STARTUP_DELAY_S = 1e9


def _gpus_per_pd_pod(svc: Service) -> tuple[int, int] | None:
    """GPUs one step of ``p`` and of ``d`` of the service's unit take (a MoE prefill step is its attention and
    FFN pods); None for a single-role service (its budget uses the policy's ``gpus_per_pod``)."""
    if svc.is_single_role:
        return None
    ppu = svc.pods_per_unit
    p, d = svc.pd_ratio.prefill, svc.pd_ratio.decode
    prefill = sum(svc.role(r).gpus_per_pod * n for r, n in ppu.items() if r != "decode")
    return prefill // p, svc.role("decode").gpus_per_pod * ppu["decode"] // d


class Starting(Frozen):
    """Units placed at some time that are not ready yet."""

    ready_at: float = Field(description="Time (s) the units become ready.")
    units: int = Field(ge=1, description="Units starting.")


class AutoscalerState(Frozen):
    """Everything the autoscaler remembers between cycles."""

    engine: EngineState = Field(default_factory=EngineState, description="Policy engine state.")
    starting: dict[str, list[Starting]] = Field(default_factory=dict, description="Units still starting, per service.")
    draining: dict[str, list[DrainBatch]] = Field(
        default_factory=dict, description="Soft scale-in: units drained and not yet deleted, per service, oldest first."
    )
    last_time: float | None = Field(default=None, description="Time of the last cycle (s).")


class ServiceCycle(Frozen):
    """One service's outcome in one cycle."""

    service: str = Field(description="Service id.")
    action: str = Field(description="out, in or none.")
    rule: str = Field(description="Policy rule that decided.")
    reason: str = Field(description="The rule that fired and its numbers.")
    current_units: int = Field(description="Units serving or starting at the start of the cycle (draining excluded).")
    starting_units: int = Field(description="Of those, units still starting.")
    wanted_units: int = Field(description="Target units the policy asked for.")
    placed_units: int = Field(description="Units serving or starting after the cycle (what really happened).")
    draining_units: int = Field(default=0, ge=0, description="Units draining after the cycle (still in the cluster).")
    draining_pods: dict[str, int] = Field(default_factory=dict, description="Draining pods per role after the cycle.")
    drained_units: int = Field(default=0, ge=0, description="Units this cycle started draining.")
    reinstated_units: int = Field(default=0, ge=0, description="Draining units this cycle took back into service.")
    deleted_units: int = Field(default=0, ge=0, description="Drained units this cycle deleted (window ended).")
    unserved_reason: str = Field(default="", description="Why placement fell short, if it did.")
    unit: tuple[int, int] = Field(description="The service's (p, d) after the cycle (a ratio move changes it).")
    wanted_unit: tuple[int, int] = Field(description="(p, d) the policy sized pods with (the prefill guard's move).")
    alerts: tuple[str, ...] = Field(default=(), description="Alerts: prefill short at the bound, ratio moves.")
    moved_from: tuple[int, int] | None = Field(
        default=None, description="(p, d) before this cycle's ratio move; None when the ratio did not move."
    )
    target_utilisation: float | None = Field(
        default=None, description="Share of the per-pod figures the policy sized at (SLO-tuned headroom); None = n/a."
    )


class CycleDecision(Frozen):
    """Decisions, placement and new state of one control cycle."""

    time: float = Field(description="Cycle time (s).")
    services: list[ServiceCycle] = Field(description="Per service, sorted by id.")
    placement: PlacementResult | None = Field(description="Verified placement applied now; None if no change.")
    drain: PlacementResult | None = Field(
        default=None, description="Soft scale-in: the verified scale-in whose pods start draining (not applied)."
    )
    deleted: Plan | None = Field(default=None, description="Drained pods deleted now (their window ended).")
    moves: list[RatioMove] = Field(
        default_factory=list, description="Ratio moves applied now, before the placement (prefill pods per group)."
    )
    state: AutoscalerState = Field(description="State after this cycle.")
    warnings: tuple[str, ...] = Field(
        default=(), description="What the cycle ignored, e.g. metrics of a service that is not configured."
    )

    def apply_moves(self, instance: Instance) -> Instance:
        """``instance`` once this cycle's ratio moves have run (new units, prefill pods changed)."""
        for m in self.moves:
            instance = apply_move(instance, m)
        return instance

    def apply(self, instance: Instance) -> Instance:
        """``instance`` once this cycle's ratio moves, placement and deletions have run (draining pods stay)."""
        instance = self.apply_moves(require_instance(instance, "CycleDecision.apply()"))
        if self.placement is not None:
            instance = apply_plan(instance, self.placement.plan)
        if self.deleted is not None:
            instance = apply_plan(instance, self.deleted)
        return instance


def _record_action(state: EngineState, before: EngineState, sid: str, action: str, now: float) -> EngineState:
    """``state`` with ``sid``'s last scale-out and scale-in times those of ``action`` taken at ``now``."""
    old = before.services.get(sid, ServicePolicyState())
    new = state.services.get(sid, ServicePolicyState()).model_copy(
        update={
            "last_scale_out_at": now if action == "out" else old.last_scale_out_at,
            "last_scale_in_at": now if action == "in" else old.last_scale_in_at,
        }
    )
    return state.model_copy(update={"services": {**state.services, sid: new}})


def _some(names: list[str], most: int = 5) -> str:
    """``names`` quoted, at most ``most`` of them and how many more."""
    shown = ", ".join(repr(n) for n in names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


class Autoscaler:
    """Policy engine + placement + verification, one call per cycle.

    Parameters
    ----------
    config
        Policies per service (``hetero_opt.policy.config``).
    solver
        Placement solver: ``greedy``, ``cpsat``, ``milp`` or ``milp-cbc`` (refused here if it is none of them).
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
        if not isinstance(config, AutoscalerConfig):
            raise InputError(
                f"Autoscaler() takes an AutoscalerConfig, not {type(config).__name__}: "
                "use load_policy_config(path) or AutoscalerConfig.model_validate(dict)"
            )
        check_solver(solver, "Autoscaler")
        check_options(time_limit, seed, 1, "Autoscaler")
        if not (is_number(startup_delay_s) and 0 <= startup_delay_s <= MAX_STARTUP_DELAY_S):  # NaN compares False
            raise InputError(f"Autoscaler: startup_delay_s={startup_delay_s!r} must be in 0..{MAX_STARTUP_DELAY_S:g} s")
        self.config = config
        self.solver = solver
        self.time_limit = time_limit
        self.seed = seed
        self.startup_delay_s = startup_delay_s
        self.engine = PolicyEngine(config)
        self._policies = config.by_service()
        self.state = state or AutoscalerState()

    def step(
        self, now: float, metrics: Mapping[str, ServiceMetrics | Mapping[str, Any]], instance: Instance
    ) -> CycleDecision:
        """Run one cycle at time ``now`` on the live cluster ``instance``; updates :attr:`state`.

        ``metrics`` maps a service id to its :class:`ServiceMetrics`, or to a mapping of their fields
        (validated into one: a bad field raises :class:`InputError` naming the service, field and value).
        """
        if not (is_number(now) and abs(now) <= MAX_TIME_S):  # NaN compares False
            raise InputError(f"Autoscaler: now={now!r} must be a finite time in seconds within ±{MAX_TIME_S:g}")
        if not isinstance(metrics, Mapping):
            raise InputError(
                f"Autoscaler: metrics must map service ids to ServiceMetrics, not be of type {type(metrics).__name__}"
            )
        require_instance(instance, "Autoscaler.step()")
        if self.state.last_time is not None and now < self.state.last_time:
            raise InputError(f"Autoscaler: now={now} is before the last cycle {self.state.last_time}")
        services = {s.id: s for s in instance.services}
        configured = sorted(s.service for s in self.config.services)
        for sid in configured:
            if sid not in services:
                raise InputError(f"Autoscaler: service '{sid}' is configured but not in the instance")
        ignored = sorted(set(metrics) - set(configured))
        warnings = (
            (f"metrics for {_some(ignored)} ignored: not a configured service ({_some(configured)})",)
            if ignored
            else ()
        )
        observed = {sid: _metrics(sid, metrics[sid]) for sid in configured if sid in metrics}
        stability = {sid: self._policies[sid].stability for sid in configured}
        draining = {sid: list(self.state.draining.get(sid, [])) for sid in configured}
        total = {sid: current_units(instance, sid) for sid in configured}
        held = {sid: sum(b.units for b in draining[sid]) for sid in configured}
        cur = {sid: max(0, total[sid] - held[sid]) for sid in configured}
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
            observed,
            {sid: cur[sid] - n_starting[sid] for sid in configured},
            n_starting,
            unit,
            startup_delay_s=self.startup_delay_s,
            gpus_per_pod={sid: g for sid in configured if (g := _gpus_per_pd_pod(services[sid])) is not None},
        )
        moves: list[RatioMove] = []
        move_alert: dict[str, str] = {}
        before = dict(unit)
        for sid in configured:
            want = decisions[sid].unit or unit[sid]
            if want == unit[sid] or not self._policies[sid].prefill_guard.move_ratio or not can_move(services[sid]):
                continue
            if draining[sid]:  # the drain batches hold pods of the current unit
                move_alert[sid] = (f"ratio move {unit[sid][0]}P:{unit[sid][1]}D → {want[0]}P:{want[1]}D deferred: "
                                   f"{_units(sum(b.units for b in draining[sid]))} still draining (soft scale-in)")
                continue
            move, why = plan_move(instance, sid, want, solver="greedy", time_limit=self.time_limit, seed=self.seed)
            if move is None:
                move_alert[sid] = why
                continue
            moves.append(move)
            instance = apply_move(instance, move, release_removed=False)  # freed GPUs wait a cycle
            unit[sid] = want
            services[sid] = next(s for s in instance.services if s.id == sid)
        wanted: dict[str, int] = {}
        reinstated: dict[str, int] = {}
        deleted: dict[str, list[DrainBatch]] = {}
        hard: list[ScalingRequest] = []
        soft: list[ScalingRequest] = []
        for sid in configured:
            svc = services[sid]
            wanted[sid] = min(max(decisions[sid].target_units, svc.min_units), svc.max_units)
            reinstated[sid], draining[sid] = reinstate(
                draining[sid], max(0, wanted[sid] - cur[sid]), svc.pods_per_unit
            )
            active = cur[sid] + reinstated[sid]
            deleted[sid], draining[sid] = expire(draining[sid], now, stability[sid].soft_scale_in_s)
            still = sum(b.units for b in draining[sid]) + sum(b.units for b in deleted[sid])
            if wanted[sid] > active or (wanted[sid] < active and stability[sid].soft_scale_in_s <= 0):
                hard.append(ScalingRequest(service=sid, target_units=wanted[sid] + still))
            elif wanted[sid] < active:
                soft.append(ScalingRequest(service=sid, target_units=wanted[sid]))
        result = self._solve(instance, hard)
        drain = None
        if soft:  # the next pods to drain are chosen among those not already draining
            all_draining = [b for sid in configured for b in draining[sid] + deleted[sid]]
            drain = self._solve(without_draining(instance, all_draining), soft)
        placed = result.plan.units_by_service() if result else {}
        drained = drain.plan.units_by_service() if drain else {}
        unserved = {u.service: u.reason for r in (result, drain) if r for u in r.plan.unserved}
        rows = []
        for sid in configured:
            got = placed.get(sid, 0)
            if got > 0:
                starting.setdefault(sid, []).append(Starting(ready_at=now + self.startup_delay_s, units=got))
            if drain is not None and drained.get(sid):
                changes = sorted((c for c in drain.plan.changes if c.service == sid), key=lambda c: c.group)
                draining[sid].append(DrainBatch(since=now, changes=changes))
            d = decisions[sid]
            wanted_unit = d.unit or unit[sid]
            alerts = d.alerts + ((move_alert[sid],) if sid in move_alert else ())
            if wanted_unit[0] > unit[sid][0]:  # a surplus move only saves GPUs: wanted_unit shows it
                alerts += (
                    f"prefill short at {unit[sid][0]}P:{unit[sid][1]}D: {wanted_unit[0]}P:{wanted_unit[1]}D wanted; "
                    "placement keeps the service's ratio until its groups are redeployed at the new one",
                )
            pods: dict[str, int] = {}
            for b in draining[sid]:
                for role, n in b.pods_by_role().items():
                    pods[role] = pods.get(role, 0) + n
            action, reason = d.action, d.reason
            if wanted[sid] != d.target_units:  # the instance's bounds, narrower than the policy's
                svc = services[sid]
                reason += f"; instance bounds [{svc.min_units}, {svc.max_units}] clamp {d.target_units} → {wanted[sid]}"
                action = "out" if wanted[sid] > cur[sid] else "in" if wanted[sid] < cur[sid] else "none"
                if action != d.action:  # the cooldowns count the action taken, not the one the policy chose
                    engine_state = _record_action(engine_state, self.state.engine, sid, action, now)
            rows.append(
                ServiceCycle(
                    service=sid,
                    action=action,
                    rule=d.rule,
                    reason=reason,
                    current_units=cur[sid],
                    starting_units=n_starting[sid],
                    wanted_units=wanted[sid],
                    placed_units=cur[sid] + reinstated[sid] + got + drained.get(sid, 0),
                    draining_units=sum(b.units for b in draining[sid]),
                    draining_pods=dict(sorted(pods.items())),
                    drained_units=-drained.get(sid, 0),
                    reinstated_units=reinstated[sid],
                    deleted_units=sum(b.units for b in deleted[sid]),
                    unserved_reason=unserved.get(sid, ""),
                    unit=unit[sid],
                    wanted_unit=wanted_unit,
                    alerts=alerts,
                    moved_from=before[sid] if before[sid] != unit[sid] else None,
                    target_utilisation=d.target_utilisation,
                )
            )
        dels = [c for sid in configured for b in deleted[sid] for c in b.changes]
        self.state = AutoscalerState(
            engine=engine_state,
            starting=starting,
            draining={sid: b for sid, b in draining.items() if b},
            last_time=now,
        )
        return CycleDecision(
            time=now,
            services=rows,
            placement=result,
            drain=drain,
            deleted=Plan(changes=dels) if dels else None,
            moves=moves,
            state=self.state,
            warnings=warnings,
        )

    def _solve(self, instance: Instance, requests: list[ScalingRequest]) -> PlacementResult | None:
        if not requests:
            return None
        cycle = instance.model_copy(update={"requests": requests})
        return solve(cycle, self.solver, time_limit=self.time_limit, seed=self.seed)

    def save_state(self) -> str:
        """The state as JSON."""
        return self.state.model_dump_json()


def _metrics(sid: str, value: object) -> ServiceMetrics:
    """Service ``sid``'s metrics as :class:`ServiceMetrics` (a mapping of its fields is validated into one)."""
    if isinstance(value, ServiceMetrics):
        return value
    if not isinstance(value, Mapping):
        raise InputError(
            f"Autoscaler: metrics['{sid}'] is of type {type(value).__name__}, "
            "not ServiceMetrics or a mapping of its fields"
        )
    try:
        return ServiceMetrics.model_validate(value)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(map(str, err["loc"]))
        raise InputError(f"Autoscaler: metrics['{sid}'].{field}={err.get('input')!r}: {err['msg']}") from None


def _units(n: int) -> str:
    """``n`` unit(s), in words."""
    return f"{n} unit" if n == 1 else f"{n} units"
