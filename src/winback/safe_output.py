"""What a person or a file wrote, on its way out of winback: shown on a terminal as
plain text, written to CSV as cells no spreadsheet runs, and written to a file the user
named that is never one of the workspace's own.

Three rules, one home each:

- :func:`shown` / :func:`plain`: a value as a terminal may show it. Rich markup is never
  read from it (:class:`rich.text.Text`), and control characters (C0, C1, ESC sequences,
  bidirectional overrides, line separators) are written as their escape (``\\x1b``), so
  nothing a contact typed can move the cursor, open a hyperlink or hide text.
- :func:`csv_cell` / :func:`csv_writer`: a text cell starting with ``=``, ``+``, ``-``,
  ``@``, a tab or a carriage return gets a leading ``'`` (OWASP's advice against CSV
  injection). A phone number in E.164 (``+33612345678``) gets it too: spreadsheets read
  ``'+33…`` as the text ``+33…``, and winback's phone parsing ignores the ``'``. Numbers
  are written as numbers (a spreadsheet does not run ``-12.5``).
- :func:`output_file`: the file behind an ``--out`` option. It refuses the workspace's
  database (and its SQLite ``-wal``, ``-shm`` and ``-journal`` files), secret and config,
  whatever the path's spelling (relative, symlinks, hard links), and writes through a
  temporary file renamed over the target at the end, so a crash leaves the old file or
  the new one, never half of one.
"""

from __future__ import annotations

import csv
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from rich.text import Text

from winback.errors import WinbackError

# DEL, the C1 controls, bidirectional marks, overrides and isolates (they can make a
# terminal show text in another order than it is), line and paragraph separators.
_BEYOND_C0 = r"\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
# ESC sequences as terminals read them (CSI ``ESC [ ... final``, OSC ``ESC ] ... BEL|ST``,
# and the two-character ones), then any single control character left.
_UNSAFE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]?"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[@-_]?"
    rf"|[\x00-\x1f{_BEYOND_C0}]"
)


def _escaped(match: re.Match[str]) -> str:
    return match.group().encode("unicode_escape").decode("ascii")


def shown(value: object) -> str:
    """``value`` as text a terminal shows as it is: every control character (and the ESC
    sequences they start) written as its Python escape.

    >>> shown("Ann\\x1b[31mRED\\nX")
    'Ann\\\\x1b[31mRED\\\\nX'
    """
    return _UNSAFE.sub(_escaped, str(value))


def plain(value: object, style: str = "") -> Text:
    """``value`` as a Rich :class:`~rich.text.Text`: printed as it is, never read as
    markup (``[link=…]``, ``[/bold]``) or emoji codes, control characters escaped
    (:func:`shown`). Every table cell and message that shows data goes through it."""
    return Text(shown(value), style=style)


# What ``json.dumps(..., ensure_ascii=False)`` leaves as it is and a terminal may act on
# (it escapes the C0 controls itself).
_JSON_UNSAFE = re.compile(f"[{_BEYOND_C0}]")


def json_text(document: str) -> str:
    """A JSON document with the characters :func:`shown` escapes, and JSON keeps raw
    (DEL, C1 controls, bidirectional overrides, line separators), written as ``\\u``
    escapes with four hex digits:
    the same data for a script, nothing a terminal acts on. They can only stand inside
    strings, where the escape means the same character."""
    return _JSON_UNSAFE.sub(lambda match: f"\\u{ord(match.group()):04x}", document)


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A value as a CSV cell: text that a spreadsheet would read as a formula gets a
    leading ``'``; None becomes empty; anything else is left to :mod:`csv`."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class _SafeWriter:
    """A :func:`csv.writer` whose every cell goes through :func:`csv_cell`."""

    def __init__(self, stream: TextIO) -> None:
        self._writer = csv.writer(stream)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([csv_cell(value) for value in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def csv_writer(stream: TextIO) -> _SafeWriter:
    """The writer of every CSV winback produces (exports, quarantine files)."""
    return _SafeWriter(stream)


class OutputRefused(WinbackError):
    """An ``--out`` path names a file winback must not overwrite."""

    exit_code = 2


def _same_file(path: Path, other: Path) -> bool:
    if path == other:
        return True
    try:
        return path.exists() and other.exists() and os.path.samefile(path, other)
    except OSError:
        return False


def check_output(path: Path, protected: Iterable[Path]) -> Path:
    """The resolved ``path`` after checking it is none of the ``protected`` files (nor a
    hard link to one) and can be written as a file; raises :class:`OutputRefused`."""
    target = path.expanduser().resolve()
    for own in protected:
        if _same_file(target, own.resolve()):
            raise OutputRefused(
                f"{path}: refusing to write there, it is the workspace's own {own.name} "
                "(writing would destroy it); choose another file"
            )
    if target.is_dir():
        raise OutputRefused(f"{path} is a folder: give the name of a file to write")
    if not target.parent.is_dir():
        raise OutputRefused(f"{path}: the folder {target.parent} does not exist")
    return target


@contextmanager
def output_file(path: Path, protected: Iterable[Path]) -> Iterator[Path]:
    """A temporary path next to ``path`` to write the output to; renamed over ``path``
    when the block ends without error, removed otherwise. ``path`` is checked first
    (:func:`check_output`).

        with output_file(out, workspace.own_files()) as temporary:
            temporary.write_text(document)
    """
    target = check_output(path, protected)
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        umask = os.umask(0)
        os.umask(umask)
        # mkstemp makes the file private; the output gets the mode a plain open() gives.
        temporary.chmod(0o666 & ~umask)
        temporary.replace(target)
    finally:
        temporary.unlink(missing_ok=True)
