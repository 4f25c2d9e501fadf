"""Property: for any event history, the SQL scoring (full, then incremental after more
events and changes to the contacts' records) gives what the Python reference gives."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert, select, update

from tests.scoring.reference import reference_scores
from winback.domain import Profile
from winback.scoring import score
from winback.scoring.stages import Policy
from winback.store.contacts import dedup_key
from winback.store.schema import audit, contact_scores, contacts, events, stage_history
from winback.workspace import ENV_DATABASE_URL, Workspace

Breakpoints = dict[str, tuple[float, ...] | None]
PROFILES: tuple[Profile, ...] = ("ecommerce", "retail", "subscription", "newsletter")
START = datetime(2023, 1, 1)
TYPES = ("sent", "delivered", "open", "click", "purchase", "visit", "login", "reply")
USER_AGENTS = (None, "Mozilla/5.0", "Mozilla/5.0 (Windows NT 10.0) Chrome/124.0 Safari/537.36")
_keys = itertools.count()


@pytest.fixture(scope="module")
def workspaces(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Workspace]]:
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(ENV_DATABASE_URL, raising=False)
        base = tmp_path_factory.mktemp("property")
        made: dict[str, Workspace] = {}
        for profile in PROFILES:
            Workspace.init(Path(base / profile), profile).close()
            text = (base / profile / "winback.toml").read_text()
            text = text.replace('timezone = "UTC"', 'timezone = "Europe/Paris"')
            (base / profile / "winback.toml").write_text(text)
            made[profile] = Workspace.open(base / profile)
    yield made
    for ws in made.values():
        ws.close()


moments = st.builds(
    lambda days, seconds: START + timedelta(days=days, seconds=seconds),
    st.integers(0, 800),
    st.sampled_from([0, 1, 3, 3600 * 23 - 1, 3600 * 23 + 60]),
)
event = st.fixed_dictionaries(
    {
        "type": st.sampled_from(TYPES),
        "channel": st.sampled_from(("email", "sms", "web", "app", "store")),
        "occurred_at": moments,
        "machine_open": st.sampled_from((None, None, True, False)),
        "user_agent": st.sampled_from(USER_AGENTS),
        "message_id": st.sampled_from((None, "m1", "m2")),
        "amount": st.integers(1, 5).map(float),
        "bot": st.sampled_from((None, True)),
        "contact": st.integers(0, 3),
        "later": st.booleans(),
    }
)
contact = st.fixed_dictionaries(
    {
        "created_at": moments,
        "email_status": st.sampled_from(("subscribed", "subscribed", "unsubscribed", "none")),
        "sms_status": st.sampled_from(("none", "subscribed", "bounced", "complained")),
        "subscription_active": st.booleans(),
        "lost_by_journey_at": st.one_of(st.none(), moments),
    }
)

# What may change in a contact's record between two runs, without any event.
change = st.fixed_dictionaries(
    {},
    optional={
        "created_at": moments,
        "email_status": st.sampled_from(("subscribed", "unsubscribed", "complained")),
        "sms_status": st.sampled_from(("subscribed", "bounced")),
        "subscription_active": st.booleans(),
        "lost_by_journey_at": moments,
    },
)


def _reset(ws: Workspace) -> None:
    with ws.engine.begin() as c:
        for table in (audit, stage_history, contact_scores, events, contacts):
            c.execute(delete(table))


def _compare(
    ws: Workspace,
    rows: list[dict[str, Any]],
    evs: list[dict[str, Any]],
    now: datetime,
    kept: Breakpoints | None,
) -> Breakpoints | None:
    """Check the stored rows against the reference; return the RFM breakpoints the next
    (incremental) run keeps: those of this run when it had customers."""
    policy = Policy.from_config(ws.config.policy)
    expected, breakpoints = reference_scores(
        rows,
        evs,
        policy,
        now,
        ws.config.workspace.timezone,
        ws.config.scoring.machine_open_seconds,
        kept,
    )
    with ws.engine.connect() as c:
        stored = {r["contact_id"]: dict(r) for r in c.execute(select(contact_scores)).mappings()}
    assert set(stored) == set(expected)
    for contact_id, want in expected.items():
        got = stored[contact_id]
        now_naive = now.astimezone(UTC).replace(tzinfo=None)
        checked = {k: v for k, v in want.items() if k not in ("clock_days", "days_inactive")}
        if got["scored_at"] == now_naive:  # the clocks are as of the row's scoring
            checked.update(clock_days=want["clock_days"], days_inactive=want["days_inactive"])
        actual = {k: got[k] for k in checked}
        actual["dormant_subscriber"] = bool(actual["dormant_subscriber"])
        assert actual == checked, f"contact {contact_id}"
    return breakpoints if any(r["purchases"] for r in expected.values()) else None


@pytest.mark.slow
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    profile=st.sampled_from(PROFILES),
    people=st.lists(contact, min_size=1, max_size=4),
    history=st.lists(event, max_size=25),
    first_day=st.integers(300, 700),
    gap=st.integers(0, 400),
    changes=st.lists(change, max_size=4),
)
def test_sql_scoring_equals_the_reference(
    workspaces: dict[str, Workspace],
    profile: str,
    people: list[dict[str, Any]],
    history: list[dict[str, Any]],
    first_day: int,
    gap: int,
    changes: list[dict[str, Any]],
) -> None:
    ws = workspaces[profile]
    _reset(ws)
    rows: list[dict[str, Any]] = []
    with ws.engine.begin() as c:
        for person in people:
            values = {**person, "updated_at": person["created_at"]}
            contact_id = c.execute(insert(contacts).returning(contacts.c.id), values).scalar_one()
            rows.append({"id": contact_id, **person})
    first_now = datetime(2023, 1, 1, tzinfo=UTC) + timedelta(days=first_day, hours=5)
    second_now = first_now + timedelta(days=gap)
    batches: list[list[dict[str, Any]]] = [[], []]
    for item in history:
        e = {k: v for k, v in item.items() if k not in ("contact", "later")}
        e["contact_id"] = rows[item["contact"] % len(rows)]["id"]
        batches[int(item["later"])].append(e)
    inserted: list[dict[str, Any]] = []
    kept = None
    for batch, now in zip(batches, (first_now, second_now), strict=True):
        with ws.engine.begin() as c:
            if now == second_now:
                for row, values in zip(rows, changes, strict=False):
                    if values:
                        c.execute(update(contacts).where(contacts.c.id == row["id"]), values)
                        row.update(values)
            for e in batch:
                c.execute(insert(events), {**e, "dedup_key": dedup_key("test", next(_keys))})
        inserted += batch
        score(ws, now=now)
        kept = _compare(ws, rows, inserted, now, kept)
