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


#: docs/policy.md's example (docs/distributed.md's is a sketch, its task a stub).
POLICY_DOC = (ROOT / "docs" / "policy.md").read_text(encoding="utf-8")
POLICY_BLOCKS = re.findall(r"```python\n(.*?)```", POLICY_DOC, flags=re.S)


def test_the_policy_docs_example_runs_and_gives_what_its_comments_say() -> None:
    assert len(POLICY_BLOCKS) == 1
    said = "\nassert (decision.action, decision.target_units, decision.unit) == ('out', 4, (3, 1))\n"
    checked = POLICY_BLOCKS[0] + said
    r = subprocess.run([sys.executable, "-c", checked], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
