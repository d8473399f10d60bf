"""Hybrid Connections, wire-compatible with Azure Relay: listeners connect out, senders reach them.

This package is the pure core, with time passed in: SAS tokens, entities and
their admin, the control messages and the control channel's framing, the
rendezvous table, the gateway store, endpoints and connection strings. The
relay that serves them is :mod:`passage.hybrid.aio`; the client SDK is
:mod:`passage.hybrid.sdk`::

    from passage.hybrid.sdk import HybridConnectionListener, RelayEndpoint, connect
"""
