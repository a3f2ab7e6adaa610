"""AWS Signature Version 4 for the few SES API calls Adieu makes.

Written from AWS's "Create a signed AWS API request" documentation: the
canonical request (method, URI-encoded path, sorted query, lower-case signed
headers, the body's SHA-256), the string to sign (``AWS4-HMAC-SHA256``, the
time, the credential scope ``date/region/service/aws4_request``, the canonical
request's SHA-256) and the key derived by HMAC-SHA256 from ``AWS4`` + secret
through the date, region, service and ``aws4_request``. botocore does this
too, but it is a 17 MB wheel (2,000 files, 21 MB installed, and three more
dependencies) for four calls.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key: str
    secret_key: str
    session_token: str | None = None

    @classmethod
    def from_environment(cls) -> Credentials | None:
        """The usual environment variables (``AWS_ACCESS_KEY_ID``, …); None when unset."""
        key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
        if not key or not secret:
            return None
        return cls(key, secret, os.environ.get("AWS_SESSION_TOKEN") or None)


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = _hmac(("AWS4" + secret).encode(), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


def canonical_query(query: str) -> str:
    """Each name and value URI-encoded (RFC 3986 unreserved kept), sorted."""
    pairs: list[tuple[str, str]] = []
    for part in filter(None, query.split("&")):
        name, _, value = part.partition("=")
        pairs.append((_encode(_unquote(name)), _encode(_unquote(value))))
    return "&".join(f"{n}={v}" for n, v in sorted(pairs))


def _unquote(text: str) -> str:
    from urllib.parse import unquote

    return unquote(text)


def _encode(text: str) -> str:
    return quote(text, safe="-_.~")


def canonical_request(
    method: str, url: str, headers: dict[str, str], payload_hash: str
) -> tuple[str, str]:
    """The canonical request and its signed-headers list. ``url``'s path must
    already be URI-encoded as it is sent (each segment once)."""
    parts = urlsplit(url)
    names = sorted(headers, key=str.lower)
    canonical_headers = "".join(
        f"{n.lower()}:{' '.join(headers[n].strip().split())}\n" for n in names
    )
    signed = ";".join(n.lower() for n in names)
    request = "\n".join(
        [
            method,
            # Every service but S3 encodes the (already encoded) path once more.
            quote(parts.path or "/", safe="/-_.~"),
            canonical_query(parts.query),
            canonical_headers,
            signed,
            payload_hash,
        ]
    )
    return request, signed


def sign(
    method: str,
    url: str,
    body: bytes,
    credentials: Credentials,
    region: str,
    service: str = "ses",
    now: datetime | None = None,
) -> dict[str, str]:
    """The headers to send (``Host``, ``X-Amz-Date``, ``X-Amz-Content-Sha256``,
    ``X-Amz-Security-Token`` with a session token, ``Authorization``)."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    date = stamp[:8]
    payload_hash = hashlib.sha256(body).hexdigest()
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None and parts.port not in (80, 443):
        host = f"{host}:{parts.port}"
    headers = {"Host": host, "X-Amz-Date": stamp, "X-Amz-Content-Sha256": payload_hash}
    if credentials.session_token:
        headers["X-Amz-Security-Token"] = credentials.session_token
    request, signed = canonical_request(method, url, headers, payload_hash)
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join([ALGORITHM, stamp, scope, hashlib.sha256(request.encode()).hexdigest()])
    signature = hmac.new(
        signing_key(credentials.secret_key, date, region, service),
        to_sign.encode(),
        hashlib.sha256,
    ).hexdigest()
    headers["Authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key}/{scope}, "
        f"SignedHeaders={signed}, Signature={signature}"
    )
    return headers
