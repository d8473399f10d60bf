"""Passage: self-hosted network traversal.

Layers, from the wire up (checked by ``tests/test_layering.py``):

- ``passage.stun``: sans-IO STUN/ChannelData codec; imports nothing of ours.
- ``passage.turn``: sans-IO TURN server core with time passed in; imports the codec.
- ``passage.store``: the embedded store (usage ledger; later identities, entities).
- ``passage.turn.aio``: asyncio adapters that pump sockets into the cores.
- ``passage.app`` / ``passage.cli``: the ``passage serve`` process and the commands.
"""

__version__ = "0.1.0"
