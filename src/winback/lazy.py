"""The lazy public face of a part: its ``__init__`` names what users call, and each
name is imported from its module on first use, so importing one piece of a part (the
tracking server's machine-open rule, the web server's exits) does not load the rest.

A part's ``__init__`` lists its names under ``TYPE_CHECKING`` (for readers and type
checkers), and sets ``__getattr__ = lazy_face(__name__, HOMES)``, ``HOMES`` mapping each
name to the module of the part that holds it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_face(package: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """The module ``__getattr__`` of ``package``: ``homes[name]`` is the module (within
    the package) that holds ``name``."""

    def face(name: str) -> Any:
        if name in homes:
            return getattr(import_module(f"{package}.{homes[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return face
