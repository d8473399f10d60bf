"""passage.stun is a pure codec: it imports nothing of ours and does no I/O."""

from __future__ import annotations

import ast
from pathlib import Path

import passage.stun

FORBIDDEN = {"asyncio", "socket", "ssl", "time", "selectors", "os", "random", "secrets"}
PACKAGE = Path(passage.stun.__file__).parent


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_codec_imports_no_io_and_nothing_else_of_passage() -> None:
    modules = sorted(PACKAGE.glob("*.py"))
    assert len(modules) >= 6
    for path in modules:
        for name in imported_modules(path):
            top = name.split(".")[0]
            assert top not in FORBIDDEN, (path.name, name)
            assert top != "passage", (path.name, name)
