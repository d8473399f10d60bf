"""A nonce is the server's, not a listening port's (docs/security.md, "Why a nonce is
good on every port"): one minted over UDP is accepted over TCP and TLS from the same
address, without a 438 round trip. (From another address it is stale:
``tests/turn/test_server.py::test_nonce_from_another_ip_is_stale``.)"""

from __future__ import annotations

from pathlib import Path

from passage.stun import MessageClass
from passage_server import in_process
from turn_client import TurnClient, error_code


async def test_a_nonce_minted_over_udp_is_good_over_tcp_and_tls(tmp_path: Path) -> None:
    async with in_process(tmp_path) as server:
        udp = await server.client("udp")
        assert (await udp.allocate()).message_class is MessageClass.SUCCESS  # after a 401
        nonce, realm = udp.core.nonce, udp.core.realm
        assert nonce is not None and realm is not None
        for transport in ("tcp", "tls"):
            tls = server.tls_context() if transport == "tls" else None
            other = await TurnClient.connect(transport, server.address(transport), ssl_context=tls)
            other.core.nonce, other.core.realm = nonce, realm  # learnt on the UDP port
            answer = await other.allocate(retry=False)
            assert answer.message_class is MessageClass.SUCCESS, (transport, error_code(answer))
            await other.close()
        await udp.close()
