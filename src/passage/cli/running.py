"""Which server a helper talks to: the one running on its data directory, else the configured one.

``passage serve`` records where it listens in ``DATA_DIR/server.json``
(:mod:`passage.runtime`). A helper given ``--data-dir`` (or run where the
default ``.passage`` is) reads it, so it names the server that really runs
there, whatever ports and config file that server was started with, and says
so in one line on stderr. A setting the helper is given (a flag, a
``PASSAGE_*`` variable, ``--config``) still wins over the record, field by
field: ``--api-port 9443`` changes the port and keeps the recorded host.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Mapping

from passage.config import Config, settings_given
from passage.endpoint import AdvertisedEndpoint
from passage.hostaddr import advertised_endpoint
from passage.runtime import RuntimeRecord, running_server

__all__ = ["ENDPOINT_SETTINGS", "announce", "running_record", "served_endpoint"]

ENDPOINT_SETTINGS: Mapping[str, frozenset[str]] = {
    "host": frozenset({"public_host", "public_ip", "listen_ips", "relay_ips"}),
    "turn_port": frozenset({"turn_port"}),
    "tls_ports": frozenset({"turns_port", "turns_extra_ports"}),
    "api_port": frozenset({"api_port"}),
    "http_port": frozenset({"http_port"}),
}
"""Each field of :class:`AdvertisedEndpoint`, and the settings that, when given, decide it."""

_announced: set[str] = set()


def running_record(config: Config) -> RuntimeRecord | None:
    """The live record of the server on ``config.data_dir``; None when none runs there."""
    return running_server(config.data_dir)


def served_endpoint(
    arguments: argparse.Namespace, config: Config
) -> tuple[AdvertisedEndpoint, RuntimeRecord | None]:
    """The endpoint to name: the running server's, with every field a setting gives
    replaced by the configured one; the configured endpoint when no server runs."""
    configured = advertised_endpoint(config)
    record = running_record(config)
    if record is None:
        return configured, None
    given = settings_given(vars(arguments), os.environ)
    overrides = {
        name: getattr(configured, name)
        for name, settings in ENDPOINT_SETTINGS.items()
        if given & settings
    }
    announce(record, config)
    return dataclasses.replace(record.endpoint, **overrides), record


def announce(record: RuntimeRecord, config: Config) -> None:
    """Say once, on stderr, which server this command talks to."""
    key = f"{record.boot_id}:{record.pid}"
    if key in _announced:
        return
    _announced.add(key)
    print(
        f"passage: using the server running on {config.data_dir} ({record.describe()})",
        file=sys.stderr,
    )
