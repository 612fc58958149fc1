"""The portal's own GraphQL schema, executed over in-memory tables.

The SDL shipped with ``cryoet-data-portal`` is built once per process and its resolvers are
bound generically from the type map, so both the official client and our hand-written queries
get the answers the real server (platformics: Strawberry + SQLAlchemy + Postgres) would give.
Tables follow docs/demo-portal.md: ``{"<type name>": [row, ...]}``, rows keyed by scalar field
names; relations are resolved through the ``<relation>Id`` foreign keys.

Behaviours copied from the real server (``platformics/graphql_api/core/query_builder.py``,
``strawberry/relay``), on purpose:

- a relation filter is an EXISTS; a comparison with NULL is false, except ``_eq: null`` and
  ``_neq: null``, which SQLAlchemy turns into IS NULL / IS NOT NULL;
- ``limitOffset``: a limit of 0 means no limit; an offset without a limit is an error;
- ordering or grouping by a relation is an inner join: rows without the related row drop out;
- nested ``<rel>Aggregate`` groups by the parent key, so a parent without matching children
  gets ``aggregate: []`` (root aggregates without ``groupBy`` always get one element);
- connections hold at most 100 edges without ``first``; ``first``/``last`` > 100 is an error.

Where the real server leaves things unspecified or differs we chose: rows without ``orderBy``
come in ``id`` order; strings sort by code point (Postgres uses the database collation);
DateTime values compare as ISO strings; enums compare by name, not declaration order;
``@skip``/``@include`` are ignored when looking ahead at ``groupBy`` selections.
Mutations are not supported.
"""

from __future__ import annotations

import base64
import functools
import importlib.util
import json
import operator
import re
import statistics
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLObjectType,
    GraphQLSchema,
    build_schema,
    execute_sync,
    get_named_type,
    is_object_type,
    parse,
    validate,
)

Row = dict[str, Any]
RowFilter = Callable[[list[Row]], list[Row]]

MAX_FILTER_DEPTH = 5  # platformics: "Max filter depth exceeded"
RELAY_MAX_RESULTS = 100  # strawberry's relay_max_results
CURSOR_PREFIX = "arrayconnection"
_MISSING = object()


@dataclass(frozen=True)
class Relation:
    """A relation field: ``fk`` is on the source row (to-one) or on the target rows (to-many)."""

    target: str
    fk: str
    many: bool


# --------------------------------------------------------------------------- schema


_build_lock = threading.Lock()


def _built() -> tuple[GraphQLSchema, dict[str, dict[str, Relation]]]:
    with _build_lock:  # servers may start in parallel threads; build (and bind) only once
        return _build()


@functools.cache
def _build() -> tuple[GraphQLSchema, dict[str, dict[str, Relation]]]:
    """Build the SDL once per process: it takes 0.5-1 s and never changes within an install."""
    schema = build_schema(_sdl_path().read_text())
    relations = _find_relations(schema)
    _bind_resolvers(schema, relations)
    return schema, relations


def _sdl_path() -> Path:
    """The SDL of the installed client, found without importing it (that pulls in boto3, ~1 s)."""
    spec = importlib.util.find_spec("cryoet_data_portal")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the demo portal needs cryoet-data-portal (the 'demo' extra)")
    return Path(spec.submodule_search_locations[0]) / "data" / "schema.graphql"


def portal_schema() -> GraphQLSchema:
    """The executable schema (resolvers read the tables from the execution context)."""
    return _built()[0]


def _entities(schema: GraphQLSchema) -> dict[str, GraphQLObjectType]:
    return {
        name: t
        for name, t in schema.type_map.items()
        if is_object_type(t) and any(i.name == "EntityInterface" for i in t.interfaces)
    }


def _find_relations(schema: GraphQLSchema) -> dict[str, dict[str, Relation]]:
    """Derive every relation from the SDL: to-one ``x`` uses ``xId``; a connection ``xs`` uses
    the back-reference of the target to this type (preferably named after this type)."""
    entities = _entities(schema)
    relations: dict[str, dict[str, Relation]] = {}
    for name, entity in entities.items():
        found = relations[name] = {}
        for field_name, field in entity.fields.items():
            target = get_named_type(field.type)
            if target.name in entities:
                found[field_name] = Relation(target.name, f"{field_name}Id", many=False)
            elif target.name.endswith("Connection"):
                edge = get_named_type(target.fields["edges"].type)
                node = get_named_type(edge.fields["node"].type)
                backrefs = [f for f, x in node.fields.items() if get_named_type(x.type) is entity]
                preferred = name[0].lower() + name[1:]
                backref = preferred if preferred in backrefs else backrefs[0]
                found[field_name] = Relation(node.name, f"{backref}Id", many=True)
    return relations


def _bind_resolvers(schema: GraphQLSchema, relations: dict[str, dict[str, Relation]]) -> None:
    for field in schema.mutation_type.fields.values():
        field.resolve = _read_only
    for name, field in schema.query_type.fields.items():
        target = get_named_type(field.type).name
        if target in relations:
            field.resolve = _root_list_resolver(target)
        elif target.endswith("Aggregate"):
            field.resolve = _root_aggregate_resolver(target.removesuffix("Aggregate"))
    for type_name, entity in _entities(schema).items():
        entity.fields["_id"].resolve = _global_id_resolver(type_name)
        for field_name, rel in relations[type_name].items():
            entity.fields[field_name].resolve = (
                _connection_resolver(rel) if rel.many else _to_one_resolver(rel)
            )
            aggregate = entity.fields.get(f"{field_name}Aggregate")
            if aggregate is not None:
                aggregate.resolve = _nested_aggregate_resolver(rel)
        functions = schema.type_map[f"{type_name}AggregateFunctions"]
        schema.type_map[f"{type_name}Aggregate"].fields["aggregate"].resolve = _resolve_groups
        for fn_name, fn_field in functions.fields.items():
            if fn_name == "count":
                fn_field.resolve = _resolve_count
            elif fn_name == "groupBy":
                fn_field.resolve = lambda group, _info: group.key
            else:
                fn_field.resolve = functools.partial(_resolve_column_stats, fn_name)
                for column in get_named_type(fn_field.type).fields.values():
                    column.resolve = _resolve_column_stat


# --------------------------------------------------------------------------- tables


class PortalTables:
    """The tables, sorted by id and indexed by id and every foreign key (built once per server)."""

    def __init__(self, tables: Mapping[str, Iterable[Row]]) -> None:
        self.relations = _built()[1]
        unknown = set(tables) - set(self.relations)
        if unknown:
            raise ValueError(f"Unknown table(s), expected GraphQL type names: {sorted(unknown)}")
        self.rows: dict[str, list[Row]] = {
            name: sorted(tables.get(name, ()), key=operator.itemgetter("id"))
            for name in self.relations
        }
        self.indexed: dict[str, tuple[str, ...]] = {
            name: ("id", *(r.fk for r in rels.values() if not r.many))
            for name, rels in self.relations.items()
        }
        self._index: dict[tuple[str, str], dict[Any, list[Row]]] = {}
        for name, columns in self.indexed.items():
            for column in columns:
                index = self._index[name, column] = defaultdict(list)
                for row in self.rows[name]:
                    if row.get(column) is not None:
                        index[row[column]].append(row)

    def lookup(self, type_name: str, column: str, value: Any) -> list[Row]:
        """Rows whose indexed ``column`` equals ``value``, in id order."""
        return self._index[type_name, column].get(value, [])

    def related(self, type_name: str, field: str, row: Row) -> list[Row]:
        """Rows at the other end of a relation (at most one for to-one relations)."""
        rel = self.relations[type_name][field]
        if rel.many:
            return self.lookup(rel.target, rel.fk, row["id"])
        return self.lookup(rel.target, "id", row.get(rel.fk))


# --------------------------------------------------------------------------- execution


@functools.lru_cache(maxsize=512)
def parse_query(query: str) -> tuple[DocumentNode | None, tuple[GraphQLError, ...]]:
    """Parse and validate a query; cached because clients repeat the same few queries."""
    try:
        document = parse(query)
    except GraphQLError as error:
        return None, (error,)
    return document, tuple(validate(portal_schema(), document))


def execute(
    tables: PortalTables,
    document: DocumentNode,
    variables: Mapping[str, Any] | None = None,
    operation_name: str | None = None,
) -> ExecutionResult:
    """Execute a validated document; each request gets its own memo of filter results."""
    return execute_sync(
        portal_schema(),
        document,
        context_value=_Session(tables),
        variable_values=variables,
        operation_name=operation_name,
    )


class _Session:
    """One request's evaluation of where/orderBy clauses.

    Relation filters are semi-joins: the inner clause is evaluated once over the whole related
    table and reduced to a set of keys, memoized for the request, so a filter costs one pass per
    table however many parent rows (or aliases, or nested connections) use it.
    """

    def __init__(self, tables: PortalTables) -> None:
        self.tables = tables
        self._memo: dict[tuple, Any] = {}

    def _memoized(self, key: tuple, compute: Callable[[], Any]) -> Any:
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def select(self, type_name: str, where: Mapping | None, depth: int = 0) -> list[Row]:
        """Rows of a table matching ``where``, in id order."""
        keep = self.row_filter(type_name, where, depth)
        rows = self._candidates(type_name, where or {})
        return rows if keep is None else keep(rows)

    def _candidates(self, type_name: str, where: Mapping) -> list[Row]:
        """Narrow by an ``_eq``/``_in`` on id or a foreign key before filtering."""
        for column in self.tables.indexed[type_name]:
            clause = where.get(column) or {}
            if clause.get("_eq") is not None:
                return self.tables.lookup(type_name, column, clause["_eq"])
            if clause.get("_in") is not None:
                values = set(clause["_in"])
                found = (r for v in values for r in self.tables.lookup(type_name, column, v))
                return sorted(found, key=operator.itemgetter("id"))
        return self.tables.rows[type_name]

    def row_filter(self, type_name: str, where: Mapping | None, depth: int = 0) -> RowFilter | None:
        """A filter over row lists for ``where`` (None when it filters nothing); keys are ANDed.

        Filters work on whole lists so the per-row work is a list comprehension step.
        """
        if depth >= MAX_FILTER_DEPTH:
            raise GraphQLError("Max filter depth exceeded")
        if not where:
            return None
        key = ("filter", type_name, depth, _canonical(where))
        return self._memoized(key, lambda: self._compile(type_name, where, depth))

    def _compile(self, type_name: str, where: Mapping, depth: int) -> RowFilter:
        relations = self.tables.relations[type_name]
        filters: list[RowFilter] = []
        for key, clause in where.items():
            if key in relations:
                rel = relations[key]
                if rel.many:
                    keys = self._values(rel.target, rel.fk, clause, depth + 1)
                    filters.append(lambda rows, keys=keys: [r for r in rows if r["id"] in keys])
                else:
                    keys = self._values(rel.target, "id", clause, depth + 1)
                    filters.append(
                        lambda rows, keys=keys, fk=rel.fk: [r for r in rows if r.get(fk) in keys]
                    )
            elif key.endswith("Aggregate") and key.removesuffix("Aggregate") in relations:
                rel = relations[key.removesuffix("Aggregate")]
                filters.append(self._count_filter(rel, clause["count"], depth))
            elif clause:
                filters.extend(_column_filter(key, op, operand) for op, operand in clause.items())
        return _chain(filters)

    def _values(self, type_name: str, column: str, where: Mapping | None, depth: int) -> frozenset:
        """The non-null ``column`` values of the rows matching ``where`` (a semi-join's keys)."""
        key = ("values", type_name, column, depth, _canonical(where))
        return self._memoized(
            key,
            lambda: frozenset(
                row[column]
                for row in self.select(type_name, where, depth)
                if row.get(column) is not None
            ),
        )

    def _count_filter(self, rel: Relation, count: Mapping, depth: int) -> RowFilter:
        """``<rel>Aggregate: {count: {filter, arguments, distinct, predicate}}`` per parent row."""
        children = self.select(rel.target, count.get("filter"), depth + 2)
        column = count.get("arguments")
        per_parent: dict[Any, list] = defaultdict(list)
        for child in children:
            if column is None or child.get(column) is not None:
                per_parent[child.get(rel.fk)].append(child.get(column) if column else None)
        counts = {
            parent: len(set(values)) if column and count.get("distinct") else len(values)
            for parent, values in per_parent.items()
        }
        test = _chain(
            [_column_filter("count", op, x) for op, x in (count.get("predicate") or {}).items()]
        )

        def accepts(n: int) -> bool:
            return bool(test([{"count": n}]))

        accepted = {parent for parent, n in counts.items() if accepts(n)}
        zero_accepted = accepts(0)
        return lambda rows: [
            r for r in rows if (r["id"] in accepted if r["id"] in counts else zero_accepted)
        ]

    def ordered(
        self, type_name: str, rows: list[Row], order_by: Sequence[Mapping] | None
    ) -> list[Row]:
        """Apply orderBy clauses (stable; asc puts nulls last and desc nulls first, as Postgres)."""
        terms = [t for clause in order_by or () for t in self._order_terms(type_name, clause)]
        for path, direction in reversed(terms):
            getter = self._path_getter(type_name, path)
            keyed = [(getter(row), row) for row in rows]
            present = [(v, r) for v, r in keyed if v is not None and v is not _MISSING]
            nulls = [r for v, r in keyed if v is None]
            descending = direction.startswith("desc")
            present.sort(key=operator.itemgetter(0), reverse=descending)
            nulls_first = direction.endswith("nulls_first") or (
                descending and not direction.endswith("nulls_last")
            )
            ordered = [r for _v, r in present]
            rows = nulls + ordered if nulls_first else ordered + nulls
        return rows

    def _order_terms(
        self, type_name: str, clause: Mapping, path: tuple[str, ...] = ()
    ) -> Iterator[tuple[tuple[str, ...], str]]:
        """Flatten a clause into (path, direction) terms; paths hop through to-one relations."""
        for field, value in clause.items():
            if isinstance(value, Mapping):
                target = self.tables.relations[type_name][field].target
                yield from self._order_terms(target, value, (*path, field))
            elif value is not None:
                yield (*path, field), value

    def _path_getter(self, type_name: str, path: tuple[str, ...]) -> Callable[[Row], Any]:
        """Read ``path`` (to-one hops then a column); _MISSING when a hop has no row."""
        relations = self.tables.relations

        def get(row: Row) -> Any:
            current_type = type_name
            for hop in path[:-1]:
                related = self.tables.related(current_type, hop, row)
                if not related:
                    return _MISSING
                row, current_type = related[0], relations[current_type][hop].target
            return row.get(path[-1])

        return get

    def group(self, type_name: str, rows: list[Row], spec: Mapping) -> list[_AggregateGroup]:
        """Split rows into groupBy groups, in order of first appearance."""
        groups: dict[tuple, list[Row]] = {}
        for row in rows:
            for key in self._group_keys(type_name, row, spec):
                groups.setdefault(key, []).append(row)
        return [
            _AggregateGroup(members, _key_dict(spec, iter(key)))
            for key, members in groups.items()
        ]

    def _group_keys(self, type_name: str, row: Row, spec: Mapping) -> list[tuple]:
        """Flattened group values of a row; relations join, so a row can be in 0..n groups."""
        combos: list[tuple] = [()]
        for field, sub in spec.items():
            if sub is None:
                options = [(row.get(field),)]
            else:
                target = self.tables.relations[type_name][field].target
                options = [
                    key
                    for related in self.tables.related(type_name, field, row)
                    for key in self._group_keys(target, related, sub)
                ]
            combos = [combo + option for combo in combos for option in options]
        return combos


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _key_dict(spec: Mapping, values: Iterator) -> dict:
    return {f: next(values) if sub is None else _key_dict(sub, values) for f, sub in spec.items()}


# --------------------------------------------------------------------------- comparators


def _like_regex(pattern: str, flags: int = 0) -> re.Pattern:
    """SQL LIKE: ``%`` any run, ``_`` any one character, backslash escapes; whole string."""
    parts, escaped = [], False
    for ch in pattern:
        if escaped:
            parts.append(re.escape(ch))
            escaped = False
        elif ch == "\\":
            escaped = True
        else:
            parts.append({"%": ".*", "_": "."}.get(ch) or re.escape(ch))
    return re.compile("".join(parts) + r"\Z", re.DOTALL | flags)


def _negate(test: Callable[[Any], Any]) -> Callable[[Any], bool]:
    return lambda value: not test(value)


# Comparator → (operand → test of a non-null column value); kept to C calls where possible.
_VALUE_TESTS: dict[str, Callable[[Any], Callable[[Any], Any]]] = {
    "_eq": lambda x: functools.partial(operator.eq, x),
    "_neq": lambda x: functools.partial(operator.ne, x),
    "_gt": lambda x: functools.partial(operator.lt, x),
    "_gte": lambda x: functools.partial(operator.le, x),
    "_lt": lambda x: functools.partial(operator.gt, x),
    "_lte": lambda x: functools.partial(operator.ge, x),
    "_in": lambda x: frozenset(x).__contains__,
    "_nin": lambda x: _negate(frozenset(x).__contains__),
    "_like": lambda x: _like_regex(x).match,
    "_nlike": lambda x: _negate(_like_regex(x).match),
    "_ilike": lambda x: _like_regex(x, re.IGNORECASE).match,
    "_nilike": lambda x: _negate(_like_regex(x, re.IGNORECASE).match),
    "_regex": lambda x: re.compile(x).search,
    "_nregex": lambda x: _negate(re.compile(x).search),
    "_iregex": lambda x: re.compile(x, re.IGNORECASE).search,
    "_niregex": lambda x: _negate(re.compile(x, re.IGNORECASE).search),
}


def _column_filter(column: str, op: str, operand: Any) -> RowFilter:
    """One comparator with SQL NULL semantics (see the module docstring for ``_eq: null``)."""
    if op == "_is_null" or (op in ("_eq", "_neq") and operand is None):
        want_null = bool(operand) if op == "_is_null" else op == "_eq"
        return lambda rows: [r for r in rows if (r.get(column) is None) == want_null]
    if operand is None:
        return lambda rows: []
    test = _VALUE_TESTS[op](operand)
    return lambda rows: [r for r in rows if (v := r.get(column)) is not None and test(v)]


def _chain(filters: list[RowFilter]) -> RowFilter:
    """AND of filters: each narrows the previous one's output."""

    def apply(rows: list[Row]) -> list[Row]:
        for keep in filters:
            if not rows:
                break
            rows = keep(rows)
        return rows

    return filters[0] if len(filters) == 1 else apply


# --------------------------------------------------------------------------- resolvers


def _session(info: Any) -> _Session:
    return info.context


def _read_only(_root: Any, _info: Any, **_args: Any) -> None:
    raise GraphQLError("The demo portal is read-only: mutations are not supported")


def _root_list_resolver(type_name: str) -> Callable:
    def resolve(
        _root: Any,
        info: Any,
        where: Mapping | None = None,
        orderBy: Sequence[Mapping] | None = None,  # noqa: N803 (GraphQL argument names)
        limitOffset: Mapping | None = None,  # noqa: N803
    ) -> list[Row]:
        limit = (limitOffset or {}).get("limit")
        offset = (limitOffset or {}).get("offset") or 0
        if offset and not limit:
            raise GraphQLError("Cannot use offset without limit")
        session = _session(info)
        rows = session.ordered(type_name, session.select(type_name, where), orderBy)
        return rows[offset : offset + limit] if limit else rows

    return resolve


def _global_id_resolver(type_name: str) -> Callable:
    def resolve(row: Row, _info: Any) -> str:
        return base64.b64encode(f"{type_name}:{row['id']}".encode()).decode()

    return resolve


def _to_one_resolver(rel: Relation) -> Callable:
    def resolve(row: Row, info: Any, where: Mapping | None = None, **_order_by: Any) -> Row | None:
        """``orderBy`` is accepted and, as there is at most one row, ignored."""
        session = _session(info)
        related = session.tables.lookup(rel.target, "id", row.get(rel.fk))
        keep = session.row_filter(rel.target, where)
        if keep is not None:
            related = keep(related)
        return related[0] if related else None

    return resolve


def _children(
    info: Any, rel: Relation, row: Row, where: Mapping | None, depth: int = 0
) -> list[Row]:
    session = _session(info)
    children = session.tables.lookup(rel.target, rel.fk, row["id"])
    keep = session.row_filter(rel.target, where, depth)
    return children if keep is None else keep(children)


def _connection_resolver(rel: Relation) -> Callable:
    def resolve(
        row: Row,
        info: Any,
        where: Mapping | None = None,
        orderBy: Sequence[Mapping] | None = None,  # noqa: N803
        **page: Any,
    ) -> dict:
        children = _session(info).ordered(rel.target, _children(info, rel, row, where), orderBy)
        return paginate(children, **page)

    return resolve


def paginate(
    rows: Sequence[Row],
    first: int | None = None,
    last: int | None = None,
    after: str | None = None,
    before: str | None = None,
) -> dict:
    """A Relay connection over ``rows``, sliced exactly as strawberry's ListConnection does."""
    unbounded = end = None
    start = 0 if after is None else _cursor_index(after, "after") + 1
    if before is not None:
        end = _cursor_index(before, "before")
    for name, value in (("first", first), ("last", last)):
        if value is not None and value < 0:
            raise GraphQLError(f"Argument '{name}' must be a non-negative integer.")
        if value is not None and value > RELAY_MAX_RESULTS:
            raise GraphQLError(f"Argument '{name}' cannot be higher than {RELAY_MAX_RESULTS}.")
    if first is not None:
        end = start + first if end is None else min(end, start + first)
    if last is not None:
        if end is None:
            unbounded = True
        else:
            start = max(start, end - last)
    if end is None and not unbounded:
        end = start + RELAY_MAX_RESULTS
    stop = len(rows) if unbounded else min(len(rows), end + 1)
    window = [(i, rows[i]) for i in range(start, stop)]
    has_previous, has_next = start > 0, False
    if unbounded:
        kept = window[-last:]
        has_previous = len(kept) != len(window)
        window = kept
    elif len(window) == end - start + 1:
        window, has_next = window[:-1], True
    edges = [{"cursor": _cursor(i), "node": row} for i, row in window]
    return {
        "edges": edges,
        "pageInfo": {
            "hasNextPage": has_next,
            "hasPreviousPage": has_previous,
            "startCursor": edges[0]["cursor"] if edges else None,
            "endCursor": edges[-1]["cursor"] if edges else None,
        },
    }


def _cursor(index: int) -> str:
    return base64.b64encode(f"{CURSOR_PREFIX}:{index}".encode()).decode()


def _cursor_index(cursor: str, argument: str) -> int:
    try:
        prefix, index = base64.b64decode(cursor.encode()).decode().split(":")
        if prefix == CURSOR_PREFIX:
            return int(index)
    except ValueError:
        pass
    raise GraphQLError(f"Argument '{argument}' contains a non-existing value.")


@dataclass
class _AggregateSource:
    """The rows an ``XAggregate`` summarizes; ``per_parent`` for ``<rel>Aggregate`` fields."""

    type_name: str
    rows: list[Row]
    per_parent: bool


@dataclass
class _AggregateGroup:
    """One element of ``aggregate``: the group's rows and its ``groupBy`` values."""

    rows: list[Row]
    key: dict


@dataclass
class _ColumnStats:
    """``sum``/``avg``/``min``/... of a group, one column at a time."""

    function: str
    rows: list[Row]


def _root_aggregate_resolver(type_name: str) -> Callable:
    def resolve(_root: Any, info: Any, where: Mapping | None = None) -> _AggregateSource:
        return _AggregateSource(type_name, _session(info).select(type_name, where, depth=1), False)

    return resolve


def _nested_aggregate_resolver(rel: Relation) -> Callable:
    def resolve(row: Row, info: Any, where: Mapping | None = None) -> _AggregateSource:
        return _AggregateSource(rel.target, _children(info, rel, row, where, depth=1), True)

    return resolve


def _resolve_groups(source: _AggregateSource, info: Any) -> list[_AggregateGroup]:
    selected = list(_subfields(info.field_nodes, info.fragments))
    if all(f.name.value in ("groupBy", "__typename") for f in selected):
        raise GraphQLError("No aggregate functions selected")
    spec = _group_spec([f for f in selected if f.name.value == "groupBy"], info.fragments)
    if spec:
        return _session(info).group(source.type_name, source.rows, spec)
    if source.per_parent and not source.rows:
        return []
    return [_AggregateGroup(source.rows, {})]


def _subfields(nodes: Iterable[Any], fragments: Mapping[str, Any]) -> Iterator[FieldNode]:
    """Fields selected under ``nodes``, through inline fragments and fragment spreads."""
    for node in nodes:
        for selection in node.selection_set.selections if node.selection_set else ():
            if isinstance(selection, FieldNode):
                yield selection
            elif isinstance(selection, FragmentSpreadNode):
                yield from _subfields([fragments[selection.name.value]], fragments)
            else:
                yield from _subfields([selection], fragments)


def _group_spec(nodes: Iterable[FieldNode], fragments: Mapping[str, Any]) -> dict:
    """``groupBy { a b { c } }`` → ``{"a": None, "b": {"c": None}}``."""
    spec: dict = {}
    for field in _subfields(nodes, fragments):
        name = field.name.value
        if name == "__typename":
            continue
        if field.selection_set is None:
            spec[name] = None
        else:
            spec.setdefault(name, {}).update(_group_spec([field], fragments))
    return spec


def _resolve_count(
    group: _AggregateGroup, _info: Any, distinct: bool = False, columns: str | None = None
) -> int:
    if columns is None:
        return len(group.rows)
    values = [row[columns] for row in group.rows if row.get(columns) is not None]
    return len(set(values)) if distinct else len(values)


def _resolve_column_stats(function: str, group: _AggregateGroup, _info: Any) -> _ColumnStats:
    return _ColumnStats(function, group.rows)


_STATS: dict[str, Callable[[list], Any]] = {
    "sum": sum,
    "avg": statistics.fmean,
    "min": min,
    "max": max,
    "stddev": statistics.stdev,  # Postgres stddev/variance are the sample versions
    "variance": statistics.variance,
}


def _resolve_column_stat(stats: _ColumnStats, info: Any) -> Any:
    values = [row[info.field_name] for row in stats.rows if row.get(info.field_name) is not None]
    minimum = 2 if stats.function in ("stddev", "variance") else 1
    return _STATS[stats.function](values) if len(values) >= minimum else None

