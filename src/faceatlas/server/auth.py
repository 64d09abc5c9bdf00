"""API keys on every /v1 route: ``Authorization: Bearer fa_...`` (or ``X-API-Key: fa_...``).

Scopes are ordered, read < write < admin. A missing or unknown key is 401, a key without the
scope 403, a key over its rate 429 with Retry-After. With ``FACEATLAS_AUTH=false`` (a
single-user machine) every request acts as an anonymous admin, still rate limited as one client.

Seeing private people is a permission apart from the scope (``Principal.private``): a key made
with it (``faceatlas keys create NAME --private``) or an admin key has it; with auth off, the
anonymous admin has it only when ``FACEATLAS_SHOW_PRIVATE=true`` (the UI on a shared screen shows
no private person by default). Each request's principal is kept in ``request.state.principal``
for ``faceatlas.server.privacy``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from faceatlas.server.errors import ServiceError
from faceatlas.server.state import keys_of, limiter_of, metrics_of, settings_of

bearer = HTTPBearer(auto_error=False, description="an API key: `faceatlas keys create NAME --scope read`")
header_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="the same key, as a header")


@dataclass(frozen=True)
class Principal:
    key_id: str  # "anonymous" when auth is off
    name: str
    scope: str
    private: bool = False  # may see private people (faceatlas.server.privacy)


def require(scope: str, public: Callable[[Any], bool] | None = None):
    """A dependency admitting requests whose key has ``scope`` (or a higher one); with ``public``,
    every request when ``public(settings)`` says so (e.g. FACEATLAS_METRICS_PUBLIC)."""

    def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
        api_key: Annotated[str | None, Depends(header_key)],
    ) -> Principal:
        from faceatlas.server.keys import allows

        settings = settings_of(request)
        if public is not None and public(settings):
            request.state.principal = Principal("anonymous", "anonymous", "read")
            return request.state.principal
        if not settings.auth:
            principal = Principal("anonymous", "anonymous", "admin", private=settings.show_private)
        else:
            token = credentials.credentials if credentials is not None else api_key
            if not token:
                raise ServiceError(
                    401, "unauthorized", "an API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key'"
                )
            key = keys_of(request).verify(token)
            if key is None:
                raise ServiceError(401, "unauthorized", "the API key is not valid (unknown, malformed or revoked)")
            principal = Principal(key.key_id, key.name, key.scope, private=key.sees_private)
            if not allows(key.scope, scope):
                raise ServiceError(403, "forbidden", f"this key has scope {key.scope!r}; this call needs {scope!r}")
        wait = limiter_of(request).check(principal.key_id)
        if wait > 0:
            metrics_of(request).refused.labels("rate_limit").inc()
            raise ServiceError(
                429,
                "rate_limited",
                f"rate limit of {settings.rate_limit_per_minute} requests a minute reached; "
                f"retry in {math.ceil(wait)} s",
                retry_after=math.ceil(wait),
            )
        request.state.principal = principal
        return principal

    return dependency


# what a route declares to need (``def route(_: Reader, ...)``)
Reader = Annotated[Principal, Depends(require("read"))]
Writer = Annotated[Principal, Depends(require("write"))]
Admin = Annotated[Principal, Depends(require("admin"))]
