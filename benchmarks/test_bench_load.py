"""Loading an instance file against the greedy call it feeds (issue 8, item 5), in one run.

Load = ``load_instance(path)``: file to validated ``Instance``. Greedy = ``build_view`` +
``greedy_plan`` on the same instance (the collector on, as a direct call runs it; ``solve()`` pauses
it). They and Python's ``json.loads`` of the same text are timed in alternation (rounds of one of
each) so a shared machine's load shifts all alike; ratios of medians are what is compared, in
wall-clock and in process time.

The guards against a regression of loading do not rest on the clock alone: on the shared 2-core
machine the same code's load / ``json.loads`` ratio moves between 3 and 6 from run to run, and the
reference path (Python's ``json``, then validation of the dicts) is only ~1.3x the fast path, so no
ratio of times tells them apart. Two guards are exact instead: the file must take the fast path,
and no Python function may run once per node (decision 43).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
import yaml

import hetero_opt.io
from hetero_opt.generate import generate_instance
from hetero_opt.instance import Instance, NodeTable, PodTable
from hetero_opt.io import load_instance, save_instance
from hetero_opt.placement.greedy import greedy_plan
from hetero_opt.placement.solve import solve
from hetero_opt.topology import build_view

#: Production and the 2x / 4x sizes of issue 8.
SIZES: dict[str, dict[str, int]] = {
    "1x": {},
    "2x": {"num_nodes": 40_960, "num_clusters": 8, "num_services": 400, "num_requests": 100},
    "4x": {"num_nodes": 81_920, "num_clusters": 16, "num_services": 800, "num_requests": 200},
}


def _alternating(rounds: int, *runs: Callable[[], object]) -> list[tuple[float, float]]:
    """Medians (s) of ``rounds`` rounds of one call of each of ``runs``: (wall, process time) per run.

    Each result is freed after its clock is read: freeing the previous instance (20k+ nodes) is not
    part of loading the next one.
    """
    times: list[list[tuple[float, float]]] = [[] for _ in runs]
    for _ in range(rounds):
        for timed, run in zip(times, runs, strict=True):
            wall, cpu = time.perf_counter(), time.process_time()
            result = run()
            timed.append((time.perf_counter() - wall, time.process_time() - cpu))
            del result
    return [(statistics.median(w for w, _ in t), statistics.median(c for _, c in t)) for t in times]


def _python_calls(run: Callable[[], object]) -> int:
    """Python function calls (and generator resumptions) while ``run`` runs."""
    calls = 0

    def count(frame: FrameType, event: str, arg: object) -> None:
        nonlocal calls
        if event == "call":
            calls += 1

    sys.setprofile(count)
    try:
        run()
    finally:
        sys.setprofile(None)
    return calls


def _instance(size: str, production: Instance) -> Instance:
    if size == "1x":
        return production
    if size not in _SIZED:
        _SIZED[size] = generate_instance("production", 0, **SIZES[size])
    return _SIZED[size]


_SIZED: dict[str, Instance] = {}  # each size generated once for both forms


@pytest.mark.parametrize("form", ["rows", "columns"])
@pytest.mark.parametrize("size", list(SIZES))
def test_load_json_vs_greedy(
    benchmark: Any, production: Instance, size: str, form: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inst = _instance(size, production)
    columnar = form == "columns"
    path = tmp_path / f"production-{size}-{form}.json"
    save_instance(inst, path, columnar=columnar)
    loaded = benchmark.pedantic(load_instance, args=(path,), rounds=3, iterations=1)
    # a row file says format 1.1 (1.2 and 1.3 are the columnar nodes and pods): the same instance otherwise
    assert loaded.model_copy(update={"format_version": inst.format_version}) == inst
    assert isinstance(loaded.nodes, NodeTable) == columnar
    assert all(isinstance(g.pods, PodTable) == columnar for g in loaded.groups)
    text = path.read_text()
    # The greedy on the instance as loaded: a view reads a table's columns, a list's models.
    # Two greedy calls: the algorithm (view and greedy_plan), and the call a user makes, solve(inst, "greedy"),
    # which also binds, verifies and scores (and pauses the collector).
    (load_s, load_cpu), (greedy_s, greedy_cpu), (call_s, call_cpu), (parse_s, parse_cpu) = _alternating(
        7,
        lambda: load_instance(path),
        lambda: greedy_plan(loaded, build_view(loaded)),
        lambda: solve(loaded, "greedy"),
        lambda: json.loads(text),
    )
    print(
        f"\nproduction {size} JSON {form} ({len(inst.nodes)} nodes, {path.stat().st_size / 1e6:.1f} MB), medians of 7, "
        f"wall / process time: load {load_s:.3f} / {load_cpu:.3f} s, greedy {greedy_s:.3f} / {greedy_cpu:.3f} s, "
        f"load/greedy {load_s / greedy_s:.2f} / {load_cpu / greedy_cpu:.2f}; solve(greedy) {call_s:.3f} / "
        f"{call_cpu:.3f} s, load/solve(greedy) {load_s / call_s:.2f} / {load_cpu / call_cpu:.2f}; json.loads alone "
        f"{parse_s:.3f} / {parse_cpu:.3f} s, load/json.loads {load_s / parse_s:.2f} / {load_cpu / parse_cpu:.2f}"
    )
    # Goal (issue 8): load <= greedy. Rows: not reachable while each node is a pydantic model (decision 43):
    # pydantic-core building the 20,480 node models alone takes ~1.8x the greedy's time at 1x, json.loads
    # of the text alone 0.6-1.0x. Columns (format 1.3, decisions 52 and 57): no model per node or pod, the
    # node rules as passes over columns; guarded below, in process time (the clock of a shared machine
    # moves both).
    # Exact guards. (1) A valid file takes the fast path: the reference path's parser must not run.
    monkeypatch.setattr(hetero_opt.io, "parse_text", _refuse)
    # (2) No Python function runs once per node or per pod: a load makes about 4 calls per service, group
    # and request with rows and 9 with columns (each group's pod table: its checks and its view; 5,209 at
    # 1x, 10,151 at 2x); a per-node validator (decision 40 removed one that cost a sixth of the load) would
    # add 20k-80k, one per pod about 3,200 at 1x. (It said a quarter of the nodes until session 10: the pod
    # tables of decision 57 brought 1x columns to 5,209 of 5,120 and failed make bench.)
    calls = _python_calls(lambda: load_instance(path))
    assert calls < 12 * (len(inst.services) + len(inst.groups) + len(inst.requests)), calls
    # (3) the clock, coarsely: load / json.loads is 3-6 on this machine for rows; quadratic checks or a
    # Python pass over every node per check would pass 8. A file with runs (format 1.4) parses ~48k node values
    # instead of 164k at 1x (ids and free GPUs plain, the rest ~3,300 runs), so its json.loads is 2-3x faster
    # and the same load 4-6x it: bound 10.
    assert load_cpu / parse_cpu < (10.0 if columnar else 8.0)
    if columnar:
        # (4) Columns, repeated node columns as runs (format 1.4, decisions 57, 66, 68 and 71): in 20 runs on
        # 2026-12-03, 0.57-1.35x the greedy (view and greedy_plan) and 0.64-1.02x solve(inst, "greedy") across
        # sizes, against 3.7-5.7x for rows. The ratio to the bare greedy straddles 1 from run to run, so parity
        # with it is no bound to assert; the guards sit 19 % and 27 % above the worst of those runs (1.35, 1.02),
        # where a model per node (1.4-1.6x alone) or a Python pass per node would break them.
        assert load_cpu <= 1.6 * greedy_cpu, f"columnar load {load_cpu:.3f} s > 1.6x greedy {greedy_cpu:.3f} s"
        assert load_cpu <= 1.3 * call_cpu, f"columnar load {load_cpu:.3f} s > 1.3x solve(greedy) {call_cpu:.3f} s"
        # The goal itself (issue 8, item 5: "loading a production instance no slower than the greedy call", the
        # call a user makes, solve(inst, "greedy")) is printed, not asserted: at 1x 0.66-0.94 in 18 of 20 runs on
        # 2026-12-03 and 1.00-1.02 in two (machine noise moves one side of a round); an assertion at 1.0 would
        # fail about one run in ten. The bare algorithm (view and greedy_plan) is at parity, 0.83-1.35.


def _refuse(text: str, path: Path) -> object:
    raise AssertionError(f"{path}: loading fell back to the reference path")


@pytest.mark.parametrize("form", ["rows", "columns"])
def test_load_yaml_vs_greedy(production: Instance, form: str, tmp_path: Path) -> None:
    path = tmp_path / f"production-1x-{form}.yaml"
    data = production.model_dump(mode="json")
    if form == "rows":
        data["nodes"] = [n.model_dump(mode="json") for n in production.nodes]
        for g, dumped in zip(production.groups, data["groups"], strict=True):
            dumped["pods"] = [p.model_dump(mode="json") for p in g.pods]
    else:
        data["nodes"] = NodeTable.from_nodes(production.nodes).to_columns()
        for g, dumped in zip(production.groups, data["groups"], strict=True):
            dumped["pods"] = PodTable.from_pods(g.pods).to_columns()
        data["format_version"] = "1.3"
    path.write_text(yaml.dump(data, Dumper=yaml.CSafeDumper, sort_keys=False))
    assert load_instance(path) == production
    (load_s, _), (greedy_s, _) = _alternating(
        3, lambda: load_instance(path), lambda: greedy_plan(production, build_view(production))
    )
    print(
        f"\nproduction 1x YAML {form} ({path.stat().st_size / 1e6:.1f} MB): load {load_s:.3f} s, greedy "
        f"{greedy_s:.3f} s, load/greedy {load_s / greedy_s:.1f} (medians of 3; libyaml parser, PyYAML's Python "
        "constructor)"
    )
