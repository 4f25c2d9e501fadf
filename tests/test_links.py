"""Signed links: what the tracking server will accept, and what it must refuse."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from winback.domain import Channel
from winback.links import (
    BadToken,
    ClickToken,
    Links,
    OpenToken,
    PreferencesToken,
    SurveyToken,
    UnsubscribeToken,
)
from winback.workspace import Workspace

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
LINKS = Links(secret=bytes(range(32)), public_url="https://news.shop.example/")
OTHER_WORKSPACE = Links(secret=bytes(range(1, 33)), public_url="https://news.shop.example")
MESSAGE = "<m42.winback@shop.example>"


def token_of(url: str, prefix: str) -> str:
    assert url.startswith(f"https://news.shop.example/{prefix}/"), url
    return url.rsplit("/", 1)[1]


def test_every_kind_of_link_reads_back_what_it_was_built_with() -> None:
    click = token_of(LINKS.click_url(MESSAGE, "https://shop.example/sale?x=1&y=é"), "c")
    assert LINKS.verify_click(click, now=NOW) == ClickToken(
        MESSAGE, "https://shop.example/sale?x=1&y=é"
    )
    assert LINKS.verify_open(token_of(LINKS.open_url(MESSAGE), "o"), now=NOW) == OpenToken(MESSAGE)
    unsubscribe = token_of(LINKS.unsubscribe_url(7, Channel.SMS), "u")
    assert LINKS.verify_unsubscribe(unsubscribe, now=NOW) == UnsubscribeToken(7, Channel.SMS)
    preferences = token_of(LINKS.preferences_url(7), "p")
    assert LINKS.verify_preferences(preferences, now=NOW) == PreferencesToken(7)
    survey = token_of(LINKS.survey_url(7, "why-gone", message_id=MESSAGE), "s")
    assert LINKS.verify_survey(survey, now=NOW) == SurveyToken(7, "why-gone", MESSAGE)


def test_links_are_stable_so_the_header_and_the_footer_agree() -> None:
    assert LINKS.unsubscribe_url(7, Channel.EMAIL) == LINKS.unsubscribe_url(7, Channel.EMAIL)
    assert LINKS.unsubscribe_url(7, Channel.EMAIL) != LINKS.unsubscribe_url(8, Channel.EMAIL)


def test_a_token_from_another_workspace_is_refused() -> None:
    foreign = token_of(OTHER_WORKSPACE.click_url(MESSAGE, "https://evil.example"), "c")
    with pytest.raises(BadToken, match="another workspace"):
        LINKS.verify_click(foreign, now=NOW)


def test_a_forged_redirect_target_is_refused() -> None:
    # Take a genuine click token and put another URL in its payload, keeping the signature.
    genuine = token_of(LINKS.click_url(MESSAGE, "https://shop.example/sale"), "c")
    evil = token_of(LINKS.click_url(MESSAGE, "https://evil.example/phish"), "c")
    spliced = evil.split(".")[0] + "." + genuine.split(".")[1]
    with pytest.raises(BadToken, match="signature does not match"):
        LINKS.verify_click(spliced, now=NOW)


@pytest.mark.parametrize("broken", ["", ".", "abc", "abc.", ".abc", "é.é", "a.b.c"])
def test_malformed_tokens_are_refused(broken: str) -> None:
    with pytest.raises(BadToken):
        LINKS.verify_open(broken, now=NOW)


@given(data=st.data())
def test_any_altered_or_truncated_token_is_refused(data: st.DataObject) -> None:
    token = token_of(LINKS.click_url(MESSAGE, "https://shop.example/sale"), "c")
    position = data.draw(st.integers(0, len(token) - 1))
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
    replacement = data.draw(st.sampled_from(alphabet).filter(lambda c: c != token[position]))
    altered = token[:position] + replacement + token[position + 1 :]
    with pytest.raises(BadToken):
        LINKS.verify_click(altered, now=NOW)
    with pytest.raises(BadToken):
        LINKS.verify_click(token[:position], now=NOW)


def test_a_token_only_opens_the_page_it_was_made_for() -> None:
    open_token = token_of(LINKS.open_url(MESSAGE), "o")
    with pytest.raises(BadToken, match="not for the click link"):
        LINKS.verify_click(open_token, now=NOW)
    unsubscribe = token_of(LINKS.unsubscribe_url(7, Channel.EMAIL), "u")
    with pytest.raises(BadToken, match="not for the preferences link"):
        LINKS.verify_preferences(unsubscribe, now=NOW)


def test_unsubscribe_links_keep_working_for_years() -> None:
    token = token_of(LINKS.unsubscribe_url(7, Channel.EMAIL), "u")
    later = NOW + timedelta(days=10 * 365)
    assert LINKS.verify_unsubscribe(token, now=later) == UnsubscribeToken(7, Channel.EMAIL)


def test_a_link_with_an_expiry_is_refused_once_it_has_passed() -> None:
    url = LINKS.preferences_url(7, expires_at=NOW + timedelta(days=30))
    token = token_of(url, "p")
    assert LINKS.verify_preferences(token, now=NOW + timedelta(days=29)).contact_id == 7
    with pytest.raises(BadToken, match="expired on 2026-04-01"):
        LINKS.verify_preferences(token, now=NOW + timedelta(days=30))


def test_only_web_links_can_be_click_tracked() -> None:
    with pytest.raises(ValueError, match="only http"):
        LINKS.click_url(MESSAGE, "javascript:alert(1)")


def test_html_links_are_rewritten_and_the_pixel_added() -> None:
    html = (
        "<html><body>"
        '<a href="https://shop.example/sale?a=1&amp;b=2" class="cta">Soldes</a>'
        "<a class='x' href='http://shop.example/old'>Ancien</a>"
        "<A HREF=https://shop.example/caps>Caps</A>"
        '<a href="mailto:help@shop.example">Écrire</a><a href="tel:+33100000000">Appeler</a>'
        '<a href="#top">Haut</a><a href="/relative">Relatif</a>'
        '<a href="https://news.shop.example/u/TOKEN">Se désinscrire</a>'
        "</body></html>"
    )
    tracked = LINKS.track_html(html, MESSAGE)

    hrefs = re.findall(r'(?i)href="([^"]*)"', tracked)
    clicks = [h for h in hrefs if h.startswith("https://news.shop.example/c/")]
    targets = [LINKS.verify_click(h.rsplit("/", 1)[1], now=NOW).url for h in clicks]
    assert targets == [
        "https://shop.example/sale?a=1&b=2",
        "http://shop.example/old",
        "https://shop.example/caps",
    ]
    for kept in ("mailto:help@shop.example", "tel:+33100000000", "#top", "/relative"):
        assert f'href="{kept}"' in tracked
    assert 'href="https://news.shop.example/u/TOKEN"' in tracked  # has its own token
    assert 'class="cta"' in tracked and ">Soldes</a>" in tracked
    pixel = tracked.split('<img src="', 1)[1].split('"', 1)[0]
    assert LINKS.verify_open(pixel.rsplit("/", 1)[1], now=NOW).message_id == MESSAGE
    assert tracked.endswith('height:1px"></body></html>')


def test_text_links_are_rewritten_without_their_punctuation() -> None:
    text = "Voir https://shop.example/sale. Ou (https://shop.example/b), ou <https://x.example/c>!"
    tracked = LINKS.track_text(text, MESSAGE)

    assert "shop.example" not in tracked.replace("news.shop.example", "")
    pieces = tracked.split("https://news.shop.example/c/")
    assert pieces[0] == "Voir "
    assert pieces[1].endswith(". Ou (") and pieces[2].endswith("), ou <")
    assert pieces[3].endswith(">!")
    tokens = re.findall(r"/c/([\w-]+\.[\w-]+)", tracked)
    urls = [LINKS.verify_click(token, now=NOW).url for token in tokens]
    assert urls == ["https://shop.example/sale", "https://shop.example/b", "https://x.example/c"]


def test_a_workspace_signs_with_its_secret_under_its_public_url(
    sqlite_workspace: Workspace,
) -> None:
    links = Links.of(sqlite_workspace)
    assert links.secret == sqlite_workspace.secret
    assert links.open_url(MESSAGE).startswith("http://127.0.0.1:8025/o/")


def test_tracked_links_carry_utm_parameters_but_keep_the_marketers_own() -> None:
    from urllib.parse import parse_qs, urlsplit

    from winback.links import with_utm

    utm = {"utm_source": "winback", "utm_medium": "email", "utm_campaign": "spring",
           "utm_content": "miss-you"}  # fmt: skip
    assert with_utm("https://shop.example.com/", utm) == (
        "https://shop.example.com/?utm_source=winback&utm_medium=email&utm_campaign=spring"
        "&utm_content=miss-you"
    )
    kept = urlsplit(with_utm("https://shop.example.com/p?id=3&utm_campaign=own#x", utm))
    assert parse_qs(kept.query)["utm_campaign"] == ["own"]
    assert parse_qs(kept.query)["id"] == ["3"] and kept.fragment == "x"
    links = Links(secret=bytes(range(32)), public_url="https://t.example.com")
    body = links.track_html('<a href="https://shop.example.com/sale">x</a>', "<m1@example.com>",
                            utm=utm, pixel=False)  # fmt: skip
    token = body.split("/c/")[1].split('"')[0]
    target = links.verify_click(token, now=datetime(2026, 1, 1, tzinfo=UTC)).url
    assert "utm_content=miss-you" in target and target.startswith("https://shop.example.com/sale?")
    # The workspace's own pages and mailto: links are left alone.
    own = links.track_text("https://t.example.com/u/abc mailto:a@example.com", "<m1@example.com>",
                           utm=utm)  # fmt: skip
    assert own == "https://t.example.com/u/abc mailto:a@example.com"
