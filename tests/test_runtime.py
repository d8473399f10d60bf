"""``DATA_DIR/server.json``: written 0600 and whole, read back, stale once its process is gone."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from passage.endpoint import AdvertisedEndpoint
from passage.runtime import (
    RUNTIME_FILE,
    RuntimeRecord,
    RuntimeRecordError,
    host_boot_id,
    new_boot_id,
    process_start,
    read_record,
    remove_record,
    running_server,
    write_record,
)

ENDPOINT = AdvertisedEndpoint("192.0.2.10", 23478, (25349,), api_port=28443)


def record(pid: int | None = None, **changes: object) -> RuntimeRecord:
    pid = os.getpid() if pid is None else pid
    fields: dict[str, object] = {
        "pid": pid,
        "boot_id": new_boot_id(),
        "started_at": 1_800_000_000.5,
        "version": "0.1.0",
        "endpoint": ENDPOINT,
        "local_api_url": "https://127.0.0.1:28443/",
        "public_url": "wss://192.0.2.10:28443",
        "ca_file": "/srv/passage/ca.pem",
        "process_start": process_start(pid),
        "host_boot": host_boot_id(),
    }
    fields.update(changes)
    return RuntimeRecord(**fields)  # type: ignore[arg-type]


def a_finished_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_record_round_trips_and_is_private(tmp_path: Path) -> None:
    os.umask(0o022)
    written = record()
    path = write_record(tmp_path, written)
    assert path == tmp_path / RUNTIME_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_record(tmp_path) == written
    document = json.loads(path.read_text())
    assert document["api_url"] == "https://192.0.2.10:28443/"  # for people reading it
    assert [p.name for p in tmp_path.iterdir()] == [RUNTIME_FILE]  # no temporary left


def test_the_writer_s_own_process_is_running(tmp_path: Path) -> None:
    write_record(tmp_path, record())
    found = running_server(tmp_path)
    assert found is not None and found.describe() == (
        f"pid {os.getpid()}, https://192.0.2.10:28443/"
    )


def test_a_record_names_its_store_without_a_password(tmp_path: Path) -> None:
    """What runtime_record writes: the store's URL as url_without_password leaves it."""
    from passage.store.database import url_without_password

    url = url_without_password("postgresql://passage:hunter2@db:5432/p?password=x&sslmode=require")
    assert url == "postgresql://passage@db:5432/p?sslmode=require"
    write_record(tmp_path, record(database_url=url, database_schema="tenant_1"))
    assert "hunter2" not in (tmp_path / RUNTIME_FILE).read_text()
    found = running_server(tmp_path)
    assert found is not None and found.describe() == (
        f"pid {os.getpid()}, https://192.0.2.10:28443/, store {url} (schema tenant_1)"
    )


def test_a_record_whose_process_is_gone_is_stale(tmp_path: Path) -> None:
    write_record(tmp_path, record(a_finished_pid(), process_start=None))
    assert read_record(tmp_path) is not None
    assert running_server(tmp_path) is None


def test_a_pid_reused_by_another_process_is_stale(tmp_path: Path) -> None:
    """Our own pid, but another start time: the process that wrote it is gone."""
    write_record(tmp_path, record(process_start="1"))
    assert running_server(tmp_path) is None


def test_a_record_from_before_a_reboot_is_stale(tmp_path: Path) -> None:
    if host_boot_id() is None:
        pytest.skip("this host has no boot id")
    write_record(tmp_path, record(host_boot="00000000-0000-0000-0000-000000000000"))
    assert running_server(tmp_path) is None


def test_no_record_and_a_broken_one(tmp_path: Path) -> None:
    assert read_record(tmp_path) is None
    assert running_server(tmp_path / "missing") is None
    (tmp_path / RUNTIME_FILE).write_text("{not json")
    with pytest.raises(RuntimeRecordError, match=r"server\.json: not a runtime record"):
        read_record(tmp_path)
    assert running_server(tmp_path) is None  # the next serve replaces it


def test_keys_a_later_version_adds_survive_a_rewrite(tmp_path: Path) -> None:
    document = record().to_json() | {"reload": {"number": 3}}
    (tmp_path / RUNTIME_FILE).write_text(json.dumps(document))
    read = read_record(tmp_path)
    assert read is not None and read.extra == {"reload": {"number": 3}}
    write_record(tmp_path, read)
    assert json.loads((tmp_path / RUNTIME_FILE).read_text())["reload"] == {"number": 3}


def test_remove_takes_only_the_record_this_start_wrote(tmp_path: Path) -> None:
    ours = record()
    write_record(tmp_path, ours)
    remove_record(tmp_path, "another start")
    assert read_record(tmp_path) == ours
    remove_record(tmp_path, ours.boot_id)
    assert read_record(tmp_path) is None
    remove_record(tmp_path, ours.boot_id)  # nothing left: no error
