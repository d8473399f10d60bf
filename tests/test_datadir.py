"""The data directory: first start creates the CA, the server certificate and the
auth secret; later starts reuse them and re-issue only what must change."""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from passage.addresses import AddressFamily
from passage.config import Config
from passage.datadir import (
    DataDir,
    DataDirError,
    prepare_data_dir,
    read_auth_secret,
)
from passage.hostaddr import primary_ip
from passage.store.database import open_database, sqlite_url
from passage.tlsmaterial import ServerNames, generate_ca, issue_server_certificate, key_to_pem

NOW = datetime.datetime(2025, 6, 1, 12, 0, tzinfo=datetime.UTC)
HOST = "relay-host"


def prepare(config: Config, now: datetime.datetime = NOW) -> DataDir:
    return prepare_data_dir(config, now=now, hostname=HOST)


def load_pem(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def san(certificate: x509.Certificate) -> tuple[set[str], set[str]]:
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return (
        set(names.get_values_for_type(x509.DNSName)),
        {str(ip) for ip in names.get_values_for_type(x509.IPAddress)},
    )


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return Config(data_dir=tmp_path / "data", listen_ips=("0.0.0.0", "192.0.2.10"))


def test_first_start_creates_a_ca_and_a_server_certificate_it_signed(config: Config) -> None:
    datadir = prepare(config)
    assert datadir.path == config.data_dir
    assert mode(config.data_dir) == 0o700
    assert datadir.ca_cert == config.data_dir / "ca.pem"
    ca = load_pem(config.data_dir / "ca.pem")
    server = load_pem(datadir.tls_cert)
    server.verify_directly_issued_by(ca)  # raises InvalidSignature if not
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.subject.rfc4514_string() == f"CN=Passage local CA {HOST}"
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    assert ca.not_valid_after_utc - NOW >= datetime.timedelta(days=3649)
    assert server.not_valid_after_utc - NOW <= datetime.timedelta(days=825)
    dns_names, ips = san(server)
    assert dns_names == {"localhost", HOST}
    # 0.0.0.0 is no name: it stands for the host's primary address, which is advertised.
    primary = primary_ip(AddressFamily.IPV4)
    assert ips == {"127.0.0.1", "::1", "192.0.2.10", *([primary] if primary else [])}


def test_wildcard_listen_ip_covers_the_advertised_primary_address(tmp_path: Path) -> None:
    """turns: clients verify the address the banner printed; the certificate must name it."""
    primary = primary_ip(AddressFamily.IPV4)
    if primary is None:
        pytest.skip("this host has no IPv4 route, so nothing is advertised")
    _, ips = san(load_pem(prepare(Config(data_dir=tmp_path / "d")).tls_cert))
    assert primary in ips


def test_keys_and_secret_are_private(config: Config) -> None:
    datadir = prepare(config)
    for path in (config.data_dir / "ca.key", datadir.tls_key, datadir.auth_secret_file):
        assert mode(path) == 0o600, path


def test_generated_material_loads_into_an_ssl_context_that_a_client_trusts(
    config: Config,
) -> None:
    datadir = prepare_data_dir(config, hostname=HOST)  # real clock: the chain must be valid now
    assert datadir.ca_cert is not None
    server_context = datadir.server_ssl_context()
    assert server_context.minimum_version == ssl.TLSVersion.TLSv1_2
    client_context = ssl.create_default_context(cafile=str(datadir.ca_cert))
    client = ssl.MemoryBIO(), ssl.MemoryBIO()
    server = ssl.MemoryBIO(), ssl.MemoryBIO()
    client_tls = client_context.wrap_bio(*client, server_hostname="localhost")
    server_tls = server_context.wrap_bio(*server, server_side=True)
    for _ in range(10):  # a handshake in memory, bytes carried by hand
        for tls in (client_tls, server_tls):
            try:
                tls.do_handshake()
            except ssl.SSLWantReadError:
                pass
        server[0].write(client[1].read())
        client[0].write(server[1].read())
    assert client_tls.version() in ("TLSv1.2", "TLSv1.3")
    assert server_tls.version() == client_tls.version()


def test_second_start_reuses_everything(config: Config) -> None:
    first = prepare(config)
    files = ("ca.pem", "ca.key", "server.pem", "server.key", "auth-secret")
    before = {name: (config.data_dir / name).read_bytes() for name in files}
    second = prepare(config, now=NOW + datetime.timedelta(days=100))
    assert second == first
    assert second.auth_secrets == first.auth_secrets
    assert {name: (config.data_dir / name).read_bytes() for name in files} == before


def test_new_listen_ip_reissues_the_server_certificate_with_the_same_ca(config: Config) -> None:
    prepare(config)
    ca_before = (config.data_dir / "ca.pem").read_bytes()
    server_before = (config.data_dir / "server.pem").read_bytes()
    moved = Config(data_dir=config.data_dir, listen_ips=("198.51.100.7",), public_ip="203.0.113.5")
    datadir = prepare(moved)
    assert (config.data_dir / "ca.pem").read_bytes() == ca_before
    assert datadir.tls_cert.read_bytes() != server_before
    server = load_pem(datadir.tls_cert)
    server.verify_directly_issued_by(load_pem(config.data_dir / "ca.pem"))
    assert {"198.51.100.7", "203.0.113.5"} <= san(server)[1]


def test_server_certificate_expiring_within_30_days_is_reissued(config: Config) -> None:
    prepare(config)
    server_before = load_pem(config.data_dir / "server.pem")
    later = server_before.not_valid_after_utc - datetime.timedelta(days=29)
    prepare(config, now=later)
    server_after = load_pem(config.data_dir / "server.pem")
    assert server_after.serial_number != server_before.serial_number
    assert server_after.not_valid_after_utc > later + datetime.timedelta(days=300)


def test_ca_that_cannot_be_read_is_an_error_not_silently_replaced(config: Config) -> None:
    prepare(config)
    (config.data_dir / "ca.key").write_text("garbage")
    with pytest.raises(DataDirError, match="local CA cannot be used"):
        prepare(config)


def test_auth_secret_generated_once_and_readable_by_turn_credentials(config: Config) -> None:
    datadir = prepare(config)
    (secret,) = datadir.auth_secrets
    assert len(secret) >= 32
    assert read_auth_secret(config.data_dir) == secret
    assert secret not in repr(datadir)


def test_configured_auth_secrets_replace_the_generated_one(config: Config) -> None:
    configured = Config(data_dir=config.data_dir, auth_secrets=("one", "two"))
    assert prepare(configured).auth_secrets == ("one", "two")
    assert not (config.data_dir / "auth-secret").exists()


def test_read_auth_secret_without_a_data_dir_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(DataDirError, match="passage serve"):
        read_auth_secret(tmp_path / "nowhere")


def write_pair(directory: Path, stem: str) -> tuple[Path, Path]:
    ca_key, ca = generate_ca("test CA", NOW)
    names = ServerNames(dns_names=("turn.example.org",), ip_addresses=())
    key, certificate = issue_server_certificate(ca_key, ca, names, NOW)
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert_path.write_bytes(certificate.public_bytes(Encoding.PEM))
    key_path.write_bytes(key_to_pem(key))
    return cert_path, key_path


def test_operator_certificate_is_used_as_given(config: Config, tmp_path: Path) -> None:
    cert_path, key_path = write_pair(tmp_path, "real")
    datadir = prepare(Config(data_dir=config.data_dir, tls_cert=cert_path, tls_key=key_path))
    assert (datadir.tls_cert, datadir.tls_key, datadir.ca_cert) == (cert_path, key_path, None)
    assert not (config.data_dir / "server.pem").exists()


def test_operator_certificate_and_key_that_do_not_match_are_a_clear_error(
    config: Config, tmp_path: Path
) -> None:
    cert_path, _ = write_pair(tmp_path, "first")
    _, other_key = write_pair(tmp_path, "second")
    mismatched = Config(data_dir=config.data_dir, tls_cert=cert_path, tls_key=other_key)
    with pytest.raises(DataDirError, match="not the private key of the certificate"):
        prepare(mismatched)


def test_unreadable_operator_key_names_the_file(config: Config, tmp_path: Path) -> None:
    cert_path, key_path = write_pair(tmp_path, "real")
    key_path.write_text("not a key")
    with pytest.raises(DataDirError, match=str(key_path)):
        prepare(Config(data_dir=config.data_dir, tls_cert=cert_path, tls_key=key_path))


def test_data_dir_that_is_a_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("")
    with pytest.raises(DataDirError, match="cannot create the data directory"):
        prepare(Config(data_dir=path))


def test_ipv6_listen_ip_is_named(tmp_path: Path) -> None:
    datadir = prepare(Config(data_dir=tmp_path / "d", listen_ips=("::", "2001:db8::1")))
    ips = san(load_pem(datadir.tls_cert))[1]
    assert str(ipaddress.ip_address("2001:db8::1")) in ips
    assert "::" not in ips


def test_node_id_is_made_once_and_kept(config: Config) -> None:
    """The usage ledger knows a node by it across restarts (issue 10, ``kill -9``)."""
    first = prepare(config).node_id
    assert len(first) == 16 and int(first, 16) >= 0
    assert prepare(config).node_id == first
    (config.data_dir / "node-id").write_text("two words\n")
    with pytest.raises(DataDirError, match="not a node id"):
        prepare(config)


def test_an_open_data_directory_and_loose_secret_files_are_made_private(
    config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 10: a 0755 directory (systemd's StateDirectory=) and files an older Passage left."""
    prepare(config)
    config.data_dir.chmod(0o755)
    database = config.data_dir / "passage.db"
    database.write_bytes(b"")
    for name in ("passage.db", "ca.key", "auth-secret"):
        (config.data_dir / name).chmod(0o644)
    prepare(config)
    assert mode(config.data_dir) == 0o700
    for name in ("passage.db", "ca.key", "auth-secret"):
        assert mode(config.data_dir / name) == 0o600, name
    assert mode(config.data_dir / "ca.pem") == 0o644  # what clients are given stays readable
    assert "made the data directory" in caplog.text and "was 0755" in caplog.text


async def test_the_sqlite_store_is_created_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        database = await open_database(sqlite_url(tmp_path))
        await database.close()
    finally:
        os.umask(old)
    assert mode(tmp_path / "passage.db") == 0o600
    for suffix in ("-wal", "-shm"):
        if (tmp_path / f"passage.db{suffix}").exists():
            assert mode(tmp_path / f"passage.db{suffix}") == 0o600
