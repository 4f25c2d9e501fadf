"""Workspaces of any profile for the scoring tests, and a helper to score them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from winback.domain import Profile
from winback.scoring import ScoreResult, contact_scores, score
from winback.workspace import ENV_DATABASE_URL, Workspace


@pytest.fixture
def profile_workspace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Workspace]]:
    """``profile_workspace("retail", timezone="Europe/Paris")``: a SQLite workspace of a
    profile, with keys of winback.toml replaced (``key = value`` lines, first match)."""
    monkeypatch.delenv(ENV_DATABASE_URL, raising=False)
    opened: list[Workspace] = []

    def make(profile: Profile = "ecommerce", **overrides: object) -> Workspace:
        path = tmp_path / f"ws{len(opened)}"
        Workspace.init(path, profile).close()
        config = path / "winback.toml"
        lines = config.read_text().splitlines()
        for key, value in overrides.items():
            rendered = f'"{value}"' if isinstance(value, str) else str(value).lower()
            index = next(i for i, line in enumerate(lines) if line.startswith(f"{key} ="))
            lines[index] = f"{key} = {rendered}"
        config.write_text("\n".join(lines) + "\n")
        ws = Workspace.open(path)
        opened.append(ws)
        return ws

    yield make
    for ws in opened:
        ws.close()


def run_score(ws: Workspace, now: datetime, *, full: bool = False) -> ScoreResult:
    return score(ws, now=now, full=full)


def scores_of(ws: Workspace, contact_id: int) -> dict[str, Any]:
    with ws.engine.connect() as connection:
        return contact_scores(connection, contact_id)


def stage_of(ws: Workspace, contact_id: int) -> str | None:
    stage: str | None = scores_of(ws, contact_id)["stage"]
    return stage
