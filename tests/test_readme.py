"""The README is an API contract: every ```python block runs as written from the repository root."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), flags=re.S)


def test_readme_has_the_tour_examples() -> None:
    assert len(BLOCKS) >= 2
    assert any("ho.Autoscaler(" in b for b in BLOCKS)


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(1, len(BLOCKS) + 1)])
def test_readme_python_block_runs(code: str) -> None:
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]


#: The docs' examples that are complete programs (docs/distributed.md's is a sketch, its task a stub).
DOC_BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "policy.md").read_text(encoding="utf-8"), flags=re.S)


@pytest.mark.parametrize("code", DOC_BLOCKS, ids=[f"policy{i}" for i in range(1, len(DOC_BLOCKS) + 1)])
def test_docs_python_block_runs(code: str) -> None:
    # the values the comments give are the ones it computes
    checked = code + "\nassert (decision.action, decision.target_units, decision.unit) == ('out', 4, (3, 1))\n"
    r = subprocess.run([sys.executable, "-c", checked], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
