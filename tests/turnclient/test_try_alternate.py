"""Passage's own TURN clients follow 300 Try Alternate (RFC 8489 §10) from a draining server
to the one it names: ``passage.turnclient.aio.open_allocated`` and the peer SDK's ICE agent
(its aioice TURN client), against two real servers, over UDP, TCP and TLS."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from passage.addresses import Transport
from passage.peer.ice_servers import TurnServer
from passage.peer.nomination import NominationPolicy
from passage.peer.sdk.agent import GatherSettings, IceAgent
from passage.stun import MessageClass
from passage.turn.alternate import Alternate, Alternates
from passage.turnclient import Credentials, error_code
from passage.turnclient.aio import open_allocated
from passage_server import PASSWORD, USER, Server, in_process

TRANSPORTS = ["udp", "tcp", "tls"]


def address(server: Server, transport: str) -> tuple[str, int]:
    return server.address(transport)


def redirect(draining: Server, to: Server, transport: str) -> None:
    """``draining`` drains, naming ``to`` (by name over TLS: the certificate says localhost)."""
    target = Alternate(address(to, transport), "localhost" if transport == "tls" else None)
    kind = {"tls": "tls"}.get(transport, "plain")
    draining.running.edge.core.start_draining(Alternates(**{kind: (target,)}))


def trusting(*servers: Server) -> ssl.SSLContext:
    context = ssl.create_default_context()
    for server in servers:
        assert server.datadir.ca_cert is not None
        context.load_verify_locations(cafile=str(server.datadir.ca_cert))
    return context


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_open_allocated_follows_a_draining_server(tmp_path: Path, transport: str) -> None:
    async with (
        in_process(tmp_path / "a") as first,
        in_process(tmp_path / "b") as second,
    ):
        redirect(first, second, transport)
        connection, answer = await open_allocated(
            transport, address(first, transport), Credentials(USER, PASSWORD),
            ssl_context=trusting(first, second), server_hostname="localhost",
        )  # fmt: skip
        try:
            assert answer.message_class is MessageClass.SUCCESS
            assert first.running.edge.core.allocations == {}
            assert len(second.running.edge.core.allocations) == 1
        finally:
            await connection.close()


async def test_two_servers_naming_each_other_are_not_a_loop(tmp_path: Path) -> None:
    async with (
        in_process(tmp_path / "a") as first,
        in_process(tmp_path / "b") as second,
    ):
        redirect(first, second, "udp")
        redirect(second, first, "udp")
        connection, answer = await open_allocated(
            "udp", address(first, "udp"), Credentials(USER, PASSWORD)
        )
        await connection.close()
        assert error_code(answer) == 300  # the second one's answer, not followed back


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_the_peer_agent_gathers_its_relayed_candidate_on_the_alternate(
    tmp_path: Path, transport: str
) -> None:
    async with (
        in_process(tmp_path / "a") as first,
        in_process(tmp_path / "b") as second,
    ):
        redirect(first, second, transport)
        host, port = address(first, transport)
        server = TurnServer("localhost" if transport == "tls" else host, port,
                            Transport(transport), USER, PASSWORD)  # fmt: skip
        agent = IceAgent(
            controlling=True, stun_server=None, turn_servers=[server],
            tls=trusting(first, second), policy=NominationPolicy(), gathering=GatherSettings(),
        )  # fmt: skip
        protocol = await agent._open_relay(server)
        try:
            relayed = protocol.transport.get_extra_info("sockname")
            low, high = second.config.relay_ports
            assert low <= relayed[1] <= high
            assert len(second.running.edge.core.allocations) == 1
            assert first.running.edge.core.allocations == {}
        finally:
            await protocol.close()
            await agent.close()


async def test_nodes_sharing_a_secret_accept_each_others_nonces(tmp_path: Path) -> None:
    """libwebrtc keeps its nonce when it follows 300 and gives up on a 438 to an Allocate:
    the alternate must take the nonce the first node issued, so both derive their nonce
    key from the deployment's shared REST secret; nodes with other secrets do not."""
    async with (
        in_process(tmp_path / "a", auth_secrets=("shared",)) as first,
        in_process(tmp_path / "b", auth_secrets=("shared",)) as second,
        in_process(tmp_path / "c", auth_secrets=("other",)) as stranger,
    ):
        issued = first.running.edge.core.auth.nonces.issue("198.51.100.2", 1000.0)
        assert second.running.edge.core.auth.nonces.is_fresh(issued, "198.51.100.2", 1001.0)
        assert not stranger.running.edge.core.auth.nonces.is_fresh(issued, "198.51.100.2", 1001.0)
