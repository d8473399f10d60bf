"""The Hybrid Connections relay adapter (aiohttp) over the pure core in :mod:`passage.hybrid`."""
