"""``hetero-opt serve``: the HTTP service (FastAPI + uvicorn) other autoscalers call."""

from __future__ import annotations

import argparse
from pathlib import Path

from hetero_opt.errors import InputError
from hetero_opt.io import check_destination


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``serve``."""
    p = sub.add_parser("serve", help="serve /v1/solve, /v1/step, /metrics and /healthz over HTTP")
    p.add_argument("--config", required=True, type=Path, metavar="FILE", help="service config YAML")
    p.add_argument("--state-dir", type=Path, metavar="DIR", help="where autoscaler state is kept (default: none)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default: 8080)")


def run(args: argparse.Namespace) -> int:
    """Load the config, build the app and run uvicorn until interrupted."""
    try:
        import uvicorn

        from hetero_opt.service.app import create_app
        from hetero_opt.service.config import load_service_config
    except ModuleNotFoundError as exc:
        raise InputError(f"{exc.name} is not installed: pip install 'hetero_opt[serve]'") from None
    if not 0 < args.port < 65536:
        raise InputError(f"--port={args.port} must be in 1..65535")
    if args.state_dir is not None:
        check_destination(args.state_dir, "--state-dir", folder=True)
    config = load_service_config(args.config)
    app = create_app(config, state_dir=args.state_dir)

    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
