"""Helpers of the compliance tests: files a user would import, and a look at the store."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from sqlalchemy import select

from winback.store.schema import audit, contacts, suppressions
from winback.workspace import Workspace


def write(folder: Path, name: str, text: str) -> Path:
    """A file as a user would hand it to winback."""
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def contact(workspace: Workspace, contact_id: int) -> dict[str, Any]:
    with workspace.engine.connect() as connection:
        row = connection.execute(select(contacts).where(contacts.c.id == contact_id)).mappings()
        return dict(row.one())


def suppression_reasons(workspace: Workspace) -> dict[str, list[str]]:
    """The reasons on the list, per channel, in the order they came."""
    found: dict[str, list[str]] = {"email": [], "sms": []}
    with workspace.engine.connect() as connection:
        rows = connection.execute(
            select(suppressions.c.channel, suppressions.c.reason).order_by(suppressions.c.id)
        )
        for channel, reason in rows:
            found[channel].append(reason)
    return found


def audit_actions(workspace: Workspace, contact_id: int) -> list[tuple[str, str | None]]:
    with workspace.engine.connect() as connection:
        rows = connection.execute(
            select(audit.c.action, audit.c.reason)
            .where(audit.c.contact_id == contact_id)
            .order_by(audit.c.id)
        )
        return [(row.action, row.reason) for row in rows]
