"""The photo collection over HTTP: clusters (people found in photos), photos, faces, corrections, jobs."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1", tags=["collection"])
