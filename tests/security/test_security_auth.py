"""Authentication and quotas over the wire: 401, 438, 486 and the failed-auth limit.

RFC 8489 §9.2.4 (401 for bad credentials, 438 for a stale nonce), RFC 8656 §7.2
(486 Allocation Quota Reached), and the per-source limit on failed
authentications, which drops requests unanswered.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from passage.stun import AttributeType, MessageClass, Method
from passage.turn.config import TurnConfig
from passage_server import PASSWORD, REALM, USER, Clock, ServerInfo, in_process, passage_process
from turn_client import NoAnswer, TurnClient, UdpPeer, error_code


def address(info: ServerInfo) -> tuple[str, int]:
    return (info.host, info.turn_port)


async def test_second_allocation_of_a_user_over_quota_is_486(tmp_path: Path) -> None:
    with passage_process(tmp_path, "--max-allocations-per-user", "1") as (info, _):
        first = await TurnClient.connect("udp", address(info))
        second = await TurnClient.connect("udp", address(info))
        other = await TurnClient.connect("tcp", address(info), "bob", "builder")
        try:
            assert (await first.allocate()).message_class is MessageClass.SUCCESS
            assert error_code(await second.allocate()) == 486
            assert error_code(await other.allocate()) == 401  # bob is unknown here
            # Freeing the first allocation frees the quota.
            assert error_code(await first.refresh(0)) is None
            assert (await second.allocate()).message_class is MessageClass.SUCCESS
        finally:
            for client in (first, second, other):
                await client.close()


async def test_allocation_over_server_quota_is_486_for_another_user(tmp_path: Path) -> None:
    with passage_process(tmp_path, "--max-allocations", "1", "--user", "bob:builder") as (info, _):
        alice = await TurnClient.connect("udp", address(info))
        bob = await TurnClient.connect("udp", address(info), "bob", "builder")
        try:
            assert (await alice.allocate()).message_class is MessageClass.SUCCESS
            assert error_code(await bob.allocate()) == 486
            assert error_code(await alice.refresh(0)) is None
            assert (await bob.allocate()).message_class is MessageClass.SUCCESS
        finally:
            await alice.close()
            await bob.close()


async def test_bad_credentials_are_401(tmp_path: Path) -> None:
    with passage_process(tmp_path) as (info, _):
        wrong_password = await TurnClient.connect("udp", address(info), "alice", "not-it")
        unknown_user = await TurnClient.connect("tcp", address(info), "mallory", "wonderland")
        expired_rest = await TurnClient.connect("udp", address(info), "1000:alice", "x")
        try:
            for client in (wrong_password, unknown_user, expired_rest):
                answer = await client.allocate()
                assert error_code(answer) == 401
                # A fresh challenge comes with it, and it is not signed.
                assert answer.get(AttributeType.NONCE, str)
                assert answer.get(AttributeType.REALM, str) == info.realm
                assert not answer.has(AttributeType.MESSAGE_INTEGRITY)
            # Requests that need an allocation are 401 too before anything else.
            answer = await wrong_password.request(Method.REFRESH, [(AttributeType.LIFETIME, 0)])
            assert error_code(answer) == 401
        finally:
            for client in (wrong_password, unknown_user, expired_rest):
                await client.close()


async def test_stale_nonce_is_438_then_the_new_nonce_works(tmp_path: Path) -> None:
    clock = Clock()
    turn = TurnConfig(realm=REALM, nonce_lifetime=1)
    async with in_process(tmp_path, clock=clock, turn=turn) as server:
        client = await TurnClient.connect("udp", server.address("udp"), USER, PASSWORD)
        try:
            assert (await client.allocate()).message_class is MessageClass.SUCCESS
            old_nonce = client.nonce
            clock.advance(1.2)  # past the nonce's lifetime, without waiting for it
            answer = await client.request(
                Method.REFRESH, [(AttributeType.LIFETIME, 600)], retry=False
            )
            assert error_code(answer) == 438
            assert not answer.has(AttributeType.MESSAGE_INTEGRITY)
            assert client.nonce != old_nonce  # the 438 carried a fresh one
            answer = await client.request(
                Method.REFRESH, [(AttributeType.LIFETIME, 600)], retry=False
            )
            assert error_code(answer) is None
            assert answer.get(AttributeType.LIFETIME, int) == 600
        finally:
            await client.close()


async def test_failed_authentications_are_rate_limited_per_source_ip(tmp_path: Path) -> None:
    """Past the limit, failures from that IP go unanswered, whatever the source port;
    challenges and correct credentials from it still pass (a shared NAT address)."""
    with passage_process(tmp_path, "--auth-failures-per-minute", "3") as (info, _):
        guesser = await TurnClient.connect("udp", address(info), "alice", "guess")
        other_port = await TurnClient.connect("udp", address(info), "alice", "guess-2")
        honest = await TurnClient.connect("udp", address(info))
        try:
            for _ in range(3):
                assert error_code(await guesser.allocate()) == 401
            with pytest.raises(NoAnswer):
                await guesser.allocate(within=1.0)
            # Another port on the same IP: its challenge is answered, its guess is not.
            with pytest.raises(NoAnswer):
                await other_port.allocate(within=1.0)
            assert other_port.nonce is not None
            assert (await honest.allocate()).message_class is MessageClass.SUCCESS
        finally:
            for client in (guesser, other_port, honest):
                await client.close()


async def test_bandwidth_cap_per_allocation_drops_the_excess(tmp_path: Path) -> None:
    """``--max-bps``: at most that many relayed bytes per allocation per second."""
    with passage_process(tmp_path, "--max-bps", "1000", "--allow-loopback-peers") as (info, _):
        client = await TurnClient.connect("udp", address(info))
        peer = await UdpPeer.bind()
        try:
            assert (await client.allocate()).message_class is MessageClass.SUCCESS
            assert error_code(await client.channel_bind(0x4000, peer.address)) is None
            for index in range(50):
                client.send_channel_data(0x4000, bytes([index]) * 100)
            arrived = []
            while True:
                try:
                    arrived.append((await peer.receive(within=0.3))[0])
                except NoAnswer:
                    break
            # 1000 bytes of budget is 10 packets; a refill mid-burst allows 10 more.
            assert 10 <= len(arrived) <= 20
            assert arrived[:10] == [bytes([index]) * 100 for index in range(10)]
        finally:
            await client.close()
            await peer.close()
