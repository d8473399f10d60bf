"""``passage token``: a user access token (JWT) for ``pipe``, ``doctor --token`` and signaling.

It creates a user (or, with ``--user ID``, takes an existing one) and issues
it a token with ``--scopes`` (default ``voip``) valid ``--ttl`` seconds (1 to
24 hours, as ACS allows), exactly as ``POST /identities`` does for an app's
backend. Through the server named by ``--connection-string``, else the one
running on ``--data-dir``, else the data directory's store itself.

The token alone goes to stdout, so ``PASSAGE_TOKEN=$(passage token ...)``
works; the user, the expiry and the API to give it to go to stderr, or, with
``--json``, all in one object on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass

from passage.cli.command import Command
from passage.cli.management import (
    RemoteTarget,
    add_management_arguments,
    call_remote,
    management_config,
    remote_target,
    with_store,
)
from passage.cli.running import served_endpoint
from passage.config import Config, ConfigError

__all__ = ["COMMAND"]

IDENTITY_API_VERSION = "2023-10-01"
DEFAULT_TTL = 3600
MIN_TTL, MAX_TTL = 3600, 86_400
"""ACS issues tokens for 60 to 1440 minutes."""
SCOPES = ("chat", "voip", "chat.join", "chat.join.limited", "voip.join")


@dataclass(frozen=True, slots=True)
class _Issued:
    identity: str
    token: str
    expires_on: str
    endpoint: str | None


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scopes",
        default="voip",
        metavar="LIST",
        help=f"comma-separated, of {', '.join(SCOPES)} (default voip: pipe, doctor, signaling)",
    )
    parser.add_argument(
        "--ttl",
        type=int,
        default=DEFAULT_TTL,
        metavar="SECONDS",
        help=f"how long the token is valid, {MIN_TTL} to {MAX_TTL} (default {DEFAULT_TTL})",
    )
    parser.add_argument("--user", metavar="ID", help="an existing user (default: a new one)")
    parser.add_argument("--json", action="store_true", help="print user, token, expiry as JSON")
    add_management_arguments(parser)


def _run(arguments: argparse.Namespace) -> int:
    scopes = _scopes(arguments.scopes)
    if not MIN_TTL <= arguments.ttl <= MAX_TTL:
        raise ConfigError(f"--ttl {arguments.ttl}: expected {MIN_TTL} to {MAX_TTL} seconds")
    minutes = arguments.ttl // 60
    config = management_config(arguments)
    target = remote_target(arguments, config)
    if target is not None:
        issued = _through_api(target, scopes, minutes, arguments.user)
    else:
        issued = _in_store(arguments, config, scopes, minutes, arguments.user)
    if arguments.json:
        document = {"identity": issued.identity, "token": issued.token}
        print(json.dumps(document | {"expiresOn": issued.expires_on, "endpoint": issued.endpoint}))
        return 0
    print(issued.token)
    where = f"; use it with --endpoint {issued.endpoint}" if issued.endpoint else ""
    print(
        f"passage: token for user {issued.identity} ({', '.join(scopes)}), "
        f"expires {issued.expires_on}{where}",
        file=sys.stderr,
    )
    return 0


def _scopes(text: str) -> list[str]:
    scopes = [scope.strip() for scope in text.split(",") if scope.strip()]
    unknown = [scope for scope in scopes if scope not in SCOPES]
    if not scopes or unknown:
        raise ConfigError(f"--scopes {text}: expected some of {', '.join(SCOPES)}")
    return list(dict.fromkeys(scopes))


def _through_api(
    target: RemoteTarget, scopes: list[str], minutes: int, user: str | None
) -> _Issued:
    query = {"api-version": IDENTITY_API_VERSION}
    endpoint = target.connection.endpoint
    if target.advertised is not None:  # the local server, called on loopback
        endpoint = target.advertised.api_url() or endpoint
    if user is None:
        body = {"createTokenWithScopes": scopes, "expiresInMinutes": minutes}
        created = call_remote(target, "POST", "/identities", query, body)
        token = created["accessToken"]
        return _Issued(created["identity"]["id"], token["token"], token["expiresOn"], endpoint)
    path = f"/identities/{user}/:issueAccessToken"
    token = call_remote(
        target, "POST", path, query, {"scopes": scopes, "expiresInMinutes": minutes}
    )
    return _Issued(user, token["token"], token["expiresOn"], endpoint)


def _in_store(
    arguments: argparse.Namespace, config: Config, scopes: list[str], minutes: int, user: str | None
) -> _Issued:
    """No server to ask: mint with the store's primary key, as the server would."""
    # Imported here: only this path needs the identity service.
    from passage.api.service import IdentityService, load_state
    from passage.identity.errors import IdentityError
    from passage.identity.ice_servers import RelayTopology
    from passage.identity.keys import KeyName
    from passage.identity.scopes import parse_scopes
    from passage.store.identities import IdentityStore

    async def mint(store: IdentityStore) -> _Issued:
        state = await load_state(store, config.region, time.time())
        no_relays = RelayTopology(config.region, (), (), (), turn_port=0, turns_port=0)
        service = IdentityService(store, state, no_relays, time.time)
        try:
            identity = await service.require_live(user) if user else await service.create_identity()
            issued = service.issue_token(
                state.keys.named(KeyName.PRIMARY), identity, parse_scopes(scopes), minutes
            )
        except IdentityError as error:
            raise ConfigError(f"--user {user}: {error}") from None
        return _Issued(identity, issued.token, issued.expires_on, None)

    issued = with_store(config, lambda _db, store: mint(store))
    endpoint, _ = served_endpoint(arguments, config)
    return _Issued(issued.identity, issued.token, issued.expires_on, endpoint.api_url())


COMMAND = Command(
    name="token",
    help="mint a user access token (for pipe, doctor --token and signaling)",
    add_arguments=_add_arguments,
    run=_run,
    example="passage token --data-dir .passage --scopes voip --ttl 7200 > token.txt",
)
