"""The closed loop: simulate a control window, emit metrics, run the autoscaler, apply the plan.

Every ``control_period_s`` the engine (request or fluid) closes a :class:`Window` per service;
its numbers become the :class:`ServiceMetrics` the :class:`Autoscaler` consumes; the verified
plan is applied to the cluster instance (``placement.apply.apply_plan``) and the pods it adds start
after ``startup_delay_s`` on the GPU type and S1 they were placed on, which set their speed; the
pods it removes drain first. After the last arrival the loop stops scaling and lets requests finish.

What the loop carries from one cycle to the next is one :class:`LoopState`; with a
:class:`~hetero_opt.sim.checkpoint.Checkpoint` it is saved at cycle boundaries, and a run resumed
from it gives the outputs of an uninterrupted run.
"""

from __future__ import annotations

import pickle
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from hetero_opt.autoscaler import Autoscaler, AutoscalerState
from hetero_opt.errors import InputError
from hetero_opt.instance import Instance, current_units
from hetero_opt.placement.apply import apply_plan
from hetero_opt.policy.config import AutoscalerConfig
from hetero_opt.policy.engine import ServiceMetrics
from hetero_opt.sim.checkpoint import MAX_SAVE_SHARE, Checkpoint, CheckpointError, SimInterrupted, dumps, fingerprint
from hetero_opt.sim.checkpoint import discard as discard_checkpoint
from hetero_opt.sim.checkpoint import load as load_checkpoint
from hetero_opt.sim.checkpoint import save as save_checkpoint
from hetero_opt.sim.config import SimConfig, check_against
from hetero_opt.sim.fluid_mode import FluidEngine, Load, spread_of
from hetero_opt.sim.perf import pod_perf
from hetero_opt.sim.pods import Pod, PodKey, pod_changes, pod_counts
from hetero_opt.sim.prom_export import PromExporter
from hetero_opt.sim.request_mode import STATUS_DONE, RequestEngine
from hetero_opt.sim.trace import RateTrace, RequestTrace, Trace, prefix_hits
from hetero_opt.sim.window import DROP_REASONS, Window

Mode = Literal["request", "fluid"]


@dataclass
class SimRun:
    """Everything a run produced."""

    cycles: pd.DataFrame
    requests: pd.DataFrame | None
    config: SimConfig
    mode: Mode
    trace_name: str
    arrivals: float
    completed: float
    dropped: dict[str, float]
    gpu_hours: float
    exporter: PromExporter
    extra: dict[str, Any] = field(default_factory=dict)


class PodBook:
    """The simulated pods of the current instance, kept in step with each applied plan (slotted: see
    :class:`~hetero_opt.sim.request_mode.RequestEngine`)."""

    __slots__ = ("gpus", "live", "next_id", "nodes", "pods", "service_of")

    def __init__(self, instance: Instance) -> None:
        self.nodes = {n.id: n for n in instance.nodes}
        self.gpus: dict[tuple[str, str], int] = {
            (s.id, str(r.name)): r.gpus_per_pod for s in instance.services for r in s.roles
        }
        self.service_of = {g.id: g.service for g in instance.groups}
        self.pods: list[Pod] = []
        self.live: dict[PodKey, list[Pod]] = {}
        self.next_id = 0
        for key, n in sorted(pod_counts(instance).items()):
            for _ in range(n):
                self._new(key, 0.0, 0.0)

    def _new(self, key: PodKey, now: float, ready_at: float) -> Pod:
        group, role, node = key
        nd = self.nodes[node]
        svc = self.service_of[group]
        pod = Pod(self.next_id, svc, role, group, node, nd.gpu_type, self.gpus[(svc, role)], nd.s1, now, ready_at)
        self.next_id += 1
        self.pods.append(pod)
        self.live.setdefault(key, []).append(pod)
        return pod

    def apply(self, before: Instance, after: Instance, now: float, delay: float) -> tuple[list[Pod], list[Pod]]:
        """Pods added (ready after ``delay``) and pods to drain, from the instance change."""
        for g in after.groups:
            self.service_of.setdefault(g.id, g.service)
        added, removed = pod_changes(before, after)
        new = [self._new(k, now, now + delay) for k, n in sorted(added.items()) for _ in range(n)]
        gone: list[Pod] = []
        for key, n in sorted(removed.items()):
            live = self.live[key]
            # unready pods go first (no work lost), then the newest
            live.sort(key=lambda p: (p.ready_at <= now, p.id))
            gone.extend(live[:n])
            del live[:n]
        return new, gone


def _metrics(w: Window) -> ServiceMetrics:
    dt = max(w.t1 - w.t0, 1e-9)
    ttft, tbt = w.latency_stats()
    return ServiceMetrics(
        decode_tps=w.decode_tokens / dt,
        prefill_tps=w.prefill_tokens / dt,
        ttft_ms=_finite(ttft.get("mean")),
        tbt_ms=_finite(tbt.get("mean")),
        prefill_gpu_util=min(100.0, 100 * w.prefill_busy_s / w.prefill_ready_s) if w.prefill_ready_s else None,
        decode_gpu_util=min(100.0, 100 * w.decode_busy_s / w.decode_ready_s) if w.decode_ready_s else None,
        prefill_ready_pods=w.ready_prefill,
        prefill_unready_pods=w.unready_prefill,
        decode_ready_pods=w.ready_decode,
        decode_unready_pods=w.unready_decode,
    )


def _finite(x: float | None) -> float | None:
    if x is None or not np.isfinite(x):
        return None
    return x


def _loads(trace: Trace, cfg: SimConfig, hits: np.ndarray | None, share: np.ndarray | None,
           period: float) -> dict[str, list[tuple[float, float, Load]]]:
    """Per service, offered load in windows: the trace's own windows, or request traces binned."""
    out: dict[str, list[tuple[float, float, Load]]] = {}
    for si, s in enumerate(cfg.services):
        rows: list[tuple[float, float, Load]] = []
        if isinstance(trace, RateTrace):
            frac = s.traffic_share / sum(x.traffic_share for x in cfg.services)
            for t0, w, r, mi, mo in zip(trace.start_s, trace.window_s, trace.rate_rps, trace.mean_input,
                                        trace.mean_output, strict=True):
                rows.append((float(t0), float(t0 + w), Load(r * w * frac, mi, mi, mo)))
        else:
            assert hits is not None
            assert share is not None
            mask = share == si
            t = trace.arrival_s[mask]
            inp, out_t, hit = trace.input_tokens[mask], trace.output_tokens[mask], hits[mask]
            n_bins = int(np.ceil(max(trace.duration_s, 1e-9) / period)) + 1
            idx = np.minimum((t // period).astype(int), n_bins - 1)
            cnt = np.bincount(idx, minlength=n_bins)
            si_ = np.bincount(idx, weights=inp, minlength=n_bins)
            sm_ = np.bincount(idx, weights=inp - hit, minlength=n_bins)
            so_ = np.bincount(idx, weights=out_t, minlength=n_bins)
            for b in range(n_bins):
                n = float(cnt[b])
                missed = (inp - hit)[idx == b]
                ld = Load(n, si_[b] / n, sm_[b] / n, so_[b] / n, spread_of(missed)) if n else Load(0.0, 0.0, 0.0, 0.0)
                rows.append((b * period, (b + 1) * period, ld))
        out[s.service] = rows
    return out


#: Most control periods one run simulates (60-s periods: almost two years).
MAX_CYCLES = 1_000_000


@dataclass
class LoopState:
    """Everything the closed loop carries from one control cycle to the next: what a checkpoint holds.

    The rest of a run (the trace, the config, its prefix hits and service split, the autoscaler's
    config) is derived from the inputs, which the checkpoint's fingerprint pins.
    """

    engine: RequestEngine | FluidEngine
    book: PodBook
    instance: Instance
    autoscaler: AutoscalerState
    exporter: PromExporter
    rows: list[dict[str, Any]] = field(default_factory=list)
    t: float = 0.0  # end of the last cycle simulated
    cycles: int = 0
    totals: dict[str, float] = field(
        default_factory=lambda: {"arrivals": 0.0, "completed": 0.0} | dict.fromkeys(DROP_REASONS, 0.0))
    gpu_seconds: float = 0.0
    wall_s: float = 0.0  # wall seconds of the loop in earlier, interrupted processes
    # rows only grow: each is pickled once, at the first save that holds it, and its bytes are kept
    # (a save then costs the cycles since the last one, not the whole run)
    row_chunks: list[bytes] = field(default_factory=list, repr=False)
    rows_pickled: int = 0

    def __getstate__(self) -> dict[str, Any]:
        assert len(self.rows) >= self.rows_pickled, "rows are only appended"
        if len(self.rows) > self.rows_pickled:
            self.row_chunks.append(dumps(self.rows[self.rows_pickled:]))
            self.rows_pickled = len(self.rows)
        return {**self.__dict__, "rows": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.rows = [row for chunk in self.row_chunks for row in pickle.loads(chunk)]


@dataclass(frozen=True)
class _Run:
    """What every cycle of one run reads and never changes."""

    cfg: SimConfig
    autoscaler: Autoscaler
    wanted: set[str]
    models: dict[str, str]
    slos: dict[str, float]
    end: float
    horizon: float


def check_trace_length(trace: Trace, cfg: SimConfig, where: str) -> None:
    """:class:`InputError` naming ``where`` (the trace file, for a user) when ``trace`` lasts more than
    :data:`MAX_CYCLES` control periods: times in ms read as s, or dates a century apart."""
    periods = trace.duration_s / cfg.control_period_s
    if periods > MAX_CYCLES:
        raise InputError(
            f"{where}: the trace lasts {trace.duration_s:g} s, {periods:.3g} control periods of "
            f"{cfg.control_period_s:g} s; at most {MAX_CYCLES:g} are simulated (are its times in the right unit?)"
        )


def simulate(
    trace: Trace,
    cfg: SimConfig,
    policy: AutoscalerConfig,
    instance: Instance,
    mode: Mode = "request",
    *,
    where: str = "simulate",
    on_cycle: Callable[[float, float], None] | None = None,
    checkpoint: Checkpoint | None = None,
    stop: Callable[[], bool] | None = None,
) -> SimRun:
    """Run the closed loop over ``trace`` on the cluster ``instance``; see the module docstring.

    With ``checkpoint``, the loop's state is saved to ``checkpoint.path`` at control-cycle
    boundaries, at most every ``checkpoint.every_s`` wall seconds, and a run that finds the file
    resumes from it (same inputs, else :class:`~hetero_opt.sim.checkpoint.CheckpointError`) to the
    same result as an uninterrupted run. ``stop`` is asked after every cycle but the last; when it
    answers true the state is saved (if ``checkpoint``) and :class:`~hetero_opt.sim.checkpoint.SimInterrupted`
    is raised (:class:`~hetero_opt.sim.checkpoint.SignalStop` answers true after SIGINT or SIGTERM).
    """
    check_against(cfg, policy, instance, where)
    check_trace_length(trace, cfg, where)
    if mode == "request" and isinstance(trace, RateTrace):
        from hetero_opt.sim.trace import requests_from_rates

        trace = requests_from_rates(trace, cfg.seed)
    fp: dict[str, Any] = {}
    st: LoopState | None = None
    if checkpoint is not None:
        checkpoint.check_writable()
        fp = fingerprint(trace, cfg, policy, instance, mode, checkpoint.inputs)
        if checkpoint.restart:
            discard_checkpoint(checkpoint.path)
        loaded = load_checkpoint(checkpoint.path, fp, LoopState, clock=lambda s: (s.t, s.cycles))
        if loaded is not None:
            st = loaded.state
            if checkpoint.on_resume is not None:
                checkpoint.on_resume(loaded.time_s, loaded.cycles)
    resumed_from = None if st is None else st.t
    hits, share = _split(trace, cfg)
    if st is None:
        st = _start(trace, cfg, instance, mode, hits, share)
    elif isinstance(st.engine, RequestEngine):
        assert isinstance(trace, RequestTrace)
        assert hits is not None
        assert share is not None
        st.engine.attach(trace, hits, share)  # the requests are inputs, not saved
    run = _Run(
        cfg=cfg,
        autoscaler=Autoscaler(policy, cfg.solver, time_limit=cfg.solver_time_limit_s, seed=cfg.seed,
                              startup_delay_s=cfg.startup_delay_s, state=st.autoscaler),
        wanted=_policy_services(policy),
        models={s.service: s.model for s in cfg.services},
        slos={s.service: s.slo.tbt_ms / 1000 for s in cfg.services},
        end=trace.duration_s,
        horizon=trace.duration_s + cfg.drain_limit_s,
    )
    began = last_save = time.monotonic()
    wall_before = st.wall_s
    spacing = checkpoint.every_s if checkpoint is not None else 0.0
    while True:
        last = _cycle(st, run)
        if on_cycle is not None:
            on_cycle(min(st.t, run.horizon), run.horizon)
        if last:
            break
        stopping = stop is not None and stop()
        if checkpoint is not None and (stopping or time.monotonic() - last_save >= spacing):
            t_save = time.monotonic()
            st.wall_s = wall_before + t_save - began
            _save(checkpoint.path, st, fp, must=stopping)
            last_save = time.monotonic()
            spacing = max(checkpoint.every_s, (last_save - t_save) / MAX_SAVE_SHARE)
        if stopping:
            raise SimInterrupted(st.t, st.cycles, checkpoint.path if checkpoint is not None else None)
    out = _result(st, trace, cfg, mode, hits, share)
    out.extra["resumed_from_s"] = resumed_from
    out.extra["wall_s_before"] = wall_before
    if checkpoint is not None and checkpoint.remove_on_success:
        checkpoint.path.unlink(missing_ok=True)
    return out


def _save(path: Path, st: LoopState, fp: dict[str, Any], *, must: bool) -> None:
    """Checkpoint ``st``; a failed periodic save warns and the run goes on (the next one may succeed)."""
    try:
        save_checkpoint(path, st, fp, st.t, st.cycles)
    except OSError as exc:
        msg = f"checkpoint '{path}': cannot write ({exc.strerror or type(exc).__name__})"
        if must:
            raise CheckpointError(msg) from None
        warnings.warn(f"{msg}; the run goes on and tries again later", RuntimeWarning, stacklevel=3)


def _split(trace: Trace, cfg: SimConfig) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Request traces: each request's cached prefix tokens and its service (a seeded split by traffic share)."""
    if not isinstance(trace, RequestTrace):
        return None, None
    rng = np.random.default_rng(cfg.seed)
    hits = prefix_hits(trace, cfg.prefix_cache_blocks)
    weights = np.array([s.traffic_share for s in cfg.services])
    share = rng.choice(len(weights), size=trace.num_requests, p=weights / weights.sum()) if len(weights) > 1 \
        else np.zeros(trace.num_requests, dtype=int)
    return hits, share


def _start(trace: Trace, cfg: SimConfig, instance: Instance, mode: Mode, hits: np.ndarray | None,
           share: np.ndarray | None) -> LoopState:
    """The state before the first cycle: the instance's pods, ready at 0, in a fresh engine."""
    book = PodBook(instance)
    engine: RequestEngine | FluidEngine
    if mode == "request":
        assert isinstance(trace, RequestTrace)
        assert hits is not None
        assert share is not None
        max_kv = {}
        svc_by_id = {s.id: s for s in instance.services}
        for s in cfg.services:
            role = svc_by_id[s.service].role("decode")
            max_kv[s.service] = float(max(pod_perf(s.model, g, "decode", role.gpus_per_pod).kv_capacity_tokens
                                          for g in role.gpu_types))
        engine = RequestEngine(trace, hits, cfg, share, max_kv)
    else:
        engine = FluidEngine(cfg, _loads(trace, cfg, hits, share, cfg.control_period_s))
    for p in book.pods:
        engine.add_pod(p)
    exporter = PromExporter([s.service for s in cfg.services])
    return LoopState(engine=engine, book=book, instance=instance, autoscaler=AutoscalerState(), exporter=exporter)


def _cycle(st: LoopState, run: _Run) -> bool:
    """Simulate one control period, scale, record its rows; True after the last cycle."""
    cfg, engine, book = run.cfg, st.engine, st.book
    t0 = st.t
    t = st.t = t0 + cfg.control_period_s
    st.cycles += 1
    if isinstance(engine, RequestEngine):
        engine.run_until(t)
        windows = engine.collect(t0, t, book.pods)
        for sid, w in windows.items():
            _capacity(w, book.pods, sid, run.models[sid], run.slos[sid])
    else:
        windows = engine.step(t0, t, book.pods)
    scaling = t <= run.end + 1e-9
    last = not scaling and (t >= run.horizon or _drained(engine))
    if last:
        if isinstance(engine, RequestEngine):
            engine.finish(t)
            fin = engine.collect(t, t, [])
            for sid, fw in fin.items():
                for k, v in fw.dropped.items():
                    windows[sid].dropped[k] += v
        else:
            engine.finish(windows)
    metrics = {s: _metrics(w) for s, w in windows.items()}
    decision = None
    if scaling:
        held = _draining_gpus(book.pods, t)
        seen = _with_free(st.instance, held, -1)  # GPUs of draining pods are not free yet
        decision = run.autoscaler.step(t, {k: v for k, v in metrics.items() if k in run.wanted}, seen)
        st.autoscaler = run.autoscaler.state
        if decision.placement is not None or decision.moves:
            moved = decision.apply_moves(seen)  # ratio moves first, then the units at the new ratio
            placed = apply_plan(moved, decision.placement.plan) if decision.placement is not None else moved
            after = _with_free(placed, held, +1)
            new, gone = book.apply(st.instance, after, t, cfg.startup_delay_s)
            for p in new:
                engine.add_pod(p)
            for p in gone:
                engine.drain_pod(p, t)
            st.instance = after
    totals = st.totals
    for sid, w in windows.items():
        st.exporter.observe(sid, w)
        st.rows.append(_row(t, sid, w, metrics[sid], decision, st.instance, book, cfg))
        totals["arrivals"] += w.arrivals
        totals["completed"] += w.completed
        for k, v in w.dropped.items():
            totals[k] += v
        st.gpu_seconds += w.gpu_seconds
    return last


def _result(st: LoopState, trace: Trace, cfg: SimConfig, mode: Mode, hits: np.ndarray | None,
            share: np.ndarray | None) -> SimRun:
    """The run's tables and totals from the state after the last cycle."""
    engine, totals = st.engine, dict(st.totals)
    cycles = pd.DataFrame(st.rows)
    requests = None
    if isinstance(engine, RequestEngine):
        assert isinstance(trace, RequestTrace)
        assert hits is not None
        assert share is not None
        requests = _requests_frame(engine, trace, hits, share, cfg)
        totals["arrivals"] = float(trace.num_requests)
        totals["completed"] = float(sum(1 for s in engine.status if s == STATUS_DONE))
    else:
        totals["arrivals"] = sum(engine.arrived.values())
        totals["completed"] = sum(engine.completed.values())
        for k in DROP_REASONS:
            totals[k] = float(cycles[f"dropped_{k}"].sum()) if f"dropped_{k}" in cycles else 0.0
        dropped_exact = sum(engine.dropped.values())
        totals["dropped_exact"] = dropped_exact
    return SimRun(
        cycles=cycles,
        requests=requests,
        config=cfg,
        mode=mode,
        trace_name=trace.name,
        arrivals=totals["arrivals"],
        completed=totals["completed"],
        dropped={k: totals[k] for k in DROP_REASONS},
        gpu_hours=st.gpu_seconds / 3600,
        exporter=st.exporter,
        extra={"dropped_exact": totals.get("dropped_exact")},
    )


def _capacity(w: Window, pods: list[Pod], service: str, model: str, tbt_slo: float) -> None:
    """Request mode: ready capacity at the window's mean lengths (prefill tokens/s, decode at TBT SLO)."""
    if w.arrivals == 0:
        return
    prompt = w.prompt_tokens / w.arrivals
    missed = max(w.prefill_demand_tokens / w.arrivals, 1.0)
    ctx = prompt + w.decode_demand_tokens / w.arrivals / 2
    dt = w.t1 - w.t0
    for p in pods:
        if p.service != service or p.ready_at > w.t1 or (p.removed_at is not None and p.removed_at < w.t1):
            continue
        if p.draining:
            continue
        perf = pod_perf(model, p.gpu_type, p.role, p.gpus)
        if p.role == "prefill":
            w.prefill_capacity_tokens += perf.prefill_tps(prompt, prompt - missed) * dt
        else:
            w.decode_capacity_tokens += perf.decode_tps_at(tbt_slo, ctx)[0] * dt


def _draining_gpus(pods: list[Pod], t: float) -> dict[str, int]:
    """GPUs per node still held by draining pods at ``t`` (the instance already counts them free)."""
    held: dict[str, int] = {}
    for p in pods:
        if p.draining and (p.removed_at is None or p.removed_at > t):
            held[p.node] = held.get(p.node, 0) + p.gpus
    return held


def _with_free(instance: Instance, held: dict[str, int], sign: int) -> Instance:
    """``instance`` with ``sign * held`` GPUs added to its nodes' free GPUs."""
    if not held:
        return instance
    nodes = [n.replace(gpus_free=n.gpus_free + sign * held[n.id]) if n.id in held else n for n in instance.nodes]
    return instance.replace(nodes=nodes)


def _policy_services(policy: AutoscalerConfig) -> set[str]:
    return {s.service for s in policy.services}


def _drained(engine: RequestEngine | FluidEngine) -> bool:
    if isinstance(engine, RequestEngine):
        return engine.idle()
    return all(engine.in_flight(s) < 1e-6 for s in engine.models)


def _row(t: float, service: str, w: Window, m: ServiceMetrics, decision: Any, instance: Instance, book: PodBook,
         cfg: SimConfig) -> dict[str, Any]:
    dt = w.t1 - w.t0
    ttft, tbt = w.latency_stats()
    act = next((s for s in decision.services if s.service == service), None) if decision is not None else None
    # pods serving or starting (draining pods have left the service's unit count)
    live = [p for p in book.pods if p.service == service and not p.draining
            and (p.removed_at is None or p.removed_at >= t)]
    svc = next(s for s in instance.services if s.id == service)
    return {
        "time": t,
        "service": service,
        "arrivals": w.arrivals,
        "completed": w.completed,
        **{f"dropped_{k}": v for k, v in w.dropped.items()},
        "prompt_tps": w.prompt_tokens / dt,
        "prefill_tps": m.prefill_tps,
        "decode_tps": m.decode_tps,
        "prefill_demand_tps": w.prefill_demand_tokens / dt if w.prefill_demand_tokens else np.nan,
        "decode_demand_tps": w.decode_demand_tokens / dt if w.decode_demand_tokens else np.nan,
        "prefill_capacity_tps": w.prefill_capacity_tokens / dt if w.prefill_capacity_tokens else np.nan,
        "decode_capacity_tps": w.decode_capacity_tokens / dt if w.decode_capacity_tokens else np.nan,
        **{f"ttft_{k}_ms": v for k, v in ttft.items()},
        **{f"tbt_{k}_ms": v for k, v in tbt.items()},
        "judged": w.judged,
        "ok_ttft": w.ok_ttft,
        "ok_tbt": w.ok_tbt,
        "ok_both": w.ok_both,
        "prefill_gpu_util": m.prefill_gpu_util,
        "decode_gpu_util": m.decode_gpu_util,
        "queue_prefill": w.queue_prefill,
        "queue_decode": w.queue_decode,
        "running": w.running,
        "ready_prefill": w.ready_prefill,
        "unready_prefill": w.unready_prefill,
        "ready_decode": w.ready_decode,
        "unready_decode": w.unready_decode,
        "draining": w.draining,
        "prefill_pods": sum(1 for p in live if p.role == "prefill"),
        "decode_pods": sum(1 for p in live if p.role == "decode"),
        "units": current_units(instance, service),
        "pd_ratio_target": svc.pd_ratio.prefill / svc.pd_ratio.decode,
        "unit_prefill": svc.pd_ratio.prefill,
        "unit_decode": svc.pd_ratio.decode,
        "ratio_move": bool(act.moved_from) if act else False,
        "gpus": w.gpu_seconds / dt,
        "action": act.action if act else "",
        "rule": act.rule if act else "",
        "wanted_units": act.wanted_units if act else np.nan,
        "placed_units": act.placed_units if act else np.nan,
        "target_utilisation": act.target_utilisation if act and act.target_utilisation is not None else np.nan,
    }


def _requests_frame(engine: RequestEngine, trace: RequestTrace, hits: np.ndarray, share: np.ndarray,
                    cfg: SimConfig) -> pd.DataFrame:
    arrival = np.asarray(engine.arrival)
    first = np.asarray(engine.first_t)
    finish = np.asarray(engine.finish_t)
    join = np.asarray(engine.join_t)
    out = trace.output_tokens
    done = np.asarray(engine.status) == STATUS_DONE
    tbt = np.where(done & (out > 1), (finish - join) / np.maximum(out - 1, 1), np.where(done, 0.0, np.nan))
    names = np.array([s.service for s in cfg.services])
    return pd.DataFrame(
        {
            "request": np.arange(trace.num_requests),
            "service": names[share],
            "arrival_s": arrival,
            "input_tokens": trace.input_tokens,
            "cached_tokens": hits,
            "output_tokens": out,
            "prefill_wait_s": np.asarray(engine.prefill_t) - arrival,
            "ttft_s": np.where(np.isnan(first), np.nan, first - arrival),
            "tbt_s": tbt,
            "e2e_s": finish - arrival,
            "status": np.where(done, "completed", "dropped"),
            "drop_reason": engine.reason,
        }
    )
