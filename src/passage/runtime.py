"""``DATA_DIR/server.json``: what a running ``passage serve`` tells the other commands.

``passage serve`` writes it (atomically, 0600) once every listener is bound and
removes it when it stops cleanly. It says which process serves the data
directory (pid, the process's start time, the host's boot, a random id of this
start) and where clients reach it (the advertised host, every port, the URLs).
The helpers given ``--data-dir`` (``connection-string``, ``hc``, ``expose``,
``connect``, ``doctor``, ``token``, ``reload``...) read it with
:func:`running_server`, so they talk to the server that really runs there and
not to the defaults.

A record whose process is gone (``kill -9``, a crash, a reboot) is stale:
:func:`running_server` ignores it, and the next ``passage serve`` replaces it.

The document is one JSON object. Readers ignore keys they do not know and treat
missing optional ones as unknown, so a later Passage may add keys (the last
reload's outcome, say) without breaking an older reader.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from passage.datadir import DataDirError, replace_file
from passage.endpoint import AdvertisedEndpoint

__all__ = [
    "RUNTIME_FILE",
    "RuntimeRecord",
    "RuntimeRecordError",
    "host_boot_id",
    "new_boot_id",
    "process_start",
    "read_record",
    "remove_record",
    "running_server",
    "write_record",
]

RUNTIME_FILE = "server.json"
RECORD_MODE = 0o600
"""Owner only, as every file of the data directory that says more than a client needs."""

_BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")


class RuntimeRecordError(DataDirError):
    """The record exists but cannot be read or written; the message names the file and why."""


@dataclass(frozen=True, slots=True)
class RuntimeRecord:
    """One running ``passage serve``: which process it is, and where clients reach it."""

    pid: int
    """The serving process."""
    boot_id: str
    """Random, new at every start: tells a restarted server from the one read before."""
    started_at: float
    """Unix time at which it started serving."""
    version: str
    """``passage.__version__`` of the server."""
    endpoint: AdvertisedEndpoint
    """The host and ports it advertises, as its banner prints them."""
    local_api_url: str | None = None
    """``https://...`` (else ``http://``) a command on this host calls the API at; None: off."""
    public_url: str | None = None
    """``wss://HOST:PORT`` Hybrid Connections listeners reach it at (``--public-url``, else
    the advertised one); None when the API is off."""
    ca_file: str | None = None
    """The generated CA clients should trust; None with an operator's certificate."""
    process_start: str | None = None
    """The process's start time (``/proc/PID/stat`` field 22): a pid reused by another
    process later does not pass for this one. None off Linux."""
    host_boot: str | None = None
    """The kernel's boot id when it started: a record left from before a reboot is stale."""
    hc_max_token_lifetime: int | None = None
    """Seconds ahead a SAS token's expiry may lie for the relay to accept it
    (``--hc-max-token-lifetime``); None from a server older than this field."""
    database_url: str | None = None
    """The store it runs on, its password removed (the data directory's SQLite file as a
    ``sqlite+aiosqlite://`` URL); None from a server older than this field."""
    database_schema: str | None = None
    """Its PostgreSQL schema (``--database-schema``); None: the default ``search_path``."""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    """Keys this version does not know, kept so a rewrite does not drop them."""

    def is_alive(self) -> bool:
        """True if the process that wrote this record still runs (as far as this host shows)."""
        if self.host_boot is not None and host_boot_id() not in (None, self.host_boot):
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # it exists, as another user: its start time decides
        return self.process_start is None or process_start(self.pid) == self.process_start

    def describe(self) -> str:
        """``pid 1234, https://HOST:PORT/, store URL (schema S)``: what a helper talks to."""
        where = self.endpoint.api_url() or self.endpoint.api_url(plain_http=True)
        text = f"pid {self.pid}, " + (where or f"turn port {self.endpoint.turn_port}")
        if self.database_url is not None:
            text += f", store {self.database_url}"
        if self.database_schema is not None:
            text += f" (schema {self.database_schema})"
        return text

    def to_json(self) -> dict[str, Any]:
        endpoint = self.endpoint
        return self.extra | {
            "pid": self.pid,
            "process_start": self.process_start,
            "host_boot": self.host_boot,
            "boot_id": self.boot_id,
            "started_at": self.started_at,
            "version": self.version,
            "host": endpoint.host,
            "turn_port": endpoint.turn_port,
            "tls_ports": list(endpoint.tls_ports),
            "api_port": endpoint.api_port,
            "http_port": endpoint.http_port,
            "api_url": endpoint.api_url(),
            "local_api_url": self.local_api_url,
            "public_url": self.public_url,
            "ca_file": self.ca_file,
            "hc_max_token_lifetime": self.hc_max_token_lifetime,
            "database_url": self.database_url,
            "database_schema": self.database_schema,
        }

    @classmethod
    def from_json(cls, document: object) -> RuntimeRecord:
        """Raises ValueError, KeyError or TypeError for a document of another shape."""
        if not isinstance(document, dict):
            raise TypeError("not a JSON object")
        endpoint = AdvertisedEndpoint(
            host=str(document["host"]),
            turn_port=_port(document["turn_port"]),
            tls_ports=tuple(_port(port) for port in document.get("tls_ports", [])),
            api_port=_port(document.get("api_port", 0)),
            http_port=_port(document.get("http_port", 0)),
        )
        known = {
            "pid", "process_start", "host_boot", "boot_id", "started_at", "version", "host",
            "turn_port", "tls_ports", "api_port", "http_port", "api_url", "local_api_url",
            "public_url", "ca_file", "hc_max_token_lifetime", "database_url", "database_schema",
        }  # fmt: skip
        return cls(
            pid=int(document["pid"]),
            boot_id=str(document.get("boot_id", "")),
            started_at=float(document["started_at"]),
            version=str(document.get("version", "")),
            endpoint=endpoint,
            local_api_url=_optional_str(document.get("local_api_url")),
            public_url=_optional_str(document.get("public_url")),
            ca_file=_optional_str(document.get("ca_file")),
            process_start=_optional_str(document.get("process_start")),
            host_boot=_optional_str(document.get("host_boot")),
            hc_max_token_lifetime=_optional_int(document.get("hc_max_token_lifetime")),
            database_url=_optional_str(document.get("database_url")),
            database_schema=_optional_str(document.get("database_schema")),
            extra={key: value for key, value in document.items() if key not in known},
        )


def new_boot_id() -> str:
    """A fresh random id for one start of the server."""
    return secrets.token_hex(8)


def process_start(pid: int) -> str | None:
    """Field 22 of ``/proc/PID/stat`` (start time in clock ticks since boot), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces or ")".
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def host_boot_id() -> str | None:
    """The kernel's id of this boot (Linux), or None where there is none."""
    try:
        return _BOOT_ID_FILE.read_text().strip() or None
    except OSError:
        return None


def write_record(data_dir: Path, record: RuntimeRecord) -> Path:
    """Replace ``DATA_DIR/server.json`` with ``record`` atomically, mode 0600; its path.

    Raises :class:`RuntimeRecordError` (a :class:`DataDirError`) if it cannot."""
    path = data_dir / RUNTIME_FILE
    data = (json.dumps(record.to_json(), indent=2) + "\n").encode()
    try:
        replace_file(path, data, RECORD_MODE)
    except DataDirError as error:
        raise RuntimeRecordError(str(error)) from None
    return path


def read_record(data_dir: Path) -> RuntimeRecord | None:
    """The record in ``data_dir``, alive or not; None when there is none.

    Raises :class:`RuntimeRecordError` for a file that cannot be read or parsed.
    """
    path = data_dir / RUNTIME_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise RuntimeRecordError(f"{path}: cannot read: {error}") from None
    try:
        return RuntimeRecord.from_json(json.loads(text))
    except (ValueError, KeyError, TypeError) as error:
        raise RuntimeRecordError(f"{path}: not a runtime record ({error!r})") from None


def running_server(data_dir: Path) -> RuntimeRecord | None:
    """The server that serves ``data_dir`` now: its record if its process lives, else None.

    A record that cannot be read counts as none (the helper then says nothing of
    a server, and the next ``passage serve`` replaces the file).
    """
    try:
        record = read_record(data_dir)
    except RuntimeRecordError:
        return None
    return record if record is not None and record.is_alive() else None


def remove_record(data_dir: Path, boot_id: str) -> None:
    """Remove the record if this start (``boot_id``) wrote it; another may have replaced it."""
    try:
        record = read_record(data_dir)
    except RuntimeRecordError:
        return
    if record is not None and record.boot_id == boot_id:
        (data_dir / RUNTIME_FILE).unlink(missing_ok=True)


def _port(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ValueError(f"not a port: {value!r}")
    return value


def _optional_int(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"not a whole number: {value!r}")
    return value


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)
