"""``passage console-link``: a one-time link that signs a browser in to the web console.

It reads the primary access key from the store (``--data-dir`` or
``--database-url``) and signs a link with it (:mod:`passage.console.links`):
the server takes it once, before it expires (10 minutes by default), and
never after the key is rotated. The link names the console where the server
running on the data directory advertises its API (:mod:`passage.cli.running`),
else where ``passage serve`` would with these settings.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time

from passage.api.service import load_state
from passage.cli.command import Command
from passage.cli.management import with_store
from passage.cli.options import (
    ADVERTISED_ADDRESS_OPTIONS,
    add_config_arguments,
    config_from_arguments,
)
from passage.cli.running import served_endpoint
from passage.config import ConfigError
from passage.console.links import MAX_LINK_LIFETIME, mint_link
from passage.identity.keys import KeyName

__all__ = ["COMMAND"]


def _minutes(text: str) -> int:
    try:
        minutes = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of minutes") from None
    if not 1 <= minutes <= MAX_LINK_LIFETIME // 60:
        raise argparse.ArgumentTypeError(f"from 1 to {MAX_LINK_LIFETIME // 60} minutes")
    return minutes


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--minutes", type=_minutes, default=10, help="how long the link works, if unused"
    )
    add_config_arguments(parser, only=ADVERTISED_ADDRESS_OPTIONS)


def _run(arguments: argparse.Namespace) -> int:
    config = config_from_arguments(arguments)
    endpoint, _ = served_endpoint(arguments, config)
    url = endpoint.api_url()
    if url is None:
        raise ConfigError("the HTTPS API port is off (the console is served there); set --api-port")
    region = config.region
    state = with_store(config, lambda _db, store: load_state(store, region, time.time()))
    expires = int(time.time()) + arguments.minutes * 60
    token = mint_link(state.keys.named(KeyName.PRIMARY), secrets.token_bytes(16), expires)
    print(f"{url}console/link?token={token}")
    print(
        f"passage: works once, for {arguments.minutes} minutes; anyone with it can sign in",
        file=sys.stderr,
    )
    return 0


COMMAND = Command(
    name="console-link",
    help="print a one-time link that signs a browser in to the web console",
    add_arguments=_add_arguments,
    run=_run,
    example="passage console-link --data-dir .passage",
)
