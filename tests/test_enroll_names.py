"""Enrolment does what the docs say, and person names follow one rule (``faceatlas.names``).

- ``faceatlas enroll people/`` enrols one person per subfolder; a flat folder needs ``--person``;
  a mix of images and subfolders is refused; the CLI says which happened.
- A person whose every image is refused is not created (Gallery: NothingEnrolledError; CLI exit 3;
  API 422), and an existing person is left as it was.
- Names: Unicode welcome and NFC-normalised; blank, control characters, ``.``/``..``, ``/`` and
  over-long names refused wherever names enter (Gallery, CLI, API, cluster naming); names stored
  before the rule stay reachable.
- Skip reasons word the fix for their caller: ``face=i`` in Python, ``--face i`` on the CLI, the
  query parameter on the API.

A fake analyzer reads the "faces" from an image's first pixel (no model loads): red = how many
faces, green = who, blue = quality x 255.
"""

from __future__ import annotations

import io
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from faceatlas.collection import corrections
from faceatlas.collection.grouping import cluster_collection
from faceatlas.collection.store import CollectionStore, InvalidCorrectionError, model_tag
from faceatlas.errors import FaceAtlasError, InvalidNameError, NothingEnrolledError
from faceatlas.gallery.gallery import Gallery, Skipped
from faceatlas.models.cards import DLIB_RESNET_CARD
from faceatlas.names import MAX_NAME_LENGTH, validate_person_name
from faceatlas.types import Box, Face, Landmarks, Pose, Quality

DIM = 128
NFD_ZOE = "Zoe\u0308"  # e + combining diaeresis
NFC_ZOE = "Zo\u00eb"


class FakeEmbedder:
    card = DLIB_RESNET_CARD
    dim = DIM


class FakeAnalyzer:
    embedder = FakeEmbedder()

    def load(self) -> FakeAnalyzer:
        return self

    def analyze(self, image):
        pixels = np.asarray(image)
        faces, who, quality = (int(v) for v in pixels[0, 0, :3])
        out = []
        for k in range(faces):
            vector = np.random.default_rng(who * 10 + k).normal(size=DIM).astype(np.float32)
            size = 30 - 5 * k
            out.append(
                Face(
                    box=Box(0, 0, size, size),
                    score=0.99,
                    landmarks=Landmarks(np.zeros((5, 2))),
                    pose=Pose(0.0, 0.0, 0.0),
                    quality=Quality(quality / 255, 1, 1, 1, 1, 1),
                    embedding=vector / np.linalg.norm(vector),
                )
            )
        return out


def pixels(faces: int = 1, who: int = 1, quality: float = 0.9, variant: int = 0) -> np.ndarray:
    image = np.full((32, 32, 3), 128, np.uint8)
    image[0, 0] = (faces, who, round(quality * 255))
    image[5, 5, 0] = variant  # another photo of the same face: other pixels, another digest
    return image


def png(**kwargs) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels(**kwargs)).save(out, format="PNG")
    return out.getvalue()


def write(path: Path, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png(**kwargs))
    return path


@pytest.fixture
def gallery(tmp_path):
    with Gallery.open(tmp_path / "g.db", analyzer=FakeAnalyzer()) as g:
        yield g


# --- the naming rule ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("Ada Lovelace", "Ada Lovelace"),
        (f"  {NFD_ZOE}\t ", NFC_ZOE),  # NFC, surrounding whitespace dropped
        ("李小龙", "李小龙"),
        ("Дмитрий", "Дмитрий"),
        ("می\u200cخواهم", "می\u200cخواهم"),  # the zero-width non-joiner is part of Persian spelling
        ("O'Brien-Smith (jr.)", "O'Brien-Smith (jr.)"),
        ("a\\b", "a\\b"),
        ("x" * MAX_NAME_LENGTH, "x" * MAX_NAME_LENGTH),
    ],
)
def test_names_in_any_script_are_welcome_and_normalised(given, stored):
    assert validate_person_name(given) == stored
    assert unicodedata.is_normalized("NFC", validate_person_name(given))


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("", "non-empty"),
        ("   ", "non-empty"),
        ("a\x00b", "U+0000"),
        ("a\nb", "U+000A"),
        ("a\tb", "U+0009"),
        ("a\x7fb", "U+007F"),
        ("\u202eevil", "RIGHT-TO-LEFT OVERRIDE"),
        ("a\u2028b", "LINE SEPARATOR"),
        ("a\ud800", "surrogate"),
        (".", "path segment"),
        ("..", "path segment"),
        ("a/b", "'/'"),
        ("x" * (MAX_NAME_LENGTH + 1), f"at most {MAX_NAME_LENGTH}"),
        (5, "must be text"),
        (None, "must be text"),
    ],
)
def test_names_that_break_the_rule_are_refused_with_the_rule(given, says):
    with pytest.raises(InvalidNameError) as info:
        validate_person_name(given)
    assert says in str(info.value)
    assert isinstance(info.value, FaceAtlasError) and isinstance(info.value, ValueError)


# --- the library: Gallery -------------------------------------------------------------------------


def test_a_person_whose_every_image_is_refused_is_not_created(gallery):
    images = [pixels(faces=0), pixels(faces=2), pixels(quality=0.1), "/no/such/file.png"]
    with pytest.raises(NothingEnrolledError) as info:
        gallery.enroll("ada", images)
    error = info.value
    assert gallery.people() == [] and not [
        r for r in gallery.store.export_rows() if r.get("kind") in ("person", "face")
    ]
    assert (error.person, error.existed) == ("ada", False)
    assert [(s.kind, s.index) for s in error.skipped] == [
        ("no_face", 0),
        ("several_faces", 1),
        ("low_quality", 2),
        ("unreadable", 3),
    ]
    assert "not created" in str(error) and "pass face=i" in str(error)  # Python's wording
    with pytest.raises(NothingEnrolledError, match="no images were given"):
        gallery.enroll("ada", [])
    assert gallery.people() == []


def test_an_existing_person_who_gets_no_new_face_is_unchanged(gallery):
    first = gallery.enroll("ada", [pixels(variant=1)])
    assert first.created and len(first.added) == 1
    version = gallery.store.version()
    with pytest.raises(NothingEnrolledError) as info:
        gallery.enroll("ada", [pixels(faces=0), pixels(variant=1)])  # one refused, one already there
    assert info.value.existed and "unchanged" in str(info.value)
    assert gallery.store.version() == version and [p.n_faces for p in gallery.people()] == [1]
    # a re-run that finds every image already enrolled is no error: that is how a killed job resumes
    again = gallery.enroll("ada", [pixels(variant=1)])
    assert again.added == [] and [s.kind for s in again.skips] == ["already_enrolled"] and not again.created


def test_enroll_embeddings_creates_nobody_from_nothing(gallery):
    with pytest.raises(NothingEnrolledError):
        gallery.enroll_embeddings("ada", np.zeros((0, DIM), np.float32))
    assert gallery.people() == []


def test_skip_reasons_are_data_and_each_front_end_words_the_fix(gallery):
    report = gallery.enroll("ada", [pixels(variant=1), pixels(faces=3)])
    (skip,) = report.skips
    assert (skip.kind, skip.faces, skip.index) == ("several_faces", 3, 1)
    assert report.skipped == [("<ndarray>", "3 faces: pass face=i (0 = largest) to choose one")]
    assert "--face i" in skip.reason("--face i") and "face=i" not in skip.reason("--face i")
    assert "--face i" in report.describe("--face i") and "face=i" in str(report)
    with pytest.raises(NothingEnrolledError) as info:
        gallery.enroll("bob", [pixels(faces=2, who=2)], face=5)
    (beyond,) = info.value.skipped
    assert (beyond.kind, beyond.asked, beyond.faces) == ("no_such_face", 5, 2)
    assert isinstance(beyond, Skipped) and beyond.reason() == "face 5 asked for, 2 found (0 = largest)"


def test_names_entering_the_gallery_are_checked_and_lookups_are_not(gallery):
    for bad in ("\x00", "..", " ", "a\nb", "x" * 101, "a/b"):
        with pytest.raises(InvalidNameError):
            gallery.enroll(bad, [pixels()])
    assert gallery.people() == []
    report = gallery.enroll(f" {NFD_ZOE} ", [pixels(variant=1)])
    assert report.person == NFC_ZOE
    assert gallery.enroll(NFC_ZOE, [pixels(variant=2)]).created is False  # the same person
    assert [(p.name, p.n_faces) for p in gallery.people()] == [(NFC_ZOE, 2)]
    with pytest.raises(InvalidNameError):
        gallery.rename(NFC_ZOE, "a\tb")
    assert gallery.rename(NFC_ZOE, "  Zoë Ada ") == "Zoë Ada"
    # a name stored before the rule (written to the store directly) can still be read, merged, deleted
    legacy = gallery.store.add_person("old\tname")
    assert gallery.store.get_person("old\tname").id == legacy
    gallery.merge("old\tname", "Zoë Ada")
    other = gallery.store.add_person("..")
    assert gallery.store.get_person("..").id == other
    assert gallery.delete_person("..") == 0
    assert [p.name for p in gallery.people()] == ["Zoë Ada"]


def test_cluster_names_follow_the_rule(tmp_path, gallery):
    with CollectionStore.open(tmp_path / "collection.db") as store:
        store.bind_model(model_tag(FakeAnalyzer()))
        for n in range(3):
            (face,) = FakeAnalyzer().analyze(pixels(who=4))
            store.add_photo(f"p{n}.jpg", "/photos", f"{n:064x}", 1000 + n, n, 32, 32, [face])
        cluster_collection(store)
        cluster = max(store.clusters(), key=lambda c: c.n_faces)
        for bad in ("a\x00b", "..", "a/b", "x" * 101, " "):
            with pytest.raises(InvalidCorrectionError) as info:
                corrections.name_cluster(store, cluster.id, bad, gallery)
            assert isinstance(info.value, InvalidNameError)
        assert store.cluster(cluster.id).name is None and gallery.people() == []
        named = corrections.name_cluster(store, cluster.id, f"  {NFD_ZOE}", gallery)
        assert named.cluster.name == NFC_ZOE and [p.name for p in gallery.people()] == [NFC_ZOE]


# --- the CLI --------------------------------------------------------------------------------------


@pytest.fixture
def cli(monkeypatch, tmp_path):
    """Run ``faceatlas ...`` in-process on a gallery in tmp_path, with the fake analyzer."""
    import faceatlas.pipeline
    from faceatlas.cli import app

    monkeypatch.setattr(faceatlas.pipeline, "FaceAnalyzer", FakeAnalyzer)
    db = tmp_path / "people.db"

    def run(*args: object):
        result = CliRunner().invoke(app, [str(a) for a in args] + ["--db", str(db)])
        assert "Traceback" not in result.output, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), result.output
        return result

    def people() -> dict[str, int]:
        if not db.exists():
            return {}
        with Gallery.open(db, analyzer=FakeAnalyzer(), create=False) as g:
            return {p.name: p.n_faces for p in g.people()}

    run.people = people
    return run


def test_cli_a_folder_of_folders_enrols_one_person_per_subfolder(cli, tmp_path):
    people = tmp_path / "people"
    for who, name in enumerate(["ada", "bob", NFD_ZOE], start=1):
        for n in range(2):
            write(people / name / f"{n}.png", who=who, variant=n)
    write(people / ".hidden" / "x.png", who=9)  # hidden entries are not people
    result = cli("enroll", people)
    assert result.exit_code == 0, result.output
    assert cli.people() == {"ada": 2, "bob": 2, NFC_ZOE: 2}  # not one person named "people"
    assert f"enrolled 3 people from subfolders of {people}/: {NFC_ZOE}, ada, bob" in result.output


def test_cli_a_flat_folder_needs_person_and_a_mix_is_refused(cli, tmp_path):
    flat = tmp_path / "ada"
    write(flat / "1.png", variant=1)
    write(flat / "2.png", variant=2)
    refused = cli("enroll", flat)
    assert refused.exit_code == 2 and "--person NAME" in refused.output and cli.people() == {}

    mixed = tmp_path / "mixed"
    write(mixed / "loose.png")
    write(mixed / "bob" / "1.png", who=2)
    refused = cli("enroll", mixed)
    assert refused.exit_code == 2 and cli.people() == {}
    assert "both images (1) and subfolders (1)" in refused.output and "--person NAME" in refused.output

    enrolled = cli("enroll", flat, "--person", "Ada Lovelace")
    assert enrolled.exit_code == 0 and cli.people() == {"Ada Lovelace": 2}
    assert "enrolled Ada Lovelace (--person)" in enrolled.output


def test_cli_refused_people_are_not_created_and_reasons_speak_cli(cli, tmp_path):
    people = tmp_path / "people"
    write(people / "ada" / "1.png", who=1)
    write(people / "crowd" / "1.png", faces=3, who=2)
    write(people / "crowd" / "2.png", faces=0)
    result = cli("enroll", people)
    assert result.exit_code == 3, result.output
    assert cli.people() == {"ada": 1}  # crowd: not created, ada still enrolled
    assert "crowd: nothing enrolled (not created)" in result.output
    assert "3 faces: pass --face i (0 = largest)" in result.output and "face=i" not in result.output
    assert "not enrolled (every image refused): crowd" in result.output

    several = cli("enroll", people / "crowd" / "1.png", "--person", "ada")  # an existing person: unchanged
    assert several.exit_code == 3 and "ada: nothing enrolled (unchanged)" in several.output
    assert cli.people() == {"ada": 1}
    chosen = cli("enroll", people / "crowd" / "1.png", "--person", "crowd", "--face", "0")
    assert chosen.exit_code == 0 and cli.people() == {"ada": 1, "crowd": 1}


def test_cli_names_are_checked_where_they_enter(cli, tmp_path):
    image = write(tmp_path / "a.png")
    for bad in ("a\tb", "..", " ", "a/b"):
        result = cli("enroll", image, "--person", bad)
        assert result.exit_code == 3 and "name" in result.output, (bad, result.output)
    people = tmp_path / "people"
    write(people / "ok" / "1.png", who=1)
    write(people / "bad\nname" / "1.png", who=2)
    result = cli("enroll", people)
    assert result.exit_code == 3 and "rename the folder" in result.output
    assert cli.people() == {}  # every folder name is checked before anyone is enrolled

    assert cli("enroll", image, "--person", "ada").exit_code == 0
    renamed = cli("people", "rename", "ada", "x" * 101)
    assert renamed.exit_code == 3 and "at most 100" in renamed.output and cli.people() == {"ada": 1}
    renamed = cli("people", "rename", "ada", f" {NFD_ZOE} ")
    assert renamed.exit_code == 0 and cli.people() == {NFC_ZOE: 1}


# --- the API --------------------------------------------------------------------------------------


@pytest.fixture
def api(tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from faceatlas.server.app import create_app
    from faceatlas.server.settings import Settings

    app = create_app(Settings(data_dir=tmp_path, rate_limit_per_minute=0), analyzer_factory=FakeAnalyzer)
    token = app.state.keys.create("test", "admin")[1]
    with TestClient(app, raise_server_exceptions=False, headers={"Authorization": f"Bearer {token}"}) as client:
        client.app_state = app.state
        yield client


def people_of(api) -> dict[str, int]:
    return {p["name"]: p["faces"] for p in api.get("/v1/people").json()["people"]}


def test_api_refuses_to_create_a_person_from_refused_images(api):
    files = [("images", ("crowd.png", png(faces=2))), ("images", ("junk.jpg", b"not an image at all"))]
    refused = api.post("/v1/people/ada/faces", files=files)
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"] == "nothing_enrolled" and "not created" in error["message"]
    assert "crowd.png: 2 faces: pass the query parameter face=i" in error["message"] and "junk.jpg" in error["message"]
    assert people_of(api) == {}
    assert api.get("/v1/people/ada").status_code == 404

    ok = api.post("/v1/people/ada/faces", files=[("images", ("a.png", png(variant=1))), files[0]])
    assert ok.status_code == 201 and len(ok.json()["added"]) == 1
    assert ok.json()["skipped"] == [
        {"source": "crowd.png", "reason": "2 faces: pass the query parameter face=i (0 = largest) to choose one"}
    ]
    again = api.post("/v1/people/ada/faces", files=[("images", ("none.png", png(faces=0)))])
    assert again.status_code == 422 and "unchanged" in again.json()["error"]["message"]
    assert people_of(api) == {"ada": 1}
    rerun = api.post("/v1/people/ada/faces", files=[("images", ("a.png", png(variant=1)))])  # already enrolled
    assert rerun.status_code == 201 and rerun.json()["added"] == [] and people_of(api) == {"ada": 1}


def test_api_names_are_checked_where_they_enter_and_old_ones_stay_reachable(api):
    image = [("images", ("a.png", png()))]
    for bad in ("%00", "a%0Ab", "%20", "%E2%80%AEx", "x" * 101):
        refused = api.post(f"/v1/people/{bad}/faces", files=image)
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid_name", (bad, refused.text)
    assert people_of(api) == {}
    created = api.post("/v1/people/%20Zoe%CC%88%20/faces", files=image)  # NFD, with spaces
    assert created.status_code == 201 and created.json()["person"] == NFC_ZOE
    assert people_of(api) == {NFC_ZOE: 1}
    for bad in ("a/b", "..", "a\tb", "  "):
        refused = api.patch(f"/v1/people/{NFC_ZOE}", json={"name": bad})
        assert refused.status_code == 422, (bad, refused.text)
    renamed = api.patch(f"/v1/people/{NFC_ZOE}", json={"name": " Zoë Ada "})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Zoë Ada"

    gallery = api.app_state.engine.gallery()
    gallery.store.add_person("old\tname")  # stored before names had rules
    assert api.get("/v1/people/old%09name").status_code == 200
    assert api.delete("/v1/people/old%09name").status_code == 200
    assert people_of(api) == {"Zoë Ada": 1}


def test_api_cluster_naming_follows_the_rule(api):
    engine = api.app_state.engine
    with engine.collection() as store:
        store.bind_model(model_tag(FakeAnalyzer()))
        for n in range(3):
            (face,) = FakeAnalyzer().analyze(pixels(who=4))
            store.add_photo(f"p{n}.jpg", "/photos", f"{n:064x}", 1000 + n, n, 32, 32, [face])
        cluster_collection(store)
        cluster = max(store.clusters(), key=lambda c: c.n_faces)
    for bad in ("a\u0000b", "a\nb", "..", "a/b", "x" * 101):
        refused = api.patch(f"/v1/collection/clusters/{cluster.id}", json={"name": bad})
        assert refused.status_code == 422, (bad, refused.text)
    assert people_of(api) == {}
    named = api.patch(f"/v1/collection/clusters/{cluster.id}", json={"name": f"{NFD_ZOE} "})
    assert named.status_code == 200 and named.json()["name"] == NFC_ZOE and people_of(api) == {NFC_ZOE: cluster.n_faces}
