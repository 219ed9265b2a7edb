"""Kubernetes JSON into the ``kubernetes`` client's typed models, with one-line errors."""

from __future__ import annotations

import functools
import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

from hetero_opt.errors import InputError
from hetero_opt.io import load_yaml_all, yaml_problem

GPU_RESOURCE = "nvidia.com/gpu"


def load_k8s_file(path: str | Path) -> Any:
    """Read a JSON or YAML file (``kubectl get ... -o json|yaml``) into plain data.

    UTF-8 with or without a byte-order mark, or UTF-16 with one (what ``kubectl ... > file`` writes
    in Windows PowerShell 5). Several objects one after another (YAML documents joined by ``---``,
    or JSON objects printed by several ``kubectl get`` runs) come back as a :class:`Stream`.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise InputError(f"{p}: cannot read file ({exc.strerror})") from None
    try:
        text = raw.decode("utf-16") if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{p}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    try:
        docs = _yaml_documents(text) if p.suffix.lower() in (".yaml", ".yml") else _json_documents(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{p}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{p}: {yaml_problem(exc)}") from None
    except RecursionError:
        raise InputError(f"{p}: nested too deeply") from None
    return docs[0] if len(docs) == 1 else Stream(docs)


class Stream(list[Any]):
    """The objects of a file that holds several, one after another (each a List or one object)."""


def _yaml_documents(text: str) -> list[Any]:
    """The documents of a YAML stream; empty ones (a trailing ``---``) dropped, at least one (None)."""
    return [d for d in load_yaml_all(text) if d is not None] or [None]


_JSON_SPACE = re.compile(r"[ \t\n\r]*")


def _json_documents(text: str) -> list[Any]:
    """The JSON values of ``text``, one or more separated by whitespace."""
    decoder = json.JSONDecoder()
    docs: list[Any] = []
    end = 0
    while True:
        start = _JSON_SPACE.match(text, end).end()  # type: ignore[union-attr]  # matches the empty string
        if docs and start == len(text):
            return docs
        doc, end = decoder.raw_decode(text, start)
        docs.append(doc)


def list_items(data: Any, kind: str, source: str) -> list[dict[str, Any]]:
    """The ``items`` of a ``List`` (or a single object) of ``kind``, or of each object of a :class:`Stream`
    (named ``<source> document <n>`` in errors); checks each item's kind."""
    if isinstance(data, Stream):
        return [item for n, doc in enumerate(data, 1) for item in list_items(doc, kind, f"{source} document {n}")]
    if isinstance(data, dict) and isinstance(data.get("items"), list):
        items = data["items"]
    elif isinstance(data, dict) and data.get("kind") == kind:
        items = [data]
    else:
        raise InputError(f"{source}: kind={_kind_of(data)!r}: expected a {kind} or a List of {kind} objects")
    out: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise InputError(f"{source}: items[{i}]={type(item).__name__}: expected a {kind} object")
        if item.get("kind", kind) != kind:
            raise InputError(f"{source}: items[{i}]: kind={item.get('kind')!r}: expected {kind}")
        out.append(item)
    return out


def _kind_of(data: Any) -> object:
    return data.get("kind", "missing") if isinstance(data, dict) else type(data).__name__


def to_model(obj: dict[str, Any], model: str, source: str | None = None) -> Any:
    """Deserialise ``obj`` into the kubernetes client model ``model`` (e.g. ``"V1Node"``).

    The client raises ``ValueError`` for a missing required field or a value of the wrong type;
    that becomes an InputError naming ``source`` (the file), the object, the field and the value.
    A Node or Pod needs ``metadata.name``; a Pod also its ``spec``.
    """
    kind = model.removeprefix("V1")
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    name = meta.get("name") if isinstance(meta, dict) else None
    where = f"{source + ': ' if source else ''}{kind} '{name if name is not None else '?'}'"
    try:
        # The public deserialize() changed its signature between client releases (a response
        # object before v34, text plus content type after); the data-level method did not.
        out = _client()._ApiClient__deserialize(obj, model)
    except (ValueError, TypeError) as exc:
        raise InputError(f"{where}: {_reason(exc)}") from None
    if model in ("V1Node", "V1Pod") and (out.metadata is None or not out.metadata.name):
        raise InputError(f"{where}: metadata.name is missing")
    if model == "V1Pod" and out.spec is None:
        raise InputError(f"{where}: spec is missing")
    return out


def _reason(exc: Exception) -> str:
    """A client error on one line: ``field=value: problem`` when the client says which field."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            first = errors()[0]
            field = ".".join(str(x) for x in first.get("loc", ()))
            value = first.get("input")
            shown = type(value).__name__ if isinstance(value, dict | list) else repr(value)
            return f"{field or 'object'}={shown}: {first.get('msg', exc)}"
        except (TypeError, IndexError, AttributeError):
            pass
    return " ".join(str(exc).split())


def to_dict(model: Any) -> Any:
    """A kubernetes client model back to plain JSON data (camelCase keys, None dropped)."""
    return _client().sanitize_for_serialization(model)


@functools.cache
def _client() -> Any:
    try:
        from kubernetes.client import ApiClient
    except ModuleNotFoundError:
        raise InputError("the kubernetes client is not installed: pip install 'hetero_opt[k8s]'") from None
    return ApiClient()


def label_of(obj: Any, key: str) -> str | None:
    """The value of label ``key`` of a client model object, or None (an empty value is no value)."""
    labels = obj.metadata.labels or {}
    value = labels.get(key)
    return str(value) if value is not None and str(value) != "" else None


def gpu_quantity(resources: dict[str, Any] | None, where: str) -> int:
    """Whole GPUs in a resources map (0 when absent); ``where`` names the object in errors."""
    raw = (resources or {}).get(GPU_RESOURCE)
    if raw is None:
        return 0
    # Kubernetes accepts only whole numbers for extended resources such as GPUs.
    if not str(raw).isdigit():
        raise InputError(f"{where}: {GPU_RESOURCE}={raw!r} is not a whole number of GPUs")
    return int(str(raw))


def pod_gpus(pod: Any) -> int:
    """GPUs a pod holds: the sum over containers, at least the largest init container's."""
    spec = pod.spec
    where = f"Pod '{pod.metadata.namespace or 'default'}/{pod.metadata.name}'"
    main = sum(gpu_quantity(_requests(c), f"{where} container '{c.name}'") for c in spec.containers or [])
    init = max(
        (gpu_quantity(_requests(c), f"{where} init container '{c.name}'") for c in spec.init_containers or []),
        default=0,
    )
    return max(main, init)


def _requests(container: Any) -> dict[str, Any]:
    res = container.resources
    if res is None:
        return {}
    # GPUs are extended resources: a limit alone implies the same request.
    return {**(res.limits or {}), **(res.requests or {})}


def is_running(pod: Any) -> bool:
    """A pod bound to a node that has not finished holds its resources."""
    phase = pod.status.phase if pod.status is not None else None
    return bool(pod.spec.node_name) and phase not in ("Succeeded", "Failed")


def gpus_used_by_node(pods: list[Any]) -> dict[str, int]:
    """GPUs the running pods hold, per node name."""
    used: defaultdict[str, int] = defaultdict(int)
    for p in pods:
        if is_running(p):
            used[p.spec.node_name] += pod_gpus(p)
    return dict(used)


def as_id(value: str) -> str:
    """A label value as an instance id (characters outside the id alphabet become '-')."""
    return re.sub(r"[^A-Za-z0-9_.:/@+-]", "-", value)[:200] or "-"
