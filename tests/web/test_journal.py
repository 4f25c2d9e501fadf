"""The hit journal: a hit is answered once journaled, and what a killed server journaled
is recorded by the next one at its start, each hit once."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.builders import add_contact, day
from tests.web.conftest import CHROME, NOW, open_site, sent_message
from winback.web.events import HitRecorder
from winback.web.journal import Journal, journal_directory, mark_recorded, open_segment
from winback.workspace import Workspace

pytestmark = pytest.mark.anyio

MESSAGE = "<20250602.3@news.example.com>"
SECOND = timedelta(seconds=1)


async def test_a_killed_servers_journal_is_recorded_once_at_the_next_start(
    workspace: Workspace,
) -> None:
    with workspace.engine.begin() as c:
        contact = add_contact(c, email="heidi@example.com", created_at=day(2024, 1, 5))
        sent_message(c, contact, MESSAGE, sent_at=NOW - timedelta(hours=2))
    directory = journal_directory(workspace.path)
    journal = Journal(directory, wake=lambda: None)
    for n in range(3):
        await journal.append("open", MESSAGE, NOW + n * SECOND, CHROME, "198.51.100.4", None)
    journal.close()  # the server is gone: its segment is no longer locked
    # Its recorder had recorded the first hit (and said so in the same transaction).
    with workspace.engine.begin() as c:
        segment = open_segment(c, directory, journal.segment)
        assert segment is not None
        number, first = next(segment.hits())
        HitRecorder(workspace).record(c, [first], first.at)
        mark_recorded(c, segment.name, number)
    segment.file.close()

    async for site in open_site(workspace):
        await site.settled()  # the recorder has replayed the journal before this
        opens = site.events(type="open")
    assert [e["occurred_at"] for e in opens] == [
        (NOW + n * SECOND).replace(tzinfo=None) for n in range(3)
    ]
    assert [e["ip"] for e in opens] == ["198.51.100.4"] * 3
    assert list(directory.iterdir()) == []  # every segment recorded, then deleted


async def test_a_hit_is_in_the_journal_when_it_is_answered(workspace: Workspace) -> None:
    with workspace.engine.begin() as c:
        contact = add_contact(c, email="ivan@example.com", created_at=day(2024, 1, 5))
        sent_message(c, contact, MESSAGE, sent_at=NOW - timedelta(hours=2))
    async for site in open_site(workspace):
        answer = await site.client.get(
            site.path(site.links.open_url(MESSAGE)), headers={"User-Agent": CHROME}
        )
        assert answer.status_code == 200
        [segment] = journal_directory(workspace.path).iterdir()
        assert MESSAGE.encode() in segment.read_bytes()
