"""asyncio adapters: sockets in, cores fed, bytes out."""
