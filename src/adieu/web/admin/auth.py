"""Who is calling: bearer API keys, the failed-attempt limit, and the JSON errors.

Every ``/api/v1`` error, whatever raised it, leaves as one shape:
``{"error": {"status": …, "code": …, "message": …}}``.

The failed-attempt limit counts wrong keys per client address (an IPv6
client by its /64), but a right key is always let in: behind a shared
address (a NAT, an office) one person's typing mistakes must not lock
everyone out. Past the limit a wrong key is answered slowly, with a 429.
The client address is the connection's peer, or, from a proxy named in
``ADIEU_TRUSTED_PROXIES``, the address that proxy forwarded (``web.app``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections import deque

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from adieu.i18n import admin_text as _
from adieu.ledger.apikeys import ApiKey, ApiKeys
from adieu.web.errors import ApiError

#: Wrong keys per client address and window after which wrong keys are slowed (429).
FAILURE_LIMIT = 10
FAILURE_WINDOW_S = 60.0
#: How long a wrong key waits for its answer once its client is past the limit.
SLOW_DOWN_S = 1.0
#: A verified key is trusted this long without asking the database again.
_CACHE_S = 5.0


class FailureLimiter:
    """Counts failed sign-ins per client address in a sliding window."""

    def __init__(
        self,
        limit: int = FAILURE_LIMIT,
        window: float = FAILURE_WINDOW_S,
        slow_down: float = SLOW_DOWN_S,
    ) -> None:
        self.limit = limit
        self.window = window
        self.slow_down = slow_down
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, client: str) -> deque[float]:
        now = time.monotonic()
        seen = self._failures.get(client)
        if seen is None:
            return deque()
        while seen and now - seen[0] > self.window:
            seen.popleft()
        if not seen:
            del self._failures[client]
        return seen

    def retry_after(self, client: str) -> int | None:
        """Seconds to wait, when this client has failed too often."""
        seen = self._recent(_group(client))
        if len(seen) < self.limit:
            return None
        return max(1, int(self.window - (time.monotonic() - seen[0])) + 1)

    def failed(self, client: str) -> None:
        if len(self._failures) > 100_000:  # bounded memory under a spray of addresses
            self._failures.clear()
        self._failures.setdefault(_group(client), deque()).append(time.monotonic())


def _group(client: str) -> str:
    """What failures are counted by: the address, or an IPv6 address's /64
    (one subscriber's whole block, which it can walk through at will)."""
    if ":" not in client:
        return client
    try:
        address = ipaddress.IPv6Address(client)
    except ValueError:
        return client
    if address.ipv4_mapped is not None:  # an IPv4 client on a dual-stack socket
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network(f"{address}/64", strict=False))


class Authenticator:
    def __init__(self, keys: ApiKeys, limiter: FailureLimiter | None = None) -> None:
        self.keys = keys
        self.limiter = limiter or FailureLimiter()
        self._cache: dict[str, tuple[float, ApiKey]] = {}

    async def verify(self, secret: str | None, client: str) -> ApiKey:
        """The key behind ``secret``, or an ``ApiError``: 401, or 429 (after a
        pause) for a wrong key from a client that has failed too often lately.
        A right key is let in whatever its client did before."""
        if not secret:
            raise ApiError(
                401,
                "unauthorized",
                _("This needs an API key: send Authorization: Bearer adieu_…"),
                headers={"WWW-Authenticate": "Bearer"},
            )
        cached = self._cache.get(secret)
        if cached is not None and time.monotonic() - cached[0] < _CACHE_S:
            return cached[1]
        key = await run_in_threadpool(self.keys.verify, secret)
        if key is None:
            wait = self.limiter.retry_after(client)
            self.limiter.failed(client)
            if wait is not None:
                await asyncio.sleep(self.limiter.slow_down)
                raise ApiError(
                    429,
                    "too_many_failures",
                    _("Too many attempts with a wrong API key. Please wait a little."),
                    headers={"Retry-After": str(wait)},
                )
            raise ApiError(
                401,
                "unauthorized",
                _("This API key is not valid (or was revoked)."),
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        if len(self._cache) > 1000:
            self._cache.clear()
        self._cache[secret] = (time.monotonic(), key)
        return key


def client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None
