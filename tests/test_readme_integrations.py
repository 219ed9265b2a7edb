"""Every example block of the README's "Integrations" section runs as written (in a scratch folder)."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
SECTION = README[README.index("## Integrations") : README.index("## Layout")]
BLOCKS = re.findall(r"```(sh|python)\n(.*?)```", SECTION, flags=re.S)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_integration_examples_run(tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed; the service example uses it")
    if not (ROOT / ".venv" / "bin" / "hetero-opt").exists():
        pytest.skip("the README's commands use .venv/bin/hetero-opt, which `make` creates")
    for name in (".venv", "tests", "instances"):
        (tmp_path / name).symlink_to(ROOT / name)
    assert len(BLOCKS) >= 5
    port = str(_free_port())
    for lang, code in BLOCKS:
        if lang == "sh":
            cmd = ["bash", "-euo", "pipefail", "-c", code.replace("8080", port)]
        else:
            cmd = [sys.executable, "-c", code]
        done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, f"{lang} block failed:\n{code}\n{done.stdout[-800:]}\n{done.stderr[-800:]}"
        if "hetero-opt serve" in code:
            assert '"status":"ok"' in done.stdout
            assert '"error":"instance: format_version=missing' in done.stdout
        if "decode_tps" in code:
            assert done.stdout.splitlines()[0] == "50.0"
