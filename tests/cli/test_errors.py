"""Errors a person can act on: each is one line, ``passage: error: ...``, naming the flag and its
value, exit status 2, found before anything starts (no traceback, no half-started server)."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from passage.app import serve
from passage.cli.main import main
from passage.config import Config, ConfigError
from passage.datadir import prepare_data_dir
from passage.endpoint import AdvertisedEndpoint
from passage.runtime import RuntimeRecord, new_boot_id, process_start, write_record
from passage_server import free_port

NOT_OURS = "203.0.113.77"
"""A documentation address (RFC 5737) that no test host has."""

pytestmark = pytest.mark.usefixtures("no_passage_environment")


@pytest.fixture
def ports() -> dict[str, int]:
    return {
        "turn": free_port(),
        "turns": free_port((socket.SOCK_STREAM,)),
        "api": free_port((socket.SOCK_STREAM,)),
    }


def serve_flags(tmp_path: Path, ports: dict[str, int]) -> list[str]:
    return [
        "serve", "--data-dir", str(tmp_path / "data"), "--listen-ip", "127.0.0.1",
        "--turn-port", str(ports["turn"]), "--turns-port", str(ports["turns"]),
        "--api-port", str(ports["api"]),
        "--metrics-port", "0",  # not the default 9641, which another server may hold
    ]  # fmt: skip


def fails(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run ``passage argv`` in-process; it must exit 2. Its first stderr line."""
    try:
        status = main(list(argv))
    except SystemExit as exited:
        status = int(exited.code or 0)
    captured = capsys.readouterr()
    assert status == 2, captured.err
    assert captured.out == ""
    assert "Traceback" not in captured.err
    return captured.err.splitlines()[0]


@pytest.fixture
def held() -> Iterator[list[socket.socket]]:
    sockets: list[socket.socket] = []
    yield sockets
    for sock in sockets:
        sock.close()


def hold(held: list[socket.socket], kind: socket.SocketKind, port: int) -> None:
    sock = socket.socket(socket.AF_INET, kind)
    sock.bind(("127.0.0.1", port))
    if kind == socket.SOCK_STREAM:
        sock.listen(1)
    held.append(sock)


# --- ports --------------------------------------------------------------------


def test_a_udp_turn_port_in_use(
    tmp_path: Path,
    ports: dict[str, int],
    held: list[socket.socket],
    capsys: pytest.CaptureFixture[str],
) -> None:
    hold(held, socket.SOCK_DGRAM, ports["turn"])
    line = fails(capsys, *serve_flags(tmp_path, ports))
    turn = ports["turn"]
    assert line == (
        f"passage: error: --turn-port {turn}: UDP port {turn} on 127.0.0.1 is already in use "
        "by another process; stop it or choose another --turn-port"
    )
    assert not (tmp_path / "data").exists()  # checked before anything was made


def test_a_tcp_api_port_in_use(
    tmp_path: Path,
    ports: dict[str, int],
    held: list[socket.socket],
    capsys: pytest.CaptureFixture[str],
) -> None:
    hold(held, socket.SOCK_STREAM, ports["api"])
    line = fails(capsys, *serve_flags(tmp_path, ports))
    api = ports["api"]
    assert line == (
        f"passage: error: --api-port {api}: TCP port {api} on 127.0.0.1 is already in use "
        "by another process; stop it or choose another --api-port"
    )


def test_a_metrics_port_in_use(
    tmp_path: Path,
    ports: dict[str, int],
    held: list[socket.socket],
    capsys: pytest.CaptureFixture[str],
) -> None:
    metrics = free_port((socket.SOCK_STREAM,))
    hold(held, socket.SOCK_STREAM, metrics)
    line = fails(capsys, *serve_flags(tmp_path, ports), "--metrics-port", str(metrics))
    assert line == (
        f"passage: error: --metrics-port {metrics}: TCP port {metrics} on 127.0.0.1 is already "
        "in use by another process; stop it or choose another --metrics-port"
    )


def test_a_metrics_ip_not_of_this_host(
    tmp_path: Path, ports: dict[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    line = fails(capsys, *serve_flags(tmp_path, ports), "--metrics-ip", NOT_OURS,
                 "--metrics-port", "9641")  # fmt: skip
    assert line.startswith(f"passage: error: --metrics-ip {NOT_OURS}: not an address of this host")


def test_a_tls_port_in_use(
    tmp_path: Path,
    ports: dict[str, int],
    held: list[socket.socket],
    capsys: pytest.CaptureFixture[str],
) -> None:
    hold(held, socket.SOCK_STREAM, ports["turns"])
    line = fails(capsys, *serve_flags(tmp_path, ports))
    assert line.startswith(f"passage: error: --turns-port {ports['turns']}: TCP port ")


async def test_a_port_taken_between_the_check_and_the_bind_is_one_line_too(
    tmp_path: Path, ports: dict[str, int], held: list[socket.socket]
) -> None:
    """The checks cannot hold the ports: a port taken in between is still no traceback."""
    config = Config(
        data_dir=tmp_path / "data", listen_ips=("127.0.0.1",), turn_port=ports["turn"],
        turns_port=ports["turns"], api_port=ports["api"], metrics_port=0,
    )  # fmt: skip
    datadir = prepare_data_dir(config)
    hold(held, socket.SOCK_DGRAM, ports["turn"])
    with pytest.raises(ConfigError) as refused:
        await serve(config, datadir)
    assert str(refused.value) == (
        "could not start listening: Address already in use (a port or address was taken "
        "after passage serve checked it; try again)"
    )
    assert not (tmp_path / "data" / "server.json").exists()


# --- addresses ----------------------------------------------------------------

ELSEWHERE = (
    " not an address of this host (`ip address` lists them; behind 1:1 NAT, bind the "
    "private address and give the public one as --public-ip)"
)


def test_a_listen_ip_not_on_this_host(
    tmp_path: Path, ports: dict[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = serve_flags(tmp_path, ports)
    argv[argv.index("127.0.0.1")] = NOT_OURS
    line = fails(capsys, *argv)
    assert line == f"passage: error: --listen-ip {NOT_OURS}:{ELSEWHERE}"


def test_a_relay_ip_not_on_this_host(
    tmp_path: Path, ports: dict[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    """Before, this started and then failed every Allocate with 508."""
    line = fails(capsys, *serve_flags(tmp_path, ports), "--relay-ip", NOT_OURS)
    assert line == f"passage: error: --relay-ip {NOT_OURS}:{ELSEWHERE}"


def test_an_alt_ip_not_on_this_host(
    tmp_path: Path, ports: dict[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    line = fails(capsys, *serve_flags(tmp_path, ports), "--alt-ip", NOT_OURS)
    assert line == f"passage: error: --alt-ip {NOT_OURS}:{ELSEWHERE}"


# --- certificates -------------------------------------------------------------


def openssl_pair(folder: Path, name: str) -> tuple[Path, Path]:
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-subj", "/CN=test", "-days", "2"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_a_certificate_that_does_not_exist(
    tmp_path: Path, ports: dict[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    _, key = openssl_pair(tmp_path, "real")
    missing = tmp_path / "missing.pem"
    argv = [*serve_flags(tmp_path, ports), "--tls-cert", str(missing), "--tls-key", str(key)]
    line = fails(capsys, *argv)
    assert (
        line == f"passage: error: --tls-cert {missing}: cannot read it: No such file or directory"
    )


def test_a_certificate_that_is_not_pem(
    tmp_path: Path, ports: dict[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    _, key = openssl_pair(tmp_path, "real")
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    argv = [*serve_flags(tmp_path, ports), "--tls-cert", str(junk), "--tls-key", str(key)]
    assert fails(capsys, *argv) == f"passage: error: --tls-cert {junk}: not a PEM certificate"


def test_a_key_that_is_not_the_certificate_s(
    tmp_path: Path, ports: dict[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    cert, _ = openssl_pair(tmp_path, "first")
    _, other = openssl_pair(tmp_path, "second")
    argv = [*serve_flags(tmp_path, ports), "--tls-cert", str(cert), "--tls-key", str(other)]
    assert fails(capsys, *argv) == (
        f"passage: error: --tls-key {other}: not the private key of the certificate in {cert}"
    )


# --- one data directory, one server ---------------------------------------------


def test_a_second_server_on_a_data_directory(
    tmp_path: Path, ports: dict[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    endpoint = AdvertisedEndpoint("127.0.0.1", 23478, (), api_port=28443)
    alive = RuntimeRecord(
        os.getpid(), new_boot_id(), 0.0, "0", endpoint, process_start=process_start(os.getpid())
    )
    write_record(data, alive)
    assert fails(capsys, *serve_flags(tmp_path, ports)) == (
        f"passage: error: --data-dir {data}: a passage serve already runs on it "
        f"(pid {os.getpid()}, https://127.0.0.1:28443/); stop it, or give this one "
        "another --data-dir"
    )


# --- the store ------------------------------------------------------------------


def test_the_running_server_s_store_unreachable_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A command on a server's data directory opens the store server.json names (here one
    nobody listens for), and says so, naming --database-url and where its password is."""
    data = tmp_path / "data"
    data.mkdir()
    endpoint = AdvertisedEndpoint("127.0.0.1", 23478, (), api_port=28443)
    pid = os.getpid()
    url = "postgresql://passage@127.0.0.1:1/passage"
    alive = RuntimeRecord(
        pid, new_boot_id(), 0.0, "0", endpoint, process_start=process_start(pid),
        database_url=url, database_schema="s1",
    )  # fmt: skip
    write_record(data, alive)
    assert fails(capsys, "keys", "show", "--data-dir", str(data)) == (
        f"passage: error: --database-url {url} (the store of the server running on {data}): "
        "cannot open the store: [Errno 111] Connect call failed ('127.0.0.1', 1); server.json "
        "holds its URL without the password: give --database-url with it, or set PGPASSWORD "
        "or ~/.pgpass"
    )
    assert fails(capsys, "keys", "show", "--data-dir", str(data), "--database-schema", "s2") == (
        f"passage: error: --database-schema s2: not the schema of the server running on {data} "
        f"(pid {pid}, https://127.0.0.1:28443/, store {url} (schema s1)); give "
        "--database-schema s1, or leave both --database-url and --database-schema out to use "
        "its store"
    )
    other = "postgresql://passage:secret@127.0.0.1:1/other"
    assert fails(capsys, "usage", "--data-dir", str(data), "--database-url", other) == (
        "passage: error: --database-url postgresql://passage@127.0.0.1:1/other: not the store "
        f"of the server running on {data} (pid {pid}, https://127.0.0.1:28443/, store {url} "
        "(schema s1)); leave --database-url out to use its store, or give another --data-dir"
    )


def test_a_postgresql_store_without_its_driver(
    tmp_path: Path,
    ports: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """asyncpg is the ``postgres`` extra: a default install has none, and is told so."""
    monkeypatch.setitem(sys.modules, "asyncpg", None)  # as if it were not installed
    argv = [*serve_flags(tmp_path, ports), "--database-url", "postgresql://127.0.0.1/test"]
    assert fails(capsys, *argv) == (
        "passage: error: --database-url postgresql://...: the PostgreSQL driver is not "
        "installed; pip install 'passage-relay[postgres]' (or pip install asyncpg)"
    )


# --- cluster mode -----------------------------------------------------------------

CLUSTER = {
    "--database-url": "postgresql://127.0.0.1/test",
    "--node-name": "node-a",
    "--public-url": "wss://a.relay.example:8443",
    "--public-host": "a.relay.example",
}


def cluster_flags(tmp_path: Path, ports: dict[str, int], *, without: str = "") -> list[str]:
    flags = [*serve_flags(tmp_path, ports), "--redis-url", "redis://127.0.0.1:1/0"]
    for flag, value in CLUSTER.items():
        if flag != without:
            flags += [flag, value]
    return flags


@pytest.mark.parametrize(
    ("without", "needed"),
    [
        ("--database-url", "a shared PostgreSQL store: --database-url postgresql://USER@HOST/DB"),
        ("--node-name", "--node-name NAME, unique in the cluster"),
        ("--public-url", "--public-url wss://HOST:PORT, where listeners reach this node"),
        ("--public-host", "--public-host HOST, this node's name in TURN URLs"),
    ],
)
def test_cluster_mode_names_what_it_misses(
    tmp_path: Path,
    ports: dict[str, int],
    capsys: pytest.CaptureFixture[str],
    without: str,
    needed: str,
) -> None:
    argv = cluster_flags(tmp_path, ports, without=without)
    assert fails(capsys, *argv) == f"passage: error: --redis-url: cluster mode needs {needed}"
    assert not (tmp_path / "data").exists()  # checked before anything was made


def test_cluster_mode_on_sqlite_is_refused(
    tmp_path: Path, ports: dict[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [*cluster_flags(tmp_path, ports, without="--database-url")]
    argv += ["--database-url", f"sqlite:///{tmp_path}/x.db"]
    assert "cluster mode needs a shared PostgreSQL store" in fails(capsys, *argv)


def test_cluster_mode_without_the_redis_client(
    tmp_path: Path,
    ports: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)  # as if it were not installed
    assert fails(capsys, *cluster_flags(tmp_path, ports)) == (
        "passage: error: --redis-url redis://...: the Redis client is not installed; "
        "pip install 'passage-relay[cluster]' (or pip install redis)"
    )


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--redis-url", "http://127.0.0.1:6379", "expected redis://HOST[:PORT][/DB]"),
        ("--node-name", "a b", "expected 1 to 64 letters, digits"),
        ("--redis-prefix", "x" * 65, "expected 1 to 64 letters, digits"),
    ],
)
def test_cluster_flags_with_bad_values(
    tmp_path: Path,
    ports: dict[str, int],
    capsys: pytest.CaptureFixture[str],
    flag: str,
    value: str,
    message: str,
) -> None:
    line = fails(capsys, *cluster_flags(tmp_path, ports), flag, value)
    assert line.startswith(f"passage: error: {flag}: {message}")
    assert "6379" not in line or flag != "--redis-url"  # a URL may hold a password


def test_a_database_schema_needs_postgresql(
    tmp_path: Path, ports: dict[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    assert fails(capsys, *serve_flags(tmp_path, ports), "--database-schema", "s1") == (
        "passage: error: --database-schema s1: only a PostgreSQL store has schemas; "
        "give --database-url postgresql://... or leave it out"
    )


# --- the command line -----------------------------------------------------------


def test_an_unknown_flag_gets_the_command_s_usage_and_the_closest_flag(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["hc", "create", "web", "--data-dri", "x"])
    assert exited.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("usage: passage hc create ")
    assert lines[-1] == (
        "passage hc create: error: unrecognized arguments: --data-dri x (did you mean --data-dir?)"
    )


def test_a_misspelled_variable_is_named_with_the_closest_one(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PASSAGE_")}
    env |= {"PASSAGE_TRUN_PORT": "4000", "PASSAGE_SOMETHING_ELSE_ENTIRELY": "1"}
    printed = subprocess.run(
        [sys.executable, "-m", "passage", "turn-credentials", "--auth-secret", "s"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert printed.returncode == 0
    assert printed.stderr.splitlines() == [
        "passage: warning: PASSAGE_TRUN_PORT is not a Passage variable and is ignored "
        "(did you mean PASSAGE_TURN_PORT?)"
    ]


RELAY_KEY = "Endpoint=sb://127.0.0.1:{port}/;SharedAccessKeyName=send;SharedAccessKey=c2VjcmV0"


def test_connect_names_a_relay_it_cannot_reach_before_it_listens(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    closed = free_port((socket.SOCK_STREAM,))  # nothing listens there
    line = fails(
        capsys, "connect", "echo", "--listen", "127.0.0.1:0",
        "--relay-connection-string", RELAY_KEY.format(port=closed),
        "--data-dir", str(tmp_path / "none"),
    )  # fmt: skip
    assert line.startswith(f"passage: error: cannot reach the relay at wss://127.0.0.1:{closed}: ")


def test_connect_names_the_ca_fix_for_a_relay_it_does_not_trust(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cert, key = openssl_pair(tmp_path, "relay")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    with socket.create_server(("127.0.0.1", 0)) as listening:
        port = listening.getsockname()[1]

        def handshake_once() -> None:
            accepted, _ = listening.accept()
            with contextlib.suppress(OSError), context.wrap_socket(accepted, server_side=True):
                pass  # the client refuses our certificate: the handshake fails on our side too

        thread = threading.Thread(target=handshake_once, daemon=True)
        thread.start()
        line = fails(
            capsys, "connect", "echo", "--listen", "127.0.0.1:0",
            "--relay-connection-string", RELAY_KEY.format(port=port),
            "--data-dir", str(tmp_path / "none"),
        )  # fmt: skip
        thread.join(timeout=10)
    assert line.startswith(f"passage: error: cannot reach the relay at wss://127.0.0.1:{port}: ")
    assert "--ca-file" in line
