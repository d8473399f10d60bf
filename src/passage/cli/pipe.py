"""``passage pipe --room ROOM``: stdin to the other side, its bytes to stdout, over the best path.

Like ``nc``, but the two ends need not reach each other: each is a
:class:`passage.peer.sdk.Peer` that meets the other in a signaling room and
takes the most direct path ICE finds (same LAN, through NATs, or through a
TURN relay over UDP, TCP or TLS). It prints the path to stderr, copies stdin
to the other side and the other side's bytes to stdout (reliably and in
order: :mod:`passage.peer.arq`), and exits 0 once both sides have reached
the end of their input and every byte was delivered.

Who it is, either of:

- ``--token TOKEN`` (env ``PASSAGE_TOKEN``): a user access token with the
  ``voip`` scope, and ``--endpoint https://HOST:PORT/`` (env
  ``PASSAGE_ENDPOINT``), the API that issued it;
- ``--connection-string`` (env ``PASSAGE_CONNECTION_STRING``): the deployment's
  access key; ``pipe`` creates a user with a one-hour voip token for the run
  and deletes it afterwards.

``--ca-file`` (env ``PASSAGE_CA_FILE``) is the CA to trust for the API,
signaling and TURN over TLS; by default the system's plus the data
directory's ``ca.pem``. Exit status 1 when no path could be found or it was
lost, 2 for a bad command line.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import sys
import threading
from dataclasses import dataclass
from typing import BinaryIO

from passage.cli.command import Command
from passage.cli.doctor_access import bearer_call
from passage.cli.management import (
    ConnectionString,
    RemoteError,
    RemoteTarget,
    call_remote,
    client_tls,
    running_target,
)
from passage.cli.options import add_config_arguments, config_from_arguments
from passage.cli.parsing import env_value
from passage.cli.variables import CA_FILE_ENV, CONNECTION_STRING_ENV, ENDPOINT_ENV, TOKEN_ENV
from passage.config import Config, ConfigError
from passage.peer.sdk import Peer, PeerError, PeerStream
from passage.signal import SignalError, parse_room_name

__all__ = ["COMMAND"]

IDENTITY_API_VERSION = "2023-10-01"
TOKEN_MINUTES = 60
CHUNK = 64 * 1024
STDIN_QUEUE = 16
"""Chunks read ahead of the stream: backpressure reaches the reading thread."""


@dataclass(frozen=True, slots=True)
class _Identity:
    api_url: str
    token: str
    created: tuple[RemoteTarget, str] | None
    """The connection string's target and the identity created for this run, to delete."""


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--room", required=True, help="the signaling room both sides name")
    parser.add_argument("--token", help=f"a user access token with voip scope (env {TOKEN_ENV})")
    parser.add_argument(
        "--endpoint", metavar="URL", help=f"https://HOST:PORT/ of the API (env {ENDPOINT_ENV})"
    )
    parser.add_argument(
        "--connection-string",
        metavar="TEXT",
        help=f"create a user for this run with the deployment's key (env {CONNECTION_STRING_ENV})",
    )
    parser.add_argument(
        "--ca-file", metavar="PATH", help=f"CA certificate to trust (env {CA_FILE_ENV})"
    )
    add_config_arguments(parser, only={"data_dir"})


def _run(arguments: argparse.Namespace) -> int:
    try:
        parse_room_name(arguments.room)
    except SignalError as error:
        raise ConfigError(f"--room: {error.reason}") from None
    config = config_from_arguments(arguments)
    tls = client_tls(arguments.ca_file, config)
    identity = _identity(arguments, config, tls)
    try:
        asyncio.run(_pipe(identity, arguments.room, tls))
    except PeerError as error:
        print(f"passage pipe: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        if identity.created is not None:
            _delete(*identity.created)
    return 0


def _identity(arguments: argparse.Namespace, config: Config, tls: ssl.SSLContext) -> _Identity:
    token = arguments.token or env_value(TOKEN_ENV, os.environ)
    text = arguments.connection_string or os.environ.get(CONNECTION_STRING_ENV)
    if token:
        endpoint = arguments.endpoint or os.environ.get(ENDPOINT_ENV)
        if not endpoint:
            raise ConfigError(f"--token needs --endpoint (env {ENDPOINT_ENV}), the API's URL")
        _check_token(endpoint, token, tls)
        return _Identity(endpoint, token, None)
    if text:
        connection = ConnectionString.parse(text)
        target = RemoteTarget(connection, tls if connection.endpoint.startswith("https") else None)
    else:
        found = running_target(arguments, config)
        if found is None:
            raise ConfigError(
                f"pass --token (env {TOKEN_ENV}) and --endpoint, or --connection-string, "
                f"or the --data-dir of a running server (no server runs on {config.data_dir})"
            )
        target = found
    body = {"createTokenWithScopes": ["voip"], "expiresInMinutes": TOKEN_MINUTES}
    created = call_remote(
        target, "POST", "/identities", {"api-version": IDENTITY_API_VERSION}, body
    )
    identity, token = created["identity"]["id"], created["accessToken"]["token"]
    print(f"passage pipe: created user {identity} for this run", file=sys.stderr)
    return _Identity(target.connection.endpoint, token, (target, identity))


def _check_token(endpoint: str, token: str, tls: ssl.SSLContext) -> None:
    """Ask the API for a relay configuration with ``token``: a refusal is reported now, not
    after "waiting for the other side"."""
    try:
        bearer_call(endpoint, token, tls)
    except RemoteError as error:
        if error.status == 401:
            raise ConfigError(f"--token: the token was refused: {error}") from None
        raise ConfigError(f"--endpoint {endpoint}: {error}") from None


def _delete(target: RemoteTarget, identity: str) -> None:
    try:
        call_remote(
            target, "DELETE", f"/identities/{identity}", {"api-version": IDENTITY_API_VERSION}
        )
    except RemoteError as error:  # the run is over; say so, but it did its job
        print(f"passage pipe: could not delete user {identity}: {error}", file=sys.stderr)


async def _pipe(identity: _Identity, room: str, tls: ssl.SSLContext) -> None:
    print(f"passage pipe: waiting for the other side in room {room!r}", file=sys.stderr)
    peer = await Peer.connect(identity.api_url, identity.token, room, tls=tls)
    try:
        print(f"passage pipe: {peer.path}", file=sys.stderr, flush=True)
        stream = peer.open_stream()
        await asyncio.gather(_upstream(stream), _downstream(stream))
        await stream.wait_closed()
    finally:
        await peer.close()


async def _upstream(stream: PeerStream) -> None:
    """stdin to the stream, then EOF. A daemon thread reads, so a blocked read never holds
    up the exit."""
    loop = asyncio.get_running_loop()
    chunks: asyncio.Queue[bytes] = asyncio.Queue(STDIN_QUEUE)

    def read() -> None:
        while True:
            try:
                chunk = os.read(sys.stdin.fileno(), CHUNK)
            except OSError:
                chunk = b""
            asyncio.run_coroutine_threadsafe(chunks.put(chunk), loop).result()
            if not chunk:
                return

    threading.Thread(target=read, name="passage-pipe-stdin", daemon=True).start()
    while chunk := await chunks.get():
        await stream.write(chunk)
    stream.write_eof()


async def _downstream(stream: PeerStream) -> None:
    out = sys.stdout.buffer
    while chunk := await stream.read():
        await asyncio.to_thread(_write, out, chunk)


def _write(out: BinaryIO, chunk: bytes) -> None:
    out.write(chunk)
    out.flush()


COMMAND = Command(
    name="pipe",
    help="stdin/stdout to the other side of a room, over the most direct path (like nc)",
    add_arguments=_add_arguments,
    run=_run,
    example="passage pipe --room 7f3c2e9a --data-dir .passage < file",
)
