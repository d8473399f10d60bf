"""How ``passage expose`` and ``passage connect`` reach a Hybrid Connections relay.

Either a relay connection string, as Azure Relay hands out and ``passage hc
connection-string`` prints (``--relay-connection-string``, env
``PASSAGE_RELAY_CONNECTION_STRING``), or the local data directory: the key of
``--rule`` (the root rule by default) read from its store, and the address
``passage serve`` advertises, on the API port (``wss://``, or ``ws://`` on
the plain ``--http-port`` when the API port is off). ``--endpoint`` (env
``PASSAGE_ENDPOINT``; formerly ``--relay-url``) names another address.
``--ca-file`` (env ``PASSAGE_CA_FILE``) is the CA to trust; by default the
system's CAs plus the data directory's ``ca.pem``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
from dataclasses import dataclass

from passage.cli.management import client_tls, untrusted, with_hybrid_admin
from passage.cli.options import (
    SERVER_ADDRESS_OPTIONS,
    add_config_arguments,
    config_from_arguments,
)
from passage.cli.parsing import deprecated_alias
from passage.cli.running import served_endpoint
from passage.cli.variables import CA_FILE_ENV, ENDPOINT_ENV, RELAY_CONNECTION_STRING_ENV
from passage.config import Config, ConfigError
from passage.hybrid.admin import HybridAdmin
from passage.hybrid.endpoint import ConnectionStringError, RelayConnectionString, RelayEndpoint
from passage.hybrid.entities import ROOT_RULE
from passage.hybrid.sas import Rights
from passage.hybrid.sdk import KeyTokenProvider, TokenProvider, token_provider

__all__ = [
    "RELAY_CONNECTION_STRING_ENV",
    "RelayAccess",
    "add_relay_arguments",
    "check_reachable",
    "relay_access",
]

REACH_TIMEOUT = 10.0
"""Seconds ``check_reachable`` waits for the relay's TCP and TLS handshakes."""


@dataclass(frozen=True, slots=True)
class RelayAccess:
    endpoint: RelayEndpoint
    tokens: TokenProvider
    tls: ssl.SSLContext | None
    """The context for ``wss://``; None for ``ws://``."""


def add_relay_arguments(parser: argparse.ArgumentParser) -> None:
    relay = parser.add_argument_group("relay")
    relay.add_argument(
        "--relay-connection-string",
        metavar="TEXT",
        help="Endpoint=sb://HOST:PORT/;SharedAccessKeyName=RULE;SharedAccessKey=KEY "
        f"(env {RELAY_CONNECTION_STRING_ENV}); without it, the local data directory's",
    )
    relay.add_argument(
        "--endpoint",
        dest="relay_url",
        metavar="URL",
        help=f"the relay, https://HOST:PORT/ (or wss://, sb://, ws://) (env {ENDPOINT_ENV}); "
        "default: the connection string's, else the server running on --data-dir",
    )
    relay.add_argument(
        "--relay-url",
        dest="relay_url",
        action=deprecated_alias("--endpoint"),
        help=argparse.SUPPRESS,
    )
    relay.add_argument(
        "--rule",
        default=ROOT_RULE,
        help=f"with the data directory: the rule that signs (default {ROOT_RULE})",
    )
    relay.add_argument(
        "--ca-file", metavar="PATH", help=f"CA certificate to trust for wss:// (env {CA_FILE_ENV})"
    )
    add_config_arguments(
        parser, only={"data_dir"}, hidden=SERVER_ADDRESS_OPTIONS, instead="--endpoint"
    )


def relay_access(arguments: argparse.Namespace, name: str, needed: Rights) -> RelayAccess:
    """Where and how to reach hybrid connection ``name``; ``ConfigError`` says what is missing.

    With the data directory, the rule is checked here, before anything starts, to exist
    and to grant ``needed`` (Listen for expose, Send for connect)."""
    config = config_from_arguments(arguments)
    arguments.relay_url = arguments.relay_url or os.environ.get(ENDPOINT_ENV)
    text = arguments.relay_connection_string or os.environ.get(RELAY_CONNECTION_STRING_ENV)
    try:
        if text:
            parsed = RelayConnectionString.parse(text)
            if (
                parsed.entity_path
                and parsed.entity_path.strip("/").lower() != name.strip("/").lower()
            ):
                raise ConfigError(
                    f"the relay connection string is for {parsed.entity_path!r}, not {name!r}"
                )
            endpoint = (
                RelayEndpoint.parse(arguments.relay_url) if arguments.relay_url else parsed.endpoint
            )
            tokens = token_provider(parsed)
        else:
            endpoint = _local_endpoint(arguments, config)
            tokens = _local_tokens(config, name, arguments.rule, needed)
    except ConnectionStringError as error:
        raise ConfigError(str(error)) from None
    tls = client_tls(arguments.ca_file, config) if endpoint.scheme == "wss" else None
    return RelayAccess(endpoint, tokens, tls)


def _local_endpoint(arguments: argparse.Namespace, config: Config) -> RelayEndpoint:
    if arguments.relay_url:
        return RelayEndpoint.parse(arguments.relay_url)
    endpoint, _ = served_endpoint(arguments, config)  # the running server's notion of itself
    url = endpoint.websocket_url()
    if url is None:
        raise ConfigError("the API port and the plain-HTTP port are both off; pass --endpoint")
    return RelayEndpoint.parse(url)


def _local_tokens(config: Config, name: str, rule: str, needed: Rights) -> KeyTokenProvider:
    """The key of ``rule`` (on ``name``, else on the namespace, as the relay looks it up)."""

    async def read(admin: HybridAdmin) -> KeyTokenProvider:
        namespace = await admin.refresh()
        resolved = namespace.resolve(name)
        if resolved is None or resolved.suffix:
            raise ConfigError(f"there is no hybrid connection {name!r}: `passage hc create {name}`")
        signing = namespace.rules_for(resolved.connection).get(rule)
        if signing is None:
            raise ConfigError(f"no authorization rule {rule!r} on {name!r} or on the namespace")
        if not signing.rights.allows(needed):
            right = "listen" if needed & Rights.LISTEN else "send"
            raise ConfigError(
                f"--rule {rule}: the rule does not grant {right} on {name!r} "
                f"(passage hc rule add {rule} --rights {right} --entity {name})"
            )
        return KeyTokenProvider(signing.name, signing.primary_key)

    return with_hybrid_admin(config, read)


async def check_reachable(access: RelayAccess) -> None:
    """Open (and close) a connection to the relay, with TLS for ``wss://``: a wrong host or
    port, or a certificate we do not trust, is reported at start as a ``ConfigError``.

    Rights are not probed here: the relay checks a sender's token only when the sender
    connects, and a sender that connects reaches a listener (and the service behind it)."""
    endpoint = access.endpoint
    where = f"cannot reach the relay at {endpoint.base_url}"
    try:
        async with asyncio.timeout(REACH_TIMEOUT):
            _, writer = await asyncio.open_connection(
                endpoint.host,
                endpoint.port,
                ssl=access.tls,
                server_hostname=endpoint.host if access.tls else None,
            )
    except ssl.SSLCertVerificationError as error:
        raise ConfigError(f"{where}: {untrusted(error)}") from None
    except TimeoutError:
        raise ConfigError(f"{where}: no answer in {REACH_TIMEOUT:.0f} s") from None
    except (OSError, ssl.SSLError) as error:
        raise ConfigError(f"{where}: {error.strerror or error}") from None
    writer.close()
    try:
        await writer.wait_closed()
    except (OSError, ssl.SSLError):
        pass  # the relay may close first; reaching it was the point
