"""Names that live in the files (issue 16, item 1), end to end with real faces and exiftool: face
regions written by exiftool (as digiKam would) become people at index time, clustering spreads
them to untagged photos of the same person, `faceatlas export --xmp` writes them back where
exiftool (and so digiKam, Lightroom...) reads them, and a second collection imports them again."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from faceatlas.collection import CollectionStore, index_folder
from faceatlas.collection.grouping import cluster_collection

from exiftool_util import ensure_exiftool

EXIFTOOL = ensure_exiftool()  # installed in CI; else the module is skipped with the reason

SIZE = 512  # the astronaut


def _exiftool(*args: str) -> str:
    out = subprocess.run([str(EXIFTOOL), *args], capture_output=True, text=True, timeout=60, check=True)
    return out.stdout


def _mwg(box: tuple[float, float, float, float], name: str, width: int, height: int) -> str:
    x1, y1, x2, y2 = box
    area = f"X={(x1 + x2) / 2 / width:.5f},Y={(y1 + y2) / 2 / height:.5f},W={(x2 - x1) / width:.5f}," + (
        f"H={(y2 - y1) / height:.5f},Unit=normalized"
    )
    return (
        f"-XMP-mwg-rs:RegionInfo={{AppliedToDimensions={{W={width},H={height},Unit=pixel}},"
        f"RegionList=[{{Area={{{area}}},Name={name},Type=Face}}]}}"
    )


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def library(tmp_path_factory, astronaut, grace_hopper, analyzer):
    """A folder: the astronaut tagged in a sidecar, Grace Hopper tagged in her JPEG, an untagged
    second astronaut photo, and a photo whose sidecar is not XMP."""
    root = tmp_path_factory.mktemp("library")
    (face,) = analyzer.analyze(astronaut)
    box = face.box.as_xyxy()
    Image.fromarray(astronaut).save(root / "eileen.jpg", quality=92)
    _exiftool("-q", "-o", str(root / "eileen.jpg.xmp"), _mwg(box, "Eileen Collins", SIZE, SIZE), str(root / "eileen.jpg"))
    Image.fromarray(np.ascontiguousarray(astronaut[:, ::-1])).save(root / "eileen-again.jpg", quality=90)
    (grace,) = analyzer.analyze(grace_hopper)
    h, w = grace_hopper.shape[:2]
    Image.fromarray(grace_hopper).save(root / "grace.jpg", quality=92)
    _exiftool("-q", "-overwrite_original", _mwg(grace.box.as_xyxy(), "Grace Hopper", w, h), str(root / "grace.jpg"))
    Image.fromarray(astronaut[::2, ::2]).save(root / "odd.jpg")
    (root / "odd.jpg.xmp").write_text("<x:xmpmeta><rdf:RDF>this is not XML")
    return root, box


@pytest.fixture(scope="module")
def indexed(library, analyzer, tmp_path_factory):
    root, _ = library
    store = CollectionStore.open(tmp_path_factory.mktemp("db") / "c.db")
    report = index_folder(root, store, analyzer)
    yield store, report
    store.close()


def _person(store: CollectionStore, name: str):
    return next(c for c in store.clusters() if c.name == name)


def test_regions_become_people_and_odd_metadata_is_a_note(indexed):
    store, report = indexed
    assert report.new == 4 and report.named == 2 and not report.problems
    assert any(path == "odd.jpg" and "face regions" in note or "XMP" in note for path, note in report.notes)
    eileen, grace = _person(store, "Eileen Collins"), _person(store, "Grace Hopper")
    assert eileen.n_faces == 1 and grace.n_faces == 1
    (face,) = store.cluster_faces(eileen.id)
    assert face.path == "eileen.jpg" and face.origin == "detected"


def test_clustering_spreads_a_name_to_untagged_photos_and_keeps_it(indexed):
    store, _ = indexed
    cluster_collection(store)
    eileen = _person(store, "Eileen Collins")
    assert sorted(f.path for f in store.cluster_faces(eileen.id)) == ["eileen-again.jpg", "eileen.jpg", "odd.jpg"]
    cluster_collection(store, full=True)  # a full run starts over: the file's name is a correction that holds
    assert {f.path for f in store.cluster_faces(_person(store, "Eileen Collins").id)} >= {"eileen.jpg"}
    assert [f.path for f in store.cluster_faces(_person(store, "Grace Hopper").id)] == ["grace.jpg"]


def test_a_named_region_with_no_detection_becomes_a_face(tmp_path, astronaut, analyzer):
    (face,) = analyzer.analyze(astronaut)
    dark = astronaut.copy()
    x1, y1, x2, y2 = (int(v) for v in face.box.as_xyxy())
    dark[y1:y2, x1:x2] = 128  # the detector no longer finds her
    if analyzer.analyze(dark):
        pytest.skip("the detector still finds the darkened face")
    Image.fromarray(dark).save(tmp_path / "dark.jpg")
    _exiftool("-q", "-overwrite_original", _mwg(face.box.as_xyxy(), "Eileen Collins", SIZE, SIZE), str(tmp_path / "dark.jpg"))
    with CollectionStore.open(tmp_path / "c.db") as store:
        report = index_folder(tmp_path, store, analyzer)
        (made,) = store.faces_of_photo(store.photos()[0].id)
        assert report.named == 1 and made.origin == "region"
        assert made.box == pytest.approx(face.box.as_xyxy(), abs=1.0)
        assert store.cluster(made.cluster).name == "Eileen Collins"


def test_export_xmp_round_trip_through_exiftool_into_a_second_collection(library, indexed, tmp_path, analyzer):
    from faceatlas.cli import app

    root, box = library
    store, _ = indexed
    copy = tmp_path / "copy"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("*.xmp"))  # the photos without the user's sidecars
    originals = {p.name: _sha(p) for p in copy.glob("*.jpg")}
    with CollectionStore.open(tmp_path / "copy.db") as second:
        index_folder(copy, second, analyzer)
        cluster_collection(second)
        # name the clusters as the first collection has them, then export
        for cluster in second.clusters():
            paths = {f.path for f in second.cluster_faces(cluster.id)}
            if "eileen.jpg" in paths:
                second.name_cluster(cluster.id, "Eileen Collins")
    result = CliRunner().invoke(app, ["export", "--xmp", "--db", str(tmp_path / "copy.db")])
    assert result.exit_code == 0, result.output
    assert "sidecar(s)" in result.output
    assert {p.name: _sha(p) for p in copy.glob("*.jpg")} == originals  # originals untouched by default
    meta = json.loads(_exiftool("-j", "-struct", "-XMP-mwg-rs:RegionInfo", str(copy / "eileen.jpg.xmp")))[0]
    (region,) = meta["RegionInfo"]["RegionList"]
    assert region["Name"] == "Eileen Collins" and region["Type"] == "Face"
    area = region["Area"]
    got = ((area["X"] - area["W"] / 2) * SIZE, (area["Y"] - area["H"] / 2) * SIZE,
           (area["X"] + area["W"] / 2) * SIZE, (area["Y"] + area["H"] / 2) * SIZE)  # fmt: skip
    with CollectionStore.open(tmp_path / "copy.db") as second:
        (face,) = second.faces_of_photo(next(p.id for p in second.photos() if p.path == "eileen.jpg"))
        assert np.abs(np.array(got) - np.array(face.box)).max() <= 0.5  # exiftool reads back what was stored
        assert [path for _, path in second.sidecars()] == [
            str(copy / f"{name}.xmp") for name in ("eileen-again.jpg", "eileen.jpg", "grace.jpg", "odd.jpg")
        ]
    # a third collection reads the names faceatlas wrote (and Grace's, which the JPEG still holds)
    with CollectionStore.open(tmp_path / "third.db") as third:
        report = index_folder(copy, third, analyzer)
        assert report.named == 4
        (eileen,) = [c for c in third.clusters() if c.name == "Eileen Collins"]
        assert eileen.n_faces == 3


def test_write_originals_changes_only_the_jpegs_metadata_and_is_not_reanalysed(library, tmp_path, analyzer):
    from faceatlas.cli import app
    from faceatlas.image import load_image

    root, _ = library
    copy = tmp_path / "copy"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("odd.jpg*"))
    pixels = {p.name: load_image(p) for p in copy.glob("*.jpg")}
    db = tmp_path / "c.db"
    with CollectionStore.open(db) as store:
        index_folder(copy, store, analyzer)
        cluster_collection(store)
        before = {f.id for f in store.cluster_faces(_person(store, "Eileen Collins").id)}
    result = CliRunner().invoke(app, ["export", "--xmp", "--write-originals", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert list(copy.glob("*.xmp")) == [copy / "eileen.jpg.xmp"]  # no sidecar made
    for name, image in pixels.items():
        assert np.array_equal(load_image(copy / name), image), name  # the image data is untouched
    tags = json.loads(_exiftool("-j", "-XMP-mwg-rs:RegionName", str(copy / "eileen-again.jpg")))[0]
    assert tags["RegionName"] == "Eileen Collins"
    with CollectionStore.open(db) as store:
        report = index_folder(copy, store, analyzer)
        assert (report.unchanged, report.changed) == (3, 0)  # faceatlas recorded its own change
        assert {f.id for f in store.cluster_faces(_person(store, "Eileen Collins").id)} == before


def test_an_unwritable_sidecar_is_reported_and_the_others_are_written(library, indexed, tmp_path, analyzer):
    from faceatlas.collection.xmp_export import export_regions

    root, _ = library
    copy = tmp_path / "copy"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("*.xmp"))
    (copy / "eileen.jpg.xmp").mkdir()  # a folder where the sidecar would go: not writable, even as root
    with CollectionStore.open(tmp_path / "c.db") as store:
        index_folder(copy, store, analyzer)
        cluster_collection(store)
        for cluster in store.clusters():
            if {f.path for f in store.cluster_faces(cluster.id)} & {"eileen.jpg", "grace.jpg"}:
                store.name_cluster(cluster.id, f"Person {cluster.id}")
        report = export_regions(store)
    assert [path for path, _ in report.problems] == [str(copy / "eileen.jpg")]
    assert (copy / "grace.jpg.xmp").is_file() and (copy / "eileen.jpg.xmp").is_dir()


def _rect64(box: tuple[float, float, float, float], width: int, height: int) -> str:
    x1, y1, x2, y2 = box
    parts = [round(v * 65535) for v in (x1 / width, y1 / height, x2 / width, y2 / height)]
    return "".join(f"{p:04x}" for p in parts).lstrip("0")


def test_a_sidecar_tagged_after_indexing_is_read_on_the_next_run(tmp_path, astronaut, analyzer):
    Image.fromarray(astronaut).save(tmp_path / "eileen.jpg")
    with CollectionStore.open(tmp_path / "c.db") as store:
        index_folder(tmp_path, store, analyzer)
        (face,) = store.faces_of_photo(store.photos()[0].id)
        assert face.cluster is None
        import os
        import time

        _exiftool("-q", "-o", str(tmp_path / "eileen.xmp"), _mwg(face.box, "Eileen Collins", SIZE, SIZE),
                  str(tmp_path / "eileen.jpg"))  # fmt: skip  (darktable's name for it: eileen.xmp)
        later = time.time() + 5
        os.utime(tmp_path / "eileen.xmp", (later, later))
        report = index_folder(tmp_path, store, analyzer)
        assert (report.unchanged, report.named) == (1, 1)
        assert store.cluster(store.face(face.id).cluster).name == "Eileen Collins"
        assert index_folder(tmp_path, store, analyzer).named == 0  # read once


def test_names_from_picasa_and_takeout(tmp_path, astronaut, grace_hopper, analyzer):
    from faceatlas.cli import app

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(astronaut).save(photos / "eileen.jpg")
    Image.fromarray(grace_hopper).save(photos / "grace.jpg")
    (eileen,) = analyzer.analyze(astronaut)
    h, w = grace_hopper.shape[:2]
    (photos / ".picasa.ini").write_text(
        f"[eileen.jpg]\nfaces=rect64({_rect64(eileen.box.as_xyxy(), SIZE, SIZE)}),8e62398ebda8c1a5\n"
        "[Contacts2]\n8e62398ebda8c1a5=Eileen Collins;;\n"
    )
    takeout = photos  # a Takeout folder, as downloaded: photos and their JSON side by side
    (takeout / "grace.jpg.supplemental-metadata.json").write_text(
        json.dumps({"title": "grace.jpg", "photoTakenTime": {"timestamp": "1"}, "people": [{"name": "Grace Hopper"}]})
    )
    (takeout / "other.json").write_text("[1, 2, 3]")
    db = tmp_path / "c.db"
    result = CliRunner().invoke(app, ["index", str(photos), "--db", str(db), "--workers", "1",
                                      "--names-from", "picasa", "--names-from", f"takeout:{takeout}"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "names from Picasa: 1 photo(s), 1 face(s) named" in result.output
    assert "names from Google Takeout: 1 photo(s), 1 face(s) named" in result.output
    with CollectionStore.open(db) as store:
        assert sorted(c.name for c in store.clusters() if c.name) == ["Eileen Collins", "Grace Hopper"]
    bad = CliRunner().invoke(app, ["index", str(photos), "--db", str(db), "--names-from", "flickr"])
    assert bad.exit_code == 2 and "--names-from" in bad.output
