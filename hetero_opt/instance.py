"""The placement instance: cluster topology, services, deployment groups, scaling requests.

Every model is a frozen pydantic v2 model with ``extra="forbid"``. Field-level rules live on the
fields; cross-references (unknown GPU type, node in two S1s, group of an unknown service, ...) are
checked once, in :meth:`Instance._check_references`, as plain loops, and every error names the
entity, the field and the value. Rules over all nodes (20k at production size) are checked as set
operations first; only when one fails does the plain loop run, to name the first offending node.
Those checks read node and pod fields from the models' ``__dict__`` (where pydantic keeps them): a
dict look-up costs about half an attribute read of a model, whose ``__getattr__`` hook puts every
read on CPython's slow path. Nodes given as columns (format 1.2) are held as a :class:`NodeTable`, a
sequence of :class:`Node` that builds a node's model only when it is read; its checks and the views of
the instance read the columns (decision 52). A group's pods given as columns (format 1.3) are held as a
:class:`PodTable` in the same way (decision 57).
"""

from __future__ import annotations

import re
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from itertools import chain, repeat
from operator import attrgetter, itemgetter, mul, ne
from typing import Annotated, Any, ClassVar, Literal, Self, TypeVar, cast, get_args, overload

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from hetero_opt.errors import InputError

FORMAT_VERSION = "1.4"
#: The version written where nodes and pods are columns but no node column is run-length encoded: readable by
#: releases before 1.4.
COLUMNS_FORMAT_VERSION = "1.3"
#: The version written where nodes and pods are rows (nothing of 1.2 or 1.3 used): readable by releases before 1.2.
ROWS_FORMAT_VERSION = "1.1"
#: Versions read; 1.0 files are 1.1 files without single-role services and all-or-nothing requests, 1.1
#: files are 1.2 files without columnar nodes, 1.2 files are 1.3 files without columnar pods, 1.3 files are
#: 1.4 files without run-length node columns.
FORMAT_VERSIONS = ("1.0", "1.1", "1.2", "1.3", "1.4")


def _since(version: str, first: str) -> bool:
    """Whether format ``version`` (one of :data:`FORMAT_VERSIONS`) is ``first`` or later."""
    return FORMAT_VERSIONS.index(version) >= FORMAT_VERSIONS.index(first)

Id = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:/@+-]+$")]
#: Topology ids (cluster, S2, S1, S0) hold no '@': a new group's id ``<service>@<domain>`` then names one pair.
TopoId = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:/+-]+$")]
#: Group ids may carry the ``#k`` suffix and the length of ``<service>@<domain>#k`` that new groups get.
GroupId = Annotated[str, Field(min_length=1, max_length=420, pattern=r"^[A-Za-z0-9_.:/@+#-]+$")]
#: Upper bound of every unit count (targets, min/max units, new groups): far above any cluster
#: (160k GPUs), far below what overflows a solver's 64-bit arithmetic (units x GPUs x weights).
MAX_UNITS = 1_000_000
Tier = Literal["low", "medium", "high"]
Affinity = Literal["s1", "s2", "cluster"]
RoleName = Literal["prefill", "decode", "prefill-attn", "prefill-ffn", "serve"]
PD_ROLES: tuple[RoleName, ...] = ("prefill", "decode")
#: Aggregated serving (no P/D split, format 1.1): one role, a unit is one pod.
SINGLE_ROLES: tuple[RoleName, ...] = ("serve",)
MOE_ROLES: tuple[RoleName, ...] = ("prefill-attn", "prefill-ffn", "decode")
TIERS: tuple[Tier, ...] = ("low", "medium", "high")


class Frozen(BaseModel):
    """Base of every data object: immutable, no unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    def replace(self, **changes: Any) -> Self:
        """Return a copy with ``changes`` applied and validated again."""
        return self.model_validate({**self.model_dump(), **changes})


class GpuType(Frozen):
    """A GPU model that nodes carry."""

    id: Id = Field(description="GPU type name, e.g. 'H20', 'L20', 'H800'.")
    memory_gb: float | None = Field(default=None, gt=0, description="Memory per GPU in GB.")


class Node(Frozen):
    """One machine and its place in the network tree cluster > S2 > S1 > S0 > node.

    ``gpus_free <= gpus_total`` is checked by the :class:`Instance` holding the node, in one pass
    over all nodes (a Python validator per node cost a sixth of loading a production instance).
    """

    id: Id = Field(description="Unique node name.")
    gpu_type: Id = Field(description="GPU type of every GPU on this node.")
    gpus_total: int = Field(ge=1, le=64, description="GPUs installed.")
    gpus_free: int = Field(ge=0, le=64, description="GPUs free now (not used by any pod).")
    cluster: TopoId = Field(description="Cluster (physical) the node belongs to.")
    s2: TopoId = Field(description="S2 (bigpod) switch id; unique across clusters and levels.")
    s1: TopoId = Field(description="S1 (minipod) switch id; unique across S2s and levels.")
    s0: TopoId | None = Field(default=None, description="S0 (rack) switch id, informational.")


#: The fields of a :class:`Node`, in order: the columns of a columnar ``nodes`` table (format 1.2).
NODE_FIELDS: tuple[str, ...] = ("id", "gpu_type", "gpus_total", "gpus_free", "cluster", "s2", "s1", "s0")
#: Columns a columnar ``nodes`` table must hold (``s0`` may be left out, or hold nulls).
REQUIRED_COLUMNS: tuple[str, ...] = NODE_FIELDS[:-1]
_SET_FIELDS = frozenset(REQUIRED_COLUMNS)
_ALL_FIELDS = frozenset(NODE_FIELDS)
_new_node = Node.__new__
_set = object.__setattr__
#: The model of a row of a columnar table (:class:`NodeTable`, :class:`PodTable`).
ModelT = TypeVar("ModelT", bound=BaseModel)
#: Held while a table builds models (a model is built once even when threads read the table at once).
_BUILDING = threading.Lock()


def _node_of(fields: dict[str, Any]) -> Node:
    """A :class:`Node` of already validated ``fields`` (all eight), built without validating them again."""
    node = _new_node(Node)
    _set(node, "__dict__", fields)
    _set(node, "__pydantic_fields_set__", set(_SET_FIELDS if fields["s0"] is None else _ALL_FIELDS))
    _set(node, "__pydantic_extra__", None)
    _set(node, "__pydantic_private__", None)
    return node


class _ColumnTable(Sequence[ModelT]):
    """What :class:`NodeTable` and :class:`PodTable` share: validated columns held as tuples, one per field of
    the model (:attr:`FIELDS`), and a model per row built only when someone reads it, kept (every read returns
    the same object). A table equals another of its kind with equal columns and a list (or tuple) of equal
    models; it is unhashable, as the list of the row form is, and immutable (copies are itself)."""

    __slots__ = ("_columns", "_complete", "_models", "_valid")
    FIELDS: ClassVar[tuple[str, ...]] = ()  # the model's fields, in column order
    MODEL: ClassVar[type[BaseModel]] = BaseModel  # the model of a row

    def __init__(self, columns: Mapping[str, Sequence[Any]]) -> None:
        """Hold ``columns``, one sequence per field of :attr:`FIELDS`, trusted as valid."""
        self._hold(tuple(map(tuple, map(columns.__getitem__, self.FIELDS))))  # in C: a pod table per group

    def _hold(self, columns: tuple[tuple[Any, ...], ...]) -> None:
        self._columns = columns
        self._models: list[ModelT | None] | None = None
        self._complete = False  # every model built
        self._valid = False  # the columns passed the checks of the model holding them (else it checks them)

    def _model_of(self, row: Sequence[Any]) -> ModelT:
        """The model of one row of already validated values."""
        raise NotImplementedError

    @classmethod
    def from_models(cls, models: Iterable[ModelT]) -> Self:
        """The table of ``models`` (e.g. the row form's), the same models kept."""
        kept = list(models)
        fields = [m.__dict__ for m in kept]
        table = cls({f: [d[f] for d in fields] for f in cls.FIELDS})
        table._models, table._complete = list(kept), True
        return table

    def column(self, name: str) -> tuple[Any, ...]:
        """The values of field ``name`` (one of :attr:`FIELDS`), in row order."""
        return self._columns[self.FIELDS.index(name)]

    def to_columns(self) -> dict[str, list[Any]]:
        """The columns as lists: what ``model_dump`` writes."""
        return {f: list(c) for f, c in zip(self.FIELDS, self._columns, strict=True)}

    def to_rows(self) -> list[dict[str, Any]]:
        """The rows as the row form's mappings (what the model's ``model_dump()`` gives for each), no model
        built."""
        return [dict(zip(self.FIELDS, row, strict=True)) for row in zip(*self._columns, strict=True)]

    def __len__(self) -> int:
        return len(self._columns[0])

    @overload
    def __getitem__(self, index: int) -> ModelT: ...

    @overload
    def __getitem__(self, index: slice) -> Self: ...

    def __getitem__(self, index: int | slice) -> ModelT | Self:
        if isinstance(index, slice):
            part = type(self)({f: c[index] for f, c in zip(self.FIELDS, self._columns, strict=True)})
            part._valid, part._complete = self._valid, self._complete
            if self._models is not None:
                part._models = self._models[index]
            return part
        models = self._models
        model = None if models is None else models[index]
        if model is None:
            row = [c[index] for c in self._columns]  # IndexError as a list's
            with _BUILDING:  # one model per row, whichever thread reads it first
                models = self._models
                if models is None:
                    models = self._models = [None] * len(self)
                model = models[index]
                if model is None:
                    model = models[index] = self._model_of(row)
        return model

    def _all(self) -> list[ModelT]:
        """Every row's model (built once, under the lock, for the rows not read yet)."""
        if not self._complete:
            with _BUILDING:
                old = self._models or [None] * len(self)
                rows = zip(*self._columns, strict=True)
                model_of = self._model_of
                self._models = [m if m is not None else model_of(row) for m, row in zip(old, rows, strict=True)]
                self._complete = True
        return self._models  # type: ignore[return-value]  # complete: no None left

    def __iter__(self) -> Iterator[ModelT]:
        return iter(self._all())

    def _row_key(self, value: object) -> tuple[Any, ...] | None:
        """``value``'s fields in column order, if it is a model of a row (a model equal to a row has them)."""
        if type(value) is not self.MODEL:  # as the model's own ==, which compares the class too
            return None
        fields = value.__dict__
        return tuple(fields.get(f) for f in self.FIELDS)

    def __contains__(self, value: object) -> bool:
        key = self._row_key(value)  # compared on the columns: no model built
        return key is not None and key in zip(*self._columns, strict=True)

    def index(self, value: Any, start: int = 0, stop: int | None = None) -> int:
        """The first row from ``start`` (before ``stop``) equal to ``value``, as a list's; no model built."""
        key = self._row_key(value)
        if key is not None:
            begin, end, _ = slice(start, stop).indices(len(self))
            rows = zip(*(c[begin:end] for c in self._columns), strict=True)
            for offset, row in enumerate(rows):
                if row == key:
                    return begin + offset
        raise ValueError(f"{value!r} is not in {type(self).__name__}")

    def count(self, value: Any) -> int:
        """Rows equal to ``value``, as a list's; no model built."""
        key = self._row_key(value)
        return 0 if key is None else sum(row == key for row in zip(*self._columns, strict=True))

    def __reversed__(self) -> Iterator[ModelT]:
        return reversed(self._all())

    def __eq__(self, other: object) -> bool:
        if type(other) is type(self):
            return self._columns == other._columns  # the same class
        if isinstance(other, (list, tuple)):
            model = self.MODEL
            if len(other) != len(self) or not all(isinstance(m, model) for m in other):
                return False
            fields = [m.__dict__ for m in other]
            return all(tuple(map(itemgetter(f), fields)) == c for f, c in zip(self.FIELDS, self._columns, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # unhashable, as the row form's list

    def __copy__(self) -> Self:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Self:
        return self  # immutable


class NodeTable(_ColumnTable[Node]):
    """The nodes of an instance given as columns (format 1.2): a read-only sequence of :class:`Node`.

    It keeps the validated columns, one tuple per node field, and builds a node's :class:`Node` model only
    when someone reads it (an index builds that one, iteration builds them all); each model is kept, so
    every read returns the same object. Solvers read the columns (:meth:`column`) and build no model. A
    table equals another with equal columns and a list (or tuple) of equal nodes; it pickles as its
    columns; it is unhashable, as the list of the row form is.
    """

    __slots__ = ("_places", "_row_of")
    FIELDS = NODE_FIELDS
    MODEL = Node

    def __init__(self, columns: Mapping[str, Sequence[Any]]) -> None:
        """Hold ``columns`` (one sequence per node field, ``s0`` optional), trusted as valid: an instance
        validates them (:meth:`Instance.model_validate`, :func:`hetero_opt.io.load_instance`); use
        :meth:`from_nodes` for nodes that are already models."""
        cols = [tuple(columns[f]) for f in REQUIRED_COLUMNS]
        s0 = columns.get("s0")
        s0_col = None if s0 is None else tuple(s0)
        if s0_col is not None and (not s0_col or s0_col[0] is None) and s0_col.count(None) == len(s0_col):
            s0_col = None  # no S0 anywhere: as if the column were left out
        self._hold((*cols, s0_col or (None,) * len(cols[0])))
        self._row_of: dict[str, int] | None = None
        self._places: frozenset[Place] | None = None

    @classmethod
    def from_nodes(cls, nodes: Iterable[Node]) -> NodeTable:
        """The table of ``nodes`` (models, e.g. a row-form instance's), the same models kept."""
        return cls.from_models(nodes)

    def column(self, name: str) -> tuple[Any, ...]:
        """The values of field ``name`` (one of :data:`NODE_FIELDS`), in node order (``s0``: None where unset)."""
        return self._columns[NODE_FIELDS.index(name)]

    def to_columns(self) -> dict[str, list[Any]]:
        """The columns as lists, ``s0`` left out when no node has one: what ``model_dump`` writes, and the
        ``DataFrame.to_dict("list")`` shape."""
        out = {f: list(c) for f, c in zip(NODE_FIELDS, self._columns, strict=True)}
        if self.has_s0:
            return out
        del out["s0"]
        return out

    @property
    def has_s0(self) -> bool:
        """True when some node has an S0."""
        s0 = self._columns[7]
        return bool(s0) and (s0[0] is not None or s0.count(None) != len(s0))

    def row_of(self) -> dict[str, int]:
        """Each node id's position (the last one, should an id repeat); kept, read-only."""
        row_of = self._row_of
        if row_of is None:
            ids = self._columns[0]
            row_of = self._row_of = dict(zip(ids, range(len(ids)), strict=True))
        return row_of

    def places(self) -> frozenset[Place]:
        """The distinct (cluster, S2, S1, S0, GPU type) of the nodes; kept."""
        places = self._places
        if places is None:
            places = self._places = frozenset(zip(*map(self.column, _PLACE_FIELDS), strict=True))
        return places

    def by_id(self) -> NodesById:
        """The nodes by id, a model built only for the nodes looked up."""
        return NodesById(self)

    def _model_of(self, row: Sequence[Any]) -> Node:
        return _node_of(dict(zip(NODE_FIELDS, row, strict=True)))

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, Node):
            return False
        row = self.row_of().get(value.__dict__["id"])
        return row is not None and self[row] == value

    def __reduce__(self) -> tuple[Callable[[dict[str, list[Any]], bool], NodeTable], tuple[dict[str, list[Any]], bool]]:
        return _unpickle_table, (self.to_columns(), self._valid)  # columns only: no model, no look-up

    def __repr__(self) -> str:
        return f"NodeTable({len(self)} nodes)"


def _unpickle_table(columns: dict[str, list[Any]], valid: bool) -> NodeTable:
    table = NodeTable(columns)
    table._valid = valid
    return table


class NodesById(Mapping[str, Node]):
    """A :class:`NodeTable`'s nodes by id: a read-only mapping that builds a node's model when it is read."""

    __slots__ = ("_row_of", "_table")

    def __init__(self, table: NodeTable) -> None:
        self._table, self._row_of = table, table.row_of()

    def __getitem__(self, node_id: str) -> Node:
        return self._table[self._row_of[node_id]]

    def get(self, node_id: str, default: Any = None) -> Any:
        row = self._row_of.get(node_id)
        return default if row is None else self._table[row]

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._row_of

    def __iter__(self) -> Iterator[str]:
        return iter(self._row_of)

    def __len__(self) -> int:
        return len(self._row_of)


_TOPO_LINES = re.compile(r"[A-Za-z0-9_.:/+-]{1,200}(?:\n[A-Za-z0-9_.:/+-]{1,200})*")
_ID_LINES = re.compile(r"[A-Za-z0-9_.:/@+-]{1,200}(?:\n[A-Za-z0-9_.:/@+-]{1,200})*")
#: The characters of an id (``Id``'s pattern): what ``bytes.translate`` deletes from the ids' text.
_ID_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:/@+-"
_NEWLINE = ord("\n")  # the byte between the ids joined
_STR, _INT = frozenset({str}), frozenset({int})
_ONE_TO_64, _ZERO_TO_64 = bytes(range(1, 65)), bytes(range(65))


def _lines_match(pattern: re.Pattern[str], values: Collection[str]) -> bool:
    """Every one of ``values`` (strings) matches ``pattern``'s line: one regex over them joined by newlines
    (a value holding a newline is caught by the line count)."""
    text = "\n".join(values)
    return text.count("\n") == len(values) - 1 and pattern.fullmatch(text) is not None


def _ids_ok(ids: Sequence[Any]) -> bool:
    """Every id is a str of 1-200 characters of ``Id``'s pattern: passes in C over the ids joined by newlines
    (``join`` refuses a non-str; deleting the allowed characters must leave just the newlines between them;
    the gaps between newlines are the ids' lengths, read by numpy, 3x faster than ``len`` per id)."""
    try:
        text = "\n".join(ids)
    except TypeError:
        return False
    if not text.isascii():
        return False
    raw = text.encode()
    if len(raw.translate(None, _ID_CHARS)) != len(ids) - 1:
        return False
    newlines = np.flatnonzero(np.frombuffer(raw, dtype=np.uint8) == _NEWLINE)
    lengths = np.diff(np.concatenate(([-1], newlines, [len(raw)]))) - 1
    return bool(lengths.min() >= 1 and lengths.max() <= 200)


def _gpu_counts(totals: Sequence[Any], frees: Sequence[Any]) -> tuple[bytes, bytes] | None:
    """``gpus_total`` and ``gpus_free`` as bytes when every value is an int (a bool counts as 0 or 1, as
    pydantic's lax int reads it), 1 <= total <= 64, 0 <= free <= total; else None. Passes in C: ``bytes``
    refuses a non-int or a value beyond a byte, ``translate`` deletes the values in range (nothing may be
    left), and free <= total on every node is one subtraction of two big ints whose 16-bit lanes hold
    ``total + 256`` and ``free``: no lane borrows, and every lane keeps its 256 exactly when free <= total."""
    try:
        total, free = bytes(totals), bytes(frees)
    except (TypeError, ValueError):
        return None
    if total.translate(None, _ONE_TO_64) or free.translate(None, _ZERO_TO_64):
        return None
    n = len(total)
    lanes_total, lanes_free = bytearray(2 * n), bytearray(2 * n)
    lanes_total[0::2], lanes_total[1::2], lanes_free[0::2] = total, b"\x01" * n, free
    diff = int.from_bytes(lanes_total, "little") - int.from_bytes(lanes_free, "little")
    if diff.to_bytes(2 * n, "little")[1::2] != b"\x01" * n:
        return None
    return total, free


def _columns_ok(cols: list[Sequence[Any]], places: frozenset[Place]) -> bool:
    """The str field rules of :class:`Node` over columns, as a few passes in C: exact types, patterns (the
    tree's on the distinct ``places``); False sends the columns to the row-by-row reference check."""
    clusters, s2s, s1s, s0s, gpu_types = map(set, zip(*places, strict=True))
    topo = clusters.union(s2s, s1s)
    if None in topo:  # only s0 may be null: the row path names the node and the field
        return False
    topo.update(s0s)
    topo.discard(None)
    return bool(
        _ids_ok(cols[0])
        and set(map(type, topo)).union(map(type, gpu_types)) == _STR
        and _lines_match(_ID_LINES, gpu_types)
        and _lines_match(_TOPO_LINES, topo)
    )


def _table_of(value: Any) -> NodeTable:
    """Validate columnar nodes (format 1.2) into a :class:`NodeTable`; one-line errors as the row form's. A
    table an instance checked passes as it is; one built by hand is checked as its columns."""
    if isinstance(value, NodeTable):  # a checked table, unless an empty slice of one (at least 1 node)
        return value if value._valid and len(value) else _table_of(value.to_columns())
    if not isinstance(value, dict):
        raise ValueError(f"nodes: must be a list of nodes or a mapping of columns, got {type(value).__name__}")
    for name in value:
        if name not in _ALL_FIELDS:
            raise ValueError(
                f"nodes: unknown column '{clip(str(name))}' (columns: {', '.join(NODE_FIELDS)}; s0 optional)"
            )
    for name in REQUIRED_COLUMNS:
        if name not in value:
            raise ValueError(f"nodes: column '{name}' is missing (columns: {', '.join(NODE_FIELDS)}; s0 optional)")
    runs = [f for f in NODE_FIELDS if isinstance(value.get(f), dict)]  # in field order, as its errors
    given = value
    if runs:  # format 1.4: the columns given as runs, expanded (a column's checks then see one value per node)
        value = {**value, **_expanded_runs(value, runs)}
    for name, col in value.items():
        if not isinstance(col, list) and name not in runs and not (col is None and name == "s0"):
            raise ValueError(
                f"nodes: column '{name}' must be a list (one value per node) or, format 1.4, runs (a mapping of "
                f"values and lengths), got {type(col).__name__}"
            )
    lengths = {name: len(col) for name, col in value.items() if col is not None}
    if len(set(lengths.values())) > 1:
        (first, n), (other, m) = next(
            ((REQUIRED_COLUMNS[0], lengths["id"]), (f, k)) for f, k in lengths.items() if k != lengths["id"]
        )
        raise ValueError(
            f"nodes: column '{other}' has {m} value{'s' * (m != 1)} but column '{first}' has {n} (one per node)"
        )
    if not lengths["id"]:
        raise ValueError("nodes: the columns hold no node (at least 1 is required)")
    cols = [value[f] for f in REQUIRED_COLUMNS]
    s0 = value.get("s0")
    try:  # the distinct places, which validation reads next (kept with the table)
        if {"cluster", "s2", "s1", "gpu_type"}.issubset(runs) and (s0 is None or "s0" in runs):
            places = _places_of_runs([given.get(f) for f in _PLACE_FIELDS], len(cols[0]))
        else:
            s0_col = repeat(None, len(cols[0])) if s0 is None else s0
            places = frozenset(zip(cols[4], cols[5], cols[6], s0_col, cols[1], strict=True))
    except TypeError:  # an unhashable value (a list or a mapping): the reference check names it
        places = None
    counts = None if places is None else _gpu_counts(cols[2], cols[3])
    if counts is not None and places is not None and _columns_ok(cols, places):
        table = NodeTable({**value, "gpus_total": counts[0], "gpus_free": counts[1]})  # exact ints
        table._places, table._valid = places, True
    else:
        table = _table_checked_by_rows(value)
    return table


def _places_of_runs(columns: list[Any], n: int) -> frozenset[Place]:
    """The distinct places of nodes whose place columns (:data:`_PLACE_FIELDS`; ``s0`` None when left out) are
    all given as runs: one place per stretch of nodes over which no column changes, found from the runs' ends
    (a few thousand stretches at production size, not 20k nodes)."""
    runs: list[dict[str, list[Any]]] = [{"values": [None], "lengths": [n]} if col is None else col for col in columns]
    ends = [np.cumsum(np.asarray(r["lengths"], dtype=np.int64)) for r in runs]
    cuts = np.unique(np.concatenate(ends))  # where a stretch ends: where some column's run ends
    # each stretch's value in a column: that of the column's first run ending at or after the stretch's end
    picks = [map(r["values"].__getitem__, np.searchsorted(e, cuts).tolist()) for r, e in zip(runs, ends, strict=True)]
    return frozenset(zip(*picks, strict=True))


#: The most nodes columns given as runs may stand for: 12x the 4x production size (81,920 nodes), 8M GPUs;
#: far below what exhausts memory (runs of a few numbers can stand for any count: 10M nodes took 1.3 GB).
MAX_RUN_NODES = 1_000_000


def _expanded_runs(value: dict[str, Any], runs: list[str]) -> dict[str, tuple[Any, ...]]:
    """The node columns named ``runs``, each given as runs (format 1.4: ``{"values": [...], "lengths": [...]}``,
    ``values[i]`` repeated ``lengths[i]`` times), as tuples of one value per node. Each error is one line naming
    the column: a wrong shape, a length that is no integer in 1..:data:`MAX_RUN_NODES`, runs standing for more
    nodes than that, or for another count than the other columns hold; every column is checked before any is
    expanded (a few bytes of runs may stand for millions of nodes). Tuples, as the table holds them: no list
    copied on the way (at 2x production, six columns of 41k values)."""
    # the length the runs must give: the first plain column's (in field order: the ids' where they are plain)
    first = next(((f, len(value[f])) for f in NODE_FIELDS if isinstance(value.get(f), list)), None)
    for name in runs:
        col = value[name]
        if set(col) != {"values", "lengths"}:
            keys = ", ".join(sorted(clip(repr(k), 20) for k in col))
            raise ValueError(
                f"nodes: column '{name}' as runs must map exactly 'values' and 'lengths' to lists, got keys [{keys}]"
            )
        values, lengths = col["values"], col["lengths"]
        for key, part in (("values", values), ("lengths", lengths)):
            if not isinstance(part, list):
                raise ValueError(f"nodes: column '{name}': runs '{key}' must be a list, got {type(part).__name__}")
        if len(values) != len(lengths):
            raise ValueError(
                f"nodes: column '{name}': runs have {len(values)} value{'s' * (len(values) != 1)} but "
                f"{len(lengths)} length{'s' * (len(lengths) != 1)} (one of each per run)"
            )
        ints = set(map(type, lengths)) <= _INT  # first: min and max compare the values
        if not (ints and min(lengths, default=1) >= 1 and max(lengths, default=1) <= MAX_RUN_NODES):
            i, bad = next((i, n) for i, n in enumerate(lengths) if type(n) is not int or not 1 <= n <= MAX_RUN_NODES)
            raise ValueError(
                f"nodes: column '{name}': runs lengths[{i}]={clip(repr(bad))}: each length must be an integer in "
                f"1..{MAX_RUN_NODES}"
            )
        total = sum(lengths)  # at most len(lengths) x MAX_RUN_NODES: a number that prints
        if total > MAX_RUN_NODES:
            raise ValueError(
                f"nodes: column '{name}': its runs stand for {total} nodes: at most {MAX_RUN_NODES} are read"
            )
        if first is None:
            first = (name, total)
        if total != first[1]:
            raise ValueError(
                f"nodes: column '{name}' has {total} value{'s' * (total != 1)} in its runs but column '{first[0]}' "
                f"has {first[1]} (one per node)"
            )
    return {
        name: tuple(chain.from_iterable(map(repeat, value[name]["values"], value[name]["lengths"]))) for name in runs
    }


def _table_checked_by_rows(value: dict[str, list[Any]]) -> NodeTable:
    """The row form's checks on columns the fast check refused: raise the row form's first error, with its
    place in the columns (``nodes.gpus_free[17]``), or return the table of what the row form accepts."""
    names = [f for f in NODE_FIELDS if value.get(f) is not None]
    rows = [dict(zip(names, row, strict=True)) for row in zip(*(value[f] for f in names), strict=True)]
    try:
        nodes = _NODE_LIST.validate_python(rows)
    except ValidationError as exc:
        err = exc.errors()[0]
        i, field = err["loc"][0], ".".join(str(x) for x in err["loc"][1:])
        assert isinstance(i, int)
        ident = rows[i].get("id")
        entity = f"Node '{clip(str(ident))}'" if ident is not None else f"nodes[{i}]"
        shown = type(err["input"]).__name__ if isinstance(err["input"], (dict, list)) else clip(repr(err["input"]))
        raise ValueError(" ".join(f"{entity}: nodes.{field}[{i}]={shown}: {err['msg']}".split())) from None
    _check_free_within_total(nodes)
    table = NodeTable.from_nodes(nodes)
    table._valid = True
    return table


def clip(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters: an error line quotes values, not megabytes."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _nodes_of(value: Any, handler: ValidatorFunctionWrapHandler) -> Sequence[Node]:
    """Python input of ``Instance.nodes``: columns (a mapping or a :class:`NodeTable`) or rows (the rest)."""
    if isinstance(value, (dict, NodeTable)):
        return _table_of(value)
    nodes: Sequence[Node] = handler(value)
    return nodes


def _dump_table(value: Any, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
    """``Instance.nodes`` and ``DeploymentGroup.pods``: a table dumps as its columns, a list as the list, each
    form as it came; a table that an ``include`` or ``exclude`` reaches into dumps as the rows they select
    (columns cannot hold a selection)."""
    if not isinstance(value, _ColumnTable):
        return handler(value)
    return value.to_columns() if info.include is None and info.exclude is None else handler(list(value))


class _NodesSchema:
    """The schema of ``Instance.nodes``: a list of nodes (rows) or a mapping of columns (format 1.2)."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        rows = core_schema.list_schema(handler.generate_schema(Node), min_length=1)
        columns = core_schema.no_info_after_validator_function(
            _table_of,
            core_schema.json_or_python_schema(
                json_schema=core_schema.dict_schema(core_schema.str_schema(), core_schema.any_schema()),
                python_schema=core_schema.any_schema(),
            ),
        )
        return core_schema.json_or_python_schema(
            # JSON (model_validate_json): an array is rows, an object columns; each error under its form's name.
            json_schema=core_schema.union_schema([(rows, "rows"), (columns, "columns")], mode="left_to_right"),
            # Python: a mapping or a table is columns, anything else rows (a table is a sequence too, which
            # the rows' list would take without checking its nodes).
            python_schema=core_schema.no_info_wrap_validator_function(_nodes_of, rows),
            serialization=core_schema.wrap_serializer_function_ser_schema(_dump_table, schema=rows, info_arg=True),
        )

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        rows = handler(core_schema.list_schema(Node.__pydantic_core_schema__, min_length=1))
        fields = Node.model_json_schema()["properties"]
        columns = {
            "type": "object",
            "title": "NodeColumns",
            "description": "Format 1.2: the nodes as columns, one array per Node field, all of one length "
            "(s0 may be left out or hold nulls); format 1.4: a column may be runs of equal values instead, "
            "values[i] repeated lengths[i] times.",
            "properties": {f: _column_schema(fields[f]) for f in NODE_FIELDS},
            "required": list(REQUIRED_COLUMNS),
            "additionalProperties": False,
        }
        return {"anyOf": [rows, columns]}


def _column_schema(item: JsonSchemaValue) -> JsonSchemaValue:
    """The JSON schema of a node column: an array of ``item``, or (format 1.4) runs of equal values."""
    runs = {
        "type": "object",
        "title": "Runs",
        "properties": {
            "values": {"type": "array", "items": item},
            "lengths": {"type": "array", "items": {"type": "integer", "minimum": 1}},
        },
        "required": ["values", "lengths"],
        "additionalProperties": False,
    }
    return {"anyOf": [{"type": "array", "items": item}, runs]}


#: Validates the rows of columnar nodes that the fast column check refused (the reference path).
_NODE_LIST: TypeAdapter[list[Node]] = TypeAdapter(list[Node])


class RdmaSubgroup(Frozen):
    """An explicitly declared RDMA subgroup: S1 and/or S2 switches with a priority tier."""

    id: Id = Field(description="Subgroup name.")
    tier: Tier = Field(description="Priority tier: low, medium or high (premium).")
    s2s: list[Id] = Field(default_factory=list, description="S2 switches (all their S1s).")
    s1s: list[Id] = Field(default_factory=list, description="Individual S1 switches.")


class Role(Frozen):
    """One role of a service: pod size and acceptable GPU types, first preferred."""

    name: RoleName = Field(description="prefill, decode, prefill-attn, prefill-ffn, or serve (aggregated, 1.1).")
    gpus_per_pod: int = Field(ge=1, le=64, description="GPUs one pod of this role takes.")
    gpu_types: list[Id] = Field(
        min_length=1, description="Acceptable GPU types in order of preference (first preferred)."
    )


class Ratio(Frozen):
    """Pods per unit: ``prefill`` replicas and ``decode`` pods (P/D), or attn:ffn per replica."""

    prefill: int = Field(ge=1, le=64, description="Prefill replicas per unit (or attn pods).")
    decode: int = Field(ge=1, le=64, description="Decode pods per unit (or ffn pods).")


class Service(Frozen):
    """A P/D-disaggregated (or disaggregated MoE) LLM service."""

    id: Id = Field(description="Unique service name.")
    priority: int = Field(ge=0, le=1000, description="Higher is served first.")
    affinity: Affinity = Field(description="Domain of each deployment group: s1, s2 or cluster.")
    roles: list[Role] = Field(min_length=1, max_length=3, description="The service's roles.")
    pd_ratio: Ratio = Field(
        default_factory=lambda: Ratio(prefill=1, decode=1),
        description="One unit = pd_ratio.prefill replicas + decode pods; required unless the service has the "
        "single role 'serve' (a unit is then one pod and pd_ratio is not read).",
    )
    attn_ffn_ratio: Ratio | None = Field(
        default=None,
        description="MoE only: one prefill replica = prefill attn pods + decode(=ffn) pods.",
    )
    min_units: int = Field(default=0, ge=0, le=MAX_UNITS, description="Never scale below this many units.")
    max_units: int = Field(default=10_000, ge=0, le=MAX_UNITS, description="Never scale above this many units.")
    max_new_groups: int = Field(
        default=4, ge=0, le=MAX_UNITS, description="At most this many new deployment groups per cycle."
    )

    @model_validator(mode="after")
    def _roles_consistent(self) -> Service:
        names = [r.name for r in self.roles]
        if len(set(names)) != len(names):
            raise ValueError(f"Service '{self.id}': roles={names} has a duplicate role")
        moe = set(names) == set(MOE_ROLES)
        if self.is_single_role:
            pass  # a unit is one pod; pd_ratio, if given, is not read
        elif "pd_ratio" not in self.model_fields_set:
            raise ValueError(f"Service '{self.id}': pd_ratio is missing (required for roles={names})")
        elif not moe and set(names) != set(PD_ROLES):
            allowed = f"{list(PD_ROLES)}, {list(MOE_ROLES)} or {list(SINGLE_ROLES)}"
            raise ValueError(f"Service '{self.id}': roles={names} must be {allowed}")
        if moe and self.attn_ffn_ratio is None:
            raise ValueError(f"Service '{self.id}': attn_ffn_ratio=None but the service is MoE")
        if not moe and self.attn_ffn_ratio is not None:
            raise ValueError(f"Service '{self.id}': attn_ffn_ratio is set but the service is not MoE")
        if moe and self.affinity == "cluster":
            raise ValueError(f"Service '{self.id}': affinity='cluster' not allowed for MoE (one S2 per group)")
        if self.min_units > self.max_units:
            raise ValueError(f"Service '{self.id}': min_units={self.min_units} exceeds max_units={self.max_units}")
        return self

    @property
    def is_single_role(self) -> bool:
        """True for aggregated serving: the one role ``serve`` (format 1.1)."""
        return len(self.roles) == 1 and self.roles[0].name == SINGLE_ROLES[0]

    @property
    def is_moe(self) -> bool:
        """True for a disaggregated MoE service (attn/ffn prefill)."""
        return self.attn_ffn_ratio is not None

    def role(self, name: str) -> Role:
        """The role called ``name``."""
        for r in self.roles:
            if r.name == name:
                return r
        raise KeyError(f"Service '{self.id}' has no role '{name}'")

    @property
    def pods_per_unit(self) -> dict[str, int]:
        """Pods of each role in one unit."""
        if self.is_single_role:
            return {"serve": 1}
        p, d = self.pd_ratio.prefill, self.pd_ratio.decode
        if self.attn_ffn_ratio is None:
            return {"prefill": p, "decode": d}
        a, f = self.attn_ffn_ratio.prefill, self.attn_ffn_ratio.decode
        return {"prefill-attn": p * a, "prefill-ffn": p * f, "decode": d}

    @property
    def gpus_per_unit(self) -> int:
        """GPUs one unit takes."""
        return sum(self.role(r).gpus_per_pod * n for r, n in self.pods_per_unit.items())


class PodCount(Frozen):
    """Pods of one role on one node."""

    role: RoleName = Field(description="Role of these pods.")
    node: Id = Field(description="Node they run on.")
    count: int = Field(ge=1, le=64, description="Number of pods (a node has at most 64 GPUs).")


#: The fields of a :class:`PodCount`, in order: the columns of a group's columnar ``pods`` (format 1.3).
POD_FIELDS: tuple[str, ...] = ("role", "node", "count")
_POD_FIELD_SET = frozenset(POD_FIELDS)
_ROLE_NAMES = frozenset(get_args(RoleName))
_POD_COUNTS = frozenset(range(1, 65))  # a count's values (``True`` and ``1.0`` hash as 1: the type check follows)
_new_pod = PodCount.__new__


def _pod_of(role: str, node: str, count: int) -> PodCount:
    """A :class:`PodCount` of already validated fields, built without validating them again."""
    pod = _new_pod(PodCount)
    _set(pod, "__dict__", {"role": role, "node": node, "count": count})
    _set(pod, "__pydantic_fields_set__", set(_POD_FIELD_SET))
    _set(pod, "__pydantic_extra__", None)
    _set(pod, "__pydantic_private__", None)
    return pod


class PodTable(_ColumnTable[PodCount]):
    """A deployment group's pods given as columns (format 1.3): a read-only sequence of :class:`PodCount`.

    As a :class:`NodeTable`: it keeps the validated columns (role, node, count) as tuples and builds a pod's
    model only when someone reads it (kept: every read returns the same object); the instance's checks and the
    views read the columns (:func:`pod_rows`). It equals a table with equal columns and a list (or tuple) of
    equal pods, pickles and dumps as its columns, and is unhashable, as the list of the row form is.
    """

    __slots__ = ()
    FIELDS = POD_FIELDS
    MODEL = PodCount

    @classmethod
    def from_pods(cls, pods: Iterable[PodCount]) -> PodTable:
        """The table of ``pods`` (models, e.g. a row-form group's), the same models kept."""
        return cls.from_models(pods)

    def _model_of(self, row: Sequence[Any]) -> PodCount:
        return _pod_of(*row)

    def __reduce__(self) -> tuple[Callable[[dict[str, list[Any]], bool], PodTable], tuple[dict[str, list[Any]], bool]]:
        return _unpickle_pods, (self.to_columns(), self._valid)  # columns only, no model

    def __repr__(self) -> str:
        return f"PodTable({len(self)} pods)"


def _unpickle_pods(columns: dict[str, list[Any]], valid: bool) -> PodTable:
    table = PodTable(columns)
    table._valid = valid
    return table


def pod_rows(pods: Sequence[PodCount]) -> Iterator[tuple[str, str, int]]:
    """Each pod count's (role, node, count), in order: a :class:`PodTable`'s rows (no model built), or read
    from each pod of a list."""
    if isinstance(pods, PodTable):
        return zip(*pods._columns, strict=True)
    return map(_POD, map(_FIELDS, pods))


def _pod_table_of(value: Any) -> PodTable:
    """Validate a group's columnar pods (format 1.3) into a :class:`PodTable`. A shape error is one line; a
    value the fast check refuses goes to the row form's validation, whose errors keep the row form's place
    (``pods.3.count``; shown as ``pods.count[3]``). A table a group checked passes as it is."""
    if type(value) is not dict and isinstance(value, PodTable):  # a dict skips the ABC's check, a Python call
        return value if value._valid else _pod_table_of(value.to_columns())
    if not isinstance(value, dict):
        raise ValueError(f"pods: must be a list of pod counts or a mapping of columns, got {type(value).__name__}")
    roles: Any = value.get("role")
    nodes: Any = value.get("node")
    counts: Any = value.get("count")
    if not (
        len(value) == 3
        and type(roles) is list
        and type(nodes) is list
        and type(counts) is list
        and len(roles) == len(nodes) == len(counts)
    ):
        _check_pod_columns_shape(value)  # raises, unless the columns are list subclasses
    # The fast check, a few passes in C (a group holds ~10 pods): exact types, role names, the nodes' id
    # pattern, counts 1..64.
    try:
        ok = not roles or (
            _STR.issuperset(map(type, roles))
            and _ROLE_NAMES.issuperset(roles)
            and _lines_match(_ID_LINES, nodes)
            and _POD_COUNTS.issuperset(counts)
            and _INT.issuperset(map(type, counts))
        )
    except TypeError:  # a node id that is no str (join), an unhashable role or count
        ok = False
    if ok:
        table = PodTable(value)
        table._valid = True
        return table
    # The row form's validation of the same values: its first error is the message (a ValidationError keeps
    # its place under this group's pods), or its models are the table (pydantic's lax coercions included).
    rows = [dict(zip(POD_FIELDS, row, strict=True)) for row in zip(roles, nodes, counts, strict=True)]
    table = PodTable.from_pods(_POD_LIST.validate_python(rows))
    table._valid = True
    return table


def _check_pod_columns_shape(value: dict[Any, Any]) -> None:
    """Raise the one-line error of columnar pods of a wrong shape: an unknown or missing column, one that is no
    list, columns of different lengths."""
    for name in value:
        if name not in _POD_FIELD_SET:
            raise ValueError(f"pods: unknown column '{clip(str(name))}' (columns: {', '.join(POD_FIELDS)})")
    for name in POD_FIELDS:
        if name not in value:
            raise ValueError(f"pods: column '{name}' is missing (columns: {', '.join(POD_FIELDS)})")
    for name, col in value.items():
        if not isinstance(col, list):
            raise ValueError(f"pods: column '{name}' must be a list (one value per pod), got {type(col).__name__}")
    n = len(value["role"])
    for name in ("node", "count"):
        m = len(value[name])
        if m != n:
            raise ValueError(
                f"pods: column '{name}' has {m} value{'s' * (m != 1)} but column 'role' has {n} (one per pod)"
            )


def _pods_of(value: Any, handler: ValidatorFunctionWrapHandler) -> Sequence[PodCount]:
    """Python input of ``DeploymentGroup.pods``: columns (a mapping or a :class:`PodTable`) or rows (the rest)."""
    if isinstance(value, (dict, PodTable)):
        return _pod_table_of(value)
    pods: Sequence[PodCount] = handler(value)
    return pods


class _PodsSchema:
    """The schema of ``DeploymentGroup.pods``: a list of pod counts (rows) or a mapping of columns (1.3)."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        rows = core_schema.list_schema(handler.generate_schema(PodCount))
        columns = core_schema.no_info_after_validator_function(
            _pod_table_of,
            core_schema.json_or_python_schema(
                json_schema=core_schema.dict_schema(core_schema.str_schema(), core_schema.any_schema()),
                python_schema=core_schema.any_schema(),
            ),
        )
        return core_schema.json_or_python_schema(
            # JSON (model_validate_json): an array is rows, an object columns, as for the nodes.
            json_schema=core_schema.union_schema([(rows, "rows"), (columns, "columns")], mode="left_to_right"),
            python_schema=core_schema.no_info_wrap_validator_function(_pods_of, rows),
            serialization=core_schema.wrap_serializer_function_ser_schema(_dump_table, schema=rows, info_arg=True),
        )

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        rows = handler(core_schema.list_schema(PodCount.__pydantic_core_schema__))
        fields = PodCount.model_json_schema()["properties"]
        columns = {
            "type": "object",
            "title": "PodColumns",
            "description": "Format 1.3: the pods as columns, one array per PodCount field, all of one length.",
            "properties": {f: {"type": "array", "items": fields[f]} for f in POD_FIELDS},
            "required": list(POD_FIELDS),
            "additionalProperties": False,
        }
        return {"anyOf": [rows, columns]}


#: Validates the rows of columnar pods that the fast column check refused (the reference path).
_POD_LIST: TypeAdapter[list[PodCount]] = TypeAdapter(list[PodCount])


class DeploymentGroup(Frozen):
    """An existing deployment group: one service's pods bound to one network domain."""

    id: GroupId = Field(description="Unique deployment group name.")
    service: Id = Field(description="Service it belongs to.")
    domain: TopoId = Field(description="S1, S2 or cluster id, per the service's affinity.")
    pods: Annotated[Sequence[PodCount], _PodsSchema()] = Field(
        default_factory=list,
        description="Pods per role and node: a list of pod counts, or (format 1.3) a mapping of columns, one list "
        "per PodCount field; read as a sequence of PodCount either way (a PodTable for columns).",
    )


class ScalingRequest(Frozen):
    """A service's new target, in whole units, for this cycle."""

    service: Id = Field(description="Service to scale.")
    target_units: int = Field(ge=0, le=MAX_UNITS, description="Wanted total units after this cycle.")
    all_or_nothing: bool = Field(
        default=False,
        description="Place the whole change or none of it (a gang, as Kueue's topology-aware scheduling "
        "does); format 1.1.",
    )


def _default_tier_weights() -> dict[Tier, int]:
    return {"low": 1, "medium": 3, "high": 9}


class ObjectiveWeights(Frozen):
    """Weights of the premium-cost term (objective term 2)."""

    tier_weights: dict[Tier, int] = Field(
        default_factory=_default_tier_weights,
        description="Cost per placed GPU by tier of the S1 it lands in.",
    )
    nonpreferred_penalty: int = Field(
        default=2,
        ge=0,
        le=1000,
        description="Extra cost per GPU per rank below a role's preferred GPU type.",
    )

    @model_validator(mode="after")
    def _all_tiers(self) -> ObjectiveWeights:
        for tier in TIERS:
            w = self.tier_weights.get(tier)
            if w is None or w < 0 or w > 1000:
                raise ValueError(f"objective: tier_weights.{tier}={w} must be in 0..1000")
        return self


class Instance(Frozen):
    """One placement cycle: topology with free GPUs, services, groups and requests."""

    format_version: Literal["1.0", "1.1", "1.2", "1.3", "1.4"] = Field(
        description="Instance format version: '1.4', '1.3' without run-length node columns, '1.2' without "
        "columnar pods either, '1.1' without columnar nodes either, or '1.0' without single-role services and "
        "all-or-nothing requests either."
    )
    name: str = Field(default="", description="Free-form instance name.")
    gpu_types: list[GpuType] = Field(min_length=1, description="GPU types in the cluster.")
    nodes: Annotated[Sequence[Node], _NodesSchema()] = Field(
        description="All nodes with their free GPUs (at least one): a list of nodes, or (format 1.2) a mapping of "
        "columns, one list per Node field; read as a sequence of Node either way (a NodeTable for columns)."
    )
    subgroups: list[RdmaSubgroup] = Field(
        default_factory=list,
        description="Declared RDMA subgroups; S1s not covered get the paper's derived tiers.",
    )
    services: list[Service] = Field(default_factory=list, description="Services.")
    groups: list[DeploymentGroup] = Field(default_factory=list, description="Existing deployment groups.")
    requests: list[ScalingRequest] = Field(default_factory=list, description="This cycle's scaling requests.")
    objective: ObjectiveWeights = Field(default_factory=ObjectiveWeights, description="Objective weights.")

    @field_validator("nodes")
    @classmethod
    def _free_within_total(cls, nodes: Sequence[Node]) -> Sequence[Node]:
        if not isinstance(nodes, NodeTable):  # a table's columns were checked (_table_of)
            _check_free_within_total(nodes)
        return nodes

    @model_validator(mode="before")
    @classmethod
    def _runs_need_1_4(cls, data: Any) -> Any:
        """Node columns given as runs need format 1.4: checked on the input, as runs are a form of the file only
        (the table holds them expanded)."""
        if isinstance(data, dict) and isinstance(nodes := data.get("nodes"), dict):
            version = data.get("format_version")
            name = next((f for f in NODE_FIELDS if isinstance(nodes.get(f), dict)), None)
            if name is not None and version in FORMAT_VERSIONS and not _since(version, "1.4"):
                raise ValueError(
                    f"nodes: column '{name}' as runs (a mapping of values and lengths) needs format_version '1.4', "
                    f"not '{version}'"
                )
        return data

    @model_validator(mode="after")
    def _check_references(self) -> Instance:
        nodes = self.nodes
        table = nodes if isinstance(nodes, NodeTable) else None
        if table is not None and not _since(self.format_version, "1.2"):
            raise ValueError(
                "nodes: columns (a mapping of node fields) need format_version '1.2' or later, "
                f"not '{self.format_version}'"
            )
        pod_tables = [isinstance(g.pods, PodTable) for g in self.groups]
        if not _since(self.format_version, "1.3") and any(pod_tables):
            g = self.groups[pod_tables.index(True)]
            raise ValueError(
                f"DeploymentGroup '{g.id}': pods as columns (a mapping of pod fields) need format_version='1.3' "
                f"or later, not '{self.format_version}'"
            )
        # Each node's fields once, as its __dict__ (module docstring): at production size, reading
        # 7 attributes of 20k models was half of these checks' instructions. A table's are its columns.
        node_fields, node_by_id, places = _node_maps(nodes)
        _check_unique("GpuType", [g.id for g in self.gpu_types])
        if len(node_by_id) != len(nodes):
            _check_unique("Node", table.column("id") if table is not None else list(map(_ID, node_fields)))
        _check_unique("Service", [s.id for s in self.services])
        _check_unique("DeploymentGroup", [g.id for g in self.groups])
        _check_unique("RdmaSubgroup", [g.id for g in self.subgroups])
        gpu_ids = {g.id for g in self.gpu_types}
        # The distinct places of nodes in the tree: a few thousand at production size, not 20k nodes.
        clusters, s2s, s1s, s0s, gpu_types = zip(*places, strict=True)
        levels = (set(clusters), set(s2s), set(s1s), set(s0s) - {None})
        switches = set().union(*levels)
        node_ids = table.row_of().keys() if table is not None else node_by_id.keys()
        if len(switches) != sum(map(len, levels)) or not node_ids.isdisjoint(switches):
            _check_levels_disjoint(self.nodes)
        if self.format_version == "1.0":
            _check_version_1_0(self)
        s2_of_s1 = dict(zip(s1s, s2s, strict=True))
        cluster_of_s2 = dict(zip(s2s, clusters, strict=True))
        if (
            not gpu_ids.issuperset(gpu_types)
            or any(map(ne, map(s2_of_s1.__getitem__, s1s), s2s))
            or any(map(ne, map(cluster_of_s2.__getitem__, s2s), clusters))
        ):
            _check_node_references(self.nodes, gpu_ids)
        s1_ids, s2_ids = set(s2_of_s1), set(cluster_of_s2)
        covered: dict[str, str] = {}
        s1s_by_s2: defaultdict[str, list[str]] = defaultdict(list)
        for s1 in sorted(s1_ids) if self.subgroups else ():
            s1s_by_s2[s2_of_s1[s1]].append(s1)
        for sg in self.subgroups:
            members = [s1 for s2 in sg.s2s for s1 in s1s_by_s2.get(s2, ())]
            for s2 in sg.s2s:
                if s2 not in s2_ids:
                    raise ValueError(f"RdmaSubgroup '{sg.id}': s2s contains unknown S2 '{s2}'")
            for s1 in sg.s1s:
                if s1 not in s1_ids:
                    raise ValueError(f"RdmaSubgroup '{sg.id}': s1s contains unknown S1 '{s1}'")
            for s1 in members + list(sg.s1s):
                if s1 in covered:
                    raise ValueError(f"RdmaSubgroup '{sg.id}': S1 '{s1}' is already in subgroup '{covered[s1]}'")
                covered[s1] = sg.id
        # The largest node matters only if some pod is larger: the first node that holds the largest
        # pod settles that (usually the first node), and only otherwise is the maximum computed. Below,
        # max_node_gpus is only compared with pod sizes, for which the largest pod stands in as well.
        largest_pod = max((r.gpus_per_pod for s in self.services for r in s.roles), default=0)
        totals = table.column("gpus_total") if table is not None else list(map(_GPUS_TOTAL, node_fields))
        max_node_gpus = largest_pod if any(map(largest_pod.__le__, totals)) else max(totals)
        services = {s.id: s for s in self.services}
        for s in self.services:
            for r in s.roles:
                for t in r.gpu_types:
                    if t not in gpu_ids:
                        raise ValueError(f"Service '{s.id}': role '{r.name}' gpu_types contains unknown GPU type '{t}'")
                if len(set(r.gpu_types)) != len(r.gpu_types):
                    raise ValueError(f"Service '{s.id}': role '{r.name}' gpu_types={r.gpu_types} repeats a type")
                if r.gpus_per_pod > max_node_gpus:
                    raise ValueError(
                        f"Service '{s.id}': role '{r.name}' gpus_per_pod={r.gpus_per_pod} exceeds "
                        f"the largest node ({max_node_gpus} GPUs)"
                    )
        domain_ids = {"s1": s1_ids, "s2": s2_ids, "cluster": set(cluster_of_s2.values())}
        # A table's node fields by row (node_by_id then maps an id to its row, no model built).
        row_of = table.row_of() if table is not None else {}
        column = table.column if table is not None else None
        gpu_type_col = column("gpu_type") if column is not None else ()
        free_col = column("gpus_free") if column is not None else ()
        # Per service, its roles by name (the keys of pods_per_unit): acceptable GPU types, GPUs per pod.
        roles_of: dict[str, dict[str, tuple[list[str], int]]] = {}
        used_by_node: dict[str, int] = {}
        # Columns: every group's pods checked at once, in passes in C (_pods_ok); the loop below, the reference
        # check, runs only where they fail, and names the first error.
        fast = table is not None and _pods_ok(self.groups, services, table, domain_ids)
        for g in () if fast else self.groups:
            svc = services.get(g.service)
            if svc is None:
                raise ValueError(f"DeploymentGroup '{g.id}': service='{g.service}' is not a declared service")
            affinity, domain = svc.affinity, g.domain
            if domain not in domain_ids[affinity]:
                raise ValueError(
                    f"DeploymentGroup '{g.id}': domain='{domain}' is not an {affinity} id "
                    f"(service '{svc.id}' has affinity {affinity})"
                )
            seen: set[tuple[str, str]] = set()
            role_by_name = roles_of.get(svc.id)
            if role_by_name is None:
                role_by_name = roles_of[svc.id] = {r.name: (r.gpu_types, r.gpus_per_pod) for r in svc.roles}
            host_domains = column(affinity) if column is not None else ()
            for role_name, node_id, count in pod_rows(g.pods):
                if column is None:
                    node = node_by_id.get(node_id)
                    if node is None:
                        raise ValueError(f"DeploymentGroup '{g.id}': pods node='{node_id}' is not a declared node")
                    host = node.__dict__
                    host_type, host_domain = host["gpu_type"], host[affinity]  # the affinity names the field
                else:
                    row = row_of.get(node_id)
                    if row is None:
                        raise ValueError(f"DeploymentGroup '{g.id}': pods node='{node_id}' is not a declared node")
                    host_type, host_domain = gpu_type_col[row], host_domains[row]
                if (role_name, node_id) in seen:
                    raise ValueError(
                        f"DeploymentGroup '{g.id}': pods lists role '{role_name}' on node '{node_id}' twice"
                    )
                seen.add((role_name, node_id))
                role = role_by_name.get(role_name)
                if role is None:
                    raise ValueError(
                        f"DeploymentGroup '{g.id}': pods role='{role_name}' is not a role of service '{svc.id}'"
                    )
                if host_type not in role[0]:
                    raise ValueError(
                        f"DeploymentGroup '{g.id}': pod of role '{role_name}' on node '{node_id}' "
                        f"has gpu_type='{host_type}', not one of {role[0]}"
                    )
                if host_domain != domain:
                    raise ValueError(
                        f"DeploymentGroup '{g.id}': pod on node '{node_id}' lies outside domain '{domain}'"
                    )
                used_by_node[node_id] = used_by_node.get(node_id, 0) + count * role[1]
        over = []
        for node_id, used in used_by_node.items():
            if column is None:
                host = node_by_id[node_id].__dict__
                in_use = host["gpus_total"] - host["gpus_free"]
            else:
                in_use = totals[row_of[node_id]] - free_col[row_of[node_id]]
            if used > in_use:
                over.append(node_id)
        if over:
            node = node_by_id[min(over)]
            raise ValueError(
                f"Node '{node.id}': deployment groups use {used_by_node[node.id]} GPUs but only "
                f"gpus_total-gpus_free={node.gpus_total - node.gpus_free} are in use"
            )
        seen_req: set[str] = set()
        for req in self.requests:
            svc = services.get(req.service)
            if svc is None:
                raise ValueError(f"ScalingRequest: service='{req.service}' is not a declared service")
            if req.service in seen_req:
                raise ValueError(f"ScalingRequest: service='{req.service}' has two requests")
            seen_req.add(req.service)
            if req.target_units > svc.max_units:
                raise ValueError(
                    f"ScalingRequest '{req.service}': target_units={req.target_units} exceeds max_units={svc.max_units}"
                )
            if req.target_units < svc.min_units:
                raise ValueError(
                    f"ScalingRequest '{req.service}': target_units={req.target_units} is below "
                    f"min_units={svc.min_units}"
                )
        # Kept for the views of this instance (node_index): the same look-ups a solve needs, already paid.
        self.__dict__[_NODE_INDEX] = NodeIndex(nodes, node_by_id, places)
        return self

    def node_index(self) -> tuple[Mapping[str, Node], frozenset[Place]]:
        """(node by id, the distinct places of the nodes): what validation computed, kept with the instance.

        Validation builds both (20k-80k nodes at production scale, tens of milliseconds a pass); a view reads
        them here instead of passing over every node again. Kept outside the fields as a :class:`NodeIndex`
        (no part of the instance's value), tied to the ``nodes`` list it was computed from: a copy with other
        nodes (``model_copy(update={"nodes": ...})``, which does not validate) recomputes it. For a
        :class:`NodeTable` the map is a :class:`NodesById`: a node's model is built when it is looked up.
        """
        kept = self.__dict__.get(_NODE_INDEX)
        if kept is not None and kept.nodes is self.nodes:
            return kept.by_id, kept.places
        _, node_by_id, places = _node_maps(self.nodes)
        self.__dict__[_NODE_INDEX] = NodeIndex(self.nodes, node_by_id, places)  # a new one: copies may share the old
        return node_by_id, places


class NodeIndex:
    """Look-ups derived from an instance's nodes, kept with it (:meth:`Instance.node_index`).

    Derived data is no part of the instance's value: any two compare equal (so pydantic's equality, which
    compares the instance ``__dict__``, neither slows down nor changes), and it is neither pickled nor deep
    copied (an empty index, rebuilt on first use: a Ray worker receives the nodes, not 2 maps of them).
    """

    __slots__ = ("by_id", "nodes", "places")

    def __init__(
        self,
        nodes: Sequence[Node] | None = None,
        by_id: Mapping[str, Node] | None = None,
        places: frozenset[Place] = frozenset(),
    ) -> None:
        self.nodes, self.by_id, self.places = nodes, by_id or {}, places

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NodeIndex)

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> tuple[type[NodeIndex], tuple[()]]:
        return NodeIndex, ()

    def __deepcopy__(self, memo: dict[int, object]) -> NodeIndex:
        return NodeIndex()

    def __repr__(self) -> str:
        return f"NodeIndex({len(self.by_id)} nodes)"


#: A node's (cluster, S2, S1, S0, GPU type).
Place = tuple[str, str, str, str | None, str]
#: Where an instance keeps its :meth:`Instance.node_index` (a key of its ``__dict__`` that is no field).
_NODE_INDEX = "_node_index"
#: A model's field values (pydantic keeps them in the instance ``__dict__``).
_FIELDS = attrgetter("__dict__")
_ID = itemgetter("id")
_GPUS_TOTAL = itemgetter("gpus_total")
#: A node's place in the tree, as the checks over all nodes read it.
_PLACE_FIELDS = ("cluster", "s2", "s1", "s0", "gpu_type")
_PLACE = itemgetter(*_PLACE_FIELDS)
#: A pod count's role, node and count.
_POD = itemgetter("role", "node", "count")


def _node_maps(nodes: Sequence[Node]) -> tuple[list[dict[str, Any]], Mapping[str, Node], frozenset[Place]]:
    """Each node's fields (its ``__dict__``), the nodes by id (fewer than the nodes if an id repeats) and
    the distinct places: one read of every node, for the checks and :meth:`Instance.node_index`. A
    :class:`NodeTable` gives no fields (its columns are read instead), a :class:`NodesById` and the places of
    its columns, building no model."""
    if isinstance(nodes, NodeTable):
        return [], nodes.by_id(), nodes.places()
    node_fields = list(map(_FIELDS, nodes))
    return node_fields, dict(zip(map(_ID, node_fields), nodes, strict=True)), frozenset(map(_PLACE, node_fields))


def _check_free_within_total(nodes: Iterable[Node]) -> None:
    """``gpus_free <= gpus_total`` on every node; raise at the first that has more free than installed."""
    for n in nodes:
        if n.gpus_free > n.gpus_total:
            raise ValueError(f"Node '{n.id}': gpus_free={n.gpus_free} exceeds gpus_total={n.gpus_total}")


def _check_node_references(nodes: Iterable[Node], gpu_ids: set[str]) -> None:
    """Node by node: a declared GPU type, an S1 under one S2, an S2 in one cluster; raise at the first offence."""
    s2_of_s1: dict[str, str] = {}
    cluster_of_s2: dict[str, str] = {}
    for n in nodes:
        if n.gpu_type not in gpu_ids:
            raise ValueError(f"Node '{n.id}': gpu_type='{n.gpu_type}' is not a declared GPU type")
        prev = s2_of_s1.setdefault(n.s1, n.s2)
        if prev != n.s2:
            raise ValueError(f"Node '{n.id}': s1='{n.s1}' is already under s2='{prev}', not '{n.s2}'")
        prev = cluster_of_s2.setdefault(n.s2, n.cluster)
        if prev != n.cluster:
            raise ValueError(f"Node '{n.id}': s2='{n.s2}' is already in cluster='{prev}', not '{n.cluster}'")


def _check_levels_disjoint(nodes: Iterable[Node]) -> None:
    """Cluster, S2, S1, S0 and node ids differ across levels: a domain is named by its bare id."""
    level_of: dict[str, str] = {}
    for n in nodes:
        for level, ident in (("cluster", n.cluster), ("s2", n.s2), ("s1", n.s1), ("s0", n.s0), ("id", n.id)):
            if ident is None:
                continue
            prev = level_of.setdefault(ident, level)
            if prev != level:
                raise ValueError(
                    f"Node '{n.id}': {level}='{ident}' is already used as {_LEVEL_NAMES[prev]} id "
                    "(cluster, S2, S1, S0 and node ids must differ across levels)"
                )


_LEVEL_NAMES = {"cluster": "a cluster", "s2": "an S2", "s1": "an S1", "s0": "an S0", "id": "a node"}


def _pods_ok(
    groups: Sequence[DeploymentGroup],
    services: Mapping[str, Service],
    table: NodeTable,
    domains: Mapping[str, set[str]],
) -> bool:
    """Whether the pods of every group pass the per-pod checks of :meth:`Instance._check_references` (a declared
    service and a domain of its affinity; declared nodes of an acceptable GPU type inside the group's domain; no
    role twice on a node; no node holding more GPUs of pods than it has in use), as passes in C over the pods of
    all groups at once: at production size ~3,000 pods, where the per-pod loop took a fifth of a load. Only for
    columnar pods; False (also for rows) sends the groups to that loop, which names the first error."""
    pods: dict[str, list[PodTable]] = {"s1": [], "s2": [], "cluster": []}  # by the services' affinity
    owners: dict[str, list[tuple[int, str, str]]] = {"s1": [], "s2": [], "cluster": []}  # (group, service, domain)
    for i, g in enumerate(groups):
        svc = services.get(g.service)
        if svc is None or not isinstance(g.pods, PodTable) or g.domain not in domains[svc.affinity]:
            return False
        pods[svc.affinity].append(g.pods)
        owners[svc.affinity].append((i, svc.id, g.domain))
    # (service, role) -> GPUs per pod; (service, role, GPU type) for each acceptable type
    size = {(s.id, r.name): r.gpus_per_pod for s in services.values() for r in s.roles}
    accepted = {(s.id, r.name, t) for s in services.values() for r in s.roles for t in r.gpu_types}
    row_of, gpu_types = table.row_of(), table.column("gpu_type")
    rows: list[int] = []
    gpus: list[int] = []
    for affinity, tables in pods.items():
        if not tables:
            continue
        lengths = [len(t) for t in tables]
        group = list(chain.from_iterable(map(repeat, (i for i, _, _ in owners[affinity]), lengths)))
        service = list(chain.from_iterable(map(repeat, (s for _, s, _ in owners[affinity]), lengths)))
        roles = list(chain.from_iterable(t._columns[0] for t in tables))
        nodes = list(chain.from_iterable(t._columns[1] for t in tables))
        counts = chain.from_iterable(t._columns[2] for t in tables)
        found = list(map(row_of.get, nodes))
        if None in found or len(set(zip(group, roles, nodes, strict=True))) != len(nodes):
            return False  # an undeclared node, or a role twice on a node
        where = cast(list[int], found)
        held = set(zip(group, map(table.column(affinity).__getitem__, where), strict=True))
        if not held <= {(i, domain) for i, _, domain in owners[affinity]}:
            return False  # a pod outside its group's domain
        kinds = list(zip(service, roles, strict=True))
        if not accepted.issuperset(zip(service, roles, map(gpu_types.__getitem__, where), strict=True)):
            return False  # an unknown role, or a GPU type the role does not accept
        rows.extend(where)
        gpus.extend(map(mul, counts, map(size.__getitem__, kinds)))
    in_use = _ints(table.column("gpus_total")) - _ints(table.column("gpus_free"))
    used = np.bincount(np.asarray(rows, dtype=np.int64), np.asarray(gpus, dtype=np.int64), minlength=len(table))
    return not np.any(used > in_use)


def _ints(column: Sequence[int]) -> np.ndarray:
    """A column of GPU counts (ints of 0-64, as a node's fields allow) as an array, through ``bytes`` (a pass in
    C: ``numpy.asarray`` of a tuple of 20k ints takes 5 times as long)."""
    return np.frombuffer(bytes(column), dtype=np.uint8).astype(np.int64)


def _check_unique(kind: str, ids: Sequence[str]) -> set[str]:
    """The set of ``ids``; raise naming the first repeated one (in sorted order)."""
    id_set = set(ids)
    if len(id_set) != len(ids):
        dup = [i for i, c in Counter(ids).items() if c > 1]
        raise ValueError(f"{kind} '{sorted(dup)[0]}': id is declared more than once")
    return id_set


def require_instance(value: object, caller: str) -> Instance:
    """``value``, if it is an :class:`Instance`; else :class:`InputError` saying how to get one (a path or the
    parsed mapping is the usual slip, which would fail deep inside as an ``AttributeError``)."""
    if not isinstance(value, Instance):
        raise InputError(
            f"{caller} takes an Instance, not {type(value).__name__}: use load_instance(path) or parse_instance(dict)"
        )
    return value


def node_column(nodes: Sequence[Node], name: str) -> tuple[Any, ...]:
    """The values of node field ``name`` in node order: a :class:`NodeTable`'s column (no model built), or
    read from each node of a list."""
    if isinstance(nodes, NodeTable):
        return nodes.column(name)
    return tuple(map(itemgetter(name), map(_FIELDS, nodes)))


def pods_by_role(group: DeploymentGroup) -> dict[str, int]:
    """Total pods of each role in ``group``."""
    out: defaultdict[str, int] = defaultdict(int)
    for role, _, count in pod_rows(group.pods):
        out[role] += count
    return dict(out)


def group_units(service: Service, group: DeploymentGroup, s1_of_node: Mapping[str, str] | None = None) -> int:
    """Whole units a group holds: the least, over roles, of pods // pods per unit.

    For an MoE service, given ``s1_of_node``, a prefill replica counts only when its attn and ffn
    pods share an S1 (paper §3.4; a replica split by drift cannot be removed as a whole): units
    are at most ``whole replicas // pd_ratio.prefill``.
    """
    have = pods_by_role(group)
    units = min(have.get(r, 0) // n for r, n in service.pods_per_unit.items())
    if service.attn_ffn_ratio is None or s1_of_node is None:
        return units
    attn: Counter[str] = Counter()
    ffn: Counter[str] = Counter()
    for role, node, count in pod_rows(group.pods):
        if role == "prefill-attn":
            attn[s1_of_node[node]] += count
        elif role == "prefill-ffn":
            ffn[s1_of_node[node]] += count
    a, f = service.attn_ffn_ratio.prefill, service.attn_ffn_ratio.decode
    replicas = sum(min(attn[s1] // a, ffn[s1] // f) for s1 in attn)
    return min(units, replicas // service.pd_ratio.prefill)


def current_units(instance: Instance, service_id: str) -> int:
    """Whole units a service holds across its groups."""
    svc = next(s for s in instance.services if s.id == service_id)
    s1_of_node = {n.id: n.s1 for n in instance.nodes}
    return sum(group_units(svc, g, s1_of_node) for g in instance.groups if g.service == service_id)


def _check_version_1_0(instance: Instance) -> None:
    """Format 1.0 knows neither single-role services nor all-or-nothing requests."""
    for svc in instance.services:
        if svc.is_single_role:
            raise ValueError(f"Service '{svc.id}': roles=['serve'] needs format_version='1.1', not '1.0'")
    for req in instance.requests:
        if req.all_or_nothing:
            raise ValueError(
                f"ScalingRequest '{req.service}': all_or_nothing=true needs format_version='1.1', not '1.0'"
            )
