"""Checks of the topology's `tls` section that need its files: they exist, parse, match and chain.

Run by the loader with every other check, before any side effect, each error naming its YAML path.
"""

from __future__ import annotations

from pathlib import Path

from streamctl.config.model import Topology
from streamctl.tls import certs
from streamctl.tls.material import GATEWAY


def _read(base: Path, value: str, where: str, errors: list[str]) -> bytes | None:
    path = Path(value).expanduser()
    path = path if path.is_absolute() else base / path
    try:
        return path.read_bytes()
    except OSError as exc:
        errors.append(f"{where}: cannot read {path}: {exc.strerror}")
        return None


def _cert(data: bytes, where: str, errors: list[str]) -> bytes | None:
    try:
        certs.load_cert(data)
    except ValueError:
        errors.append(f"{where}: not a PEM certificate")
        return None
    return data


def _matches(cert: bytes, key: bytes, where: str, errors: list[str]) -> None:
    try:
        if not certs.key_matches(cert, key):
            errors.append(f"{where}: this key does not belong to the certificate")
    except (ValueError, TypeError):
        errors.append(f"{where}: not an unencrypted PEM private key")


def tls_errors(t: Topology, base: Path) -> list[str]:
    """Every problem with the bring-your-own CA and certificates; none when TLS is off or all generated."""
    spec = t.tls
    if not spec.enabled:
        return []
    errors: list[str] = []
    ca: bytes | None = None
    if spec.ca_key and not spec.ca_cert:
        errors.append("tls.ca_key: a CA key needs its certificate in tls.ca_cert")
    if spec.ca_cert:
        raw = _read(base, spec.ca_cert, "tls.ca_cert", errors)
        ca = _cert(raw, "tls.ca_cert", errors) if raw is not None else None
        if ca is not None and not certs.is_ca(ca):
            errors.append("tls.ca_cert: this certificate is not a CA (basicConstraints CA:TRUE is missing)")
        if ca is not None and spec.ca_key:
            key = _read(base, spec.ca_key, "tls.ca_key", errors)
            if key is not None:
                _matches(ca, key, "tls.ca_key", errors)
    known = {n.name for n in t.nodes()} | {GATEWAY}
    for name, pair in spec.certificates.items():
        where = f"tls.certificates.{name}"
        if name not in known:
            errors.append(f"{where}: {name!r} is not a node of this topology (known: {', '.join(sorted(known))})")
            continue
        if not spec.ca_cert:
            errors.append(f"{where}: a certificate of your own needs the CA that signed it in tls.ca_cert")
        raw = _read(base, pair.cert, f"{where}.cert", errors)
        cert = _cert(raw, f"{where}.cert", errors) if raw is not None else None
        key = _read(base, pair.key, f"{where}.key", errors)
        if cert is not None and key is not None:
            _matches(cert, key, f"{where}.key", errors)
        if cert is not None and ca is not None and not certs.signed_by(cert, ca):
            errors.append(f"{where}.cert: not signed by the CA in tls.ca_cert")
    if spec.ca_cert and not spec.ca_key:
        unsigned = [n.name for n in t.nodes() if n.name not in spec.certificates]
        if t.gateway.enabled and t.gateway.tls and GATEWAY not in spec.certificates:
            unsigned.append(GATEWAY)
        if unsigned:
            errors.append(f"tls.ca_key: without the CA's key streamctl cannot issue certificates for "
                          f"{', '.join(unsigned)} (give tls.ca_key, or tls.certificates for each)")
    return errors
