"""Passage: self-hosted network traversal.

Each protocol is a pure core (``passage.stun``, ``passage.turn``,
``passage.hybrid``, ``passage.signal``, ...) with its asyncio adapter beside
it (``X.aio``) and, where it has one, its client SDK (``X.sdk``); the HTTP
products meet at one front door (``passage.frontdoor``); ``passage.app`` and
``passage.cli`` assemble them. docs/architecture.md has a paragraph per
package, and ``tests/test_layering.py`` checks what each may import.
"""

__version__ = "0.1.0"
