"""contrib/systemd/passage.service, the Dockerfile, compose.yaml and the container's
entrypoint, checked as far as this machine can: ``systemd-analyze verify`` on the unit,
the image's install step run into a clean prefix, the entrypoint run as a non-root user
(these machines cannot pull base images, so the image itself is not built here)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from passage.cli.variables import known_variables
from passage.config import Config
from passage.http_limits import HttpLimits
from passage.turn.aio.listeners import MAX_STREAMS
from passage.turn.config import TurnConfig
from passage_server import server_info, stop, wait_for_record, wait_until_listening

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "contrib" / "systemd" / "passage.service"
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "compose.yaml"
ENTRYPOINT = ROOT / "contrib" / "docker" / "entrypoint.sh"
NOBODY = 65534


def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    unit = tmp_path / "passage.service"  # ExecStart must name an executable that exists
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/passage", "/bin/true"))
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0 and done.stderr.strip() == "", done.stderr


def test_the_unit_is_a_notify_service_that_reloads_drains_and_sandboxes() -> None:
    settings = unit_settings()
    wanted = {
        "Type": "notify", "NotifyAccess": "main", "ExecReload": "/bin/kill -HUP $MAINPID",
        "KillSignal": "SIGTERM", "StateDirectory": "passage", "NoNewPrivileges": "yes",
        "ProtectSystem": "strict", "AmbientCapabilities": "CAP_NET_BIND_SERVICE",
        "CapabilityBoundingSet": "CAP_NET_BIND_SERVICE", "User": "passage",
    }  # fmt: skip
    for key, value in wanted.items():
        assert settings.get(key) == [value], key
    assert "--data-dir ${STATE_DIRECTORY}" in settings["ExecStart"][0]
    # systemd must not SIGKILL a drain before drain_timeout has passed.
    assert int(settings["TimeoutStopSec"][0]) > Config().drain_timeout
    assert int(settings["WatchdogSec"][0]) > 0


def test_limit_nofile_holds_every_connection_cap() -> None:
    """TCP/TLS clients, HTTP clients, and a relay socket per family of every allocation."""
    needed = MAX_STREAMS + HttpLimits().max_connections + 2 * TurnConfig().max_allocations_total
    assert int(unit_settings()["LimitNOFILE"][0]) >= needed + 1000


def test_every_variable_the_container_files_set_is_one_passage_reads() -> None:
    text = DOCKERFILE.read_text() + COMPOSE.read_text()
    named = set(re.findall(r"\b(PASSAGE_[A-Z_]+)\s*[:=]", text))
    assert named, "no PASSAGE_ variable found: the pattern is wrong"
    assert named - {"PASSAGE_ALLOW_ROOT"} <= known_variables(), named - known_variables()


def test_the_dockerfile_runs_as_a_user_and_installs_what_the_test_installs() -> None:
    text = DOCKERFILE.read_text()
    assert text.count("FROM ") == 2  # a build stage, a run stage
    assert re.search(r"^USER passage$", text, re.M)
    assert INSTALL in text


INSTALL = '/opt/passage/bin/pip install --no-cache-dir "/src[postgres,cluster]"'
"""The Dockerfile's install step; the test below runs it with its paths changed."""


@pytest.fixture(scope="module")
def prefix() -> Iterator[Path]:
    """The image's build stage, into a clean prefix: a new venv, the same pip command."""
    folder = Path(tempfile.mkdtemp(prefix="passage-image-", dir="/tmp"))
    folder.chmod(0o755)  # the entrypoint runs as another user
    source = folder / "src"
    shutil.copytree(  # not the editable install's extension: the image builds its own
        ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.so")
    )
    shutil.copy(ROOT / "pyproject.toml", source)
    shutil.copy(ROOT / "setup.py", source)
    shutil.copy(ROOT / "README.md", source)
    venv = folder / "opt-passage"
    shutil.copy(ENTRYPOINT, folder / "passage-entrypoint")  # COPY ... /usr/local/bin/
    python = interpreter_for_nobody()
    if python is None:
        pytest.skip("no Python 3.11+ with venv that another user may run (the image's is)")
    subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=120)
    command = INSTALL.replace("/opt/passage", str(venv)).replace("/src", str(source))
    subprocess.run(command, shell=True, check=True, timeout=600, capture_output=True)
    try:
        yield venv
    finally:
        shutil.rmtree(folder)


def interpreter_for_nobody() -> str | None:
    """A Python as the image has one: this process's, unless another user cannot run it
    (pyenv under /root), else the system's; None when neither will do."""
    for candidate in (str(Path(sys.base_prefix) / "bin" / "python3"), "/usr/bin/python3"):
        probe = "import sys, venv, ensurepip; assert sys.version_info >= (3, 11)"
        command = [candidate, "-c", probe]
        if os.geteuid() == 0 and shutil.which("setpriv"):
            # Through a shell: setpriv's own exec still has root's capabilities.
            command = as_nobody("/bin/sh", "-c", 'exec "$0" -c "$1"', candidate, probe)
        try:
            done = subprocess.run(command, capture_output=True, timeout=30)
        except OSError:
            continue
        if done.returncode == 0:
            return candidate
    return None


def as_nobody(*argv: str) -> list[str]:
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv]


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root to switch to another user")  # fmt: skip
@pytest.mark.timeout(600)
def test_the_entrypoint_serves_as_a_non_root_user(prefix: Path, tmp_path: Path) -> None:
    data = Path(tempfile.mkdtemp(prefix="passage-data-", dir="/tmp"))
    os.chown(data, NOBODY, NOBODY)
    info = server_info(tmp_path)
    info.data_dir = data / "state"
    env = {"PATH": f"{prefix / 'bin'}:/usr/bin:/bin", "PASSAGE_DATA_DIR": str(info.data_dir),
           "PYTHONUNBUFFERED": "1", "HOME": str(data)}  # fmt: skip
    args = info.args()
    args[args.index("--data-dir") : args.index("--data-dir") + 2] = []  # from the variable
    log = tmp_path / "entrypoint.log"
    try:
        with log.open("wb") as out:
            entrypoint = prefix.parent / "passage-entrypoint"
            process = subprocess.Popen(as_nobody(str(entrypoint), *args), env=env,
                                       stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
        try:
            wait_until_listening(info, process, timeout=60)
            wait_for_record(info, process)
            record = json.loads((info.data_dir / "server.json").read_text())
            # exec: passage itself is the process the runtime signals, as the user given.
            assert record["pid"] == process.pid
            assert os.stat(f"/proc/{process.pid}").st_uid == NOBODY
            assert (info.data_dir / "server.key").stat().st_uid == NOBODY
            reload = subprocess.run(
                as_nobody(str(prefix / "bin" / "passage"), "reload"), env=env,
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert reload.returncode == 0, reload.stderr
            process.send_signal(signal.SIGTERM)  # docker stop: a drain, over at once here
            assert process.wait(timeout=30) == 0
        finally:
            stop(process, timeout=20, how=signal.SIGINT)
    finally:
        shutil.rmtree(data)
    assert "drained" in log.read_text()


def test_the_entrypoint_refuses_root_and_an_unwritable_data_dir(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "PASSAGE_DATA_DIR": str(tmp_path)}
    if os.geteuid() == 0:
        done = subprocess.run([str(ENTRYPOINT), "serve"], env=env, capture_output=True,
                              text=True, timeout=30)  # fmt: skip
        assert done.returncode == 64 and "refusing to run as root" in done.stderr
        locked = Path(tempfile.mkdtemp(prefix="passage-locked-", dir="/tmp"))
        try:
            locked.chmod(0o755)  # root's: nobody may not write in it
            shutil.copy(ENTRYPOINT, locked / "entrypoint.sh")
            env["PASSAGE_DATA_DIR"] = str(locked / "state")
            done = subprocess.run(as_nobody(str(locked / "entrypoint.sh"), "serve"), env=env,
                                  capture_output=True, text=True, timeout=30)  # fmt: skip
            assert done.returncode == 73 and "is not writable by uid 65534" in done.stderr
        finally:
            shutil.rmtree(locked)
    else:
        done = subprocess.run([str(ENTRYPOINT), "--version"], env=env, capture_output=True,
                              text=True, timeout=30)  # fmt: skip
        assert done.returncode == 0 and done.stdout.startswith("passage ")
