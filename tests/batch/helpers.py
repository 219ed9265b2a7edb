"""Helpers of the batch tests: the instance folder's contents, plan and summary comparisons, processes."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from hetero_opt import PlacementResult

#: Small families CP-SAT proves optimal well inside the time limit, so plans cannot depend on load.
FOLDER_INSTANCES = (
    [("tiny", s) for s in range(4)] + [("contention", s) for s in range(4)] + [("small", 1), ("small", 2)]
)


def plans(out_dir: Path) -> dict[str, dict[str, Any]]:
    """Every plan file of ``out_dir`` without what timing changes (wall time, solver statistics)."""
    return {
        p.name: PlacementResult.from_json(p.read_text()).model_dump(exclude={"wall_time_s", "stats"})
        for p in sorted(out_dir.glob("*.plan.json"))
    }


def summary(out_dir: Path, *, timing: bool = False) -> list[dict[str, str]]:
    """Rows of ``summary.csv``; without ``wall_time_s`` unless ``timing``."""
    with (out_dir / "summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    return rows if timing else [{k: v for k, v in r.items() if k != "wall_time_s"} for r in rows]


def descendants(pid: int) -> set[int]:
    """Process ids below ``pid`` (Linux ``/proc``): only processes this test session started."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found
