"""The webhook tests' workspace (every provider configured), keys and people."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import serialization

from tests.builders import add_contact, day
from tests.web.conftest import Site, sent_message
from tests.web.webhooks.providers import (
    BREVO_TOKEN,
    MAILGUN_KEY,
    MESSAGE,
    NEWS_GROUP,
    POSTMARK_TOKEN,
    SENT,
    Keys,
)
from winback.workspace import Workspace


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


def configured(workspace: Workspace, keys: Keys, **settings: str) -> Workspace:
    """``workspace`` opened again with every webhook configured (and ``settings``, TOML
    values, set in ``[web]``)."""
    (workspace.path / "sns.pem").write_bytes(
        keys.certificate.public_bytes(serialization.Encoding.PEM)
    )
    config = workspace.path / "winback.toml"
    text = config.read_text(encoding="utf-8").replace(
        "[web]\n",
        "[web]\n"
        f'mailgun_signing_key = "{MAILGUN_KEY}"\n'
        f'sendgrid_public_key = "{keys.sendgrid_public}"\n'
        f'sendgrid_groups = {{"{NEWS_GROUP}" = "news"}}\n'
        'ses_certificate = "sns.pem"\n'
        f'postmark_token = "{POSTMARK_TOKEN}"\n'
        f'brevo_token = "{BREVO_TOKEN}"\n',
    )
    text = text.replace("\ntopics = []", '\ntopics = ["news", "offers"]')
    for key, value in settings.items():
        text = re.sub(rf"^{key} = .*$", f"{key} = {value}", text, flags=re.MULTILINE)
    config.write_text(text, encoding="utf-8")
    return Workspace.open(workspace.path)


@pytest.fixture
def workspace(workspace: Workspace, keys: Keys) -> Iterator[Workspace]:
    """The backend's workspace with every webhook configured."""
    opened = configured(workspace, keys)
    yield opened
    opened.close()


@pytest.fixture
def people(site: Site) -> dict[str, int]:
    """dave received MESSAGE (provider id ``prov-1``); erin is known by address only."""
    with site.workspace.engine.begin() as c:
        dave = add_contact(c, email="dave@example.com", created_at=day(2024, 1, 5))
        erin = add_contact(c, email="erin@example.com", created_at=day(2024, 1, 5))
        sent_message(c, dave, MESSAGE, sent_at=SENT, provider_id="prov-1")
    return {"dave": dave, "erin": erin}
