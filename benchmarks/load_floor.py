"""The floor of loading a production instance, row form and columnar (format 1.3), against the greedy call.

Each case runs in its own process, the cases in turn, several turns; process-time medians. The
collector is paused around every case, as loading pauses it (the greedy too, as ``solve()`` runs it).

    .venv/bin/python benchmarks/load_floor.py [--size 1x|2x|4x] [--turns 3] [--rounds 9]

Instructions of one call (deterministic where the clock is not): run a case under callgrind twice,
``--one CASE --calls 0`` and ``--calls 1``, and subtract (``PYTHONHASHSEED=0``). Results: docs/benchmarks.md,
"The floor"; the argument: decision 43.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from operator import gt, itemgetter
from pathlib import Path
from typing import Any

from hetero_opt.gc_pause import gc_paused

SIZES: dict[str, dict[str, int]] = {
    "1x": {},
    "2x": {"num_nodes": 40_960, "num_clusters": 8, "num_services": 400, "num_requests": 100},
    "4x": {"num_nodes": 81_920, "num_clusters": 16, "num_services": 800, "num_requests": 200},
}
CASES = {
    "greedy": "build_view + greedy_plan",
    "json": "json.loads of the file",
    "dicts": "json.loads (a dict per node) + the node rules on columns",
    "plain": "pydantic-core: list of a BaseModel of the node fields, no constraints",
    "nodes": "pydantic-core: list[Node]",
    "load": "load_instance",
    "columnar": "columnar node table: json.loads + the node rules",
    "load_columns": "load_instance of the columnar file (format 1.3: a NodeTable, PodTables)",
    "greedy_columns": "build_view + greedy_plan on the columnar instance",
}
FIELDS = ("id", "gpu_type", "gpus_total", "gpus_free", "cluster", "s2", "s1", "s0")
_ID = re.compile(r"[A-Za-z0-9_.:/@+-]+(?:\n[A-Za-z0-9_.:/@+-]+)*")
_TOPO = re.compile(r"[A-Za-z0-9_.:/+-]+(?:\n[A-Za-z0-9_.:/+-]+)*")


def _node_rules(columns: list[Any]) -> None:
    """The per-node rules of an instance as set operations on columns (ids, ranges, types, patterns, tree)."""
    ids, gpu_types, totals, frees, clusters, s2s, s1s, s0s = columns
    places = set(zip(clusters, s2s, s1s, s0s, gpu_types, strict=True))
    cl, s2, s1, s0, _ = map(set, zip(*places, strict=True))
    ok = (
        len(set(ids)) == len(ids)
        and not any(map(gt, frees, totals))
        and min(totals) >= 1
        and max(totals) <= 64
        and min(frees) >= 0
        and set(map(type, totals)) == {int} == set(map(type, frees))
        and _ID.fullmatch("\n".join(ids))
        and _TOPO.fullmatch("\n".join(cl | s2 | s1 | (s0 - {None})))
        and len(set(zip(s1s, s2s, strict=True))) == len(s1)
    )
    if not ok:
        raise ValueError("the instance breaks a node rule")


def _case(name: str, path: Path) -> Callable[[], object]:
    """The work of case ``name`` on the instance file ``path``, set up (files, validators) beforehand."""
    text = path.read_text()
    if name in ("greedy", "load", "load_columns", "greedy_columns"):
        from hetero_opt.io import load_instance

        if name.endswith("_columns"):
            path = _columns_file(path)
        if name.startswith("load"):
            return lambda: load_instance(path)
        from hetero_opt.placement.greedy import greedy_plan
        from hetero_opt.topology import build_view

        inst = load_instance(path)
        return lambda: greedy_plan(inst, build_view(inst))
    if name == "json":
        return lambda: json.loads(text)
    if name == "dicts":

        def dicts() -> object:
            data = json.loads(text)
            _node_rules(list(zip(*map(itemgetter(*FIELDS), data["nodes"]), strict=True)))
            return data

        return dicts
    if name == "columnar":
        data = json.loads(text)
        data["nodes"] = {f: [n.get(f) for n in data["nodes"]] for f in FIELDS}
        columnar = json.dumps(data, indent=1)

        def columns() -> object:
            parsed = json.loads(columnar)
            _node_rules([parsed["nodes"][f] for f in FIELDS])
            return parsed

        return columns
    from pydantic import BaseModel, TypeAdapter

    from hetero_opt.instance import Node

    class Plain(BaseModel):
        id: str
        gpu_type: str
        gpus_total: int
        gpus_free: int
        cluster: str
        s2: str
        s1: str
        s0: str | None = None

    adapter: TypeAdapter[Any] = TypeAdapter(list[Plain] if name == "plain" else list[Node])
    nodes_text = json.dumps(json.loads(text)["nodes"], indent=1)
    return lambda: adapter.validate_json(nodes_text)


def _one(name: str, path: Path, calls: int) -> list[float]:
    run = _case(name, path)
    times = []
    for _ in range(calls):
        start = time.process_time()
        with gc_paused():
            result = run()
        times.append(time.process_time() - start)  # the collection after the pause included, as in a load
        del result
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=list(SIZES), default="1x")
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--one", choices=list(CASES), help="run one case in this process and print its times")
    parser.add_argument("--calls", type=int, help="with --one: calls to make (default --rounds)")
    parser.add_argument("--file", type=Path, help="with --one: the instance file")
    args = parser.parse_args()
    if args.one:
        path = args.file or _write(args.size, Path(tempfile.mkdtemp()))
        print(json.dumps(_one(args.one, path, args.rounds if args.calls is None else args.calls)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = _write(args.size, Path(tmp))
        times: dict[str, list[float]] = {name: [] for name in CASES}
        for _ in range(args.turns):
            for name in CASES:
                cmd = [sys.executable, __file__, "--one", name, "--file", str(path), "--rounds", str(args.rounds)]
                times[name] += json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    greedy = statistics.median(times["greedy"])
    print(f"production {args.size}, process time, medians of {args.turns} x {args.rounds} (one process per case):")
    for name, what in CASES.items():
        median = statistics.median(times[name])
        print(f"  {what:72s} {median * 1e3:8.1f} ms  {median / greedy:5.2f}x greedy")


def _write(size: str, folder: Path) -> Path:
    from hetero_opt.generate import generate_instance
    from hetero_opt.io import save_instance

    path = folder / f"production-{size}.json"
    inst = generate_instance("production", 0, **SIZES[size])
    save_instance(inst, path, columnar=False)
    save_instance(inst, _columns_file(path), columnar=True)
    return path


def _columns_file(path: Path) -> Path:
    """The columnar twin of the row-form file ``path`` (written beside it)."""
    return path.with_name(f"{path.stem}-columns.json")


if __name__ == "__main__":
    main()
