"""pyproject.toml: metadata current setuptools reads without a deprecation warning."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def test_the_licence_is_an_spdx_expression_read_by_the_setuptools_required() -> None:
    # before: license = { text = "Apache-2.0" }, a TOML table setuptools >= 77 warns is deprecated
    doc = tomllib.loads(PYPROJECT.read_text())
    assert doc["project"]["license"] == "Apache-2.0"
    assert not any(c.startswith("License ::") for c in doc["project"].get("classifiers", []))  # PEP 639: not both
    setuptools = [r for r in doc["build-system"]["requires"] if re.match(r"setuptools\b", r)]
    assert setuptools == ["setuptools>=77"]  # the first setuptools that reads a licence expression
