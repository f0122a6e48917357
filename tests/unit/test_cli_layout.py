"""The layout of gateway/cli: command modules import only the shared modules (options, output,
exits), never one another, and gateway/cli/__init__.py wires every command they define."""

import ast
import importlib
from pathlib import Path
from types import ModuleType

import click

import gateway.cli
from gateway.cli import cli

FOLDER = Path(gateway.cli.__file__).parent
SHARED = {"options", "output", "exits"}
MODULES = sorted(path.stem for path in FOLDER.glob("*.py"))


def _modules(node: ast.Import | ast.ImportFrom) -> list[str]:
    """The dotted names of the modules an import statement loads (relative ones in gateway.cli):
    `from package import name` loads package.name when that is a module, else the package."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    package = ["gateway", "cli"][:3 - node.level] if node.level else []
    base = ".".join([*package, *filter(None, [node.module])])
    return [f"{base}.{alias.name}" if _is_cli_module(f"{base}.{alias.name}") else base
            for alias in node.names]


def _is_cli_module(name: str) -> bool:
    parts = name.split(".")
    return parts[:2] == ["gateway", "cli"] and (len(parts) == 2 or
                                                (len(parts) == 3 and parts[2] in MODULES))


def _cli_imports(source: str) -> set[str]:
    """The modules of gateway/cli that `source` imports ("__init__" for the package itself)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            for name in _modules(node):
                if name == "gateway.cli":
                    found.add("__init__")
                elif name.startswith("gateway.cli."):
                    found.add(name.split(".")[2])
    return found


def test_modules_import_only_the_shared_modules():
    strays = {stem: sorted(_cli_imports((FOLDER / f"{stem}.py").read_text()) - SHARED)
              for stem in MODULES if stem != "__init__"}
    assert {stem: found for stem, found in strays.items() if found} == {}


def _reachable(command: click.Command) -> list[click.Command]:
    found = [command]
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            found += _reachable(sub)
    return found


def _module(stem: str) -> ModuleType:
    return gateway.cli if stem == "__init__" else importlib.import_module(f"gateway.cli.{stem}")


def test_every_command_defined_is_wired():
    wired = {id(command) for command in _reachable(cli)}
    unwired = [
        f"{stem}.{name}"
        for stem in MODULES
        for name, value in vars(_module(stem)).items()
        if isinstance(value, click.Command) and id(value) not in wired
    ]
    assert unwired == []
