"""``passage connect NAME --listen HOST:PORT``: a local port that reaches an exposed service.

Each TCP connection to ``--listen`` becomes a stream through the relay to a
listener of hybrid connection NAME (``passage expose`` on the other side),
like ``ssh -L``. It prints the address it listens on (useful with port 0)
and runs until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from passage.addresses import format_address
from passage.cli.command import Command
from passage.cli.expose import parse_host_port
from passage.cli.logging import configure_logging
from passage.cli.relay_access import (
    RelayAccess,
    add_relay_arguments,
    check_reachable,
    relay_access,
)
from passage.config import ConfigError
from passage.hybrid.sas import Rights
from passage.hybrid.sdk.tunnel import forward_tcp

__all__ = ["COMMAND"]


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="the hybrid connection to reach")
    parser.add_argument(
        "--listen",
        required=True,
        metavar="HOST:PORT",
        help="the local address to accept on (port 0: any free port, printed at start)",
    )
    parser.add_argument(
        "--anonymous",
        action="store_true",
        help="send no token (for hybrid connections created with --no-client-auth)",
    )
    add_relay_arguments(parser)


def _run(arguments: argparse.Namespace) -> int:
    configure_logging("info")
    host, port = parse_host_port(arguments.listen, lowest_port=0)  # 0: any free port
    needed = Rights(0) if arguments.anonymous else Rights.SEND
    access = relay_access(arguments, arguments.name, needed)
    try:
        asyncio.run(_connect(access, arguments.name, host, port, anonymous=arguments.anonymous))
    except OSError as error:
        raise ConfigError(f"cannot listen on {arguments.listen}: {error}") from None
    return 0


async def _connect(
    access: RelayAccess, name: str, host: str, port: int, *, anonymous: bool
) -> None:
    await check_reachable(access)  # a wrong address or CA now, not at the first connection
    tokens = None if anonymous else access.tokens
    server = await forward_tcp(access.endpoint, name, tokens, host, port, ssl=access.tls)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    bound = ", ".join(format_address(sock.getsockname()) for sock in server.sockets)
    print(
        f"listening on {bound}: connections go to hybrid connection {name!r} "
        f"on {access.endpoint.base_url}; Ctrl-C stops",
        flush=True,
    )
    async with server:
        await stop.wait()


COMMAND = Command(
    name="connect",
    help="a local TCP port whose connections reach a service exposed through the relay",
    add_arguments=_add_arguments,
    run=_run,
    example="passage connect ssh --listen 127.0.0.1:2222 --data-dir .passage",
)
