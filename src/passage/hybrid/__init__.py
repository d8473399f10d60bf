"""Hybrid Connections, wire-compatible with Azure Relay: listeners connect out, senders reach them.

Pure logic lives here with time passed in (SAS tokens now; entities, the
rendezvous table and the control-channel protocol next); the WebSocket and
HTTP adapters sit on the API port.
"""
