"""Answers to the win-back survey ("Why do we hear less from you?"): stored as written,
counted for the reports."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, func, insert, select

from winback.store.schema import survey_answers


def replace_survey_answer(connection: Connection, row: dict[str, Any]) -> tuple[int, int]:
    """Store a person's answer (``contact_id``, ``outbox_id``, ``reason``, ``text``,
    ``answered_at`` in naive UTC) in place of any earlier one of theirs: one answer per
    person, the latest. Returns its id and how many earlier answers it replaced."""
    replaced = connection.execute(
        delete(survey_answers).where(survey_answers.c.contact_id == row["contact_id"])
    ).rowcount
    result = connection.execute(insert(survey_answers).returning(survey_answers.c.id), row)
    return int(result.scalar_one()), int(replaced)


def survey_counts(connection: Connection) -> dict[str, int]:
    """How many answers gave each reason."""
    rows = connection.execute(
        select(survey_answers.c.reason, func.count()).group_by(survey_answers.c.reason)
    )
    return {reason: count for reason, count in rows}


def survey_texts(connection: Connection, limit: int = 100) -> list[dict[str, Any]]:
    """The latest free-text answers, newest first, as written (escape them to show them)."""
    query = (
        select(survey_answers.c.contact_id, survey_answers.c.answered_at, survey_answers.c.text)
        .where(survey_answers.c.text.is_not(None), survey_answers.c.text != "")
        .order_by(survey_answers.c.answered_at.desc(), survey_answers.c.id.desc())
        .limit(limit)
    )
    return [dict(row) for row in connection.execute(query).mappings()]
