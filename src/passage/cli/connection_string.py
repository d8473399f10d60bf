"""``passage connection-string``: the string ACS SDKs take, for this deployment.

It reads the access key from the store (``--data-dir`` or ``--database-url``)
and names the API as clients should reach it: the address the server running
on the data directory advertises (:mod:`passage.cli.running`), else the one
``passage serve`` would advertise with these settings; ``--public-host`` and
``--api-port`` (or the plain ``--http-port`` with ``--http``) override it.
"""

from __future__ import annotations

import argparse
import time

from passage.api.service import load_state
from passage.cli.command import Command
from passage.cli.management import ConnectionString, with_store
from passage.cli.options import (
    ADVERTISED_ADDRESS_OPTIONS,
    add_config_arguments,
    config_from_arguments,
)
from passage.cli.running import served_endpoint
from passage.config import ConfigError
from passage.identity.keys import KeyName

__all__ = ["COMMAND"]


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--secondary", action="store_true", help="use the secondary key")
    parser.add_argument("--http", action="store_true", help="name the plain-HTTP port")
    add_config_arguments(parser, only=ADVERTISED_ADDRESS_OPTIONS)


def _run(arguments: argparse.Namespace) -> int:
    config = config_from_arguments(arguments)
    endpoint, _ = served_endpoint(arguments, config)
    url = endpoint.api_url(plain_http=arguments.http)
    if url is None:
        scheme, flag = ("http", "--http-port") if arguments.http else ("https", "--api-port")
        raise ConfigError(f"the {scheme} API port is off; set {flag}")
    region = config.region
    state = with_store(config, lambda _db, store: load_state(store, region, time.time()))
    key = state.keys.named(KeyName.SECONDARY if arguments.secondary else KeyName.PRIMARY)
    print(ConnectionString(url, key.text))
    return 0


COMMAND = Command(
    name="connection-string",
    help="print the connection string ACS SDKs use to reach this deployment",
    add_arguments=_add_arguments,
    run=_run,
    example="passage connection-string --data-dir .passage",
)
