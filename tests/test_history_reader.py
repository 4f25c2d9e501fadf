"""One module reads the event history: :mod:`winback.store.history`. Tick reactions,
journey results, the kept figures, the base's health, the purge, the models, the GDPR
export and ``contact show`` all go through it, so the store that holds the events is
chosen in one place. No other module of the library selects from (or joins) the
``events`` table, apart from scoring and ingest, which work on the history in bulk.

Writes are not reads: an ``update``, ``delete`` or ``insert`` statement on the table (the
erasure's blanking of personal columns, the importer's index rebuild) is allowed
anywhere; :mod:`tests.test_event_writer` keeps the inserts to one path."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import winback

SOURCE = Path(winback.__file__).parent
SCHEMA = "winback.store.schema"
#: The modules that may read ``events`` directly: the door itself, the schema that
#: defines the table and its migrations, the one writer, and the bulk work of scoring
#: and ingest (the columnar history's own readers).
ALLOWED = (
    "store/history.py",
    "store/schema.py",
    "store/migrations/",
    "events.py",
    "scoring/",
    "ingest/",
)
#: Statements that change rows: a reference to the table in one of them is a write.
WRITE_STATEMENTS = {"update", "delete", "insert"}
#: What the table says about itself (its definition), not its rows.
DEFINITION = {"columns", "indexes", "name", "primary_key", "constraints", "foreign_keys"}
#: Raw SQL that reads the table; ``WITH NO DATA`` copies its columns, not its rows.
RAW_READ = re.compile(r"\b(from|join)\s+events\b(?!\s+with\s+no\s+data)", re.IGNORECASE)


def _allowed(path: Path) -> bool:
    name = path.relative_to(SOURCE).as_posix()
    return any(name == rule or (rule.endswith("/") and name.startswith(rule)) for rule in ALLOWED)


def _table_names(tree: ast.Module) -> tuple[set[str], set[str]]:
    """The names this module binds to the ``events`` table, and to the schema module."""
    tables: set[str] = set()
    schemas: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == SCHEMA:
            tables.update(a.asname or a.name for a in node.names if a.name == "events")
        elif isinstance(node, ast.ImportFrom) and node.module == "winback.store":
            schemas.update(a.asname or a.name for a in node.names if a.name == "schema")
        elif isinstance(node, ast.Import):
            schemas.update(a.asname or a.name for a in node.names if a.name == SCHEMA)
    return tables, schemas


def _is_table(node: ast.AST, tables: set[str], schemas: set[str]) -> bool:
    if isinstance(node, ast.Name):
        return node.id in tables
    if isinstance(node, ast.Attribute) and node.attr == "events":
        return ast.unparse(node.value) in schemas
    # metadata.tables["events"]
    return (
        isinstance(node, ast.Subscript)
        and isinstance(node.slice, ast.Constant)
        and node.slice.value == "events"
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "tables"
    )


def _mentions(node: ast.AST, tables: set[str], schemas: set[str], skip: set[int]) -> bool:
    """Whether ``node`` refers to the table's rows (``events``, ``events.c.id``), not
    only to its definition (``events.columns``, ``events.indexes``), outside ``skip``."""
    definition = {
        id(inner.value)
        for inner in ast.walk(node)
        if isinstance(inner, ast.Attribute) and inner.attr in DEFINITION
    }
    return any(
        id(inner) not in definition | skip and _is_table(inner, tables, schemas)
        for inner in ast.walk(node)
    )


def _statement(call: ast.Call) -> str | None:
    """The function a chain of calls starts from: ``select`` for
    ``select(...).join(...).where(...)``, ``update`` for ``update(t).where(...)``."""
    node: ast.AST = call
    while isinstance(node, ast.Call | ast.Attribute):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            return node.func.id
        node = node.func if isinstance(node, ast.Call) else node.value
    return None


def reads_of_events(source: str) -> list[int]:
    """The lines of ``source`` that read the ``events`` table: the table (or one of its
    columns) given to any call, or called upon, outside an update, delete or insert
    statement (a select, a join, an alias, a helper that selects from what it is given),
    or raw SQL that selects from it."""
    tree = ast.parse(source)
    tables, schemas = _table_names(tree)
    lines = {
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and RAW_READ.search(node.value)
    }
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)]
    written = {
        id(inner)
        for call in calls
        if _statement(call) in WRITE_STATEMENTS
        for inner in ast.walk(call)
    }
    for call in calls:
        if id(call) in written:
            continue
        arguments = [*call.args, *(keyword.value for keyword in call.keywords)]
        if isinstance(call.func, ast.Attribute):
            arguments.append(call.func.value)
        if any(_mentions(argument, tables, schemas, written) for argument in arguments):
            lines.add(call.lineno)
    return sorted(lines)


def _modules() -> Iterator[Path]:
    return (path for path in sorted(SOURCE.rglob("*.py")) if not _allowed(path))


def test_only_the_history_module_reads_events() -> None:
    readers = [
        f"{path.relative_to(SOURCE)}:{line}"
        for path in _modules()
        for line in reads_of_events(path.read_text(encoding="utf-8"))
    ]
    assert readers == [], "read events through winback.store.history, not the table"


def test_the_check_sees_reads_and_lets_writes_through() -> None:
    reads = {
        "select": "from winback.store.schema import events\nselect(events.c.id)",
        "join": "from winback.store.schema import events\nq = contacts.join(events, on)",
        "where": "from winback.store.schema import events\nselect(x).where(events.c.id > 1)",
        "alias": "from winback.store.schema import events as e\nf = e.alias()\nselect(f)",
        "table method": "from winback.store.schema import events\nrows = events.select()",
        "module": "from winback.store import schema\nselect(func.max(schema.events.c.id))",
        "helper": "from winback.store.schema import events\nrows(c, events, events.c.id == 1)",
        "raw": "run('SELECT id FROM events WHERE contact_id = 1')",
    }
    writes = {
        "update": "from winback.store.schema import events\n"
        "c.execute(update(events).where(events.c.contact_id.in_(ids)).values(ip=None))",
        "delete": "from winback.store.schema import events\ndelete(events).where(events.c.id < 9)",
        "indexes": "from winback.store.schema import events\nfor i in events.indexes: i.drop(c)",
        "column names": "from winback.store.schema import events\n"
        "names = tuple(c.name for c in events.columns)\n', '.join(names)",
        "copy columns": "run('CREATE TEMP TABLE t AS SELECT * FROM events WITH NO DATA')",
        "other table": "from winback.store.schema import outbox\nselect(outbox)",
    }
    assert {name: bool(reads_of_events(code)) for name, code in reads.items()} == dict.fromkeys(
        reads, True
    )
    assert {name: bool(reads_of_events(code)) for name, code in writes.items()} == dict.fromkeys(
        writes, False
    )
