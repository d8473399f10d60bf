"""Certificates and keys for the TLS listeners: a local CA, the server certificates
it issues, checks on certificates the operator brings, and ``ssl`` contexts.

Everything here works on values and file paths; deciding *when* to issue a
certificate is :mod:`passage.datadir`'s job.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "CA_VALIDITY",
    "SERVER_VALIDITY",
    "ServerNames",
    "TlsMaterialError",
    "certificate_covers",
    "client_ssl_context",
    "generate_ca",
    "issue_server_certificate",
    "issued_by",
    "key_to_pem",
    "load_key_pair",
    "server_ssl_context",
]

CA_VALIDITY = datetime.timedelta(days=3650)
"""How long the generated CA is valid (10 years)."""

SERVER_VALIDITY = datetime.timedelta(days=365)
"""How long a generated server certificate is valid; under the 825 days clients accept."""

CLOCK_SKEW = datetime.timedelta(hours=1)
"""How far back ``notBefore`` is set, for peers whose clocks run a little behind."""


class TlsMaterialError(Exception):
    """A certificate or key cannot be loaded, or the two do not belong together."""

    def __init__(self, message: str, which: str) -> None:
        super().__init__(message)
        self.message = message
        """What is wrong with the file, without its name."""
        self.which = which
        """The file at fault: "cert" or "key"."""


@dataclass(frozen=True, slots=True)
class ServerNames:
    """The names a server certificate must cover, as subject alternative names."""

    dns_names: tuple[str, ...]
    """Host names, e.g. ``localhost`` and the machine's name."""

    ip_addresses: tuple[str, ...]
    """IP addresses in canonical text form."""

    def subject_alternative_names(self) -> x509.SubjectAlternativeName:
        """The SAN extension listing every name."""
        general: list[x509.GeneralName] = [x509.DNSName(name) for name in self.dns_names]
        general += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in self.ip_addresses]
        return x509.SubjectAlternativeName(general)


def generate_ca(
    common_name: str, now: datetime.datetime
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A new self-signed EC P-256 CA that may sign server certificates only."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    public = key.public_key()
    certificate = (
        _builder(name, name, public, now, CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, certificate


def issue_server_certificate(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_certificate: x509.Certificate,
    names: ServerNames,
    now: datetime.datetime,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A new EC P-256 key and a server certificate for ``names`` signed by the CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    common_name = names.dns_names[0] if names.dns_names else names.ip_addresses[0]
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    ca_ski = ca_certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    certificate = (
        _builder(subject, ca_certificate.subject, key.public_key(), now, SERVER_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(names.subject_alternative_names(), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski.value),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, certificate


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    now: datetime.datetime,
    validity: datetime.timedelta,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + validity)
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def certificate_covers(certificate: x509.Certificate, names: ServerNames) -> bool:
    """Whether the certificate's SANs include every DNS name and IP address in ``names``."""
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    dns_names = {name.lower() for name in san.get_values_for_type(x509.DNSName)}
    ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    return {name.lower() for name in names.dns_names} <= dns_names and set(
        names.ip_addresses
    ) <= ips


def issued_by(certificate: x509.Certificate, ca_certificate: x509.Certificate) -> bool:
    """Whether the CA's key signed ``certificate`` (signature and issuer name checked)."""
    try:
        certificate.verify_directly_issued_by(ca_certificate)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def key_to_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """The key as unencrypted PKCS#8 PEM, for a file only its owner can read."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_key_pair(
    cert_path: Path, key_path: Path
) -> tuple[list[x509.Certificate], PrivateKeyTypes]:
    """Load a PEM certificate chain and its unencrypted private key, and check they match.

    Raises :class:`TlsMaterialError` saying which file (``which``: "cert" or "key")
    is unreadable, or that the key is not the one the first certificate was issued for.
    """
    try:
        chain = x509.load_pem_x509_certificates(cert_path.read_bytes())
    except OSError as exc:
        raise TlsMaterialError(f"cannot read it: {exc.strerror}", "cert") from None
    except ValueError:
        raise TlsMaterialError("not a PEM certificate", "cert") from None
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except OSError as exc:
        raise TlsMaterialError(f"cannot read it: {exc.strerror}", "key") from None
    except (ValueError, TypeError):
        raise TlsMaterialError("not an unencrypted PEM private key", "key") from None
    if _public_der(key.public_key()) != _public_der(chain[0].public_key()):
        raise TlsMaterialError(f"not the private key of the certificate in {cert_path}", "key")
    return chain, key


def _public_der(public_key: PublicKeyTypes) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def server_ssl_context(
    cert_path: Path, key_path: Path, alpn_protocols: Iterable[str] = ()
) -> ssl.SSLContext:
    """A server-side context presenting the chain in ``cert_path``: TLS 1.2 or later."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_path, key_path)
    except (OSError, ssl.SSLError) as exc:
        raise TlsMaterialError(
            f"{cert_path}, {key_path}: cannot load for TLS: {exc}", "cert"
        ) from None
    protocols = list(alpn_protocols)
    if protocols:
        context.set_alpn_protocols(protocols)
    return context


def client_ssl_context(ca_path: Path | None) -> ssl.SSLContext:
    """A client context trusting ``ca_path`` (e.g. the data directory's ``ca.pem``),
    or the system's store when None; host names are checked."""
    context = ssl.create_default_context(cafile=str(ca_path) if ca_path is not None else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
