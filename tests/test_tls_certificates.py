"""Certificates checked against a real TLS server that the test starts with generated certificates."""

import datetime
import socket
import ssl
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from runbook.checks import tls
from runbook.config import TlsEndpoint

NOW = datetime.datetime.now(datetime.timezone.utc)


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


@pytest.fixture(scope="module")
def authority(tmp_path_factory):
    """A test CA: its key, certificate, and the PEM file clients trust."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(_name("runbook test CA")).issuer_name(_name("runbook test CA"))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=400)).not_valid_after(NOW + datetime.timedelta(days=400))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = tmp_path_factory.mktemp("ca") / "ca.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert, pem


@pytest.fixture
def tls_server(authority, tmp_path):
    """Start a TLS server for `localhost` whose certificate is valid from `start` to `end` days from now."""
    ca_key, ca_cert, _ = authority
    servers = []

    def start(start_days: int, end_days: int) -> int:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder().subject_name(_name("localhost")).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW + datetime.timedelta(days=start_days))
            .not_valid_after(NOW + datetime.timedelta(days=end_days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (tmp_path / "key.pem").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
        server = socket.create_server(("127.0.0.1", 0))
        servers.append(server)

        def serve():
            while True:
                try:
                    conn, _ = server.accept()
                except OSError:
                    return
                try:
                    with context.wrap_socket(conn, server_side=True) as tls_conn:
                        tls_conn.recv(1)
                except (OSError, ssl.SSLError):
                    pass

        threading.Thread(target=serve, daemon=True).start()
        return server.getsockname()[1]

    yield start
    for server in servers:
        server.close()


def _endpoint(port: int, authority) -> TlsEndpoint:
    return TlsEndpoint(host="127.0.0.1", port=port, server_name="localhost", ca_file=authority[2])


def test_expired_certificate_fails_with_its_expiry_date(tls_server, authority):
    port = tls_server(-30, -1)
    finding = tls.check(_endpoint(port, authority), min_days=14, timeout=5)
    assert not finding.ok
    assert "certificate has expired" in finding.detail and "expires" in finding.detail


def test_certificate_expiring_sooner_than_required_fails(tls_server, authority):
    port = tls_server(-1, 10)
    finding = tls.check(_endpoint(port, authority), min_days=21, timeout=5)
    assert not finding.ok
    assert "in 9 days, fewer than the required 21" in finding.detail


def test_valid_certificate_passes_with_its_days_left(tls_server, authority):
    port = tls_server(-1, 90)
    finding = tls.check(_endpoint(port, authority), min_days=21, timeout=5)
    assert finding.ok, finding.detail
    assert "in 89 days" in finding.detail


def test_certificate_from_an_untrusted_issuer_fails(tls_server, authority, tmp_path):
    port = tls_server(-1, 90)
    finding = tls.check(TlsEndpoint(host="127.0.0.1", port=port, server_name="localhost"), min_days=1, timeout=5)
    assert not finding.ok and "unable to get local issuer certificate" in finding.detail


def test_expired_certificate_fails_the_preflight_gate(tls_server, authority, make_env, invoke):
    port = tls_server(-30, -1)
    env = make_env({"tls": [{"host": "127.0.0.1", "port": port, "server_name": "localhost", "ca_file": str(authority[2])}]})
    result = invoke("preflight", "--env", str(env))
    assert result.code == 1, result.output
    found = result.scenario("Step 5 - SSL certificates are valid")
    assert found["outcome"] == "failed" and f"TLS endpoint 127.0.0.1:{port}: certificate not valid" in found["message"]
