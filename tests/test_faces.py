"""Each part's public face: what its ``__init__`` names is there, is what it says (a
function or a class, never a submodule of the same name), and the CLI calls the part
through it rather than reaching into its modules."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from pathlib import Path
from types import ModuleType

import pytest

import winback

FACES = ["winback.compliance", "winback.journeys", "winback.scoring", "winback.web"]
CLI = Path(winback.__file__).parent / "cli"


@pytest.mark.parametrize("name", FACES)
def test_every_name_of_a_face_is_what_it_says(name: str) -> None:
    package = importlib.import_module(name)
    # Every module of the package loaded first: a submodule named like a function of
    # the face would then hide it.
    for module in pkgutil.walk_packages(package.__path__, f"{name}."):
        importlib.import_module(module.name)
    assert package.__all__
    for exported in package.__all__:
        value = getattr(package, exported)
        assert not isinstance(value, ModuleType), f"{name}.{exported} is a module"
        assert callable(value), f"{name}.{exported}"


@pytest.mark.parametrize("part", ["compliance", "journeys"])
def test_the_cli_calls_a_part_through_its_face(part: str) -> None:
    reaching = [
        f"{path.name}: {line.strip()}"
        for path in sorted(CLI.glob("*.py"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if re.match(rf"\s*from winback\.{part}\.\w+ import ", line)
    ]
    assert reaching == []


def _imported(path: Path) -> set[str]:
    """The winback modules a source file imports, at its top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("winback")}


def test_compliance_does_not_import_ingest() -> None:
    """The importers apply refusals and suppress (ingest calls compliance); compliance
    reads no file format, so the two parts do not import each other."""
    compliance = Path(winback.__file__).parent / "compliance"
    reaching = {
        f"{path.name}: {name}"
        for path in sorted(compliance.glob("*.py"))
        for name in _imported(path)
        if name == "winback.ingest" or name.startswith("winback.ingest.")
    }
    assert reaching == set()
