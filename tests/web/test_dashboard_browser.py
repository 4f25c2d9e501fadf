"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven by
Playwright) against ``winback serve`` on loopback: log in, open every page on a scored
base with a played journey, check that each chart is drawn with its data, that the
console shows no error and that no request leaves the server; the wrong password and a
missing CSRF value are refused. A screenshot of each page goes to the test's folder."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.channels.smtp_server import free_port
from tests.web.test_serve import start_server
from winback.cli import app
from winback.clock import utcnow
from winback.demo import demo_now, first_address, generate
from winback.web.auth import add_user
from winback.workspace import Workspace

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PASSWORD = "correct horse battery"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def _browser_or_skip() -> Any:
    required = os.environ.get("CI") == "true" or os.environ.get("WINBACK_REQUIRE_BROWSER") == "1"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if required:
            pytest.fail("playwright is not installed (make install) and CI needs it")
        pytest.skip("playwright is not installed")
    if not Path(CHROMIUM).exists():
        if required:
            pytest.fail("chromium is missing: apt-get install chromium (.ci/run does)")
        pytest.skip("chromium is missing (apt-get install chromium)")
    return sync_playwright


@pytest.fixture
def played(sqlite_workspace: Workspace) -> Workspace:
    """A synthetic shop of 300 contacts up to today, scored, its journey started."""
    ws = sqlite_workspace
    runner = CliRunner()
    files = generate(ws.path / "data", contacts=300, now=demo_now(), seed=5)
    w = ["-w", str(ws.path)]
    for words in (
        ["import", "contacts", str(files.contacts)],
        ["import", "events", str(files.events)],
        ["score"],
        ["journey", "new"],
        ["journey", "add", str(ws.path / "journeys" / "winback.yaml")],
        ["journey", "enroll", "winback"],
        ["run", "--dry-run"],
    ):
        result = runner.invoke(app, [*words, *w])
        assert result.exit_code == 0, f"{words}: {result.output}"
    add_user(ws, "boss@example.com", PASSWORD, utcnow())
    return ws


@pytest.fixture
def server(played: Workspace) -> Iterator[str]:
    port = free_port()
    process = start_server(played, port, played.path / "serve.log")
    yield f"http://127.0.0.1:{port}"
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)


def test_every_page_draws_its_charts_in_a_real_browser(
    played: Workspace, server: str, tmp_path: Path
) -> None:
    sync_playwright = _browser_or_skip()
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        outside: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on(
            "request", lambda r: outside.append(r.url) if not r.url.startswith(server) else None
        )

        page.goto(f"{server}/dashboard")
        assert page.url.endswith("/dashboard/login")
        page.fill("input[name=email]", "boss@example.com")
        page.fill("input[name=password]", "not the password")
        page.click("button")
        assert page.locator("p.error").count() == 1
        page.fill("input[name=email]", "boss@example.com")
        page.fill("input[name=password]", PASSWORD)
        page.click("button")
        page.wait_for_url(f"{server}/dashboard")
        errors.clear()  # the refused login's 401 is the one error expected

        for path, name in (
            ("", "base"),
            ("/journeys", "journeys"),
            ("/deliverability", "deliverability"),
            ("/survey", "survey"),
        ):
            page.goto(f"{server}/dashboard{path}")
            charts = page.locator("div.chart").count()
            assert charts >= 1, name
            page.wait_for_function(
                f"document.querySelectorAll('div.chart .main-svg').length >= {charts}"
            )
            drawn = page.evaluate(
                "[...document.querySelectorAll('div.chart')].map(c => c.data.length)"
            )
            assert all(traces > 0 for traces in drawn), (name, drawn)
            page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
            if name == "base":
                stages = page.evaluate("document.getElementById('chart-1').data.map(t => t.name)")
                assert "dormant" in " ".join(stages) or "dormant" in " ".join(stages).lower()
                counted = page.evaluate(
                    "document.getElementById('chart-1').data"
                    ".reduce((n, t) => n + t.y.reduce((a, b) => a + b, 0), 0)"
                )
                assert counted > 0
                # The erosion chart: the base's lost share and the usual 25 % a year,
                # month by month over the last 12 months.
                erosion = page.evaluate(
                    "document.getElementById('chart-2').data"
                    ".map(t => [t.x.length, t.y[t.y.length - 1]])"
                )
                assert [points for points, _ in erosion] == [12, 12]
                assert 20 < erosion[1][1] <= 25
            if name == "journeys":
                assert page.locator("section[data-journey=winback]").count() == 1
                sent = page.evaluate("document.getElementById('chart-1').data[0].y")
                assert sum(sent) > 0

        page.goto(
            f"{server}/dashboard/contact?q=" + first_address(played.path / "data" / "contacts.csv")
        )
        page.screenshot(path=str(shots / "contact.png"), full_page=True)
        assert page.locator("form[action$='/contact/erase']").count() == 1

        refused = page.request.post(
            f"{server}/dashboard/logout", form={"csrf": "forged"}, max_redirects=0
        )
        assert refused.status == 403
        assert not errors, errors
        assert not outside, outside
        browser.close()
    assert sorted(p.name for p in shots.iterdir()) == [
        "base.png", "contact.png", "deliverability.png", "journeys.png", "survey.png",
    ]  # fmt: skip
