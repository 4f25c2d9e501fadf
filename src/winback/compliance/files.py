"""The files of a workspace that can name a person, and how one person is taken out of
them: the quarantine (rejected input rows), the file channel's output (``.eml`` messages,
``email.jsonl``, ``sms.jsonl``), logs and any other text file winback or the user left in
the folder. The database, the secret, ``winback.toml``, the templates and the journey
definitions are left alone: they are not records about people.

A line (or CSV record) names the person when it holds the email, whatever its case, or
the phone in any usual writing (``+33 6 12 34 56 78``, ``06.12.34.56.78``, ``0033612...``).
Files that are one document (an ``.eml``, a ``.json`` export) are deleted when they name
the person; files of lines are rewritten without those lines; a binary file that names
the person (a Parquet input) is reported, not changed: winback cannot rewrite it safely.
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import phonenumbers

from winback.config import CONFIG_FILE
from winback.workspace import DATABASE_FILE, SECRET_FILE, Workspace

_DOCUMENTS = (".eml", ".json", ".html", ".pdf")
_SEPARATORS = re.compile(r"[\s.\-()/]")


@dataclass
class FileScrub:
    """What erasing one person did to the workspace's files (paths relative to it)."""

    rewritten: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)


class _Person:
    """The forms in which one person's addresses can appear in a file, as patterns that
    do not match inside a longer address or number (``ann@`` is not ``joann@``)."""

    def __init__(self, email: str | None, phone: str | None) -> None:
        self.email = (
            re.compile(
                rb"(?<![a-z0-9.!#$%&'*+/=?^_`{|}~-])"
                + re.escape(email.lower().encode())
                + rb"(?![a-z0-9-]|\.[a-z0-9])"
            )
            if email
            else None
        )
        self.phone = None
        if phone:
            digits = phone.lstrip("+")
            forms = {phone, digits, "00" + digits}
            try:
                parsed = phonenumbers.parse(phone)
                national = phonenumbers.format_number(
                    parsed, phonenumbers.PhoneNumberFormat.NATIONAL
                )
                forms.add(_SEPARATORS.sub("", national))
            except phonenumbers.NumberParseException:
                pass
            alternatives = b"|".join(re.escape(form.encode()) for form in sorted(forms))
            self.phone = re.compile(rb"(?<![0-9+])(?:" + alternatives + rb")(?![0-9])")

    def named_in(self, data: bytes) -> bool:
        if self.email and self.email.search(data.lower()):
            return True
        if self.phone:
            packed = _SEPARATORS.sub("", data.decode("utf-8", "replace")).encode()
            return self.phone.search(packed) is not None
        return False


def _skipped(workspace: Workspace, path: Path) -> bool:
    relative = path.relative_to(workspace.path)
    top = relative.parts[0]
    return (
        top in (CONFIG_FILE, SECRET_FILE, "dispatch.lock")
        or top.startswith(DATABASE_FILE)
        or path.is_relative_to(workspace.templates_dir)
        or path.is_relative_to(workspace.journeys_dir)
    )


def scrub_files(workspace: Workspace, email: str | None, phone: str | None) -> FileScrub:
    """Take the person with this email and phone out of every file of the workspace."""
    person = _Person(email, phone)
    result = FileScrub()
    for folder, _, names in os.walk(workspace.path):
        for name in sorted(names):
            path = Path(folder) / name
            if _skipped(workspace, path):
                continue
            data = path.read_bytes()
            if not person.named_in(data):
                continue
            relative = str(path.relative_to(workspace.path))
            if path.suffix.lower() in _DOCUMENTS:
                path.unlink()
                result.deleted.append(relative)
            elif b"\x00" in data[:8192]:
                result.left.append(relative)
            else:
                _rewrite(path, data, person)
                result.rewritten.append(relative)
    return result


def _rewrite(path: Path, data: bytes, person: _Person) -> None:
    """Write the file again without the lines (CSV records) that name the person, through
    a new file renamed over the old one, so a crash leaves one or the other whole."""
    if path.suffix.lower() == ".csv":
        # Latin-1 maps every byte to one character and back: the records kept are
        # written byte for byte as they were, whatever the file's encoding.
        text = data.decode("latin-1")
        out = io.StringIO(newline="")
        writer = csv.writer(out)
        for record in csv.reader(io.StringIO(text, newline="")):
            if not person.named_in(",".join(record).encode("latin-1")):
                writer.writerow(record)
        kept = out.getvalue().encode("latin-1")
    else:
        kept = b"".join(
            line for line in data.splitlines(keepends=True) if not person.named_in(line)
        )
    fresh = path.with_name(path.name + ".scrub")
    fresh.write_bytes(kept)
    fresh.replace(path)
