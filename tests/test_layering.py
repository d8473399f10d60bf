"""Layering, read from the imports with ``ast`` (STYLE.md: one owner per concern).

- the codec (``passage.stun``) imports nothing of ours and does no I/O;
- the TURN core (``passage.turn``) imports the codec and ``passage.usage``, and no I/O;
- the store imports none of the protocol layers;
- only the adapters, the app and the CLI touch the network.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import passage

PACKAGE = Path(passage.__file__).parent
NETWORK = {"asyncio", "socket", "ssl", "selectors", "subprocess", "uvloop"}
CLOCK = {"time"}

RULES: dict[str, tuple[set[str], set[str]]] = {
    # layer: (passage modules it may import, stdlib/3rd-party tops it may not)
    "stun": (set(), NETWORK | CLOCK | {"os", "random", "secrets"}),
    "turn": ({"passage.stun", "passage.turn", "passage.usage"}, NETWORK | CLOCK),
    "usage": (set(), NETWORK | CLOCK),
    "store": ({"passage.store", "passage.usage"}, {"socket", "ssl", "subprocess"}),
}


def package_of(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])


def imports_of(path: Path, package: str) -> set[str]:
    """Absolute module names ``path`` imports (relative ones resolved against ``package``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                names.add(f"{base}.{node.module}" if node.module else base)
            elif node.module:
                names.add(node.module)
    return names


def violations(path: Path, package: str, layer: str) -> list[str]:
    allowed, forbidden = RULES[layer]
    allowed = allowed | {f"passage.{layer}"}
    found = []
    for name in imports_of(path, package):
        if name.startswith("passage"):
            if not any(name == a or name.startswith(a + ".") for a in allowed):
                found.append(name)
        elif name.split(".")[0] in forbidden:
            found.append(name)
    return found


def layer_files(layer: str) -> list[Path]:
    single = PACKAGE / f"{layer}.py"
    return [single] if single.exists() else sorted((PACKAGE / layer).glob("*.py"))


@pytest.mark.parametrize("layer", sorted(RULES))
def test_layer_imports_only_what_it_may(layer: str) -> None:
    files = layer_files(layer)
    assert files, layer
    for path in files:
        assert violations(path, package_of(path), layer) == [], path


def test_the_checker_catches_violations(tmp_path: Path) -> None:
    """A core module that opened a socket or reached for an adapter would be caught."""
    probe = tmp_path / "probe.py"
    probe.write_text("import socket\nfrom passage.edge import relay\nfrom . import server\n")
    assert sorted(violations(probe, "passage.turn", "turn")) == ["passage.edge", "socket"]
