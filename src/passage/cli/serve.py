"""``passage serve``: the TURN relay, the API, Hybrid Connections and signaling, until a signal."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable

from passage.cli.command import Command
from passage.cli.logging import configure_logging
from passage.cli.options import add_config_arguments, config_from_arguments
from passage.cli.preflight import preflight
from passage.config import Config, ConfigError
from passage.datadir import prepare_data_dir
from passage.offload.capabilities import OffloadUnavailable
from passage.runtime import running_server

__all__ = ["COMMAND"]

logger = logging.getLogger(__name__)

PRIVATE_UMASK = 0o077
"""The server's umask: files and directories it creates are its user's only."""


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)


def _run(arguments: argparse.Namespace) -> int:
    config = config_from_arguments(arguments)
    configure_logging(config.log_level, config.log_format)
    logger.debug("configuration: %r", config)  # secrets are repr=False
    _refuse_a_second_server(config)
    preflight(config)
    # Whatever this process creates is its own alone unless it says otherwise
    # (the CA and server certificates are made 0644 on purpose).
    os.umask(PRIVATE_UMASK)
    datadir = prepare_data_dir(config)
    # Imported here so that other commands never load the server.
    from passage.app import serve
    from passage.turn.aio.fast_path import FastPathUnavailable

    served = False

    async def run() -> None:
        nonlocal served
        await serve(config, datadir, lambda: config_from_arguments(arguments))
        served = True

    runner = asyncio.Runner(loop_factory=loop_factory())
    try:
        with runner:
            runner.run(run())
    except KeyboardInterrupt:
        # 130 for an interrupt that cut the server short. One that reaches us after the
        # server stopped cleanly changes nothing: the stop was the one asked for (seen under
        # load: "SIGINT: stopping now", "stopped; usage ledger flushed", then exit 130).
        return 0 if served else 130
    except (OffloadUnavailable, FastPathUnavailable) as exc:  # asked for what is not here
        print(f"passage: error: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    return 0


EXIT_UNAVAILABLE = 69
"""sysexits.h EX_UNAVAILABLE: a service the command needs is not available."""


def _refuse_a_second_server(config: Config) -> None:
    """One data directory, one server: its store, its record, its certificate are one node's."""
    record = running_server(config.data_dir)
    if record is not None:
        raise ConfigError(
            f"--data-dir {config.data_dir}: a passage serve already runs on it "
            f"({record.describe()}); stop it, or give this one another --data-dir"
        )


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed, else asyncio's default."""
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


COMMAND = Command(
    name="serve",
    help="run the STUN/TURN relay, the API, Hybrid Connections and signaling",
    add_arguments=_add_arguments,
    run=_run,
    example="passage serve --data-dir .passage --turn-port 3478 --api-port 8443",
)
