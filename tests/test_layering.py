"""Layering, read from the imports with ``ast`` (STYLE.md: one owner per concern).

- the codec (``passage.stun``) imports nothing of ours and does no I/O;
- the TURN core (``passage.turn``) imports the codec and ``passage.usage``, and no I/O;
- the identity core (``passage.identity``) imports itself and the TURN credential
  types (``passage.turn.auth``, ``passage.turn.credentials``) only, and does no I/O,
  reads no clock and draws no randomness: callers pass ``now`` and random parts in;
- the Hybrid Connections core (``passage.hybrid``) imports only itself and does no I/O;
- its client SDK (``passage.hybrid.sdk``) is an adapter over the core alone: it
  touches the network, but knows nothing of the relay, the API, the store or the CLI;
- the TURN client core (``passage.turnclient``) imports only the codec and itself, and
  does no I/O, reads no clock and draws no randomness; its asyncio adapter
  (``passage.turnclient.aio``) touches the network but knows nothing of the server;
- ``passage doctor``'s core (``passage.doctor``: targets, statistics, verdict, report) is
  pure like the other cores; its probes (``passage.doctor.aio``) touch the network
  through the TURN client and know nothing of the server;
- the signaling core (``passage.signal``) imports itself and the identity core (token
  verification) only, and does no I/O, reads no clock and draws no randomness;
- the peer SDK (``passage.peer.sdk``) is an adapter that knows the signaling wire and
  nothing of the server; its ARQ, nomination policy and path naming are pure;
- the store imports none of the protocol layers;
- the API (``passage.api``) is an adapter: it may touch the network and import any of
  our layers, but not the app or the CLI that assemble it;
- only the adapters, the app and the CLI touch the network.

``from X import Y`` counts as importing ``X.Y``, so ``from passage import app`` is seen.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import passage

PACKAGE = Path(passage.__file__).parent
NETWORK = {"asyncio", "socket", "ssl", "selectors", "subprocess", "uvloop"}
CLOCK = {"time"}

RANDOM = {"os", "random", "secrets"}
LEAVES = {
    "passage.frontdoor",
    "passage.addresses",
    "passage.endpoint",
    "passage.http_errors",
    "passage.ice_uris",
    "passage.limiter",
}
"""Vocabulary every layer may use: it imports nothing of ours and does no I/O."""

RULES: dict[str, tuple[set[str], set[str]]] = {
    # layer: (passage modules it may import, modules it may not, ours or not)
    "stun": (set(), NETWORK | CLOCK | RANDOM),
    "turn": (
        {"passage.stun", "passage.turn", "passage.usage"},
        NETWORK | CLOCK | {"passage.turn.aio"},
    ),
    "usage": (set(), NETWORK | CLOCK),
    "store": ({"passage.store", "passage.usage"}, {"socket", "ssl", "subprocess"}),
    "identity": (
        {"passage.identity", "passage.turn.auth", "passage.turn.credentials"},
        NETWORK | CLOCK | RANDOM,
    ),
    "api": ({"passage"}, {"passage.app", "passage.cli"}),
    "hybrid": ({"passage.hybrid"}, NETWORK | CLOCK | RANDOM),
    "turnclient": ({"passage.stun", "passage.turnclient"}, NETWORK | CLOCK | RANDOM),
    # Adapters: the network is theirs; of ours, only what they name (not the server).
    "turnclient.aio": ({"passage.stun", "passage.turnclient"}, set()),
    "doctor": (
        {"passage.stun", "passage.turnclient", "passage.doctor"},
        NETWORK | CLOCK | RANDOM | {"passage.turnclient.aio", "passage.doctor.aio"},
    ),
    "doctor.aio": ({"passage.stun", "passage.turnclient", "passage.doctor"}, set()),
    "signal": ({"passage.signal", "passage.identity"}, NETWORK | CLOCK | RANDOM),
    # The peer SDK is an adapter (aiohttp, aioice) that knows the signaling wire, not the
    # server; its core (ARQ, nomination policy, path naming, ICE servers) is pure.
    "peer": ({"passage.peer"}, NETWORK | CLOCK | RANDOM | {"passage.peer.sdk"}),
    "peer.sdk": ({"passage.peer", "passage.signal"}, set()),
    "hybrid.sdk": (
        {"passage.hybrid"},
        {"passage.hybrid.aio", "passage.api", "passage.store", "passage.app", "passage.cli"},
    ),
}


def package_of(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])


def imports_of(path: Path, package: str) -> set[str]:
    """Absolute names ``path`` imports (relative ones resolved against ``package``).

    ``import X`` gives ``X``; ``from X import Y`` gives ``X.Y``, Y being a module or a member.
    """
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def within(name: str, modules: set[str]) -> bool:
    """True if ``name`` is one of ``modules`` or inside one."""
    return any(name == module or name.startswith(module + ".") for module in modules)


def violations(path: Path, package: str, layer: str) -> list[str]:
    allowed, forbidden = RULES[layer]
    allowed = allowed | {f"passage.{layer}"} | LEAVES
    ours = {"passage"}
    return [
        name
        for name in imports_of(path, package)
        if within(name, forbidden) or (within(name, ours) and not within(name, allowed))
    ]


def layer_files(layer: str) -> list[Path]:
    folder = PACKAGE.joinpath(*layer.split("."))
    single = folder.with_suffix(".py")
    return [single] if single.exists() else sorted(folder.glob("*.py"))


@pytest.mark.parametrize("layer", sorted(RULES))
def test_layer_imports_only_what_it_may(layer: str) -> None:
    files = layer_files(layer)
    assert files, layer
    for path in files:
        assert violations(path, package_of(path), layer) == [], path


def test_the_checker_catches_violations(tmp_path: Path) -> None:
    """A core module that opened a socket or reached for an adapter would be caught."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import socket\nfrom passage.turn.aio import relay_sockets\nfrom . import server\n"
    )
    assert sorted(violations(probe, "passage.turn", "turn")) == [
        "passage.turn.aio.relay_sockets",
        "socket",
    ]


def test_the_checker_keeps_the_identity_core_pure(tmp_path: Path) -> None:
    """The identity core may use the TURN credential types, not the TURN server or the store."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import secrets\nimport time\nfrom passage.store import identities\n"
        "from passage.turn.auth import Credential\nfrom passage.turn.server import TurnServer\n"
        "from .tokens import mint_token\n"
    )
    assert sorted(violations(probe, "passage.identity", "identity")) == [
        "passage.store.identities",
        "passage.turn.server.TurnServer",
        "secrets",
        "time",
    ]


def test_the_checker_keeps_the_api_below_the_app(tmp_path: Path) -> None:
    """The API may use the network and our layers, but not what assembles it."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import asyncio\nimport ssl\nfrom passage import __version__, app\n"
        "from passage.cli.main import main\nfrom passage.store.identities import IdentityStore\n"
    )
    assert sorted(violations(probe, "passage.api", "api")) == [
        "passage.app",
        "passage.cli.main.main",
    ]


def test_the_checker_keeps_the_doctor_core_off_the_network(tmp_path: Path) -> None:
    """The doctor's core may use the TURN client core, not its adapter, the probes or the server."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import asyncio\nfrom passage.turnclient import Credentials\n"
        "from passage.turnclient.aio import TurnConnection\nfrom .aio import run_doctor\n"
        "from passage.turn.server import TurnServer\nfrom .stats import LoopMeter\n"
    )
    assert sorted(violations(probe, "passage.doctor", "doctor")) == [
        "asyncio",
        "passage.doctor.aio.run_doctor",
        "passage.turn.server.TurnServer",
        "passage.turnclient.aio.TurnConnection",
    ]
