"""Hybrid Connections, wire-compatible with Azure Relay: listeners connect out, senders reach them.

The modules at this level are pure, with time passed in: SAS tokens, entities
and their admin, the control messages, the rendezvous table, the gateway
store, endpoints and connection strings. The relay that serves them is
``passage.hybrid.aio``; the client SDK is ``passage.hybrid.client`` (asyncio), and
its public names are importable from here too::

    from passage.hybrid import HybridConnectionListener, RelayEndpoint, connect
"""

from passage.hybrid.client import *  # noqa: F403  (the SDK's names, listed once, there)
from passage.hybrid.client import __all__ as __all__
