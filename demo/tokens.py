"""Passwords (PBKDF2-SHA256) and login tokens (HMAC-SHA256 signed, with an expiry)."""

import base64
import hashlib
import hmac
import secrets
import time

TOKEN_TTL_SECONDS = 3600
PBKDF2_ITERATIONS = 600_000


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, PBKDF2_ITERATIONS)
    return f"pbkdf2_sha256${PBKDF2_ITERATIONS}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        algorithm, iterations, salt, digest = stored.split("$")
        expected = bytes.fromhex(digest)
        candidate = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), int(iterations))
    except ValueError:
        return False
    return algorithm == "pbkdf2_sha256" and hmac.compare_digest(candidate, expected)


def sign(payload: str, secret: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def issue_token(username: str, secret: str) -> str:
    """``base64url(username:expiry).hmac_sha256_hex``, valid for TOKEN_TTL_SECONDS."""
    payload = f"{username}:{int(time.time()) + TOKEN_TTL_SECONDS}"
    return f"{base64.urlsafe_b64encode(payload.encode()).decode()}.{sign(payload, secret)}"


def verify_token(token: str, secret: str) -> str | None:
    """The username a valid, unexpired token was issued to, else None."""
    encoded, _, signature = token.rpartition(".")
    try:
        payload = base64.urlsafe_b64decode(encoded).decode()
    except ValueError:
        return None
    if not hmac.compare_digest(signature.encode(), sign(payload, secret).encode()):
        return None
    username, _, expiry = payload.rpartition(":")
    if not expiry.isdigit() or int(expiry) < time.time():
        return None
    return username
