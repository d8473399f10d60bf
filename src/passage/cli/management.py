"""Where a management command acts: the local store, or a running server over HTTPS.

Every management command (``passage keys``, ``passage usage``, ``passage hc``)
takes the same flags: ``--connection-string`` (env ``PASSAGE_CONNECTION_STRING``)
to call a running server, signed with the key in the string as the ACS SDKs
sign (HMAC-SHA256); else ``--data-dir``/``--database-url``/``--config``. With a
data directory that a ``passage serve`` is running on (its ``server.json``),
the command calls that server's API with the store's primary key, so the server
sees the change at once (a hybrid connection created is usable by the next
listener); with no server running, it opens the store directly. ``--ca-file``
(env ``PASSAGE_CA_FILE``) names the CA to trust for that server; by default the
system's CAs plus the data directory's ``ca.pem``.

The store is the running server's too: ``server.json`` records its database URL
(without the password) and schema, so a command on a cluster node's data
directory acts on the cluster's PostgreSQL, not on a SQLite file of its own. A
``--database-url`` or ``--database-schema`` naming another store is refused in
one line (:func:`store_config`).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import email.utils
import json
import os
import re
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError

from passage.api.service import load_state, new_key_text
from passage.cli.options import (
    SERVER_ADDRESS_OPTIONS,
    add_config_arguments,
    config_from_arguments,
)
from passage.cli.preflight import check_database_driver
from passage.cli.running import announce, running_record, served_endpoint
from passage.cli.variables import CA_FILE_ENV, CONNECTION_STRING_ENV
from passage.config import Config, ConfigError
from passage.endpoint import AdvertisedEndpoint
from passage.hybrid.admin import AdminError, HybridAdmin
from passage.identity.hmac_auth import sign_request
from passage.identity.keys import KeyName, decode_key
from passage.mounts import RESERVED_NAMES
from passage.runtime import RuntimeRecord
from passage.store.database import (
    Database,
    async_url,
    is_unavailable,
    open_database,
    sqlite_url,
    url_without_password,
)
from passage.store.hybrid import HybridStore
from passage.store.identities import IdentityStore

__all__ = [
    "CONNECTION_STRING_ENV",
    "ConnectionString",
    "RemoteError",
    "RemoteTarget",
    "add_management_arguments",
    "call_remote",
    "client_tls",
    "management_config",
    "open_json",
    "remote_target",
    "untrusted",
    "running_target",
    "store_config",
    "with_hybrid_admin",
    "with_store",
]

REQUEST_TIMEOUT = 30.0

T = TypeVar("T")


class RemoteError(ConfigError):
    """The server refused the call; the message carries its ACS error code and message."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        """The HTTP status; None when the server could not be reached."""
        self.code = code
        """The ACS error ``code`` from the body, when it had one."""


@dataclass(frozen=True, slots=True)
class ConnectionString:
    """``endpoint=https://HOST:PORT/;accesskey=BASE64``, as ACS writes it."""

    endpoint: str
    access_key: str = field(repr=False)

    @classmethod
    def parse(cls, text: str) -> ConnectionString:
        parts = {}
        for item in text.strip().split(";"):
            name, equals, value = item.partition("=")
            if equals:
                parts[name.strip().lower()] = value.strip()
        endpoint, key = parts.get("endpoint"), parts.get("accesskey")
        if not endpoint or not key or not re.match(r"https?://[^/]+", endpoint):
            raise ConfigError("a connection string is endpoint=https://HOST:PORT/;accesskey=KEY")
        try:
            decode_key(key)
        except ValueError as exc:
            raise ConfigError(f"connection string: {exc}") from None
        return cls(endpoint.rstrip("/") + "/", key)

    def __str__(self) -> str:
        return f"endpoint={self.endpoint};accesskey={self.access_key}"


def add_management_arguments(parser: argparse.ArgumentParser, *, remote: bool = True) -> None:
    """``--connection-string`` and ``--ca-file`` (unless the command reads only the local
    store: ``remote=False``), then ``--config``, ``--data-dir``, ``--database-url``."""
    if not remote:
        add_config_arguments(parser, only={"data_dir", "database_url", "database_schema"})
        return
    parser.add_argument(
        "--connection-string",
        metavar="TEXT",
        default=None,
        help=f"call the server this names, not the local store (env {CONNECTION_STRING_ENV})",
    )
    parser.add_argument(
        "--ca-file",
        metavar="PATH",
        default=None,
        help=f"CA certificate to trust for --connection-string (env {CA_FILE_ENV})",
    )
    # The server's address flags are hidden: the running server on --data-dir says it, and
    # --endpoint overrides it where a command prints an address.
    add_config_arguments(
        parser,
        only={"data_dir", "database_url", "database_schema"},
        hidden=SERVER_ADDRESS_OPTIONS - {"database_url", "database_schema"},
        instead="--endpoint",
    )


@dataclass(frozen=True, slots=True)
class RemoteTarget:
    """A running server to call: its connection string, and the TLS context for https."""

    connection: ConnectionString
    tls: ssl.SSLContext | None
    advertised: AdvertisedEndpoint | None = None
    """How the server names itself to clients, when it differs from where we call it
    (the local server, called on loopback); None: the connection string's endpoint."""


def remote_target(
    arguments: argparse.Namespace, config: Config, *, running: bool = True
) -> RemoteTarget | None:
    """The server to call: the connection string's, else (with ``running``) the one running
    on the data directory; None to act on the local store."""
    text = arguments.connection_string or os.environ.get(CONNECTION_STRING_ENV)
    if not text:
        return running_target(arguments, config) if running else None
    connection = ConnectionString.parse(text)
    if not connection.endpoint.startswith("https://"):
        return RemoteTarget(connection, None)
    return RemoteTarget(connection, client_tls(arguments.ca_file, config))


def running_target(arguments: argparse.Namespace, config: Config) -> RemoteTarget | None:
    """The server running on the data directory, called at its local API URL with the
    store's primary key; None when none runs there. Raises ConfigError for a store that is
    not the server's (:func:`store_config`)."""
    record = running_record(config)
    if record is None or record.local_api_url is None:
        return None
    config = store_config(config)
    region = config.region
    state = with_store(config, lambda _db, store: load_state(store, region, time.time()))
    connection = ConnectionString(record.local_api_url, state.keys.named(KeyName.PRIMARY).text)
    tls = (
        client_tls(arguments.ca_file, config) if record.local_api_url.startswith("https") else None
    )
    endpoint, _ = served_endpoint(arguments, config)
    return RemoteTarget(connection, tls, endpoint)


def client_tls(ca_file: str | None, config: Config) -> ssl.SSLContext:
    """A client context trusting the system's CAs plus ``ca_file`` (env ``PASSAGE_CA_FILE``),
    else the data directory's generated ``ca.pem`` when there is one."""
    tls = ssl.create_default_context()
    ca_file = ca_file or os.environ.get(CA_FILE_ENV)
    local_ca = config.data_dir / "ca.pem"
    try:
        if ca_file:
            tls.load_verify_locations(Path(ca_file).expanduser())
        elif local_ca.exists():
            tls.load_verify_locations(local_ca)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"--ca-file: cannot load the CA: {exc}") from None
    return tls


def call_remote(
    target: RemoteTarget,
    method: str,
    path: str,
    query: dict[str, str] | None = None,
    body: Mapping[str, object] | None = None,
) -> Any:
    """Call ``path`` on the server, signed with the connection string's key; the JSON reply.

    ``body``, when given, is sent as compact JSON, and its bytes are what is signed.
    """
    endpoint = urllib.parse.urlsplit(target.connection.endpoint)
    path_and_query = path + ("?" + urllib.parse.urlencode(query) if query else "")
    date = email.utils.formatdate(time.time(), usegmt=True)
    data = json.dumps(body, separators=(",", ":")).encode() if body is not None else b""
    headers = sign_request(
        method,
        path_and_query,
        endpoint.netloc,
        data,
        decode_key(target.connection.access_key),
        date,
    )
    if body is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(
        f"{endpoint.scheme}://{endpoint.netloc}{path_and_query}",
        data=data if body is not None else None,
        method=method,
        headers=headers,
    )
    return open_json(request, target.tls)


def open_json(request: urllib.request.Request, tls: ssl.SSLContext | None) -> Any:
    """Send ``request``; its JSON reply. A refusal or a network failure is a :class:`RemoteError`
    that names the server and, for a refusal, the ACS error code and message."""
    netloc = urllib.parse.urlsplit(request.full_url).netloc
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT, context=tls) as reply:
            return json.loads(reply.read() or b"null")
    except urllib.error.HTTPError as exc:
        code, message = _error_text(exc)
        raise RemoteError(
            f"{netloc} answered {exc.code}: {message}", status=exc.code, code=code
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, ssl.SSLCertVerificationError):
            raise RemoteError(f"cannot reach {netloc}: {untrusted(reason)}") from None
        raise RemoteError(f"cannot reach {netloc}: {reason}") from None
    except ValueError as exc:  # a reply that is not JSON
        raise RemoteError(f"{netloc} answered something that is not JSON: {exc}") from None


def untrusted(error: ssl.SSLCertVerificationError) -> str:
    """A certificate refusal, and the fix: trust the CA ``passage serve`` generated."""
    return (
        f"its TLS certificate is not trusted ({error.verify_message}); pass --ca-file "
        "DATA_DIR/ca.pem (the CA passage serve made, e.g. .passage/ca.pem) or set "
        f"{CA_FILE_ENV}"
    )


def _error_text(error: urllib.error.HTTPError) -> tuple[str | None, str]:
    """The ACS error code, and the text to show: ``code: message``, else the reason phrase."""
    try:
        body = json.loads(error.read())
        code, message = body["error"]["code"], body["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return None, str(error.reason)
    return str(code), f"{code}: {message}"


def store_config(config: Config) -> Config:
    """``config`` with the store to act on: the one the server running on the data directory
    uses (its database URL, whose password ``server.json`` does not hold, and its schema)
    unless a setting names one; that one when it is the same store.

    Raises ConfigError naming ``--database-url`` or ``--database-schema`` when a setting
    names another store than the running server's: acting there would silently change
    what that server never reads."""
    record = running_record(config)
    if record is None or record.database_url is None:
        return config  # no server, or one older than the recorded store: as configured
    url = config.database_url or record.database_url
    if config.database_url is not None and _store_key(url) != _store_key(record.database_url):
        raise ConfigError(
            f"--database-url {url_without_password(url)}: not the store of the server running "
            f"on {config.data_dir} ({record.describe()}); leave --database-url out to use its "
            "store, or give another --data-dir"
        )
    given_schema = config.database_schema is not None or config.database_url is not None
    schema = config.database_schema if given_schema else record.database_schema
    if schema != record.database_schema:
        given = f"--database-schema {schema}" if schema else "--database-schema not given"
        wanted = (
            f"give --database-schema {record.database_schema}"
            if record.database_schema
            else ("leave --database-schema out")
        )
        raise ConfigError(
            f"{given}: not the schema of the server running on {config.data_dir} "
            f"({record.describe()}); {wanted}, or leave both --database-url and "
            "--database-schema out to use its store"
        )
    return dataclasses.replace(config, database_url=url, database_schema=schema)


def _store_key(url: str) -> str:
    """What tells two database URLs apart: the driver's spelling and the password do not."""
    try:
        return url_without_password(async_url(url).render_as_string(hide_password=False))
    except ValueError:
        return url


def with_store(config: Config, work: Callable[[Database, IdentityStore], Awaitable[T]]) -> T:
    """Run ``work`` on the store (migrated if needed), then close it: the running server's
    (:func:`store_config`), else the configured one. A store that cannot be opened is a
    ConfigError naming ``--database-url``."""
    config = store_config(config)
    record = running_record(config)

    async def run() -> T:
        url = config.database_url or sqlite_url(config.data_dir)
        try:
            database = await open_database(url, schema=config.database_schema)
        except Exception as error:
            if not _cannot_connect(error):
                raise
            raise ConfigError(_unreachable(url, error, config, record)) from None
        if record is not None:
            announce(record, config)  # once open: a store that is not is one line, above
        try:
            return await work(database, IdentityStore(database))
        finally:
            await database.close()

    check_database_driver(config)
    if config.database_url is None and not config.data_dir.is_dir():
        raise ConfigError(
            f"{config.data_dir} does not exist: start `passage serve --data-dir "
            f"{config.data_dir}` once, or pass --connection-string"
        )
    return asyncio.run(run())


def _cannot_connect(error: BaseException) -> bool:
    """The store was not reached or refused the connection (address, password, database)."""
    return is_unavailable(error) or isinstance(error, DBAPIError)


def _unreachable(
    url: str, error: BaseException, config: Config, record: RuntimeRecord | None
) -> str:
    """One line: which store, why it could not be opened, and what to change."""
    reason = getattr(error, "orig", None) or error
    text = f"--database-url {url_without_password(url)}"
    recorded = record is not None and url == record.database_url
    if recorded:
        text += f" (the store of the server running on {config.data_dir})"
    lines = str(reason).strip().splitlines()
    text += f": cannot open the store: {lines[0] if lines else type(reason).__name__}"
    if recorded and url.startswith(("postgres://", "postgresql")):
        text += (
            "; server.json holds its URL without the password: give --database-url with "
            "it, or set PGPASSWORD or ~/.pgpass"
        )
    return text


def with_hybrid_admin(config: Config, work: Callable[[HybridAdmin], Awaitable[T]]) -> T:
    """Run ``work`` on the local store's hybrid connections (creating the root rule if it is
    missing, as the server does at start); an :class:`AdminError` becomes a ``ConfigError``."""

    async def on_store(database: Database, _identities: IdentityStore) -> T:
        admin = HybridAdmin(
            HybridStore(database),
            clock=time.time,
            new_key=new_key_text,
            reserved_names=RESERVED_NAMES,
        )
        await admin.ensure_root_rule()
        return await work(admin)

    try:
        return with_store(config, on_store)
    except AdminError as error:
        raise ConfigError(error.message) from None


def management_config(arguments: argparse.Namespace) -> Config:
    """The configuration for a management command's flags, environment and TOML file."""
    return config_from_arguments(arguments)
