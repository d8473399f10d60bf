"""Two nodes on one store: what one revokes, deletes or rotates holds on the other after a poll.

Each node is an IdentityService over its own IdentityState and Database, both opened on
the same SQLite file, with its own injected clock; nothing sleeps.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from passage.api import sync
from passage.api.service import IdentityService, load_state
from passage.api.sync import OVERLAP, IdentitySync
from passage.identity.errors import AuthenticationError
from passage.identity.ice_servers import RelayTopology
from passage.identity.ids import IdentityId
from passage.identity.keys import KeyName
from passage.identity.revocations import RETENTION
from passage.identity.scopes import Scope
from passage.identity.tokens import verify_token
from passage.store.database import Database, open_database, sqlite_url
from passage.store.identities import IdentityStore

T0 = 1_700_000_000.0  # unix seconds (2023-11-14T22:13:20Z)

TOPOLOGY = RelayTopology(
    region="westeurope",
    own_hosts=("relay.example.test",),
    other_relays=(),
    client_regions=(),
    turn_port=3478,
    turns_port=0,
)


@dataclass
class Clock:
    """Unix seconds that move only when a test says so."""

    now: float = T0

    def __call__(self) -> float:
        return self.now


@dataclass
class Node:
    database: Database
    clock: Clock
    service: IdentityService
    sync: IdentitySync

    def accepts(self, token: str) -> bool:
        state = self.service.state
        try:
            verify_token(token, state.keys, state.revocations, now=self.clock())
        except AuthenticationError:
            return False
        return True


async def start_node(url: str, now: float = T0) -> Node:
    database = await open_database(url)
    store = IdentityStore(database)
    clock = Clock(now)
    state = await load_state(store, TOPOLOGY.region, clock())
    service = IdentityService(store, state, TOPOLOGY, clock)
    return Node(database, clock, service, IdentitySync(store, state, clock))


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[tuple[Node, Node]]:
    url = sqlite_url(tmp_path)
    a = await start_node(url)
    b = await start_node(url)
    try:
        yield a, b
    finally:
        await a.database.close()
        await b.database.close()


def tick(*nodes: Node, seconds: float = 1.0) -> None:
    for node in nodes:
        node.clock.now += seconds


def token_for(node: Node, identity: IdentityId) -> str:
    key = node.service.state.keys.primary
    return node.service.issue_token(key, identity, (Scope.VOIP,), minutes=60).token


async def test_both_nodes_share_one_resource_id_and_keys(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    assert a.service.state.resource_id == b.service.state.resource_id
    assert a.service.state.keys == b.service.state.keys


async def test_a_revocation_on_another_node_holds_after_the_next_poll(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    identity = await a.service.create_identity()
    token = token_for(a, identity)
    issued_ms = int(T0 * 1000)
    assert b.accepts(token)
    tick(a, b)
    await a.service.revoke_tokens(identity)
    assert not a.accepts(token)
    assert b.accepts(token)
    assert not b.service.state.revocations.is_revoked(identity, issued_ms)
    await b.sync.poll()
    assert not b.accepts(token)
    assert b.service.state.revocations.is_revoked(identity, issued_ms)
    assert not b.service.state.revocations.is_deleted(identity)
    assert b.accepts(token_for(b, identity))


async def test_a_deletion_on_another_node_holds_after_the_next_poll(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    identity = await a.service.create_identity()
    token = token_for(b, identity)
    tick(a, b)
    await a.service.delete_identity(identity)
    assert b.accepts(token)
    assert not b.service.state.revocations.is_deleted(identity)
    await b.sync.poll()
    assert b.service.state.revocations.is_deleted(identity)
    assert not b.accepts(token)
    assert not b.accepts(token_for(b, identity))


async def test_a_key_rotation_on_another_node_holds_after_the_next_poll(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    identity = await a.service.create_identity()
    old_keys = b.service.state.keys
    token = token_for(b, identity)
    await a.service.rotate_key(KeyName.PRIMARY.value)
    assert a.service.state.keys.primary != old_keys.primary
    assert b.service.state.keys == old_keys
    assert b.accepts(token)
    await b.sync.poll()
    assert b.service.state.keys == a.service.state.keys
    assert b.service.state.keys.secondary == old_keys.secondary
    assert not b.accepts(token)


async def test_a_node_started_after_a_revocation_picks_it_up_on_its_first_poll(
    tmp_path: Path, nodes: tuple[Node, Node]
) -> None:
    a, _ = nodes
    identity = await a.service.create_identity()
    await a.service.revoke_tokens(identity)
    late = await start_node(sqlite_url(tmp_path), now=T0 + 3600)
    try:
        await late.sync.poll()
        assert late.service.state.revocations.is_revoked(identity, int(T0 * 1000))
    finally:
        await late.database.close()


async def test_a_change_stamped_by_a_lagging_clock_is_picked_up_within_the_overlap(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    identity = await a.service.create_identity()
    tick(a, b, seconds=100)
    await b.sync.poll()
    # A's clock runs behind B's: its change is stamped before B's last poll.
    a.clock.now = b.clock.now - (OVERLAP - 5)
    tick(b)
    await a.service.revoke_tokens(identity)
    await b.sync.poll()
    assert b.service.state.revocations.is_revoked(identity, int(a.clock.now * 1000))


async def test_a_poll_prunes_watermarks_older_than_the_retention(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    identity = await a.service.create_identity()
    await a.service.revoke_tokens(identity)
    await b.sync.poll()
    revocations = b.service.state.revocations
    assert len(revocations) == 1
    b.clock.now = T0 + RETENTION
    await b.sync.poll()
    assert revocations.is_revoked(identity, int(T0 * 1000))
    b.clock.now = T0 + RETENTION + 1
    await b.sync.poll()
    assert len(revocations) == 0
    assert not revocations.is_revoked(identity, int(T0 * 1000))


async def test_one_poll_applies_more_changes_than_fit_in_a_page(
    nodes: tuple[Node, Node], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sync, "PAGE", 3)
    a, b = nodes
    identities = [await a.service.create_identity() for _ in range(7)]
    for n, identity in enumerate(identities):
        # Two changes share each instant, so some pages end inside a tie.
        a.clock.now = T0 + 1 + n // 2
        await a.service.revoke_tokens(identity)
    tick(b, seconds=10)
    await b.sync.poll()
    revocations = b.service.state.revocations
    assert len(revocations) == 7
    assert all(revocations.is_revoked(identity, int(T0 * 1000)) for identity in identities)


async def test_a_page_full_of_one_instant_does_not_hide_the_rest_of_it(
    nodes: tuple[Node, Node], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pages are keyed by (changed_at, id): more ties than a page holds are all applied."""
    monkeypatch.setattr(sync, "PAGE", 3)
    a, b = nodes
    identities = [await a.service.create_identity() for _ in range(7)]
    a.clock.now = T0 + 1
    for identity in identities:
        await a.service.revoke_tokens(identity)  # all at the same instant
    tick(b, seconds=10)
    await b.sync.poll()
    revocations = b.service.state.revocations
    assert all(revocations.is_revoked(identity, int(T0 * 1000)) for identity in identities)
