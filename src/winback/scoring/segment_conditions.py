"""The conditions a segment is made of, as plain values: the fields and what they hold
(:data:`FIELDS`), a :class:`Condition` on one field, :class:`Journey` membership, and
:class:`All`, :class:`Any_`, :class:`Not` over them; and the same written back as text in
the segment language (:func:`render`).

:mod:`winback.scoring.segment_language` reads the text into these values and
:mod:`winback.scoring.segment_sql` compiles them to SQL; see the former for what the
language means.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import TypeAlias

from winback.domain import ChannelStatus, Stage
from winback.errors import WinbackError
from winback.scoring.rfm import SPEND_LEVELS
from winback.scoring.stages import AGE_BANDS


class SegmentError(WinbackError):
    """A segment expression is malformed, names an unknown field or has a value that does
    not fit it."""

    exit_code = 2


@dataclass(frozen=True)
class Field:
    """What a field holds: ``text``, ``choice`` (one of ``choices``), ``number``,
    ``date`` (a timestamp, compared by calendar day), ``day`` (a calendar date), ``bool``
    or ``list`` (a JSON array of strings)."""

    kind: str
    choices: tuple[str, ...] = ()
    upper: bool = False  # values are kept in capitals (country codes)


_STATUSES = tuple(s.value for s in ChannelStatus)
FIELDS: dict[str, Field] = {
    # the contact
    "email": Field("text"),
    "phone": Field("text"),
    "first_name": Field("text"),
    "last_name": Field("text"),
    "country": Field("text", upper=True),
    "city": Field("text"),
    "language": Field("text"),
    "timezone": Field("text"),
    "gender": Field("text"),
    "birth_year": Field("number"),
    "age_band": Field("choice", tuple(band[0] for band in AGE_BANDS)),
    "source": Field("text"),
    "created_at": Field("date"),
    "email_status": Field("choice", _STATUSES),
    "sms_status": Field("choice", _STATUSES),
    "subscription_active": Field("bool"),
    "frequency": Field("choice", ("normal", "monthly")),
    "tags": Field("list"),
    "interests": Field("list"),
    "topics": Field("list"),
    # its scores
    "stage": Field("choice", tuple(s.value for s in Stage)),
    "stage_since": Field("day"),
    "days_inactive": Field("number"),
    "last_interaction_at": Field("date"),
    "last_email_at": Field("date"),
    "last_sms_at": Field("date"),
    "last_web_at": Field("date"),
    "last_app_at": Field("date"),
    "last_store_at": Field("date"),
    "purchases": Field("number"),
    "total_spend": Field("number"),
    "avg_spend": Field("number"),
    "recency_score": Field("number"),
    "frequency_score": Field("number"),
    "monetary_score": Field("number"),
    "spend_level": Field("choice", SPEND_LEVELS),
    "dormant_subscriber": Field("bool"),
    "p_alive": Field("number"),
    "expected_purchases_90d": Field("number"),
    "expected_value_12m": Field("number"),
    "first_purchase_at": Field("date"),
    "last_purchase_at": Field("date"),
    # what the person answered
    "survey_reason": Field("text"),
}
ATTRIBUTE_PREFIX = "attributes."
_ATTRIBUTE = Field("text")
_ATTRIBUTE_KEY = re.compile(r"^[A-Za-z0-9_\-]+$")
ORDERED_KINDS = ("number", "date", "day")


@dataclass(frozen=True)
class DaysAgo:
    """A date relative to the moment the segment is counted: ``count`` ``unit`` ago."""

    count: int
    unit: str  # days | weeks | months | years


Value: TypeAlias = str | float | bool | date | DaysAgo


@dataclass(frozen=True)
class Condition:
    """``field operator values``. ``operator`` is one of ``= < <= > >= between in contains
    empty``; ``!=``, ``not in`` and ``is not empty`` are a :class:`Not` around one."""

    field: str
    operator: str
    values: tuple[Value, ...] = ()


@dataclass(frozen=True)
class Journey:
    """``in_journey NAME`` (``finished`` False) or ``finished_journey NAME [as OUTCOME]``."""

    name: str
    finished: bool
    outcome: str | None = None


@dataclass(frozen=True)
class All:
    parts: tuple[Expression, ...]


@dataclass(frozen=True)
class Any_:
    parts: tuple[Expression, ...]


@dataclass(frozen=True)
class Not:
    part: Expression


Expression: TypeAlias = Condition | Journey | All | Any_ | Not
EVERYONE = All(())


def field_spec(name: str, column: int | None = None) -> Field:
    """The :class:`Field` of ``name`` (``attributes.KEY`` included)."""
    if name.startswith(ATTRIBUTE_PREFIX) and _ATTRIBUTE_KEY.match(name[len(ATTRIBUTE_PREFIX) :]):
        return _ATTRIBUTE
    spec = FIELDS.get(name)
    if spec is None:
        where = f" at column {column}" if column else ""
        raise SegmentError(
            f"unknown segment field {name!r}{where}; known fields: {', '.join(FIELDS)}, "
            "attributes.KEY, in_journey NAME, finished_journey NAME [as OUTCOME]"
        )
    return spec


def conjunction(parts: Iterable[Expression]) -> Expression:
    """``a and b and ...``, flattened; everyone when there are none."""
    flat: list[Expression] = []
    for part in parts:
        flat.extend(part.parts if isinstance(part, All) else (part,))
    return flat[0] if len(flat) == 1 else All(tuple(flat))


# -- back to text ------------------------------------------------------------

_BARE_WORD = re.compile(r"^[A-Za-z0-9_+\-@]+(\.[A-Za-z0-9_+\-@]+)*$")
_KEYWORDS = {"or", "and", "not", "in", "is", "empty", "between", "contains", "as", "ago"}


def render(expression: Expression) -> str:
    """``expression`` written in the language; :func:`parse_expression` reads it back as
    the same value."""
    return _render(expression, top=True)


def _render(expression: Expression, *, top: bool = False) -> str:
    if isinstance(expression, All):
        if not expression.parts:
            return ""
        text = " and ".join(_render(p) for p in expression.parts)
        return text if top or len(expression.parts) == 1 else f"({text})"
    if isinstance(expression, Any_):
        text = " or ".join(_render(p) for p in expression.parts)
        return text if top or len(expression.parts) == 1 else f"({text})"
    if isinstance(expression, Not):
        part = expression.part
        if isinstance(part, Condition) and part.operator == "=":
            return f"{part.field} != {_literal(part.values[0])}"
        if isinstance(part, Condition) and part.operator == "empty":
            return f"{part.field} is not empty"
        if isinstance(part, Condition) and part.operator == "in" and not _is_list(part.field):
            return f"{part.field} not in {_list(part.values)}"
        return f"not {_render(part)}"
    if isinstance(expression, Journey):
        if not expression.finished:
            return f"in_journey {_literal(expression.name)}"
        outcome = f" as {_literal(expression.outcome)}" if expression.outcome else ""
        return f"finished_journey {_literal(expression.name)}{outcome}"
    field, operator, values = expression.field, expression.operator, expression.values
    if operator == "empty":
        return f"{field} is empty"
    if operator == "between":
        return f"{field} between {_literal(values[0])} and {_literal(values[1])}"
    if operator == "in":
        if _is_list(field):
            one = len(values) == 1
            return f"{field} contains {_literal(values[0]) if one else _list(values)}"
        return f"{field} in {_list(values)}"
    return f"{field} {operator} {_literal(values[0])}"


def _is_list(field: str) -> bool:
    return field_spec(field).kind == "list"


def _list(values: tuple[Value, ...]) -> str:
    return "(" + ", ".join(_literal(v) for v in values) + ")"


def _literal(value: Value | None) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, DaysAgo):
        return f"{value.count} {value.unit} ago"
    if isinstance(value, date):
        return value.isoformat()
    text = str(value)
    if _BARE_WORD.match(text) and text.lower() not in _KEYWORDS:
        return text
    return f"'{text}'" if '"' in text else f'"{text}"'


__all__ = [
    "ATTRIBUTE_PREFIX",
    "EVERYONE",
    "FIELDS",
    "ORDERED_KINDS",
    "All",
    "Any_",
    "Condition",
    "DaysAgo",
    "Expression",
    "Field",
    "Journey",
    "Not",
    "SegmentError",
    "Value",
    "conjunction",
    "field_spec",
    "render",
]
