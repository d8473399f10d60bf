"""Changes made on one node hold on the others at once: ``revoked``, ``deleted``,
``keys-rotated`` and ``hc-changed`` go over Redis after the commit. The nodes here poll
their store once an hour, so only the event can deliver (the 1 s poll is the backstop,
shown last with the link cut)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cluster_nodes import Node, cluster

from passage.stun import MessageClass
from turn_client import TurnClient, error_code

pytestmark = pytest.mark.postgres

NO_POLL = 3600.0


async def relay_credentials(node: Node, identity: str) -> tuple[str, str]:
    """A relay credential pair for ``identity``, minted by ``node``'s API service."""
    service = node.server.running.api.service
    live = await service.require_live(identity)
    configuration = await service.relay_configuration(
        service.state.keys.primary, live, None, 3600, None
    )
    server = configuration.ice_servers[0]
    return str(server["username"]), str(server["credential"])


async def refused_within(seconds: float, attempt: TurnClient, *, allocate: bool) -> float:
    """Seconds until ``attempt``'s Refresh (or Allocate) gets 401; fails after ``seconds``."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        answer = await (attempt.allocate() if allocate else attempt.refresh(600))
        if answer.message_class is MessageClass.ERROR:
            assert error_code(answer) == 401
            return time.monotonic() - started
        if allocate:  # granted: give it back and try again
            await attempt.refresh(0)
        await asyncio.sleep(0.02)
    raise AssertionError(f"still allowed after {seconds} s")


@pytest.mark.parametrize("how", ["revoke", "delete"])
async def test_a_revocation_on_a_refuses_allocate_and_refresh_on_b_within_a_second(
    tmp_path: Path, redis_prefix: str, pg_schema: str, how: str
) -> None:
    async with cluster(
        tmp_path, "ab", prefix=redis_prefix, schema=pg_schema, poll_interval=NO_POLL
    ) as (a, b):
        service = a.server.running.api.service
        identity = str(await service.create_identity())
        username, password = await relay_credentials(a, identity)
        live = await TurnClient.connect("udp", b.server.address("udp"), username, password)
        later = await TurnClient.connect("udp", b.server.address("udp"), username, password)
        try:
            assert (await live.allocate()).message_class is MessageClass.SUCCESS
            await (service.revoke_tokens if how == "revoke" else service.delete_identity)(identity)
            await refused_within(1.0, live, allocate=False)
            await refused_within(1.0, later, allocate=True)
        finally:
            await live.close(release=False)
            await later.close(release=False)


async def within(seconds: float, condition: Callable[[], bool]) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"not so after {seconds} s")
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def test_a_key_rotation_and_a_hybrid_connection_made_on_a_hold_on_b_at_once(
    tmp_path: Path, redis_prefix: str, pg_schema: str
) -> None:
    async with cluster(
        tmp_path, "ab", prefix=redis_prefix, schema=pg_schema, poll_interval=NO_POLL
    ) as (a, b):
        b_state = b.server.running.api.service.state
        rotated = await a.server.running.api.service.rotate_key("primary")
        await within(1.0, lambda: b_state.keys.primary == rotated)
        admin_a = a.server.running.api.hybrid_admin
        admin_b = b.server.running.api.hybrid_admin
        assert admin_a is not None and admin_b is not None
        await admin_a.create_connection("shared")
        await within(1.0, lambda: admin_b.namespace().resolve("shared") is not None)
        await admin_a.delete_connection("shared")
        await within(1.0, lambda: admin_b.namespace().resolve("shared") is None)


async def test_with_b_s_redis_link_cut_the_store_poll_still_revokes_within_two_seconds(
    tmp_path: Path, redis_prefix: str, pg_schema: str
) -> None:
    async with cluster(tmp_path, "ab", prefix=redis_prefix, schema=pg_schema) as (a, b):
        service = a.server.running.api.service
        identity = str(await service.create_identity())
        username, password = await relay_credentials(a, identity)
        live = await TurnClient.connect("udp", b.server.address("udp"), username, password)
        try:
            assert (await live.allocate()).message_class is MessageClass.SUCCESS
            b.redis_link.cut()
            await b.link.beat()
            assert not b.link.up
            await service.revoke_tokens(identity)
            await refused_within(2.0, live, allocate=False)
        finally:
            await live.close(release=False)
