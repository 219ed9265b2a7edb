"""One real ``hetero-opt serve`` (uvicorn) process: killed between steps, restarted, same decisions."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from hetero_opt import load_instance
from service.helpers import CONFIG, DEMO, drive, reference


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _start(state_dir: Path, port: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "hetero_opt", "serve", "--config", str(CONFIG), "--state-dir", str(state_dir)]
    proc = subprocess.Popen([*cmd, "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited with {proc.returncode}: {proc.stderr.read().decode()[-500:]}")  # type: ignore[union-attr]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("serve did not answer /healthz within 30 s")


def _post(port: int) -> Any:
    def post(path: str, body: dict[str, Any]) -> Any:
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}{path}",
            data=json.dumps(body).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    return post


def test_killed_server_resumes_with_identical_decisions(tmp_path: Path) -> None:
    inst = load_instance(DEMO / "cluster.yaml")
    port = _free_port()
    proc = _start(tmp_path, port)
    try:
        first, inst = drive(_post(port), 0, 3, inst)
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # no clean shutdown: only what was saved survives
        proc.wait()
    port = _free_port()
    proc = _start(tmp_path, port)
    try:
        second, _ = drive(_post(port), 3, 6, inst)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert first + second == reference()
