"""The library's own exceptions. The CLI turns them into a message and an exit code,
the web app into a status code; nothing else catches them."""


class WinbackError(Exception):
    """Base of every error winback raises on purpose. The message says what was wrong,
    where (file, line, key) and what to do."""

    exit_code = 1


class ConfigError(WinbackError):
    """The workspace file is missing, unreadable or has a bad key."""

    exit_code = 2


class WorkspaceError(WinbackError):
    """The workspace folder or its database is missing or not usable."""

    exit_code = 2


class InputFileError(WinbackError):
    """An input file cannot be read at all (missing column, binary, wrong types).
    Row-level problems do not raise: the row is quarantined with a reason."""

    exit_code = 3


class NotFoundError(WinbackError):
    """A named thing (contact, journey, segment) does not exist."""

    exit_code = 4


class StoreError(WinbackError):
    """The database refused an operation or is at the wrong schema version."""

    exit_code = 5
