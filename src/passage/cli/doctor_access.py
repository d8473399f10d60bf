"""Where ``passage doctor`` gets TURN credentials, and the URLs a relay configuration lists.

The first of these that is given is used:

1. ``--connection-string`` (env ``PASSAGE_CONNECTION_STRING``): a relay
   configuration from ``POST /networkTraversal/:issueRelayConfiguration``,
   signed with the string's key (HMAC-SHA256, as the ACS SDKs sign);
2. ``--token`` (env ``PASSAGE_TOKEN``, formerly ``PASSAGE_USER_TOKEN``) with ``--endpoint`` (env
   ``PASSAGE_ENDPOINT``): the same call with ``Authorization: Bearer``, as a
   client app makes it with its user token (voip scope);
3. ``--turn-user`` and ``--turn-password`` (env ``PASSAGE_TURN_PASSWORD``):
   a static user (``passage serve --user``);
4. ``--auth-secret``, else the data directory's generated secret when it
   exists: TURN REST credentials minted here, as ``passage turn-credentials``.

A relay configuration also lists the URLs to probe. If it cannot be had,
the doctor goes on without credentials (STUN Binding only) and says why;
the exit status is then 3. Secrets are never printed.
"""

from __future__ import annotations

import argparse
import os
import ssl
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from passage.api.routes import RELAY_API_VERSIONS
from passage.cli.management import (
    CONNECTION_STRING_ENV,
    ConnectionString,
    RemoteError,
    RemoteTarget,
    call_remote,
    open_json,
)
from passage.cli.parsing import env_value
from passage.cli.variables import ENDPOINT_ENV, TOKEN_ENV, TURN_PASSWORD_ENV
from passage.config import Config, ConfigError
from passage.datadir import AUTH_SECRET_FILE, read_auth_secret
from passage.doctor.report import CredentialsReport
from passage.turn.credentials import make_rest_credentials
from passage.turnclient import Credentials

__all__ = ["Access", "add_access_arguments", "bearer_call", "doctor_access"]

RELAY_PATH = "/networkTraversal/:issueRelayConfiguration"
MINTED_TTL = 600
"""Seconds the TURN REST credentials minted from a secret stay valid."""
MINTED_USER = "doctor"
"""The user name after the expiry in minted credentials (what the usage ledger shows)."""


@dataclass(frozen=True, slots=True)
class Access:
    """Credentials (or none), where they came from, and what a relay configuration listed."""

    credentials: Credentials | None
    report: CredentialsReport
    urls: tuple[str, ...] = ()
    """ICE server URLs of the relay configuration; empty without one."""
    endpoint_host: str | None = None
    """The API endpoint's host: the server to probe when HOST is not given."""


def add_access_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("credentials (the first one given is used)")
    group.add_argument(
        "--connection-string", metavar="TEXT",
        help=f"fetch a relay configuration with this access key (env {CONNECTION_STRING_ENV})",
    )  # fmt: skip
    group.add_argument(
        "--token", metavar="JWT",
        help=f"fetch one with this user access token, voip scope (env {TOKEN_ENV})",
    )  # fmt: skip
    group.add_argument(
        "--endpoint", metavar="URL",
        help=f"with --token: the API, e.g. https://relay.example:8443/ (env {ENDPOINT_ENV})",
    )  # fmt: skip
    group.add_argument("--turn-user", metavar="NAME", help="a static TURN user (serve --user)")
    group.add_argument(
        "--turn-password", metavar="TEXT", help=f"its password (env {TURN_PASSWORD_ENV})"
    )


def doctor_access(arguments: argparse.Namespace, config: Config, tls: ssl.SSLContext) -> Access:
    """Credentials by the first source given; ``ConfigError`` for flags that do not fit."""
    connection_string = arguments.connection_string or os.environ.get(CONNECTION_STRING_ENV)
    token = arguments.token or env_value(TOKEN_ENV, os.environ)
    if connection_string:
        connection = ConnectionString.parse(connection_string)
        target = RemoteTarget(connection, tls if connection.endpoint.startswith("https") else None)
        return _fetched(
            "connection-string",
            connection.endpoint,
            lambda: call_remote(
                target, "POST", RELAY_PATH, {"api-version": RELAY_API_VERSIONS[-1]}, {}
            ),
        )
    if token:
        endpoint = arguments.endpoint or os.environ.get(ENDPOINT_ENV)
        if not endpoint:
            raise ConfigError(f"--token needs --endpoint (env {ENDPOINT_ENV}): the API's URL")
        return _fetched("token", endpoint, lambda: bearer_call(endpoint, token, tls))
    if arguments.turn_user:
        password = arguments.turn_password or os.environ.get(TURN_PASSWORD_ENV)
        if password is None:
            raise ConfigError(f"--turn-user needs --turn-password (env {TURN_PASSWORD_ENV})")
        return Access(Credentials(arguments.turn_user, password), CredentialsReport("static"))
    return _minted(config)


def _fetched(source: str, endpoint: str, fetch: Any) -> Access:
    host = urllib.parse.urlsplit(endpoint).hostname
    try:
        username, password, urls = _pick(fetch())
    except RemoteError as exc:
        return Access(None, CredentialsReport(source, str(exc)), endpoint_host=host)
    return Access(Credentials(username, password), CredentialsReport(source), urls, host)


def bearer_call(endpoint: str, token: str, tls: ssl.SSLContext) -> Any:
    """A relay configuration for user ``token`` from the API at ``endpoint``."""
    if not endpoint.startswith(("https://", "http://")):
        raise ConfigError(f"--endpoint: expected https://HOST:PORT/, got {endpoint!r}")
    query = urllib.parse.urlencode({"api-version": RELAY_API_VERSIONS[-1]})
    request = urllib.request.Request(
        f"{endpoint.rstrip('/')}{RELAY_PATH}?{query}",
        data=b"{}",
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    return open_json(request, tls if endpoint.startswith("https://") else None)


def _pick(body: Any) -> tuple[str, str, tuple[str, ...]]:
    """(username, credential, URLs) of the ``nearest`` entry, else the first one."""
    try:
        servers = [s for s in body["iceServers"] if isinstance(s, dict)]
        nearest = [s for s in servers if s.get("routeType") == "nearest"]
        entry = (nearest or servers)[0]
        username, credential, urls = entry["username"], entry["credential"], entry["urls"]
    except (KeyError, IndexError, TypeError):
        raise RemoteError("the relay configuration has no usable ICE server entry") from None
    if not (isinstance(username, str) and isinstance(credential, str) and isinstance(urls, list)):
        raise RemoteError("the relay configuration's ICE server entry is malformed")
    return username, credential, tuple(str(url) for url in urls)


def _minted(config: Config) -> Access:
    """TURN REST credentials from ``--auth-secret`` or the data directory, if either is there."""
    if config.auth_secrets:
        secret, source = config.auth_secrets[0], "auth-secret"
    elif (config.data_dir / AUTH_SECRET_FILE).exists():
        secret, source = read_auth_secret(config.data_dir), "data-dir"
    else:
        return Access(None, CredentialsReport("none"))
    username, password = make_rest_credentials(secret, MINTED_USER, MINTED_TTL, time.time())
    return Access(Credentials(username, password), CredentialsReport(source))
