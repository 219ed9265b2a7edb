"""Replay a metrics series through the autoscaler on a cluster that applies each plan."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from pydantic import ValidationError
from rich.markup import escape
from rich.table import Table

from hetero_opt.autoscaler import Autoscaler, CycleDecision
from hetero_opt.csv_input import read_csv
from hetero_opt.errors import InputError
from hetero_opt.instance import Instance
from hetero_opt.policy.engine import ServiceMetrics, metrics_from_frame


def load_metrics(path: str | Path) -> list[tuple[float, dict[str, ServiceMetrics]]]:
    """Read a metrics CSV (columns ``time``, ``service`` and ServiceMetrics fields)."""
    p = Path(path)
    df = read_csv(p, "metrics CSV")
    known = {"time", "service", *ServiceMetrics.model_fields}
    extra = [str(c) for c in df.columns if c not in known]
    if extra:
        fields = list(ServiceMetrics.model_fields)
        raise InputError(f"{p}: column='{extra[0]}' is unknown (expected time, service and any of {fields})")
    if df.empty:  # else a run of no cycles, as if the metrics had been read
        raise InputError(f"{p}: no rows (the file has a header and nothing else)")
    try:
        return list(metrics_from_frame(df))
    except InputError as exc:
        raise InputError(f"{p}: {str(exc).removeprefix('Metrics frame: ')}") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(x) for x in err["loc"])
        raise InputError(f"{p}: bad metric value: {field}={err.get('input')!r}: {err['msg']}") from None
    except ValueError as exc:
        raise InputError(f"{p}: bad metric value: {str(exc).splitlines()[0]}") from None


def replay(
    autoscaler: Autoscaler,
    instance: Instance,
    series: Iterable[tuple[float, Mapping[str, ServiceMetrics]]],
) -> Iterator[tuple[CycleDecision, Instance]]:
    """Step through ``series``; after each cycle the cluster is ``instance`` with the plan applied."""
    for now, metrics in series:
        decision = autoscaler.step(now, metrics, instance)
        instance = decision.apply(instance)
        yield decision, instance


def decisions_table(decisions: Iterable[CycleDecision], *, only_changes: bool = False) -> Table:
    """A rich table: one row per service and cycle (``only_changes``: the rows where units or the P:D ratio
    change, or drained units move)."""
    table = Table(title="Autoscaler decisions")
    for col in ("time", "service", "action", "current", "wanted", "placed", "draining", "solver", "reason"):
        table.add_column(col, overflow="fold")
    for d in decisions:
        for s in d.services:
            soft = s.drained_units or s.reinstated_units or s.deleted_units
            steady = s.wanted_units == s.current_units == s.placed_units and s.moved_from is None
            if only_changes and steady and not soft:
                continue
            solver = "" if d.placement is None else f"{d.placement.solver}/{d.placement.status}"
            if d.drain is not None and s.drained_units:
                solver = f"{d.drain.solver}/{d.drain.status} (drain)"
            reason = s.reason + (f" | unserved: {s.unserved_reason}" if s.unserved_reason else "")
            if s.moved_from is not None:
                (p0, d0), (p1, d1) = s.moved_from, s.unit
                reason = f"ratio moved {p0}P:{d0}D → {p1}P:{d1}D | {reason}"
            reason += "".join(f" | ALERT: {a}" for a in s.alerts)
            moves = [f"+{s.drained_units} drained"] if s.drained_units else []
            moves += [f"{s.reinstated_units} reinstated"] if s.reinstated_units else []
            moves += [f"{s.deleted_units} deleted"] if s.deleted_units else []
            table.add_row(
                f"{d.time:g}",
                s.service,
                s.action,
                str(s.current_units),
                str(s.wanted_units),
                str(s.placed_units),
                str(s.draining_units) + (f" ({', '.join(moves)})" if moves else ""),
                solver,
                escape(reason),
            )
    return table
