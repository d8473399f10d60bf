"""The per-user allocation quota counts each anonymous relay configuration on its own.

Issue 10, "All anonymous relay configurations share one quota": every relay
configuration requested without an ``id`` billed to, and was counted against,
the one subject ``anonymous``, so one holder of ``--max-allocations-per-user``
anonymous allocations locked out every other anonymous user. The quota is now
per credential for anonymous configurations (what the application handed one
user), while the usage stays billed to ``anonymous``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from api_harness import RELAY_PATH, Api, api_server
from passage.stun import MessageClass
from passage.turn.config import TurnConfig
from passage_server import REALM
from turn_client import TurnClient, error_code


async def anonymous_credentials(api: Api) -> tuple[str, str]:
    answer = await api.request("POST", RELAY_PATH, {})
    assert answer.status == 200, answer
    server = answer.body["iceServers"][0]
    return server["username"], server["credential"]


async def test_one_anonymous_holder_at_its_quota_does_not_lock_out_another(
    tmp_path: Path,
) -> None:
    turn = TurnConfig(realm=REALM, max_allocations_per_user=1)
    async with api_server(tmp_path, turn=turn) as api:
        first = await anonymous_credentials(api)
        await asyncio.sleep(0.002)  # another millisecond: another credential
        second = await anonymous_credentials(api)
        assert first[0] != second[0]
        address = api.running.udp[0]
        clients = [await TurnClient.connect("udp", address, *first) for _ in range(2)]
        clients.append(await TurnClient.connect("udp", address, *second))
        try:
            assert (await clients[0].allocate()).message_class is MessageClass.SUCCESS
            # The same credential again: its own quota of one is used up.
            assert error_code(await clients[1].allocate()) == 486
            # Another anonymous user's credential has a quota of its own.
            assert (await clients[2].allocate()).message_class is MessageClass.SUCCESS
            subjects = {a.subject for a in api.running.edge.core.allocations.values()}
            assert subjects == {"anonymous"}  # still billed as anonymous
        finally:
            for client in clients:
                await client.close()
