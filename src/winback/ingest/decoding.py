"""Decoding input files: which encoding a text file is in, and the file read as UTF-8
bytes whatever it is in, for Arrow's CSV reader, the ``csv`` module and JSON Lines.

A file is UTF-8 (with or without a byte order mark) when the whole of it decodes as
UTF-8, and cp1252 otherwise: that is what French Excel writes, and cp1252 is a superset
of Latin-1's printable characters. A file whose lines are some UTF-8 and some not (two
exports pasted together) is ``mixed``, read line by line, each in its own encoding.
Bytes that cp1252 leaves undefined (0x81, 0x8D, 0x8F, 0x90, 0x9D) become U+FFFD. The
lines read other than as plain UTF-8 are noted by their number, and the import reports
them as warnings.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

CHUNK = 1024 * 1024


class CountingReader(io.RawIOBase):
    """A raw file that counts the bytes read, for the progress bar."""

    def __init__(self, raw: BinaryIO, path: Path) -> None:
        self.raw = raw
        self.path = path
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        buffer[: len(data)] = data
        self.count += len(data)
        return len(data)

    def close(self) -> None:
        self.raw.close()
        super().close()


def detect_encoding(path: Path) -> str:
    """``utf-8-sig`` when the whole file is UTF-8 (a BOM is skipped), ``mixed`` when some
    of its lines are UTF-8 with other than ASCII and others are not UTF-8, else
    ``cp1252``."""
    utf8 = broken = False
    with path.open("rb") as stream:
        rest = b""
        while chunk := stream.read(CHUNK):
            data = rest + chunk
            cut = _whole(data)
            found = _classify(data[:cut])
            rest = data[cut:]
            utf8, broken = utf8 or found[0], broken or found[1]
            if utf8 and broken:
                return "mixed"
    found = _classify(rest)
    utf8, broken = utf8 or found[0], broken or found[1]
    if broken:
        return "mixed" if utf8 else "cp1252"
    return "utf-8-sig"


def _whole(data: bytes) -> int:
    """Where to cut ``data`` so that its head is whole lines, or whole characters when
    it holds no line break (a huge field)."""
    cut = data.rfind(b"\n") + 1
    if cut:
        return cut
    cut = len(data)
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte < 0x80:
            break
        if byte >= 0xC0:  # the first byte of a sequence the chunk may have cut
            return len(data) - back
    return cut


def _classify(data: bytes) -> tuple[bool, bool]:
    """Whether ``data`` has UTF-8 lines of more than ASCII, and lines not UTF-8."""
    try:
        data.decode("utf-8")
        return not data.isascii(), False
    except UnicodeDecodeError:
        pass
    if not _utf8_sequences(data):
        return False, True
    utf8 = broken = False
    for line in data.splitlines():
        if line.isascii():
            continue
        try:
            line.decode("utf-8")
            utf8 = True
        except UnicodeDecodeError:
            broken = True
    return utf8, broken


def _utf8_sequences(data: bytes) -> bool:
    """Whether ``data`` holds a byte sequence UTF-8 reads as one character of two or
    three bytes (cp1252 reads it as an uppercase letter, then symbols: rare in text)."""
    codes = np.frombuffer(data, np.uint8)
    tail = (codes >= 0x80) & (codes <= 0xBF)
    two = (codes[:-1] >= 0xC2) & (codes[:-1] <= 0xDF) & tail[1:]
    three = (codes[:-2] >= 0xE0) & (codes[:-2] <= 0xEF) & tail[1:-1] & tail[2:]
    return bool(two.any() or three.any())


class _Recoded(io.RawIOBase):
    """A cp1252 or mixed file (:func:`detect_encoding`) read as UTF-8 bytes, each line
    whose reading was not plain noted in ``notes`` by its number."""

    def __init__(self, raw: CountingReader, mixed: bool, notes: dict[int, str]) -> None:
        self.raw = raw
        self.mixed = mixed
        self.notes = notes
        self.line = 1
        self.rest: list[bytes] = []
        self.out = memoryview(b"")
        self.done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self.out and not self.done:
            chunk = self.raw.read(CHUNK)
            if not chunk:
                self.done = True
                data = b"".join(self.rest)
                self.rest = []
            elif not self.mixed:
                data = chunk  # one byte a character: any cut is a cut between characters
            elif (cut := chunk.rfind(b"\n") + 1) == 0:
                self.rest.append(chunk)
                continue
            else:
                data = b"".join([*self.rest, chunk[:cut]])
                self.rest = [chunk[cut:]]
            self.out = memoryview(self._decode(data).encode("utf-8"))
        count = min(len(buffer), len(self.out))
        buffer[:count] = self.out[:count]
        self.out = self.out[count:]
        return count

    def _decode(self, data: bytes) -> str:
        first = self.line
        if self.mixed:
            text = self._decode_lines(data)
        else:
            text = data.decode("cp1252", errors="replace")
            start = 0
            while (at := text.find("\ufffd", start)) >= 0:
                self.notes[first + text.count("\n", 0, at)] = _UNDEFINED
                start = at + 1
        self.line += data.count(b"\n")
        if first == 1 and text.startswith("\ufeff"):
            text = text[1:]
        return text

    def _decode_lines(self, data: bytes) -> str:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass
        parts = []
        for at, line in enumerate(data.split(b"\n")):
            try:
                parts.append(line.decode("utf-8"))
            except UnicodeDecodeError:
                text = line.decode("cp1252", errors="replace")
                parts.append(text)
                undefined = " (with undefined bytes as U+FFFD)" if "\ufffd" in text else ""
                self.notes[self.line + at] = (
                    f"line not UTF-8 like the rest: read as cp1252{undefined}"
                )
        return "\n".join(parts)

    def close(self) -> None:
        self.raw.close()
        super().close()


_UNDEFINED = "bytes undefined in cp1252 (the file's encoding) read as U+FFFD"


def utf8_stream(
    path: Path, encoding: str, notes: dict[int, str]
) -> tuple[CountingReader, io.RawIOBase]:
    """``path`` opened as UTF-8 bytes (a cp1252 or mixed file recoded), and the reader
    that counts its bytes, for the progress bar."""
    counting = CountingReader(path.open("rb"), path)
    if encoding == "utf-8-sig":
        return counting, counting
    return counting, _Recoded(counting, encoding == "mixed", notes)


def text_stream(stream: io.RawIOBase, **options: Any) -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BufferedReader(stream, CHUNK), encoding="utf-8-sig", **options)
