"""Ask Passage for a user's relay configuration: the ICE servers a peer may use (aiohttp).

``POST /networkTraversal/:issueRelayConfiguration`` with ``Authorization:
Bearer <user access token>`` (a ``voip`` scope); the answer is read by the
pure :func:`passage.peer.ice_servers.parse_relay_configuration`.
"""

from __future__ import annotations

import ssl

import aiohttp

from passage.peer.errors import PeerError
from passage.peer.ice_servers import IceServers, parse_relay_configuration

__all__ = ["RELAY_API_VERSION", "fetch_ice_servers"]

RELAY_API_VERSION = "2022-03-01-preview"
REQUEST_TIMEOUT = 15.0
"""Seconds the whole request may take."""


async def fetch_ice_servers(
    session: aiohttp.ClientSession, api_url: str, token: str, tls: ssl.SSLContext | None
) -> IceServers:
    """Ask the API at ``api_url`` for this user's relays (``routeType: nearest``)."""
    url = api_url.rstrip("/") + "/networkTraversal/:issueRelayConfiguration"
    try:
        async with session.post(
            url,
            params={"api-version": RELAY_API_VERSION},
            json={"routeType": "nearest"},
            headers={"Authorization": f"Bearer {token}"},
            ssl=tls if tls is not None else True,
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
        ) as response:
            body = await response.json(content_type=None)
            if response.status != 200:
                error = body.get("error", {}) if isinstance(body, dict) else {}
                raise PeerError(
                    f"relay configuration: {response.status} {error.get('code', '')}: "
                    f"{error.get('message', '')}".rstrip(": ")
                )
    except (aiohttp.ClientError, TimeoutError, ValueError) as error:
        raise PeerError(f"relay configuration from {api_url}: {error}") from None
    return parse_relay_configuration(body)
