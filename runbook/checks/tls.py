"""TLS certificates of the environment's endpoints: verified chain and name, days until expiry."""

import base64
import hashlib
import socket
import ssl

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from runbook.config import Environment, TlsEndpoint
from runbook.findings import Finding, NotConfigured
from runbook.times import utc_now


def _certificate(endpoint: TlsEndpoint, verify: bool, timeout: float) -> x509.Certificate:
    context = ssl.create_default_context(cafile=str(endpoint.ca_file) if endpoint.ca_file else None)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    name = endpoint.server_name or endpoint.host
    with socket.create_connection((endpoint.host, endpoint.port), timeout=timeout) as raw:
        with context.wrap_socket(raw, server_hostname=name) as tls:
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))


def key_pin(endpoint: TlsEndpoint, timeout: float) -> str:
    """The base64 SHA-256 of the endpoint's certificate's public key (SubjectPublicKeyInfo), once the
    certificate is verified against its `ca_file` and name: what Chromium's
    `--ignore-certificate-errors-spki-list` takes. An invalid certificate raises `ssl.SSLError`."""
    key = _certificate(endpoint, verify=True, timeout=timeout).public_key()
    spki = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def check(endpoint: TlsEndpoint, min_days: int, timeout: float = 10) -> Finding:
    subject = f"TLS endpoint {endpoint.host}:{endpoint.port}"
    try:
        cert = _certificate(endpoint, verify=True, timeout=timeout)
    except ssl.SSLCertVerificationError as e:
        detail = f"certificate not valid: {e.verify_message}"
        try:
            expires = _certificate(endpoint, verify=False, timeout=timeout).not_valid_after_utc
            detail += f" (expires {expires:%Y-%m-%d %H:%M} UTC)"
        except (OSError, ValueError):
            pass
        return Finding(subject, False, detail)
    except (OSError, ValueError) as e:
        return Finding(subject, False, f"no TLS handshake: {e}")
    expires = cert.not_valid_after_utc
    days = (expires - utc_now()).days
    detail = f"certificate for {cert.subject.rfc4514_string()} expires {expires:%Y-%m-%d} UTC, in {days} days"
    if days < min_days:
        return Finding(subject, False, f"{detail}, fewer than the required {min_days}")
    return Finding(subject, True, f"{detail} (required at least {min_days})")


def certificates(env: Environment) -> list[Finding]:
    """Every configured TLS endpoint's certificate is valid for at least `thresholds.tls_min_days`."""
    if not env.tls:
        raise NotConfigured(f"no TLS endpoint is configured for {env.name}")
    return [check(endpoint, env.thresholds.tls_min_days) for endpoint in env.tls]
