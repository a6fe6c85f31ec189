"""The cluster CA and node certificates: generated once, keys 0600, reissued when names change; and the
`tls` section's checks (bring-your-own files validated with their YAML paths)."""

from __future__ import annotations

import ssl
import stat
from pathlib import Path

import pytest
import yaml

from streamctl.config.load import load_topology, parse_topology
from streamctl.errors import ConfigError
from streamctl.tls import certs
from streamctl.tls.material import ClusterTls, node_names


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_ca_and_node_certificate_are_created_once_with_private_keys_0600(tmp_path: Path) -> None:
    t = parse_topology({"cluster": "c1"})
    tls = ClusterTls(t, tmp_path, tmp_path)
    node = t.node("coordinator")
    assert node is not None
    assert tls.current(node.name, node_names(t, node)) is None
    first = tls.for_node(node)
    assert _mode(tls.ca_key_file) == 0o600 and _mode(tls.key_file("coordinator")) == 0o600
    assert _mode(tls.ca_file) == 0o644
    assert certs.signed_by(first.cert, first.ca) and certs.key_matches(first.cert, first.key)
    assert {"coordinator", "c1-coordinator", "localhost", "127.0.0.1"} <= certs.names_of(first.cert)
    again = ClusterTls(t, tmp_path, tmp_path).for_node(node)
    assert again == first  # nothing reissued
    assert tls.node_fingerprint(node) == first.fingerprint


def test_python_ssl_verifies_the_issued_certificate_by_name(tmp_path: Path) -> None:
    """The certificate chains to the CA and its names are what a verifying client checks."""
    t = parse_topology({})
    tls = ClusterTls(t, tmp_path, tmp_path)
    node = t.node("redis")
    assert node is not None
    pair = tls.for_node(node)
    (tmp_path / "srv.pem").write_bytes(pair.cert + pair.key)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "srv.pem")
    client = ssl.create_default_context(cafile=str(tls.ca_file))
    import socket
    import threading

    with socket.socket() as lsock:
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(1)
        port = lsock.getsockname()[1]

        def serve() -> None:
            conn, _ = lsock.accept()
            try:
                with server.wrap_socket(conn, server_side=True) as s:
                    s.recv(1)
            except (ssl.SSLError, OSError):
                pass

        th = threading.Thread(target=serve)
        th.start()
        with socket.create_connection(("127.0.0.1", port)) as raw, \
                client.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.send(b"x")
        th.join()
        # A name the certificate does not carry fails verification.
        th = threading.Thread(target=serve)
        th.start()
        with pytest.raises(ssl.SSLCertVerificationError), socket.create_connection(("127.0.0.1", port)) as raw:
            client.wrap_socket(raw, server_hostname="elsewhere.example")
        th.join()


def test_changed_names_reissue_and_a_new_ca_reissues_everything(tmp_path: Path) -> None:
    t = parse_topology({"cluster": "c1"})
    node = t.node("coordinator")
    assert node is not None
    first = ClusterTls(t, tmp_path, tmp_path).for_node(node)
    renamed = parse_topology({"cluster": "c1", "metadata": {"coordinator": {"bind": "127.0.0.3"}}})
    rnode = renamed.node("coordinator")
    assert rnode is not None
    tls2 = ClusterTls(renamed, tmp_path, tmp_path)
    assert tls2.node_fingerprint(rnode).startswith("reissue:")
    second = tls2.for_node(rnode)
    assert second.cert != first.cert and "127.0.0.3" in certs.names_of(second.cert)
    assert second.ca == first.ca
    # Another CA (bring your own): every node certificate is reissued under it.
    own = certs.new_ca("mine")
    (tmp_path / "ca.pem").write_bytes(own.cert)
    (tmp_path / "ca.key").write_bytes(own.key)
    byo = parse_topology({"cluster": "c1", "metadata": {"coordinator": {"bind": "127.0.0.3"}},
                          "tls": {"ca_cert": "ca.pem", "ca_key": "ca.key"}}, base=tmp_path)
    third = ClusterTls(byo, tmp_path, tmp_path).for_node(rnode)
    assert third.ca == own.cert and certs.signed_by(third.cert, own.cert)
    assert (tmp_path / "tls" / "ca.crt").read_bytes() == own.cert


def test_tls_switch_and_bring_your_own_errors_name_their_yaml_paths(tmp_path: Path) -> None:
    assert parse_topology({"tls": False}).tls.enabled is False
    assert parse_topology({}).tls.enabled is True
    own = certs.new_ca("mine")
    other = certs.new_ca("other")
    (tmp_path / "ca.pem").write_bytes(own.cert)
    (tmp_path / "other.key").write_bytes(other.key)
    stranger = certs.issue_server(other, "redis", {"redis"})
    (tmp_path / "redis.crt").write_bytes(stranger.cert)
    (tmp_path / "redis.key").write_bytes(stranger.key)
    data = {"tls": {"ca_cert": "ca.pem", "ca_key": "other.key",
                    "certificates": {"redis": {"cert": "redis.crt", "key": "missing.key"},
                                     "nosuch": {"cert": "redis.crt", "key": "redis.key"}}}}
    path = tmp_path / "topology.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as err:
        load_topology(path)
    details = "\n".join(err.value.details)
    assert "tls.ca_key: this key does not belong to the certificate" in details
    assert "tls.certificates.redis.key: cannot read" in details
    assert "tls.certificates.redis.cert: not signed by the CA in tls.ca_cert" in details
    assert "tls.certificates.nosuch: 'nosuch' is not a node" in details
    # A CA certificate without its key must come with a certificate for every node.
    path.write_text(yaml.safe_dump({"tls": {"ca_cert": "ca.pem"}}))
    with pytest.raises(ConfigError) as err:
        load_topology(path)
    assert any("tls.ca_key: without the CA's key" in d for d in err.value.details)
    # Off means off: the same broken section is not checked.
    path.write_text(yaml.safe_dump({"tls": {"enabled": False, "ca_cert": "nowhere.pem"}}))
    assert load_topology(path).tls.enabled is False
