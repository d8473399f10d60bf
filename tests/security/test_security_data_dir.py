"""No other user of the host can read Passage's keys, even in a data directory made 0755.

Issue 10, "Keys sit in a world-readable SQLite file": ``passage.db`` and its
``-wal`` and ``-shm`` (access keys, SAS rule keys) were 0644 whenever the data
directory already existed with 0755, as systemd's ``StateDirectory=`` makes
it. Now every secret-bearing file is 0600, and an open data directory is made
0700, or refused with one line saying what to do when that is not possible.
Checked as an unprivileged user would: ``nobody`` tries to read each file.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from passage.config import Config
from passage.datadir import DataDirError, prepare_data_dir
from passage_server import passage_process

NOBODY = 65534
SECRET_FILES = (
    "passage.db",
    "passage.db-wal",
    "passage.db-shm",
    "auth-secret",
    "ca.key",
    "server.key",
)

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root to act as nobody (setpriv)",
)


@pytest.fixture
def open_parent() -> Iterator[Path]:
    """A 0755 directory under /tmp: every user can reach what is inside, unless it is shut."""
    path = Path(tempfile.mkdtemp(prefix="passage-perm-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def nobody_reads(path: Path) -> subprocess.CompletedProcess[bytes]:
    command = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "cat"]
    return subprocess.run([*command, str(path)], capture_output=True, timeout=10)


def test_the_check_itself_sees_a_readable_file(open_parent: Path) -> None:
    """The control: without the protections, nobody does read a 0644 file in here."""
    control = open_parent / "control"
    control.write_text("readable")
    control.chmod(0o644)
    assert nobody_reads(control).stdout == b"readable"


async def test_nobody_can_read_the_keys_in_a_0755_state_directory(open_parent: Path) -> None:
    data_dir = open_parent / "passage-data"
    data_dir.mkdir()
    data_dir.chmod(0o755)  # as StateDirectory= leaves it
    with passage_process(open_parent) as (info, log):
        assert info.data_dir == data_dir
        for name in SECRET_FILES:  # the -wal and -shm exist while the server runs
            path = data_dir / name
            assert path.exists(), name
            refused = nobody_reads(path)
            assert refused.returncode != 0 and b"Permission denied" in refused.stderr, name
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
        assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert "made the data directory" in log.read_text()


def test_an_open_data_directory_that_cannot_be_shut_is_refused_in_one_line(
    open_parent: Path,
) -> None:
    """As ``nobody``, in a 0777 directory owned by root: it may write there, not chmod it."""
    shared = open_parent / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            try:
                prepare_data_dir(Config(data_dir=shared))
                message = "accepted"
            except DataDirError as error:
                message = f"refused:{error}"
            except Exception as error:
                message = f"failed otherwise:{error!r}"
            os.write(write_end, message.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        answer = reader.read().decode()
    os.waitpid(child, 0)
    assert answer.startswith("refused:"), answer
    message = answer.removeprefix("refused:")
    assert "\n" not in message
    assert str(shared) in message and "0777" in message and "chmod 700" in message
    assert list(shared.iterdir()) == []  # nothing was written into it
