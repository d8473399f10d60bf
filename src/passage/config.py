"""The configuration of one ``passage serve`` process, and where each value comes from.

Every setting is one row of :data:`OPTIONS`: the dataclass field it fills, the
TOML key, the ``PASSAGE_*`` environment variable, the command-line flag and the
kind of value it holds. :func:`load_config` layers the sources, lowest to
highest precedence: the dataclass defaults, the TOML file (``--config`` or
``PASSAGE_CONFIG``), the environment, the flags.

A new setting is a new dataclass field plus one row; a new TOML table (``[api]``,
``[store]``) is a new dataclass composed into :class:`Config` plus one entry in
:data:`SECTIONS`. This module reads one file and nothing else: no sockets, no
data directory (see :mod:`passage.datadir`).
"""

from __future__ import annotations

import difflib
import ipaddress
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from passage.addresses import parse_host_port
from passage.http_limits import HttpLimits
from passage.turn.config import TurnConfig
from passage.usage import USAGE_BUFFER_RECORDS

__all__ = [
    "OPTIONS",
    "SECTIONS",
    "Config",
    "ConfigError",
    "Option",
    "ValueKind",
    "load_config",
    "settings_given",
    "worker_count",
]

CONFIG_ENV = "PASSAGE_CONFIG"
"""Environment variable naming the TOML file when ``--config`` is not given."""

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")
OFFLOAD_MODES = ("off", "xdp", "auto")
FAST_PATH_MODES = ("auto", "on", "off")


class ConfigError(Exception):
    """A setting is missing, malformed or inconsistent; the message names it and its source."""


@dataclass(frozen=True, slots=True)
class Config:
    """Everything ``passage serve`` needs to know. Durations are in seconds."""

    data_dir: Path = Path(".passage")
    """Directory holding the CA, the server certificate, the auth secret and the store."""

    listen_ips: tuple[str, ...] = ("0.0.0.0",)
    """IP addresses the STUN/TURN listeners bind; ``0.0.0.0`` and ``::`` mean all."""

    relay_ips: tuple[str, ...] = ()
    """IP addresses relayed sockets bind; empty: derived from the listen IPs by the edge."""

    public_ip: str | None = None
    """IP address advertised in XOR-RELAYED-ADDRESS and URLs behind 1:1 NAT; None: the relay IP."""

    turn_port: int = 3478
    """UDP and TCP port of the STUN/TURN listeners."""

    turns_port: int = 5349
    """TCP port of the TURN-over-TLS listener; 0 disables it."""

    turns_extra_ports: tuple[int, ...] = ()
    """More TCP ports for TURN over TLS (443 for clients whose firewall allows nothing else)."""

    alt_ip: str | None = None
    """Second IP of this host for RFC 5780 NAT behaviour discovery; None: no discovery."""

    alt_port: int = 0
    """Second UDP and TCP port of RFC 5780 discovery (with ``alt_ip``); 0: turn_port + 1."""

    relay_ports: tuple[int, int] = (49152, 65535)
    """Inclusive range of UDP ports relayed sockets bind, as (low, high)."""

    tls_cert: Path | None = None
    """PEM certificate chain for TLS; None: the one generated in the data directory."""

    tls_key: Path | None = None
    """PEM private key matching ``tls_cert``; given together with it or not at all."""

    auth_secrets: tuple[str, ...] = field(default=(), repr=False)
    """Shared secrets for ephemeral REST credentials; the first mints, all verify."""

    users: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    """Static long-term credentials as (username, password) pairs."""

    database_url: str | None = field(default=None, repr=False)
    """Store URL (``postgresql://...`` for several nodes); None: SQLite in the data directory."""

    database_schema: str | None = None
    """PostgreSQL schema holding Passage's tables (created if missing); None: the search_path."""

    redis_url: str | None = field(default=None, repr=False)
    """``redis://...`` shared by the nodes of a cluster; given, it turns cluster mode on."""

    redis_prefix: str = "passage"
    """Prefix of every Redis key and channel, so several clusters can share one Redis."""

    node_name: str | None = None
    """This node's name in a cluster, unique among its nodes (letters, digits, ``.-_``)."""

    store_staleness: float = 60.0
    """Cluster mode: seconds without reading the store after which identities' relay
    credentials get no new allocation (revocations may have been missed)."""

    api_port: int = 8443
    """HTTPS port of the identity and relay-configuration API; 0 disables it."""

    http_port: int = 0
    """Plain-HTTP port of the same API, for local development or a TLS proxy; 0: none."""

    public_host: str | None = None
    """Host name or IP put in ICE server URLs and connection strings; None: the public IP."""

    region: str = "local"
    """Region this node serves: named in tokens, matched by ``nearest`` relay configurations."""

    region_relays: tuple[tuple[str, str], ...] = ()
    """Relays of other regions as (region, host); they share this node's ports and store."""

    client_regions: tuple[tuple[str, str], ...] = ()
    """Client address ranges as (CIDR, region), for ``routeType: nearest``."""

    public_url: str | None = None
    """``wss://host:port`` Hybrid Connections listeners meet senders at (rendezvous addresses);
    None: the advertised host on the port the listener came in on, never a request's Host."""

    max_listeners: int = 25
    """Listeners one hybrid connection may have at once (Azure Relay's limit)."""

    hc_max_message: int = 1024 * 1024
    """Bytes of the largest WebSocket message a bridged Hybrid Connections stream carries."""

    hc_http_in_flight_per_connection: int = 64 * 1024 * 1024
    """Bytes the relay may hold for the HTTP senders of one hybrid connection (else 503)."""

    hc_http_in_flight: int = 256 * 1024 * 1024
    """Bytes the relay may hold for all HTTP senders together (else 503)."""

    hc_max_token_lifetime: int = 30 * 24 * 3600
    """Seconds ahead a SAS token's expiry may lie when presented to the relay (else 401)."""

    signal_room_size: int = 2
    """Members one signaling room may have at once (``/signal/{room}``); 2 for peer pairs."""

    log_level: str = "info"
    """Lowest log level written: debug, info, warning or error."""

    log_format: str = "text"
    """Log lines as ``text`` (one readable line) or ``json`` (one object per line)."""

    access_log: bool = False
    """One log line per HTTP request answered on the API and HTTP ports (``passage.access``)."""

    metrics_port: int = 9641
    """Plain-HTTP port of ``/metrics``, ``/healthz`` and ``/readyz`` for operators; 0: none."""

    metrics_ip: str = "127.0.0.1"
    """IP address the metrics port binds: loopback unless a scraper elsewhere needs it."""

    usage_flush_interval: float = 1.0
    """Seconds between writes of live usage counters to the ledger (the most a kill -9 loses)."""

    usage_buffer_records: int = USAGE_BUFFER_RECORDS
    """Usage records kept in memory while the store is down; past it they are appended to
    ``usage-spill.jsonl`` in the data directory, which is written to the store when it is back."""

    alternate_servers: tuple[str, ...] = ()
    """``HOST:PORT`` of other TURN servers a draining server sends new Allocates over UDP
    and TCP to (300 Try Alternate), one per address family at most; empty: 403 instead."""

    tls_alternate_servers: tuple[str, ...] = ()
    """The same for TURN over TLS; a host name there also goes in ALTERNATE-DOMAIN."""

    drain_timeout: float = 3600.0
    """Seconds a drain (SIGTERM) waits for live allocations and bridges before it stops."""

    offload: str = "off"
    """Kernel fast path for UDP channels: off, xdp (fail if it cannot), auto (fall back)."""

    fast_path: str = "auto"
    """UDP ChannelData relayed in C: auto (when the extension was built), on (fail without
    it), off (the Python relay)."""

    workers: int = 0
    """Processes relaying TURN, sharing its ports (``SO_REUSEPORT``); 0 (``auto``): one per
    CPU this process may run on, or 1 with ``offload``. 1 is one process for everything."""

    turn: TurnConfig = field(default_factory=TurnConfig)
    """Policy of the TURN core: realm, lifetimes, quotas, peer filtering (``[turn]`` table)."""

    http: HttpLimits = field(default_factory=HttpLimits)
    """Timeouts, connection caps and head sizes of the API and HTTP ports (``[http]`` table)."""

    @property
    def tls_ports(self) -> tuple[int, ...]:
        """Every TURN-over-TLS port: ``turns_port`` (unless 0), then ``turns_extra_ports``."""
        return ((self.turns_port,) if self.turns_port else ()) + self.turns_extra_ports

    @property
    def alternate_port(self) -> int:
        """The second port of RFC 5780 discovery: ``alt_port``, or ``turn_port`` + 1 (as coturn)."""
        return self.alt_port or self.turn_port + 1

    @property
    def nat_discovery_ips(self) -> tuple[str, str] | None:
        """(primary, alternate) IPs of RFC 5780 discovery; None without ``alt_ip``.

        The primary is the first listen IP of ``alt_ip``'s family (checked at load
        time to exist and to be a specific address, not a wildcard).
        """
        if self.alt_ip is None:
            return None
        ipv6 = ":" in self.alt_ip
        primary = next((ip for ip in self.listen_ips if (":" in ip) == ipv6), None)
        return (primary, self.alt_ip) if primary is not None else None


SECTIONS: Mapping[str, type[Any]] = {"turn": TurnConfig, "http": HttpLimits}
"""TOML tables, each filling the :class:`Config` field of the same name."""


# --- Kinds of value ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ValueKind:
    """How one value is read from text (flags, environment) and from a TOML value.

    Both readers raise :class:`ValueError` with a message saying what was expected;
    :func:`load_config` prefixes it with the source.
    """

    from_text: Callable[[str], Any]
    """Parse one flag argument or one comma-separated environment item."""

    from_toml: Callable[[object], Any]
    """Check and convert one value that :mod:`tomllib` produced."""

    metavar: str | None
    """Placeholder shown by ``--help``; None for a boolean switch."""


def _expected(what: str, got: object) -> ValueError:
    return ValueError(f"expected {what}, got {got!r}")


def _text_of(what: str) -> Callable[[object], str]:
    def check(value: object) -> str:
        if not isinstance(value, str):
            raise _expected(what, value)
        return value

    return check


def _via_text(what: str, parse: Callable[[str], Any], metavar: str) -> ValueKind:
    """A kind written as a string everywhere, TOML included."""
    as_text = _text_of(what)
    return ValueKind(parse, lambda value: parse(as_text(value)), metavar)


def _integer(metavar: str, low: int, high: int | None = None) -> ValueKind:
    what = f"an integer from {low} to {high}" if high is not None else f"an integer >= {low}"

    def check(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _expected(what, value)
        if value < low or (high is not None and value > high):
            raise _expected(what, value)
        return value

    def parse(text: str) -> int:
        try:
            return check(int(text.strip()))
        except ValueError:
            raise _expected(what, text) from None

    return ValueKind(parse, check, metavar)


def _positive_seconds() -> ValueKind:
    what = "a number of seconds > 0"

    def check(value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise _expected(what, value)
        return float(value)

    def parse(text: str) -> float:
        try:
            return check(float(text.strip()))
        except ValueError:
            raise _expected(what, text) from None

    return ValueKind(parse, check, "SECONDS")


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _parse_bool(text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise _expected("one of 1/true/yes/on or 0/false/no/off", text)


def _check_bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise _expected("true or false", value)
    return value


def _parse_text(text: str) -> str:
    if not text:
        raise _expected("a non-empty string", text)
    return text


def _parse_path(text: str) -> Path:
    return Path(_parse_text(text)).expanduser()


def _parse_ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise _expected("an IPv4 or IPv6 address", text) from None


def _parse_cidr(text: str) -> str:
    try:
        return str(ipaddress.ip_network(text.strip(), strict=False))
    except ValueError:
        raise _expected("a CIDR range such as 10.0.0.0/8", text) from None


def _parse_user(text: str) -> tuple[str, str]:
    name, colon, password = text.partition(":")
    if not colon or not name or not password:
        raise _expected("NAME:PASSWORD", "<hidden>")
    return (name, password)


def _parse_pair(what: str, check_left: Callable[[str], str]) -> Callable[[str], tuple[str, str]]:
    """``LEFT=RIGHT``, both non-empty, the left checked by ``check_left``."""

    def parse(text: str) -> tuple[str, str]:
        left, equals, right = text.strip().partition("=")
        if not equals or not left.strip() or not right.strip():
            raise _expected(what, text)
        return (check_left(left.strip()), right.strip())

    return parse


def _parse_host(text: str) -> str:
    host = _parse_text(text.strip())
    if any(c in host for c in "/ ?#@") or host.startswith("["):
        raise _expected("a host name or IP address without port or brackets", text)
    return host


def _parse_server(text: str) -> str:
    try:
        host, port = parse_host_port(text)
    except ValueError as error:
        raise _expected(f"HOST:PORT ({error})", text) from None
    if not 1 <= port or any(c in host for c in "/ ?#@"):
        raise _expected("HOST:PORT with a port from 1 to 65535", text)
    return text.strip()


def _parse_ws_url(text: str) -> str:
    url = text.strip().rstrip("/")
    scheme, sep, rest = url.partition("://")
    if scheme not in ("ws", "wss") or not sep or not rest or "/" in rest:
        raise _expected("ws://HOST[:PORT] or wss://HOST[:PORT] without a path", text)
    return url


def _parse_name(text: str) -> str:
    name = text.strip()
    if not 1 <= len(name) <= 64 or not all(
        c.isascii() and (c.isalnum() or c in "._-") for c in name
    ):
        raise _expected("1 to 64 letters, digits, '.', '-' or '_'", text)
    return name


def _parse_redis_url(text: str) -> str:
    url = text.strip()
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise _expected("redis://HOST[:PORT][/DB], rediss://... or unix://PATH", "<hidden>")
    return url


def _check_port_range(low: int, high: int, shown: object) -> tuple[int, int]:
    if not 1 <= low <= high <= 65535:
        raise _expected("LOW-HIGH with 1 <= LOW <= HIGH <= 65535", shown)
    return (low, high)


def _parse_port_range(text: str) -> tuple[int, int]:
    low, dash, high = text.strip().partition("-")
    try:
        if not dash:
            raise ValueError
        return _check_port_range(int(low), int(high), text)
    except ValueError:
        raise _expected("LOW-HIGH with 1 <= LOW <= HIGH <= 65535", text) from None


def _port_range_from_toml(value: object) -> tuple[int, int]:
    if isinstance(value, str):
        return _parse_port_range(value)
    if (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(port, int) and not isinstance(port, bool) for port in value)
    ):
        return _check_port_range(value[0], value[1], value)
    raise _expected('"LOW-HIGH" or [LOW, HIGH]', value)


def _parse_log_level(text: str) -> str:
    level = text.strip().lower()
    if level not in LOG_LEVELS:
        raise _expected("one of " + ", ".join(LOG_LEVELS), text)
    return level


def _parse_log_format(text: str) -> str:
    name = text.strip().lower()
    if name not in LOG_FORMATS:
        raise _expected("one of " + ", ".join(LOG_FORMATS), text)
    return name


def _parse_offload(text: str) -> str:
    mode = text.strip().lower()
    if mode not in OFFLOAD_MODES:
        raise _expected("one of " + ", ".join(OFFLOAD_MODES), text)
    return mode


def _parse_fast_path(text: str) -> str:
    mode = text.strip().lower()
    if mode not in FAST_PATH_MODES:
        raise _expected("one of " + ", ".join(FAST_PATH_MODES), text)
    return mode


MAX_WORKERS = 256


def _workers_from_toml(value: object) -> int:
    if value == "auto":
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_WORKERS:
        raise _expected(f'"auto" or an integer from 1 to {MAX_WORKERS}', value)
    return value


def _parse_workers(text: str) -> int:
    word = text.strip().lower()
    try:
        return _workers_from_toml("auto" if word == "auto" else int(word))
    except ValueError:
        raise _expected(f'"auto" or an integer from 1 to {MAX_WORKERS}', text) from None


TEXT = _via_text("a string", _parse_text, "TEXT")
PATH = _via_text("a path", _parse_path, "PATH")
IP = _via_text("an IP address", _parse_ip, "IP")
CIDR = _via_text("a CIDR range", _parse_cidr, "CIDR")
USER = _via_text("a NAME:PASSWORD string", _parse_user, "NAME:PASSWORD")
HOST = _via_text("a host name or IP", _parse_host, "HOST")
REGION_RELAY = _via_text(
    "REGION=HOST", _parse_pair("REGION=HOST", lambda region: region), "REGION=HOST"
)
CLIENT_REGION = _via_text("CIDR=REGION", _parse_pair("CIDR=REGION", _parse_cidr), "CIDR=REGION")
SERVER = _via_text("HOST:PORT", _parse_server, "HOST:PORT")
WS_URL = _via_text("a ws:// or wss:// URL", _parse_ws_url, "URL")
DATABASE_URL = _via_text("a database URL", _parse_text, "URL")
REDIS_URL = _via_text("a Redis URL", _parse_redis_url, "URL")
NAME = _via_text("a name", _parse_name, "NAME")
LOG_LEVEL = _via_text("a log level", _parse_log_level, "LEVEL")
LOG_FORMAT = _via_text("a log format", _parse_log_format, "FORMAT")
OFFLOAD = _via_text("an offload mode", _parse_offload, "MODE")
FAST_PATH = _via_text("a fast path mode", _parse_fast_path, "MODE")
WORKERS = ValueKind(_parse_workers, _workers_from_toml, "N")
BOOL = ValueKind(_parse_bool, _check_bool, None)
PORT = _integer("PORT", 1, 65535)
PORT_OR_OFF = _integer("PORT", 0, 65535)
PORT_RANGE = ValueKind(_parse_port_range, _port_range_from_toml, "LOW-HIGH")
LIFETIME = _integer("SECONDS", 1)
COUNT = _integer("N", 1)
BYTE_RATE = _integer("BYTES", 0)
COUNT_OR_OFF = _integer("N", 0)
LINE_BYTES = _integer("BYTES", 256)
MESSAGE_BYTES = _integer("BYTES", 1024)
IN_FLIGHT_BYTES = _integer("BYTES", 1024 * 1024)
TOKEN_SECONDS = _integer("SECONDS", 60)
SECONDS = _positive_seconds()


# --- The option table -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Option:
    """One setting: where it lives in :class:`Config` and how each source spells it."""

    section: str
    """TOML table and :class:`Config` field holding it; empty for top-level settings."""

    name: str
    """Dataclass field and TOML key."""

    kind: ValueKind
    """How a single value is parsed."""

    help: str
    """One line for ``--help``."""

    repeated: bool = False
    """A tuple: the flag may be repeated, the variable is comma-separated, TOML has an array."""

    flag_name: str = ""
    """Flag when it differs from the name in kebab case, e.g. ``--listen-ip``."""

    @property
    def flag(self) -> str:
        """Command-line flag, e.g. ``--turn-port``."""
        return self.flag_name or "--" + self.name.replace("_", "-")

    @property
    def dest(self) -> str:
        """Attribute name in the argparse namespace, and the stem of the variable."""
        return f"{self.section}_{self.name}" if self.section else self.name

    @property
    def env(self) -> str:
        """Environment variable, e.g. ``PASSAGE_TURN_REALM``."""
        return "PASSAGE_" + self.dest.upper()

    @property
    def toml_key(self) -> str:
        """Dotted TOML key, e.g. ``turn.realm``."""
        return f"{self.section}.{self.name}" if self.section else self.name


def _top(name: str, kind: ValueKind, help: str, flag: str = "") -> Option:
    return Option("", name, kind, help, flag_name=flag)


def _turn(name: str, kind: ValueKind, help: str, flag: str = "") -> Option:
    return Option("turn", name, kind, help, flag_name=flag)


def _http(name: str, kind: ValueKind, help: str) -> Option:
    return Option("http", name, kind, help, flag_name="--http-" + name.replace("_", "-"))


def _many(section: str, name: str, kind: ValueKind, help: str, flag: str) -> Option:
    return Option(section, name, kind, help + "; repeatable", repeated=True, flag_name=flag)


OPTIONS: tuple[Option, ...] = (
    _top("data_dir", PATH, "data directory: CA, certificates, auth secret, store"),
    _many("", "listen_ips", IP, "IP the STUN/TURN listeners bind", "--listen-ip"),
    _many("", "relay_ips", IP, "IP relayed sockets bind", "--relay-ip"),
    _top("public_ip", IP, "IP advertised to clients behind 1:1 NAT"),
    _top("turn_port", PORT, "UDP and TCP port for STUN/TURN"),
    _top("turns_port", PORT_OR_OFF, "TLS port for TURN; 0 disables it"),
    _many(
        "", "turns_extra_ports", PORT, "another TLS port for TURN, e.g. 443", "--turns-extra-port"
    ),
    _top("alt_ip", IP, "second IP for RFC 5780 NAT behaviour discovery"),
    _top("alt_port", PORT_OR_OFF, "second STUN/TURN port with --alt-ip; 0: turn_port + 1"),
    _top("relay_ports", PORT_RANGE, "UDP port range for relayed sockets"),
    _top("tls_cert", PATH, "PEM certificate chain to use instead of the generated one"),
    _top("tls_key", PATH, "PEM private key of --tls-cert"),
    _many("", "auth_secrets", TEXT, "secret for ephemeral credentials", "--auth-secret"),
    _many("", "users", USER, "static TURN user", "--user"),
    _top("database_url", DATABASE_URL, "postgresql://... store shared by several nodes"),
    _top("database_schema", NAME, "PostgreSQL schema for Passage's tables"),
    _top("redis_url", REDIS_URL, "redis://... shared by a cluster's nodes: turns cluster mode on"),
    _top("redis_prefix", NAME, "prefix of every Redis key and channel of this cluster"),
    _top("node_name", NAME, "this node's name in the cluster, unique among its nodes"),
    _top(
        "store_staleness",
        SECONDS,
        "cluster: seconds without the store before new Allocates of identities are refused",
    ),
    _top("api_port", PORT_OR_OFF, "HTTPS port of the identity and relay API; 0 disables it"),
    _top("http_port", PORT_OR_OFF, "plain-HTTP port of the API (development, TLS proxy)"),
    _top("public_host", HOST, "host name or IP in ICE server URLs and connection strings"),
    _top("region", TEXT, "region this node serves"),
    _many("", "region_relays", REGION_RELAY, "relay host of another region", "--region-relay"),
    _many(
        "", "client_regions", CLIENT_REGION, "client range served by a region", "--client-region"
    ),
    _top("public_url", WS_URL, "wss://HOST:PORT Hybrid Connections listeners reach this node at"),
    _top("max_listeners", COUNT, "listeners per hybrid connection"),
    _top("hc_max_message", MESSAGE_BYTES, "largest message of a bridged WebSocket (else 1009)"),
    _top(
        "hc_http_in_flight_per_connection",
        IN_FLIGHT_BYTES,
        "bytes held for one hybrid connection's HTTP senders (else 503)",
    ),
    _top("hc_http_in_flight", IN_FLIGHT_BYTES, "bytes held for all HTTP senders (else 503)"),
    _top("hc_max_token_lifetime", TOKEN_SECONDS, "longest SAS token lifetime accepted (else 401)"),
    _top("signal_room_size", COUNT, "members per signaling room"),
    _top("log_level", LOG_LEVEL, "debug, info, warning or error"),
    _top("log_format", LOG_FORMAT, "log lines as text or json (one object per line)"),
    _top("access_log", BOOL, "log every HTTP request on the API and HTTP ports"),
    _top("metrics_port", PORT_OR_OFF, "plain-HTTP port of /metrics, /healthz, /readyz; 0: none"),
    _top("metrics_ip", IP, "IP the metrics port binds"),
    _top("usage_flush_interval", SECONDS, "seconds between usage ledger writes"),
    _top(
        "usage_buffer_records",
        COUNT,
        "usage records held in memory while the store is down (then spilled to a file)",
    ),
    _many(
        "",
        "alternate_servers",
        SERVER,
        "TURN server new Allocates go to while draining",
        "--alternate-server",
    ),
    _many(
        "",
        "tls_alternate_servers",
        SERVER,
        "the same for TURN over TLS",
        "--tls-alternate-server",
    ),
    _top("drain_timeout", SECONDS, "seconds a drain (SIGTERM) waits for live allocations"),
    _top("offload", OFFLOAD, "kernel fast path for UDP channels: off, xdp or auto"),
    _top("fast_path", FAST_PATH, "UDP ChannelData relayed in C: auto, on or off"),
    _top("workers", WORKERS, "processes relaying TURN on the same ports; auto: one per CPU"),
    _turn("realm", TEXT, "TURN realm"),
    _turn("software", TEXT, "SOFTWARE attribute in authenticated responses"),
    _turn("default_lifetime", LIFETIME, "allocation lifetime when the client asks none"),
    _turn("max_lifetime", LIFETIME, "longest allocation lifetime granted"),
    _turn("permission_lifetime", LIFETIME, "permission lifetime"),
    _turn("channel_lifetime", LIFETIME, "channel binding lifetime"),
    _turn("nonce_lifetime", LIFETIME, "nonce age before 438 Stale Nonce"),
    _turn("reservation_lifetime", LIFETIME, "how long an EVEN-PORT reservation waits"),
    _turn("max_allocations_per_user", COUNT, "allocations one username may hold"),
    _turn("max_allocations_total", COUNT, "allocations on the server", "--max-allocations"),
    _turn("max_permissions_per_allocation", COUNT, "peer IPs per allocation", "--max-permissions"),
    _turn(
        "max_channels_per_allocation", COUNT, "channel bindings per allocation", "--max-channels"
    ),
    _turn("max_bytes_per_second", BYTE_RATE, "bytes/s per allocation, 0: no cap", "--max-bps"),
    _turn("auth_failures_per_minute", COUNT, "failed authentications per source IP per minute"),
    _turn(
        "unauthenticated_answers_per_second",
        COUNT_OR_OFF,
        "answers per second to a UDP source before it authenticates; 0: no limit",
    ),
    _turn("unauthenticated_answer_burst", COUNT, "answers at once to such a source"),
    _turn("strict_channel_range", BOOL, "accept only RFC 8656 channels 0x4000-0x4FFF"),
    _turn("allow_loopback_peers", BOOL, "relay to 127.0.0.0/8 and ::1 (tests only)"),
    _many("turn", "allowed_peer_ranges", CIDR, "peer range exempt from denial", "--allow-peer"),
    _many("turn", "denied_peer_ranges", CIDR, "peer range refused too", "--deny-peer"),
    _http("tls_handshake_timeout", SECONDS, "seconds a TLS handshake on the API port may take"),
    _http("request_head_timeout", SECONDS, "seconds a request line and headers may take"),
    _http("idle_timeout", SECONDS, "seconds a keep-alive connection may wait for a request"),
    _http("body_timeout", SECONDS, "window over which a request body's pace is judged"),
    _http("body_min_rate", BYTE_RATE, "bytes/s a request body must average in each window"),
    _http("write_timeout", SECONDS, "seconds a response may stall unread"),
    _http("max_connections", COUNT, "HTTP connections open at once"),
    _http("max_connections_per_ip", COUNT, "HTTP connections from one IP (IPv6: /64)"),
    _http("descriptor_reserve", COUNT_OR_OFF, "file descriptors kept from HTTP for TURN"),
    _http("max_request_line", LINE_BYTES, "longest request line in bytes (else 414)"),
    _http("max_header_size", LINE_BYTES, "longest header line in bytes (else 431)"),
    _http("max_headers", COUNT, "header lines per request (else 431)"),
)
"""Every setting of :class:`Config`, in the order ``--help`` and the docs list them."""

_BY_TOML_KEY: Mapping[tuple[str, str], Option] = {(o.section, o.name): o for o in OPTIONS}


# --- Loading ----------------------------------------------------------------

Values = dict[str, Any]
"""Parsed values keyed by :attr:`Option.dest`."""


def load_config(flags: Mapping[str, object], environ: Mapping[str, str]) -> Config:
    """Build the configuration from the flags, the environment and the TOML file.

    ``flags`` maps :attr:`Option.dest` (and ``"config"``) to what argparse stored:
    None when the flag was not given, a string, a list of strings for repeated
    flags, or a bool for switches; ``vars(namespace)`` fits. Keys it lacks count as
    not given. Raises :class:`ConfigError` naming the source and key of any bad value.
    """
    return _build(_gather(flags, environ))


def settings_given(flags: Mapping[str, object], environ: Mapping[str, str]) -> frozenset[str]:
    """The :attr:`Option.dest` of every setting a source names (a flag, a variable, the
    TOML file), as opposed to those left at their defaults. Raises :class:`ConfigError`
    as :func:`load_config` does."""
    return frozenset(_gather(flags, environ))


def _gather(flags: Mapping[str, object], environ: Mapping[str, str]) -> Values:
    values: Values = {}
    config_file = flags.get("config") or environ.get(CONFIG_ENV) or None
    if config_file is not None:
        values.update(_from_toml_file(Path(str(config_file)).expanduser()))
    values.update(_from_environ(environ))
    values.update(_from_flags(flags))
    return values


def _from_toml_file(path: Path) -> Values:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    values: Values = {}
    for key, value in document.items():
        if key in SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: [{key}] must be a table")
            for sub_key, sub_value in value.items():
                values.update(_toml_value(path, key, sub_key, sub_value))
        else:
            values.update(_toml_value(path, "", key, value))
    return values


def _toml_value(path: Path, section: str, key: str, value: object) -> Values:
    option = _BY_TOML_KEY.get((section, key))
    if option is None:
        raise ConfigError(f"{path}: unknown key {_dotted(section, key)!r}{_suggest(section, key)}")
    try:
        if option.repeated:
            if not isinstance(value, list):
                raise _expected("an array", value)
            return {option.dest: tuple(option.kind.from_toml(item) for item in value)}
        return {option.dest: option.kind.from_toml(value)}
    except ValueError as exc:
        raise ConfigError(f"{path}: {option.toml_key}: {exc}") from None


def _dotted(section: str, key: str) -> str:
    return f"{section}.{key}" if section else key


def _suggest(section: str, key: str) -> str:
    known = [o.toml_key for o in OPTIONS] + list(SECTIONS)
    close = difflib.get_close_matches(_dotted(section, key), known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _from_environ(environ: Mapping[str, str]) -> Values:
    values: Values = {}
    for option in OPTIONS:
        raw = environ.get(option.env, "").strip()
        if not raw:
            continue  # unset and empty both mean "not configured here"
        try:
            if option.repeated:
                items = [item.strip() for item in raw.split(",") if item.strip()]
                values[option.dest] = tuple(option.kind.from_text(item) for item in items)
            else:
                values[option.dest] = option.kind.from_text(raw)
        except ValueError as exc:
            raise ConfigError(f"{option.env}: {exc}") from None
    return values


def _from_flags(flags: Mapping[str, object]) -> Values:
    values: Values = {}
    for option in OPTIONS:
        raw = flags.get(option.dest)
        if raw is None:
            continue
        try:
            if option.repeated:
                items = raw if isinstance(raw, list | tuple) else [raw]
                values[option.dest] = tuple(_flag_value(option, item) for item in items)
            else:
                values[option.dest] = _flag_value(option, raw)
        except ValueError as exc:
            raise ConfigError(f"{option.flag}: {exc}") from None
    return values


def _flag_value(option: Option, raw: object) -> Any:
    # argparse hands over strings, except for switches, which arrive as bools.
    return option.kind.from_text(raw) if isinstance(raw, str) else option.kind.from_toml(raw)


def _build(values: Values) -> Config:
    by_section: dict[str, Values] = {section: {} for section in ("", *SECTIONS)}
    for option in OPTIONS:
        if option.dest in values:
            by_section[option.section][option.name] = values[option.dest]
    nested = {name: cls(**by_section[name]) for name, cls in SECTIONS.items()}
    config = Config(**by_section[""], **nested)
    _check(config)
    return config


def _check(config: Config) -> None:
    """Rules that involve more than one setting."""
    if (config.tls_cert is None) != (config.tls_key is None):
        raise ConfigError("tls_cert and tls_key must be given together (--tls-cert, --tls-key)")
    if config.turn.default_lifetime > config.turn.max_lifetime:
        raise ConfigError(
            f"turn.default_lifetime ({config.turn.default_lifetime} s) exceeds "
            f"turn.max_lifetime ({config.turn.max_lifetime} s)"
        )
    _check_nat_discovery(config)
    if config.workers > 1 and config.offload != "off":
        raise ConfigError(
            f"workers {config.workers} with offload {config.offload}: the XDP fast path runs "
            "in one process; use --workers 1 (or leave --workers at auto) with --offload"
        )
    # Every one of these is a TCP listener on the same addresses.
    tcp_ports = [("turn_port", config.turn_port), ("turns_port", config.turns_port)]
    tcp_ports += [("turns_extra_ports", port) for port in config.turns_extra_ports]
    tcp_ports += [("api_port", config.api_port), ("http_port", config.http_port)]
    tcp_ports.append(("metrics_port", config.metrics_port))
    if config.alt_ip is not None:
        tcp_ports.append(("alt_port", config.alternate_port))
    seen: dict[int, str] = {}
    for name, port in tcp_ports:
        if port and port in seen:
            raise ConfigError(f"{seen[port]} and {name} are both {port}")
        seen.setdefault(port, name)


def worker_count(config: Config, cpus: int) -> int:
    """How many processes relay TURN: ``workers``, or for auto one per CPU (``cpus``)
    unless the kernel fast path is on, which one process drives."""
    if config.workers:
        return config.workers
    return 1 if config.offload != "off" else max(1, cpus)


def _check_nat_discovery(config: Config) -> None:
    """``alt_ip`` pairs with a specific listen IP of its family, on this host (RFC 5780 §6)."""
    if config.alt_ip is None:
        return
    ips = config.nat_discovery_ips
    if ips is None or ipaddress.ip_address(ips[0]).is_unspecified:
        raise ConfigError(
            f"alt_ip {config.alt_ip} needs a specific listen IP of the same family to pair "
            "with (--listen-ip), not a wildcard: answers must leave from known addresses"
        )
    if config.alt_ip in config.listen_ips or ipaddress.ip_address(config.alt_ip).is_unspecified:
        raise ConfigError(f"alt_ip {config.alt_ip} must be another specific IP than the listen IPs")
    if config.public_ip is not None and config.public_ip != ips[0]:
        raise ConfigError(
            "alt_ip cannot be combined with a public_ip other than the listen IP: "
            "OTHER-ADDRESS would name an address clients cannot reach"
        )
    if config.alternate_port > 65535:
        raise ConfigError(f"alt_port: turn_port + 1 is {config.alternate_port}; set --alt-port")
