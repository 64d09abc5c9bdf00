"""Typed access to what one app shares (``app.state``): the routes' dependencies.

Starlette's ``app.state`` is an attribute bag, typed ``Any``; reading it through these functions
gives every route the real types, so a typo or a wrong call is a type error, not a 500.
``create_app`` sets each attribute once (the job manager anew each time the app serves).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Request

if TYPE_CHECKING:
    from faceatlas.collection.search import FaceSearcherCache
    from faceatlas.server.engine import Engine
    from faceatlas.server.jobs import JobManager
    from faceatlas.server.keys import KeyStore
    from faceatlas.server.metrics import Metrics
    from faceatlas.server.ratelimit import RateLimiter
    from faceatlas.server.settings import Settings


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def jobs_of(request: Request) -> JobManager:
    jobs: JobManager = request.app.state.jobs
    return jobs


def keys_of(request: Request) -> KeyStore:
    keys: KeyStore = request.app.state.keys
    return keys


def metrics_of(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


def limiter_of(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.app.state.limiter
    return limiter


def face_searchers_of(request: Request) -> FaceSearcherCache:
    """One face searcher per collection store (``POST /v1/search/faces``), kept between requests."""
    searchers: FaceSearcherCache = request.app.state.face_searchers
    return searchers
