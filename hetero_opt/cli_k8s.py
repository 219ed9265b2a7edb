"""``hetero-opt import k8s`` and ``hetero-opt export k8s``: Kubernetes objects in and out."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, get_args

from hetero_opt.errors import InputError
from hetero_opt.io import check_destination, load_instance, parse_instance, save_instance, write_atomic


def add_import(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``import``."""
    p = sub.add_parser("import", help="build an instance from Kubernetes nodes and pods (kubectl get -o json)")
    p.add_argument("source", choices=["k8s"], help="where the objects come from")
    p.add_argument("--nodes", required=True, metavar="FILE", help="kubectl get nodes -o json (or yaml)")
    p.add_argument("--pods", metavar="FILE", help="kubectl get pods -A -o json (or yaml); GPUs in use and groups")
    p.add_argument(
        "--preset",
        default="labels",
        choices=["topograph", "eks", "gke", "labels"],
        help="topology labels: NVIDIA Topograph, EKS, GKE, or those named in --map (default: labels)",
    )
    p.add_argument("--map", metavar="FILE", help="import map YAML: cluster, GPU names, topology labels, services")
    p.add_argument(
        "--request",
        action="append",
        default=[],
        metavar="SERVICE=UNITS",
        help="add a scaling request (target units) to the instance; repeatable",
    )
    p.add_argument("--out", required=True, type=Path, metavar="FILE", help="instance file to write (.json/.yaml)")


def run_import(args: argparse.Namespace) -> int:
    """Import, validate and write the instance; warnings go to stderr."""
    from hetero_opt.adapters.k8s_import import import_k8s_files, load_import_map
    from hetero_opt.cli import INSTANCE_SUFFIXES, instance_summary

    out: Path = args.out
    if out.suffix.lower() not in INSTANCE_SUFFIXES:
        raise InputError(f"--out='{out}' must end in .json, .yaml or .yml")
    read = {"--nodes": args.nodes, "--pods": args.pods, "--map": args.map}
    check_destination(out, "--out", create=False, inputs=read)
    mapping = load_import_map(args.map) if args.map else None
    if args.preset == "labels" and (mapping is None or mapping.topology is None):
        print(
            "warning: --preset labels without topology labels in --map: every node uses the fallback", file=sys.stderr
        )
    requests = [_request(r) for r in args.request]
    result = import_k8s_files(args.nodes, args.pods, args.preset, mapping)
    instance = result.instance
    if requests:
        data = instance.model_dump(mode="json") | {"requests": requests}
        instance = parse_instance(data, "imported instance with --request")
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
    save_instance(instance, out)
    print(f"{out}: {instance_summary(instance)}")
    return 0


def _request(text: str) -> dict[str, Any]:
    service, sep, units = text.partition("=")
    if not sep or not service or not units.strip().isdigit():
        raise InputError(f"--request={text!r} must be SERVICE=UNITS, e.g. chat=4")
    return {"service": service, "target_units": int(units)}


def add_export(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``export``."""
    from hetero_opt.adapters.k8s_export import Format

    p = sub.add_parser("export", help="write the Kubernetes manifests that carry out a plan")
    p.add_argument("target", choices=["k8s"], help="what to write")
    p.add_argument("--plan", required=True, metavar="FILE", help="plan file written by `hetero-opt solve`")
    p.add_argument("--instance", required=True, metavar="FILE", help="the instance the plan was solved on")
    p.add_argument("--format", required=True, choices=get_args(Format), help="workload kind to write")
    p.add_argument("--namespace", default="default", help="namespace of the objects (default: default)")
    p.add_argument("--image", default="vllm/vllm-openai:latest", help="serving image of the pod templates")
    p.add_argument(
        "--kueue-topology",
        metavar="LABEL",
        help="instead of node affinity, ask Kueue to keep each role's pods in one domain of LABEL",
    )
    p.add_argument("--out", type=Path, metavar="FILE", help="YAML file to write (default: stdout)")


def run_export(args: argparse.Namespace) -> int:
    """Check the plan against the instance and write the manifests as one YAML stream."""
    from hetero_opt.adapters.k8s_export import dump_yaml, export_manifests
    from hetero_opt.placement.verify import verify

    if args.out is not None:
        check_destination(args.out, "--out", create=False, inputs={"--plan": args.plan, "--instance": args.instance})
    instance = load_instance(args.instance)
    plan = _load_plan(Path(args.plan))
    violations = verify(instance, plan)
    if violations:
        raise InputError(f"{args.plan}: plan does not fit instance '{args.instance}': {violations[0]}")
    manifests = export_manifests(
        instance,
        plan,
        args.format,
        namespace=args.namespace,
        image=args.image,
        kueue_topology=args.kueue_topology,
    )
    text = dump_yaml(manifests)
    if args.out is None:
        sys.stdout.write(text)
    else:
        write_atomic(args.out, text)
        print(f"{args.out}: {len(manifests)} {args.format} manifests", file=sys.stderr)
    return 0


def _load_plan(path: Path) -> Any:
    """A plan from a ``solve`` result file (or a bare plan); one-line error naming the field."""
    import json

    from pydantic import ValidationError

    from hetero_opt.placement.plan import Plan

    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read file ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    except RecursionError:
        raise InputError(f"{path}: nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    if isinstance(data, dict) and "plan" in data:
        data = data["plan"]
    try:
        return Plan.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"]) or "(plan)"
        shown = "missing" if err["type"] == "missing" else repr(err.get("input"))
        raise InputError(f"{path}: plan.{loc}={shown}: {err['msg']}") from None
