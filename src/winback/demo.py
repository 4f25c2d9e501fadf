"""A realistic synthetic base for the demo and the benchmarks.

Contacts sign up over three years; each has a hidden purchase rate and a hidden moment
after which they stop buying (the buy-till-you-die story the models tell), an
engagement level for opens and clicks, and a mail client (a share of them behind Apple
Mail Privacy Protection, whose prefetch opens come a second after delivery). A newsletter
goes out every four weeks. Everything is drawn with NumPy in whole arrays, so a million
contacts and twenty million events take seconds, and written with pyarrow.

A few rows are broken on purpose (an invalid email, an unknown event type) so that the
demo shows the quarantine at work.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from winback.clock import utcnow
from winback.ingest import ImportReport, import_contacts, import_events
from winback.ingest.pipeline import ProgressCallback
from winback.workspace import Workspace

FIRST_NAMES = np.array(
    [
        "Camille",
        "Léa",
        "Manon",
        "Chloé",
        "Inès",
        "Louise",
        "Jade",
        "Emma",
        "Zoé",
        "Anaïs",
        "Lucas",
        "Hugo",
        "Louis",
        "Nathan",
        "Théo",
        "Jules",
        "Arthur",
        "Noé",
        "Raphaël",
        "Gabriel",
        "Olivia",
        "Amelia",
        "Isla",
        "Jack",
        "Oliver",
        "Harry",
        "Sophie",
        "Thomas",
        "Marie",
        "Éloïse",
    ]
)
LAST_NAMES = np.array(
    [
        "Martin",
        "Bernard",
        "Dubois",
        "Thomas",
        "Robert",
        "Richard",
        "Petit",
        "Durand",
        "Leroy",
        "Moreau",
        "Simon",
        "Laurent",
        "Lefèvre",
        "Michel",
        "Garcia",
        "David",
        "Bertrand",
        "Roux",
        "Vincent",
        "Fournier",
        "Smith",
        "Jones",
        "Taylor",
        "Brown",
        "Müller",
        "Peeters",
        "Janssens",
    ]
)
COUNTRIES = np.array(["FR", "BE", "CH", "GB", "LU"])
COUNTRY_WEIGHTS = np.array([0.72, 0.12, 0.07, 0.06, 0.03])
INTERESTS = np.array(["mode", "maison", "sport", "beauté", "enfants", "high-tech", "jardin"])
DOMAINS = np.array(["example.com", "example.org", "example.net", "mail.example", "example.fr"])

CAMPAIGN_EVERY = timedelta(weeks=4)
HISTORY = timedelta(days=3 * 365)


@dataclass
class DemoFiles:
    contacts: Path
    events: Path
    contact_rows: int
    event_rows: int


def generate(
    folder: Path,
    *,
    contacts: int,
    now: datetime,
    seed: int = 7,
    formats: tuple[str, ...] = ("csv",),
) -> DemoFiles:
    """Write ``contacts.csv`` and ``events.csv`` (and/or ``.parquet``) into ``folder``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    end = now.astimezone(UTC).timestamp()
    start = end - HISTORY.total_seconds()
    n = contacts

    created = start + rng.random(n) * (end - start - 86_400)
    # Buy-till-you-die: a purchase rate per day from a gamma, a dropout per purchase.
    rate = rng.gamma(0.6, 1 / 60, n)
    dropout = rng.beta(1.0, 3.0, n)
    engagement = rng.beta(1.2, 4.0, n)
    apple = rng.random(n) < 0.35
    lifetime_purchases = rng.geometric(np.clip(dropout, 0.02, 1.0))
    gap = rng.exponential(1 / np.maximum(rate, 1e-6))
    death = np.minimum(created + lifetime_purchases * gap * 86_400, end)

    contact_table = _contacts(rng, n, created, apple)
    events = _events(rng, n, created, death, rate, engagement, apple, start, end)
    event_table = _event_table(events, contact_table)

    written = {}
    for name, table in (("contacts", contact_table), ("events", event_table)):
        for fmt in formats:
            path = folder / f"{name}.{fmt}"
            if fmt == "csv":
                pacsv.write_csv(table, path)
            else:
                pq.write_table(table, path, compression="zstd")
            written[name] = path
    return DemoFiles(
        written["contacts"], written["events"], contact_table.num_rows, event_table.num_rows
    )


def _contacts(rng: np.random.Generator, n: int, created: np.ndarray, apple: np.ndarray) -> pa.Table:
    first = FIRST_NAMES[rng.integers(0, len(FIRST_NAMES), n)]
    last = LAST_NAMES[rng.integers(0, len(LAST_NAMES), n)]
    ids = np.arange(n)
    domain = DOMAINS[ids % len(DOMAINS)]
    emails = np.char.add(
        np.char.add(np.char.add(np.char.lower(_ascii(first)), "."), ids.astype(str)), "@"
    )
    emails = np.char.add(emails, domain).astype(object)
    # A few addresses are broken, as in every real export.
    for index in np.flatnonzero(rng.random(n) < 0.002):
        emails[index] = emails[index].replace("@", " at ")
    has_phone = rng.random(n) < 0.6
    phones = np.where(has_phone, np.char.add("+336", (10_000_000 + ids).astype(str)), "")
    country = COUNTRIES[rng.choice(len(COUNTRIES), n, p=COUNTRY_WEIGHTS)]
    language = np.where(country == "GB", "en", "fr")
    status = np.where(rng.random(n) < 0.05, "unsubscribed", "subscribed")
    status = np.where(rng.random(n) < 0.015, "cleaned", status)
    sms_optin = np.where(has_phone & (rng.random(n) < 0.7), "yes", "no")
    birth_year = rng.integers(1950, 2006, n)
    tags = np.where(apple, "ios", "")
    interests = np.char.add(
        np.char.add(INTERESTS[rng.integers(0, 7, n)], ";"), INTERESTS[rng.integers(0, 7, n)]
    )
    return pa.table(
        {
            "email": pa.array(emails.astype(str)),
            "first_name": pa.array(first),
            "last_name": pa.array(last),
            "phone": pa.array(phones),
            "country": pa.array(country),
            "language": pa.array(language),
            "birth_year": pa.array(birth_year),
            "interests": pa.array(interests),
            "tags": pa.array(tags),
            "created_at": pa.array((created * 1e6).astype("int64"), pa.timestamp("us", tz="UTC")),
            "status": pa.array(status),
            "sms_optin": pa.array(sms_optin),
        }
    )


def _ascii(names: np.ndarray) -> np.ndarray:
    table = str.maketrans("éèëïîôöüçÉ", "eeeiioouce")
    return np.array([name.translate(table) for name in names.tolist()])


def _events(
    rng: np.random.Generator,
    n: int,
    created: np.ndarray,
    death: np.ndarray,
    rate: np.ndarray,
    engagement: np.ndarray,
    apple: np.ndarray,
    start: float,
    end: float,
) -> dict[str, np.ndarray]:
    parts: list[dict[str, np.ndarray]] = []
    step = CAMPAIGN_EVERY.total_seconds()
    campaigns = np.arange(start + step, end, step)
    # Deliveries: every campaign after the contact signed up.
    first_campaign = np.searchsorted(campaigns, created)
    counts = len(campaigns) - first_campaign
    who = np.repeat(np.arange(n), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    campaign_index = np.repeat(first_campaign, counts) + offsets
    delivered_at = campaigns[campaign_index] + rng.random(len(who)) * 600
    parts.append(_part(who, 1, delivered_at, campaign_index))
    # Apple MPP fetches every message a second after delivery, open or not.
    machine = apple[who]
    parts.append(_part(who[machine], 2, delivered_at[machine] + 1, campaign_index[machine]))
    # Human opens while the contact is still alive, then clicks on some of them.
    alive = delivered_at < death[who]
    human = alive & (rng.random(len(who)) < engagement[who])
    open_at = delivered_at[human] + rng.exponential(20_000, human.sum()) + 120
    parts.append(_part(who[human], 2, open_at, campaign_index[human]))
    clicked = rng.random(human.sum()) < 0.25
    parts.append(
        _part(who[human][clicked], 3, open_at[clicked] + 30, campaign_index[human][clicked])
    )
    # Purchases and visits: Poisson processes until the contact drops out.
    span_days = np.maximum(death - created, 0) / 86_400
    for code, multiplier in ((4, 1.0), (5, 2.5)):
        count = rng.poisson(rate * multiplier * span_days)
        buyer = np.repeat(np.arange(n), count)
        at = created[buyer] + rng.random(len(buyer)) * (death[buyer] - created[buyer])
        parts.append(_part(buyer, code, at, np.full(len(buyer), -1)))
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def _part(
    who: np.ndarray, code: int, at: np.ndarray, campaign: np.ndarray
) -> dict[str, np.ndarray]:
    return {
        "who": who,
        "code": np.full(len(who), code, dtype=np.int8),
        "at": at,
        "campaign": campaign,
    }


_TYPES = np.array(["", "delivered", "open", "click", "purchase", "visit", "teleport"])
_CHANNELS = np.array(["", "email", "email", "email", "web", "web", "email"])


def _event_table(events: dict[str, np.ndarray], contacts: pa.Table) -> pa.Table:
    order = np.argsort(events["at"], kind="stable")
    who, code, at, campaign = (events[key][order] for key in ("who", "code", "at", "campaign"))
    # One row in ten thousand has a type no importer knows, for the quarantine.
    code = np.where(np.arange(len(code)) % 10_007 == 5_003, 6, code)
    emails = contacts.column("email").to_numpy(zero_copy_only=False)
    rng = np.random.default_rng(len(code))
    amount = np.where(code == 4, np.round(rng.gamma(3.0, 18.0, len(code)) + 5, 2), np.nan)
    campaign_names = np.where(campaign >= 0, np.char.add("news-", campaign.astype(str)), "")
    return pa.table(
        {
            "email": pa.array(emails[who]),
            "type": pa.array(_TYPES[code]),
            "occurred_at": pa.array((at * 1e6).astype("int64"), pa.timestamp("us", tz="UTC")),
            "channel": pa.array(_CHANNELS[code]),
            "amount": pa.array(amount, from_pandas=True),
            "campaign": pa.array(campaign_names),
        }
    )


def demo_now() -> datetime:
    """The demo's 'today', for the command to pass: the real date at midnight UTC."""
    today = utcnow().date()
    return datetime(today.year, today.month, today.day, tzinfo=UTC)


def first_address(contacts_file: Path) -> str:
    """An address from the generated contacts, for the demo's closing hint."""
    with contacts_file.open(encoding="utf-8") as stream:
        stream.readline()
        return stream.readline().split(",")[0].strip('"')


@dataclass
class Demo:
    files: DemoFiles
    reports: list[ImportReport]
    first_address: str


def build_demo(
    directory: Path,
    *,
    contacts: int,
    now: datetime,
    seed: int = 7,
    progress: ProgressCallback | None = None,
) -> Demo:
    """Generate a base into ``directory/data``, make ``directory`` a fresh ecommerce
    workspace and import the base into it, as of ``now`` (aware)."""
    files = generate(directory / "data", contacts=contacts, now=now, seed=seed)
    Workspace.init(directory, "ecommerce", force=True).close()
    workspace = Workspace.open(directory)
    try:
        reports = [
            import_contacts(workspace, files.contacts, now=now, progress=progress),
            import_events(workspace, files.events, now=now, progress=progress),
        ]
    finally:
        workspace.close()
    return Demo(files, reports, first_address(files.contacts))
