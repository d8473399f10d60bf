"""``passage turn-credentials``: mint an ephemeral TURN username and password.

The pair is the one coturn's ``use-auth-secret`` accepts (username
``<expiry>:<user>``, password ``base64(HMAC-SHA1(secret, username))``), signed with
the first configured ``--auth-secret`` or, without one, the secret that
``passage serve`` generated in the data directory.
"""

from __future__ import annotations

import argparse
import datetime
import json
import time

from passage.cli.command import Command
from passage.cli.options import add_config_arguments, config_from_arguments
from passage.config import ConfigError
from passage.datadir import read_auth_secret
from passage.turn.credentials import make_rest_credentials

__all__ = ["COMMAND", "DEFAULT_TTL"]

DEFAULT_TTL = 86_400
"""Lifetime of minted credentials when ``--ttl`` is not given, in seconds (one day)."""


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--user", dest="credential_user", metavar="NAME", help="user name after the expiry"
    )
    parser.add_argument(
        "--ttl",
        type=int,
        default=DEFAULT_TTL,
        metavar="SECONDS",
        help=f"seconds the credentials stay valid (default {DEFAULT_TTL})",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON object")
    add_config_arguments(parser, only={"data_dir", "auth_secrets"})


def _run(arguments: argparse.Namespace) -> int:
    if arguments.ttl <= 0:
        raise ConfigError(f"--ttl: expected a number of seconds > 0, got {arguments.ttl}")
    config = config_from_arguments(arguments)
    secret = config.auth_secrets[0] if config.auth_secrets else read_auth_secret(config.data_dir)
    now = time.time()
    username, password = make_rest_credentials(
        secret, arguments.credential_user, arguments.ttl, now
    )
    expires = datetime.datetime.fromtimestamp(int(now) + arguments.ttl, datetime.UTC)
    printed = {
        "username": username,
        "password": password,
        "expires": expires.isoformat().replace("+00:00", "Z"),
    }
    if arguments.json:
        print(json.dumps(printed))
    else:
        print("\n".join(f"{key}: {value}" for key, value in printed.items()))
    return 0


COMMAND = Command(
    name="turn-credentials",
    help="print an ephemeral TURN username and password",
    add_arguments=_add_arguments,
    run=_run,
    example="passage turn-credentials --data-dir .passage --user alice --ttl 3600 --json",
)
