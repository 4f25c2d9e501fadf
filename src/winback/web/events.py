"""How the server records what it sees: tracking hits and webhook events become rows of
``events``, matched to their message in the outbox, and written by
:func:`winback.events.record_events`, the one path that stores an event once
(``dedup_key``) and turns an unsubscribe, a bounce or a complaint into a status change and
a suppression.

A hit on the old link of an erased contact records no event: it adds one to the count of
``erased_hits`` for its day, journey, step, channel and kind, which names no one (no
contact id, no address, no user agent), so the journey's reports still see that the
message was read."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select, update

from winback.clock import local_date, to_db
from winback.domain import EventType
from winback.events import record_events
from winback.scoring import is_machine_open
from winback.store.chunks import chunks
from winback.store.schema import contacts, erased_hits, outbox
from winback.web.bots import BURST_SECONDS, is_bot_click
from winback.workspace import Workspace

# Longest user agent kept: the size of events.user_agent.
_USER_AGENT_CHARS = 500


@dataclass(frozen=True)
class Message:
    """A message of the outbox, as a hit or a webhook event names it."""

    outbox_id: int
    contact_id: int
    channel: str
    journey: str | None
    sent_at: datetime | None  # naive UTC, as stored
    step_id: str | None = None


@dataclass(frozen=True)
class Hit:
    """One request to the open pixel or a click link, as the server saw it."""

    kind: EventType  # OPEN or CLICK
    message_id: str
    at: datetime  # aware UTC
    user_agent: str | None
    ip: str | None
    url: str | None
    # The event's dedup_key: made from the hit's place in the server's journal, so a
    # hit replayed from it is stored once.
    key: bytes


# What an anonymous count of erased_hits is kept by: day, journey, step, channel, kind.
ErasedHitKey = tuple[date, str, str, str, str]


def _message_id_forms(message_id: str) -> tuple[str, ...]:
    """A Message-ID with and without its angle brackets: ESPs quote it either way."""
    bare = message_id.strip().strip("<>")
    return (f"<{bare}>", bare)


def find_messages(
    connection: Connection, message_ids: Iterable[str], provider_ids: Iterable[str] = ()
) -> dict[str, Message]:
    """The outbox messages named by these Message-IDs (with or without ``<>``) or
    provider ids, keyed by the id as asked."""
    asked_ids = sorted(set(message_ids))
    asked_providers = sorted(set(provider_ids))
    forms = {form: asked for asked in asked_ids for form in _message_id_forms(asked)}
    found: dict[str, Message] = {}
    query = select(
        outbox.c.id,
        outbox.c.contact_id,
        outbox.c.channel,
        outbox.c.journey,
        outbox.c.sent_at,
        outbox.c.step_id,
        outbox.c.message_id,
        outbox.c.provider_id,
    )
    for batch in chunks(sorted(forms)):
        for row in connection.execute(query.where(outbox.c.message_id.in_(batch))):
            found[forms[row.message_id]] = Message(*row[:6])
    for batch in chunks(asked_providers):
        for row in connection.execute(query.where(outbox.c.provider_id.in_(batch))):
            found[row.provider_id] = Message(*row[:6])
    return found


def erased_among(connection: Connection, contact_ids: Iterable[int]) -> set[int]:
    """The contacts among ``contact_ids`` that are erased."""
    erased: set[int] = set()
    query = select(contacts.c.id).where(contacts.c.erased_at.is_not(None))
    for batch in chunks(sorted(set(contact_ids))):
        erased.update(connection.execute(query.where(contacts.c.id.in_(batch))).scalars())
    return erased


def count_erased_hits(connection: Connection, counts: Counter[ErasedHitKey]) -> None:
    """Add ``counts`` to the anonymous counts of hits on erased contacts' links."""
    for (day, journey, step_id, channel, kind), hits in sorted(counts.items()):
        key = (
            (erased_hits.c.day == day)
            & (erased_hits.c.journey == journey)
            & (erased_hits.c.step_id == step_id)
            & (erased_hits.c.channel == channel)
            & (erased_hits.c.type == kind)
        )
        added = connection.execute(
            update(erased_hits).where(key).values(hits=erased_hits.c.hits + hits)
        )
        if not added.rowcount:
            connection.execute(
                insert(erased_hits).values(
                    day=day, journey=journey, step_id=step_id, channel=channel, type=kind, hits=hits
                )
            )


def stored_user_agent(user_agent: str | None) -> str | None:
    """A user agent as ``events.user_agent`` keeps it: cut to the column's size, an empty
    one as NULL (hits and webhooks alike)."""
    return user_agent[:_USER_AGENT_CHARS] if user_agent else None


class HitRecorder:
    """Turns tracking hits into events, batch by batch, remembering the messages it has
    looked up (a message is hit many times: every open and click of every reader)."""

    CACHE_SIZE = 100_000

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.messages: dict[str, Message | None] = {}
        self.tz = workspace.config.workspace.tz
        self.machine_open_seconds = workspace.config.scoring.machine_open_seconds
        self.bot_click_seconds = workspace.config.web.bot_click_seconds
        self.unmatched = 0
        # The clicks of the last BURST_SECONDS per message, for the bot-click rule: kept
        # here rather than read back from the store, since this recorder writes them all
        # (one `winback serve` process; several workers would each see their own share).
        self.recent_clicks: dict[str, list[tuple[datetime, str]]] = {}

    def _lookup(self, connection: Connection, message_ids: Iterable[str]) -> None:
        missing = {mid for mid in message_ids if mid not in self.messages}
        if not missing:
            return
        if len(self.messages) + len(missing) > self.CACHE_SIZE:
            self.messages.clear()
        found = find_messages(connection, missing)
        for message_id in missing:
            self.messages[message_id] = found.get(message_id)

    def record(self, connection: Connection, hits: Sequence[Hit], now: datetime) -> int:
        """Record ``hits``; a hit on a message that is not in the outbox (deleted, or
        from another database) is counted in :attr:`unmatched` and dropped, one on the
        message of an erased contact only counted in ``erased_hits``."""
        self._lookup(connection, (hit.message_id for hit in hits))
        found = [(hit, self.messages.get(hit.message_id)) for hit in hits]
        # Asked again for every batch: an erasure may have come since the lookup.
        erased = erased_among(connection, (m.contact_id for _h, m in found if m is not None))
        rows = []
        anonymous: Counter[ErasedHitKey] = Counter()
        for hit, message in found:
            if message is None:
                self.unmatched += 1
            elif message.contact_id in erased:
                day = local_date(hit.at, self.tz)
                journey, step = message.journey or "", message.step_id or ""
                anonymous[(day, journey, step, message.channel, hit.kind.value)] += 1
            else:
                rows.append(self._row(hit, message))
        if anonymous:
            count_erased_hits(connection, anonymous)
        self._forget_old_clicks(to_db(now))
        return record_events(connection, self.workspace, rows, now=now, actor="web")

    def _forget_old_clicks(self, now: datetime) -> None:
        since = now - timedelta(seconds=BURST_SECONDS)
        recent = {}
        for message_id, clicks in self.recent_clicks.items():
            kept = [click for click in clicks if click[0] >= since]
            if kept:
                recent[message_id] = kept
        self.recent_clicks = recent

    def _row(self, hit: Hit, message: Message) -> dict[str, Any]:
        at = to_db(hit.at)
        machine_open = bot = None
        if hit.kind == EventType.OPEN:
            # True for a proxy prefetch; NULL (not False) otherwise, as the column says:
            # a later delivery event may still show the open came too soon.
            machine_open = (
                is_machine_open(
                    flag=None,
                    user_agent=hit.user_agent,
                    opened_at=at,
                    delivered_at=message.sent_at,
                    machine_open_seconds=self.machine_open_seconds,
                )
                or None
            )
        else:
            clicks = self.recent_clicks.setdefault(hit.message_id, [])
            bot = is_bot_click(
                user_agent=hit.user_agent,
                url=hit.url or "",
                clicked_at=at,
                sent_at=message.sent_at,
                earlier_clicks=clicks,
                bot_click_seconds=self.bot_click_seconds,
            )
            clicks.append((at, hit.url or ""))
        return {
            "contact_id": message.contact_id,
            "type": hit.kind.value,
            "channel": message.channel,
            "occurred_at": at,
            "campaign": message.journey,
            "message_id": hit.message_id,
            "machine_open": machine_open,
            "bot": bot,
            "user_agent": stored_user_agent(hit.user_agent),
            "url": hit.url,
            "ip": hit.ip,
            "outbox_id": message.outbox_id,
            "source": "web",
            # Every hit is its own event (two opens in the same second are two opens),
            # named by its place in the journal.
            "dedup_key": hit.key,
        }
