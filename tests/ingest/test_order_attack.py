"""Attacks on "each row acts alone, in file order, whatever the batches": files whose
result must not depend on where their batches or blocks end, and refusals that must be
neither lost nor applied twice."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.ingest.conftest import NOW
from winback.domain import ChannelStatus
from winback.ingest import import_contacts, import_events, import_suppressions, pipeline, reader
from winback.ingest.webhook_files import import_event_file
from winback.store.schema import audit, contacts, events, suppressions
from winback.workspace import ENV_DATABASE_URL, Workspace


def _small_batches(monkeypatch: pytest.MonkeyPatch, rows: int) -> None:
    """Batches (row path) and blocks (CSV, Parquet) of about ``rows`` rows."""
    monkeypatch.setattr(pipeline, "BATCH_ROWS", rows)
    monkeypatch.setattr(reader, "BLOCK_ROWS", rows)
    monkeypatch.setattr(reader, "_CSV_READ_BYTES", 64)


def _state(workspace: Workspace) -> dict[str, Any]:
    """What a user checks after an import: statuses, audit trail, suppressions."""
    with workspace.engine.connect() as connection:
        people = connection.execute(
            select(
                contacts.c.email, contacts.c.phone, contacts.c.email_status, contacts.c.sms_status
            ).order_by(contacts.c.email, contacts.c.phone)
        ).all()
        trail = connection.execute(
            select(contacts.c.email, contacts.c.phone, audit.c.action, audit.c.reason)
            .join(contacts, contacts.c.id == audit.c.contact_id, isouter=True)
            .where(audit.c.action.in_(["status_change", "suppress"]))
            .order_by(audit.c.id)
        ).all()
        listed = connection.execute(
            select(
                suppressions.c.channel, suppressions.c.reason, suppressions.c.refused_at
            ).order_by(suppressions.c.channel, suppressions.c.reason, suppressions.c.refused_at)
        ).all()
        stored = connection.execute(
            select(events.c.type, events.c.channel, events.c.occurred_at, contacts.c.email)
            .join(contacts)
            .order_by(events.c.occurred_at, events.c.type, contacts.c.email)
        ).all()
    # Sorted here: the engines put NULLs at different ends, and a batch records its
    # status changes before its suppressions (the order of each kind is tested above).
    return {
        "contacts": sorted(people, key=repr),
        "audit": sorted(trail, key=repr),
        "suppressions": sorted(listed, key=repr),
        "events": sorted(stored, key=repr),
    }


# Three soft bounces in three days reach the limit (3 in 30 days); a fourth, months
# later, stands alone in its window.
SOFT_THEN_LATE = (
    "email,type,timestamp\n"
    "ann@example.com,soft_bounce,2026-01-01 10:00\n"
    "ann@example.com,soft_bounce,2026-01-02 10:00\n"
    "ann@example.com,soft_bounce,2026-01-03 10:00\n"
    "bob@example.com,open,2026-01-03 10:00\n"
    "ann@example.com,soft_bounce,2026-05-01 10:00\n"
)


@pytest.mark.parametrize("rows", [3, None], ids=["small-batches", "one-batch"])
def test_a_soft_bounce_limit_reached_mid_file_stands_whatever_the_batches(
    base: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows: int | None
) -> None:
    """ann's third soft bounce reaches the limit: bounced, as had the file stopped
    there; a later soft bounce outside the window does not undo it. (One batch used
    to count only the window of the newest soft bounce, and lost the refusal.)"""
    if rows:
        _small_batches(monkeypatch, rows)
    path = tmp_path / "events.csv"
    path.write_text(SOFT_THEN_LATE)
    import_events(base, path, now=NOW)
    state = _state(base)
    assert ("ann@example.com", "+33612345678", "bounced", "none") in state["contacts"]
    assert state["suppressions"] == [("email", "bounce_soft", datetime(2026, 1, 3, 10))]


@pytest.mark.parametrize("rows", [3, None], ids=["small-batches", "one-batch"])
def test_soft_bounces_in_reverse_time_order_reach_the_limit_as_they_come(
    base: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows: int | None
) -> None:
    """Newest first: each soft bounce, alone, sees only those before it in the file
    that lie in its own window, so the limit is reached by the third row whatever the
    batches."""
    if rows:
        _small_batches(monkeypatch, rows)
    path = tmp_path / "events.csv"
    path.write_text(
        "email,type,timestamp\n"
        "ann@example.com,soft_bounce,2026-01-03 10:00\n"
        "ann@example.com,soft_bounce,2026-01-02 10:00\n"
        "ann@example.com,soft_bounce,2026-01-01 10:00\n"
        "ann@example.com,soft_bounce,2026-01-04 10:00\n"
    )
    import_events(base, path, now=NOW)
    state = _state(base)
    assert ("ann@example.com", "+33612345678", "bounced", "none") in state["contacts"]


CORPUS = Path(__file__).parent.parent / "corpus"


def _emails_of(*files: Path) -> str:
    """A contacts file of every email the given corpus files name."""
    pattern = r"[\w.+-]+@[\w-]+\.[\w.]+"
    found = sorted(
        {m.lower().rstrip(".") for f in files for m in re.findall(pattern, f.read_text())}
    )
    return "email\n" + "".join(f"{email}\n" for email in found)


def _import(
    workspace: Workspace, tmp_path: Path, kind: str, content: str | Path, **options: Any
) -> list[Any]:
    """Import ``content`` (a file's text, or a corpus file) as ``kind``; the counts."""
    if isinstance(content, Path):
        path = content
    else:
        tmp_path.mkdir(exist_ok=True)
        path = tmp_path / f"file-{len(list(tmp_path.iterdir()))}.{options.pop('suffix', 'csv')}"
        path.write_text(content)
    if kind == "contacts":
        report = import_contacts(workspace, path, now=NOW, **options)
    elif kind == "events":
        report = import_event_file(workspace, path, now=NOW, **options)
    else:
        result = import_suppressions(workspace, path, now=NOW, reason=None)
        return [result.added, result.already, result.skipped, result.rejected]
    assert report.read == report.imported + report.merged + report.rejected
    return [report.read, report.imported, report.merged, report.rejected, report.warnings]


# Refusals of one batch and the next: a bad date, unknown addresses, a STOP reply,
# soft bounces reaching the limit across batches, around an unsubscribe.
JSONL_REFUSALS: list[tuple[Any, ...]] = [
    ("ann@example.com", "open", "2026-01-01 10:00"),
    ("ann@example.com", "unsubscribe", "bad"),
    ("zed@example.com", "hard_bounce", "2026-02-01"),
    ("bob@example.com", "soft_bounce", "2026-01-01"),
    ("zed@example.com", "unsubscribe", "2026-01-01"),
    (
        {
            "phone": "0611111111",
            "type": "reply",
            "channel": "sms",
            "body": "STOP",
            "timestamp": "2026-01-02",
        },
    ),
    ("bob@example.com", "soft_bounce", "2026-01-02"),
    ("ann@example.com", "hard_bounce", "2026-01-03"),
    ("bob@example.com", "soft_bounce", "2026-01-03"),
    ("bob@example.com", "unsubscribe", "2026-01-04"),
    ("bob@example.com", "soft_bounce", "2026-01-05"),
]
WEBHOOKS = sorted((CORPUS / "webhooks").glob("*.json*"))
# Scenarios: (kind, content, options) imported in turn.
Step = tuple[str, "str | Path", dict[str, Any]]
SCENARIOS: dict[str, list[Step]] = {
    "status-unsubscribed": [
        ("contacts", "email,phone\nann@example.com,0612345678\nbob@example.com,\n", {}),
        (
            "contacts",
            "email,phone\nann@example.com,\ncarol@example.com,0611111111\n"
            "ann@example.com,0622222222\nbob@example.com,0611111111\ndan@example.com,\n"
            "carol@example.com,0633333333\nbob@example.com,0611111111\n",
            {"status": ChannelStatus.UNSUBSCRIBED},
        ),
    ],
    "mailchimp-then-brevo": [
        ("contacts", CORPUS / "exports/mailchimp/subscribed_members_export_4f2a91c3b7.csv", {}),
        ("contacts", CORPUS / "exports/mailchimp/unsubscribed_members_export_4f2a91c3b7.csv", {}),
        ("contacts", CORPUS / "exports/mailchimp/cleaned_members_export_4f2a91c3b7.csv", {}),
        ("contacts", CORPUS / "exports/brevo/export_contacts_fr.csv", {}),
        ("contacts", CORPUS / "exports/shopify/customers_export.csv", {}),
        ("contacts", CORPUS / "exports/klaviyo/profiles_export.csv", {}),
    ],
    "suppress-then-contacts": [
        ("suppress", CORPUS / "exports/sendgrid/unsubscribes.csv", {}),
        ("suppress", CORPUS / "exports/mailgun/bounces.csv", {}),
        ("suppress", CORPUS / "exports/postmark/suppressions.csv", {}),
        ("contacts", CORPUS / "exports/mailchimp/subscribed_members_export_4f2a91c3b7.csv", {}),
    ],
    "phone-chains": [
        ("contacts", "email,phone\nann@example.com,0611111111\nbob@example.com,0622222222\n", {}),
        (
            "contacts",
            "email,phone\nbob@example.com,0633333333\nann@example.com,0622222222\n"
            "carol@example.com,0611111111\n,0644444444\ndan@example.com,0644444444\n"
            "ann@example.com,0655555555\nbob@example.com,0622222222\n"
            "erin@example.com,0633333333\n,0666666666\n,0666666666\n",
            {},
        ),
    ],
    "refusals-jsonl": [
        ("contacts", "email,phone\nann@example.com,0611111111\nbob@example.com,\n", {}),
        (
            "events",
            "".join(
                json.dumps(dict(zip(("email", "type", "timestamp"), row, strict=True))) + "\n"
                if len(row) == 3
                else json.dumps(row[0]) + "\n"
                for row in JSONL_REFUSALS
            ),
            {"suffix": "jsonl"},
        ),
    ],
    "webhooks": [
        ("contacts", _emails_of(*WEBHOOKS), {}),
        *(("events", path, {}) for path in WEBHOOKS),
        *(("events", path, {}) for path in WEBHOOKS),
    ],
    "orders": [
        ("contacts", "email\nann@example.com\ngaspard@example.net\nfabrice@example.org\n", {}),
        ("events", CORPUS / "orders/shopify_orders_export.csv", {}),
    ],
}


# status-unsubscribed: a phone refused by carol (row 2, --status unsubscribed), then let
# go and taken by bob (row 7): its suppression's audit record names carol, whose refusal
# it was, whatever the batches (one batch named bob, who held it when the batch ended).


@pytest.mark.parametrize(
    "name",
    sorted(SCENARIOS),
)
def test_small_batches_store_what_one_batch_stores(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """The same imports, in batches and blocks of 3 rows on each engine, and in one
    batch on SQLite: the same counts, contacts, audit trail, suppressions and events."""
    with monkeypatch.context() as local:
        local.delenv(ENV_DATABASE_URL, raising=False)
        reference = Workspace.init(tmp_path / "reference", "ecommerce")
    try:
        expected = [
            _import(reference, tmp_path / "a", kind, content, **dict(options))
            for kind, content, options in SCENARIOS[name]
        ]
        want = _state(reference)
    finally:
        reference.close()
    _small_batches(monkeypatch, 3)
    got = [
        _import(workspace, tmp_path / "b", kind, content, **dict(options))
        for kind, content, options in SCENARIOS[name]
    ]
    assert got == expected
    assert _state(workspace) == want
