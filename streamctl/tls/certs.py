"""Certificates as PEM bytes: a cluster CA, server certificates signed by it, and the facts we check.

Pure functions over the `cryptography` library (no files, no openssl processes): ECDSA P-256 keys, which
PostgreSQL, Redis, MongoDB and Python's ssl module all accept and which are fast to generate and use.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
SERVER_DAYS = 825  # what browsers and most TLS stacks accept for a leaf certificate
RENEW_WITHIN_DAYS = 30  # `up` reissues, and `verify` fails, when a certificate expires sooner


@dataclass(frozen=True)
class KeyPair:
    cert: bytes  # PEM
    key: bytes  # PEM (PKCS#8, unencrypted: servers start unattended)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def new_ca(cluster: str) -> KeyPair:
    """A self-signed CA for one cluster, allowed to sign server certificates only (path length 0)."""
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "streamctl"),
                      x509.NameAttribute(NameOID.COMMON_NAME, f"streamctl {cluster} cluster CA")])
    now = _now()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def issue_server(ca: KeyPair, common_name: str, names: Iterable[str]) -> KeyPair:
    """A server (and client) certificate for `names` (DNS names or IP addresses), signed by `ca`."""
    ca_cert = x509.load_pem_x509_certificate(ca.cert)
    ca_key = serialization.load_pem_private_key(ca.key, password=None)
    key = _new_key()
    now = _now()
    sans = [_general_name(n) for n in sorted(set(names))]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=SERVER_DAYS))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
                           critical=False)
            .sign(ca_key, hashes.SHA256()))  # type: ignore[arg-type]
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


# -- facts ----------------------------------------------------------------------------------------------
def load_cert(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def names_of(pem: bytes) -> set[str]:
    """The subject alternative names of a certificate, as strings."""
    try:
        ext = load_cert(pem).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {*ext.get_values_for_type(x509.DNSName), *(str(ip) for ip in ext.get_values_for_type(x509.IPAddress))}


def common_name(pem: bytes) -> str | None:
    """The subject's common name of a certificate, None when it has none or is no certificate."""
    try:
        found = load_cert(pem).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except ValueError:
        return None
    return str(found[0].value) if found else None


def expires(pem: bytes) -> dt.datetime:
    return load_cert(pem).not_valid_after_utc


def days_left(pem: bytes) -> float:
    return (expires(pem) - _now()).total_seconds() / 86400


def signed_by(cert_pem: bytes, ca_pem: bytes) -> bool:
    """True when `ca_pem` issued `cert_pem` (signature checked, not merely the issuer's name)."""
    cert, ca = load_cert(cert_pem), load_cert(ca_pem)
    if cert.issuer != ca.subject:
        return False
    try:
        cert.verify_directly_issued_by(ca)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def key_matches(cert_pem: bytes, key_pem: bytes) -> bool:
    """True when the private key belongs to the certificate."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    return bool(key.public_key().public_bytes(serialization.Encoding.PEM, spki)
                == load_cert(cert_pem).public_key().public_bytes(serialization.Encoding.PEM, spki))


def is_ca(pem: bytes) -> bool:
    try:
        return bool(load_cert(pem).extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def digest(*parts: bytes) -> str:
    """A short fingerprint of some PEM blobs (node definitions change when their certificates do)."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.hexdigest()[:16]

