"""``passage serve --workers N``, the pure parts: the parent-worker channel's messages and
frames (``protocol``), the allocation quota the parent keeps for every worker (``quota``),
and when a worker that died is started again (``restarts``). The processes, sockets and
the channel's asyncio pump are ``passage.workers.aio``."""
