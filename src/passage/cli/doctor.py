"""``passage doctor [HOST]``: what the network lets through to a Passage relay, and what to expect.

It measures the NAT's mapping and filtering (RFC 5780), which transports
reach the relay (UDP and TCP 3478, TLS 5349 and 443), round trip, jitter and
loss through the relay for ``--duration`` seconds, and gives a verdict on
the media path. Progress goes to stderr while it measures (one line that
rewrites itself on a terminal); the report goes to stdout, readable or, with
``--json``, one JSON document. Exit status: 0 a media path exists, 1 nothing
gets through, 2 bad usage, 3 the relay granted no allocation (docs/doctor.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import TextIO

from passage.cli.command import Command
from passage.cli.doctor_access import Access, add_access_arguments, doctor_access
from passage.cli.management import client_tls
from passage.cli.options import add_config_arguments, config_from_arguments
from passage.cli.running import served_endpoint
from passage.cli.variables import CA_FILE_ENV
from passage.config import Config, ConfigError, settings_given
from passage.doctor.aio import DoctorPlan, run_doctor
from passage.doctor.render import render_report
from passage.doctor.report import report_json
from passage.doctor.targets import (
    DEFAULT_TLS_PORTS,
    DEFAULT_TURN_PORT,
    Target,
    default_targets,
    targets_from_urls,
)
from passage.endpoint import AdvertisedEndpoint, advertised_host
from passage.hostaddr import relay_addresses

__all__ = ["COMMAND", "DEFAULT_DURATION", "DEFAULT_TIMEOUT"]

DEFAULT_DURATION = 5.0
"""Seconds of round-trip, jitter and loss measurement."""

DEFAULT_TIMEOUT = 3.0
"""Seconds each probe (a transport, a NAT test) may take."""

EXIT_INTERRUPTED = 130


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "host", nargs="?", metavar="HOST",
        help="the relay's host name or IP; default: what the relay configuration names, "
        "else the local server's advertised address",
    )  # fmt: skip
    add_access_arguments(parser)
    parser.add_argument(
        "--ca-file", metavar="PATH",
        help=f"CA to trust for TLS (env {CA_FILE_ENV}); default: the system's and the data "
        "directory's ca.pem",
    )  # fmt: skip
    probes = parser.add_argument_group("what to measure")
    probes.add_argument(
        "--port", type=int, metavar="N",
        help="STUN/TURN port for UDP and TCP without a relay configuration "
        f"(default {DEFAULT_TURN_PORT})",
    )  # fmt: skip
    probes.add_argument(
        "--tls-port", type=int, action="append", metavar="N",
        help="a TURN-over-TLS port, repeatable, without a relay configuration "
        f"(default {' and '.join(map(str, DEFAULT_TLS_PORTS))})",
    )  # fmt: skip
    probes.add_argument(
        "--duration", type=float, default=DEFAULT_DURATION, metavar="SECONDS",
        help="seconds of round trip, jitter and loss measurement; 0 skips it "
        f"(default {DEFAULT_DURATION:g})",
    )  # fmt: skip
    probes.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
        help=f"seconds each probe may take (default {DEFAULT_TIMEOUT:g})",
    )  # fmt: skip
    output = parser.add_argument_group("output")
    output.add_argument("--json", action="store_true", help="print one JSON document")
    output.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    add_config_arguments(
        parser,
        only={"data_dir", "auth_secrets"},
        hidden={"public_host", "public_ip", "listen_ips", "relay_ips"},
        instead="HOST",
    )


def _run(arguments: argparse.Namespace) -> int:
    _check(arguments)
    config = config_from_arguments(arguments)
    tls = client_tls(arguments.ca_file, config)
    access = doctor_access(arguments, config, tls)
    served = None if arguments.host else _served(arguments, config)
    host = arguments.host or _default_host(access, served)
    stun, targets = _targets(arguments, access, host, served)
    plan = DoctorPlan(
        server=host, stun=stun, targets=targets, credentials=access.credentials,
        credentials_report=access.report, tls=tls, duration=arguments.duration,
        timeout=arguments.timeout,
    )  # fmt: skip
    progress = _Progress(sys.stderr, quiet=arguments.quiet)
    try:
        report = asyncio.run(run_doctor(plan, progress.show))
    except KeyboardInterrupt:
        progress.done()
        print("passage doctor: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    progress.done()
    if arguments.json:
        print(json.dumps(report_json(report), indent=2))
    else:
        sys.stdout.write(render_report(report))
    return report.exit_status


def _check(arguments: argparse.Namespace) -> None:
    if arguments.duration < 0 or arguments.duration > 3600:
        raise ConfigError(f"--duration: expected 0 to 3600 seconds, got {arguments.duration:g}")
    if not 0 < arguments.timeout <= 60:
        raise ConfigError(
            f"--timeout: expected more than 0, at most 60 seconds, got {arguments.timeout:g}"
        )
    for port in [arguments.port or DEFAULT_TURN_PORT, *(arguments.tls_port or [])]:
        if not 0 < port < 65536:
            raise ConfigError(f"port {port} is not 1 to 65535")


def _served(arguments: argparse.Namespace, config: Config) -> AdvertisedEndpoint | None:
    """The local server to probe: the one running on the data directory, else the one a
    ``--config`` or ``PASSAGE_*`` setting describes; None to probe the defaults."""
    endpoint, record = served_endpoint(arguments, config)
    if record is not None or settings_given(vars(arguments), os.environ) - {"data_dir"}:
        return endpoint
    return None


def _default_host(access: Access, served: AdvertisedEndpoint | None) -> str:
    """The host a relay configuration names, else its endpoint's, else the local server's."""
    if access.urls:
        stun, targets = targets_from_urls(access.urls)
        found = stun or (targets[0] if targets else None)
        if found is not None:
            return found.host
    if access.endpoint_host:
        return access.endpoint_host
    if served is not None:
        return served.host
    return advertised_host(None, None, relay_addresses(Config()))


def _targets(
    arguments: argparse.Namespace, access: Access, host: str, served: AdvertisedEndpoint | None
) -> tuple[Target | None, tuple[Target, ...]]:
    """From the relay configuration when there is one (``--port``/``--tls-port`` do not apply),
    else the flags, else the local server's ports, else the usual ones."""
    if access.urls:
        stun, targets = targets_from_urls(access.urls, arguments.host)
        if targets:
            return stun, targets
    turn_port = served.turn_port if served is not None else DEFAULT_TURN_PORT
    tls_ports = served.tls_ports if served is not None else DEFAULT_TLS_PORTS
    if arguments.tls_port:
        tls_ports = tuple(arguments.tls_port)
    return default_targets(host, arguments.port or turn_port, tls_ports)


class _Progress:
    """Progress on stderr: one line rewritten in place on a terminal, else a line per step."""

    def __init__(self, stream: TextIO, *, quiet: bool) -> None:
        self.stream = stream
        self.quiet = quiet
        self.terminal = stream.isatty()
        self._shown = False

    def show(self, text: str) -> None:
        if self.quiet:
            return
        if self.terminal:
            self.stream.write(f"\r\033[K{text}")
            self._shown = True
        else:
            self.stream.write(f"doctor: {text}\n")
        self.stream.flush()

    def done(self) -> None:
        if self._shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._shown = False


COMMAND = Command(
    name="doctor",
    help="measure what the network lets through to the relay, and the media path to expect",
    add_arguments=_add_arguments,
    run=_run,
    example="passage doctor --data-dir .passage --duration 5",
)
