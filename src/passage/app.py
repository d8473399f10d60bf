"""The ``passage serve`` process: one data directory, one store, every service.

Today it runs the STUN/TURN edge (UDP, TCP, TLS) and the usage ledger; the
identity API, the Hybrid Connections relay and signaling join it on one
HTTPS port as later services.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
import sys
from dataclasses import dataclass

from passage.config import Config
from passage.datadir import DataDir
from passage.edge.addresses import relay_addresses
from passage.edge.turn_edge import TurnEdge
from passage.store.database import Database, open_database, sqlite_url
from passage.store.ledger import UsageLedger
from passage.stun import Address, Method
from passage.turn.auth import CredentialChain, CredentialSource, RestSecretUsers, StaticUsers
from passage.turn.credentials import RestSecrets
from passage.turn.server import Refused, TurnServer

logger = logging.getLogger("passage")


@dataclass(slots=True)
class Running:
    """A started server: what it listens on, and how to stop it."""

    edge: TurnEdge
    database: Database
    udp: list[Address]
    tcp: list[Address]
    tls: list[Address]

    async def stop(self) -> None:
        """End every allocation, flush usage, close the store."""
        await self.edge.stop()
        await self.database.close()


def credential_source(config: Config, datadir: DataDir) -> CredentialSource:
    """Static users first, then REST credentials signed by any accepted secret."""
    sources: list[CredentialSource] = [StaticUsers(dict(config.users))]
    if datadir.auth_secrets:
        sources.append(RestSecretUsers(RestSecrets(datadir.auth_secrets)))
    return CredentialChain(sources)


async def start(config: Config, datadir: DataDir) -> Running:
    """Open the store and bind every listener; raises OSError if a port is taken."""
    database = await open_database(sqlite_url(datadir.path))
    ledger = UsageLedger(database)
    relays = relay_addresses(config)
    core = TurnServer(
        config.turn,
        credential_source(config, datadir),
        nonce_key=secrets.token_bytes(32),
        relay_families=relays.families,
        on_refused=_log_refusal,
    )
    edge = TurnEdge(
        core, relays, usage_sink=ledger.record, usage_interval=config.usage_flush_interval
    )
    running = Running(edge, database, [], [], [])
    try:
        for ip in config.listen_ips:
            running.udp.append(await edge.listen_udp(ip, config.turn_port))
            running.tcp.append(await edge.listen_stream(ip, config.turn_port))
            if config.turns_port:
                tls = datadir.server_ssl_context()
                running.tls.append(await edge.listen_stream(ip, config.turns_port, tls))
    except BaseException:
        await running.stop()
        raise
    return running


async def serve(config: Config, datadir: DataDir) -> None:
    """Run until SIGINT or SIGTERM, then shut down cleanly (all usage flushed)."""
    running = await start(config, datadir)
    sys.stderr.write(banner(config, datadir, running) + "\n")
    sys.stderr.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
        logger.info("shutting down: ending %d allocations", len(running.edge.core.allocations))
    finally:
        await running.stop()
        logger.info("stopped; usage ledger flushed")


def banner(config: Config, datadir: DataDir, running: Running) -> str:
    """What a user needs to point a client at this server."""
    relays = relay_addresses(config)
    host = config.public_ip or next(iter(relays.advertised.values()), "127.0.0.1")
    shown = f"[{host}]" if ":" in host else host
    lines = [f"Passage is running (data in {datadir.path}, realm {config.turn.realm!r})", ""]
    lines += [f"  stun:{shown}:{config.turn_port}"]
    lines += [f"  turn:{shown}:{config.turn_port}?transport=udp"]
    lines += [f"  turn:{shown}:{config.turn_port}?transport=tcp"]
    if running.tls:
        lines += [f"  turns:{shown}:{config.turns_port}?transport=tcp"]
    lines += [
        "",
        f"  relay ports {config.relay_ports[0]}-{config.relay_ports[1]} on "
        + ", ".join(relays.bind.values()),
    ]
    if datadir.ca_cert is not None:
        lines += [f"  TLS CA for clients: {datadir.ca_cert}"]
    lines += [
        f"  credentials: passage turn-credentials --user NAME --ttl 3600 --data-dir {datadir.path}"
    ]
    if config.users:
        lines += ["  static users: " + ", ".join(name for name, _ in config.users)]
    return "\n".join(lines)


def _log_refusal(refused: Refused) -> None:
    logger.info(
        "refused %s from %s: %d %s",
        _method_name(refused.method),
        refused.five_tuple.describe(),
        refused.code,
        refused.detail,
    )


def _method_name(method: int) -> str:
    try:
        return Method(method).name.lower()
    except ValueError:
        return f"method 0x{method:03x}"
