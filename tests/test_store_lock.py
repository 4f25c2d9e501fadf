"""A score waits for another command writing to SQLite, and past the wait says so in one
line rather than failing at its end or with a driver's traceback."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

from winback.errors import StoreError
from winback.store.engine import bulk_transaction, open_engine


def test_a_writer_transaction_past_the_wait_is_a_one_line_error(tmp_path: Path) -> None:
    database = tmp_path / "shop.db"
    engine = open_engine(f"sqlite:///{database}")

    @event.listens_for(engine, "connect")
    def short_wait(connection: Any, _record: Any) -> None:
        connection.execute("PRAGMA busy_timeout = 50")

    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (x INTEGER)"))
    other = sqlite3.connect(database, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with (
            pytest.raises(StoreError, match="another command kept the database"),
            bulk_transaction(engine, {}, writer=True),
        ):
            pass
    finally:
        other.execute("ROLLBACK")
        other.close()
    # Free again, the transaction holds the write lock from its start: the other
    # command now waits for it.
    with bulk_transaction(engine, {}, writer=True) as connection:
        blocked = sqlite3.connect(database, timeout=0.05)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            blocked.execute("INSERT INTO t VALUES (1)")
        blocked.close()
        connection.execute(text("INSERT INTO t VALUES (2)"))
    engine.dispose()
