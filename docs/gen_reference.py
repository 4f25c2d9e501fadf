"""Write the reference pages of the documentation from the code itself.

- ``reference/cli.md``: every command and option, from the Typer application, and the
  keys each ``--json`` command prints, from :mod:`winback.cli.json_keys`;
- ``reference/config.md``: every key of ``winback.toml`` with its default, from the pydantic
  models, and its meaning, from the comments of the file ``winback init`` writes.

``make docs`` runs it before ``mkdocs build``; ``python docs/gen_reference.py --check``
exits 1 when a committed page differs from what the code says (the tests run that).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import typer
from pydantic import BaseModel

from winback.cli import walk_commands
from winback.cli.json_keys import JSON_KEYS
from winback.config import Config, render_config
from winback.durations import format_duration

DOCS = Path(__file__).parent
PAGES = {"reference/cli.md", "reference/config.md"}


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def cli_page() -> str:
    lines = [
        "# Command reference",
        "",
        "Generated from the code by `docs/gen_reference.py`: every command and option, and",
        "the keys of what a command prints with `--json` (`steps[].sent` is the `sent` of",
        "each item of `steps`; `<stage>` stands for any one key; `.*`, for anything below).",
        "Every command also takes `--help`.",
        "",
    ]
    for name, command in walk_commands():
        ctx = typer.Context(command, info_name=name)
        usage = " ".join(command.collect_usage_pieces(ctx))
        lines += [f"## `{name}`", "", f"```\n{name} {usage}\n```", ""]
        lines += [" ".join((command.help or "").split()), ""]
        lines += options_table(command) + json_table(name.removeprefix("winback "))
    return "\n".join(lines)


def options_table(command: Any) -> list[str]:
    params = [param for param in command.params if param.name != "help"]
    if not params:
        return []
    lines = ["| argument or option | default | meaning |", "| --- | --- | --- |"]
    for param in params:
        if param.param_type_name == "argument":
            label = f"`{(param.name or '').upper()}`"
        else:
            label = ", ".join(f"`{opt}`" for opt in [*param.opts, *param.secondary_opts])
        default = param.default
        shown = "" if default in (None, False, ()) or callable(default) else f"`{default}`"
        meaning = _cell(getattr(param, "help", None) or "")
        lines.append(f"| {label} | {shown} | {meaning} |")
    return [*lines, ""]


def json_table(command: str) -> list[str]:
    """The keys ``winback COMMAND --json`` prints (:data:`winback.cli.json_keys.JSON_KEYS`)."""
    if command not in JSON_KEYS:
        return []
    lines = ["With `--json`, it prints:", "", "| key | meaning |", "| --- | --- |"]
    for key, meaning in JSON_KEYS[command].items():
        lines.append(f"| `{_cell(key)}` | {_cell(meaning)} |")
    return [*lines, ""]


def template_comments() -> dict[str, str]:
    """``section.key`` → the comment beside it (or on the lines just above it) in the
    ``winback.toml`` that ``winback init`` writes."""
    meanings: dict[str, str] = {}
    section = ""
    above: list[str] = []
    for raw in render_config("ecommerce", "shop").splitlines():
        line = raw.strip()
        if match := re.fullmatch(r"\[(\w+)\]", line):
            section, above = match.group(1), []
            continue
        match = re.fullmatch(r"#?\s*(\w+)\s*=\s*(.*?)(?:\s+#\s*(.*))?", line)
        if match and section:
            comment = match.group(3) or " ".join(above)
            meanings[f"{section}.{match.group(1)}"] = comment
            above = []
        elif line.startswith("#"):
            above.append(line.lstrip("# "))
        else:
            above = []
    return meanings


def config_keys() -> list[tuple[str, str, Any]]:
    """Every key of ``winback.toml`` as (``section.key``, type, default)."""
    keys = []
    for section_name, section_field in Config.model_fields.items():
        section = section_field.alias or section_name
        model = section_field.annotation
        assert isinstance(model, type) and issubclass(model, BaseModel)
        defaults = model.model_validate({})
        shown = defaults.model_dump(mode="json", by_alias=True)
        for name, field in model.model_fields.items():
            key = field.alias or name
            value = getattr(defaults, name)
            if isinstance(value, timedelta):
                kind, default = "duration", format_duration(value)
            else:
                kind = re.sub(
                    r"typing\.|winback\.\w+\.|<class '(\w+)'>", r"\1", str(field.annotation)
                )
                default = shown[key]
            keys.append((f"{section}.{key}", kind, default))
    return keys


def _toml(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def config_page() -> str:
    meanings = template_comments()
    lines = [
        "# `winback.toml` reference",
        "",
        "Generated from the code by `docs/gen_reference.py`: every key, its type, its default",
        "and what it means. Every key is optional. Durations are written `45s`, `90min`,",
        "`12h`, `30d`, `2w` or `3y`. The `[policy]` defaults shown are those of the",
        "`ecommerce` profile; `winback init --profile` writes the chosen profile's.",
        "",
    ]
    section = ""
    for key, kind, default in config_keys():
        head = key.split(".")[0]
        if head != section:
            section = head
            lines += ["", f"## `[{section}]`", "", "| key | type | default | meaning |"]
            lines.append("| --- | --- | --- | --- |")
        shown = "" if default is None else f"`{_toml(default)}`"
        lines.append(
            f"| `{key.split('.', 1)[1]}` | `{_cell(kind)}` | {_cell(shown)} "
            f"| {_cell(meanings.get(key, ''))} |"
        )
    return "\n".join(lines) + "\n"


def pages() -> dict[str, str]:
    return {"reference/cli.md": cli_page(), "reference/config.md": config_page()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="Exit 1 if a page is stale.")
    args = parser.parse_args()
    stale = []
    for name, text in pages().items():
        path = DOCS / name
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"stale: {', '.join(stale)}; run `make docs`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
