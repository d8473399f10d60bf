"""The unmodified Azure Communication Services SDKs against a real ``passage serve``.

Python ``azure-communication-identity`` 1.5.0 and ``azure-communication-networktraversal``
1.1.0b2 (sync and async clients), and the npm ``@azure/communication-identity`` 1.3.1
and ``@azure/communication-network-traversal`` 1.1.0-beta.1 (``node/acs.mjs``), all
over HTTPS with the generated CA and nothing but the connection string changed.
End to end: SDK → user and token → relay configuration → aioice relays data on
Passage's TURN with those credentials; after ``revoke_tokens`` or ``delete_user``
the next Allocate and Refresh are refused.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aioice
import pytest
from azure.communication.identity import (
    CommunicationIdentityClient,
    CommunicationTokenScope,
    CommunicationUserIdentifier,
)
from azure.communication.identity.aio import (
    CommunicationIdentityClient as AsyncIdentityClient,
)
from azure.communication.networktraversal import CommunicationRelayClient, RouteType
from azure.communication.networktraversal.aio import (
    CommunicationRelayClient as AsyncRelayClient,
)
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
)

from passage_server import ServerInfo, passage_process
from turn_client import TurnClient, error_code

pytestmark = pytest.mark.interop

NODE_DRIVER = Path(__file__).parent / "node" / "acs.mjs"
IDENTITY_API_VERSIONS = ("2021-03-07", "2022-06-01", "2022-10-01", "2023-10-01")
CONNECT_TIMEOUT = 8.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerInfo, Path]]:
    with passage_process(tmp_path_factory.mktemp("acs"), "--allow-loopback-peers") as running:
        yield running


@pytest.fixture(scope="module")
def connection_string(server: tuple[ServerInfo, Path]) -> str:
    return server[0].connection_string()


def identity_client(info: ServerInfo, cs: str, **kwargs: object) -> CommunicationIdentityClient:
    return CommunicationIdentityClient.from_connection_string(
        cs, connection_verify=str(info.ca_cert), **kwargs
    )


def relay_client(info: ServerInfo, cs: str) -> CommunicationRelayClient:
    return CommunicationRelayClient.from_connection_string(cs, connection_verify=str(info.ca_cert))


def expires_in(expires_on: str | datetime.datetime) -> float:
    when = (
        expires_on
        if isinstance(expires_on, datetime.datetime)
        else datetime.datetime.fromisoformat(expires_on)
    )
    return (when - datetime.datetime.now(datetime.UTC)).total_seconds()


def jwt_claims(token: str) -> dict[str, object]:
    # Standard base64, as the Python SDK's CommunicationTokenCredential decodes it.
    payload = token.split(".")[1]
    assert "-" not in payload and "_" not in payload
    claims: dict[str, object] = json.loads(base64.b64decode(payload + "=="))
    return claims


# --- Python, sync ------------------------------------------------------------------


@pytest.mark.parametrize("api_version", IDENTITY_API_VERSIONS)
def test_python_identity_lifecycle(
    server: tuple[ServerInfo, Path], connection_string: str, api_version: str
) -> None:
    info, _ = server
    client = identity_client(info, connection_string, api_version=api_version)
    user = client.create_user()
    assert user.properties["id"].startswith("8:acs:")
    other, token = client.create_user_and_token(
        [CommunicationTokenScope.CHAT, CommunicationTokenScope.VOIP],
        token_expires_in=datetime.timedelta(minutes=60),
    )
    assert other.properties["id"] != user.properties["id"]
    assert 3500 < expires_in(token.expires_on) <= 3600
    claims = jwt_claims(token.token)
    assert claims["acsScope"] == "chat,voip"
    assert claims["skypeid"] == other.properties["id"].removeprefix("8:")
    issued = client.get_token(user, [CommunicationTokenScope.VOIP])
    assert 86_300 < expires_in(issued.expires_on) <= 86_400  # the default: 1440 minutes
    client.revoke_tokens(user)
    client.delete_user(user)
    with pytest.raises(ResourceNotFoundError):
        client.get_token(user, [CommunicationTokenScope.CHAT])
    with pytest.raises(ResourceNotFoundError):
        client.delete_user(user)


def test_python_errors_map_to_the_sdk_exceptions(
    server: tuple[ServerInfo, Path], connection_string: str
) -> None:
    info, _ = server
    wrong_key = connection_string.split("accesskey=")[0] + "accesskey=" + "A" * 43 + "="
    with pytest.raises(ClientAuthenticationError):
        identity_client(info, wrong_key).create_user()
    client = identity_client(info, connection_string)
    user = client.create_user()
    with pytest.raises(HttpResponseError) as bad_scope:
        client.get_token(user, ["bogus"])  # type: ignore[list-item]
    assert bad_scope.value.status_code == 400
    assert bad_scope.value.error is not None and bad_scope.value.error.code == "ValidationError"
    with pytest.raises(HttpResponseError) as bad_expiry:
        client.get_token(
            user, [CommunicationTokenScope.CHAT], token_expires_in=datetime.timedelta(minutes=59)
        )
    assert bad_expiry.value.status_code == 400
    unknown = CommunicationUserIdentifier(
        "8:acs:00000000-0000-0000-0000-000000000000_00000000-0000-0000-0000-000000000000"
    )
    with pytest.raises(ResourceNotFoundError):
        client.revoke_tokens(unknown)


def test_python_relay_configuration(
    server: tuple[ServerInfo, Path], connection_string: str
) -> None:
    info, _ = server
    config = relay_client(info, connection_string).get_relay_configuration()
    assert [s.route_type for s in config.ice_servers] == ["any", "nearest"]
    assert 172_700 < expires_in(config.expires_on) <= 172_800
    expected = [
        f"stun:{info.host}:{info.turn_port}",
        f"turn:{info.host}:{info.turn_port}?transport=udp",
        f"turn:{info.host}:{info.turn_port}?transport=tcp",
        f"turns:{info.host}:{info.turns_port}?transport=tcp",
    ]
    for ice_server in config.ice_servers:
        assert ice_server.urls == expected
        assert ice_server.username.endswith(".anonymous")
    user = identity_client(info, connection_string).create_user()
    mine = relay_client(info, connection_string).get_relay_configuration(
        user=user, route_type=RouteType.NEAREST, ttl=100
    )
    assert [s.route_type for s in mine.ice_servers] == ["nearest"]
    assert 90 < expires_in(mine.expires_on) <= 100
    assert mine.ice_servers[0].username.endswith(user.properties["id"].removeprefix("8:acs:"))


# --- Python, async -----------------------------------------------------------------


async def test_python_async_clients(
    server: tuple[ServerInfo, Path], connection_string: str
) -> None:
    """aiohttp sends and signs ``/identities/8:acs:...`` unencoded; Passage accepts both."""
    info, _ = server
    verify = str(info.ca_cert)
    async with AsyncIdentityClient.from_connection_string(
        connection_string, connection_verify=verify
    ) as client:
        user = await client.create_user()
        token = await client.get_token(user, [CommunicationTokenScope.CHAT])
        assert jwt_claims(token.token)["acsScope"] == "chat"
        async with AsyncRelayClient.from_connection_string(
            connection_string, connection_verify=verify
        ) as relays:
            config = await relays.get_relay_configuration(user=user, route_type=RouteType.ANY)
            assert [s.route_type for s in config.ice_servers] == ["any"]
        await client.revoke_tokens(user)
        await client.delete_user(user)
        with pytest.raises(ResourceNotFoundError):
            await client.get_token(user, [CommunicationTokenScope.CHAT])


# --- JavaScript ----------------------------------------------------------------------


def run_node(info: ServerInfo, cs: str, scenario: str) -> dict[str, object]:
    node = shutil.which("node")
    assert node is not None, "node is installed by scripts/install-test-deps.sh"
    env = dict(os.environ, PASSAGE_CONNECTION_STRING=cs, NODE_EXTRA_CA_CERTS=str(info.ca_cert))
    done = subprocess.run(
        [node, str(NODE_DRIVER), scenario], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_javascript_identity(server: tuple[ServerInfo, Path], connection_string: str) -> None:
    info, _ = server
    result = run_node(info, connection_string, "identity")
    assert str(result["user"]).startswith("8:acs:")
    assert 86_300 < expires_in(str(result["createTokenExpiresOn"]).replace("Z", "+00:00"))
    assert 3_500 < expires_in(str(result["tokenExpiresOn"]).replace("Z", "+00:00")) <= 3_600
    assert jwt_claims(str(result["token"]))["acsScope"] == "voip"
    # The SDK's own JWT parser read our exp claim (milliseconds there).
    credential_expiry = float(str(result["credentialExpiresOnTimestamp"])) / 1000
    assert abs(credential_expiry - datetime.datetime.now(datetime.UTC).timestamp() - 86_400) < 60
    assert result["afterDelete"] == {
        "statusCode": 404,
        "code": "IdentityNotFound",
        "message": f"Identity '{result['user']}' was not found.",
    }


def test_javascript_relay_configuration(
    server: tuple[ServerInfo, Path], connection_string: str
) -> None:
    info, _ = server
    result = run_node(info, connection_string, "relay")
    default = result["default"]
    assert isinstance(default, dict)
    assert [s["routeType"] for s in default["iceServers"]] == ["any", "nearest"]
    for_user = result["forUser"]
    assert isinstance(for_user, dict)
    (nearest,) = for_user["iceServers"]
    assert nearest["routeType"] == "nearest"
    assert nearest["username"].endswith(str(result["user"]).removeprefix("8:acs:"))
    assert f"turn:{info.host}:{info.turn_port}?transport=udp" in nearest["urls"]


def test_javascript_errors(server: tuple[ServerInfo, Path], connection_string: str) -> None:
    info, _ = server
    result = run_node(info, connection_string, "errors")
    expected = {
        "wrongKey": (401, "Denied"),
        "badScope": (400, "ValidationError"),
        "badExpiry": (400, "ValidationError"),
        "unknownIdentity": (404, "IdentityNotFound"),
    }
    for name, (status, code) in expected.items():
        answer = result[name]
        assert isinstance(answer, dict), name
        assert (answer["statusCode"], answer["code"]) == (status, code), answer


# --- End to end: SDK credentials on Passage's TURN -------------------------------------


def turn_credentials(
    info: ServerInfo, cs: str, user: CommunicationUserIdentifier
) -> tuple[str, str]:
    config = relay_client(info, cs).get_relay_configuration(user=user, route_type=RouteType.ANY)
    (ice_server,) = config.ice_servers
    assert f"turn:{info.host}:{info.turn_port}?transport=udp" in ice_server.urls
    return ice_server.username, ice_server.credential


async def relay_with_aioice(info: ServerInfo, username: str, password: str) -> None:
    """Two relay-only aioice agents connect through Passage and exchange data."""
    agents = [
        aioice.Connection(
            ice_controlling=controlling,
            components=1,
            turn_server=(info.host, info.turn_port),
            turn_username=username,
            turn_password=password,
            turn_transport="udp",
            use_ipv6=False,
            transport_policy=aioice.TransportPolicy.RELAY,
        )
        for controlling in (True, False)
    ]
    a, b = agents
    try:
        await asyncio.wait_for(
            asyncio.gather(a.gather_candidates(), b.gather_candidates()), CONNECT_TIMEOUT
        )
        for here, there in ((a, b), (b, a)):
            assert [c.type for c in here.local_candidates] == ["relay"]
            for candidate in there.local_candidates:
                await here.add_remote_candidate(candidate)
            await here.add_remote_candidate(None)
            here.remote_username = there.local_username
            here.remote_password = there.local_password
        await asyncio.wait_for(asyncio.gather(a.connect(), b.connect()), CONNECT_TIMEOUT)
        for sender, receiver in ((a, b), (b, a)):
            await sender.send(b"through passage")
            assert await asyncio.wait_for(receiver.recv(), 5) == b"through passage"
    finally:
        await asyncio.gather(a.close(), b.close())


@pytest.mark.parametrize("ending", ["revoke_tokens", "delete_user"])
async def test_sdk_credentials_relay_until_revoked(
    server: tuple[ServerInfo, Path], connection_string: str, ending: str
) -> None:
    info, log = server
    identities = identity_client(info, connection_string)
    user, _token = identities.create_user_and_token([CommunicationTokenScope.VOIP])
    username, password = turn_credentials(info, connection_string, user)
    await relay_with_aioice(info, username, password)
    # An allocation that exists when the identity is revoked...
    held = await TurnClient.connect("udp", (info.host, info.turn_port), username, password)
    try:
        assert (await held.allocate()).message_class.name == "SUCCESS"
        getattr(identities, ending)(user)
        # ...cannot be refreshed, and no new one can be made.
        assert error_code(await held.refresh(600)) == 401
        fresh = await TurnClient.connect("udp", (info.host, info.turn_port), username, password)
        try:
            assert error_code(await fresh.allocate()) == 401
        finally:
            await fresh.close(release=False)
    finally:
        await held.close(release=False)
    refusals = [line for line in log.read_text().splitlines() if "credential revoked" in line]
    assert any("refused allocate" in line for line in refusals), refusals
    assert any("refused refresh" in line for line in refusals), refusals
    if ending == "revoke_tokens":
        # Credentials issued after the revocation work again.
        again = turn_credentials(info, connection_string, user)
        await relay_with_aioice(info, *again)
