"""Health, readiness, metrics, and API key administration."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

import faceatlas
from faceatlas.server.auth import Admin, Principal, require
from faceatlas.server.errors import ServiceError
from faceatlas.server.schemas import Health, KeyCreated, KeyCreateRequest, KeyOut, KeysResponse, Readiness
from faceatlas.server.state import engine_of, keys_of, metrics_of

router = APIRouter(tags=["system"])


@router.get("/healthz", response_model=Health, summary="Liveness: the process answers")
def health(request: Request) -> Health:
    """Also names the models the service runs (loaded or not yet)."""
    detector, embedder = engine_of(request).bound_models()
    return Health(status="ok", version=faceatlas.__version__, detector=detector, embedder=embedder)


@router.get("/readyz", response_model=Readiness, summary="Readiness: models loaded and gallery open")
def ready(request: Request, response: Response, load: bool = False) -> Readiness:
    """``?load=true`` loads the models now (a start-up probe can pay the load before traffic)."""
    engine = engine_of(request)
    detail = "ok"
    gallery_ok = False
    try:
        engine.gallery().store.version()
        gallery_ok = True
    except Exception as exc:  # noqa: BLE001 -- readiness reports any failure, it does not raise
        detail = f"gallery: {type(exc).__name__}"
    if load and gallery_ok:
        try:
            engine.load()
        except Exception as exc:  # noqa: BLE001 -- as above
            detail = f"models: {type(exc).__name__}"
    is_ready = gallery_ok and detail == "ok"
    if not is_ready:
        response.status_code = 503
    return Readiness(ready=is_ready, model_loaded=engine.loaded, gallery=gallery_ok, detail=detail)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
def metrics(
    request: Request,
    _: Annotated[Principal, Depends(require("admin", public=lambda settings: settings.metrics_public))],
) -> Response:
    """Needs an admin key, unless FACEATLAS_METRICS_PUBLIC is set (a scraper on a private network)."""
    return Response(metrics_of(request).render(engine_of(request)), media_type="text/plain; version=0.0.4")


def _key_out(key) -> KeyOut:
    return KeyOut.model_validate(key, from_attributes=True)  # an ApiKey's fields, by name


@router.get("/v1/keys", response_model=KeysResponse, tags=["keys"], summary="API keys (no secrets)")
def list_keys(request: Request, _: Admin) -> KeysResponse:
    return KeysResponse(keys=[_key_out(k) for k in keys_of(request).list()])


@router.post("/v1/keys", response_model=KeyCreated, status_code=201, tags=["keys"], summary="Create an API key")
def create_key(request: Request, _: Admin, body: KeyCreateRequest) -> KeyCreated:
    key, token = keys_of(request).create(body.name, body.scope, body.private)
    return KeyCreated(**_key_out(key).model_dump(), token=token)


@router.delete("/v1/keys/{key_id}", status_code=204, tags=["keys"], summary="Revoke an API key")
def revoke_key(request: Request, principal: Admin, key_id: str) -> None:
    if not keys_of(request).revoke(key_id):
        raise ServiceError(404, "not_found", f"no active key with id {key_id!r}")
