"""The data directory: the files a Passage node keeps between starts.

``prepare_data_dir`` makes the directory usable: it creates it (mode 0700) on the
first start, or makes an existing one 0700 (it refuses, in one line, a directory
other users can read that it cannot close), with a local CA, a server
certificate signed by it, and a random secret for ephemeral TURN credentials;
on later starts it reuses them, and re-issues the server certificate (same CA)
when it is about to expire or no longer names every configured address. The
embedded store lives here too.

Layout::

    ca.pem        the local CA certificate: give it to clients that should trust Passage
    ca.key        the CA's private key (0600)
    server.pem    the server certificate the TLS listeners present
    server.key    its private key (0600)
    auth-secret   the REST credential secret when none is configured (0600)
    node-id       this node's name in a shared usage ledger, random, made once
    passage.db    the embedded SQLite store (0600, as its -wal and -shm):
                  access keys and SAS rule keys are in it

Every file that holds a secret is 0600 whatever the umask, and one found looser
(copied in, or left by an older Passage) is made 0600 at start.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import logging
import os
import secrets
import socket
import ssl
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from passage.addresses import family_of
from passage.config import Config, ConfigError
from passage.hostaddr import primary_ip
from passage.tlsmaterial import (
    ServerNames,
    TlsMaterialError,
    certificate_covers,
    generate_ca,
    issue_server_certificate,
    issued_by,
    key_to_pem,
    load_key_pair,
    server_ssl_context,
)

__all__ = [
    "AUTH_SECRET_FILE",
    "CA_CERT_FILE",
    "CA_KEY_FILE",
    "DATABASE_FILE",
    "NODE_ID_FILE",
    "RENEW_BEFORE",
    "SERVER_CERT_FILE",
    "SERVER_KEY_FILE",
    "DataDir",
    "DataDirError",
    "check_operator_pair",
    "prepare_data_dir",
    "adopt_auth_secret",
    "read_auth_secret",
    "replace_file",
    "server_names",
]

CA_CERT_FILE = "ca.pem"
CA_KEY_FILE = "ca.key"
SERVER_CERT_FILE = "server.pem"
SERVER_KEY_FILE = "server.key"
AUTH_SECRET_FILE = "auth-secret"
DATABASE_FILE = "passage.db"
NODE_ID_FILE = "node-id"

RENEW_BEFORE = datetime.timedelta(days=30)
"""A generated certificate expiring sooner than this is replaced at start."""

PRIVATE_FILE_MODE = 0o600
PUBLIC_FILE_MODE = 0o644
PRIVATE_DIR_MODE = 0o700

SECRET_FILES = (
    CA_KEY_FILE,
    SERVER_KEY_FILE,
    AUTH_SECRET_FILE,
    DATABASE_FILE,
    f"{DATABASE_FILE}-wal",
    f"{DATABASE_FILE}-shm",
    f"{DATABASE_FILE}-journal",
)
"""Files that hold secrets: 0600, always (SQLite gives -wal, -shm and -journal the
database file's mode, so a private passage.db keeps them private too)."""

logger = logging.getLogger(__name__)


class DataDirError(ConfigError):
    """The data directory or the TLS material in it cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class DataDir:
    """The prepared data directory: where each file is, and what was read from it."""

    path: Path
    """The directory itself."""

    tls_cert: Path
    """PEM chain the TLS listeners present: the generated ``server.pem`` or ``--tls-cert``."""

    tls_key: Path
    """PEM private key of ``tls_cert``."""

    ca_cert: Path | None
    """The generated CA clients should trust; None when ``--tls-cert`` is in use."""

    database: Path
    """The embedded SQLite store, ``passage.db``."""

    auth_secret_file: Path
    """Where the generated REST credential secret is kept (used only without ``--auth-secret``)."""

    auth_secrets: tuple[str, ...] = field(repr=False)
    """Secrets accepted for ephemeral credentials: the configured ones, else the generated one."""

    node_id: str = ""
    """This node's name in a shared usage ledger (``node-id``): the same across restarts."""

    def server_ssl_context(self, alpn_protocols: Iterable[str] = ()) -> ssl.SSLContext:
        """A TLS 1.2+ server context presenting ``tls_cert``, for the TURN and API listeners."""
        return server_ssl_context(self.tls_cert, self.tls_key, alpn_protocols)


def prepare_data_dir(
    config: Config,
    *,
    now: datetime.datetime | None = None,
    hostname: str | None = None,
) -> DataDir:
    """Create or refresh the data directory for ``config`` and describe it.

    ``now`` and ``hostname`` default to the clock and ``socket.gethostname()``;
    tests pass them. Raises :class:`DataDirError` when the directory cannot be
    created, a stored CA cannot be read, or the operator's certificate and key do
    not load together.
    """
    now = now or datetime.datetime.now(datetime.UTC)
    hostname = socket.gethostname() if hostname is None else hostname
    root = config.data_dir
    _make_private_dir(root)
    _make_private_files(root)
    auth_secret_file = root / AUTH_SECRET_FILE
    auth_secrets = config.auth_secrets or (_read_or_create_secret(auth_secret_file),)
    if config.tls_cert is not None and config.tls_key is not None:
        check_operator_pair(config.tls_cert, config.tls_key)
        tls_cert, tls_key, ca_cert = config.tls_cert, config.tls_key, None
    else:
        names = server_names(config, hostname)
        _ensure_generated_tls(root, names, hostname, now)
        tls_cert, tls_key = root / SERVER_CERT_FILE, root / SERVER_KEY_FILE
        ca_cert = root / CA_CERT_FILE
    return DataDir(
        path=root,
        tls_cert=tls_cert,
        tls_key=tls_key,
        ca_cert=ca_cert,
        database=root / DATABASE_FILE,
        auth_secret_file=auth_secret_file,
        auth_secrets=auth_secrets,
        node_id=_read_or_create_node_id(root / NODE_ID_FILE),
    )


def adopt_auth_secret(datadir: DataDir, secret: str) -> DataDir:
    """``datadir`` with ``secret`` as its REST credential secret, written to its file too
    (so ``passage turn-credentials --data-dir`` mints what every node accepts)."""
    if datadir.auth_secrets == (secret,):
        return datadir
    replace_file(datadir.auth_secret_file, (secret + "\n").encode("ascii"), PRIVATE_FILE_MODE)
    logger.warning(
        "cluster: %s now holds the cluster's REST secret (stored in PostgreSQL), so that "
        "credentials and nonces of any node pass on every node; the previous one no longer "
        "works", datadir.auth_secret_file,
    )  # fmt: skip
    return dataclasses.replace(datadir, auth_secrets=(secret,))


def read_auth_secret(data_dir: Path) -> str:
    """The generated REST credential secret of an existing data directory.

    Raises :class:`DataDirError` when ``passage serve`` has not created it yet.
    """
    path = data_dir / AUTH_SECRET_FILE
    try:
        secret = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise DataDirError(
            f"{path} does not exist: start `passage serve --data-dir {data_dir}` once, "
            "or pass --auth-secret"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataDirError(f"{path}: cannot read the auth secret: {exc}") from None
    if not secret:
        raise DataDirError(f"{path} is empty: delete it to generate a new secret")
    return secret


def server_names(config: Config, hostname: str) -> ServerNames:
    """Names the generated server certificate must cover: localhost, the host name,
    loopback, every specific listen IP (for a wildcard one, the host's primary address
    of that family, which is what ``passage serve`` advertises), and the public IP."""
    dns_names = ["localhost"]
    if hostname and hostname.isascii() and hostname.lower() != "localhost":
        dns_names.append(hostname.lower())
    ips = ["127.0.0.1", "::1", *config.listen_ips, *config.relay_ips]
    for ip in config.listen_ips:
        if ipaddress.ip_address(ip).is_unspecified:
            primary = primary_ip(family_of(ip))
            ips += [primary] if primary is not None else []
    if config.public_ip is not None:
        ips.append(config.public_ip)
    specific = [str(ipaddress.ip_address(ip)) for ip in ips]
    unique = [ip for ip in dict.fromkeys(specific) if not ipaddress.ip_address(ip).is_unspecified]
    return ServerNames(dns_names=tuple(dns_names), ip_addresses=tuple(unique))


# --- Files ------------------------------------------------------------------


def _make_private_dir(path: Path) -> None:
    """Create ``path`` 0700, or shut an existing one that other users can enter or read."""
    if not path.is_dir():
        try:
            path.mkdir(mode=PRIVATE_DIR_MODE, parents=True)
            path.chmod(PRIVATE_DIR_MODE)  # mkdir's mode is filtered by the umask
        except OSError as exc:
            raise DataDirError(f"{path}: cannot create the data directory: {exc}") from None
        logger.info("created data directory %s", path)
        return
    _make_private(path, PRIVATE_DIR_MODE, "the data directory", "or choose another --data-dir")


def _make_private_files(root: Path) -> None:
    """Make every secret-bearing file in ``root`` 0600, if one was left looser."""
    for name in SECRET_FILES:
        path = root / name
        if path.exists():
            _make_private(path, PRIVATE_FILE_MODE, "a file that holds secrets", "")


def _make_private(path: Path, private: int, what: str, otherwise: str) -> None:
    """Give ``path`` mode ``private`` if other users can reach it; refuse in one line if
    that cannot be done (another owner, a read-only mount)."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if not mode & 0o077:
        return
    try:
        path.chmod(private)
    except OSError as exc:
        advice = f"run `chmod {private:o} {path}` as its owner" + (
            f" {otherwise}" if otherwise else ""
        )
        raise DataDirError(
            f"{path}: {what} is open to other users (mode {mode:04o}) and cannot be made "
            f"private ({exc.strerror}): {advice}"
        ) from None
    logger.warning("made %s private: %s (mode %04o, was %04o)", what, path, private, mode)


def replace_file(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` atomically: a crash leaves the old file or the new one, never half."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        temporary.chmod(mode)
        os.replace(temporary, path)
    except OSError as exc:
        raise DataDirError(f"{path}: cannot write: {exc}") from None


def _read_or_create_secret(path: Path) -> str:
    if not path.exists():
        replace_file(path, (secrets.token_urlsafe(32) + "\n").encode("ascii"), PRIVATE_FILE_MODE)
        logger.info("generated the auth secret in %s", path)
    return read_auth_secret(path.parent)


def _read_or_create_node_id(path: Path) -> str:
    """The node's id: 16 random hex digits, made at the first start and kept.

    A node restarted after a crash closes the ledger's allocations that carry its
    id and no others, so a copy of this file in another node's data directory
    makes the two one node to the ledger: do not copy it.
    """
    if not path.exists():
        replace_file(path, (secrets.token_hex(8) + "\n").encode("ascii"), PUBLIC_FILE_MODE)
    try:
        node_id = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataDirError(f"{path}: cannot read the node id: {exc}") from None
    if not node_id or len(node_id) > 64 or not node_id.isprintable() or " " in node_id:
        raise DataDirError(f"{path}: not a node id; delete it to make a new one")
    return node_id


# --- TLS material -------------------------------------------------------------


def check_operator_pair(cert_path: Path, key_path: Path) -> None:
    """``--tls-cert`` and ``--tls-key`` load, and belong together; else :class:`DataDirError`
    naming the flag and the file at fault."""
    try:
        load_key_pair(cert_path, key_path)
    except TlsMaterialError as exc:
        flag, path = ("--tls-cert", cert_path) if exc.which == "cert" else ("--tls-key", key_path)
        raise DataDirError(f"{flag} {path}: {exc.message}") from None


def _ensure_generated_tls(
    root: Path, names: ServerNames, hostname: str, now: datetime.datetime
) -> None:
    ca_key, ca_certificate = _load_or_create_ca(root, hostname, now)
    reason = _server_certificate_problem(root, ca_certificate, names, now)
    if reason is None:
        return
    key, certificate = issue_server_certificate(ca_key, ca_certificate, names, now)
    replace_file(root / SERVER_KEY_FILE, key_to_pem(key), PRIVATE_FILE_MODE)
    replace_file(root / SERVER_CERT_FILE, _certificate_pem(certificate), PUBLIC_FILE_MODE)
    logger.info(
        "issued the server certificate (%s) for %s",
        reason,
        ", ".join((*names.dns_names, *names.ip_addresses)),
    )


def _load_or_create_ca(
    root: Path, hostname: str, now: datetime.datetime
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    cert_path, key_path = root / CA_CERT_FILE, root / CA_KEY_FILE
    if cert_path.exists():
        key, certificate = _load_ca(cert_path, key_path)
        if certificate.not_valid_after_utc - now > RENEW_BEFORE:
            return key, certificate
        logger.warning("the local CA in %s expires soon: replacing it", cert_path)
    key, certificate = generate_ca(f"Passage local CA {hostname}".strip(), now)
    replace_file(key_path, key_to_pem(key), PRIVATE_FILE_MODE)
    replace_file(cert_path, _certificate_pem(certificate), PUBLIC_FILE_MODE)
    logger.info("created the local CA %s", cert_path)
    return key, certificate


def _load_ca(
    cert_path: Path, key_path: Path
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    try:
        chain, key = load_key_pair(cert_path, key_path)
    except TlsMaterialError as exc:
        raise DataDirError(
            f"the local CA cannot be used: "
            f"{cert_path if exc.which == 'cert' else key_path}: {exc.message}; "
            f"delete {cert_path} to create a new CA "
            "(clients that trusted the old one must then trust the new one)"
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise DataDirError(f"{key_path}: expected an EC private key")
    return key, chain[0]


def _server_certificate_problem(
    root: Path, ca_certificate: x509.Certificate, names: ServerNames, now: datetime.datetime
) -> str | None:
    """Why the stored server certificate must be re-issued, or None when it is good."""
    cert_path, key_path = root / SERVER_CERT_FILE, root / SERVER_KEY_FILE
    if not cert_path.exists():
        return "first start"
    try:
        chain, _ = load_key_pair(cert_path, key_path)
    except TlsMaterialError:
        return "unreadable"
    certificate = chain[0]
    problems = (
        (not issued_by(certificate, ca_certificate), "new CA"),
        (certificate.not_valid_after_utc - now <= RENEW_BEFORE, "expiring"),
        (not certificate_covers(certificate, names), "new addresses"),
    )
    return next((reason for failed, reason in problems if failed), None)


def _certificate_pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)
