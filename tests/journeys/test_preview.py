"""A journey's message seen before it goes out: a preview as one contact gets it, and a
test sent through the real channel (an SMTP server on loopback) that is never counted."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select
from typer.testing import CliRunner

from tests.channels.smtp_server import RecordingHandler
from tests.journeys.conftest import OFFER_FIRST, SIMPLE, add, scored
from winback.cli import app
from winback.store.schema import events, offers, outbox
from winback.workspace import Workspace


def test_preview_renders_as_the_contact_gets_it(
    ws: Workspace, cli: CliRunner, tmp_path: Path
) -> None:
    add(ws, OFFER_FIRST)
    with ws.engine.begin() as c:
        scored(c, email="camille@example.com", first_name="Camille", language="fr")
    out = tmp_path / "preview.html"
    w = ["-w", str(ws.path)]
    result = cli.invoke(
        app, ["journey", "preview", "spring", "miss-you", "--contact", "camille@example.com",
              "--out", str(out), *w],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    assert "Camille" in html and "PREVIEW" in html and "<html" in html.lower()
    shown = cli.invoke(
        app, ["journey", "preview", "spring", "miss-you", "--contact", "camille@example.com", *w]
    )
    assert "Subject: -20 % pour votre retour, Camille" in shown.output
    wrong = cli.invoke(
        app, ["journey", "preview", "spring", "nope", "--contact", "camille@example.com", *w]
    )
    assert wrong.exit_code != 0 and "miss-you" in wrong.output
    with ws.engine.connect() as c:  # nothing written: no code handed out, no outbox row
        assert c.execute(select(func.count()).select_from(offers)).scalar_one() == 0
        assert c.execute(select(func.count()).select_from(outbox)).scalar_one() == 0


def test_send_test_goes_through_smtp_and_is_never_counted(
    ws: Workspace, cli: CliRunner, smtp: RecordingHandler
) -> None:
    add(ws, SIMPLE)
    with ws.engine.begin() as c:
        scored(c, email="camille@example.com", first_name="Camille", language="fr")
    result = cli.invoke(
        app, ["journey", "send-test", "spring", "miss-you", "--to", "boss@example.org",
              "--contact", "camille@example.com", "-w", str(ws.path)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    [received] = smtp.received
    assert received.rcpt_tos == ["boss@example.org"]
    assert received.message["Subject"].startswith("[TEST] ")
    assert received.message["X-Winback-Test"] == "yes"
    with ws.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(outbox)).scalar_one() == 0
        assert c.execute(select(func.count()).select_from(events)).scalar_one() == 0


def test_the_starter_templates_link_to_the_shop_of_the_workspace(
    ws: Workspace, cli: CliRunner, tmp_path: Path
) -> None:
    config = ws.path / "winback.toml"
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            'shop_url = "https://shop.example.com"', 'shop_url = "https://boutique.example.org/"'
        ),
        encoding="utf-8",
    )
    own = Workspace.open(ws.path)
    try:
        add(own, SIMPLE)
        with own.engine.begin() as c:
            scored(c, email="camille@example.com", first_name="Camille", language="fr")
        out = tmp_path / "miss-you.html"
        result = cli.invoke(
            app, ["journey", "preview", "spring", "miss-you", "--contact", "camille@example.com",
                  "--out", str(out), "-w", str(own.path)],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        html = out.read_text(encoding="utf-8")
        assert "https://boutique.example.org/selection" in html
        assert "shop.example.com" not in html
    finally:
        own.close()
