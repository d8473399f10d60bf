"""Layering, read from the imports with ``ast`` (STYLE.md: one owner per concern).

Every package and top-level module of ``passage`` has one entry in :data:`LAYERS`,
and its role decides what it may import:

1. A **leaf** imports only leaves, and does no I/O, reads no clock, draws no randomness.
2. A **core** imports the leaves, itself and the cores it names; no adapter, no I/O,
   no clock, no randomness: callers pass ``now`` and random parts in.
3. An **adapter** (``X/aio``, ``X/sdk``, the API, the front door) imports its core,
   the leaves, any core, and the adapters or support it names.
4. **Products** (the TURN relay, the Hybrid Connections relay, signaling, the
   management API) are adapters that do not import each other.
5. **Support** (the store, the configuration, the data directory, TLS material, the
   host's addresses) imports leaves, cores and support; no adapter.
6. **Assembly** (the app, the CLI, the list of what the API port serves) may import
   anything, and nothing else imports it; the CLI imports the app only to run it.

A file is checked against its most specific entry, so files in subfolders are covered;
a package or module without an entry fails :func:`test_every_package_has_a_rule`.
``docs/architecture.md`` has one paragraph per entry whose ``May import:`` line is
:func:`may_import` of it (:func:`test_the_architecture_document_follows_the_rules`);
``python tests/test_layering.py`` prints those lines. ``from X import Y`` counts as
importing ``X.Y``, so ``from passage import app`` is seen.
"""

from __future__ import annotations

import ast
import enum
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import passage

PACKAGE = Path(passage.__file__).parent
ARCHITECTURE = PACKAGE.parents[1] / "docs" / "architecture.md"

IO = {
    "asyncio", "socket", "ssl", "selectors", "subprocess", "uvloop",
    "aiohttp", "aioice", "sqlalchemy", "asyncpg", "aiosqlite", "urllib.request", "redis",
}  # fmt: skip
CLOCK = {"time"}
RANDOM = {"os", "random", "secrets"}
PURE = IO | CLOCK | RANDOM
"""What leaves and cores may not import: they take time and random parts from callers."""


class Role(enum.Enum):
    LEAF = "leaf"
    CORE = "core"
    ADAPTER = "adapter"
    PRODUCT = "product"
    SUPPORT = "support"
    ASSEMBLY = "assembly"


@dataclass(frozen=True)
class Layer:
    role: Role
    uses: frozenset[str] = frozenset()
    """Beyond its role's allowance: the cores a core names; the adapters or support
    an adapter names (entries or modules of them, relative to ``passage``)."""
    core: str | None = None
    """An adapter's core."""


def layer(role: Role, *uses: str, core: str | None = None) -> Layer:
    return Layer(role, frozenset(uses), core)


LEAF, CORE, ADAPTER, PRODUCT = Role.LEAF, Role.CORE, Role.ADAPTER, Role.PRODUCT
SUPPORT, ASSEMBLY = Role.SUPPORT, Role.ASSEMBLY

LAYERS: dict[str, Layer] = {
    # Leaves: vocabulary every layer speaks.
    "": layer(LEAF),  # passage/__init__.py: the version
    "addresses": layer(LEAF),
    "endpoint": layer(LEAF),
    "http_errors": layer(LEAF),
    "http_limits": layer(LEAF),
    "http_timers": layer(LEAF),
    "ice_uris": layer(LEAF),
    "limiter": layer(LEAF),
    "live": layer(LEAF),
    "log_limit": layer(LEAF),
    "meters": layer(LEAF),
    "readiness": layer(LEAF),
    "usage": layer(LEAF),
    "drain": layer(LEAF),
    # Cores: pure protocol logic, time and random parts passed in.
    "stun": layer(CORE),
    "turn": layer(CORE, "stun"),
    "turnclient": layer(CORE, "stun"),
    "identity": layer(CORE, "turn.auth", "turn.credentials"),
    "signal": layer(CORE, "identity"),
    "hybrid": layer(CORE),
    "peer": layer(CORE),
    "doctor": layer(CORE, "stun", "turnclient"),
    "offload": layer(CORE),
    "cluster": layer(CORE),
    "console": layer(CORE, "identity"),
    "workers": layer(CORE),
    # Adapters: asyncio and the network, over a core.
    "turn.aio": layer(PRODUCT, "offload.xdp", "turn.fastpath", core="turn"),
    "turn.fastpath": layer(ADAPTER, core="turn"),
    "turnclient.aio": layer(ADAPTER, core="turnclient"),
    "hybrid.aio": layer(PRODUCT, "frontdoor", "hybrid.framesocket", core="hybrid"),
    "hybrid.sdk": layer(ADAPTER, "hybrid.framesocket", core="hybrid"),
    "hybrid.framesocket": layer(ADAPTER, core="hybrid"),
    "signal.aio": layer(PRODUCT, "frontdoor", core="signal"),
    "peer.sdk": layer(ADAPTER, core="peer"),
    "doctor.aio": layer(ADAPTER, "turnclient.aio", core="doctor"),
    "api": layer(PRODUCT, "frontdoor", "store"),
    "frontdoor": layer(ADAPTER),
    "telemetry": layer(ADAPTER, "frontdoor"),
    "console.aio": layer(ADAPTER, "api", "frontdoor", core="console"),
    "offload.xdp": layer(ADAPTER, core="offload"),
    "cluster.aio": layer(ADAPTER, core="cluster"),
    "workers.aio": layer(ADAPTER, core="workers"),
    # Support: the store and what the process reads at start.
    "store": layer(SUPPORT),
    "config": layer(SUPPORT),
    "datadir": layer(SUPPORT),
    "tlsmaterial": layer(SUPPORT),
    "hostaddr": layer(SUPPORT),
    "runtime": layer(SUPPORT),
    "descriptors": layer(SUPPORT),
    "settings": layer(SUPPORT),
    "reload": layer(SUPPORT),
    "tlscontexts": layer(SUPPORT),
    "sdnotify": layer(SUPPORT),
    # Assembly.
    "app": layer(ASSEMBLY),
    "lifecycle": layer(ASSEMBLY),
    "cli": layer(ASSEMBLY),
    "mounts": layer(ASSEMBLY),
    "scrape": layer(ASSEMBLY),
    "worker_main": layer(ASSEMBLY),
    "__main__": layer(ASSEMBLY),
}

ADAPTERS = {Role.ADAPTER, Role.PRODUCT}


def entry_of(module: str, layers: dict[str, Layer] = LAYERS) -> str | None:
    """The most specific entry of ``module`` (dotted, relative to ``passage``)."""
    if module == "":
        return "" if "" in layers else None
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in layers:
            return candidate
    return None


def module_of(path: Path, root: Path = PACKAGE) -> str:
    """``turn/aio/edge.py`` → ``turn.aio.edge``; a package's ``__init__.py`` → the package."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(path: Path) -> str:
    """The absolute package relative imports in ``path`` resolve against."""
    folder = path.parent.relative_to(PACKAGE).parts
    return ".".join(("passage", *folder))


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


def ours(name: str) -> str | None:
    """``passage.turn.server.X`` → ``turn.server.X``; None for another library's name."""
    if name == "passage" or name.startswith("passage."):
        return name[len("passage.") :] if name != "passage" else ""
    return None


def allowed(key: str, name: str, layers: dict[str, Layer] = LAYERS) -> bool:
    """May the modules of entry ``key`` import ``name`` (ours, relative to ``passage``)?

    A name in no package's entry is the root package's (``passage.__version__``).
    """
    own = layers[key]
    target_key = entry_of(name, layers) or ("" if "" in layers else None)
    if target_key is None:
        return False
    target = layers[target_key]
    if target_key == key or target.role is Role.LEAF:
        return True
    if any(within(name, {use}) and entry_of(use, layers) == target_key for use in own.uses):
        return True  # named: a core's cores, an adapter's adapters or support
    if own.role in (Role.LEAF, Role.CORE):
        return False
    if own.role in ADAPTERS:
        return target.role is Role.CORE
    if own.role is Role.SUPPORT:
        return target.role in (Role.CORE, Role.SUPPORT)
    return True  # assembly


def violations(path: Path, package: str, key: str, layers: dict[str, Layer] = LAYERS) -> list[str]:
    """What ``path`` (in ``package``, checked as entry ``key``) imports that it may not."""
    role = layers[key].role
    found = []
    for name in sorted(imports_of(path, package)):
        relative = ours(name)
        if relative is None:
            if role in (Role.LEAF, Role.CORE) and within(name, PURE):
                found.append(name)
        elif not allowed(key, relative, layers):
            found.append(name)
    return found


def source_files(root: Path = PACKAGE) -> list[Path]:
    return sorted(path for path in root.rglob("*.py") if "__pycache__" not in path.parts)


def packages(root: Path = PACKAGE) -> set[str]:
    """Every package (folder) and top-level module, as an entry would name it."""
    found = {module_of(path.parent / "__init__.py", root) for path in source_files(root)}
    found |= {path.stem for path in root.glob("*.py") if path.stem != "__init__"}
    return found


def unplaced(root: Path = PACKAGE, layers: dict[str, Layer] = LAYERS) -> list[str]:
    """Packages and top-level modules without an entry of their own."""
    return sorted(packages(root) - set(layers))


# --- the rules, checked on every file ----------------------------------------------------


def test_every_package_has_a_rule() -> None:
    assert unplaced() == []
    assert sorted(set(LAYERS) - packages()) == [], "an entry names no package: remove it"


@pytest.mark.parametrize("path", source_files(), ids=lambda path: module_of(path) or "passage")
def test_each_module_imports_only_what_its_layer_may(path: Path) -> None:
    module = module_of(path)
    key = entry_of(module)
    assert key is not None, f"{module} has no entry in LAYERS"
    assert violations(path, package_of(path), key) == [], f"{LAYERS[key].role.value} {key!r}"


def test_products_do_not_import_each_other() -> None:
    products = {key for key, entry in LAYERS.items() if entry.role is Role.PRODUCT}
    for path in source_files():
        key = entry_of(module_of(path))
        if key not in products:
            continue
        others = {f"passage.{other}" for other in products - {key}}
        names = imports_of(path, package_of(path))
        assert [name for name in names if within(name, others)] == [], path


def test_the_cli_imports_the_app_only_to_run_it() -> None:
    importers = [
        path.name
        for path in source_files(PACKAGE / "cli")
        if any(within(name, {"passage.app"}) for name in imports_of(path, "passage.cli"))
    ]
    assert importers == ["serve.py"]


# --- the checker itself -----------------------------------------------------------------


def probe(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "probe.py"
    path.write_text(text)
    return path


def test_the_checker_catches_violations(tmp_path: Path) -> None:
    """A core module that opened a socket or reached for an adapter would be caught."""
    path = probe(
        tmp_path,
        "import socket\nfrom passage.turn.aio import relay_sockets\nfrom . import server\n"
        "from passage.addresses import Address\n",
    )
    assert violations(path, "passage.turn", "turn") == [
        "passage.turn.aio.relay_sockets",
        "socket",
    ]


def test_the_checker_catches_a_sideways_import(tmp_path: Path) -> None:
    """Products do not import each other: the relay reaching for signaling or the API is
    caught, the front door and its own core are not."""
    path = probe(
        tmp_path,
        "from passage.signal.aio import SignalingServer\nfrom passage.api.routes import ROUTES\n"
        "from passage.frontdoor import Prefix\nfrom passage.hybrid.sas import SasRule\n"
        "from passage.turn.aio.edge import TurnEdge\nimport aiohttp\n",
    )
    assert violations(path, "passage.hybrid.aio", "hybrid.aio") == [
        "passage.api.routes.ROUTES",
        "passage.signal.aio.SignalingServer",
        "passage.turn.aio.edge.TurnEdge",
    ]


def test_the_checker_keeps_the_identity_core_pure(tmp_path: Path) -> None:
    """The identity core may use the TURN credential types, not the TURN server or the store."""
    path = probe(
        tmp_path,
        "import secrets\nimport time\nfrom passage.store import identities\n"
        "from passage.turn.auth import Credential\nfrom passage.turn.server import TurnServer\n"
        "from .tokens import mint_token\n",
    )
    assert violations(path, "passage.identity", "identity") == [
        "passage.store.identities",
        "passage.turn.server.TurnServer",
        "secrets",
        "time",
    ]


def test_the_checker_keeps_the_api_below_the_app(tmp_path: Path) -> None:
    """The API may use the network and our cores and store, but not what assembles it."""
    path = probe(
        tmp_path,
        "import asyncio\nimport ssl\nfrom passage import __version__, app\n"
        "from passage.cli.main import main\nfrom passage.store.identities import IdentityStore\n"
        "from passage.mounts import RESERVED_NAMES\n",
    )
    assert violations(path, "passage.api", "api") == [
        "passage.app",
        "passage.cli.main.main",
        "passage.mounts.RESERVED_NAMES",
    ]


def test_the_checker_keeps_the_doctor_core_off_the_network(tmp_path: Path) -> None:
    """The doctor's core may use the TURN client core, not its adapter, the probes or the server."""
    path = probe(
        tmp_path,
        "import asyncio\nfrom passage.turnclient import Credentials\n"
        "from passage.turnclient.aio import TurnConnection\nfrom .aio import run_doctor\n"
        "from passage.turn.server import TurnServer\nfrom .stats import LoopMeter\n",
    )
    assert violations(path, "passage.doctor", "doctor") == [
        "asyncio",
        "passage.doctor.aio.run_doctor",
        "passage.turn.server.TurnServer",
        "passage.turnclient.aio.TurnConnection",
    ]


def test_the_checker_keeps_leaves_to_leaves(tmp_path: Path) -> None:
    path = probe(tmp_path, "import ipaddress\nfrom passage.stun import Message\nimport random\n")
    assert violations(path, "passage", "addresses") == ["passage.stun.Message", "random"]


def test_the_checker_covers_subfolders_and_needs_a_rule_for_every_package(
    tmp_path: Path,
) -> None:
    """A file deep in a package is its package's; a package nobody placed fails the test."""
    root = tmp_path / "passage"
    for file in ("__init__.py", "turn/__init__.py", "turn/aio/edge.py", "turn/deep/x.py",
                 "newthing/__init__.py", "loose.py"):  # fmt: skip
        (root / file).parent.mkdir(parents=True, exist_ok=True)
        (root / file).write_text("")
    layers = {"": layer(LEAF), "turn": layer(CORE), "turn.aio": layer(PRODUCT, core="turn")}
    assert entry_of(module_of(root / "turn/aio/edge.py", root), layers) == "turn.aio"
    assert entry_of(module_of(root / "turn/deep/x.py", root), layers) == "turn"
    assert unplaced(root, layers) == ["loose", "newthing", "turn.deep"]


# --- docs/architecture.md -----------------------------------------------------------------


def may_import(key: str) -> str:
    """The ``May import:`` line of ``key``'s paragraph in docs/architecture.md."""
    entry = LAYERS[key]
    named = ", ".join(f"`passage.{use}`" for use in sorted(entry.uses))
    if entry.role is Role.LEAF:
        text = "the other leaves only; no I/O, clock or randomness."
    elif entry.role is Role.CORE:
        cores = f"the leaves and {named}" if named else "the leaves only"
        text = f"{cores}; no adapter, no I/O, clock or randomness."
    elif entry.role in ADAPTERS:
        own = f"its core `passage.{entry.core}`, " if entry.core else ""
        text = f"{own}the leaves, any core" + (f", and {named}." if named else ".")
        if entry.role is Role.PRODUCT:
            text += " No other product."
    elif entry.role is Role.SUPPORT:
        text = "the leaves, any core and other support; no adapter."
    else:
        text = "anything; nothing but assembly imports it."
    return f"May import: {text}"


def heading(key: str) -> str:
    name = f"passage.{key}" if key else "passage"
    return f"### `{name}` ({LAYERS[key].role.value})"


def test_the_architecture_document_follows_the_rules() -> None:
    """One paragraph per entry, with its role and the ``May import:`` line of the rules."""
    text = ARCHITECTURE.read_text()
    headings = re.findall(r"^### `passage[\w.]*` \(\w+\)$", text, re.MULTILINE)
    assert sorted(headings) == sorted(heading(key) for key in LAYERS)
    for key in LAYERS:
        section = text.split(heading(key) + "\n", 1)[1].split("\n### ", 1)[0]
        assert may_import(key) in section.splitlines(), (heading(key), may_import(key))
        prose = section.replace(may_import(key), "").strip()
        assert len(prose) > 40, f"{heading(key)}: say what it owns"


if __name__ == "__main__":
    for key in LAYERS:
        sys.stdout.write(f"{heading(key)}\n\n{may_import(key)}\n\n")
