"""The preference centre and the survey: what a person's choice changes, the CSRF check,
the language and brand of the pages, and answers kept as written but shown escaped."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from tests.builders import add_contact, day
from tests.web.conftest import NOW, Site, sent_message
from winback.cli import app
from winback.clock import to_db
from winback.store.schema import contacts, survey_answers
from winback.store.survey import survey_counts, survey_texts
from winback.web.csrf import csrf_token
from winback.workspace import Workspace

pytestmark = pytest.mark.anyio


@pytest.fixture
def workspace(sqlite_workspace: Workspace) -> Workspace:
    """A workspace with topics, a brand and English as its language."""
    config = sqlite_workspace.path / "winback.toml"
    text = config.read_text(encoding="utf-8")
    text = text.replace('brand_name = "ws"', 'brand_name = "Boutique <Éole>"')
    text = text.replace('brand_color = "#2b6cb0"', 'brand_color = "#aa3300"')
    text = text.replace('language = "fr"', 'language = "en"')
    text = text.replace("topics = []", 'topics = ["sales", "new products"]')
    config.write_text(text, encoding="utf-8")
    return Workspace.open(sqlite_workspace.path)


@pytest.fixture
def contact(site: Site) -> int:
    with site.workspace.engine.begin() as c:
        return add_contact(
            c, email="carol@example.com", phone="+33612345678", created_at=day(2024, 1, 5)
        )


def token_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


async def test_the_page_shows_the_choices_in_the_contact_language_and_brand(
    site: Site, contact: int
) -> None:
    token = token_of(site.links.preferences_url(contact))
    english = await site.client.get(f"/p/{token}")
    assert english.status_code == 200
    assert "Pause for three months" in english.text
    assert "Boutique &lt;Éole&gt;" in english.text and "#aa3300" in english.text
    assert 'value="sales"' in english.text and 'value="sms"' in english.text
    with site.workspace.engine.begin() as c:
        c.execute(contacts.update().values(language="fr-FR"))
    french = await site.client.get(f"/p/{token}")
    assert "Faire une pause de trois mois" in french.text


async def test_choices_are_saved_and_audited(site: Site, contact: int) -> None:
    token = token_of(site.links.preferences_url(contact))
    csrf = csrf_token(site.workspace.secret, token)
    answer = await site.client.post(
        f"/p/{token}",
        data={"csrf": csrf, "frequency": "monthly", "channels": ["email"],
              "topics": ["sales", "not offered"]},
    )  # fmt: skip
    assert answer.status_code == 200
    assert "Your preferences are saved." in answer.text
    row = site.contact(contact)
    assert (row["frequency"], row["paused_until"], row["topics"]) == ("monthly", None, ["sales"])
    # Unticking SMS is an unsubscribe from SMS, through the one refusal path.
    assert (row["email_status"], row["sms_status"]) == ("subscribed", "unsubscribed")
    assert [e["type"] for e in site.events(channel="sms")] == ["unsubscribe"]
    assert [s["reason"] for s in site.suppressions()] == ["unsubscribe"]
    [audited] = site.audit(action="preferences")
    assert audited["details"]["unsubscribed"] == ["sms"]

    answer = await site.client.post(
        f"/p/{token}", data={"csrf": csrf, "frequency": "pause", "channels": ["email"]}
    )
    row = site.contact(contact)
    assert row["paused_until"] == to_db(NOW + timedelta(days=91))
    assert (row["frequency"], row["topics"]) == ("normal", [])
    assert "Paused until September 1, 2025" in answer.text


async def test_forms_need_their_csrf_value(site: Site, contact: int) -> None:
    token = token_of(site.links.preferences_url(contact))
    other = token_of(site.links.preferences_url(contact + 1))
    for csrf in (None, "", "forged", csrf_token(site.workspace.secret, other)):
        form = {"frequency": "pause", **({"csrf": csrf} if csrf is not None else {})}
        refused = await site.client.post(f"/p/{token}", data=form)
        assert refused.status_code == 403
        assert "reload the page" in refused.text and "<html" in refused.text  # a page, in words
    survey = token_of(site.links.survey_url(contact, "spring"))
    answer = await site.client.post(f"/s/{survey}", data={"reason": "too_many"})
    assert answer.status_code == 403
    await site.settled()
    row = site.contact(contact)
    assert (row["frequency"], row["paused_until"]) == ("normal", None)
    assert site.rows(survey_answers) == []
    assert site.audit() == []


async def test_a_refused_form_speaks_the_contact_language(site: Site, contact: int) -> None:
    """The workspace is in English; its French contact's refused form is in French."""
    with site.workspace.engine.begin() as c:
        c.execute(contacts.update().values(language="fr-FR"))
    token = token_of(site.links.preferences_url(contact))
    refused = await site.client.post(f"/p/{token}", data={"frequency": "pause"})
    assert refused.status_code == 403
    assert "rechargez la page" in refused.text and "reload the page" not in refused.text


async def test_a_bad_preference_link_or_choice(site: Site, contact: int) -> None:
    token = token_of(site.links.preferences_url(contact))
    expired = token_of(site.links.preferences_url(contact, expires_at=NOW - timedelta(days=1)))
    assert (await site.client.get(f"/p/{expired}")).status_code == 400
    assert (await site.client.get(f"/p/{token[:-1]}")).status_code == 400
    gone = token_of(site.links.preferences_url(contact + 99))
    assert (await site.client.get(f"/p/{gone}")).status_code == 404
    csrf = csrf_token(site.workspace.secret, token)
    bad = await site.client.post(f"/p/{token}", data={"csrf": csrf, "frequency": "daily"})
    assert bad.status_code == 400


HOSTILE = [
    "<script>alert('x')</script> too many <b>emails</b>",
    "'); DROP TABLE contacts; --",
    'Robert"); DELETE FROM survey_answers WHERE ("1"="1',
]


@pytest.mark.parametrize("text", HOSTILE)
async def test_survey_answers_are_stored_as_written_and_shown_escaped(
    site: Site, contact: int, text: str
) -> None:
    with site.workspace.engine.begin() as c:
        outbox_id = sent_message(c, contact, "<s1@news.example.com>", sent_at=NOW)
    token = token_of(site.links.survey_url(contact, "spring", message_id="<s1@news.example.com>"))
    page = await site.client.get(f"/s/{token}")
    assert "Why do we hear less from you?" in page.text
    for reason in ("too_many", "not_relevant", "bought_elsewhere", "no_longer_needed", "other"):
        assert f'value="{reason}"' in page.text
    csrf = csrf_token(site.workspace.secret, token)
    answer = await site.client.post(
        f"/s/{token}", data={"csrf": csrf, "reason": "other", "text": text}
    )
    assert answer.status_code == 200
    assert "Thank you" in answer.text
    assert text not in answer.text  # never as markup
    assert "&lt;script&gt;" in answer.text or "&#39;" in answer.text or "&#34;" in answer.text
    [stored] = site.rows(survey_answers)
    assert (stored["reason"], stored["text"], stored["outbox_id"]) == ("other", text, outbox_id)
    assert len(site.rows(contacts)) == 1
    with site.workspace.engine.connect() as c:
        assert survey_counts(c) == {"other": 1}
        assert [row["text"] for row in survey_texts(c)] == [text]
    assert [a["reason"] for a in site.audit(action="survey")] == ["other"]


async def test_a_survey_answer_needs_a_reason(site: Site, contact: int) -> None:
    token = token_of(site.links.survey_url(contact, "spring"))
    csrf = csrf_token(site.workspace.secret, token)
    for form in ({"csrf": csrf}, {"csrf": csrf, "reason": "because"}):
        answer = await site.client.post(f"/s/{token}", data=form)
        assert answer.status_code == 400
        assert "Choose a reason." in answer.text
    long = await site.client.post(
        f"/s/{token}", data={"csrf": csrf, "reason": "other", "text": "x" * 5001}
    )
    assert long.status_code == 400
    assert site.rows(survey_answers) == []


async def test_winback_survey_reports_the_answers(site: Site, contact: int, cli: CliRunner) -> None:
    token = token_of(site.links.survey_url(contact, "spring"))
    csrf = csrf_token(site.workspace.secret, token)
    for reason, text in (
        ("too_many", None),
        ("other", "[bold red]fake[/] \x1b[31mred\x1b[0m\nline two"),
    ):
        await site.client.post(
            f"/s/{token}", data={"csrf": csrf, "reason": reason, "text": text or ""}
        )
    shown = cli.invoke(app, ["survey", "-w", str(site.workspace.path)])
    assert shown.exit_code == 0, shown.output
    assert "1 answers" in shown.output  # the second answer replaced the first
    assert "[bold red]fake[/]" in shown.output  # not taken as markup
    assert "\x1b" not in shown.output and "\\x1b[31mred" in shown.output
    data = json.loads(cli.invoke(app, ["survey", "-w", str(site.workspace.path), "--json"]).output)
    assert data["reasons"] == {
        "too_many": 0,
        "not_relevant": 0,
        "bought_elsewhere": 0,
        "no_longer_needed": 0,
        "other": 1,
    }
    assert [row["text"] for row in data["texts"]] == [
        "[bold red]fake[/] \x1b[31mred\x1b[0m\nline two"
    ]
