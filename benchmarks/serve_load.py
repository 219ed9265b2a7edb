"""Bounded load test of ``hetero-opt serve`` on localhost; stops by itself.

1. Throughput: ``SOLVES`` small-instance ``POST /v1/solve`` calls from ``THREADS`` clients;
   prints requests/s and p50/p99/max latency; fails below ``MIN_RPS``.
2. Robustness: ``MIXED`` requests, good and malformed in a fixed mix (seeded); fails on any 5xx
   or on a 4xx whose body is not ``{"error": <one line>}``.

Run: ``make loadtest`` (or ``.venv/bin/python benchmarks/serve_load.py``). The server is a
subprocess on a free 127.0.0.1 port and is stopped at the end; every request has a timeout and
the whole run a deadline of ``DEADLINE_S``.
"""

from __future__ import annotations

import json
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
SMALL = ROOT / "instances" / "tier_preference.yaml"
DEMO = ROOT / "instances" / "autoscale"
SOLVES, MIXED, THREADS = 500, 1000, 4
MIN_RPS = 50.0
DEADLINE_S = 180.0
MAX_BODY = 65536


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _start(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    config = folder / "serve.yaml"
    config.write_text(f"policy: {DEMO / 'policy.yaml'}\nsolver: greedy\nmax_body_bytes: {MAX_BODY}\n")
    port = _free_port()
    cmd = [sys.executable, "-m", "hetero_opt", "serve", "--config", str(config), "--port", str(port)]
    proc = subprocess.Popen([*cmd, "--state-dir", str(folder / "state")], stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    for _ in range(150):
        if proc.poll() is not None:
            raise SystemExit(f"serve exited: {proc.stderr.read().decode()[-400:]}")  # type: ignore[union-attr]
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("serve did not start within 30 s")


def _instance() -> dict[str, Any]:
    from hetero_opt import load_instance

    return load_instance(SMALL).model_dump(mode="json")


Job = Callable[[httpx.Client], tuple[int, str, float]]


def _run(jobs: list[Job], deadline: float) -> list[tuple[int, str, float] | None]:
    """Run ``jobs`` from THREADS clients; results in job order (None: skipped at the deadline)."""
    results: list[tuple[int, str, float] | None] = [None] * len(jobs)

    def worker(first: int) -> None:
        with httpx.Client(timeout=30) as client:
            for i in range(first, len(jobs), THREADS):
                if time.time() > deadline:
                    return
                results[i] = jobs[i](client)

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(worker, range(THREADS)))
    return results


def _request(method: str, url: str, **kw: Any) -> Job:
    def job(client: httpx.Client) -> tuple[int, str, float]:
        t0 = time.perf_counter()
        r = client.request(method, url, **kw)
        return r.status_code, r.text, time.perf_counter() - t0

    return job


def _mixed(url: str, inst: dict[str, Any]) -> list[tuple[str, Job]]:
    bad_inst = json.loads(json.dumps(inst))
    bad_inst["nodes"][0]["gpus_free"] = 99
    h = {"content-type": "application/json"}
    kinds: dict[str, Job] = {
        "good solve": _request("POST", f"{url}/v1/solve", json={"instance": inst}),
        "malformed JSON": _request("POST", f"{url}/v1/solve", content=b'{"instance": [', headers=h),
        "not an object": _request("POST", f"{url}/v1/solve", content=b'"hello"', headers=h),
        "bad instance": _request("POST", f"{url}/v1/solve", json={"instance": bad_inst}),
        "wrong type": _request("POST", f"{url}/v1/solve", json={"instance": inst, "seed": "x"}),
        "over time limit": _request("POST", f"{url}/v1/solve", json={"instance": inst, "time_limit_s": 1e6}),
        "too large": _request("POST", f"{url}/v1/solve", content=b" " * (MAX_BODY + 1), headers=h),
        "binary garbage": _request("POST", f"{url}/v1/solve", content=bytes(range(256)) * 4, headers=h),
        "bad step": _request("POST", f"{url}/v1/step", json={"time": "now", "metrics": {}, "instance": inst}),
        "step, empty metrics": _request("POST", f"{url}/v1/step", json={"time": 1.0, "metrics": {}, "instance": inst}),
        "step, no metrics": _request("POST", f"{url}/v1/step", json={"time": 1.0, "instance": inst}),
        "unknown path": _request("GET", f"{url}/v1/nothing"),
        "wrong method": _request("GET", f"{url}/v1/solve"),
        "metrics": _request("GET", f"{url}/metrics"),
    }
    rng = random.Random(0)
    names = sorted(kinds)
    return [(name, kinds[name]) for name in (rng.choice(names) for _ in range(MIXED))]


def main() -> int:
    """Run both phases; exit code 1 if a limit is missed."""
    deadline = time.time() + DEADLINE_S
    inst = _instance()
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = _start(Path(tmp))
        try:
            _run([_request("POST", f"{url}/v1/solve", json={"instance": inst})] * 20, deadline)  # warm-up
            t0 = time.perf_counter()
            results = [
                r for r in _run([_request("POST", f"{url}/v1/solve", json={"instance": inst})] * SOLVES, deadline) if r
            ]
            wall = time.perf_counter() - t0
            lat = sorted(r[2] for r in results)
            ok = sum(1 for r in results if r[0] == 200)
            rps = len(results) / wall
            p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000  # noqa: E731
            print(
                f"solve: {len(results)} requests ({ok} ok) from {THREADS} clients in {wall:.2f} s = {rps:.1f} req/s; "
                f"latency p50 {p(0.50):.1f} ms, p99 {p(0.99):.1f} ms, max {lat[-1] * 1000:.1f} ms"
            )
            if rps < MIN_RPS or ok != SOLVES:
                print(f"FAIL: below {MIN_RPS} req/s or not every solve answered 200")
                failed = True
            mixed = _mixed(url, inst)
            answers = [
                (name, r) for (name, _), r in zip(mixed, _run([job for _, job in mixed], deadline), strict=True) if r
            ]
            codes: Counter[str] = Counter()
            for name, (status, text, _) in answers:
                codes[f"{status} {name}"] += 1
                if status >= 500:
                    failed = True
                    print(f"FAIL: {name}: {status} {text[:200]}")
                elif status >= 400:
                    body = json.loads(text)
                    if set(body) != {"error"} or "\n" in body["error"]:
                        failed = True
                        print(f"FAIL: {name}: {status} body {text[:200]}")
            n5xx = sum(n for k, n in codes.items() if k.startswith("5"))
            print(f"mixed: {len(answers)} requests, {n5xx} answered 5xx")
            for k in sorted(codes):
                print(f"  {codes[k]:4d} x {k}")
            if len(answers) != MIXED:
                print(f"FAIL: only {len(answers)} of {MIXED} mixed requests ran before the deadline")
                failed = True
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print("FAIL" if failed else "ok")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
