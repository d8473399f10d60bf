"""What ``passage serve`` checks before it starts anything, so a mistake is one line, not a
traceback: every IP it is told to bind is one of this host's, every port each of its
listeners needs (TCP, UDP, as that listener uses it) is free, and the operator's
certificate and key load and match.

Each check binds a socket the way the listener will (``SO_REUSEADDR`` for TCP, as
asyncio's servers set it; ``IPV6_V6ONLY`` for IPv6) and closes it at once. A
failure is a :class:`~passage.config.ConfigError` naming the flag, its value and
what to do; ``passage`` prints it as ``passage: error: ...`` and exits 2.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator
from dataclasses import dataclass

from passage.config import Config, ConfigError
from passage.datadir import check_operator_pair

__all__ = ["Listener", "check_addresses", "check_cluster", "check_ports", "listeners", "preflight"]


@dataclass(frozen=True, slots=True)
class Listener:
    """One socket ``passage serve`` will bind, and the flag that chose its port."""

    ip: str
    port: int
    kind: socket.SocketKind
    flag: str

    @property
    def protocol(self) -> str:
        return "UDP" if self.kind == socket.SOCK_DGRAM else "TCP"


def preflight(config: Config) -> None:
    """Every check, addresses first (a port cannot be free on an address we do not have),
    then the operator's certificate, before the data directory is made or touched."""
    check_database_driver(config)
    check_cluster(config)
    check_addresses(config)
    check_ports(config)
    if config.tls_cert is not None and config.tls_key is not None:
        check_operator_pair(config.tls_cert, config.tls_key)


def check_database_driver(config: Config) -> None:
    """A PostgreSQL store needs asyncpg, which the ``postgres`` extra installs."""
    url = config.database_url
    if url is None or not url.startswith(("postgres://", "postgresql")):
        return
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        raise ConfigError(
            "--database-url postgresql://...: the PostgreSQL driver is not installed; "
            "pip install 'passage-relay[postgres]' (or pip install asyncpg)"
        ) from None


def check_cluster(config: Config) -> None:
    """``--redis-url`` turns cluster mode on: the nodes share PostgreSQL (the source of truth)
    and each has its own name and its own public address. ``--database-schema`` is
    PostgreSQL's alone."""
    postgres = (config.database_url or "").startswith(("postgres://", "postgresql"))
    if config.database_schema is not None and not postgres:
        raise ConfigError(
            f"--database-schema {config.database_schema}: only a PostgreSQL store has schemas; "
            "give --database-url postgresql://... or leave it out"
        )
    if config.redis_url is None:
        return
    needs = [
        (postgres, "a shared PostgreSQL store: --database-url postgresql://USER@HOST/DB"),
        (config.node_name is not None, "--node-name NAME, unique in the cluster"),
        (
            config.public_url is not None,
            "--public-url wss://HOST:PORT, where listeners reach this node",
        ),
        (config.public_host is not None, "--public-host HOST, this node's name in TURN URLs"),
    ]
    for present, what in needs:
        if not present:
            raise ConfigError(f"--redis-url: cluster mode needs {what}")
    try:
        import redis.asyncio  # noqa: F401
    except ImportError:
        raise ConfigError(
            "--redis-url redis://...: the Redis client is not installed; "
            "pip install 'passage-relay[cluster]' (or pip install redis)"
        ) from None


def check_addresses(config: Config) -> None:
    """``--listen-ip``, ``--relay-ip``, ``--alt-ip`` and ``--metrics-ip`` must be addresses
    of this host."""
    named = [("--listen-ip", ip) for ip in config.listen_ips]
    named += [("--relay-ip", ip) for ip in config.relay_ips]
    named += [("--alt-ip", config.alt_ip)] if config.alt_ip is not None else []
    named += [("--metrics-ip", config.metrics_ip)] if config.metrics_port else []
    for flag, ip in named:
        try:
            _bind(ip, 0, socket.SOCK_DGRAM)
        except OSError as error:
            if error.errno == errno.EADDRNOTAVAIL:
                raise ConfigError(
                    f"{flag} {ip}: not an address of this host (`ip address` lists them; "
                    "behind 1:1 NAT, bind the private address and give the public one "
                    "as --public-ip)"
                ) from None
            raise ConfigError(f"{flag} {ip}: cannot bind it: {error.strerror}") from None


def check_ports(config: Config) -> None:
    """Every port a listener needs is free on its address, for the protocol it uses."""
    for listener in listeners(config):
        try:
            _bind(listener.ip, listener.port, listener.kind)
        except OSError as error:
            where = f"{listener.protocol} port {listener.port} on {listener.ip}"
            if error.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"{listener.flag} {listener.port}: {where} is already in use by another "
                    f"process; stop it or choose another {listener.flag}"
                ) from None
            if error.errno == errno.EACCES:
                raise ConfigError(
                    f"{listener.flag} {listener.port}: {where} needs root or "
                    f"CAP_NET_BIND_SERVICE; choose a port above 1023"
                ) from None
            raise ConfigError(
                f"{listener.flag} {listener.port}: {where}: {error.strerror}"
            ) from None


def listeners(config: Config) -> Iterator[Listener]:
    """The sockets ``passage serve`` binds for ``config``, in the order it binds them."""
    tcp, udp = socket.SOCK_STREAM, socket.SOCK_DGRAM
    for ip in config.listen_ips:
        yield Listener(ip, config.turn_port, udp, "--turn-port")
        yield Listener(ip, config.turn_port, tcp, "--turn-port")
        if config.turns_port:
            yield Listener(ip, config.turns_port, tcp, "--turns-port")
        for port in config.turns_extra_ports:
            yield Listener(ip, port, tcp, "--turns-extra-port")
    ips = config.nat_discovery_ips
    if ips is not None:
        primary, alternate = ips
        for ip, port, flag in (
            (primary, config.alternate_port, "--alt-port"),
            (alternate, config.turn_port, "--turn-port"),
            (alternate, config.alternate_port, "--alt-port"),
        ):
            yield Listener(ip, port, udp, flag)
            yield Listener(ip, port, tcp, flag)
    for ip in config.listen_ips:
        if config.api_port:
            yield Listener(ip, config.api_port, tcp, "--api-port")
        if config.http_port:
            yield Listener(ip, config.http_port, tcp, "--http-port")
    if config.metrics_port:
        yield Listener(config.metrics_ip, config.metrics_port, tcp, "--metrics-port")


def _bind(ip: str, port: int, kind: socket.SocketKind) -> None:
    ipv6 = ":" in ip
    with socket.socket(socket.AF_INET6 if ipv6 else socket.AF_INET, kind) as sock:
        if ipv6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((ip, port))
        if kind == socket.SOCK_STREAM:
            sock.listen(1)  # a socket bound there with SO_REUSEADDR but not listening
