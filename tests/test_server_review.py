"""The review queue over HTTP (issue 17, item 3): the queue, yes / no / skip answers stored as the
constraints cluster jobs honour, a stale question refused (409), a bad reply (422), the batch
accept, private people left out for a key that may not see them, and group questions (one
anchor, its candidates: merged or kept apart at once; 409 when asked again, 422 for a bad body).

The collection is test_review.py's: two people of four faces each, each person split into two
clusters, written straight into the service's collection file (bound to the service's embedder,
so its card gives the threshold); the service itself is test_server_collection.py's.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient
from test_server_collection import FakeAnalyzer

from faceatlas.collection import CollectionStore, NewPhoto
from faceatlas.gallery.store import ModelTag
from faceatlas.models.cards import DLIB_RESNET_CARD
from faceatlas.server.app import create_app
from faceatlas.server.settings import Settings
from faceatlas.types import Box, Face, Landmarks, Pose, Quality

DIM = 128


def people(n_people: int = 2, per_person: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.eye(DIM)[:n_people]
    x = np.repeat(centres, per_person, axis=0) + 0.05 * rng.normal(size=(n_people * per_person, DIM)) / 4
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), np.repeat(np.arange(n_people), per_person)


def face(x: float, vector: np.ndarray) -> Face:
    return Face(
        box=Box(x, 10.0, x + 40.0, 50.0), score=0.99, landmarks=Landmarks(np.full((5, 2), x + 20)),
        pose=Pose(0.0, 0.0, 0.0), quality=Quality(0.9, 1, 1, 1, 1, 1), embedding=vector,
    )  # fmt: skip


class Review:
    def __init__(self, client: TestClient, tokens: dict[str, str], truth: dict[int, int], path) -> None:
        self.client, self.tokens, self.truth, self.path = client, tokens, truth, path

    def call(self, method: str, url: str, scope: str = "write", **kwargs):
        return self.client.request(method, url, headers={"Authorization": f"Bearer {self.tokens[scope]}"}, **kwargs)

    def ok(self, method: str, url: str, scope: str = "write", **kwargs) -> dict:
        response = self.call(method, url, scope, **kwargs)
        assert response.status_code == 200, response.text
        return response.json()

    def queue(self, scope: str = "read", **params) -> list[dict]:
        return self.ok("GET", "/v1/collection/review", scope, params=params)["questions"]

    def answer(self, question: dict, reply: str, **extra):
        body = {"kind": question["kind"], "faces": question["faces"], "reply": reply, **extra}
        return self.call("POST", "/v1/collection/review/answer", json=body)

    def store(self) -> CollectionStore:
        return CollectionStore.open(self.path, create=False)

    def same(self, question: dict) -> bool:
        a, b = question["faces"]
        return self.truth[a] == self.truth[b]


@pytest.fixture
def svc(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", rate_limit_per_minute=0, photo_roots=[])
    settings.collection_path.parent.mkdir(parents=True, exist_ok=True)
    x, who = people()
    with CollectionStore.open(settings.collection_path) as store:
        store.bind_model(ModelTag(DLIB_RESNET_CARD.name, DLIB_RESNET_CARD.version, DIM))
        store.add_photos(
            [NewPhoto(f"{i}.jpg", "/p", f"{i:064d}", 1, 1, 400, 300, [face(0, v)]) for i, v in enumerate(x)]
        )
        ids = store.face_table().face_ids.tolist()
        store.set_clusters(ids, [0, 0, 1, 1, 2, 2, 3, 3])  # each person in two clusters
    analyzer = FakeAnalyzer()
    app = create_app(settings, analyzer_factory=lambda: analyzer)
    tokens = {scope: app.state.keys.create(f"test {scope}", scope)[1] for scope in ("read", "write", "admin")}
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Review(client, tokens, dict(zip(ids, who.tolist(), strict=True)), settings.collection_path)


def test_the_queue_lists_the_questions_best_first_with_what_to_show(svc):
    questions = svc.queue(limit=5)
    assert 0 < len(questions) <= 5
    first = questions[0]
    assert first["kind"] == "merge" and svc.same(first) and first["text"] == "Same person?"
    assert [shown["face"] for shown in first["shown"]] == first["faces"]
    assert [shown["cluster"] for shown in first["shown"]] == first["clusters"]
    assert all(len(shown["box"]) == 4 and shown["path"].endswith(".jpg") for shown in first["shown"])
    gains = [q["gain"] for q in questions]
    assert gains == sorted(gains, reverse=True)
    assert len(svc.queue(limit=1)) == 1
    skipped = svc.queue(limit=5, skip=[f"{first['kind']}:{first['faces'][0]}:{first['faces'][1]}"])
    assert first["faces"] not in [q["faces"] for q in skipped if q["kind"] == first["kind"]]
    bad = svc.call("GET", "/v1/collection/review", "read", params={"skip": "merge:1"})
    assert bad.status_code == 422 and "merge:1" in bad.json()["error"]["message"]
    assert svc.call("GET", "/v1/collection/review", "read", params={"limit": 0}).status_code == 422


def test_yes_no_and_skip_are_stored_as_constraints(svc):
    questions = svc.queue(limit=20)
    right = next(q for q in questions if q["kind"] == "merge" and svc.same(q))
    wrong = next(q for q in questions if q["kind"] == "merge" and not svc.same(q))
    with svc.store() as store:
        before = [len(part) for part in store.constraints()]

    skipped = svc.answer(right, "skip")
    assert skipped.status_code == 200, skipped.text
    assert skipped.json()["stored"] is False and skipped.json()["clusters"] == right["clusters"]
    with svc.store() as store:
        assert [len(part) for part in store.constraints()] == before  # a skip stores nothing

    no = svc.answer(wrong, "no", clusters=wrong["clusters"])
    assert no.status_code == 200, no.text
    assert no.json()["stored"] is True
    with svc.store() as store:
        must, cannot = store.constraints()
    assert len(cannot) > before[1]  # each side's best face cannot-linked with the other side
    assert wrong["faces"] not in [q["faces"] for q in svc.queue(limit=20) if q["kind"] == "merge"]

    yes = svc.answer(right, "yes", clusters=right["clusters"])
    assert yes.status_code == 200, yes.text
    a, b = yes.json()["clusters"]
    assert a == b and a in right["clusters"]  # merged, into one of the two
    with svc.store() as store:
        assert store.face(right["faces"][0]).cluster == store.face(right["faces"][1]).cluster
        assert len(store.constraints()[0]) > len(must)  # the merge is must-linked


def test_a_stale_question_is_409_and_a_bad_reply_422(svc):
    questions = svc.queue(limit=20)
    right = next(q for q in questions if q["kind"] == "merge" and svc.same(q))
    bad = svc.answer(right, "maybe")
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"
    assert "reply" in bad.json()["error"]["message"]
    assert svc.answer(right, "yes").status_code == 200
    again = svc.answer(right, "no")  # the two are one cluster now: the queue no longer asks it
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
    assert "ask the queue again" in again.json()["error"]["message"]
    # a question still asked, but sent with the clusters of before: its faces moved
    fresh = svc.queue(limit=20)[0]
    moved = svc.answer(fresh, "yes", clusters=[9999, fresh["clusters"][1]])
    assert moved.status_code == 409 and "not in cluster 9999" in moved.json()["error"]["message"]
    missing = svc.call(
        "POST", "/v1/collection/review/answer", json={"kind": "merge", "faces": [9999, 1], "reply": "yes"}
    )
    assert missing.status_code == 404
    read_only = svc.call(
        "POST", "/v1/collection/review/answer", "read", json={"kind": "merge", "faces": right["faces"], "reply": "no"}
    )
    assert read_only.status_code == 403


def test_a_yes_to_a_named_person_keeps_the_gallery_in_step(svc):
    question = next(q for q in svc.queue(limit=20) if q["kind"] == "merge" and svc.same(q))
    named = question["clusters"][0]
    svc.ok("PATCH", f"/v1/collection/clusters/{named}", json={"name": "Ada"})
    asked = next(q for q in svc.queue(limit=20) if q["faces"] == question["faces"])
    assert asked["text"] == "Is this Ada?" and "Ada" in [shown["name"] for shown in asked["shown"]]
    enrolled = {p["name"]: p["faces"] for p in svc.ok("GET", "/v1/people", "read")["people"]}
    assert svc.answer(asked, "yes").status_code == 200
    after = {p["name"]: p["faces"] for p in svc.ok("GET", "/v1/people", "read")["people"]}
    assert after["Ada"] > enrolled["Ada"]  # the merged faces joined the gallery person


def test_accept_merges_clusters_into_one(svc):
    with svc.store() as store:
        clusters = sorted(c.id for c in store.clusters())
        person_of = {c: svc.truth[store.cluster_faces(c)[0].id] for c in clusters}
    into, *rest = [c for c in clusters if person_of[c] == person_of[clusters[0]]]
    out = svc.ok("POST", "/v1/collection/review/accept", json={"clusters": rest, "into": into})
    assert out["id"] == into and out["n_faces"] == 4 and out["name"] is None
    with svc.store() as store:
        assert {c.id for c in store.clusters()} == set(clusters) - set(rest)
    missing = svc.call("POST", "/v1/collection/review/accept", json={"clusters": [9999], "into": into})
    assert missing.status_code == 404 and "9999" in missing.json()["error"]["message"]
    alone = svc.call("POST", "/v1/collection/review/accept", json={"clusters": [into], "into": into})
    assert alone.status_code == 422


def test_private_people_are_asked_about_only_for_a_key_that_may_see_them(svc):
    question = next(q for q in svc.queue(limit=20) if q["kind"] == "merge" and svc.same(q))
    hidden = question["clusters"][0]
    svc.ok("PUT", f"/v1/collection/clusters/{hidden}/private", "admin", json={"private": True})
    for scope in ("read", "admin"):
        assert all(hidden not in q["clusters"] for q in svc.queue(scope))
    refused = svc.call("GET", "/v1/collection/review", "read", params={"include_private": "true"})
    assert refused.status_code == 403
    assert any(hidden in q["clusters"] for q in svc.queue("admin", limit=20, include_private="true"))
    writer = svc.answer(question, "no")  # a write key without the private permission: as if no such face
    assert writer.status_code == 404
    assert svc.answer(question, "no", include_private=True).status_code == 403
    asked = next(q for q in svc.queue("admin", limit=20, include_private="true") if q["faces"] == question["faces"])
    body = {"kind": asked["kind"], "faces": asked["faces"], "reply": "no", "include_private": True}
    assert svc.ok("POST", "/v1/collection/review/answer", "admin", json=body)["stored"] is True


def test_a_group_question_is_asked_and_answered_and_a_repeat_is_409(svc):
    asked = svc.ok("GET", "/v1/collection/review/group", "read")["question"]
    assert asked is not None and asked["members"]
    anchor = asked["anchor"]
    assert asked["anchor_shown"]["face"] == anchor
    assert all(m["kind"] == "merge" and m["faces"][0] == anchor for m in asked["members"])
    assert all([s["face"] for s in m["shown"]] == m["faces"] for m in asked["members"])
    candidates = [m["faces"][1] for m in asked["members"]]
    assert asked["candidates"] == candidates  # what `same` picks from, for merges and members alike
    same = [face for face in candidates if svc.truth[face] == svc.truth[anchor]]
    assert same  # the collection has each person in two clusters: the anchor's other half is asked
    skipped = svc.ok("GET", "/v1/collection/review/group", "read", params={"skip": [anchor]})["question"]
    assert skipped is None or skipped["anchor"] != anchor

    url = "/v1/collection/review/group/answer"
    body = {"anchor": anchor, "candidates": candidates, "same": same}
    for bad in ({**body, "same": [9999]}, {**body, "candidates": []}, {**body, "reply": "yes"}, {"anchor": anchor}):
        refused = svc.call("POST", url, json=bad)
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid_request"
    assert svc.call("POST", url, "read", json=body).status_code == 403
    with svc.store() as store:
        before = {face: store.face(face).cluster for face in [anchor, *candidates]}

    out = svc.ok("POST", url, json=body)
    assert out == {"merged": len(same), "kept_apart": len(candidates) - len(same)}
    with svc.store() as store:
        now = {face: store.face(face).cluster for face in [anchor, *candidates]}
    assert all(now[face] == now[anchor] for face in same)
    assert all(now[face] != now[anchor] for face in candidates if face not in same)
    assert now != before

    again = svc.call("POST", url, json=body)  # answered: the queue no longer asks this group
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
    assert "ask the queue again" in again.json()["error"]["message"]
