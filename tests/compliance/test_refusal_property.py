"""The invariant of refusals, checked by hypothesis: any mix of contact imports, ESP
webhooks (Postmark's documented payloads, through the real web app via httpx) and
suppressions never turns a refused address back into a subscribed one, under any
spelling (case, Unicode or punycode domain), and keeps it on the list under every one."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from tests.web.conftest import NOW, open_site
from winback.addresses import normalise_email
from winback.compliance.suppression import is_suppressed, load_suppressions
from winback.compliance.suppression_list import add_suppression
from winback.domain import ChannelStatus
from winback.ingest.contacts import import_contacts
from winback.store.schema import contacts
from winback.workspace import ENV_DATABASE_URL, Workspace

TOKEN = "pm-webhook-secret"
# Each person under the spellings their address arrives in.
SPELLINGS = {
    "jo": (
        "jo@bücher.example.com",
        "Jo@BÜCHER.Example.com",
        "jo@xn--bcher-kva.example.com",
        "JO@XN--BCHER-KVA.EXAMPLE.COM",
    ),
    "lea": ("lea@café.example.org", "Lea@xn--caf-dma.example.org"),
    "bob": ("bob@example.net", "BOB@Example.NET"),
}

people = st.sampled_from(sorted(SPELLINGS))
spelling = st.integers(min_value=0, max_value=3)
operation = st.one_of(
    st.tuples(st.just("import"), people, spelling, st.sampled_from(["", "subscribed",
                                                                   "unsubscribed"])),
    st.tuples(st.just("webhook"), people, spelling, st.sampled_from(["unsubscribe", "bounce"])),
    st.tuples(st.just("suppress"), people, spelling, st.sampled_from(["unsubscribe", "manual"])),
)  # fmt: skip


def _address(person: str, index: int) -> str:
    forms = SPELLINGS[person]
    return forms[index % len(forms)]


def _postmark(kind: str, address: str, n: int) -> dict[str, Any]:
    at = (NOW - timedelta(minutes=60 - n)).strftime("%Y-%m-%dT%H:%M:%SZ")
    if kind == "bounce":
        return {"RecordType": "Bounce", "ID": 4323372036854775000 + n, "Type": "HardBounce",
                "TypeCode": 1, "Name": "Hard bounce", "MessageID": f"prov-{n}",
                "Email": address, "BouncedAt": at, "Inactive": True}  # fmt: skip
    return {"RecordType": "SubscriptionChange", "MessageID": f"prov-{n}", "ChangedAt": at,
            "Recipient": address, "Origin": "Recipient", "SuppressSending": True,
            "SuppressionReason": "ManualSuppression"}  # fmt: skip


async def _play(
    workspace: Workspace, steps: list[tuple[str, str, int, str]]
) -> tuple[set[str], set[str]]:
    """Run the steps; returns the people who refused, and those put on the list (who
    refused, or whom the user suppressed by hand)."""
    refused: set[str] = set()
    listed: set[str] = set()
    folder = Path(tempfile.mkdtemp(dir=workspace.path))
    async for site in open_site(workspace):
        for n, (kind, person, index, option) in enumerate(steps):
            address = _address(person, index)
            if kind == "import":
                header = "email,status" if option else "email"
                row = f"{address},{option}" if option else address
                path = folder / f"contacts-{n}.csv"
                path.write_text(f"{header}\n{row}\n", encoding="utf-8")
                import_contacts(workspace, path, now=NOW)
                if option == "unsubscribed":
                    refused.add(person)
            elif kind == "webhook":
                answer = await site.client.post(
                    "/webhooks/postmark",
                    json=_postmark(option, address, n),
                    headers={"Authorization": f"Bearer {TOKEN}"},
                )
                assert answer.status_code == 200, answer.text
                await site.settled()
                refused.add(person)
            else:
                add_suppression(workspace, address, reason=option, now=NOW)
                if option != "manual":
                    refused.add(person)
                listed.add(person)
    return refused, listed | refused


@pytest.mark.slow
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(operation, min_size=1, max_size=8))
def test_no_mix_turns_a_refusal_back(
    steps: list[tuple[str, str, int, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_DATABASE_URL, raising=False)
    with tempfile.TemporaryDirectory() as folder:
        workspace = Workspace.init(Path(folder) / "ws", "ecommerce")
        try:
            config = workspace.path / "winback.toml"
            text = config.read_text(encoding="utf-8")
            config.write_text(
                text.replace("[web]\n", f'[web]\npostmark_token = "{TOKEN}"\n'), encoding="utf-8"
            )
            workspace.close()
            workspace = Workspace.open(workspace.path)
            refused, listed_people = asyncio.run(_play(workspace, steps))
            with workspace.engine.connect() as connection:
                statuses = dict(
                    connection.execute(select(contacts.c.email, contacts.c.email_status)).all()
                )
                listed = load_suppressions(connection, workspace, ["email"])
                for person in listed_people:
                    for form in SPELLINGS[person]:
                        assert listed.blocks("email", normalise_email(form)), (form, steps)
                        assert is_suppressed(connection, workspace, "email", normalise_email(form))
                for person in refused:
                    canonical = normalise_email(SPELLINGS[person][0])
                    assert statuses.get(canonical) != ChannelStatus.SUBSCRIBED, (person, steps)
                # Everyone stored is stored in the canonical form.
                assert all(email == normalise_email(email) for email in statuses)
        finally:
            workspace.close()
