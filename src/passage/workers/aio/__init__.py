"""``passage serve --workers N``, the processes and sockets: the channel's asyncio pump
(``channel``), the worker's end of it (``link``: quota admission, usage, identity
updates), and the parent's pool of workers (``pool``: spawning, supervising, restarting,
stopping)."""
