"""``passage expose NAME --to HOST:PORT [--http]``: a local service, reachable through the relay.

It listens on hybrid connection NAME (an outbound connection, so no port is
opened here) and forwards each relayed stream to the TCP service at
``--to``, or with ``--http`` each relayed HTTP request to the HTTP service
there (``--to`` may then be a URL, ``https://`` included). It runs until
SIGINT or SIGTERM; a dropped relay connection is redialled with backoff.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import ssl

from passage import addresses
from passage.addresses import Address, format_address
from passage.cli.command import Command
from passage.cli.logging import configure_logging
from passage.cli.relay_access import RelayAccess, add_relay_arguments, relay_access
from passage.config import ConfigError
from passage.hybrid.sas import Rights
from passage.hybrid.sdk import ForwardingHandler, HybridConnectionError, HybridConnectionListener
from passage.hybrid.sdk.stream import HybridStream
from passage.hybrid.sdk.tunnel import expose_tcp

__all__ = ["COMMAND", "parse_host_port"]

logger = logging.getLogger("passage.expose")


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="the hybrid connection to listen on")
    parser.add_argument(
        "--to", required=True, metavar="HOST:PORT", help="the local service (a URL with --http)"
    )
    parser.add_argument(
        "--http", action="store_true", help="forward HTTP requests, not TCP streams"
    )
    add_relay_arguments(parser)


def parse_host_port(text: str, *, lowest_port: int = 1) -> Address:
    """``HOST:PORT`` or ``[IPv6]:PORT``, the port at least ``lowest_port``; else ``ConfigError``."""
    try:
        host, port = addresses.parse_host_port(text)
    except ValueError as error:
        raise ConfigError(f"{text!r} is not HOST:PORT: {error}") from None
    if port < lowest_port:
        raise ConfigError(f"{text!r} is not HOST:PORT: the port must be at least {lowest_port}")
    return host, port


REFUSALS = {
    404: "no hybrid connection named {name!r} (create it: passage hc create {name})",
}
"""Where the CLI knows more than the SDK's words for a refusal, by HTTP status."""


def refusal(error: HybridConnectionError, name: str, verb: str) -> str:
    """One line saying why the relay refused to let us ``verb`` hybrid connection ``name``."""
    cause = error.__cause__ or error.__context__
    if isinstance(cause, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(error):
        return (
            f"cannot {verb} {name!r}: the relay's TLS certificate is not trusted; pass "
            "--ca-file DATA_DIR/ca.pem (e.g. .passage/ca.pem) or set PASSAGE_CA_FILE"
        )
    template = REFUSALS.get(error.status, "{message}")
    text = template.format(message=error.message, name=name)
    return f"cannot {verb} {name!r}: {text}" + (f" ({error.status})" if error.status else "")


def _service_url(text: str) -> str:
    if text.startswith(("http://", "https://")):
        return text.rstrip("/")
    return f"http://{format_address(parse_host_port(text))}"


def _run(arguments: argparse.Namespace) -> int:
    configure_logging("info")
    access = relay_access(arguments, arguments.name, Rights.LISTEN)
    if arguments.http:
        target = _service_url(arguments.to)
    else:
        target = format_address(parse_host_port(arguments.to))
    try:
        asyncio.run(_expose(access, arguments.name, target, http=arguments.http))
    except HybridConnectionError as error:
        raise ConfigError(refusal(error, arguments.name, "listen on")) from None
    return 0


async def _expose(access: RelayAccess, name: str, target: str, *, http: bool) -> None:
    forward = ForwardingHandler(target) if http else None
    listener = HybridConnectionListener(
        access.endpoint, name, access.tokens, http_handler=forward, ssl=access.tls
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with listener:
        kind = "HTTP requests" if http else "streams"
        print(
            f"exposing {target} as hybrid connection {name!r} on {access.endpoint.base_url} "
            f"({kind}); Ctrl-C stops",
            flush=True,
        )
        if http:
            print(f"open {public_url(access, name)}", flush=True)
        serving = asyncio.create_task(
            _refuse_streams(listener)
            if http
            else expose_tcp(listener, *parse_host_port(target), _log)
        )
        await stop.wait()
    await serving  # the listener closed the forwarding handler's session as it closed


def public_url(access: RelayAccess, name: str) -> str:
    """The URL a browser (or curl) opens to reach the exposed HTTP service."""
    return f"{access.endpoint.http_base_url}/{name.strip('/')}/"


def _log(stream: HybridStream) -> None:
    remote = f"{stream.remote[0]}:{stream.remote[1]}" if stream.remote else "a sender"
    logger.info("stream %s from %s", stream.tracking_id[:8], remote)


async def _refuse_streams(listener: HybridConnectionListener) -> None:
    """In HTTP mode a WebSocket sender has nothing to talk to."""
    async for stream in listener:
        await stream.close(1008, "this hybrid connection forwards HTTP requests only")


COMMAND = Command(
    name="expose",
    help="make a local TCP or HTTP service reachable through a hybrid connection",
    add_arguments=_add_arguments,
    run=_run,
    example="passage expose ssh --to 127.0.0.1:22 --data-dir .passage",
)
