"""The segment language: one expression that says which contacts a segment holds.

::

    stage in (dormant, at_risk) and (p_alive < 0.3 or days_inactive > 365)
    and not tags contains "vip" and last_purchase_at < 180 days ago and country = "FR"

The grammar is ``segment.lark`` (parsed by Lark); this module turns its tree into the
plain values of :mod:`winback.scoring.segment_conditions` (which also writes them back
as text), checking every field and value against its catalogue, and says where and why
an expression cannot be read. :mod:`winback.scoring.segment_sql` compiles the values to
SQLAlchemy; nothing here touches SQL.

- Fields: the contact's columns, its scores, ``attributes.KEY`` (a custom attribute, as
  text) and ``survey_reason`` (the reason of the person's latest survey answer); then
  ``in_journey NAME`` and ``finished_journey NAME [as OUTCOME]`` (OUTCOME is the way the
  enrollment ended, ``reactivated``, ``completed``, ``sunset``, ``exited``, or the outcome
  it recorded, such as ``holdout``).
- Operators: ``= != < <= > >=``, ``between A and B`` (both included), ``in (...)``,
  ``not in (...)``, ``contains`` (a list field holds the value, or one of ``(...)``),
  ``is empty``, ``is not empty``, ``and``, ``or``, ``not``, parentheses. On a list field
  (``tags``, ``interests``, ``topics``) ``=`` and ``in`` mean ``contains``.
- An empty value (no country, never bought, no model estimate) matches no comparison,
  so ``not`` is always the complement: ``country != "FR"`` holds the contacts with no
  country, ``p_alive < 0.3`` leaves out those without an estimate.
- Dates are calendar days in the workspace's zone: ``2025-01-31``, ``today``, or ``N days
  ago`` (``weeks``, ``months``, ``years``). A saved segment keeps ``180 days ago`` as it is
  written and resolves it against the moment it is counted (``--now``), so it stays
  relative; ``days_inactive`` too is counted at that moment.
- The older ``FIELD=V1,V2``, ``FIELD=MIN..MAX``, ``FIELD>=N`` conditions are shorthands of
  the same language, and segments stored as JSON filters still load
  (:func:`from_filters`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib.resources import files
from typing import Any

from lark import Lark, Token, Transformer, UnexpectedCharacters, UnexpectedInput, v_args
from lark.exceptions import VisitError

from winback.scoring.segment_conditions import (
    FIELDS,
    ORDERED_KINDS,
    Any_,
    Condition,
    DaysAgo,
    Expression,
    Field,
    Journey,
    Not,
    SegmentError,
    Value,
    conjunction,
    field_spec,
)


@cache
def _parser() -> Lark:
    grammar = files("winback.scoring").joinpath("segment.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", propagate_positions=True)


def parse_expression(text: str) -> Expression:
    """The expression ``text`` as plain values, checked field by field.

    ``country = "FR" and not tags contains vip`` is ``All((Condition("country", "=",
    ("FR",)), Not(Condition("tags", "in", ("vip",)))))``.
    """
    if not text.strip():
        raise SegmentError(
            "the segment expression is empty: write a condition such as stage = dormant"
        )
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as exc:
        raise SegmentError(_syntax_message(text, exc)) from None
    try:
        return _Build().transform(tree)
    except VisitError as exc:  # Lark wraps what a transformer raises
        if isinstance(exc.orig_exc, SegmentError):
            raise SegmentError(str(exc.orig_exc)) from None
        raise


def parse_conditions(texts: Iterable[str]) -> Expression:
    """Several expressions (one per ``--where``) that must all hold."""
    return conjunction(parse_expression(text) for text in texts)


_TERMINALS = {
    "FIELD": "a field",
    "_NOT": "not",
    "LPAR": "(",
    "RPAR": ")",
    "_IN_JOURNEY": "in_journey",
    "_FINISHED_JOURNEY": "finished_journey",
    "EQ": "=",
    "OP": "!=, <, <=, >, >=",
    "_IN": "in",
    "_IS": "is",
    "_BETWEEN": "between",
    "_CONTAINS": "contains",
    "_EMPTY": "empty",
    "_AND": "and",
    "_OR": "or",
    "_AS": "as",
    "COMMA": ",",
    "RANGE": "..",
    "UNIT": "days/weeks/months/years ago",
    "_AGO": "ago",
    "BARE": "a value",
    "STRING": "a quoted value",
    "$END": "the end of the expression",
}


def _syntax_message(text: str, exc: UnexpectedInput) -> str:
    """Where the expression went wrong (column and a caret) and what could come there."""
    token = getattr(exc, "token", None)
    at_end = token is not None and token.type == "$END"
    position = len(text) if at_end else exc.pos_in_stream
    position = min(position if position is not None else len(text), len(text))
    expected = _expected_at(text, position) or set(
        getattr(exc, "expected", None) or getattr(exc, "allowed", None) or ()
    )
    field = _last_field(text[:position])
    spec = FIELDS.get(field or "") if field else None
    if spec is None or spec.kind not in ORDERED_KINDS:
        expected -= {"RANGE", "UNIT"}
    words = [_TERMINALS.get(name, name) for name in sorted(expected, key=_order)]
    if {"BARE", "STRING"} & expected and spec is not None:
        words = [w for w in words if w not in ("a value", "a quoted value")]
        words.insert(0, _value_hint(field or "", spec))
    if "FIELD" in expected:
        words.append(f"(fields: {', '.join(FIELDS)}, attributes.KEY)")
    found = "the end" if position >= len(text) else repr(text[position : position + 12])
    if isinstance(exc, UnexpectedCharacters):
        found = repr(text[position])
    return (
        f"cannot read the segment expression at column {position + 1}: found {found}, "
        f"expected {'; '.join(words) or 'something else'}\n  {text}\n  {' ' * position}^"
    )


def _order(name: str) -> int:
    return list(_TERMINALS).index(name) if name in _TERMINALS else len(_TERMINALS)


def _expected_at(text: str, position: int) -> set[str]:
    """The terminals the parser accepts after ``text[:position]`` (exact, unlike the
    sets of a merged LALR state)."""
    try:
        interactive = _parser().parse_interactive(text[:position])
        interactive.exhaust_lexer()
        # lark is untyped: accepts() is a set of terminal names.
        return set(interactive.accepts())  # type: ignore[no-untyped-call]
    except UnexpectedInput:
        return set()


def _last_field(prefix: str) -> str | None:
    names = [w for w in re.findall(r"[A-Za-z_][A-Za-z0-9_.]*", prefix) if w in FIELDS]
    return names[-1] if names else None


def _value_hint(name: str, spec: Field) -> str:
    if spec.choices:
        return f"a value of {name}: {', '.join(spec.choices)}"
    return {
        "number": f"a number for {name}",
        "date": f"a date for {name} (YYYY-MM-DD, today, N days|weeks|months ago)",
        "day": f"a date for {name} (YYYY-MM-DD, today, N days|weeks|months ago)",
        "bool": f"true or false for {name}",
        "list": f"a value for {name}",
    }.get(spec.kind, f"a value for {name} (quote it if it has spaces)")


_DATE = re.compile(r"^(1[89]|2\d)\d{2}-\d{2}-\d{2}$")  # years 1800 to 2999
# A hundred years back at most: a date the calendar arithmetic can always reach.
_AGO_LIMITS = {"days": 36_600, "weeks": 5_220, "months": 1_200, "years": 100}


@dataclass(frozen=True)
class _Raw:
    """A value as written, before the field says what it must be."""

    text: str
    column: int
    quoted: bool = False
    ago: DaysAgo | None = None


@v_args(inline=True)
class _Build(Transformer[Token, Expression]):
    """The parse tree as plain values; each value is checked against its field."""

    # values
    def plain(self, token: Token) -> _Raw:
        return _Raw(str(token), token.column or 0)

    def quoted(self, token: Token) -> _Raw:
        return _Raw(str(token)[1:-1], token.column or 0, quoted=True)

    def ago(self, count: Token, unit: Token) -> _Raw:
        if not count.isdigit():
            raise SegmentError(
                f"{str(count)!r} at column {count.column}: N days ago needs a whole number"
            )
        word = unit.lower().rstrip("s") + "s"
        if int(count) > _AGO_LIMITS[word]:
            raise SegmentError(
                f"{str(count)!r} at column {count.column}: at most {_AGO_LIMITS[word]} {word} ago"
            )
        return _Raw(str(count), count.column or 0, ago=DaysAgo(int(count), word))

    def values(self, *raws: _Raw) -> tuple[_Raw, ...]:
        return raws

    # conditions
    def compare(self, field: Token, operator: Token, raw: _Raw) -> Expression:
        op = {"==": "=", "<>": "!="}.get(str(operator), str(operator))
        spec = self._spec(field)
        if op == "!=":
            return Not(self._condition(field, spec, "=", (raw,)))
        return self._condition(field, spec, op, (raw,))

    def listed(self, field: Token, _eq: Token, *raws: _Raw) -> Expression:
        return self._condition(field, self._spec(field), "in", raws)

    def range(self, field: Token, _eq: Token, *parts: _Raw | Token) -> Expression:
        spec = self._spec(field)
        if spec.kind not in ORDERED_KINDS:
            raise SegmentError(f"{field} at column {field.column} takes no range (MIN..MAX)")
        split = next(i for i, p in enumerate(parts) if isinstance(p, Token))
        low, high = parts[:split], parts[split + 1 :]
        bounds = [self._condition(field, spec, ">=", low)] if low else []  # type: ignore[arg-type]
        bounds += [self._condition(field, spec, "<=", high)] if high else []  # type: ignore[arg-type]
        return conjunction(bounds)

    def between(self, field: Token, low: _Raw, high: _Raw) -> Expression:
        return self._condition(field, self._spec(field), "between", (low, high))

    def member(self, field: Token, raws: tuple[_Raw, ...]) -> Expression:
        return self._condition(field, self._spec(field), "in", raws)

    def not_member(self, field: Token, raws: tuple[_Raw, ...]) -> Expression:
        return Not(self.member(field, raws))

    def contains(self, field: Token, raws: _Raw | tuple[_Raw, ...]) -> Expression:
        spec = self._spec(field)
        if spec.kind != "list":
            raise SegmentError(
                f"contains at column {field.column} needs a list field (tags, interests, "
                f"topics), not {field}"
            )
        return self._condition(field, spec, "in", raws if isinstance(raws, tuple) else (raws,))

    def empty(self, field: Token) -> Expression:
        self._spec(field)
        return Condition(str(field), "empty")

    def not_empty(self, field: Token) -> Expression:
        return Not(self.empty(field))

    def in_journey(self, name: Token) -> Expression:
        return Journey(_unquote(name), finished=False)

    def finished_journey(self, name: Token, outcome: Token | None = None) -> Expression:
        return Journey(_unquote(name), True, _unquote(outcome) if outcome else None)

    # logic
    def negation(self, part: Expression) -> Expression:
        return Not(part)

    def and_expr(self, *parts: Expression) -> Expression:
        return conjunction(parts)

    def or_expr(self, *parts: Expression) -> Expression:
        flat: list[Expression] = []
        for part in parts:
            flat.extend(part.parts if isinstance(part, Any_) else (part,))
        return Any_(tuple(flat))

    # checks
    def _spec(self, field: Token) -> Field:
        return field_spec(str(field), field.column)

    def _condition(
        self, field: Token, spec: Field, operator: str, raws: tuple[_Raw, ...]
    ) -> Condition:
        name = str(field)
        if spec.kind == "list" and operator in ("=", "in"):
            operator = "in"
        elif operator in ("<", "<=", ">", ">=", "between") and spec.kind not in ORDERED_KINDS:
            raise SegmentError(
                f"{name} at column {field.column} cannot be compared with {operator}: "
                "it takes =, !=, in, not in, is empty"
                + (", contains" if spec.kind == "list" else "")
            )
        if operator == "in" and spec.kind in ("date", "day"):
            raise SegmentError(f"{name} at column {field.column}: use between for a span of dates")
        return Condition(name, operator, tuple(_value(name, spec, raw) for raw in raws))


def _unquote(token: Token) -> str:
    text = str(token)
    return text[1:-1] if token.type == "STRING" else text


def _value(name: str, spec: Field, raw: _Raw) -> Value:
    """``raw`` as the type of ``name``; an error names the column and what fits."""
    where = f"{raw.text!r} at column {raw.column}"
    if raw.ago is not None:
        if spec.kind not in ("date", "day"):
            raise SegmentError(f"{where}: {name} is not a date, so it takes no 'ago'")
        return raw.ago
    if spec.kind == "number":
        try:
            number = float(raw.text)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise SegmentError(f"{where}: {name} needs a number")
        return number
    if spec.kind in ("date", "day"):
        if raw.text.lower() == "today":
            return DaysAgo(0, "days")
        try:
            if _DATE.match(raw.text):
                return date.fromisoformat(raw.text)
        except ValueError:
            pass
        raise SegmentError(
            f"{where}: {name} needs a date, YYYY-MM-DD, today or N days|weeks|months ago"
        )
    if spec.kind == "bool":
        if raw.text.lower() not in ("true", "false"):
            raise SegmentError(f"{where}: {name} is true or false")
        return raw.text.lower() == "true"
    value = raw.text.upper() if spec.upper else raw.text
    if spec.choices and value not in spec.choices:
        raise SegmentError(
            f"{where}: unknown value(s) {value} for {name}; known: {', '.join(spec.choices)}"
        )
    return value


# -- segments stored as JSON filters (before the language) --------------------------


def from_filters(filters: Mapping[str, Any]) -> Expression:
    """A segment stored as ``{"stage": {"in": [...]}, "days_inactive": {"min": 180}}``."""
    parts: list[Expression] = []
    for name, condition in filters.items():
        spec = field_spec(name)
        if not isinstance(condition, Mapping):
            raise SegmentError(f"{name}: a stored condition is an object such as {{'in': [...]}}")
        for key, operator in (("min", ">="), ("max", "<=")):
            if key in condition:
                parts.append(Condition(name, operator, (_stored(name, spec, condition[key]),)))
        for key in ("in", "any"):
            if key in condition:
                values = tuple(_stored(name, spec, v) for v in condition[key])
                parts.append(Condition(name, "in", values))
    return conjunction(parts)


def _stored(name: str, spec: Field, value: Any) -> Value:
    return _value(name, spec, _Raw(str(value), 0))


__all__ = ["from_filters", "parse_conditions", "parse_expression"]
