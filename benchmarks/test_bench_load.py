"""Loading an instance file against the greedy call it feeds (issue 8, item 5), in one run.

Load = ``load_instance(path)``: file to validated ``Instance``. Greedy = ``build_view`` +
``greedy_plan`` on the same instance. The two are timed in alternation (rounds of one load, one
greedy) so a shared machine's load shifts both alike; the ratio of medians is what is compared.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from hetero_opt.generate import generate_instance
from hetero_opt.instance import Instance
from hetero_opt.io import load_instance, save_instance
from hetero_opt.placement.greedy import greedy_plan
from hetero_opt.topology import build_view

#: Production and the 2x / 4x sizes of issue 8.
SIZES: dict[str, dict[str, int]] = {
    "1x": {},
    "2x": {"num_nodes": 40_960, "num_clusters": 8, "num_services": 400, "num_requests": 100},
    "4x": {"num_nodes": 81_920, "num_clusters": 16, "num_services": 800, "num_requests": 200},
}


def _alternating(load: Callable[[], object], greedy: Callable[[], object], rounds: int) -> tuple[float, float]:
    """Medians (s) of ``rounds`` alternating runs of ``load`` and ``greedy``.

    Each result is kept until the clock is read: freeing the previous instance (20k+ nodes) is
    not part of loading the next one.
    """
    loads, greedys = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        result = load()
        loads.append(time.perf_counter() - start)
        del result
        start = time.perf_counter()
        result = greedy()
        greedys.append(time.perf_counter() - start)
        del result
    return statistics.median(loads), statistics.median(greedys)


def _instance(size: str, production: Instance) -> Instance:
    return production if size == "1x" else generate_instance("production", 0, **SIZES[size])


@pytest.mark.parametrize("size", list(SIZES))
def test_load_json_vs_greedy(benchmark: Any, production: Instance, size: str, tmp_path: Path) -> None:
    inst = _instance(size, production)
    path = tmp_path / f"production-{size}.json"
    save_instance(inst, path)
    loaded = benchmark.pedantic(load_instance, args=(path,), rounds=3, iterations=1)
    assert loaded == inst
    load_s, greedy_s = _alternating(lambda: load_instance(path), lambda: greedy_plan(inst, build_view(inst)), 7)
    text = path.read_text()
    parse_s, _ = _alternating(lambda: json.loads(text), lambda: None, 7)
    print(
        f"\nproduction {size} JSON ({len(inst.nodes)} nodes, {path.stat().st_size / 1e6:.1f} MB): "
        f"load {load_s:.3f} s, greedy {greedy_s:.3f} s, load/greedy {load_s / greedy_s:.2f}; "
        f"json.loads alone {parse_s:.3f} s, load/json.loads {load_s / parse_s:.2f} (medians of 7)"
    )
    # Goal (issue 8): load <= greedy, not met: measured 1.5-2.1 / 1.0-1.5 / 0.8-1.0 at 1x / 2x / 4x on
    # 2026-12-01 (4.8 / 4.0 / 2.5 before the fast path), 3.4 / 1.9 / 2.1 on 2026-12-02 after the greedy
    # got 2-3x faster at scale (decision 41). The guard against a regression of loading compares it
    # with Python's own JSON parse of the same text: 3-5x today, ~9x on the reference path (before the
    # fast path: 0.59 s against 0.065 s at 1x).
    assert load_s / parse_s < 8.0


def test_load_yaml_vs_greedy(production: Instance, tmp_path: Path) -> None:
    path = tmp_path / "production-1x.yaml"
    path.write_text(yaml.dump(production.model_dump(mode="json"), Dumper=yaml.CSafeDumper, sort_keys=False))
    assert load_instance(path) == production
    load_s, greedy_s = _alternating(
        lambda: load_instance(path), lambda: greedy_plan(production, build_view(production)), 3
    )
    print(
        f"\nproduction 1x YAML ({path.stat().st_size / 1e6:.1f} MB): load {load_s:.3f} s, greedy {greedy_s:.3f} s, "
        f"load/greedy {load_s / greedy_s:.1f} (medians of 3; libyaml parser, PyYAML's Python constructor)"
    )
