"""The synthetic base of ``bench/score.py``, drawn as columns from one seeded generator.

The SQLite builder turns the columns into rows for ``executemany`` and the PostgreSQL
builder (``bench/score_pg.py``) into CSV for ``COPY``: one generator, so both databases
hold the same base, contact by contact and event by event. The order of the draws fixes
the base: keep it.

Its event mix is that of an email base: mostly sends and deliveries, about one open per
two deliveries (some flagged machine opens, some unflagged with an Apple proxy user
agent), few clicks, visits, purchases, logins and SMS replies; each contact falls silent
at its own date while sends go on, so every stage is populated.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

NOW = datetime(2025, 6, 1, tzinfo=UTC)
START = NOW - timedelta(days=3 * 365)
WINDOW = int((NOW - START).total_seconds())
SEED = 20250601
TYPES = np.array(
    ["sent", "delivered", "open", "click", "visit", "purchase", "login", "reply", "bounce_soft"]
)
TYPE_SHARES = np.array([0.35, 0.34, 0.18, 0.04, 0.04, 0.02, 0.01, 0.005, 0.015])
USER_AGENTS = [
    "Mozilla/5.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
]
EVENT_COLUMNS = (
    "id, contact_id, type, channel, occurred_at, amount, message_id, machine_open, "
    "user_agent, dedup_key"
)
CONTACT_COLUMNS = (
    "id, email, phone, country, language, birth_year, created_at, updated_at, email_status, "
    "sms_status"
)


@dataclass
class Base:
    """The contacts' columns, and what the events are drawn with: each contact's weight
    (how many events it gets) and the second, from ``START``, it falls silent."""

    created: np.ndarray
    email_status: np.ndarray
    has_phone: np.ndarray
    weights: np.ndarray
    quiet_from: np.ndarray

    @property
    def size(self) -> int:
        return len(self.created)


def draw_base(rng: np.random.Generator, contacts: int) -> Base:
    created = rng.integers(-3 * 365 * 86400, WINDOW, contacts)
    statuses = np.array(["subscribed", "unsubscribed", "bounced", "complained"])
    email_status = statuses[rng.choice(4, contacts, p=[0.86, 0.08, 0.05, 0.01])]
    has_phone = rng.random(contacts) < 0.4
    weights = rng.lognormal(0, 1.0, contacts)
    weights /= weights.sum()
    quiet_from = (rng.random(contacts) ** 0.7 * WINDOW).astype(np.int64)
    return Base(created, email_status, has_phone, weights, quiet_from)


def instants(seconds: np.ndarray) -> np.ndarray:
    """Naive-UTC ``datetime64[s]`` of seconds after ``START``."""
    return np.datetime64(START.replace(tzinfo=None), "s") + seconds.astype("timedelta64[s]")


def timestamps(seconds: np.ndarray) -> list[str]:
    """Naive-UTC timestamps as SQLAlchemy writes them in SQLite."""
    text = np.char.replace(instants(seconds).astype("U19"), "T", " ")
    return np.char.add(text, ".000000").tolist()


def contact_rows(base: Base, first: int, stop: int) -> list[tuple]:
    """Contacts ``first + 1`` to ``stop`` (ids from 1), in the order of CONTACT_COLUMNS."""
    stamps = timestamps(base.created[first:stop])
    return [
        (
            i + 1,
            f"c{i + 1}@example.com",
            f"+3360{i + 1:07d}" if base.has_phone[i] else None,
            "FR" if i % 3 else "BE",
            "fr",
            1950 + i % 55,
            stamps[i - first],
            stamps[i - first],
            str(base.email_status[i]),
            "subscribed" if base.has_phone[i] else "none",
        )
        for i in range(first, stop)
    ]


@dataclass
class EventBlock:
    """``n`` events as columns; -1 stands for NULL in the integer ones, NaN in amount."""

    ids: np.ndarray
    contact: np.ndarray
    kind: np.ndarray
    channel: np.ndarray
    seconds: np.ndarray
    amount: np.ndarray
    message: np.ndarray
    machine: np.ndarray
    user_agent: np.ndarray


def draw_events(
    rng: np.random.Generator,
    n: int,
    first_id: int,
    weights: np.ndarray,
    quiet_from: np.ndarray,
    window: int,
) -> EventBlock:
    contact = rng.choice(len(weights), size=n, p=weights) + 1
    kind = TYPES[rng.choice(len(TYPES), size=n, p=TYPE_SHARES)]
    sending = np.isin(kind, ["sent", "delivered", "bounce_soft"])
    # Sends go on to the end; a person's own events stop when they fall silent.
    horizon = np.where(sending, window, quiet_from[contact - 1])
    offset = (rng.random(n) * horizon).astype(np.int64)
    # The order of the two draws fixes the synthetic base: keep it.
    purchase_channel = np.where(rng.random(n) < 0.5, "store", "web")
    channel = np.select(
        [kind == "visit", kind == "login", kind == "reply", kind == "purchase"],
        ["web", "app", "sms", purchase_channel],
        np.where(sending & (rng.random(n) < 0.1), "sms", "email"),
    )
    message = np.where(
        np.isin(kind, ["sent", "delivered", "open", "click"]),
        contact * 100 + rng.integers(0, 20, n),
        -1,
    )
    is_open = kind == "open"
    flag_draw = rng.random(n)
    machine = np.where(is_open & (flag_draw < 0.4), 1, np.where(is_open & (flag_draw < 0.7), 0, -1))
    ua_pick = rng.integers(0, len(USER_AGENTS), n)
    amount = np.where(kind == "purchase", np.round(rng.lognormal(3.8, 0.6, n), 2), np.nan)
    # An unflagged open carries a user agent: the scoring rule decides from it.
    user_agent = np.where(is_open & (machine < 0), ua_pick, -1)
    ids = np.arange(first_id, first_id + n, dtype=np.int64)
    return EventBlock(ids, contact, kind, channel, offset, amount, message, machine, user_agent)


def next_day_events(first_id: int, contacts: int, n: int) -> EventBlock:
    """The ``n`` events of the day after ``NOW``, spread evenly over the base: what the
    incremental score finds new."""
    window = WINDOW + 86400
    weights = np.full(contacts, 1 / contacts)
    return draw_events(
        np.random.default_rng(first_id), n, first_id, weights, np.full(contacts, window), window
    )


def dedup_keys(ids: np.ndarray) -> list[bytes]:
    """A synthetic event's dedup key: its id, 16 bytes big-endian."""
    return [i.to_bytes(16, "big") for i in ids.tolist()]


def dedup_key_text(event_id: int) -> str:
    """The same key as :func:`dedup_keys`, in PostgreSQL's hex text of a ``bytea``."""
    return f"\\x{event_id:032x}"


def event_rows(block: EventBlock) -> list[tuple]:
    """The events as rows in the order of EVENT_COLUMNS, for ``executemany``."""
    return list(
        zip(
            block.ids.tolist(),
            block.contact.tolist(),
            block.kind.tolist(),
            block.channel.tolist(),
            timestamps(block.seconds),
            [None if a != a else a for a in block.amount.tolist()],
            [None if m < 0 else str(m) for m in block.message.tolist()],
            [None if m < 0 else m for m in block.machine.tolist()],
            [None if u < 0 else USER_AGENTS[u] for u in block.user_agent.tolist()],
            dedup_keys(block.ids),
            strict=True,
        )
    )
