"""``winback import contacts|events``."""

from __future__ import annotations

import typer

app = typer.Typer(help="Load contacts and events from CSV, JSON Lines or Parquet.", no_args_is_help=True)
