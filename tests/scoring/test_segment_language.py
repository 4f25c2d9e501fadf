"""The segment language: which contacts an expression selects, on a hand-built base,
what a wrong expression says, and a property test against a plain Python reading of
the same expression over the exported rows."""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, insert, select, text
from typer.testing import CliRunner

from tests.builders import add_contact, day
from winback.cli import app
from winback.scoring.segment_conditions import SegmentError, render
from winback.scoring.segment_language import parse_expression
from winback.scoring.segments import (
    count_segment,
    export_columns,
    export_segment,
    load_segment,
    parse_conditions,
    save_segment,
    segment_query,
)
from winback.store.schema import contact_scores, enrollments, journeys, segments, survey_answers
from winback.workspace import ENV_DATABASE_URL, Workspace

NOW = day(2025, 6, 1, 12)
PARIS = "Europe/Paris"
EXAMPLE = (
    "stage in (dormant, at_risk) and (p_alive < 0.3 or days_inactive > 365) and not tags "
    'contains "vip" and last_purchase_at < 180 days ago and country = "FR"'
)


def _ago(days: int, hour: int = 12) -> datetime:
    return (NOW - timedelta(days=days)).replace(hour=hour)


def _naive(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.astimezone(UTC).replace(tzinfo=None)


def _scores(c: Connection, contact_id: int, **values: Any) -> None:
    """A row of scores as ``winback score`` writes it, with the values a test needs."""
    for key in ("last_interaction_at", "last_purchase_at", "first_purchase_at"):
        values[key] = _naive(values.get(key))
    c.execute(
        insert(contact_scores),
        {
            "contact_id": contact_id,
            "scored_at": _naive(NOW),
            "stage_since": date(2025, 1, 1),
            **values,
        },
    )


def _journey(c: Connection, name: str) -> int:
    row: dict[str, Any] = {"name": name, "source": "", "definition": {}, "created_at": _naive(NOW)}
    result = c.execute(
        insert(journeys).returning(journeys.c.id), {**row, "updated_at": row["created_at"]}
    )
    return int(result.scalar_one())


def _enrol(c: Connection, journey: int, contact: int, status: str, outcome: str | None) -> None:
    c.execute(
        insert(enrollments),
        {
            "journey_id": journey,
            "contact_id": contact,
            "holdout": False,
            "status": status,
            "outcome": outcome,
            "enrolled_at": _naive(_ago(60)),
        },
    )


# The scores of build_base's contacts (gus has none: never scored).
SCORES: dict[str, dict[str, Any]] = {
    "ana": {
        "stage": "dormant",
        "p_alive": 0.2,
        "purchases": 3,
        "total_spend": 420.0,
        "expected_value_12m": 35.5,
        "last_interaction_at": _ago(300),
        "last_purchase_at": _ago(300),
        "first_purchase_at": _ago(900),
        "recency_score": 2,
        "monetary_score": 5,
    },
    # last interaction 23:30 UTC on 2024-04-26: the 27th in Paris, 400 days before NOW
    "ben": {
        "stage": "dormant",
        "p_alive": 0.5,
        "purchases": 1,
        "total_spend": 20.0,
        "expected_value_12m": 4.0,
        "last_interaction_at": datetime(2024, 4, 26, 23, 30, tzinfo=UTC),
        "last_purchase_at": _ago(200),
        "first_purchase_at": _ago(200),
        "recency_score": 1,
        "monetary_score": 1,
    },
    "cleo": {
        "stage": "at_risk",
        "purchases": 2,
        "total_spend": 90.0,
        "last_interaction_at": _ago(100),
        "last_purchase_at": _ago(100),
        "first_purchase_at": _ago(500),
        "recency_score": 3,
        "monetary_score": 3,
    },
    "dan": {
        "stage": "unsubscribed",
        "p_alive": 0.1,
        "purchases": 1,
        "total_spend": 15.0,
        "last_interaction_at": _ago(250),
        "last_purchase_at": _ago(250),
        "first_purchase_at": _ago(250),
        "recency_score": 1,
        "monetary_score": 1,
    },
    "eve": {"stage": "prospect", "p_alive": 0.9, "last_interaction_at": _ago(2)},
    "fay": {
        "stage": "dormant",
        "p_alive": 0.1,
        "last_purchase_at": _ago(400),
        "last_interaction_at": _ago(400),
    },
}


def build_base(ws: Workspace) -> dict[int, str]:
    """Five scored contacts (and one erased, one never scored), by id."""
    with ws.engine.begin() as c:
        ids = {
            "ana": add_contact(
                c,
                email="ana@example.com",
                created_at=datetime(2022, 1, 10, 23, 30, tzinfo=UTC),  # the 11th in Paris
                country="FR",
                city="Paris",
                source="shopify",
                birth_year=1990,
                tags=["vip"],
                attributes={"plan": "gold"},
            ),
            "ben": add_contact(
                c,
                email="ben@example.org",
                phone="+33611111111",
                created_at=day(2021, 3, 2),
                country="FR",
                city="Lyon",
                source="mailchimp",
                birth_year=1958,
                tags=["wine"],
                attributes={"plan": "silver"},
            ),
            "cleo": add_contact(
                c,
                email="cleo@example.net",
                created_at=day(2023, 5, 20),
                country="FR",
                city="Paris",
                tags=[],
                interests=["shoes", "bags"],
            ),
            "dan": add_contact(
                c,
                email="dan@example.com",
                created_at=day(2020, 11, 5),
                country="BE",
                email_status="unsubscribed",
                source="shopify",
            ),
            "eve": add_contact(
                c,
                email="eve@example.org",
                created_at=_ago(10),
                tags=["vip", "wine"],
                interests=["shoes"],
            ),
            "fay": add_contact(
                c,
                email="fay@example.com",
                created_at=day(2021, 1, 1),
                country="FR",
                erased_at=_naive(_ago(5)),
            ),
            "gus": add_contact(
                c, email="gus@example.com", created_at=day(2021, 1, 1), country="FR"
            ),
        }
        for name, values in SCORES.items():
            _scores(c, ids[name], **values)
        winback, welcome = _journey(c, "winback"), _journey(c, "welcome 2025")
        _enrol(c, winback, ids["cleo"], "active", None)
        _enrol(c, winback, ids["dan"], "sunset", "sunset")
        _enrol(c, winback, ids["ben"], "reactivated", "purchase")
        _enrol(c, welcome, ids["eve"], "active", None)
        c.execute(
            insert(survey_answers),
            {"contact_id": ids["ben"], "reason": "not_relevant", "answered_at": _naive(_ago(90))},
        )
        c.execute(
            insert(survey_answers),
            {"contact_id": ids["ben"], "reason": "too_many", "answered_at": _naive(_ago(30))},
        )
        c.execute(
            insert(survey_answers),
            {
                "contact_id": ids["dan"],
                "reason": "bought_elsewhere",
                "answered_at": _naive(_ago(240)),
            },
        )
    return {number: name for name, number in ids.items()}


# expression -> the contacts it selects (fay is erased, gus never scored: never selected)
TABLE = [
    (EXAMPLE, {"ben"}),
    ("stage in (dormant, at_risk)", {"ana", "ben", "cleo"}),
    ("stage not in (dormant, at_risk)", {"dan", "eve"}),
    ("stage != dormant", {"cleo", "dan", "eve"}),
    ("not stage = dormant", {"cleo", "dan", "eve"}),
    ("stage = dormant or country = BE", {"ana", "ben", "dan"}),
    ("p_alive < 0.3", {"ana", "dan"}),
    ("p_alive <= 0.2", {"ana", "dan"}),
    ("p_alive > 0.5", {"eve"}),
    ("p_alive >= 0.5", {"ben", "eve"}),
    ("not p_alive < 0.3", {"ben", "cleo", "eve"}),  # no estimate: not under 0.3
    ("p_alive is empty", {"cleo"}),
    ("p_alive between 0.1 and 0.2", {"ana", "dan"}),
    ("expected_value_12m > 10", {"ana"}),
    ("days_inactive > 365", {"ben"}),
    ("days_inactive = 400", {"ben"}),  # a day in Paris, not in UTC
    ("days_inactive >= 250 and days_inactive < 301", {"ana", "dan"}),
    ("days_inactive=150..300", {"ana", "dan"}),
    ("days_inactive < 2", set()),
    ("last_purchase_at < 180 days ago", {"ana", "ben", "dan"}),
    ("last_purchase_at >= 6 months ago", {"cleo"}),
    ("last_purchase_at is empty", {"eve"}),
    ("last_purchase_at between 2024-08-01 and 2024-10-01", {"dan", "ana"}),
    ("created_at = 2022-01-11", {"ana"}),  # 23:30 UTC on the 10th
    ("created_at > 4 weeks ago", {"eve"}),
    ("created_at < 2021-01-01", {"dan"}),
    ("city = Paris", {"ana", "cleo"}),
    ('city != "Paris"', {"ben", "dan", "eve"}),
    ("city is empty", {"dan", "eve"}),
    ("source in (shopify, 'mailchimp')", {"ana", "ben", "dan"}),
    ("country = fr", {"ana", "ben", "cleo"}),
    ("country is not empty and not country = FR", {"dan"}),
    ("tags contains vip", {"ana", "eve"}),
    ("not tags contains vip", {"ben", "cleo", "dan"}),
    ("tags contains (wine, beer)", {"ben", "eve"}),
    ("tags=vip,wine", {"ana", "ben", "eve"}),
    ("tags is empty", {"cleo", "dan"}),
    ("interests contains shoes and interests contains bags", {"cleo"}),
    ("attributes.plan = gold", {"ana"}),
    ("attributes.plan in (gold, silver)", {"ana", "ben"}),
    ("attributes.plan is empty", {"cleo", "dan", "eve"}),
    ("email_status = unsubscribed", {"dan"}),
    ("sms_status = subscribed", {"ben"}),
    ("email = 'ana@example.com' or email = ben@example.org", {"ana", "ben"}),
    ("birth_year < 1960", {"ben"}),
    ("age_band = 35-44", {"ana"}),
    ("monetary_score>=3", {"ana", "cleo"}),
    ("purchases = 1 and total_spend > 16", {"ben"}),
    ("in_journey winback", {"cleo"}),
    ('in_journey "welcome 2025"', {"eve"}),
    ("finished_journey winback", {"dan", "ben"}),
    ("finished_journey winback as sunset", {"dan"}),
    ("finished_journey winback as reactivated", {"ben"}),
    ("not in_journey winback and not finished_journey winback", {"ana", "eve"}),
    ("survey_reason = too_many", {"ben"}),  # the latest answer counts
    ("survey_reason = not_relevant", set()),
    ("survey_reason is not empty", {"ben", "dan"}),
    ("(stage = dormant or stage = at_risk) and not (city = Lyon)", {"ana", "cleo"}),
    ("NOT (p_alive < 0.3 OR p_alive IS EMPTY) AND stage IN (dormant)", {"ben"}),
]


@pytest.fixture
def base(workspace: Workspace) -> Iterator[tuple[Workspace, dict[int, str]]]:
    yield workspace, build_base(workspace)


def _selected(ws: Workspace, names: dict[int, str], expression: str) -> set[str]:
    with ws.engine.connect() as c:
        rows = c.execute(segment_query(parse_expression(expression), NOW, PARIS)).scalars()
        return {names[i] for i in rows}


def test_each_expression_selects_the_contacts_a_marketer_expects(
    base: tuple[Workspace, dict[int, str]],
) -> None:
    ws, names = base
    wrong = {
        expression: (found, expected)
        for expression, expected in TABLE
        if (found := _selected(ws, names, expression)) != expected
    }
    assert wrong == {}


def test_relative_dates_stay_relative_in_a_saved_segment(sqlite_workspace: Workspace) -> None:
    names = build_base(sqlite_workspace)
    assert names
    with sqlite_workspace.engine.begin() as c:
        stored = save_segment(c, "lapsed", parse_expression("last_purchase_at < 180 days ago"), NOW)
        assert stored == "last_purchase_at < 180 days ago"
        expression = load_segment(c, "lapsed")
        # ana and dan bought 300 and 250 days ago, ben 200, cleo 100
        assert count_segment(c, expression, NOW, PARIS) == 3
        assert count_segment(c, expression, NOW - timedelta(days=60), PARIS) == 2
        assert count_segment(c, expression, NOW + timedelta(days=90), PARIS) == 4


def test_a_segment_saved_as_json_filters_still_loads(sqlite_workspace: Workspace) -> None:
    build_base(sqlite_workspace)
    with sqlite_workspace.engine.begin() as c:
        c.execute(
            insert(segments),
            {
                "name": "old",
                "filters": {
                    "stage": {"in": ["dormant", "at_risk"]},
                    "tags": {"any": ["vip"]},
                    "days_inactive": {"min": 200},
                },
                "created_at": _naive(NOW),
                "updated_at": _naive(NOW),
            },
        )
        expression = load_segment(c, "old")
        assert (
            render(expression)
            == "stage in (dormant, at_risk) and tags contains vip and days_inactive >= 200"
        )
        assert count_segment(c, expression, NOW, PARIS) == 1  # ana


@pytest.mark.parametrize(
    ("expression", "column", "words"),
    [
        ("stage = dormant and", 20, ["a field", "not", "("]),
        ("stage in (dormant, sleeping)", 20, ["sleeping", "prospect, active, at_risk, dormant"]),
        ("p_alive < likely", 11, ["p_alive needs a number"]),
        ("shoe_size > 42", 1, ["unknown segment field 'shoe_size'", "p_alive", "attributes.KEY"]),
        ("country > FR", 1, ["cannot be compared with >", "in, not in, is empty"]),
        ("last_purchase_at < yesterday", 20, ["YYYY-MM-DD", "N days|weeks|months ago"]),
        ("stage = (dormant", 9, ["a value of stage: prospect"]),
        ("(stage = dormant", 17, [")", "and", "or"]),
        ("city contains Paris", 1, ["contains", "tags, interests"]),
        ("stage", 6, ["=", "in", "is", "between"]),
    ],
)
def test_a_wrong_expression_points_at_the_column_and_says_what_fits(
    expression: str, column: int, words: list[str]
) -> None:
    with pytest.raises(SegmentError) as caught:
        parse_expression(expression)
    message = str(caught.value)
    assert f"column {column}" in message
    assert all(word in message for word in words), message


@pytest.mark.parametrize(
    "attempt",
    [
        "1=1; DROP TABLE contacts",
        "stage = dormant; DROP TABLE contacts",
        "stage = 'dormant' OR 1=1",
        "stage in (select id from contacts)",
        "country = (SELECT country FROM contacts)",
        "stage = dormant -- and country = FR",
        "stage = dormant /* comment */",
        "attributes.plan') OR 1=1 -- = x",
        'city = "x" UNION SELECT email FROM contacts',
    ],
)
def test_injection_attempts_are_refused(
    sqlite_workspace: Workspace, cli: CliRunner, attempt: str
) -> None:
    result = cli.invoke(
        app, ["segment", "save", "x", "--where", attempt, "-w", str(sqlite_workspace.path)]
    )
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and "Traceback" not in result.output
    with sqlite_workspace.engine.connect() as c:
        assert c.execute(select(segments.c.name)).all() == []
        assert c.execute(text("SELECT count(*) FROM contacts")).scalar_one() == 0


def test_the_cli_saves_counts_and_exports_with_the_new_columns(
    sqlite_workspace: Workspace, cli: CliRunner, tmp_path: Path
) -> None:
    ws = sqlite_workspace
    build_base(ws)
    args = ["-w", str(ws.path), "--now", "2025-06-01T12:00"]
    saved = cli.invoke(app, ["segment", "save", "quiet", "--where", EXAMPLE, *args])
    assert saved.exit_code == 0, saved.output
    assert cli.invoke(app, ["segment", "count", "quiet", *args]).output.strip() == "1"
    narrowed = cli.invoke(app, ["segment", "count", "--where", "tags contains wine", *args])
    assert narrowed.output.strip() == "2"
    out = tmp_path / "quiet.csv"
    exported = cli.invoke(
        app,
        [
            "segment",
            "export",
            "quiet",
            "--csv",
            str(out),
            "--columns",
            "city,survey_reason,attributes.plan",
            *args,
        ],
    )
    assert exported.exit_code == 0, exported.output
    assert "1 contacts written to" in exported.output
    with out.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [
        {
            k: r[k]
            for k in (
                "email",
                "phone",
                "email_status",
                "sms_status",
                "tags",
                "p_alive",
                "expected_value_12m",
                "city",
                "survey_reason",
                "attributes.plan",
            )
        }
        for r in rows
    ] == [
        {
            "email": "ben@example.org",
            "phone": "'+33611111111",
            "email_status": "subscribed",
            "sms_status": "subscribed",
            "tags": "wine",
            "p_alive": "0.5",
            "expected_value_12m": "4.0",
            "city": "Lyon",
            "survey_reason": "too_many",
            "attributes.plan": "silver",
        }
    ]
    unknown = cli.invoke(app, ["segment", "export", "quiet", "--columns", "shoe_size", *args])
    assert unknown.exit_code == 2 and "unknown segment field 'shoe_size'" in unknown.output


# -- property: the SQL and a plain Python reading agree on random expressions ---------

COUNTRIES = ["FR", "BE", "DE", None]
CITIES = ["Paris", "Lyon", "Gent", None]
STAGES = ["prospect", "active", "at_risk", "dormant", "lost", "unsubscribed"]
TAGS = ["vip", "wine", "beer"]
REASONS = ["too_many", "not_relevant", "other"]
TZ = ZoneInfo(PARIS)
TODAY = NOW.astimezone(TZ).date()
# Days back, and hours of the day (UTC) around midnight in Paris, where a day in UTC and
# a day in the workspace's zone differ.
BACK = [0, 1, 2, 7, 30, 31, 180, 181, 365, 366, 400]
HOURS = [21, 22, 23, 0, 1, 12]


def _near_midnight(draw: random.Random) -> datetime:
    back = NOW.replace(hour=0) - timedelta(days=draw.choice(BACK))
    return back.replace(hour=draw.choice(HOURS), minute=draw.choice([0, 30]))


class RandomBase:
    """The workspace and its exported rows (a short repr for hypothesis's reports)."""

    def __init__(self, ws: Workspace, rows: list[dict[str, Any]]) -> None:
        self.ws, self.rows = ws, rows

    def __repr__(self) -> str:
        return f"RandomBase({len(self.rows)} contacts)"


@pytest.fixture(scope="module")
def random_base(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RandomBase]:
    """Sixty contacts drawn from small pools (so that conditions hit), and their rows
    as ``segment export`` writes them."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(ENV_DATABASE_URL, raising=False)
        ws = Workspace.init(tmp_path_factory.mktemp("random") / "ws", "ecommerce")
    draw = random.Random(20)
    with ws.engine.begin() as c:
        journey = _journey(c, "winback")
        for n in range(60):
            contact = add_contact(
                c,
                email=f"person{n}@example.com",
                created_at=_near_midnight(draw),
                country=draw.choice(COUNTRIES),
                city=draw.choice(CITIES),
                birth_year=draw.choice([None, 1950, 1970, 1985, 2000]),
                tags=draw.choice([None, [], *([t] for t in TAGS), ["vip", "wine"]]),
                attributes=draw.choice([None, {"plan": "gold"}, {"plan": "silver"}]),
                email_status=draw.choice(["subscribed", "unsubscribed", "bounced"]),
            )
            bought = draw.random() < 0.7
            last = _near_midnight(draw)
            _scores(
                c,
                contact,
                stage=draw.choice(STAGES),
                p_alive=draw.choice([None, 0.05, 0.2, 0.3, 0.6, 0.95]),
                expected_value_12m=draw.choice([None, 0.0, 12.5, 80.0]),
                purchases=draw.randint(1, 5) if bought else 0,
                total_spend=draw.choice([20.0, 150.0, 999.5]) if bought else 0.0,
                last_interaction_at=draw.choice([None, last]),
                last_purchase_at=last if bought else None,
            )
            if draw.random() < 0.3:
                _enrol(c, journey, contact, draw.choice(["active", "sunset"]), None)
            if draw.random() < 0.3:
                c.execute(
                    insert(survey_answers),
                    {
                        "contact_id": contact,
                        "reason": draw.choice(REASONS),
                        "answered_at": _naive(_ago(draw.randint(1, 100))),
                    },
                )
    out = io.StringIO()
    columns = export_columns(
        [
            "city",
            "created_at",
            "birth_year",
            "last_interaction_at",
            "last_purchase_at",
            "attributes.plan",
            "survey_reason",
        ]
    )
    with ws.engine.connect() as c:
        export_segment(c, parse_conditions([]), NOW, PARIS, out, columns)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    yield RandomBase(ws, rows)
    ws.close()


def _number(row: dict[str, str], key: str) -> float | None:
    return float(row[key]) if row[key] else None


def _local_day(row: dict[str, str], key: str) -> date | None:
    return datetime.fromisoformat(row[key]).astimezone(TZ).date() if row[key] else None


def _days_inactive(row: dict[str, str]) -> float | None:
    last = _local_day(row, "last_interaction_at")
    return None if last is None else float((TODAY - last).days)


NUMBERS: dict[str, tuple[list[float], Callable[[dict[str, str]], float | None]]] = {
    "p_alive": ([0.05, 0.2, 0.3, 0.5], lambda r: _number(r, "p_alive")),
    "total_spend": ([20, 100, 999.5], lambda r: _number(r, "total_spend")),
    "expected_value_12m": ([0, 12.5, 50], lambda r: _number(r, "expected_value_12m")),
    "birth_year": ([1950, 1985, 1990], lambda r: _number(r, "birth_year")),
    "days_inactive": ([0, 30, 180, 365.5, 400], _days_inactive),
}
DATES = ["last_purchase_at", "created_at", "last_interaction_at"]
TEXTS: dict[str, list[str | None] | list[str]] = {
    "country": COUNTRIES[:-1],
    "city": CITIES[:-1],
    "stage": STAGES,
    "email_status": ["subscribed", "bounced"],
    "attributes.plan": ["gold", "silver"],
    "survey_reason": REASONS,
}
COMPARE = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _held(compare: str, value: Any, bound: Any) -> bool:
    """A comparison in the language: an empty value matches nothing, and != is not =."""
    if compare == "!=":
        return not _held("=", value, bound)
    return value is not None and COMPARE[compare](value, bound)


Predicate = Any  # a row -> bool


@st.composite
def conditions(draw: st.DrawFn) -> tuple[str, Predicate]:
    kind = draw(st.sampled_from(["number", "date", "text", "list", "empty", "journey"]))
    op = draw(st.sampled_from(list(COMPARE)))
    if kind == "number":
        field = draw(st.sampled_from(sorted(NUMBERS)))
        bounds, read = NUMBERS[field]
        if draw(st.booleans()):
            low, high = sorted(draw(st.sampled_from(bounds)) for _ in range(2))
            return (
                f"{field} between {low:g} and {high:g}",
                lambda r: (v := read(r)) is not None and low <= v <= high,
            )
        bound = draw(st.sampled_from(bounds))
        return f"{field} {op} {bound:g}", lambda r: _held(op, read(r), bound)
    if kind == "date":
        field = draw(st.sampled_from(DATES))
        if draw(st.booleans()):
            n = draw(st.sampled_from(BACK))
            unit = draw(st.sampled_from(["days", "weeks", "months"]))
            days = {"days": n, "weeks": 7 * n}.get(unit)
            if days is None:
                month = TODAY.month - 1 - n
                year, month = TODAY.year + month // 12, month % 12 + 1
                when = TODAY.replace(year=year, month=month, day=min(TODAY.day, 28))
            else:
                when = TODAY - timedelta(days=days)
            written = f"{n} {unit} ago"
        else:
            when = TODAY - timedelta(days=draw(st.sampled_from(BACK)) + draw(st.integers(-1, 1)))
            written = when.isoformat()
        return f"{field} {op} {written}", lambda r: _held(op, _local_day(r, field), when)
    if kind == "text":
        field = draw(st.sampled_from(sorted(TEXTS)))
        values = draw(st.lists(st.sampled_from(TEXTS[field]), min_size=1, max_size=3, unique=True))
        if len(values) > 1 or draw(st.booleans()):
            negated = draw(st.booleans())
            listed = ", ".join(f'"{v}"' for v in values)
            return (
                f"{field} {'not in' if negated else 'in'} ({listed})",
                lambda r: (r[field] in values) != negated,
            )
        op = draw(st.sampled_from(["=", "!="]))
        return f"{field} {op} '{values[0]}'", lambda r: _held(op, r[field] or None, values[0])
    if kind == "list":
        tags = draw(st.lists(st.sampled_from(TAGS), min_size=1, max_size=2, unique=True))
        written = tags[0] if len(tags) == 1 else "(" + ", ".join(tags) + ")"
        return (
            f"tags contains {written}",
            lambda r: bool(set(r["tags"].split(",")) & set(tags)),
        )
    if kind == "empty":
        field = draw(
            st.sampled_from(["p_alive", "city", "tags", "last_purchase_at", "survey_reason"])
        )
        negated = draw(st.booleans())
        return (
            f"{field} is {'not ' if negated else ''}empty",
            lambda r: (r[field] == "") != negated,
        )
    return "in_journey winback", lambda r: r["contact_id"] in ACTIVE


ACTIVE: set[str] = set()


@st.composite
def expressions(draw: st.DrawFn, depth: int = 0) -> tuple[str, Predicate]:
    if depth >= 3 or draw(st.integers(0, 2)) == 0:
        return draw(conditions())
    choice = draw(st.sampled_from(["and", "or", "not"]))
    if choice == "not":
        inner, test = draw(expressions(depth + 1))
        return f"not ({inner})", lambda r: not test(r)
    (a, pa), (b, pb) = draw(expressions(depth + 1)), draw(expressions(depth + 1))
    if choice == "and":
        return f"({a}) and ({b})", lambda r: pa(r) and pb(r)
    return f"({a}) or ({b})", lambda r: pa(r) or pb(r)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=expressions())
def test_sql_agrees_with_a_plain_reading_of_the_exported_rows(
    random_base: RandomBase, case: tuple[str, Predicate]
) -> None:
    ws, rows = random_base.ws, random_base.rows
    expression, test = case
    if not ACTIVE:
        with ws.engine.connect() as c:
            ACTIVE.update(
                str(i)
                for i in c.execute(
                    select(enrollments.c.contact_id).where(enrollments.c.status == "active")
                ).scalars()
            )
    parsed = parse_expression(expression)
    assert parse_expression(render(parsed)) == parsed
    with ws.engine.connect() as c:
        found = {str(i) for i in c.execute(segment_query(parsed, NOW, PARIS)).scalars()}
    assert found == {r["contact_id"] for r in rows if test(r)}, expression


def test_survey_reason_is_the_latest_answer_at_the_moment_of_the_count(
    sqlite_workspace: Workspace,
) -> None:
    names = build_base(sqlite_workspace)
    with sqlite_workspace.engine.begin() as c:
        ben = next(i for i, n in names.items() if n == "ben")
        c.execute(
            insert(survey_answers),
            {"contact_id": ben, "reason": "other", "answered_at": _naive(NOW + timedelta(days=3))},
        )
        query = segment_query(parse_expression("survey_reason = too_many"), NOW, PARIS)
        assert [names[i] for i in c.execute(query).scalars()] == ["ben"]


def test_list_and_show_print_what_was_written_as_plain_text(
    sqlite_workspace: Workspace, cli: CliRunner
) -> None:
    args = ["-w", str(sqlite_workspace.path)]
    where = "city = '[bold red]Paris' or source != \"=HYPERLINK(x)\""
    saved = cli.invoke(app, ["segment", "save", "[blink]odd", "--where", where, *args])
    assert saved.exit_code == 0, saved.output
    listed = cli.invoke(app, ["segment", "list", *args])
    assert "[blink]odd" in listed.output and "[bold red]" in listed.output
    shown = cli.invoke(app, ["segment", "show", "[blink]odd", *args])
    assert (
        '"where": "city = \\"[bold red]Paris\\" or source != \\"=HYPERLINK(x)\\""' in shown.output
    )
    again = cli.invoke(app, ["segment", "save", "[blink]odd", "--where", "stage = lost", *args])
    assert again.exit_code == 2 and "exists already (pass --replace)" in again.output
