"""``winback contact show``."""

from __future__ import annotations

import typer

app = typer.Typer(help="Look at one contact.", no_args_is_help=True)
