"""Names that live in the files, measured (issue 16): how exactly face regions survive a round trip
through exiftool, and how far a few tagged photos per person spread their names.

    python benchmarks/xmp_names.py                      # LFW DevTest (../shared/data), ~5 min on 2 cores
    python benchmarks/xmp_names.py --lfw ~/faceatlas-data/lfw/lfw-deepfunneled --json out.json

1. **Round trip.** For photos in all 8 EXIF orientations: faceatlas writes a region into a
   sidecar, exiftool reads it (``-j -struct``), and faceatlas reads what exiftool wrote; the box
   error in displayed pixels, both ways.
2. **Spread.** A library is built from LFW (a copy of the images, one folder per photo so names in
   paths cannot help); of each person with at least 3 photos, K photos get an MWG sidecar naming
   them (the box the user's tool drew: the central face's detection box moved and scaled by up to
   10 %); ``faceatlas index`` imports them, ``faceatlas cluster`` spreads them. Then, over the
   untagged photos: a name is right when it is the person's; precision = right / named, recall =
   right / untagged photos of tagged people; people never tagged must get no name (false names).
   K = 1, then 2 (the second round edits sidecars of indexed photos: they are read again, the
   photos not analysed again).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import LFW_DEVTEST, machine, require


def round_trip(work: Path, exiftool: str) -> dict:
    from PIL import Image

    from faceatlas.xmp import Region, read_regions, write_sidecar

    rng = np.random.default_rng(0)
    errors_write, errors_read = [], []
    for orientation in range(1, 9):
        stored = (rng.integers(0, 255, size=(300, 420, 3))).astype(np.uint8)
        path = work / f"o{orientation}.jpg"
        exif = Image.Exif()
        exif[0x0112] = orientation
        Image.fromarray(stored).save(path, exif=exif)
        width, height = (300, 420) if orientation >= 5 else (420, 300)  # displayed
        for _ in range(10):
            x1, y1 = rng.uniform(0, width * 0.6), rng.uniform(0, height * 0.6)
            box = (x1, y1, x1 + rng.uniform(20, width * 0.35), y1 + rng.uniform(20, height * 0.35))
            sidecar = write_sidecar(path, [Region(box, "Ada Lovelace")], size=(width, height), orientation=orientation)
            # exiftool reads faceatlas' sidecar: the area in stored, normalised coordinates
            meta = json.loads(subprocess.run([exiftool, "-j", "-struct", "-XMP-mwg-rs:RegionInfo", str(sidecar)],
                                             capture_output=True, text=True, check=True).stdout)[0]  # fmt: skip
            (region,) = meta["RegionInfo"]["RegionList"]
            area = region["Area"]
            # exiftool writes it back (as another tool would), faceatlas reads it
            sidecar.unlink()
            info = {"AppliedToDimensions": meta["RegionInfo"]["AppliedToDimensions"],
                    "RegionList": [{"Area": area, "Name": "Ada Lovelace", "Type": "Face"}]}  # fmt: skip
            subprocess.run([exiftool, "-q", "-o", str(sidecar), "-j=-", str(path)], check=True, text=True,
                           input=json.dumps([{"SourceFile": "*", "XMP-mwg-rs:RegionInfo": info}]))  # fmt: skip
            (read,) = read_regions(path).regions
            errors_read.append(float(np.abs(np.subtract(read.box, box)).max()))
            sidecar.unlink()
            errors_write.append(_stored_area_error(area, box, (width, height), orientation))
    return {
        "photos": 80,
        "faceatlas_to_exiftool_to_faceatlas_max_px": max(errors_read),
        "faceatlas_to_exiftool_to_faceatlas_mean_px": float(np.mean(errors_read)),
        "area_vs_box_max_px": max(errors_write),
    }


def _stored_area_error(area: dict, box: tuple, size: tuple[int, int], orientation: int) -> float:
    """The area exiftool read, mapped to displayed pixels by faceatlas' rules, against the box written."""
    from faceatlas.xmp.regions import stored_to_displayed

    x, y, w, h = (float(area[k]) for k in ("X", "Y", "W", "H"))
    x1, y1, x2, y2 = stored_to_displayed((x - w / 2, y - h / 2, x + w / 2, y + h / 2), orientation)
    got = (x1 * size[0], y1 * size[1], x2 * size[0], y2 * size[1])
    return float(np.abs(np.subtract(got, box)).max())


def spread(lfw: Path, work: Path, per_person_min: int, limit: int | None) -> dict:
    from faceatlas.collection import CollectionStore, index_folder
    from faceatlas.collection.grouping import cluster_collection
    from faceatlas.pipeline import FaceAnalyzer, primary_face
    from faceatlas.types import Box
    from faceatlas.xmp import Region, write_sidecar

    people = sorted(p for p in lfw.iterdir() if p.is_dir())
    images = [(person.name, image) for person in people for image in sorted(person.glob("*.jpg"))]
    if limit:
        images = images[:limit]
    library = work / "library"
    truth: dict[str, str] = {}  # photo folder -> person
    for k, (person, image) in enumerate(images):
        folder = library / f"{k:05d}"
        folder.mkdir(parents=True)
        shutil.copy(image, folder / "photo.jpg")
        truth[f"{k:05d}/photo.jpg"] = person
    by_person: dict[str, list[str]] = defaultdict(list)
    for rel, person in truth.items():
        by_person[person].append(rel)
    tagged_people = {p for p, rels in by_person.items() if len(rels) >= per_person_min}
    analyzer = FaceAnalyzer()
    rng = np.random.default_rng(1)
    results = {}
    db = work / "library.db"
    tagged: set[str] = set()
    central: dict[str, Box] = {}
    for k_tags in (1, 2):
        for person in sorted(tagged_people):
            for rel in by_person[person][:k_tags]:
                if rel in tagged:
                    continue
                from faceatlas.image import load_image

                image = load_image(library / rel)
                if rel not in central:
                    face = primary_face(analyzer.detect(image), (image.shape[1], image.shape[0]), "central")
                    if face is None:
                        continue
                    central[rel] = face.box
                b = central[rel]
                dx, dy, s = rng.uniform(-0.1, 0.1, 3)
                w, h = b.width * (1 + s), b.height * (1 + s)
                cx, cy = b.center[0] + dx * b.width, b.center[1] + dy * b.height
                drawn = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
                write_sidecar(library / rel, [Region(drawn, person)], size=(image.shape[1], image.shape[0]))
                tagged.add(rel)
        started = time.perf_counter()
        with CollectionStore.open(db) as store:
            index_report = index_folder(library, store, FaceAnalyzer, workers=2 if k_tags == 1 else 1)
            indexed_s = time.perf_counter() - started
            started = time.perf_counter()
            cluster_collection(store)
            cluster_s = time.perf_counter() - started
            results[f"K={k_tags}"] = _score(store, truth, tagged, tagged_people, index_report, indexed_s, cluster_s)
        print(f"K={k_tags}: {results[f'K={k_tags}']}", flush=True)
    results["photos"] = len(images)
    results["tagged_people"] = len(tagged_people)
    return results


def _score(store, truth, tagged, tagged_people, report, indexed_s, cluster_s) -> dict:
    from faceatlas.pipeline import primary_face  # the same rule as when tagging
    from faceatlas.types import Box, Face, Landmarks

    names = {c.id: c.name for c in store.clusters()}
    named = right = reachable = false_names = 0
    for record in store.photos():
        person = truth.get(record.path)
        if person is None or record.path in tagged or record.width is None:
            continue
        faces = store.faces_of_photo(record.id)
        if not faces:
            if person in tagged_people:
                reachable += 1  # no face found: a miss
            continue
        proxies = [Face(Box(*f.box), 1.0, Landmarks(np.zeros((5, 2)))) for f in faces]
        centre = primary_face(proxies, (record.width, record.height), "central")
        face = faces[proxies.index(centre)]
        name = names.get(face.cluster) if face.cluster is not None else None
        if person in tagged_people:
            reachable += 1
            if name is not None:
                named += 1
                right += name == person
        elif name is not None:
            false_names += 1
    return {
        "named_at_index": report.named,
        "untagged_of_tagged_people": reachable,
        "named": named,
        "right": right,
        "precision": round(right / named, 4) if named else None,
        "recall": round(right / reachable, 4) if reachable else None,
        "false_names_on_untagged_people": false_names,
        "index_s": round(indexed_s, 1),
        "cluster_s": round(cluster_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=Path, default=LFW_DEVTEST / "images", help="LFW images/<Name>/*.jpg")
    parser.add_argument("--min-photos", type=int, default=3, help="people with this many photos get tags")
    parser.add_argument("--limit", type=int, default=None, help="only the first N images (a quick run)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    exiftool = shutil.which("exiftool")
    if exiftool is None:
        raise SystemExit("needs exiftool: apt-get install libimage-exiftool-perl")
    require(args.lfw, "LFW images")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "rt").mkdir()
        out = {"machine": machine(), "command": " ".join(sys.argv)}
        out["round_trip"] = round_trip(work / "rt", exiftool)
        print(f"round trip: {out['round_trip']}", flush=True)
        out["spread"] = spread(args.lfw, work, args.min_photos, args.limit)
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
