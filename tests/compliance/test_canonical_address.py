"""One canonical form for an address on every path: ``user@bücher.example.com`` and
``user@xn--bcher-kva.example.com`` are one person to the import, the suppression list and
its hashes, and a suppression written under the older (Unicode) spelling still holds."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from alembic import command
from sqlalchemy import select
from typer.testing import CliRunner

from tests.builders import add_contact, day
from tests.compliance.conftest import write
from winback.addresses import hashed_forms, normalise_email
from winback.cli import app
from winback.compliance.suppression import (
    is_suppressed,
    load_suppressions,
    suppress_hashes,
)
from winback.ingest.addresses import emails
from winback.ingest.contacts import import_contacts
from winback.store.engine import _alembic_config
from winback.store.schema import contacts
from winback.workspace import Workspace

NOW = day(2025, 6, 30)
UNICODE = "jo@bücher.example.com"
PUNYCODE = "jo@xn--bcher-kva.example.com"


def test_both_spellings_have_one_canonical_form() -> None:
    for spelling in (UNICODE, PUNYCODE, "Jo@BÜCHER.Example.com", " JO@XN--BCHER-KVA.EXAMPLE.COM "):
        assert normalise_email(spelling) == PUNYCODE
    assert hashed_forms("email", PUNYCODE) == (PUNYCODE, UNICODE)
    assert hashed_forms("email", "jo@example.com") == ("jo@example.com",)


def test_the_column_path_leaves_idna_domains_to_the_one_rule() -> None:
    normalised, absent, left = emails(pa.array([PUNYCODE, "ann@example.com"]))
    assert normalised.to_pylist() == [None, "ann@example.com"]
    assert left.tolist() == [True, False] and not absent.any()


def test_the_two_spellings_import_as_one_contact(workspace: Workspace, tmp_path: Path) -> None:
    first = write(tmp_path, "shop.csv", f"email,first_name\n{UNICODE},Jo\n")
    second = write(tmp_path, "esp.csv", "email,city\nJo@XN--BCHER-KVA.example.com,Lyon\n")
    import_contacts(workspace, first, now=NOW)
    report = import_contacts(workspace, second, now=NOW)
    assert (report.imported, report.merged) == (0, 1)
    with workspace.engine.connect() as connection:
        stored = connection.execute(select(contacts.c.email, contacts.c.city)).all()
    assert stored == [(PUNYCODE, "Lyon")]


@pytest.mark.parametrize(("suppressed", "imported"), [(UNICODE, PUNYCODE), (PUNYCODE, UNICODE)])
def test_a_suppressed_address_stays_refused_under_its_other_spelling(
    suppressed: str, imported: str, workspace: Workspace, cli: CliRunner, tmp_path: Path
) -> None:
    args = ["suppress", "add", suppressed, "--reason", "unsubscribe", "-w", str(workspace.path)]
    assert cli.invoke(app, args).exit_code == 0
    import_contacts(workspace, write(tmp_path, "back.csv", f"email\n{imported}\n"), now=NOW)
    shown = cli.invoke(app, ["contact", "show", imported, "--json", "-w", str(workspace.path)])
    assert json.loads(shown.output)["contact"]["email_status"] == "unsubscribed"


def test_an_entry_hashed_under_the_older_unicode_spelling_still_holds(
    workspace: Workspace, cli: CliRunner, tmp_path: Path
) -> None:
    # What earlier versions wrote for a Unicode domain: the hash of the Unicode spelling.
    with workspace.engine.begin() as connection:
        suppress_hashes(
            connection,
            {workspace.keyed_hash(UNICODE): None},
            channel="email",
            reason="unsubscribe",
            now=NOW,
            actor="user",
        )
    with workspace.engine.connect() as connection:
        assert is_suppressed(connection, workspace, "email", PUNYCODE)
        assert load_suppressions(connection, workspace, ["email"]).blocks("email", PUNYCODE)
    import_contacts(workspace, write(tmp_path, "back.csv", f"email\n{UNICODE}\n"), now=NOW)
    listed = cli.invoke(app, ["suppress", "list", "--json", "-w", str(workspace.path)])
    assert [e["address"] for e in json.loads(listed.output)] == [PUNYCODE]
    shown = cli.invoke(app, ["contact", "show", UNICODE, "--json", "-w", str(workspace.path)])
    assert json.loads(shown.output)["contact"]["email_status"] == "unsubscribed"
    removed = cli.invoke(app, ["suppress", "remove", UNICODE, "-w", str(workspace.path)])
    assert removed.exit_code == 0, removed.output
    with workspace.engine.connect() as connection:
        assert not is_suppressed(connection, workspace, "email", PUNYCODE)


def test_the_migration_rewrites_stored_unicode_domains(sqlite_workspace: Workspace) -> None:
    workspace = sqlite_workspace
    config = _alembic_config(workspace.engine)
    command.downgrade(config, "0004")
    taken = "ana@xn--caf-dma.example.org"
    with workspace.engine.begin() as connection:
        for email in (UNICODE, "ana@café.example.org", taken):
            add_contact(connection, email=email, created_at=NOW)
    command.upgrade(config, "head")
    with workspace.engine.connect() as connection:
        stored = set(connection.execute(select(contacts.c.email)).scalars())
    # The one whose canonical spelling another contact holds stays as it was.
    assert stored == {PUNYCODE, "ana@café.example.org", taken}
