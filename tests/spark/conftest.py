"""A small realistic base (the demo generator) for the export and Spark tests, and the
gate of the tests that need pyspark and Java: skipped when either is missing, failed
under ``WINBACK_REQUIRE_SPARK=1`` (as CI sets it)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.builders import add_event
from winback.demo import build_demo
from winback.store.schema import contacts
from winback.workspace import ENV_DATABASE_URL, Workspace

NOW = datetime(2026, 12, 7, tzinfo=UTC)
# Personal values of tracking hits: none may reach the export.
IP = "203.0.113.77"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0 Zorglub"
PROXY = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148"
)
URL = "https://shop.example.com/cart?who=zorglub-secret"
BODY = "STOP zorglub reply text"
SOURCE = "zorglub-form"
# Retail counts opens and clicks as customer activity, so machine opens change clocks;
# a zone east of UTC moves some local days.
SETTINGS = {
    'timezone = "UTC"': 'timezone = "Europe/Paris"',
    'customer_activity = ["purchase"]': 'customer_activity = ["purchase", "open", "click"]',
}


@pytest.fixture(scope="session")
def demo_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace holding the demo base of 300 contacts, made once per session."""
    path = tmp_path_factory.mktemp("spark") / "base"
    saved = os.environ.pop(ENV_DATABASE_URL, None)
    try:
        build_demo(path, contacts=300, now=NOW, seed=17)
    finally:
        if saved is not None:
            os.environ[ENV_DATABASE_URL] = saved
    _add_tracked_events(path)
    config = path / "winback.toml"
    text = config.read_text(encoding="utf-8")
    for old, new in SETTINGS.items():
        assert old in text
        text = text.replace(old, new, 1)
    config.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def demo_workspace(
    demo_base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Workspace]:
    """A copy of the demo base for one test."""
    monkeypatch.delenv(ENV_DATABASE_URL, raising=False)
    path = tmp_path / "ws"
    shutil.copytree(demo_base, path)
    ws = Workspace.open(path)
    yield ws
    ws.close()


@pytest.fixture(scope="session")
def spark_ready() -> None:
    """pyspark and a Java runtime are there."""
    problem = None
    try:
        import pyspark  # noqa: F401
    except ImportError:
        problem = "pyspark is not installed (pip install 'winback[spark]')"
    if problem is None and not os.environ.get("JAVA_HOME") and shutil.which("java") is None:
        problem = "no Java runtime (apt-get install default-jre-headless)"
    if problem is not None:
        if os.environ.get("WINBACK_REQUIRE_SPARK") == "1":
            pytest.fail(problem + " and WINBACK_REQUIRE_SPARK=1")
        pytest.skip(problem)


def _add_tracked_events(path: Path) -> None:
    """Tracked emails for some contacts, each message opened one way: a prefetch a second
    after delivery, a person a minute (or three seconds) after, a proxy's user agent, a
    flag either way, and clicks by a person and by a link scanner; with the personal
    columns a tracking hit carries."""
    ws = Workspace.open(path)
    try:
        with ws.engine.begin() as connection:
            ids = connection.execute(select(contacts.c.id).order_by(contacts.c.id)).scalars()
            for n, contact in enumerate(list(ids)[:60]):
                sent = NOW - timedelta(days=20 + 7 * (n % 9), hours=n)
                message = f"msg-{contact}"
                add_event(connection, contact, "delivered", sent, message_id=message)
                kind = n % 6
                opened: dict[str, Any] = {"message_id": message, "ip": IP, "url": URL}
                if kind == 0:
                    at, opened["user_agent"] = sent + timedelta(seconds=1), BROWSER
                elif kind == 1:
                    at, opened["user_agent"] = sent + timedelta(minutes=1), BROWSER
                elif kind == 2:
                    at, opened["user_agent"] = sent + timedelta(hours=2), PROXY
                elif kind == 3:
                    at, opened["machine_open"] = sent + timedelta(hours=3), True
                elif kind == 4:
                    at, opened["machine_open"] = sent + timedelta(seconds=1), False
                else:
                    at = sent + timedelta(seconds=3)
                add_event(connection, contact, "open", at, **opened)
                if n % 4 == 0:
                    add_event(
                        connection,
                        contact,
                        "click",
                        at + timedelta(seconds=30),
                        message_id=message,
                        bot=n % 8 == 0,
                        user_agent=BROWSER,
                        ip=IP,
                        url=URL,
                    )
                if n % 10 == 0:
                    add_event(
                        connection, contact, "reply", at, channel="sms", body=BODY, source=SOURCE
                    )
    finally:
        ws.close()
