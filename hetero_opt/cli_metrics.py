"""``hetero-opt metrics prometheus``: a Prometheus range as the metrics CSV ``autoscale`` reads."""

from __future__ import annotations

import argparse
import csv
import io
import sys
import time
import warnings
from pathlib import Path

from hetero_opt.errors import InputError
from hetero_opt.io import check_destination, load_yaml_model, write_atomic
from hetero_opt.policy.engine import ServiceMetrics


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``metrics``."""
    p = sub.add_parser("metrics", help="read vLLM/SGLang metrics from Prometheus into a metrics CSV")
    p.add_argument("source", choices=["prometheus"], help="where the metrics come from")
    p.add_argument("--url", required=True, help="Prometheus base URL, e.g. http://127.0.0.1:9090")
    p.add_argument("--map", metavar="FILE", help="label map YAML (hetero_opt.adapters.prometheus.LabelMap)")
    p.add_argument("--selector", default="", help='extra PromQL label matchers, e.g. namespace="llm"')
    p.add_argument("--start", type=float, metavar="T", help="first cycle, unix s (default: --end minus 1 h)")
    p.add_argument("--end", type=float, metavar="T", help="last cycle, unix s (default: now)")
    p.add_argument("--every", type=float, default=60.0, metavar="S", help="cycle length in s (default: 60)")
    p.add_argument("--window", type=float, default=60.0, metavar="S", help="window read per cycle in s (default: 60)")
    p.add_argument("--step", type=float, default=15.0, metavar="S", help="query resolution in s (default: 15)")
    p.add_argument("--out", type=Path, metavar="FILE", help="CSV to write (default: stdout)")


def run(args: argparse.Namespace) -> int:
    """Query once, aggregate per cycle, write ``time,service,<ServiceMetrics fields>``."""
    from hetero_opt.adapters.prometheus import LabelMap, PromQLSource
    from hetero_opt.policy.prometheus import MetricsMatchWarning

    if args.out is not None:  # before Prometheus is queried
        check_destination(args.out, "--out", create=False, inputs={"--map": args.map})
    label_map = load_yaml_model(Path(args.map), LabelMap, "Label map") if args.map else LabelMap()
    end = time.time() if args.end is None else args.end
    start = end - 3600.0 if args.start is None else args.start
    source = PromQLSource(args.url, label_map, window_s=args.window, step_s=args.step, selector=args.selector)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MetricsMatchWarning)
        series = source.series(start, end, args.every)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    if not any(m for _, m in series):
        raise InputError(f"Prometheus '{args.url}': no samples map to a service between {start} and {end}")
    text = metrics_csv(series)
    if args.out is None:
        sys.stdout.write(text)
    else:
        write_atomic(args.out, text)
        print(f"{args.out}: {sum(len(m) for _, m in series)} rows, {len(series)} cycles", file=sys.stderr)
    return 0


def metrics_csv(series: list[tuple[float, dict[str, ServiceMetrics]]]) -> str:
    """The series as CSV: ``time``, ``service`` and every ServiceMetrics field some row has."""
    fields = [
        f
        for f in ServiceMetrics.model_fields
        if any(getattr(m, f) is not None for _, ms in series for m in ms.values())
    ]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["time", "service", *fields])
    for t, ms in series:
        for sid, m in sorted(ms.items()):
            writer.writerow([t, sid, *("" if getattr(m, f) is None else getattr(m, f) for f in fields)])
    return buf.getvalue()
