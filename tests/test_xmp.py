"""Face regions in XMP (faceatlas.xmp), checked against exiftool in both directions.

Photos are real JPEGs (120x80, not square) in all 8 EXIF orientations, made so that the displayed
image (``exif_transpose``) has two rectangles at known boxes. The stored-image boxes the MWG
Guidelines ask for are measured from the stored pixels, not computed by the code under test.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
from exiftool_util import ensure_exiftool, exiftool, exiftool_batch, exiftool_json, mp_struct, mwg_struct
from PIL import Image, ImageOps

from faceatlas.errors import InvalidImageError
from faceatlas.xmp import (
    MalformedXmpError,
    Region,
    SidecarNotWritableError,
    UnsupportedXmpTargetError,
    read_regions,
    remove_names,
    sidecar_path,
    write_embedded,
    write_sidecar,
)

ensure_exiftool()

SIZE = (120, 80)  # displayed width, height
ANN = (20.0, 10.0, 50.0, 40.0)  # displayed boxes
BOB = (70.0, 30.0, 104.0, 72.0)
ORIENTATIONS = range(1, 9)
# what stored image gives the displayed one under exif_transpose: the inverse of its transpose
INVERSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}
MAX_ROUND_TRIP_PX: list[float] = []


def _displayed() -> Image.Image:
    pixels = np.full((SIZE[1], SIZE[0], 3), 40, np.uint8)
    for (x0, y0, x1, y1), channel in ((ANN, 0), (BOB, 1)):
        pixels[int(y0) : int(y1), int(x0) : int(x1), channel] = 255
    return Image.fromarray(pixels)


def _stored(orientation: int) -> tuple[Image.Image, list[tuple[float, float, float, float]]]:
    """The stored image for ``orientation`` and the normalised stored boxes of Ann and Bob,
    measured from its pixels."""
    shown = _displayed()
    stored = shown.transpose(INVERSE[orientation]) if orientation in INVERSE else shown
    arr = np.asarray(stored)
    boxes = []
    for channel in (0, 1):
        ys, xs = np.nonzero(arr[..., channel] == 255)
        w, h = stored.size
        boxes.append((xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h))
    return stored, boxes


def _save_jpeg(image: Image.Image, path: Path, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    image.save(path, quality=95, exif=exif.tobytes())


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _close(a, b, tol: float) -> bool:
    return max(abs(x - y) for x, y in zip(a, b, strict=True)) <= tol


def _by_name(regions) -> dict:
    return {r.name: r for r in regions}


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict:
    """Per orientation: a JPEG with regions embedded, one with regions in a sidecar (both written by
    exiftool as digiKam does), one with MP regions; and the stored boxes. One exiftool process."""
    root = tmp_path_factory.mktemp("xmp")
    made: dict = {}
    commands = []
    for o in ORIENTATIONS:
        stored, (ann, bob) = _stored(o)
        dims = stored.size
        mwg = mwg_struct([(ann, "Ann", "Face"), (bob, "Bob", "Face")], dims)
        paths = {kind: root / f"{kind}{o}.jpg" for kind in ("embedded", "sidecar", "mp")}
        for path in paths.values():
            _save_jpeg(stored, path, o)
        commands.append(["-q", "-overwrite_original", f"-XMP-mwg-rs:RegionInfo={mwg}", str(paths["embedded"])])
        commands.append(["-q", f"-XMP-mwg-rs:RegionInfo={mwg}", str(root / f"sidecar{o}.jpg.xmp")])
        mp = mp_struct([(ann, "Ann"), (bob, "Bob")])
        commands.append(["-q", "-overwrite_original", f"-XMP-MP:RegionInfoMP={mp}", str(paths["mp"])])
        made[o] = {"stored": (ann, bob), "dims": dims, **paths}
    exiftool_batch(commands)
    return made


def test_the_photos_display_the_rectangles_where_the_tests_expect_them(photos) -> None:
    for o in ORIENTATIONS:
        with Image.open(photos[o]["embedded"]) as im:
            assert im.getexif().get(0x0112) == o
            shown = np.asarray(ImageOps.exif_transpose(im))
        assert shown.shape[:2] == (SIZE[1], SIZE[0])
        ys, xs = np.nonzero(shown[..., 0] > 200)
        assert _close((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1), ANN, 2), o


@pytest.mark.parametrize("orientation", ORIENTATIONS)
@pytest.mark.parametrize("where", ["embedded", "sidecar"])
def test_exiftool_written_mwg_regions_come_back_in_displayed_pixels(photos, where: str, orientation: int) -> None:
    found = read_regions(photos[orientation][where])
    assert found.problems == ()
    regions = _by_name(found.regions)
    assert set(regions) == {"Ann", "Bob"}
    assert _close(regions["Ann"].box, ANN, 1.0) and _close(regions["Bob"].box, BOB, 1.0)
    assert {(r.kind, r.source, r.origin) for r in found.regions} == {("Face", "mwg", where)}


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_exiftool_written_mp_regions_come_back_in_displayed_pixels(photos, orientation: int) -> None:
    found = read_regions(photos[orientation]["mp"])
    regions = _by_name(found.regions)
    assert set(regions) == {"Ann", "Bob"} and found.problems == ()
    assert _close(regions["Ann"].box, ANN, 1.0) and _close(regions["Bob"].box, BOB, 1.0)
    assert {r.source for r in found.regions} == {"mp"}


def test_given_bytes_size_and_orientation_the_file_is_not_read_again(photos, tmp_path) -> None:
    data = photos[6]["embedded"].read_bytes()
    gone = tmp_path / "not-there.jpg"  # a path that does not exist: only the bytes can be used
    found = read_regions(gone, data=data, size=SIZE, orientation=6)
    assert _close(_by_name(found.regions)["Ann"].box, ANN, 1.0)
    assert _by_name(read_regions(gone, data=data).regions)["Ann"].box == _by_name(found.regions)["Ann"].box


def test_the_sidecar_wins_over_embedded_and_mwg_over_mp(photos, tmp_path) -> None:
    stored, (ann, bob) = _stored(6)
    photo = tmp_path / "both.jpg"
    _save_jpeg(stored, photo, 6)
    exiftool_batch(
        [
            [
                "-q",
                "-overwrite_original",
                f"-XMP-mwg-rs:RegionInfo={mwg_struct([(ann, 'Ann', 'Face')], stored.size)}",
                f"-XMP-MP:RegionInfoMP={mp_struct([(bob, 'Someone Else')])}",
                str(photo),
            ],
            [
                "-q",
                f"-XMP-mwg-rs:RegionInfo={mwg_struct([(bob, 'Carol', 'Face')], stored.size)}",
                str(tmp_path / "both.xmp"),
            ],
        ]
    )
    found = read_regions(photo)  # both.xmp: the Lightroom / exiftool "%f.xmp" convention
    assert [(r.name, r.origin) for r in found.regions] == [("Carol", "sidecar")]
    assert _close(found.regions[0].box, BOB, 1.0)
    (tmp_path / "both.xmp").rename(tmp_path / "elsewhere.xmp")
    embedded_only = read_regions(photo)
    assert [(r.name, r.source) for r in embedded_only.regions] == [("Ann", "mwg")]  # MP ignored: MWG is there


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_written_sidecars_are_read_by_exiftool_and_round_trip(photos, tmp_path, orientation: int) -> None:
    photo = tmp_path / f"plain{orientation}.jpg"
    stored, (ann, bob) = _stored(orientation)
    _save_jpeg(stored, photo, orientation)
    before = _sha(photo)
    target = write_sidecar(photo, [Region(ANN, "Ann"), Region(BOB, None)], size=SIZE, orientation=orientation)
    assert target == photo.with_name(photo.name + ".xmp") == sidecar_path(photo)
    assert _sha(photo) == before  # the photo itself is never touched
    info = exiftool_json([target], "-XMP-mwg-rs:RegionInfo")[0]["XMP-mwg-rs:RegionInfo"]
    assert info["AppliedToDimensions"] == {"W": stored.size[0], "H": stored.size[1], "Unit": "pixel"}
    areas = {r.get("Name"): r for r in info["RegionList"]}
    for name, truth in (("Ann", ann), (None, bob)):
        a = areas[name]["Area"]
        assert a["Unit"] == "normalized" and areas[name]["Type"] == "Face"
        got = (a["X"] - a["W"] / 2, a["Y"] - a["H"] / 2, a["X"] + a["W"] / 2, a["Y"] + a["H"] / 2)
        assert _close(got, truth, 1e-5), (name, got, truth)
    back = _by_name(read_regions(photo).regions)
    error = max(
        max(abs(x - y) for x, y in zip(back[k].box, box, strict=True)) for k, box in (("Ann", ANN), (None, BOB))
    )
    MAX_ROUND_TRIP_PX.append(error)
    assert error <= 0.5
    print(f"orientation {orientation}: round-trip box error {error:.2e} px")


def test_write_sidecar_preserves_everything_else(tmp_path) -> None:
    photo = tmp_path / "kept.jpg"
    stored, (ann, bob) = _stored(1)
    _save_jpeg(stored, photo, 1)
    side = photo.with_name("kept.jpg.xmp")
    shifted = (ann[0] + 0.01, ann[1] + 0.01, ann[2] + 0.01, ann[3] + 0.01)  # the same face, a tool's own box
    cat = (0.85, 0.05, 0.95, 0.2)
    unnamed = (0.0, 0.6, 0.1, 0.9)
    regions = [(shifted, "ann", "Face"), (cat, "Tom", "Pet"), (unnamed, None, "Face"), (bob, "Old Name", "Face")]
    exiftool(
        "-q",
        "-XMP-dc:Subject=holiday",
        "-XMP-dc:Subject=beach",
        "-XMP-xmp:Rating=4",
        f"-XMP-mwg-rs:RegionInfo={mwg_struct(regions, stored.size)}",
        str(side),
    )
    write_sidecar(photo, [Region(ANN, "Ann"), Region(BOB, "New Name")], size=SIZE, replace_names=["OLD NAME"])
    meta = exiftool_json([side], "-XMP:all")[0]
    assert meta["XMP-dc:Subject"] == ["holiday", "beach"] and meta["XMP-xmp:Rating"] == 4
    listed = sorted((r.get("Name", ""), r["Type"]) for r in meta["XMP-mwg-rs:RegionInfo"]["RegionList"])
    assert listed == sorted([("Ann", "Face"), ("New Name", "Face"), ("Tom", "Pet"), ("", "Face")])
    found = _by_name(read_regions(photo).regions)
    assert _close(found["Ann"].box, ANN, 0.5) and found["Tom"].kind == "Pet"
    assert _close(found[None].box, (0.0, 48.0, 12.0, 72.0), 0.5)  # the unnamed one, elsewhere: kept as it was


def test_lightroom_style_attributes_and_names_are_normalised(tmp_path) -> None:
    photo = tmp_path / "lr.jpg"
    _save_jpeg(_displayed(), photo, 1)
    (tmp_path / "lr.xmp").write_text(
        """<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
 <rdf:Description rdf:about="" xmlns:mwg-rs="http://www.metadataworkinggroup.com/schemas/regions/"
   xmlns:stDim="http://ns.adobe.com/xap/1.0/sType/Dimensions#" xmlns:stArea="http://ns.adobe.com/xmp/sType/Area#">
  <mwg-rs:Regions rdf:parseType="Resource">
   <mwg-rs:AppliedToDimensions stDim:w="1200" stDim:h="800" stDim:unit="pixel"/>
   <mwg-rs:RegionList><rdf:Bag>
    <rdf:li><rdf:Description mwg-rs:Name="  Zoe\u0308  " mwg-rs:Type="Face">
      <mwg-rs:Area stArea:x="0.2916667" stArea:y="0.3125" stArea:w="0.25" stArea:h="0.375" stArea:unit="normalized"/>
    </rdf:Description></rdf:li>
    <rdf:li><rdf:Description mwg-rs:Name="   " mwg-rs:Type="Face">
      <mwg-rs:Area stArea:x="0.9" stArea:y="0.9" stArea:w="0.1" stArea:h="0.1" stArea:unit="normalized"/>
    </rdf:Description></rdf:li>
   </rdf:Bag></mwg-rs:RegionList>
  </mwg-rs:Regions></rdf:Description></rdf:RDF></x:xmpmeta>""",
        encoding="utf-8",
    )
    found = read_regions(photo)  # AppliedToDimensions 10x the photo: the same aspect, so it scales
    assert found.problems == ()
    assert [r.name for r in found.regions] == ["Zo\u00eb", None]
    assert _close(found.regions[0].box, ANN, 0.01)


BAD = """<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
 <rdf:Description rdf:about="" xmlns:mwg-rs="http://www.metadataworkinggroup.com/schemas/regions/"
   xmlns:stDim="http://ns.adobe.com/xap/1.0/sType/Dimensions#" xmlns:stArea="http://ns.adobe.com/xmp/sType/Area#">
  <mwg-rs:Regions rdf:parseType="Resource">
   <mwg-rs:AppliedToDimensions stDim:w="{w}" stDim:h="{h}" stDim:unit="pixel"/>
   <mwg-rs:RegionList><rdf:Bag>{items}</rdf:Bag></mwg-rs:RegionList>
  </mwg-rs:Regions></rdf:Description></rdf:RDF></x:xmpmeta>"""
ITEM = """<rdf:li rdf:parseType="Resource"><mwg-rs:Name>{name}</mwg-rs:Name><mwg-rs:Type>Face</mwg-rs:Type>
  <mwg-rs:Area stArea:x="{x}" stArea:y="{y}" stArea:w="{w}" stArea:h="{h}" stArea:unit="normalized"/></rdf:li>"""


def _bad_sidecar(path: Path, items: list[tuple], dims=(120, 80)) -> None:
    body = "".join(ITEM.format(name=n, x=x, y=y, w=w, h=h) for n, x, y, w, h in items)
    path.write_text(BAD.format(w=dims[0], h=dims[1], items=body), encoding="utf-8")


def test_bad_regions_are_reported_and_skipped_the_good_ones_kept(tmp_path) -> None:
    photo = tmp_path / "bad.jpg"
    _save_jpeg(_displayed(), photo, 1)
    _bad_sidecar(
        photo.with_name("bad.jpg.xmp"),
        [
            ("Good", 0.2917, 0.3125, 0.25, 0.375),
            ("Outside", 1.5, 1.5, 0.1, 0.1),
            ("NotANumber", "NaN", 0.5, 0.1, 0.1),
            ("Flat", 0.5, 0.5, 0, 0.1),
            ("Words", "left", 0.5, 0.1, 0.1),
            ("Edge", 0.95, 0.5, 0.2, 0.2),
        ],
    )
    before = _sha(photo.with_name("bad.jpg.xmp"))
    found = read_regions(photo)
    assert sorted(r.name for r in found.regions) == ["Edge", "Good"]
    assert _by_name(found.regions)["Edge"].box == pytest.approx((102.0, 32.0, 120.0, 48.0))  # 102..126, clipped
    text = " ".join(found.problems)
    for name in ("Outside", "NotANumber", "Flat", "Words"):
        assert name in text
    assert len(found.problems) == 4
    assert _sha(photo.with_name("bad.jpg.xmp")) == before


@pytest.mark.parametrize(
    ("dims", "orientation", "expect"),
    [
        ((100, 100), 1, "does not match"),
        ((80, 120), 1, "only turned"),
        ((120, 80), 6, "matches the displayed image"),  # a writer that used the displayed frame
    ],
)
def test_applied_to_dimensions_of_another_aspect(tmp_path, dims, orientation: int, expect: str) -> None:
    photo = tmp_path / "dims.jpg"
    stored, _ = _stored(orientation)
    _save_jpeg(stored, photo, orientation)
    _bad_sidecar(photo.with_name("dims.jpg.xmp"), [("Ann", 35 / 120, 25 / 80, 30 / 120, 30 / 80)], dims)
    found = read_regions(photo)
    assert expect in " ".join(found.problems)
    if expect == "matches the displayed image":
        assert _close(found.regions[0].box, ANN, 0.01)
    else:
        assert found.regions == ()


def test_malformed_or_unsafe_xml_is_reported_and_never_rewritten(photos, tmp_path) -> None:
    photo = tmp_path / "m.jpg"
    photo.write_bytes(photos[1]["embedded"].read_bytes())
    side = photo.with_name("m.jpg.xmp")
    for text in (
        "<x:xmpmeta><rdf:RDF>this is not XML",
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x:xmpmeta xmlns:x="adobe:ns:meta/">&a;</x:xmpmeta>',
    ):
        side.write_text(text)
        before = _sha(side)
        found = read_regions(photo)
        assert {r.name for r in found.regions} == {"Ann", "Bob"}  # the embedded ones, since the sidecar is unusable
        assert any("m.jpg.xmp" in p and "ignored" in p for p in found.problems)
        with pytest.raises(MalformedXmpError):
            write_sidecar(photo, [Region(ANN, "Ann")], size=SIZE)
        with pytest.raises(MalformedXmpError):
            remove_names(side, ["Ann"])
        assert _sha(side) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.jpg", "m.jpg.xmp"]  # no temporary file left


def test_a_sidecar_that_cannot_be_written_raises_and_changes_nothing(tmp_path) -> None:
    photo = tmp_path / "ro.jpg"
    _save_jpeg(_displayed(), photo, 1)
    (tmp_path / "ro.jpg.xmp").mkdir()  # a folder where the sidecar goes: not writable, even as root
    with pytest.raises(SidecarNotWritableError):
        write_sidecar(photo, [Region(ANN, "Ann")], size=SIZE)
    assert (tmp_path / "ro.jpg.xmp").is_dir() and not any((tmp_path / "ro.jpg.xmp").iterdir())
    if os.geteuid() == 0:
        return  # chmod does not stop root; the directory case above covers it
    side = tmp_path / "ro2.jpg.xmp"
    write_sidecar(photo, [Region(ANN, "Ann")], size=SIZE, sidecar=side)
    side.chmod(0o444)
    before = _sha(side)
    with pytest.raises(SidecarNotWritableError):
        write_sidecar(photo, [Region(BOB, "Bob")], size=SIZE, sidecar=side)
    assert _sha(side) == before


def test_a_rewritten_sidecar_keeps_its_mode(tmp_path) -> None:
    photo = tmp_path / "mode.jpg"
    _save_jpeg(_displayed(), photo, 1)
    side = write_sidecar(photo, [Region(ANN, "Ann")], size=SIZE)
    side.chmod(0o640)
    write_sidecar(photo, [Region(BOB, "Bob")], size=SIZE)
    assert side.stat().st_mode & 0o777 == 0o640
    assert {r.name for r in read_regions(photo).regions} == {"Ann", "Bob"}


def test_unreadable_photos_and_unsupported_targets(tmp_path) -> None:
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not an image at all")
    with pytest.raises(InvalidImageError):
        read_regions(junk)
    with pytest.raises(InvalidImageError):
        read_regions(tmp_path / "missing.jpg")
    assert read_regions(junk, size=SIZE, orientation=1).regions == ()  # size known: nothing to find, no error
    png = tmp_path / "p.png"
    _displayed().save(png)
    before = _sha(png)
    with pytest.raises(UnsupportedXmpTargetError):
        write_embedded(png, [Region(ANN, "Ann")], size=SIZE, orientation=1)
    assert _sha(png) == before


def _scan_data(data: bytes) -> bytes:
    return data[data.index(b"\xff\xda") :]


def test_write_embedded_changes_only_the_xmp_segment(tmp_path) -> None:
    photo = tmp_path / "e.jpg"
    stored, _ = _stored(6)
    _save_jpeg(stored, photo, 6)
    exiftool("-q", "-overwrite_original", "-EXIF:Artist=Someone", str(photo))
    original = photo.read_bytes()
    with Image.open(photo) as im:
        pixels, exif = np.asarray(im).copy(), im.info["exif"]
    warnings_before = exiftool("-validate", "-warning", "-a", "-s3", str(photo))
    write_embedded(photo, [Region(ANN, "Ann"), Region(BOB, "Bob")], size=SIZE, orientation=6)
    write_embedded(photo, [Region(ANN, "Ann Again")], size=SIZE, orientation=6)  # replaces the segment it made
    after = photo.read_bytes()
    with Image.open(photo) as im:
        assert np.array_equal(np.asarray(im), pixels) and im.info["exif"] == exif
    assert _scan_data(after) == _scan_data(original)
    assert after.count(b"http://ns.adobe.com/xap/1.0/\x00") == 1
    assert exiftool("-validate", "-warning", "-a", "-s3", str(photo)) == warnings_before
    info = exiftool_json([photo], "-XMP-mwg-rs:RegionInfo", "-EXIF:Artist")[0]
    assert info["IFD0:Artist"] == "Someone"
    assert sorted(r["Name"] for r in info["XMP-mwg-rs:RegionInfo"]["RegionList"]) == ["Ann Again", "Bob"]
    found = _by_name(read_regions(photo).regions)
    assert _close(found["Ann Again"].box, ANN, 0.5) and _close(found["Bob"].box, BOB, 0.5)
    assert remove_names(photo, ["ann again"]) == 0  # no sidecar, embedded not asked for
    assert remove_names(photo, ["ann again"], embedded=True) == 1
    assert [r.name for r in read_regions(photo).regions] == ["Bob"]
    assert _scan_data(photo.read_bytes()) == _scan_data(original)


def test_remove_names_keeps_the_rest_and_counts_mwg_and_mp_once(photos, tmp_path) -> None:
    photo = tmp_path / "dk.jpg"
    stored, (ann, bob) = _stored(1)
    _save_jpeg(stored, photo, 1)
    side = tmp_path / "dk.jpg.xmp"
    exiftool(
        "-q",
        "-XMP-xmp:Rating=3",
        f"-XMP-mwg-rs:RegionInfo={mwg_struct([(ann, 'Ann', 'Face'), (bob, 'Bob', 'Face')], stored.size)}",
        f"-XMP-MP:RegionInfoMP={mp_struct([(ann, 'Ann'), (bob, 'Bob')])}",
        str(side),
    )  # digiKam writes both lists
    assert remove_names(side, ["ANN", "nobody"]) == 1
    assert remove_names(side, ["ann"]) == 0
    meta = exiftool_json([side], "-XMP:all")[0]
    assert [r["Name"] for r in meta["XMP-mwg-rs:RegionInfo"]["RegionList"]] == ["Bob"]
    assert [r["PersonDisplayName"] for r in meta["XMP-MP:RegionInfoMP"]["Regions"]] == ["Bob"]
    assert meta["XMP-xmp:Rating"] == 3
    # renaming Bob: the MP list follows the MWG one
    write_sidecar(photo, [Region(BOB, "Robert")], size=SIZE, replace_names=["bob"])
    meta = exiftool_json([side], "-XMP:all")[0]
    assert [r["Name"] for r in meta["XMP-mwg-rs:RegionInfo"]["RegionList"]] == ["Robert"]
    assert [r["PersonDisplayName"] for r in meta["XMP-MP:RegionInfoMP"]["Regions"]] == ["Robert"]


def test_max_round_trip_error_is_recorded() -> None:
    if not MAX_ROUND_TRIP_PX:
        pytest.skip("the round-trip tests did not run")
    worst = max(MAX_ROUND_TRIP_PX)
    print(json.dumps({"max_round_trip_px": worst}))
    assert math.isfinite(worst) and worst <= 0.5


def test_rewriting_a_displayed_frame_sidecar_moves_its_regions_to_the_stored_frame(tmp_path) -> None:
    photo = tmp_path / "df.jpg"
    stored, _ = _stored(6)
    _save_jpeg(stored, photo, 6)
    side = photo.with_name("df.jpg.xmp")
    # a writer that used the displayed 120x80 frame for a photo stored 80x120, with a camera's Focus point
    _bad_sidecar(side, [("Ann", 35 / 120, 25 / 80, 30 / 120, 30 / 80)], (120, 80))
    exiftool(
        "-q",
        "-overwrite_original",
        "-XMP-mwg-rs:RegionList+={Area={X=0.29,Y=0.31,W=0.2,H=0.3,Unit=normalized},Type=Focus,Name=AF}",
        str(side),
    )
    assert "matches the displayed image" in " ".join(read_regions(photo).problems)
    write_sidecar(photo, [Region(BOB, "Bob")], size=SIZE, orientation=6)
    found = read_regions(photo)
    assert found.problems == ()  # now all in the stored frame, with the stored AppliedToDimensions
    regions = _by_name(found.regions)
    assert _close(regions["Ann"].box, ANN, 0.01) and _close(regions["Bob"].box, BOB, 0.5)
    assert regions["AF"].kind == "Focus"
    # a new face over the Focus region replaces Ann (a face) but keeps the camera's Focus region
    write_sidecar(photo, [Region(ANN, "Ann Two")], size=SIZE, orientation=6)
    assert sorted(r.name for r in read_regions(photo).regions) == ["AF", "Ann Two", "Bob"]


def test_write_arguments_are_checked_and_nothing_is_written_for_nothing(tmp_path) -> None:
    from faceatlas.errors import InvalidArgumentError

    photo = tmp_path / "n.jpg"
    _save_jpeg(_displayed(), photo, 1)
    for bad in ((float("nan"), 0, 10, 10), (200, 100, 300, 200), (5, 5, 5, 20)):
        with pytest.raises(InvalidArgumentError):
            write_sidecar(photo, [Region(bad, "X")], size=SIZE)
    with pytest.raises(InvalidArgumentError):
        write_sidecar(photo, [Region(ANN, "X")], size=(0, 80))
    with pytest.raises(InvalidArgumentError):
        write_sidecar(photo, [Region(ANN, "X")], size=SIZE, orientation=9)
    assert write_sidecar(photo, [], size=SIZE, replace_names=["x"]) == tmp_path / "n.jpg.xmp"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.jpg"]  # no empty sidecar made


@pytest.mark.parametrize("suffix", [".png", ".tif", ".webp"])
def test_embedded_xmp_of_other_formats(tmp_path, suffix: str) -> None:
    stored, (ann, _bob) = _stored(1)
    photo = tmp_path / f"other{suffix}"
    stored.save(photo)
    mwg = mwg_struct([(ann, "Ann", "Face")], stored.size)
    exiftool("-q", "-overwrite_original", f"-XMP-mwg-rs:RegionInfo={mwg}", str(photo))
    found = read_regions(photo)
    assert [(r.name, r.origin) for r in found.regions] == [("Ann", "embedded")]
    assert _close(found.regions[0].box, ANN, 1.0)
