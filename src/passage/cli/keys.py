"""``passage keys``: rotate the access keys, or show which ones are current.

``rotate primary|secondary`` replaces one key with a new random one, through a
running server (``--connection-string``, or the server running on
``--data-dir``: ``POST /keys/{name}/:rotate``), else in the local store
(``--data-dir``/``--database-url``; a server on a shared store picks the change
up with its next poll, within a second). Whatever the old key
minted (user tokens, relay credentials) stops working at once, as in ACS.

``show`` prints each key's public fingerprint (:attr:`AccessKey.key_id`), and the
secret itself only with ``--reveal``. It reads the local store only: the API has
no operation that lists keys.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from passage.api.service import IdentityService, load_state
from passage.cli.command import Command
from passage.cli.management import (
    ConnectionString,
    add_management_arguments,
    call_remote,
    management_config,
    remote_target,
    with_store,
)
from passage.cli.parsing import HelpFormatter
from passage.config import Config
from passage.identity.ice_servers import RelayTopology
from passage.identity.keys import AccessKey, KeyName
from passage.store.identities import IdentityStore

__all__ = ["COMMAND"]


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(title="actions", metavar="ACTION", required=True)
    rotate = actions.add_parser(
        "rotate",
        help="replace a key with a new random one",
        description="Replace a key with a new random one (through the running server, if any).",
        formatter_class=HelpFormatter,
    )
    rotate.add_argument(
        "key_name", choices=[name.value for name in KeyName], help="the key to replace"
    )
    add_management_arguments(rotate)
    rotate.set_defaults(key_action=_rotate)
    show = actions.add_parser(
        "show",
        help="print each key's fingerprint (local store only)",
        description="Print each key's fingerprint, and with --reveal the key (local store only).",
        formatter_class=HelpFormatter,
    )
    show.add_argument("--reveal", action="store_true", help="also print the secret keys")
    add_management_arguments(show, remote=False)
    show.set_defaults(key_action=_show)


def _run(arguments: argparse.Namespace) -> int:
    action: Callable[[argparse.Namespace], int] = arguments.key_action
    return action(arguments)


# --- rotate -------------------------------------------------------------------


def _rotate(arguments: argparse.Namespace) -> int:
    name = KeyName(arguments.key_name)
    config = management_config(arguments)
    target = remote_target(arguments, config)
    if target is None:
        key = with_store(config, lambda _database, store: _rotate_in_store(store, config, name))
        flag = " --secondary" if name is KeyName.SECONDARY else ""
        lines = [
            f"key: {key.text}",
            f"note: run `passage connection-string{flag}` on this store for the full string",
        ]
    else:
        reply = call_remote(target, "POST", f"/keys/{name.value}/:rotate")
        endpoint = target.connection.endpoint
        if target.advertised is not None:  # the local server, called on loopback
            endpoint = target.advertised.api_url() or endpoint
        rotated = ConnectionString(endpoint, str(reply["key"]))
        lines = [f"connection string: {rotated}"]
    print(f"{name.value} key rotated")
    print("\n".join(lines))
    print(f"note: tokens and relay credentials minted with the old {name.value} key no longer work")
    return 0


async def _rotate_in_store(store: IdentityStore, config: Config, name: KeyName) -> AccessKey:
    state = await load_state(store, config.region, time.time())
    # Rotation never looks at the relay topology; the service only needs one to exist.
    no_relays = RelayTopology(config.region, (), (), (), turn_port=0, turns_port=0)
    service = IdentityService(store, state, no_relays, time.time)
    return await service.rotate_key(name.value)


# --- show ---------------------------------------------------------------------


def _show(arguments: argparse.Namespace) -> int:
    config = management_config(arguments)
    region = config.region
    state = with_store(config, lambda _database, store: _load_keys(store, region))
    for key in state:
        secret = f"  {key.text}" if arguments.reveal else ""
        print(f"{key.name.value:<9}  {key.key_id}{secret}")
    return 0


async def _load_keys(store: IdentityStore, region: str) -> tuple[AccessKey, ...]:
    state = await load_state(store, region, time.time())
    return tuple(state.keys)


COMMAND = Command(
    name="keys",
    help="rotate or show the access keys",
    add_arguments=_add_arguments,
    run=_run,
    example="passage keys rotate secondary --data-dir .passage",
)
