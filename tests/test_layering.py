"""Imports flow one way: the core never reaches into the backends or the adapters."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import hermes_bot

PACKAGE = Path(hermes_bot.__file__).parent
# cli.py is the entry point (bot.py, the hermes-bot command): it wires backends and adapters.
CORE = sorted(path.stem for path in PACKAGE.glob("*.py") if path.stem not in ("__init__", "cli"))
HEAVY = ("torch", "transformers", "discord", "slack_bolt", "slack_sdk")
OURS = ("hermes_bot.inference", "hermes_bot.adapters")


def _imported(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (function-level imports included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_no_core_module_imports_a_backend_or_an_adapter() -> None:
    offenders = {
        stem: sorted(name for name in _imported(PACKAGE / f"{stem}.py") if name.startswith(OURS))
        for stem in CORE
    }
    assert {stem: names for stem, names in offenders.items() if names} == {}


def test_importing_the_core_loads_no_backend_adapter_or_heavy_library() -> None:
    modules = ", ".join(f"hermes_bot.{stem}" for stem in CORE)
    script = (
        f"import sys, json, {modules}\n"
        f"print(json.dumps([m for m in sys.modules if m.split('.')[0] in {HEAVY!r} "
        f"or m.startswith({OURS!r})]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=PACKAGE.parent,
        check=True,
    )
    assert "backend" in CORE and "pipeline" in CORE
    assert json.loads(result.stdout) == []
