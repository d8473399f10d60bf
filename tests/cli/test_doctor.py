"""``passage doctor`` on loopback against a real ``passage serve``: credentials and fallbacks.

The NAT lab tests (tests/doctor/test_doctor_lab.py) give one scenario per
verdict; these cover the ways to get credentials (a user token, a connection
string that does not work), the measurement's fallback when the relay
refuses to relay to itself, and the usage errors (exit 2).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from passage.cli.doctor import _Progress
from passage.cli.main import main
from passage.cli.management import ConnectionString, RemoteTarget, call_remote, client_tls
from passage.config import Config
from passage_server import ServerInfo, free_port, passage_process

FAST = ["--duration", "0.5", "--timeout", "1", "--json", "--quiet"]
"""Before the test's own flags, which win."""


def doctor(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    status = main(["doctor", *FAST, *args])
    return status, json.loads(capsys.readouterr().out)


def ports(info: ServerInfo) -> list[str]:
    return ["--port", str(info.turn_port), "--tls-port", str(info.turns_port)]


def user_token(info: ServerInfo) -> str:
    """A user access token with the voip scope, as an app server gets one for a client."""
    target = RemoteTarget(
        ConnectionString.parse(info.connection_string()), client_tls(str(info.ca_cert), Config())
    )
    body = call_remote(
        target, "POST", "/identities", {"api-version": "2023-10-01"},
        {"createTokenWithScopes": ["voip"]},
    )  # fmt: skip
    token: str = body["accessToken"]["token"]
    return token


def outcomes(report: dict[str, Any]) -> set[str]:
    return {transport["outcome"] for transport in report["transports"]}


def test_a_user_token_fetches_the_relay_configuration_and_measures_through_the_relay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with passage_process(tmp_path, "--allow-loopback-peers") as (info, _):
        token = user_token(info)
        status, report = doctor(
            capsys, "--token", token, "--endpoint", info.api_url, "--ca-file", str(info.ca_cert)
        )
    assert status == 0
    assert report["credentials"] == {"source": "token", "error": None}
    assert report["server"] == "127.0.0.1"  # named by the relay configuration
    assert [(t["transport"], t["port"]) for t in report["transports"]] == [
        ("udp", info.turn_port), ("tcp", info.turn_port), ("tls", info.turns_port),
    ]  # fmt: skip
    assert outcomes(report) == {"allocated"}
    path = report["path"]
    assert (path["via"], path["transport"], path["note"]) == ("relay", "udp", "")
    assert path["sent"] == 25 and path["received"] > 0


def test_the_default_deny_list_lets_the_loop_through_the_relay_on_loopback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Loopback is on the deny list, but not the relay's own addresses (issue 10)."""
    with passage_process(tmp_path) as (info, _):
        status, report = doctor(
            capsys, info.host, "--turn-user", info.username, "--turn-password", info.password,
            "--ca-file", str(info.ca_cert), *ports(info),
        )  # fmt: skip
    assert status == 0
    path = report["path"]
    assert (path["via"], path["note"]) == ("relay", "")
    assert path["received"] > 0


def test_a_relay_that_refuses_to_relay_to_itself_is_measured_to_the_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An operator's --deny-peer covers the relay address: ChannelBind to it is 403."""
    with passage_process(tmp_path, "--deny-peer", "127.0.0.0/8") as (info, _):
        status, report = doctor(
            capsys, info.host, "--turn-user", info.username, "--turn-password", info.password,
            "--ca-file", str(info.ca_cert), *ports(info),
        )  # fmt: skip
    assert status == 0
    path = report["path"]
    assert path["via"] == "server" and path["received"] > 0
    assert "refused to relay to its own relayed address (403" in path["note"]


def test_a_connection_string_that_does_not_work_leaves_stun_only_and_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with passage_process(tmp_path) as (info, _):
        closed = free_port()
        broken = info.connection_string().replace(f":{info.api_port}/", f":{closed}/")
        status, report = doctor(
            capsys, info.host, "--connection-string", broken, "--ca-file", str(info.ca_cert),
            *ports(info),
        )  # fmt: skip
    assert status == 3
    assert report["credentials"]["source"] == "connection-string"
    assert f"cannot reach 127.0.0.1:{closed}" in report["credentials"]["error"]
    assert outcomes(report) == {"answered"}  # STUN Binding only, over every transport
    assert report["exit_status"] == 3
    assert "no TURN credentials could be had" in report["verdict"]["summary"]


def test_without_credentials_it_probes_with_stun_binding_and_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with passage_process(tmp_path) as (info, _):
        status, report = doctor(
            capsys, info.host, "--ca-file", str(info.ca_cert), "--data-dir", str(tmp_path / "none"),
            *ports(info),
        )  # fmt: skip
    assert status == 0
    assert report["credentials"] == {"source": "none", "error": None}
    assert outcomes(report) == {"answered"}
    assert all(t["mapped"].startswith("127.0.0.1:") for t in report["transports"])
    assert report["path"]["via"] == "server"


def test_a_tls_certificate_it_cannot_verify_is_a_tls_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with passage_process(tmp_path) as (info, _):
        # No --ca-file: the system's CAs do not know the data directory's CA.
        status, report = doctor(
            capsys, info.host, "--data-dir", str(tmp_path / "none"), "--duration", "0",
            *ports(info),
        )  # fmt: skip
    tls = next(t for t in report["transports"] if t["transport"] == "tls")
    assert tls["outcome"] == "tls_failed" and tls["detail"].startswith("certificate:")
    assert report["path"] is None  # --duration 0 skips the measurement
    assert status == 0


def test_where_nothing_listens_nothing_gets_through_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    closed = free_port()
    status, report = doctor(
        capsys, "127.0.0.1", "--port", str(closed), "--tls-port", str(closed),
        "--turn-user", "alice", "--turn-password", "wonderland", "--data-dir", str(tmp_path),
    )  # fmt: skip
    assert status == 1
    assert report["verdict"]["media_path"] == "nothing"
    udp, tcp, tls = report["transports"]
    assert (udp["outcome"], udp["detail"]) == ("no_answer", "connection refused")  # ICMP
    assert (tcp["outcome"], tcp["detail"]) == ("connect_failed", "connection refused")
    assert tls["outcome"] == "connect_failed"
    assert report["path"] is None


def test_a_config_file_s_ports_are_the_ones_probed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """doctor --config probed 3478 whatever the file said; it probes the file's server."""
    closed, tls = free_port(), free_port()
    config = tmp_path / "passage.toml"
    config.write_text(
        f'listen_ips = ["127.0.0.1"]\nturn_port = {closed}\nturns_port = {tls}\n'
        f'data_dir = "{tmp_path}"\n'
    )
    status, report = doctor(capsys, "--config", str(config), "--timeout", "0.3")
    assert status == 1
    assert [(t["host"], t["port"]) for t in report["transports"]] == [
        ("127.0.0.1", closed), ("127.0.0.1", closed), ("127.0.0.1", tls)
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--token", "t"], "--token needs --endpoint"),
        (["--turn-user", "alice"], "--turn-user needs --turn-password"),
        (["--duration", "-1"], "--duration"),
        (["--timeout", "0"], "--timeout"),
        (["--port", "70000"], "port 70000"),
        (["--connection-string", "nonsense"], "connection string"),
    ],
)
def test_usage_errors_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["doctor", "127.0.0.1", "--data-dir", str(tmp_path), *args]) == 2
    assert message in capsys.readouterr().err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_rewrites_one_line_on_a_terminal_and_prints_lines_elsewhere() -> None:
    terminal = _Terminal()
    shown = _Progress(terminal, quiet=False)
    shown.show("probing")
    shown.show("UDP 3478 allocated")
    shown.done()
    assert terminal.getvalue() == "\r\033[Kprobing\r\033[KUDP 3478 allocated\r\033[K"
    pipe = io.StringIO()
    logged = _Progress(pipe, quiet=False)
    logged.show("probing")
    logged.done()
    assert pipe.getvalue() == "doctor: probing\n"
    silent = io.StringIO()
    _Progress(silent, quiet=True).show("probing")
    assert silent.getvalue() == ""
