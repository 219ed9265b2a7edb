"""Reading and writing instance files (JSON or YAML) with one-line errors."""

from __future__ import annotations

import codecs
import contextlib
import json
import os
import re
import secrets
from collections.abc import Iterator, Mapping
from itertools import groupby
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import from_json

from hetero_opt.errors import InputError
from hetero_opt.gc_pause import gc_paused
from hetero_opt.instance import (
    COLUMNS_FORMAT_VERSION,
    FORMAT_VERSION,
    FORMAT_VERSIONS,
    ROWS_FORMAT_VERSION,
    Instance,
    NodeTable,
    PodTable,
    clip,
)

M = TypeVar("M", bound=BaseModel)


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A YAML mapping names the same key twice (PyYAML would keep the last value without a word)."""


_STR_TAG, _MERGE_TAG = "tag:yaml.org,2002:str", "tag:yaml.org,2002:merge"
_VALUE = object()  # marks a key compared by the value it reads as


class _StrictConstructor(yaml.constructor.SafeConstructor):
    """PyYAML's safe constructor that refuses duplicate keys and names the line of an unreadable integer."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """The mapping of ``node``; :class:`DuplicateKeyError` at the second of two equal keys."""
        seen: set[object] = set()
        for key_node, _ in node.value:  # its own keys: a merged one (``<<: *base``) may be overridden
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != _MERGE_TAG:
                # a string as written; any other scalar as the value it reads as, which the mapping's keys
                # compare by: 1 and 0x1, or true and yes, are one key, 1 and '1' two
                key = key_node.value if key_node.tag == _STR_TAG else (_VALUE, self.construct_object(key_node))
                if key in seen:
                    raise DuplicateKeyError(None, None, f"key {key_node.value!r} appears twice", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        """The integer of ``node``; a :class:`~yaml.constructor.ConstructorError` at its line when Python
        refuses it (more than 4,300 digits)."""
        try:
            return super().construct_yaml_int(node)
        except ValueError as exc:
            problem = str(exc).split(";")[0]  # without Python's advice to raise the limit
            raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark) from None


_StrictConstructor.add_constructor(  # type: ignore[type-var]  # (the stubs type it for subclasses of Loader)
    "tag:yaml.org,2002:int", _StrictConstructor.construct_yaml_int
)


class _StrictSafeLoader(_StrictConstructor, yaml.SafeLoader):
    """The reference YAML loader: pure-Python PyYAML with the strict constructor."""


#: libyaml's parser with the strict constructor (same data, about 4x faster); pure Python without libyaml.
_FAST_YAML_LOADER: type[yaml.SafeLoader] | type[yaml.CSafeLoader] = _StrictSafeLoader
if hasattr(yaml, "CSafeLoader"):

    class _StrictCSafeLoader(_StrictConstructor, yaml.CSafeLoader):
        """libyaml's parser with the strict constructor."""

    _FAST_YAML_LOADER = _StrictCSafeLoader


def load_yaml(text: str, *, fast: bool = True) -> Any:
    """Parse one YAML document with PyYAML's safe types, refusing duplicate keys (:class:`DuplicateKeyError`).

    ``fast`` parses with libyaml where installed; otherwise (the reference) in pure Python.
    """
    return yaml.load(text, Loader=_FAST_YAML_LOADER if fast else _StrictSafeLoader)


def load_yaml_all(text: str) -> Iterator[Any]:
    """The documents of a YAML stream (``---`` between them), each as :func:`load_yaml` parses one."""
    return yaml.load_all(text, Loader=_FAST_YAML_LOADER)


def yaml_problem(exc: yaml.YAMLError) -> str:
    """One line for a YAML error: where and what (``line 31: key 'requests' appears twice``)."""
    mark = getattr(exc, "problem_mark", None)
    problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
    if isinstance(exc, yaml.constructor.ConstructorError) and mark is not None:  # a value, not the syntax
        return f"line {mark.line + 1}: {problem}"
    where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
    return f"malformed YAML{where}: {problem}"

#: The first ``nodes`` key of a JSON instance and what its value opens with: ``{`` for columns, ``[`` for
#: rows. Only the speed of a load depends on it (a wrong guess validates the same data the other way).
_NODES = re.compile(r'"nodes"\s*:\s*([\[{])')
_NODES_BYTES = re.compile(rb'"nodes"\s*:\s*([\[{])')
#: The node columns of strings whose values repeat from node to node (not the ids: each is unique).
_REPEATING = frozenset({"gpu_type", "cluster", "s2", "s1", "s0"})
#: A column's key in a columnar ``nodes`` mapping and the first character of its value.
_COLUMN = re.compile(r'\s*"([^"\\]*)"\s*:\s*(\S)')
_COLUMN_BYTES = re.compile(rb'\s*"([^"\\]*)"\s*:\s*(\S)')
#: What follows a column's value (its closing bracket, or its first character where it is a scalar such as
#: null): the next column, or the end of the mapping.
_NEXT = re.compile(r"[^,}\]]*([,}])")
_NEXT_BYTES = re.compile(rb"[^,}\]]*([,}])")
#: A column's opening bracket and the one that closes it (a column holds scalars: no bracket in between).
_CLOSING: dict[str | bytes, str | bytes] = {"[": "]", "{": "}", b"[": b"]", b"{": b"}"}

_KINDS = {
    "gpu_types": "GpuType",
    "nodes": "Node",
    "subgroups": "RdmaSubgroup",
    "services": "Service",
    "groups": "DeploymentGroup",
    "requests": "ScalingRequest",
}


def parse_instance(data: object, source: str = "<instance>") -> Instance:
    """Validate already-parsed data; raise :class:`InputError` naming entity, field and value."""
    if not isinstance(data, dict):
        raise InputError(f"{source}: top level must be a mapping, got {type(data).__name__}")
    try:
        with gc_paused():
            return Instance.model_validate(data)
    except ValidationError as exc:
        raise InputError(f"{source}: {describe_error(exc, data)}") from None


def load_instance(path: str | Path) -> Instance:
    """Load and validate an instance file (``.json``, ``.yaml`` or ``.yml``, UTF-8)."""
    if not isinstance(path, str | os.PathLike):
        raise InputError(f"load_instance() takes a path, not {type(path).__name__}: parse_instance(dict) takes data")
    if path == "":  # Path("") is ".", a directory: say what is wrong
        raise InputError("load_instance: path='' is empty: name an instance file (.json, .yaml or .yml)")
    p = Path(path)
    if p.suffix.lower() in (".yaml", ".yml"):
        return loads_instance(read_text(p), p)
    raw = read_bytes(p)
    if raw.startswith(codecs.BOM_UTF8):  # as YAML, CSV and Kubernetes files; the 3 bytes only, no decode
        raw = raw[len(codecs.BOM_UTF8) :]
    fast = _fast_json(raw)  # JSON straight from the bytes: the parser checks UTF-8 (no decode to str)
    return fast if fast is not None else _reference(read_text(p, raw), p)


def loads_instance(text: str, path: str | Path) -> Instance:
    """Parse and validate the text of an instance file; ``path`` gives the format (suffix) and the error's name.

    The fast path parses JSON in pydantic's Rust parser and YAML with libyaml. Anything it refuses
    goes through the reference path (Python's ``json`` or pure-Python PyYAML, then validation of
    the parsed data), which names the file and the first error exactly as it always has, or
    accepts what only the fast parser refused (a lone surrogate escape, which ``json`` reads).
    """
    p = Path(path)
    if p.suffix.lower() in (".yaml", ".yml"):
        try:
            with gc_paused():
                return Instance.model_validate(load_yaml(text))
        except (ValidationError, ValueError, yaml.YAMLError, RecursionError):
            pass  # refused by the fast path: the reference path decides and words the error
        return _reference(text, p)
    text = text.removeprefix("\ufeff")  # a UTF-8 byte-order mark, decoded
    fast = _fast_json(text)
    return fast if fast is not None else _reference(text, p)


def _fast_json(data: str | bytes) -> Instance | None:
    """The instance in JSON ``data`` by pydantic's Rust parser; None where it refuses (then the reference
    path decides and words the error)."""
    try:
        with gc_paused():
            nodes = (_NODES_BYTES if isinstance(data, bytes) else _NODES).search(data)  # type: ignore[arg-type]
            if nodes is None or nodes[1] in ("[", b"["):
                return Instance.model_validate_json(data)
            # Columnar nodes: parsed to Python first (pydantic-core's parser), then validated: ~2x faster than
            # validating them from JSON (decision 52), with the parser's string cache where it pays (decision 71).
            runs = _repeats_as_runs(data, nodes.end())
            return Instance.model_validate(from_json(data, cache_strings="keys" if runs else "all"))
    except (ValidationError, ValueError, RecursionError):
        return None


def _repeats_as_runs(data: str | bytes, start: int) -> bool:
    """Whether no node column of strings but the ids is a plain list in JSON ``data`` whose columnar nodes open
    at ``start`` (just after the ``{``): each is runs (format 1.4), null or left out. pydantic-core's string
    cache makes equal strings one object, which pays where a plain column repeats a GPU type or a switch node
    after node; with those columns as runs what repeats was written once, the strings left to parse are the
    distinct ids, and the cache only costs (decision 71). The columns are walked key by key, each value skipped
    to its closing bracket (a column holds scalars; a few memchr-speed scans over the nodes). A file this walk
    misreads (a bracket inside a string, which no valid id or name holds) gets False: the cache on, as before
    runs; the answer changes the load's speed and how many objects hold equal strings, never the values."""
    as_bytes = isinstance(data, bytes)
    column, after = (_COLUMN_BYTES, _NEXT_BYTES) if as_bytes else (_COLUMN, _NEXT)
    at, runs = start, False
    while True:
        key = column.match(data, at)  # type: ignore[arg-type]
        if key is None:
            return False
        name: str = key[1].decode() if isinstance(key[1], bytes) else key[1]
        if name in _REPEATING:
            if key[2] in ("[", b"["):
                return False
            runs = runs or key[2] in ("{", b"{")
        close = _CLOSING.get(key[2])
        end = key.end() if close is None else data.find(close, key.end()) + 1  # type: ignore[arg-type]
        nxt = after.match(data, end) if end > 0 else None  # type: ignore[arg-type]
        if nxt is None:
            return False
        if nxt[1] in ("}", b"}"):
            return runs
        at = nxt.end()


def _reference(text: str, p: Path) -> Instance:
    """Python's parser, then validation of the parsed data: one line naming the file and the first error."""
    data = parse_text(text, p)
    try:
        return parse_instance(data, str(p))
    except RecursionError:
        raise InputError(f"{p}: nesting is too deep to validate") from None


def read_bytes(path: Path) -> bytes:
    """The bytes of ``path``; :class:`InputError` naming the file when it cannot be read."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read file ({exc.strerror or type(exc).__name__})") from None


def read_text(path: Path, raw: bytes | None = None) -> str:
    """The UTF-8 text of ``path`` (of its bytes ``raw``, if read already); :class:`InputError` naming the file
    when it cannot be read or decoded."""
    if raw is None:
        raw = read_bytes(path)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text: byte 0x{raw[exc.start]:02x} at offset {exc.start}") from None


def parse_text(text: str, path: Path) -> object:
    """Parse JSON, or YAML for ``.yaml``/``.yml``; one-line :class:`InputError` naming the file and where."""
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            return load_yaml(text, fast=False)
        return json.loads(text.removeprefix("\ufeff"))  # json refuses a byte-order mark; YAML skips it
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: {yaml_problem(exc)}") from None
    except RecursionError:
        raise InputError(f"{path}: nesting is too deep to parse") from None
    except ValueError as exc:  # e.g. an integer literal beyond Python's 4300-digit conversion limit
        raise InputError(f"{path}: unreadable value: {clip(str(exc))}") from None


def save_instance(instance: Instance, path: str | Path, *, columnar: bool | None = None, runs: bool = True) -> None:
    """Write ``instance`` as JSON or YAML (by suffix), atomically.

    The nodes and each group's pods are written in the form the instance holds them (``columnar=None``): lists
    of objects, or columns for a :class:`~hetero_opt.instance.NodeTable` (format 1.2) and a
    :class:`~hetero_opt.instance.PodTable` (format 1.3; a columnar production file loads 2-3x faster).
    ``columnar=True`` writes nodes and pods as columns, ``False`` as lists (and ``'1.1'``, which releases
    before 1.2 read, where it turned columns into lists; an instance already in rows keeps the version it says).
    Node columns are written as runs of equal values (format 1.4, ``'1.4'``) where that takes at most a quarter
    of the values (a production file: 2.5 MB as plain columns, 1.0 MB with runs); ``runs=False`` writes plain
    columns (and ``'1.3'``, which releases before 1.4 read).
    """
    p = Path(path)
    write_atomic(p, instance_text(instance, p, columnar=columnar, runs=runs))


def instance_text(instance: Instance, path: Path, *, columnar: bool | None = None, runs: bool = True) -> str:
    """The text :func:`save_instance` writes to ``path`` (JSON, or YAML by suffix)."""
    data = instance.model_dump(mode="json", exclude_defaults=False)
    nodes = instance.nodes
    if columnar:
        if not isinstance(nodes, NodeTable):
            data["nodes"] = NodeTable.from_nodes(nodes).to_columns()
        for g, dumped in zip(instance.groups, data["groups"], strict=True):
            if not isinstance(g.pods, PodTable):
                dumped["pods"] = PodTable.from_pods(g.pods).to_columns()
        data["format_version"] = FORMAT_VERSION
    elif columnar is False:
        if isinstance(nodes, NodeTable):
            data["nodes"] = nodes.to_rows()
        for g, dumped in zip(instance.groups, data["groups"], strict=True):
            if isinstance(g.pods, PodTable):
                dumped["pods"] = g.pods.to_rows()
        if isinstance(nodes, NodeTable) or any(isinstance(g.pods, PodTable) for g in instance.groups):
            data["format_version"] = ROWS_FORMAT_VERSION  # rows need nothing of 1.2: readable before it
    if isinstance(data["nodes"], dict):
        encoded = _runs_encoded(data["nodes"]) if runs else {}
        data["nodes"].update(encoded)
        if encoded:
            data["format_version"] = FORMAT_VERSION
        elif data["format_version"] == FORMAT_VERSION:
            data["format_version"] = COLUMNS_FORMAT_VERSION  # nothing of 1.4 used: readable before it
    if path.suffix.lower() in (".yaml", ".yml"):
        return yaml.safe_dump(data, sort_keys=False)
    return json.dumps(data, indent=1)


def _runs_encoded(columns: dict[str, list[Any]]) -> dict[str, dict[str, list[Any]]]:
    """The node columns worth writing as runs (format 1.4): those with at most a quarter as many runs of equal
    values as values (the GPU type and the switches of a cluster, laid out node by node), each as
    ``{"values": [...], "lengths": [...]}``."""
    out = {}
    for name, col in columns.items():
        if col is None:
            continue
        values, lengths = [], []
        for value, run in groupby(col):
            values.append(value)
            lengths.append(sum(1 for _ in run))
            if 4 * len(values) > len(col):  # not worth it (the ids: one run per node), known part way
                break
        else:
            out[name] = {"values": values, "lengths": lengths}
    return out


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename (never a partial file)."""
    write_all_atomic({path: text})


def write_all_atomic(files: dict[Path, str]) -> None:
    """Write every file or none: all go to temporary files first, then each is renamed.

    A file that cannot be written (a folder in its place, no folder to hold it, ...) raises
    :class:`InputError` naming it, not its temporary file, after the temporary files written so
    far are removed; a folder in the place of any file is refused before anything is written.
    """
    for path in files:
        if path.is_dir():
            raise InputError(f"{path}: cannot write (a folder is in its place)")
    tmps: list[tuple[Path, Path]] = []
    current = next(iter(files), Path("?"))
    try:
        for path, text in files.items():
            current = path
            tmp = write_synced_temp(path, text.encode("utf-8"))
            tmps.append((tmp, path))
        for tmp, path in tmps:
            current = path
            tmp.replace(path)
    except BaseException as exc:  # an interrupt too: no temporary file is left behind
        for tmp, _ in tmps:
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise InputError(f"{current}: cannot write ({exc.strerror or type(exc).__name__})") from None
        raise
    for folder in dict.fromkeys(path.parent for path in files):
        sync_folder(folder)


def replace_synced(path: Path, data: bytes) -> None:
    """``data`` written over ``path`` whole or not at all: a synced temporary file renamed over it, then the
    folder synced. An ``OSError`` propagates (the caller decides whether a failed write stops it)."""
    tmp = write_synced_temp(path, data)
    try:
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    sync_folder(path.parent)


def write_synced_temp(path: Path, data: bytes) -> Path:
    """``data`` in a new temporary file beside ``path``, on disk (fsync) before it is renamed: a crash after
    the rename finds the whole file, not an empty one. The name is unique (two writers of one path never
    share it); the mode is a new file's (the umask applies, as to ``open``)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def sync_folder(folder: Path) -> None:
    """The renames into ``folder`` on disk (fsync of the folder); skipped where the file system refuses it."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def require_keys(data: Mapping[str, Any], keys: tuple[str, ...], where: str) -> None:
    """Refuse a saved state (``data``) without ``keys``, which every state the project writes holds: an emptied
    or foreign file (``{}``) is not read as a fresh start that forgets cooldowns and starting units."""
    missing = [key for key in keys if key not in data]
    if missing:
        raise InputError(
            f"{where}: holds no autoscaler state (no {' or '.join(map(repr, missing))}); move it away to start afresh"
        )


def check_destination(
    path: Path,
    flag: str,
    *,
    folder: bool = False,
    create: bool = True,
    inputs: Mapping[str, str | Path | None] | None = None,
) -> None:
    """Refuse, before any work, a destination that cannot be written later; the error names ``flag``.

    ``folder``: ``path`` is a folder to write into, else a file. ``create``: missing folders on the
    way are made when writing (else the file's folder must exist). ``inputs`` (flag -> path): files the
    command reads, which writing ``path`` would destroy. Refused: one of ``inputs`` (compared as files
    where both exist, else resolved), a file where a folder is needed (``path`` or a folder above it), a
    folder where the file goes, a missing folder that is not made, a folder that is not writable.
    """
    for in_flag, given in (inputs or {}).items():
        if given is not None and same_file(path, Path(given)):
            raise InputError(f"{flag} '{path}' is the {in_flag} input; give another file")
    try:
        if path.exists() and path.is_dir() != folder:
            is_, wanted = ("file", "folder") if folder else ("folder", "file")
            raise InputError(f"{flag} '{path}': is a {is_}, not a {wanted}")
        problem = _folder_problem(path if folder else path.parent, create=create)
    except OSError as exc:
        problem = f"cannot inspect ({exc.strerror or type(exc).__name__})"
    if problem:
        raise InputError(f"{flag} '{path}': {problem}")


def check_export_prefix(prefix: str, flag: str = "export_model") -> None:
    """Refuse a model export prefix (files ``PREFIX.*``) whose folder is missing, a file or not writable."""
    try:
        problem = _folder_problem(Path(os.path.dirname(prefix + ".x") or "."), create=False)
    except OSError as exc:
        problem = f"cannot inspect ({exc.strerror or type(exc).__name__})"
    if problem:
        raise InputError(f"{flag}='{prefix}': {problem}; the model files cannot be written there")


def _folder_problem(folder: Path, *, create: bool) -> str:
    """Why files cannot be written into ``folder`` ('' if they can); with ``create``, the missing folders on the
    way would be made, so the nearest existing one decides."""
    if not create and not folder.exists():
        return f"folder '{folder}' does not exist"
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        return f"'{folder}' is a file, not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"folder '{folder}' is not writable"
    return ""


def same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name the same file: :func:`os.path.samefile` where both exist, else resolved."""
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except OSError:
        return False


def describe_error(
    exc: ValidationError, data: dict[str, Any], kinds: Mapping[str, str] = _KINDS, *, source: str | None = None
) -> str:
    """One line for the first error: entity (by its id), field and value.

    ``kinds`` names the entities of the top-level lists (``services`` -> ``Service``, found by their ``id`` or
    ``service``). With ``source``, the YAML text ``data`` was read from (a config), list places are written
    ``windows[0]`` and a string YAML read as a number (``10:30`` is 630 in YAML 1.1) is shown as written.
    ``nodes`` is a list of nodes or (format 1.2) a mapping of columns: the error of the form the data has
    is the one described (a columnar error comes worded by the columns' validation, ``Instance.nodes``).
    """
    # Validated from JSON, the nodes' union reports each form it tried under its name (rows, columns): keep
    # the one of the form given, without its name. (From Python data, the form is chosen first.)
    given = "columns" if isinstance(data.get("nodes"), dict) else "rows"
    other = {"rows": "columns", "columns": "rows"}[given]
    err = next(e for e in exc.errors() if e["loc"][:2] != ("nodes", other))
    msg = str(err["msg"])
    loc = list(err["loc"])
    if loc[:2] == ["nodes", given]:
        del loc[1]
    entity, item = "", None
    if len(loc) >= 2 and loc[0] in kinds and isinstance(loc[1], int):
        items = data.get(str(loc[0]))
        item = items[loc[1]] if isinstance(items, list) and loc[1] < len(items) else None
        ident = item.get("id", item.get("service")) if isinstance(item, dict) else None
        entity = f"{kinds[str(loc[0])]} '{clip(str(ident))}'" if ident is not None else f"{loc[0]}[{loc[1]}]"
        loc = loc[2:]
    head = f"{entity}: " if entity else ""
    if msg.startswith("Value error, "):
        msg = msg.removeprefix("Value error, ")
        if source is not None and loc:  # a config's nested section (kpa: ...) is named before its rule
            msg = f"{_field(loc, brackets=True)}: {msg}"
        # an entity's own rule names it; a rule of one of its fields (a group's pod columns) does not
        return msg if not entity or msg.startswith(f"{kinds[str(err['loc'][0])]} ") else f"{head}{msg}"
    pods = item.get("pods") if isinstance(item, dict) else None
    if loc[:1] == ["pods"] and len(loc) == 3 and isinstance(pods, (dict, PodTable)):
        loc = ["pods", f"{loc[2]}[{loc[1]}]"]  # a value of a group's pod columns: its place in them (pods.count[3])
    field = _field(loc, brackets=source is not None)
    value = err.get("input")
    if err["type"] == "missing":
        shown = "missing"
    elif isinstance(value, (dict, list)):
        shown = type(value).__name__
    else:
        shown = clip(repr(value))
    if field == "format_version" and isinstance(value, float) and f"{value:.1f}" in FORMAT_VERSIONS:
        msg += f' (read as a number: quote it, format_version: "{value:.1f}")'  # YAML's 1.2 is a float
    elif source is not None and err["type"] == "string_type" and isinstance(value, (int, float)):
        written = _written(source, err["loc"]) or repr(value)
        msg = f"YAML read {written} as a number; quote it"
    return " ".join(f"{head}{clip(field)}={shown}: {msg}".split())


def _field(loc: list[Any], *, brackets: bool) -> str:
    """A field's place: ``a.0.b``, or with ``brackets`` ``a[0].b``; ``(entry)`` for the entry itself."""
    if not brackets:
        return ".".join(str(x) for x in loc) or "(entry)"
    return "".join(f"[{x}]" if isinstance(x, int) else f".{x}" for x in loc).removeprefix(".") or "(entry)"


def _written(source: str, loc: tuple[int | str, ...]) -> str | None:
    """The text of the YAML scalar at ``loc`` in ``source`` as written (``10:30``); None if not found."""
    try:
        node = yaml.compose(source, Loader=_StrictSafeLoader)
    except yaml.YAMLError:
        return None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == str(key)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            return None
    return clip(str(node.value)) if isinstance(node, yaml.ScalarNode) else None


def load_yaml_model(
    path: Path, model: type[M], what: str, defaults: dict[str, Any] | None = None, kinds: Mapping[str, str] = {}
) -> M:
    """Read a YAML file into ``model``; one-line :class:`InputError` naming ``what``, the file, entity, field and
    value (:func:`describe_error`).

    ``defaults`` fill keys the file leaves out; ``kinds`` names the entities of its top-level lists
    (``{"services": "Service"}``). Duplicate keys are refused.
    """
    where = f"{what} '{path}'"
    try:
        text = path.read_text(encoding="utf-8")
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        raise InputError(f"{where}: {yaml_problem(exc)}") from None
    except OSError as exc:  # as read_bytes words it: the reason, not the errno and the path again
        raise InputError(f"{where}: cannot read file ({exc.strerror or type(exc).__name__})") from None
    except (UnicodeDecodeError, RecursionError) as exc:
        raise InputError(f"{where}: cannot read: {' '.join(str(exc).split())}") from exc
    if data is None:
        raise InputError(f"{where}: the file is empty (no settings)")
    if not isinstance(data, dict):
        raise InputError(f"{where}: top level must be a mapping of settings, got {type(data).__name__}")
    if defaults:
        data = {**defaults, **data}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InputError(f"{where}: {describe_error(exc, data, kinds, source=text)}") from None
