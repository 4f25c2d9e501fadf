"""The exports of the services users come from (tests/corpus/exports/, in their column
sets): each is recognised, says its own consent, and nothing invents one. One test per
case planted in the corpus."""

from __future__ import annotations

import json
import shutil
import zipfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import phonenumbers
import pytest
from phonenumbers import PhoneNumberFormat
from sqlalchemy import select
from typer.testing import CliRunner

from tests.ingest.two_paths import import_by_rows, report_view, two_workspaces, without_ids
from winback.cli import app
from winback.ingest import import_contact_files, import_contacts
from winback.ingest.kinds import recognise, textable, textable_all
from winback.store.schema import contact_scores, contacts, events
from winback.workspace import Workspace

CORPUS = Path(__file__).parent.parent / "corpus" / "exports"
MAILCHIMP = CORPUS / "mailchimp"
E164 = PhoneNumberFormat.E164
NOW = datetime.fromisoformat("2026-12-01T12:00:00+00:00")


def stored(workspace: Workspace) -> dict[str, dict[str, Any]]:
    with workspace.engine.connect() as connection:
        found = connection.execute(select(contacts)).mappings().all()
    return {row["email"] or row["phone"]: dict(row) for row in found}


def purchases(workspace: Workspace) -> list[dict[str, Any]]:
    with workspace.engine.connect() as connection:
        query = select(events).where(events.c.type == "purchase").order_by(events.c.id)
        return [dict(row) for row in connection.execute(query).mappings()]


def statuses(workspace: Workspace) -> dict[str, tuple[str, str]]:
    return {key: (row["email_status"], row["sms_status"]) for key, row in stored(workspace).items()}


def cli_json(cli: CliRunner, workspace: Workspace, *args: str) -> Any:
    result = cli.invoke(app, [*args, "--now", NOW.isoformat(), "--json", "-w", str(workspace.path)])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.fixture
def pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Workspace, Workspace]]:
    yield from two_workspaces(tmp_path, monkeypatch, lambda path: Workspace.init(path, "ecommerce"))


# Mailchimp ---------------------------------------------------------------------------


def test_mailchimp_subscribed_export_subscribes_emails_but_not_phones(
    workspace: Workspace, cli: CliRunner
) -> None:
    """The "Phone Number" merge field is no SMS consent, and Birthday (MM/DD, no year)
    rejects nobody: it is kept as the month and day, with no birth year."""
    path = MAILCHIMP / "subscribed_members_export_4f2a91c3b7.csv"
    report = cli_json(cli, workspace, "import", "contacts", str(path))
    assert report["kind"] == "Mailchimp subscribed export"
    assert (report["imported"], report["rejected"]) == (3, 0)
    found = stored(workspace)
    assert statuses(workspace) == {
        "ada.martin@example.com": ("subscribed", "none"),
        "bruno.keller@example.org": ("subscribed", "none"),
        "carla.nguyen@example.net": ("subscribed", "none"),
    }
    ada = found["ada.martin@example.com"]
    assert ada["phone"] == "+33611223344"
    assert ada["attributes"]["birthday"] == "--03-14" and ada["birth_year"] is None
    assert ada["country"] == "FR"
    assert ada["tags"] == ["Newsletter", "VIP"]
    assert ada["source_ids"] == ["mailchimp:112233445"]


def test_mailchimp_confirm_time_is_the_consent_evidence_and_dates_the_contact(
    workspace: Workspace,
) -> None:
    import_contacts(workspace, MAILCHIMP / "subscribed_members_export_4f2a91c3b7.csv", now=NOW)
    found = stored(workspace)
    ada, bruno = found["ada.martin@example.com"], found["bruno.keller@example.org"]
    assert ada["email_consent_at"] == datetime(2022, 3, 1, 9, 15, 2)  # CONFIRM_TIME
    assert ada["created_at"] == datetime(2022, 3, 1, 9, 12, 44)  # OPTIN_TIME
    assert ada["attributes"]["CONFIRM_IP"] == "203.0.113.7"
    # Single opt-in: no confirmation, the opt-in is the evidence.
    assert bruno["email_consent_at"] == datetime(2023, 6, 20, 18, 40)
    assert ada["modified_at"] == datetime(2024, 5, 17, 14, 3, 11)


def test_mailchimp_unsubscribed_export_unsubscribes_without_status_option(
    workspace: Workspace, cli: CliRunner
) -> None:
    path = MAILCHIMP / "unsubscribed_members_export_4f2a91c3b7.csv"
    report = cli_json(cli, workspace, "import", "contacts", str(path))
    assert report["kind"] == "Mailchimp unsubscribed export"
    assert statuses(workspace) == {"denis.fabre@example.com": ("unsubscribed", "none")}


def test_mailchimp_cleaned_export_marks_emails_bounced(workspace: Workspace) -> None:
    report = import_contacts(
        workspace, MAILCHIMP / "cleaned_members_export_4f2a91c3b7.csv", now=NOW
    )
    assert report.recognised == "Mailchimp cleaned export"
    assert statuses(workspace) == {"old.mailbox@example.org": ("bounced", "none")}


def test_an_unsubscribed_export_overrides_a_stored_subscription(
    workspace: Workspace, tmp_path: Path
) -> None:
    plain = tmp_path / "list.csv"
    plain.write_text("email,first name\ndenis.fabre@example.com,Denis\n", encoding="utf-8")
    import_contacts(workspace, plain, now=NOW)
    assert statuses(workspace)["denis.fabre@example.com"][0] == "subscribed"
    import_contacts(workspace, MAILCHIMP / "unsubscribed_members_export_4f2a91c3b7.csv", now=NOW)
    assert statuses(workspace)["denis.fabre@example.com"][0] == "unsubscribed"
    # ...and a later subscribed list never turns the refusal back.
    import_contacts(workspace, plain, now=NOW)
    assert statuses(workspace)["denis.fabre@example.com"][0] == "unsubscribed"


def test_mailchimp_zip_imports_its_three_files(
    workspace: Workspace, cli: CliRunner, tmp_path: Path
) -> None:
    archive = tmp_path / "members_export_4f2a91c3b7.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for path in sorted(MAILCHIMP.glob("*.csv"), reverse=True):
            zipped.write(path, path.name)
    reports = cli_json(cli, workspace, "import", "contacts", str(archive))
    assert [report["kind"] for report in reports] == [
        "Mailchimp subscribed export",
        "Mailchimp unsubscribed export",
        "Mailchimp cleaned export",
    ]
    assert reports[0]["file"].endswith(".zip:subscribed_members_export_4f2a91c3b7.csv")
    assert {key: email for key, (email, _) in statuses(workspace).items()} == {
        "ada.martin@example.com": "subscribed",
        "bruno.keller@example.org": "subscribed",
        "carla.nguyen@example.net": "subscribed",
        "denis.fabre@example.com": "unsubscribed",
        "old.mailbox@example.org": "bounced",
    }


def test_a_zip_without_csv_is_a_clear_error(
    workspace: Workspace, cli: CliRunner, tmp_path: Path
) -> None:
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("readme.pdf", b"%PDF-1.4")
    result = cli.invoke(app, ["import", "contacts", str(archive), "-w", str(workspace.path)])
    assert result.exit_code != 0
    assert "holds no CSV file" in result.output and "readme.pdf" in result.output
    assert "Traceback" not in result.output


def test_the_summary_names_the_kind(workspace: Workspace, cli: CliRunner) -> None:
    path = MAILCHIMP / "cleaned_members_export_4f2a91c3b7.csv"
    result = cli.invoke(
        app, ["import", "contacts", str(path), "--now", NOW.isoformat(), "-w", str(workspace.path)]
    )
    assert result.exit_code == 0, result.output
    assert "Mailchimp cleaned export" in result.output


# Brevo -------------------------------------------------------------------------------

BREVO = CORPUS / "brevo" / "export_contacts_fr.csv"


def test_brevo_blacklists_and_sms_only_for_mobiles(workspace: Workspace) -> None:
    report = import_contacts(workspace, BREVO, now=NOW)
    assert report.recognised == "Brevo contacts export"
    assert (report.read, report.rejected) == (5, 0)
    assert statuses(workspace) == {
        "elodie.faure@example.net": ("subscribed", "subscribed"),
        # A landline in the SMS attribute, not blacklisted: still no SMS.
        "gerard.lemaire@example.net": ("unsubscribed", "none"),
        "sophie.roux@example.org": ("subscribed", "subscribed"),
        "marc.petit@example.com": ("subscribed", "unsubscribed"),
    }
    found = stored(workspace)
    assert found["elodie.faure@example.net"]["first_name"] == "Élodie"
    assert found["elodie.faure@example.net"]["phone"] == "+33612345678"
    assert found["elodie.faure@example.net"]["created_at"] == datetime(2021, 1, 15, 10, 15)


def test_brevo_duplicate_with_the_newer_modified_time_wins(workspace: Workspace) -> None:
    """Sophie's newer record (Lyon) comes first in the file, the older (Nantes) after."""
    import_contacts(workspace, BREVO, now=NOW)
    sophie = stored(workspace)["sophie.roux@example.org"]
    assert sophie["city"] == "Lyon"
    assert sophie["modified_at"] == datetime(2026, 10, 20, 16, 45)
    assert sophie["source_ids"] == ["brevo:103", "brevo:105"]


def test_the_newest_record_wins_against_the_store(workspace: Workspace, tmp_path: Path) -> None:
    newer = tmp_path / "newer.csv"
    newer.write_text(
        "email,city,updated_at\nsophie.roux@example.org,Grenoble,2026-11-30 10:00:00\n",
        encoding="utf-8",
    )
    import_contacts(workspace, newer, now=NOW)
    import_contacts(workspace, BREVO, now=NOW)
    sophie = stored(workspace)["sophie.roux@example.org"]
    assert sophie["city"] == "Grenoble"
    assert sophie["last_name"] == "Roux"  # what the newer record lacked, the older gives
    assert sophie["modified_at"] == datetime(2026, 11, 30, 10)


def test_brevo_purchase_summary_is_a_dated_purchase(workspace: Workspace) -> None:
    """Decimal comma with a no-break space as thousands separator, dd/mm/yyyy date."""
    import_contacts(workspace, BREVO, now=NOW)
    ids = {row["id"]: key for key, row in stored(workspace).items()}
    found = {ids[e["contact_id"]]: (e["occurred_at"], e["amount"]) for e in purchases(workspace)}
    assert found == {
        "elodie.faure@example.net": (datetime(2026, 11, 2), 1234.5),
        "sophie.roux@example.org": (datetime(2026, 9, 28), 89.9),
    }
    # The summaries are not attributes any more.
    assert "MONTANT_TOTAL" not in (
        stored(workspace)["elodie.faure@example.net"]["attributes"] or {}
    )


def test_reimporting_a_summary_adds_nothing_and_a_newer_one_adds_the_growth(
    workspace: Workspace, tmp_path: Path
) -> None:
    import_contacts(workspace, BREVO, now=NOW)
    import_contacts(workspace, BREVO, now=NOW)
    assert len(purchases(workspace)) == 2
    later = tmp_path / "export_decembre.csv"
    text = BREVO.read_bytes().decode("cp1252")
    later.write_bytes(
        text.replace("02/11/2026;1\u00a0234,50", "30/11/2026;1\u00a0300,00").encode("cp1252")
    )
    import_contacts(workspace, later, now=NOW)
    amounts = sorted(e["amount"] for e in purchases(workspace))
    assert amounts == [65.5, 89.9, 1234.5]


def test_brevo_buyer_is_kept_by_the_purge_and_scored_as_a_customer(
    workspace: Workspace, cli: CliRunner
) -> None:
    """Élodie was created in 2021 and bought last month: the 3-year purge keeps her, and
    the score counts her as a customer; Marc (created 2020, never bought) is erased."""
    import_contacts(workspace, BREVO, now=NOW)
    purge = cli_json(cli, workspace, "purge", "--yes")
    assert purge["erased"] == 2  # Marc and Gérard
    left = stored(workspace)
    assert left["elodie.faure@example.net"]["erased_at"] is None
    assert left["sophie.roux@example.org"]["erased_at"] is None
    score = cli_json(cli, workspace, "score")
    assert score["stages"] == {"active": 2}, score
    with workspace.engine.connect() as connection:
        query = select(contact_scores.c.purchases, contact_scores.c.total_spend).join(
            contacts, contacts.c.id == contact_scores.c.contact_id
        )
        facts = {
            tuple(row) for row in connection.execute(query.where(contacts.c.email.is_not(None)))
        }
    assert facts == {(1, 1234.5), (1, 89.9)}


# Klaviyo and Shopify -----------------------------------------------------------------


def test_klaviyo_profiles_say_their_own_consent(workspace: Workspace) -> None:
    report = import_contacts(workspace, CORPUS / "klaviyo" / "profiles_export.csv", now=NOW)
    assert report.recognised == "Klaviyo profiles export"
    assert report.rejected == 0, report.by_reason
    assert statuses(workspace) == {
        "hugo.blanc@example.com": ("subscribed", "subscribed"),
        # NEVER_SUBSCRIBED is no consent; an SMS opt-in on a Paris landline is none.
        "ines.girard@example.org": ("none", "none"),
        "jules.moreau@example.net": ("unsubscribed", "none"),
    }
    hugo = stored(workspace)["hugo.blanc@example.com"]
    assert hugo["attributes"]["Country"] == "France"
    assert hugo["email_consent_at"] == datetime(2023, 4, 2, 10)
    assert hugo["source_ids"] == ["klaviyo:01HGW5K8YQ3M2ZP7T9B4C6D8E0"]


def test_shopify_customers_accepts_marketing_columns(workspace: Workspace) -> None:
    report = import_contacts(workspace, CORPUS / "shopify" / "customers_export.csv", now=NOW)
    assert report.recognised == "Shopify customers export"
    assert statuses(workspace) == {
        # SMS yes on a Nantes landline: none.
        "karim.haddad@example.com": ("subscribed", "none"),
        # A Canadian number can be fixed or mobile: the explicit opt-in is kept.
        "lena.schmidt@example.org": ("none", "subscribed"),
        "malo.perrin@example.net": ("subscribed", "none"),
    }
    karim = stored(workspace)["karim.haddad@example.com"]
    assert (karim["country"], karim["city"]) == ("FR", "Nantes")
    assert karim["source_ids"] == ["shopify:7429871236001"]


def test_shopify_totals_without_a_date_stay_attributes(workspace: Workspace) -> None:
    """No last order date in Shopify's customers export: no purchase is invented."""
    import_contacts(workspace, CORPUS / "shopify" / "customers_export.csv", now=NOW)
    karim = stored(workspace)["karim.haddad@example.com"]
    assert karim["attributes"]["Total Spent"] == "312.40"
    assert karim["attributes"]["Total Orders"] == "3"
    assert purchases(workspace) == []


# Suppression exports -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "kind", "expected"),
    [
        ("sendgrid/bounces.csv", "SendGrid bounces export", {"gone.user@example.com": "bounced"}),
        (
            "sendgrid/spam_reports.csv",
            "SendGrid spam reports export",
            {"angry.reader@example.org": "complained"},
        ),
        (
            "sendgrid/unsubscribes.csv",
            "SendGrid unsubscribes export",
            {"done.reading@example.net": "unsubscribed"},
        ),
        ("mailgun/bounces.csv", "Mailgun bounces export", {"no.such.box@example.com": "bounced"}),
        (
            "mailgun/unsubscribes.csv",
            "Mailgun unsubscribes export",
            {"quiet.now@example.org": "unsubscribed"},
        ),
        (
            "mailgun/complaints.csv",
            "Mailgun complaints export",
            {"spam.clicker@example.net": "complained"},
        ),
        (
            "postmark/suppressions.csv",
            "Postmark suppressions export",
            {
                "hard.bounce@example.com": "bounced",
                "reported.spam@example.org": "complained",
                "asked.out@example.net": "unsubscribed",
            },
        ),
    ],
)
def test_suppression_exports_refuse_their_addresses(
    workspace: Workspace, path: str, kind: str, expected: dict[str, str]
) -> None:
    report = import_contacts(workspace, CORPUS / path, now=NOW)
    assert report.recognised == kind
    assert report.rejected == 0, report.by_reason
    assert {key: email for key, (email, _) in statuses(workspace).items()} == expected


# Plain lists and the rules -----------------------------------------------------------


def test_a_plain_list_phone_is_not_sms_consent(workspace: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "clients.csv"
    path.write_text("email,phone\nnina@example.com,06 12 34 56 70\n", encoding="utf-8")
    report = import_contacts(workspace, path, now=NOW)
    assert report.as_dict()["kind"] == "contact list"
    assert statuses(workspace) == {"nina@example.com": ("subscribed", "none")}


def test_an_sms_opt_in_column_on_a_landline_gives_no_sms(
    workspace: Workspace, tmp_path: Path
) -> None:
    path = tmp_path / "clients.csv"
    path.write_text(
        "email,phone,sms_optin\n"
        "olga@example.com,06 12 34 56 71,yes\n"
        "paul@example.com,01 45 67 89 02,yes\n"
        "remi@example.com,06 12 34 56 72,no\n",
        encoding="utf-8",
    )
    import_contacts(workspace, path, now=NOW)
    assert statuses(workspace) == {
        "olga@example.com": ("subscribed", "subscribed"),
        "paul@example.com": ("subscribed", "none"),
        "remi@example.com": ("subscribed", "none"),
    }


def test_textable_numbers() -> None:
    assert textable("+33612345678")  # French mobile
    assert not textable("+33145678901")  # Paris landline
    assert not textable("+33970123456")  # VoIP
    assert textable("+16135550143")  # North America: fixed line or mobile


def test_textable_by_column_agrees_with_phonenumbers() -> None:
    """The column-wise check gives the library's answer on the example number of every
    type of every region phonenumbers knows (and on a few that are not numbers)."""
    numbers: list[str | None] = [None, "+999123", "+"]
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in phonenumbers.PhoneNumberType.values():
            example = phonenumbers.example_number_for_type(region, kind)
            if example is not None:
                numbers.append(phonenumbers.format_number(example, E164))
    expected = [bool(number) and textable(number) for number in numbers]
    assert textable_all(numbers) == expected
    assert 200 < sum(expected) < len(numbers)


def test_a_file_renamed_is_still_recognised(tmp_path: Path) -> None:
    renamed = tmp_path / "audience.csv"
    shutil.copy(MAILCHIMP / "cleaned_members_export_4f2a91c3b7.csv", renamed)
    header = renamed.read_text(encoding="utf-8").splitlines()[0].split(",")
    assert recognise(header).name == "mailchimp-cleaned"
    # Two columns a plain list may have: a service's export only by its name.
    assert recognise(["email", "created"], "signups.csv").name == "plain"
    assert recognise(["created", "email"], "unsubscribes.csv").name == "sendgrid-unsubscribes"


def test_import_contact_files_of_one_file_is_one_report(workspace: Workspace) -> None:
    reports = import_contact_files(workspace, CORPUS / "sendgrid" / "bounces.csv", now=NOW)
    assert [report.recognised for report in reports] == ["SendGrid bounces export"]


@pytest.mark.parametrize(
    "name",
    [
        "mailchimp/subscribed_members_export_4f2a91c3b7.csv",
        "mailchimp/unsubscribed_members_export_4f2a91c3b7.csv",
        "brevo/export_contacts_fr.csv",
        "klaviyo/profiles_export.csv",
        "shopify/customers_export.csv",
        "postmark/suppressions.csv",
    ],
)
def test_blocks_and_rows_import_each_export_alike(
    pair: tuple[Workspace, Workspace], name: str
) -> None:
    by_blocks, by_rows = pair
    path = CORPUS / name
    seen = []
    for workspace, report in (
        (by_blocks, import_contacts(by_blocks, path, now=NOW)),
        (by_rows, import_by_rows(by_rows, path, "contacts", now=NOW)),
    ):
        with workspace.engine.connect() as connection:
            rows = connection.execute(select(contacts)).mappings().all()
        bought = [(e["occurred_at"], e["amount"]) for e in purchases(workspace)]
        seen.append((report_view(report), without_ids(rows), bought))
    assert seen[0] == seen[1]


def test_a_bad_purchase_summary_keeps_the_contact_with_a_warning(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Only identity rejects a row: a junk total is left out and reported as a warning."""
    path = tmp_path / "export.csv"
    text = BREVO.read_bytes().decode("cp1252").replace("89,90", "n/a")
    path.write_bytes(text.encode("cp1252"))
    report = import_contacts(workspace, path, now=NOW)
    assert (report.read, report.rejected) == (5, 0)
    assert report.warnings >= 1 and report.warnings_file is not None
    with open(str(report.warnings_file), encoding="utf-8") as stream:
        warned = stream.read()
    assert "n/a" in warned
    assert "sophie.roux@example.org" in stored(workspace)
