"""The live OpenAPI schema drives the tests: schemathesis fuzzes every operation (no 5xx other
than a deliberate 503), and every operation that needs a key refuses a missing or wrong one."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np
import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from faceatlas.models.cards import DLIB_RESNET_CARD
from faceatlas.server.app import create_app
from faceatlas.server.settings import Settings
from faceatlas.types import Box, Face, Landmarks, Quality

PUBLIC = {("GET", "/healthz"), ("GET", "/readyz")}


class OneFace:
    """Any image has one face whose embedding follows its mean colour: fast and deterministic."""

    class embedder:
        card = DLIB_RESNET_CARD
        dim = 128

    def analyze(self, image):
        seed = int(np.asarray(image, dtype=np.float64).mean() * 1000)
        vector = np.random.default_rng(seed).normal(size=128).astype(np.float32)
        vector /= np.linalg.norm(vector)
        h, w = np.asarray(image).shape[:2]
        box = Box(0, 0, max(1, w // 2), max(1, h // 2))
        return [Face(box, 0.99, Landmarks(np.zeros((5, 2))), None, Quality(0.9, 1, 1, 1, 1, 1), vector)]


def build_app():
    data_dir = Path(tempfile.mkdtemp(prefix="faceatlas-fuzz-"))
    photos = data_dir / "photos"
    photos.mkdir()
    app = create_app(
        # no streams: a generated URL must never make the service connect anywhere
        Settings(data_dir=data_dir, rate_limit_per_minute=0, photo_roots=[photos], max_upload_mb=2, max_streams=0),
        analyzer_factory=OneFace,
    )
    return app, app.state.keys.create("fuzz", "admin")[1]


APP, TOKEN = build_app()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_operation_answers_with_a_server_error(case):
    response = case.call(headers={"Authorization": f"Bearer {TOKEN}"})
    if response.status_code == 503:  # a deliberate refusal (overload, shutting down) is allowed
        assert "retry-after" in {name.lower() for name in response.headers}
        return
    case.validate_response(response, checks=[not_a_server_error])
    assert "Traceback" not in response.text


def operations() -> list[tuple[str, str]]:
    found = []
    for path, item in APP.openapi()["paths"].items():
        for method in item:
            found.append((method.upper(), path))
    return sorted(found)


@pytest.mark.parametrize(("method", "path"), operations())
def test_every_operation_refuses_a_missing_or_wrong_key(method, path):
    from fastapi.testclient import TestClient

    url = re.sub(r"\{[^}]+\}", "1", path)
    with TestClient(APP, raise_server_exceptions=False) as client:
        missing = client.request(method, url)
        wrong = client.request(method, url, headers={"Authorization": "Bearer fa_12345678_" + "x" * 43})
    if (method, path) in PUBLIC:
        assert missing.status_code == 200 or missing.status_code == 503
        return
    assert missing.status_code == 401, (method, path, missing.text)
    assert wrong.status_code == 401, (method, path, wrong.text)


def test_the_schema_names_the_key_scheme_on_every_protected_operation():
    spec = APP.openapi()
    for method, path in operations():
        if (method, path) in PUBLIC or path == "/metrics":
            continue
        operation = spec["paths"][path][method.lower()]
        assert operation.get("security"), f"{method} {path} does not declare the API key in the schema"
