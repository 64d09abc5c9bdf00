"""`faceatlas blur`: copies for sharing with every face blurred except the people named.

A real group photo (dlib's example faces: three people), indexed into a real collection or
identified against a real gallery with the default models. The kept face's pixels stay as they
were; every other face is blurred so far that the detector no longer finds it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from faceatlas.collection.blur import MARGIN, BlurError, blur_faces, blur_regions
from faceatlas.image import load_image

GROUP = Path("/work/shared/data/dlib_faces/examples/faces/2008_002506.jpg")  # three people, faces ~100 px
needs_group = pytest.mark.skipif(not GROUP.exists(), reason=f"the test photo {GROUP} is not on this machine")


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def inner(box, fraction: float = 0.5) -> tuple[slice, slice]:
    """The central part of a box (rows, columns): no other face's blur reaches it."""
    x1, y1, x2, y2 = box
    dx, dy = (x2 - x1) * (1 - fraction) / 2, (y2 - y1) * (1 - fraction) / 2
    return slice(int(y1 + dy), int(y2 - dy)), slice(int(x1 + dx), int(x2 - dx))


def sharpness(pixels: np.ndarray, box) -> float:
    """Mean squared difference of neighbouring pixels inside the box: the detail a face has."""
    rows, cols = inner(box, 0.9)
    patch = pixels[rows, cols].astype(np.float64).mean(axis=2)
    return float((np.diff(patch, axis=0) ** 2).mean() + (np.diff(patch, axis=1) ** 2).mean())


@pytest.fixture
def photos(tmp_path) -> Path:
    """The group photo as a lossless PNG (so kept pixels compare exactly), in a folder of its own."""
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.open(GROUP).convert("RGB").save(folder / "group.png")
    return folder


@pytest.fixture
def faces(analyzer, photos) -> list[tuple[float, float, float, float]]:
    found = analyzer.analyze(load_image(photos / "group.png"))
    assert len(found) == 3
    return [f.box.as_xyxy() for f in sorted(found, key=lambda f: f.box.x1)]  # left to right


def check_blurred(analyzer, original: np.ndarray, copy: np.ndarray, kept, blurred) -> None:
    assert copy.shape == original.shape
    for box in kept:
        rows, cols = inner(box)
        assert np.array_equal(copy[rows, cols], original[rows, cols])
    still = [f.box.as_xyxy() for f in analyzer.analyze(copy)]
    for box in blurred:
        assert sharpness(copy, box) < 0.1 * sharpness(original, box)
        assert all(iou(box, found) < 0.3 for found in still), "a blurred face is still detected"
    for box in kept:
        assert any(iou(box, found) > 0.5 for found in still)


@needs_group
def test_a_collection_photo_keeps_the_named_persons_face_and_blurs_the_others(analyzer, photos, faces, tmp_path):
    from faceatlas.collection.indexer import index_folder
    from faceatlas.collection.store import CollectionStore

    before = sha(photos / "group.png")
    with CollectionStore.open(tmp_path / "c.db") as store:
        index_folder(photos, store, analyzer)
        (record,) = store.photos()
        stored = sorted(store.faces_of_photo(record.id), key=lambda f: f.box[0])
        store.set_clusters([f.id for f in stored], [0, 1, 2])
        store.name_cluster(store.face(stored[1].id).cluster, "Middle")  # the middle one; the others stay unnamed
        out = tmp_path / "shared"
        report = blur_faces(photos, out, ["Middle"], collection=store)
    assert sha(photos / "group.png") == before
    (done,) = report.written
    assert (done.output, done.kept, done.blurred, done.how) == (out / "group.png", ("Middle",), 2, "collection")
    original, copy = load_image(photos / "group.png"), load_image(out / "group.png")
    check_blurred(analyzer, original, copy, kept=[faces[1]], blurred=[faces[0], faces[2]])


@needs_group
def test_a_photo_outside_the_collection_is_identified_against_the_gallery(analyzer, photos, faces, tmp_path):
    from faceatlas.gallery.gallery import Gallery

    pixels = load_image(photos / "group.png")
    x1, y1, x2, y2 = (int(v) for v in faces[2])
    crop = np.ascontiguousarray(pixels[max(0, y1 - 40) : y2 + 40, max(0, x1 - 30) : x2 + 30])
    with Gallery.open(tmp_path / "g.db", analyzer=analyzer) as gallery:
        gallery.enroll("Right", [crop])
        report = blur_faces(photos / "group.png", tmp_path / "out", ["Right"], gallery=gallery)
        nobody = blur_faces(photos / "group.png", tmp_path / "all", [], gallery=gallery)
    (done,) = report.written
    assert (done.kept, done.blurred, done.how) == (("Right",), 2, "gallery")
    check_blurred(analyzer, pixels, load_image(done.output), kept=[faces[2]], blurred=faces[:2])
    assert nobody.written[0].blurred == 3 and not nobody.written[0].kept


@needs_group
def test_bad_inputs_are_refused_or_reported(analyzer, photos, tmp_path):
    from faceatlas.gallery.gallery import Gallery

    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    (photos / "shared").mkdir()  # an output folder inside the photos' folder: its files are not inputs
    (photos / "shared" / "old.png").write_bytes((photos / "group.png").read_bytes())
    before = {p: sha(p) for p in photos.rglob("*") if p.is_file()}
    with Gallery.open(tmp_path / "g.db", analyzer=analyzer) as gallery:
        with pytest.raises(BlurError, match="'Nobody'"):
            blur_faces(photos, tmp_path / "out", ["Nobody"], gallery=gallery)
        for out in (photos, photos / "." / ""):
            with pytest.raises(BlurError, match="overwritten"):
                blur_faces(photos, out, [], gallery=gallery)
        with pytest.raises(BlurError, match="overwritten"):
            blur_faces(photos / "group.png", photos, [], gallery=gallery)
        assert not (tmp_path / "out").exists()
        report = blur_faces(photos, photos / "shared", [], gallery=gallery)
    assert [p.output for p in report.written] == [photos / "shared" / "group.png"]
    assert [(p.name, "cannot" in why or "not" in why) for p, why in report.skipped] == [("broken.jpg", True)]
    assert {p: sha(p) for p in before} == before  # the originals, and the older copy, untouched


@needs_group
def test_metadata_is_stripped_and_the_displayed_orientation_written(analyzer, tmp_path):
    from faceatlas.gallery.gallery import Gallery

    folder = tmp_path / "photos"
    folder.mkdir()
    upright = Image.open(GROUP).convert("RGB")
    exif = Image.Exif()
    exif[0x010F] = "TestCam"  # Make
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    exif.get_ifd(0x8825).update({1: "N", 2: (52.0, 31.0, 12.0)})  # GPS latitude
    upright.transpose(Image.Transpose.ROTATE_90).save(folder / "turned.jpg", exif=exif.tobytes(), quality=95)
    shown = load_image(folder / "turned.jpg")
    assert shown.shape[:2] == (upright.height, upright.width)
    with Gallery.open(tmp_path / "g.db", analyzer=analyzer) as gallery:
        plain = blur_faces(folder, tmp_path / "plain", [], gallery=gallery)
        kept = blur_faces(folder, tmp_path / "kept", [], gallery=gallery, keep_metadata=True)
    assert plain.written[0].blurred == 3
    with Image.open(plain.written[0].output) as copy:
        assert (copy.height, copy.width) == shown.shape[:2] and not copy.getexif() and "xmp" not in copy.info
    with Image.open(kept.written[0].output) as copy:
        data = copy.getexif()
        assert (copy.height, copy.width) == shown.shape[:2]
        assert data.get(0x010F) == "TestCam" and data.get(0x0112) == 1 and not data.get_ifd(0x8825)


def test_blur_regions_leaves_only_a_coarse_grid_of_the_face():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)
    box = (100.0, 50.0, 160.0, 130.0)
    out = blur_regions(pixels, [box])
    rows, cols = inner(box, 1.0)
    face = out[rows, cols].astype(np.float64)
    # noise of std ~74 becomes smooth: neighbouring pixels differ by little, and the grid is coarse
    assert np.abs(np.diff(face, axis=1)).mean() < 3 and face.std() < 0.2 * pixels[rows, cols].std()
    grow = MARGIN * 80
    outside = np.ones(pixels.shape[:2], bool)
    outside[int(50 - grow) : int(130 + grow) + 1, int(100 - grow) : int(160 + grow) + 1] = False
    assert np.array_equal(out[outside], pixels[outside])  # nothing beyond the enlarged box changes
    assert np.array_equal(blur_regions(pixels, []), pixels)


@needs_group
def test_blur_cli(analyzer, photos, tmp_path, monkeypatch):
    from faceatlas.cli import app
    from faceatlas.gallery.gallery import Gallery

    pixels = load_image(photos / "group.png")
    with Gallery.open(tmp_path / "g.db", analyzer=analyzer) as gallery:
        gallery.enroll("Someone", [pixels[:, :220].copy()])  # the left part: one face, to have a name
    monkeypatch.setenv("FACEATLAS_COLLECTION", str(tmp_path / "none.db"))
    runner = CliRunner()
    where = ["--gallery", str(tmp_path / "g.db")]
    result = runner.invoke(app, ["blur", str(photos), "-o", str(tmp_path / "out"), "--except", "Someone", *where])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "group.png").exists() and "kept Someone" in result.stdout
    bad = runner.invoke(app, ["blur", str(photos), "-o", str(photos), *where])
    assert bad.exit_code != 0 and "overwritten" in bad.output
    unknown = runner.invoke(app, ["blur", str(photos), "-o", str(tmp_path / "o2"), "--except", "Ada,Bo", *where])
    assert unknown.exit_code != 0 and "'Ada', 'Bo'" in unknown.output
