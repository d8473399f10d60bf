"""The web console's aiohttp adapter: ``/console/`` on the HTTPS API port.

:class:`~passage.console.aio.server.Console` signs operators in, keeps their
sessions, serves the pages (drawn by :mod:`passage.console.pages` from the
REST API's own answers) and their live updates; ``passage.mounts`` puts it
on the front door at :data:`~passage.console.aio.server.CONSOLE_PATHS`.
"""

from passage.console.aio.server import CONSOLE_PATHS, COOKIE, Console, ConsoleLimits

__all__ = ["CONSOLE_PATHS", "COOKIE", "Console", "ConsoleLimits"]
