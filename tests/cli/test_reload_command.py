"""``passage reload`` and SIGHUP against a real ``passage serve``: a new certificate for new
TLS handshakes while live connections keep theirs, a refused configuration that changes
nothing, and one-line errors where no server runs."""

from __future__ import annotations

import asyncio
import datetime
import os
import signal
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from passage.datadir import replace_file
from passage.stun import MessageClass
from passage.tlsmaterial import ServerNames, generate_ca, issue_server_certificate, key_to_pem
from passage_server import ServerInfo, passage_process
from turn_client import TurnClient, UdpPeer, error_code
from waiting import until

pytestmark = pytest.mark.timeout(120)

NAMES = ServerNames(dns_names=("localhost",), ip_addresses=("127.0.0.1",))


class Authority:
    """A CA of the test's own, and the server certificates it issues into files."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.now = datetime.datetime.now(datetime.UTC)
        self.key, self.certificate = generate_ca("reload test CA", self.now)
        self.ca_file = folder / "ca.pem"
        self.ca_file.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    def issue(self, cert: Path, key: Path) -> int:
        """Write a new certificate and key (atomically, as certbot does); its serial."""
        private, certificate = issue_server_certificate(self.key, self.certificate, NAMES, self.now)
        replace_file(key, key_to_pem(private), 0o600)
        replace_file(cert, certificate.public_bytes(serialization.Encoding.PEM), 0o644)
        return certificate.serial_number

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))


def presented_serial(host: str, port: int, context: ssl.SSLContext) -> int:
    """The serial of the certificate a new TLS handshake on ``port`` presents."""
    import socket

    with (
        socket.create_connection((host, port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def reload_command(info: ServerInfo) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "passage", "reload", "--data-dir", str(info.data_dir)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


async def test_a_new_certificate_reaches_new_handshakes_and_spares_live_ones(
    tmp_path: Path,
) -> None:
    authority = Authority(tmp_path)
    cert, key = tmp_path / "fullchain.pem", tmp_path / "privkey.pem"
    first = authority.issue(cert, key)
    context = authority.client_context()
    with passage_process(
        tmp_path, "--tls-cert", str(cert), "--tls-key", str(key), "--allow-loopback-peers"
    ) as (info, log):
        live = await TurnClient.connect("tls", (info.host, info.turns_port), ssl_context=context)
        peer = await UdpPeer.bind()
        try:
            assert (await live.allocate()).message_class is MessageClass.SUCCESS
            assert error_code(await live.channel_bind(0x4000, peer.address)) is None
            assert presented_serial(info.host, info.turns_port, context) == first

            second = authority.issue(cert, key)
            done = reload_command(info)
            assert done.returncode == 0, done.stderr
            assert "reloaded the configuration" in done.stdout
            assert str(cert) in done.stdout and "expires" in done.stdout

            # New handshakes, on TURN over TLS and on the HTTPS API, get the new certificate.
            assert presented_serial(info.host, info.turns_port, context) == second
            assert presented_serial(info.host, info.api_port, context) == second
            # The connection made before keeps relaying and refreshing.
            live.send_channel_data(0x4000, b"after the reload")
            assert (await peer.receive())[0] == b"after the reload"
            assert (await live.refresh(600)).message_class is MessageClass.SUCCESS

            # A key that is not the certificate's: refused, the second pair stays.
            key.write_bytes(key_to_pem(authority.key))
            done = reload_command(info)
            assert done.returncode == 1
            assert "reload failed, still running the previous configuration" in done.stdout
            assert "--tls-key" in done.stdout
            assert presented_serial(info.host, info.turns_port, context) == second

            # A plain SIGHUP does the same as the command (certbot's hook may send either).
            third = authority.issue(cert, key)
            os.kill(_pid(info), signal.SIGHUP)
            await until(lambda: presented_serial(info.host, info.turns_port, context) == third)
            assert (await live.refresh(600)).message_class is MessageClass.SUCCESS
        finally:
            await live.close()
            await peer.close()
    text = log.read_text()
    assert text.count("reloaded the configuration") == 2, text
    assert text.count("reload failed") == 1
    assert "Traceback" not in text


def _pid(info: ServerInfo) -> int:
    import json

    return int(json.loads((info.data_dir / "server.json").read_text())["pid"])


def test_settings_that_need_a_restart_are_named_and_kept(tmp_path: Path) -> None:
    config = tmp_path / "passage.toml"
    config.write_text('[turn]\nsoftware = "first"\n')
    with passage_process(tmp_path, "--config", str(config)) as (info, log):
        config.write_text('region = "elsewhere"\nsignal_room_size = 3\n[turn]\n'
                          'software = "second"\n')  # fmt: skip
        done = reload_command(info)
        assert done.returncode == 0, done.stderr
        assert "changed: turn.software" in done.stdout
        assert "region, signal_room_size" in done.stdout and "restart" in done.stdout
        config.write_text("turn_port = 'not a port'\n")
        done = reload_command(info)
        assert done.returncode == 1
        assert "turn_port: expected an integer" in done.stdout
        assert asyncio.run(_software(info)) == "second"
    text = log.read_text()
    assert "region, signal_room_size" in text and "Traceback" not in text


async def _software(info: ServerInfo) -> str | None:
    from passage.stun import AttributeType

    client = await TurnClient.connect("udp", (info.host, info.turn_port))
    try:
        answer = await client.allocate()
        return answer.get(AttributeType.SOFTWARE, str)
    finally:
        await client.close()


@pytest.mark.parametrize("state", ["missing", "empty", "stale"])
def test_no_server_is_one_line(tmp_path: Path, state: str) -> None:
    data_dir = tmp_path / "d"
    if state != "missing":
        data_dir.mkdir()
    if state == "stale":
        (data_dir / "server.json").write_text(
            '{"pid": 999999999, "started_at": 0, "host": "127.0.0.1", "turn_port": 3478}'
        )
    done = subprocess.run(
        [sys.executable, "-m", "passage", "reload", "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("passage: error: --data-dir"), done.stderr
    assert {"missing": "no such directory", "empty": "no server.json", "stale": "is gone"}[
        state
    ] in lines[0]


HOOK = Path(__file__).resolve().parents[2] / "contrib" / "certbot" / "passage-deploy-hook"


def test_the_certbot_deploy_hook_installs_and_reloads(tmp_path: Path) -> None:
    """contrib/certbot/passage-deploy-hook as certbot runs it, against a real server."""
    import getpass

    authority = Authority(tmp_path)
    lineage, tls = tmp_path / "live", tmp_path / "tls"
    lineage.mkdir()
    tls.mkdir()
    first = authority.issue(tls / "fullchain.pem", tls / "privkey.pem")
    cert, key = tls / "fullchain.pem", tls / "privkey.pem"
    with passage_process(tmp_path, "--tls-cert", str(cert), "--tls-key", str(key)) as (info, _):
        context = authority.client_context()
        assert presented_serial(info.host, info.turns_port, context) == first
        renewed = authority.issue(lineage / "fullchain.pem", lineage / "privkey.pem")
        env = dict(
            os.environ,
            RENEWED_LINEAGE=str(lineage),
            PASSAGE_TLS_DIR=str(tls),
            PASSAGE_USER=getpass.getuser(),
            PASSAGE_SERVICE="passage-test-not-a-unit",
            PASSAGE_DATA_DIR=str(info.data_dir),
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        )
        done = subprocess.run([str(HOOK)], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "reloaded the configuration" in done.stdout
        assert presented_serial(info.host, info.turns_port, context) == renewed
        assert (key.stat().st_mode & 0o777) == 0o600
        assert sorted(path.name for path in tls.iterdir()) == ["fullchain.pem", "privkey.pem"]
