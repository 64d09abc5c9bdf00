"""The REST service through the ASGI client: every endpoint, auth failures, bad uploads, limits.

Real models on images that ship with installed packages (Grace Hopper, the astronaut)."""

from __future__ import annotations

import io
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from faceatlas.models.cards import DLIB_RESNET_CARD
from faceatlas.server.app import create_app
from faceatlas.server.settings import Settings


def jpeg(pixels: np.ndarray, quality: int = 92) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=quality)
    return out.getvalue()


@pytest.fixture(scope="module")
def photos(grace_hopper, astronaut) -> dict[str, bytes]:
    mirrored = np.ascontiguousarray(grace_hopper[:, ::-1])  # the same person, another "photo"
    return {"hopper": jpeg(grace_hopper), "hopper2": jpeg(mirrored, 80), "astronaut": jpeg(astronaut)}


class Service:
    def __init__(self, client: TestClient, tokens: dict[str, str]) -> None:
        self.client, self.tokens = client, tokens

    def call(self, method: str, url: str, scope: str | None = "admin", **kwargs):
        headers = kwargs.pop("headers", {})
        if scope is not None:
            headers["Authorization"] = f"Bearer {self.tokens[scope]}"
        return self.client.request(method, url, headers=headers, **kwargs)


def make_service(tmp_path, analyzer, **settings) -> tuple[TestClient, dict[str, str]]:
    app = create_app(
        Settings(data_dir=tmp_path, rate_limit_per_minute=0, **settings), analyzer_factory=lambda: analyzer
    )
    tokens = {scope: app.state.keys.create(f"test {scope}", scope)[1] for scope in ("read", "write", "admin")}
    return TestClient(app, raise_server_exceptions=False), tokens


@pytest.fixture
def service(tmp_path, analyzer):
    client, tokens = make_service(tmp_path, analyzer)
    with client:
        yield Service(client, tokens)


def test_nothing_is_served_from_or_refers_to_the_internet(service):
    # FastAPI's /docs and /redoc load scripts from a CDN: they are off; the schema is served
    assert service.call("GET", "/docs", scope=None).status_code == 404
    assert service.call("GET", "/redoc", scope=None).status_code == 404
    assert service.call("GET", "/openapi.json", scope=None).json()["info"]["title"] == "faceatlas"
    page = service.call("GET", "/", scope=None).text
    assert "http://" not in page and "https://" not in page


def test_health_and_readiness_need_no_key(service):
    assert service.call("GET", "/healthz", scope=None).json()["status"] == "ok"
    ready = service.call("GET", "/readyz?load=true", scope=None)
    assert ready.status_code == 200 and ready.json() == {
        "ready": True,
        "model_loaded": True,
        "gallery": True,
        "detail": "ok",
    }


def test_analyze_returns_every_face_with_box_landmarks_pose_quality(service, photos):
    response = service.call("POST", "/v1/analyze", scope="read", files={"image": ("a.jpg", photos["hopper"])})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["image"]["width"] > 0 and len(body["faces"]) == 1
    face = body["faces"][0]
    x1, y1, x2, y2 = face["box"]
    assert 0 <= x1 < x2 <= body["image"]["width"] and 0 <= y1 < y2 <= body["image"]["height"]
    assert len(face["landmarks"]) == 5 and face["embedding"] is None
    assert set(face["pose"]) == {"yaw", "pitch", "roll"} and 0 <= face["quality"]["score"] <= 1
    with_vectors = service.call(
        "POST", "/v1/analyze?embeddings=true", scope="read", files={"image": ("a.png", photos["hopper"])}
    ).json()
    vector = np.array(with_vectors["faces"][0]["embedding"])
    assert vector.shape == (128,) and abs(np.linalg.norm(vector) - 1) < 1e-4


def test_enrol_identify_verify_rename_merge_delete(service, photos):
    enrolled = service.call(
        "POST",
        "/v1/people/Grace Hopper/faces",
        scope="write",
        files=[("images", ("hopper.jpg", photos["hopper"])), ("images", ("junk.jpg", b"not an image at all"))],
    )
    assert enrolled.status_code == 201, enrolled.text
    body = enrolled.json()
    assert len(body["added"]) == 1 and [s["source"] for s in body["skipped"]] == ["junk.jpg"]
    people = service.call("GET", "/v1/people", scope="read").json()["people"]
    assert [(p["name"], p["faces"]) for p in people] == [("Grace Hopper", 1)]

    known = service.call("POST", "/v1/identify", scope="read", files={"image": ("q.jpg", photos["hopper2"])}).json()
    assert known["results"][0]["person"] == "Grace Hopper"
    stranger = service.call(
        "POST", "/v1/identify", scope="read", files={"image": ("q.jpg", photos["astronaut"])}
    ).json()
    assert stranger["results"] and stranger["results"][0]["person"] is None  # "unknown" is an answer
    assert stranger["results"][0]["candidates"][0]["person"] == "Grace Hopper"

    same = service.call(
        "POST",
        "/v1/verify",
        scope="read",
        files={"image_a": ("a.jpg", photos["hopper2"])},
        data={"face_b": str(body["added"][0])},
    ).json()
    assert same["is_match"] and same["similarity"] > same["threshold"]
    different = service.call(
        "POST",
        "/v1/verify",
        scope="read",
        files={"image_a": ("a.jpg", photos["hopper"]), "image_b": ("b.jpg", photos["astronaut"])},
    ).json()
    assert not different["is_match"]

    faces = service.call("GET", "/v1/people/Grace Hopper/faces", scope="read").json()["faces"]
    assert [f["id"] for f in faces] == body["added"]
    assert service.call("PATCH", "/v1/people/Grace Hopper", scope="write", json={"name": "Grace"}).json()["name"] == (
        "Grace"
    )
    service.call("POST", "/v1/people/Eileen/faces", scope="write", files={"images": ("e.jpg", photos["astronaut"])})
    merged = service.call("POST", "/v1/people/Eileen/merge", scope="write", json={"into": "Grace"}).json()
    assert merged == {"name": "Grace", "faces": 2, "metadata": {}, "private": False}
    assert service.call("GET", "/v1/people/Eileen", scope="read").status_code == 404
    deleted = service.call("DELETE", "/v1/people/Grace", scope="write").json()
    assert deleted == {"deleted": "Grace", "faces": 2, "clusters": [], "kept": []}
    assert service.call("GET", "/v1/people", scope="read").json()["people"] == []
    gone = service.call("POST", "/v1/identify", scope="read", files={"image": ("q.jpg", photos["hopper2"])}).json()
    assert gone["results"][0]["person"] is None and gone["results"][0]["candidates"] == []


ENDPOINTS = [
    ("POST", "/v1/analyze", "read"),
    ("POST", "/v1/verify", "read"),
    ("POST", "/v1/identify", "read"),
    ("GET", "/v1/people", "read"),
    ("GET", "/v1/people/x", "read"),
    ("GET", "/v1/people/x/faces", "read"),
    ("POST", "/v1/people/x/faces", "write"),
    ("PATCH", "/v1/people/x", "write"),
    ("POST", "/v1/people/x/merge", "write"),
    ("DELETE", "/v1/people/x", "write"),
    ("DELETE", "/v1/faces/1", "write"),
    ("GET", "/v1/keys", "admin"),
    ("POST", "/v1/keys", "admin"),
    ("DELETE", "/v1/keys/abc", "admin"),
    ("GET", "/metrics", "admin"),
]


@pytest.mark.parametrize(("method", "url", "needs"), ENDPOINTS)
def test_every_endpoint_refuses_a_missing_wrong_or_weaker_key(service, method, url, needs):
    missing = service.call(method, url, scope=None)
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "unauthorized"
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    wrong = service.call(method, url, scope=None, headers={"Authorization": "Bearer fa_00000000_nope"})
    assert wrong.status_code == 401
    garbage = service.call(method, url, scope=None, headers={"X-API-Key": "x" * 5000})
    assert garbage.status_code == 401
    weaker = {"read": None, "write": "read", "admin": "write"}[needs]
    if weaker:
        refused = service.call(method, url, scope=weaker)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"


def test_bad_uploads_get_clear_errors(tmp_path, analyzer, photos, astronaut):
    client, tokens = make_service(tmp_path, analyzer, max_upload_mb=0.5, max_pixels=200_000)
    auth = {"Authorization": f"Bearer {tokens['read']}"}
    with client:

        def analyze(name, data, content_type="image/jpeg"):
            return client.post("/v1/analyze", headers=auth, files={"image": (name, data, content_type)})

        text = analyze("photo.jpg", b"hello, this is text, not a JPEG")  # the extension is not trusted
        assert text.status_code == 415 and "signature" in text.json()["error"]["message"]
        assert analyze("empty.jpg", b"").status_code == 400
        truncated = analyze("cut.jpg", jpeg(astronaut[:300, :300])[:2000])
        assert truncated.status_code == 400 and truncated.json()["error"]["code"] == "invalid_image"
        big = analyze("big.jpg", photos["hopper"] + b"\0" * 600_000)
        assert big.status_code == 413 and "FACEATLAS_MAX_UPLOAD_MB" in big.json()["error"]["message"]
        many_pixels = analyze("wide.png", jpeg(np.zeros((600, 600, 3), np.uint8)))
        assert many_pixels.status_code == 413
        missing = client.post("/v1/analyze", headers=auth)
        assert missing.status_code == 422 and "image" in missing.json()["error"]["message"]
        no_face = client.post(
            "/v1/verify",
            headers=auth,
            files={"image_a": ("a.jpg", jpeg(np.full((64, 64, 3), 128, np.uint8)))},
            data={"face_b": "1"},
        )
        assert no_face.status_code == 422 and no_face.json()["error"]["code"] == "no_face"
        both = client.post("/v1/verify", headers=auth, data={"face_a": "1"})
        assert both.status_code == 400 and "exactly one" in both.json()["error"]["message"]
        huge_declared = client.post("/v1/analyze", headers={**auth, "Content-Length": str(10**9)}, content=b"x" * 10)
        assert huge_declared.status_code == 413

        def chunks(n):  # a chunked body announces no length: counted as it arrives
            yield b'--xyz\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n\r\n'
            yield from (b"\xff" * 10_000 for _ in range(n))
            yield b"\r\n--xyz--\r\n"

        multipart = {**auth, "Content-Type": "multipart/form-data; boundary=xyz"}
        chunked = client.post("/v1/analyze", headers=multipart, content=chunks(200))
        assert chunked.status_code == 413 and chunked.json()["error"]["code"] == "too_large"
        small = client.post("/v1/analyze", headers=multipart, content=chunks(2))
        assert small.status_code == 415  # under the limit: it reaches the route, which sniffs it
        for response in (text, truncated, big, missing):
            assert "Traceback" not in response.text and 'File "' not in response.text


def test_unexpected_errors_are_a_plain_500_without_a_traceback(tmp_path, photos):
    class Broken:
        def analyze(self, image):
            raise RuntimeError("secret internal detail")

    app = create_app(Settings(data_dir=tmp_path), analyzer_factory=Broken)
    token = app.state.keys.create("t", "read")[1]
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post(
            "/v1/analyze", headers={"Authorization": f"Bearer {token}"}, files={"image": ("a.jpg", photos["hopper"])}
        )
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error" and "secret" not in response.text


def test_rate_limit_per_key_answers_429_with_retry_after(tmp_path, analyzer):
    app = create_app(Settings(data_dir=tmp_path, rate_limit_per_minute=6), analyzer_factory=lambda: analyzer)
    first, second = (app.state.keys.create(n, "read")[1] for n in ("one", "two"))
    with TestClient(app) as client:
        codes = [client.get("/v1/people", headers={"X-API-Key": first}).status_code for _ in range(12)]
        assert codes[0] == 200 and 429 in codes
        limited = client.get("/v1/people", headers={"X-API-Key": first})
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
        assert client.get("/v1/people", headers={"X-API-Key": second}).status_code == 200  # per key


def test_keys_are_managed_by_admins_and_revocation_is_immediate(service):
    created = service.call("POST", "/v1/keys", json={"name": "ci", "scope": "read"})
    assert created.status_code == 201
    token, key_id = created.json()["token"], created.json()["key_id"]
    assert service.client.get("/v1/people", headers={"X-API-Key": token}).status_code == 200
    listed = service.call("GET", "/v1/keys").json()["keys"]
    assert key_id in [k["key_id"] for k in listed] and all("token" not in k for k in listed)
    assert service.call("DELETE", f"/v1/keys/{key_id}").status_code == 204
    assert service.client.get("/v1/people", headers={"X-API-Key": token}).status_code == 401
    assert service.call("POST", "/v1/keys", json={"name": "x", "scope": "root"}).status_code == 422


def test_metrics_count_requests_by_route_and_faces(service, photos):
    service.call("POST", "/v1/analyze", scope="read", files={"image": ("a.jpg", photos["hopper"])})
    service.call("GET", "/v1/people/nobody", scope="read")
    text = service.call("GET", "/metrics").text
    assert 'faceatlas_requests_total{method="POST",route="/v1/analyze",status="200"} 1.0' in text
    assert 'route="/v1/people/{name}",status="404"' in text  # the template, not the raw path
    assert "faceatlas_faces_analysed_total 1.0" in text
    assert "faceatlas_model_load_seconds" in text


def test_a_flood_gets_503_with_retry_after_not_a_pile_up(tmp_path, photos):
    import threading

    release = threading.Event()

    class Slow:
        embedder = SimpleNamespace(card=DLIB_RESNET_CARD)

        def analyze(self, image):
            release.wait(10)
            return []

    app = create_app(
        Settings(data_dir=tmp_path, max_waiting=1, analysis_threads=1, rate_limit_per_minute=0), analyzer_factory=Slow
    )
    token = app.state.keys.create("t", "read")[1]
    results: list[int] = []
    with TestClient(app, raise_server_exceptions=False) as client:

        def send():
            response = client.post(
                "/v1/analyze", headers={"X-API-Key": token}, files={"image": ("a.jpg", photos["hopper"])}
            )
            results.append(response.status_code)
            if response.status_code == 503:
                assert response.headers["Retry-After"] == "1"
                if results.count(503) == 2:
                    release.set()  # the two over the bound were refused: let the admitted ones finish

        threads = [threading.Thread(target=send) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
    assert sorted(results) == [200, 200, 503, 503]


def test_committed_openapi_schema_matches_the_app():
    from pathlib import Path

    from faceatlas.server.cli import openapi_text

    committed = Path(__file__).parent.parent / "docs" / "openapi.json"
    assert committed.read_text(encoding="utf-8") == openapi_text(), (
        "docs/openapi.json is stale: run `faceatlas openapi -o docs/openapi.json`"
    )


def test_settings_are_validated_at_start(tmp_path, monkeypatch):
    from pydantic import ValidationError

    monkeypatch.setenv("FACEATLAS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FACEATLAS_MAX_UPLOAD_MB", "-3")
    with pytest.raises(ValidationError, match="max_upload_mb"):
        Settings()
    monkeypatch.setenv("FACEATLAS_MAX_UPLOAD_MB", "5")
    monkeypatch.setenv("FACEATLAS_PHOTO_ROOTS", f'["{tmp_path / "nope"}"]')
    with pytest.raises(ValidationError, match="not a folder"):
        Settings()
    monkeypatch.setenv("FACEATLAS_PHOTO_ROOTS", f'["{tmp_path}"]')
    settings = Settings()
    assert settings.max_upload_bytes == 5 * 1024 * 1024 and settings.photo_roots == [tmp_path.resolve()]
    assert settings.auth is True and settings.cors_origins == []  # safe defaults


def test_a_postgresql_gallery_serves_the_same_api(tmp_path, analyzer, photos, pg_url):
    """FACEATLAS_GALLERY=postgresql://...: enrol, identify, delete through the service."""
    client, tokens = make_service(tmp_path, analyzer, gallery=pg_url)
    service = Service(client, tokens)
    with client:
        enrolled = service.call(
            "POST", "/v1/people/Grace/faces", scope="write", files={"images": ("h.jpg", photos["hopper"])}
        )
        assert enrolled.status_code == 201 and len(enrolled.json()["added"]) == 1
        found = service.call("POST", "/v1/identify", scope="read", files={"image": ("q.jpg", photos["hopper2"])})
        assert found.json()["results"][0]["person"] == "Grace"
        deleted = service.call("DELETE", "/v1/people/Grace", scope="write").json()
        assert {**deleted, "kept": []} == {"deleted": "Grace", "faces": 1, "clusters": [], "kept": []}
        assert ["pg_wal" in line for line in deleted["kept"]] == [True]  # what PostgreSQL keeps, said
        gone = service.call("POST", "/v1/identify", scope="read", files={"image": ("q.jpg", photos["hopper2"])})
        assert gone.json()["results"][0]["candidates"] == []
    assert not (tmp_path / "gallery.db").exists()  # nothing went to the default SQLite file


def test_metrics_can_be_made_public_for_a_scraper(tmp_path, analyzer):
    client, _ = make_service(tmp_path, analyzer, metrics_public=True)
    with client:
        response = client.get("/metrics")
        assert response.status_code == 200 and "faceatlas_requests_total" in response.text
        assert client.get("/v1/people").status_code == 401  # only /metrics
