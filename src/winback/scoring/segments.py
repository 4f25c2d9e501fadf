"""Named segments: saved filters over the scored base, compiled to parameterised SQL.

A filter is a mapping from a field to a condition, stored as JSON in ``segments``::

    {"stage": {"in": ["dormant", "at_risk"]},
     "days_inactive": {"min": 180, "max": 365},
     "tags": {"any": ["vip"]}}

On the command line the same is written ``stage=dormant,at_risk``,
``days_inactive=180..365``, ``recency_score>=4``, ``tags=vip`` (see :func:`parse_conditions`).
A segment is evaluated at a moment (``now``), because inactivity and age move with time.
Values are always bound parameters, never formatted into the SQL.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Connection, Select, delete, func, insert, or_, select, update

from winback.clock import from_db, to_db
from winback.domain import ChannelStatus, Stage
from winback.errors import NotFoundError, WinbackError
from winback.safe_output import csv_writer
from winback.scoring.sql import json_has_any, local_day
from winback.scoring.stages import AGE_BANDS, SPEND_LEVELS, day_number
from winback.store.schema import contact_scores, contacts, segments


class SegmentError(WinbackError):
    """A segment filter names an unknown field or has a value that does not fit it."""

    exit_code = 2


@dataclass(frozen=True)
class _Field:
    kind: str  # choice | number | any
    choices: tuple[str, ...] = ()


FIELDS: dict[str, _Field] = {
    "stage": _Field("choice", tuple(s.value for s in Stage)),
    "recency_score": _Field("number"),
    "frequency_score": _Field("number"),
    "monetary_score": _Field("number"),
    "spend_level": _Field("choice", SPEND_LEVELS),
    "days_inactive": _Field("number"),
    "purchases": _Field("number"),
    "total_spend": _Field("number"),
    "dormant_subscriber": _Field("choice", ("true", "false")),
    "email_status": _Field("choice", tuple(s.value for s in ChannelStatus)),
    "sms_status": _Field("choice", tuple(s.value for s in ChannelStatus)),
    "country": _Field("choice"),
    "language": _Field("choice"),
    "age_band": _Field("choice", tuple(band[0] for band in AGE_BANDS)),
    "tags": _Field("any"),
    "interests": _Field("any"),
}

_CONDITION = re.compile(r"^\s*([a-z_]+)\s*(>=|<=|=)\s*(.*?)\s*$")


def _known_fields() -> str:
    return ", ".join(FIELDS)


def parse_conditions(texts: Iterable[str]) -> dict[str, dict[str, Any]]:
    """``["stage=dormant,at_risk", "days_inactive>=180"]`` as a filter mapping."""
    filters: dict[str, dict[str, Any]] = {}
    for text in texts:
        match = _CONDITION.match(text)
        if not match:
            raise SegmentError(
                f"cannot read the condition {text!r}: write FIELD=V1,V2, FIELD=MIN..MAX, "
                f"FIELD>=N or FIELD<=N (fields: {_known_fields()})"
            )
        name, operator, value = match.groups()
        spec = _field(name)
        condition = filters.setdefault(name, {})
        if spec.kind == "number":
            if operator == "=" and ".." in value:
                low, high = value.split("..", 1)
                if low:
                    condition["min"] = _number(name, low)
                if high:
                    condition["max"] = _number(name, high)
            elif operator == ">=":
                condition["min"] = _number(name, value)
            elif operator == "<=":
                condition["max"] = _number(name, value)
            else:
                condition["min"] = condition["max"] = _number(name, value)
        else:
            if operator != "=":
                raise SegmentError(f"{name} takes values (FIELD=V1,V2), not {operator}")
            values = [v.strip() for v in value.split(",") if v.strip()]
            condition["any" if spec.kind == "any" else "in"] = values
    return validate_filters(filters)


def _field(name: str) -> _Field:
    try:
        return FIELDS[name]
    except KeyError:
        raise SegmentError(
            f"unknown segment field {name!r}; known fields: {_known_fields()}"
        ) from None


def _number(name: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise SegmentError(f"{name} needs a number, got {text!r}") from None


def validate_filters(filters: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Check a filter mapping (from the CLI or a stored segment); returns it normalised."""
    clean: dict[str, dict[str, Any]] = {}
    for name, condition in filters.items():
        spec = _field(name)
        if not isinstance(condition, Mapping):
            raise SegmentError(f"{name}: a condition is an object such as {{'in': [...]}}")
        if spec.kind == "number":
            unknown = set(condition) - {"min", "max"}
            bounds = {k: float(v) for k, v in condition.items() if k in ("min", "max")}
            if unknown or not bounds:
                raise SegmentError(f"{name}: give min and/or max")
            clean[name] = bounds
            continue
        key = "any" if spec.kind == "any" else "in"
        values = condition.get(key)
        if set(condition) != {key} or not isinstance(values, list) or not values:
            raise SegmentError(f"{name}: give a list of values under {key!r}")
        values = [str(v) for v in values]
        if name == "country":
            values = [v.upper() for v in values]
        if spec.choices:
            wrong = [v for v in values if v not in spec.choices]
            if wrong:
                raise SegmentError(
                    f"{name}: unknown value(s) {', '.join(wrong)}; known: {', '.join(spec.choices)}"
                )
        clean[name] = {key: values}
    return clean


def segment_query(filters: Mapping[str, Any], now: datetime, timezone: str) -> Select[Any]:
    """The contacts (``contacts.id`` as ``contact_id``) matching ``filters`` at ``now``:
    scored, not erased. Journeys narrow their audience with it."""
    return _matching(filters, now, timezone, contacts.c.id.label("contact_id"))


def _matching(
    filters: Mapping[str, Any], now: datetime, timezone: str, *columns: ColumnElement[Any]
) -> Select[Any]:
    """``columns`` of the scored contacts matching ``filters`` at ``now``."""
    return (
        select(*columns)
        .select_from(contacts.join(contact_scores, contact_scores.c.contact_id == contacts.c.id))
        .where(*_conditions(validate_filters(filters), now, timezone))
    )


def _days_inactive(now: datetime, timezone: str) -> ColumnElement[int]:
    """Whole days in ``timezone`` from the last interaction to ``now``: the stored
    ``days_inactive`` is as of the scoring, a segment is evaluated at its own moment."""
    today = day_number(now, ZoneInfo(timezone))
    return today - local_day(contact_scores.c.last_interaction_at, timezone)


def _conditions(
    filters: Mapping[str, Mapping[str, Any]], now: datetime, timezone: str
) -> list[ColumnElement[bool]]:
    year = now.astimezone(ZoneInfo(timezone)).year
    result: list[ColumnElement[bool]] = [contacts.c.erased_at.is_(None)]
    for name, condition in filters.items():
        spec = FIELDS[name]
        if name == "age_band":
            bands = [band for band in AGE_BANDS if band[0] in condition["in"]]
            result.append(
                or_(
                    *(
                        contacts.c.birth_year.between(year - high, year - low)
                        for _, low, high in bands
                    )
                )
            )
            continue
        if spec.kind == "any":
            result.append(json_has_any(contacts.c[name], condition["any"]))
            continue
        column: ColumnElement[Any]
        if name == "days_inactive":
            column = _days_inactive(now, timezone)
        elif name in ("email_status", "sms_status", "country", "language"):
            column = contacts.c[name]
        else:
            column = contact_scores.c[name]
        if spec.kind == "number":
            if "min" in condition:
                result.append(column >= condition["min"])
            if "max" in condition:
                result.append(column <= condition["max"])
        elif name == "dormant_subscriber":
            result.append(column.in_([v == "true" for v in condition["in"]]))
        else:
            result.append(column.in_(condition["in"]))
    return result


def save_segment(
    connection: Connection,
    name: str,
    filters: Mapping[str, Any],
    now: datetime,
    *,
    replace: bool = False,
) -> None:
    """Store ``filters`` under ``name``; an existing name needs ``replace``."""
    clean = validate_filters(filters)
    existing = connection.execute(
        select(segments.c.name).where(segments.c.name == name)
    ).scalar_one_or_none()
    if existing is not None and not replace:
        raise SegmentError(f"a segment named {name!r} exists already (pass --replace)")
    if existing is not None:
        connection.execute(
            update(segments)
            .where(segments.c.name == name)
            .values(filters=clean, updated_at=to_db(now))
        )
    else:
        connection.execute(
            insert(segments).values(
                name=name, filters=clean, created_at=to_db(now), updated_at=to_db(now)
            )
        )


def load_segment(connection: Connection, name: str) -> dict[str, dict[str, Any]]:
    filters = connection.execute(
        select(segments.c.filters).where(segments.c.name == name)
    ).scalar_one_or_none()
    if filters is None:
        known = connection.execute(select(segments.c.name).order_by(segments.c.name)).scalars()
        raise NotFoundError(
            f"no segment named {name!r} (saved segments: {', '.join(known) or 'none'})"
        )
    return validate_filters(filters)


def segment_filters(
    connection: Connection, name: str | None, conditions: Iterable[str] = ()
) -> dict[str, dict[str, Any]]:
    """The filters of the saved segment ``name`` (none when ``name`` is None), with the
    ad hoc ``conditions`` (``FIELD=...`` texts, see :func:`parse_conditions`) added; a
    condition on a field the segment already filters replaces the saved one."""
    filters = load_segment(connection, name) if name else {}
    filters.update(parse_conditions(conditions))
    return filters


def list_segments(connection: Connection) -> list[dict[str, Any]]:
    rows = connection.execute(select(segments).order_by(segments.c.name)).mappings()
    return [
        {
            "name": row["name"],
            "filters": row["filters"],
            "created_at": from_db(row["created_at"]).isoformat(),
            "updated_at": from_db(row["updated_at"]).isoformat(),
        }
        for row in rows
    ]


def delete_segment(connection: Connection, name: str) -> None:
    load_segment(connection, name)
    connection.execute(delete(segments).where(segments.c.name == name))


def count_segment(
    connection: Connection, filters: Mapping[str, Any], now: datetime, timezone: str
) -> int:
    query = segment_query(filters, now, timezone).subquery()
    return int(connection.execute(select(func.count()).select_from(query)).scalar_one())


EXPORT_COLUMNS = (
    "contact_id",
    "email",
    "phone",
    "first_name",
    "last_name",
    "country",
    "language",
    "stage",
    "days_inactive",
    "recency_score",
    "frequency_score",
    "monetary_score",
    "spend_level",
    "purchases",
    "total_spend",
)


def export_segment(
    connection: Connection,
    filters: Mapping[str, Any],
    now: datetime,
    timezone: str,
    path: Path,
) -> int:
    """Write the matching contacts to a CSV file (UTF-8, header row); returns the count."""
    query = _matching(
        filters,
        now,
        timezone,
        contacts.c.id.label("contact_id"),
        *(contacts.c[n] for n in EXPORT_COLUMNS[1:7]),
        contact_scores.c.stage,
        _days_inactive(now, timezone).label("days_inactive"),
        *(contact_scores.c[n] for n in EXPORT_COLUMNS[9:]),
    ).order_by(contacts.c.id)
    count = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv_writer(handle)
        writer.writerow(EXPORT_COLUMNS)
        for row in connection.execute(query):
            writer.writerow(["" if v is None else v for v in row])
            count += 1
    return count


__all__ = [
    "FIELDS",
    "SegmentError",
    "count_segment",
    "delete_segment",
    "export_segment",
    "list_segments",
    "load_segment",
    "parse_conditions",
    "save_segment",
    "segment_filters",
    "segment_query",
    "validate_filters",
]
