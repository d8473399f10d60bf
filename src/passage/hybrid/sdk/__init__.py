"""The Hybrid Connections client: listeners, senders and their tokens (asyncio, aiohttp).

Listener::

    endpoint = RelayEndpoint.parse("wss://relay.example.com:8443")
    tokens = KeyTokenProvider("RootManageSharedAccessKey", key)
    async with HybridConnectionListener(endpoint, "myhc", tokens) as listener:
        async for stream in listener:
            ...

Sender: ``await connect(endpoint, "myhc", tokens)`` for a WebSocket stream,
``await request(endpoint, "myhc", tokens, "POST", body=b"...")`` for HTTP. An
Azure-style ``Endpoint=...;SharedAccessKeyName=...;SharedAccessKey=...``
string gives both: ``RelayConnectionString.parse(text)`` and
:func:`token_provider`.
"""

from passage.hybrid.endpoint import ConnectionStringError, RelayConnectionString, RelayEndpoint
from passage.hybrid.sdk.errors import (
    MAX_MESSAGE,
    BodyTooLarge,
    HybridConnectionError,
    ListenerClosed,
    MessageTooLarge,
)
from passage.hybrid.sdk.http import (
    ForwardingHandler,
    HttpHandler,
    RelayedRequest,
    RelayedResponse,
)
from passage.hybrid.sdk.listener import HybridConnectionListener
from passage.hybrid.sdk.sender import RelayedHttpReply, connect, request
from passage.hybrid.sdk.stream import HybridStream
from passage.hybrid.sdk.tokens import (
    KeyTokenProvider,
    StaticTokenProvider,
    TokenProvider,
    token_provider,
)

__all__ = [
    "BodyTooLarge",
    "MAX_MESSAGE",
    "MessageTooLarge",
    "ConnectionStringError",
    "ForwardingHandler",
    "HttpHandler",
    "HybridConnectionError",
    "HybridConnectionListener",
    "HybridStream",
    "KeyTokenProvider",
    "ListenerClosed",
    "RelayConnectionString",
    "RelayEndpoint",
    "RelayedHttpReply",
    "RelayedRequest",
    "RelayedResponse",
    "StaticTokenProvider",
    "TokenProvider",
    "connect",
    "request",
    "token_provider",
]
