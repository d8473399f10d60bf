"""A reload gives the running TURN relay its new users, quotas, caps and peer ranges at once
(``Running.reload``), and leaves live allocations their grants."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest

from passage.config import ConfigError
from passage.turn.config import TurnConfig
from passage_server import REALM, Server, in_process
from turn_client import TurnClient, UdpPeer, error_code


async def allocate(server: Server, username: str, password: str) -> tuple[TurnClient, int | None]:
    client = await TurnClient.connect("udp", server.address("udp"), username, password)
    return client, error_code(await client.allocate())


async def test_static_users_are_replaced_and_live_allocations_run_out(tmp_path: Path) -> None:
    async with in_process(tmp_path) as server:
        alice, code = await allocate(server, "alice", "wonderland")
        assert code is None
        new = dataclasses.replace(server.config, users=(("bob", "builder"),))
        plan = await server.running.reload(new)
        assert plan.applied == ("users",)
        bob, code = await allocate(server, "bob", "builder")
        assert code is None
        late, code = await allocate(server, "alice", "wonderland")
        assert code == 401  # no longer a user
        # The allocation made before the reload lives out its lifetime, but a removed
        # user cannot refresh it: every request is authenticated anew.
        assert len(server.running.edge.core.allocations) == 2
        assert error_code(await alice.refresh(600)) == 401
        assert error_code(await bob.refresh(600)) is None
        for client in (alice, bob, late):
            await client.close()


async def test_quotas_caps_and_peer_ranges_apply_to_the_next_request(tmp_path: Path) -> None:
    async with in_process(tmp_path, loopback_peers=True) as server:
        first, code = await allocate(server, "alice", "wonderland")
        assert code is None
        peer = await UdpPeer.bind()
        assert error_code(await first.create_permission(peer.address)) is None
        turn = TurnConfig(realm=REALM, max_allocations_per_user=1, max_bytes_per_second=5000)
        plan = await server.running.reload(dataclasses.replace(server.config, turn=turn))
        assert plan.applied == (
            "turn.max_allocations_per_user", "turn.max_bytes_per_second",
            "turn.allow_loopback_peers",
        )  # fmt: skip
        second, code = await allocate(server, "alice", "wonderland")
        assert code == 486
        # Loopback peers are refused now: a new permission gets 403.
        assert error_code(await first.create_permission(("127.0.0.2", 9))) == 403
        assert server.running.edge.core.config.max_bytes_per_second == 5000
        for client in (first, second):
            await client.close()
        await peer.close()


async def test_a_refused_reload_changes_nothing(tmp_path: Path) -> None:
    async with in_process(tmp_path) as server:
        missing = tmp_path / "missing.pem"
        bad = dataclasses.replace(
            server.config, tls_cert=missing, tls_key=missing, users=(("bob", "b"),)
        )
        with pytest.raises(ConfigError, match="--tls-cert"):
            await server.running.reload(bad)
        assert server.running.config.users == server.config.users
        client, code = await allocate(server, "alice", "wonderland")
        assert code is None
        await client.close()


async def test_the_log_level_is_reloaded(tmp_path: Path) -> None:
    root = logging.getLogger()
    before = root.level
    try:
        async with in_process(tmp_path) as server:
            await server.running.reload(dataclasses.replace(server.config, log_level="warning"))
            assert root.level == logging.WARNING
            await server.running.reload(dataclasses.replace(server.config, log_level="debug"))
            assert root.level == logging.DEBUG
    finally:
        root.setLevel(before)
