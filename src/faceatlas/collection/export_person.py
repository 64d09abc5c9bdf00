"""Everything faceatlas stores about one person, as one archive (GDPR Art. 15 access, Art. 20 portability).

>>> export_person("Ada Lovelace", gallery, collection, Path("ada.zip"))
PosixPath('ada.zip')

The archive (a .zip, written aside and moved into place: never half a file, never over another
file unless ``overwrite``) holds:

- ``person.json``: the name (and the stored names it matched: case and form are ignored, as when
  forgetting), whether the person is private, the models, the collection's clusters of that name,
  every face (id, photo, box, landmarks, pose, score, quality, origin, time in a video, cluster,
  when its photo was indexed and taken, its row in ``embeddings.npy``), the corrections
  (constraints) that involve those faces, and the gallery's people of that name with their faces
  (metadata, source, box, row in ``gallery_embeddings.npy``).
- ``embeddings.npy``: the collection faces' embeddings, float32, one row per face in
  ``person.json``'s order; ``gallery_embeddings.npy``: the gallery faces' (the two stores may use
  different models; each model is named in the JSON).
- ``faces/<id>.jpg``: each collection face cropped from its photo, when the photo can be read
  (those that cannot are listed in ``person.json`` with why).
- ``README.txt``: what each file is.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from faceatlas.collection.forget import matching_clusters, matching_people
from faceatlas.errors import InvalidArgumentError
from faceatlas.gallery.store import PersonNotFoundError

if TYPE_CHECKING:
    from faceatlas.collection.store import CollectionStore, FaceInfo
    from faceatlas.gallery.gallery import Gallery

CROP_SIZE = 224  # pixels, square: enough to recognise the face, small enough for thousands of them
CROP_MARGIN = 0.25  # of the box's longer side, on each side (as the service's thumbnails)
README = """\
faceatlas: everything stored about {name!r}, exported {when}.

person.json             the person: names, private flag, models, clusters, every face (photo,
                        box, landmarks, pose, quality, origin, cluster, time in a video), the
                        corrections (constraints) on those faces, the gallery's enrolled faces
embeddings.npy          the collection faces' embeddings (float32, NumPy .npy), one row per face,
                        in person.json "faces" order ("embedding_row"); model in "collection_model"
gallery_embeddings.npy  the gallery faces' embeddings, in person.json "gallery" order; model in
                        "gallery_model"
faces/<id>.jpg          each collection face cropped from its photo (224 x 224 pixels); faces whose
                        photo could not be read are listed under "missing_crops"

An embedding is a face's biometric template: keep this archive as private as the photos.
The photos themselves are not included: person.json says where they are.
"""


class ArchiveExistsError(InvalidArgumentError):
    """The archive's path already holds a file, and overwriting was not asked for."""


def export_person(
    name: str,
    gallery: Gallery | None,
    collection: CollectionStore | None,
    out: Path,
    *,
    overwrite: bool = False,
    crops: bool = True,
    open_photo: Callable[[FaceInfo], BinaryIO] | None = None,
) -> Path:
    """Write everything stored about ``name`` as one .zip archive at ``out`` (see the module doc);
    returns its path. PersonNotFoundError when neither store has the name; ArchiveExistsError when
    ``out`` exists and ``overwrite`` is False. ``open_photo`` opens a face's photo for its crop
    (default: the file itself; the service passes its own, which reads only inside its photo roots)."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise ArchiveExistsError(f"{out} already exists; pass --force to replace it, or another path")
    if out.is_dir():
        raise InvalidArgumentError(f"{out} is a directory; give the archive's file name, e.g. {out / 'person.zip'}")
    people = matching_people(gallery, name) if gallery is not None else []
    clusters = matching_clusters(collection, name) if collection is not None else []
    if not people and not clusters:
        raise PersonNotFoundError(f"nobody named {name!r} in the gallery or the collection: nothing to export")
    doc: dict[str, Any] = {
        "format": "faceatlas-person-export",
        "version": 1,
        "name": name,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "matched_names": sorted({*people, *(n for _, n in clusters)}),
    }
    files: dict[str, bytes] = {}
    embeddings = np.zeros((0, 0), np.float32)
    private = False
    if collection is not None:
        part, embeddings, face_crops = _collection_part(collection, [c for c, _ in clusters], crops, open_photo)
        doc.update(part)
        files.update(face_crops)
        private = any(c["private"] for c in part["clusters"])
    gallery_embeddings = np.zeros((0, 0), np.float32)
    if gallery is not None:
        part, gallery_embeddings = _gallery_part(gallery, people)
        doc.update(part)
        private = private or any(p["private"] for p in part["gallery"])
    doc["private"] = private
    files["person.json"] = json.dumps(doc, indent=2, ensure_ascii=False).encode()
    files["embeddings.npy"] = _npy(embeddings)
    files["gallery_embeddings.npy"] = _npy(gallery_embeddings)
    files["README.txt"] = README.format(name=name, when=doc["exported_at"]).encode()
    _write_zip(out, files)
    return out


def _collection_part(
    collection: CollectionStore, clusters: list[int], crops: bool, open_photo: Callable[[FaceInfo], BinaryIO] | None
) -> tuple[dict[str, Any], np.ndarray, dict[str, bytes]]:
    tag = collection.model()
    infos = [collection.cluster(c) for c in clusters]
    faces = [face for c in clusters for face in sorted(collection.cluster_faces(c), key=lambda f: f.id)]
    extra: dict[int, tuple] = {}
    photos: dict[int, tuple] = {}
    constraints: list[dict[str, Any]] = []
    if clusters:
        marks = ", ".join("?" * len(clusters))
        of_person = f"SELECT id FROM faces WHERE cluster IN ({marks})"
        with collection._transaction(write=False) as conn:
            for face_id, landmarks, score, yaw, pitch, roll, blob in conn.execute(
                f"SELECT id, landmarks, score, yaw, pitch, roll, embedding FROM faces WHERE cluster IN ({marks})",
                clusters,
            ).fetchall():
                extra[int(face_id)] = (json.loads(landmarks), score, yaw, pitch, roll, bytes(blob))
            for photo_id, indexed_at, taken_at, width, height, kind in conn.execute(
                "SELECT id, indexed_at, taken_at, width, height, kind FROM photos"
                f" WHERE id IN (SELECT photo_id FROM faces WHERE cluster IN ({marks}))",
                clusters,
            ).fetchall():
                photos[int(photo_id)] = (indexed_at, taken_at, width, height, kind)
            for a, b, kind in conn.execute(
                "SELECT face_a, face_b, kind FROM constraints"
                f" WHERE face_a IN ({of_person}) OR face_b IN ({of_person}) ORDER BY face_a, face_b",
                [*clusters, *clusters],
            ).fetchall():
                constraints.append({"face_a": int(a), "face_b": int(b), "kind": kind})
    rows: list[dict[str, Any]] = []
    vectors: list[np.ndarray] = []
    for row, face in enumerate(faces):
        landmarks, score, yaw, pitch, roll, blob = extra[face.id]
        indexed_at, taken_at, width, height, kind = photos[face.photo_id]
        vectors.append(np.frombuffer(blob, dtype=np.float32))
        rows.append({
            "id": face.id, "embedding_row": row, "cluster": face.cluster, "origin": face.origin,
            "photo": {"id": face.photo_id, "file": str(face.file), "root": face.root, "path": face.path,
                      "sha256": face.sha256, "kind": kind, "width": width, "height": height,
                      "taken_at": taken_at, "indexed_at": indexed_at},
            "index_in_photo": face.idx, "box_xyxy": list(face.box), "landmarks": landmarks, "score": score,
            "pose": None if yaw is None else {"yaw": yaw, "pitch": pitch, "roll": roll},
            "quality": face.quality, "time": face.time, "track_start": face.start, "track_end": face.end,
            "track": face.track,
        })  # fmt: skip
    dim = 0 if tag is None else tag.dim
    matrix = np.stack(vectors).astype(np.float32) if vectors else np.zeros((0, dim), np.float32)
    files, missing = _crops(faces, open_photo) if crops else ({}, [])
    part = {
        "collection": collection.location,
        "collection_model": None if tag is None else asdict(tag),
        "clusters": [{"id": c.id, "name": c.name, "faces": c.n_faces, "private": c.private} for c in infos],
        "faces": rows,
        "constraints": constraints,
        "missing_crops": missing,
    }
    return part, matrix, files


def _crops(
    faces: list[FaceInfo], open_photo: Callable[[FaceInfo], BinaryIO] | None
) -> tuple[dict[str, bytes], list[dict[str, Any]]]:
    """faces/<id>.jpg for every face whose photo can be read; the others, with why."""
    from faceatlas.collection.html import face_thumbnail
    from faceatlas.image import load_image

    files: dict[str, bytes] = {}
    missing: list[dict[str, Any]] = []
    by_photo: dict[str, list[FaceInfo]] = {}
    for face in faces:
        by_photo.setdefault(str(face.file), []).append(face)
    for of_photo in by_photo.values():
        first = of_photo[0]
        if first.time is not None:
            missing += [{"id": f.id, "reason": "a face of a video: no frame is cropped"} for f in of_photo]
            continue
        try:
            if open_photo is None:
                pixels = load_image(first.file)
            else:
                with open_photo(first) as fh:
                    pixels = load_image(fh)
        except Exception as exc:  # noqa: BLE001 -- one unreadable photo is listed; the archive is still written
            missing += [{"id": f.id, "reason": f"the photo cannot be read: {exc}"} for f in of_photo]
            continue
        for face in of_photo:
            files[f"faces/{face.id}.jpg"] = face_thumbnail(pixels, face.box, CROP_SIZE, CROP_MARGIN)
    return files, missing


def _gallery_part(gallery: Gallery, people: list[str]) -> tuple[dict[str, Any], np.ndarray]:
    wanted = set(people)
    persons: dict[int, dict[str, Any]] = {}
    vectors: list[np.ndarray] = []
    tag = gallery.store.model()
    for row in gallery.store.export_rows():
        if row.get("kind") == "person" and row["name"] in wanted:
            persons[row["id"]] = {
                "name": row["name"], "metadata": row["metadata"], "private": bool(row.get("private")), "faces": []
            }  # fmt: skip
        elif row.get("kind") == "face" and row["person_id"] in persons:
            persons[row["person_id"]]["faces"].append({
                "id": row["id"], "embedding_row": len(vectors), "quality": row["quality"], "source": row["source"],
                "box_xyxy": row["box"], "metadata": row["metadata"],
            })  # fmt: skip
            vectors.append(np.asarray(row["embedding"], dtype=np.float32))
    dim = 0 if tag is None else tag.dim
    matrix = np.stack(vectors) if vectors else np.zeros((0, dim), np.float32)
    part = {
        "gallery": list(persons.values()),
        "gallery_location": _where(gallery),
        "gallery_model": None if tag is None else asdict(tag),
    }
    return part, matrix


def _where(gallery: Gallery) -> str:
    from faceatlas.collection.forget import _where as where

    return where(gallery.store)


def _npy(matrix: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(matrix, dtype=np.float32), allow_pickle=False)
    return buffer.getvalue()


def _write_zip(out: Path, files: dict[str, bytes]) -> None:
    """The archive, built in a temporary file beside ``out`` and moved into place (``os.replace``)."""
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise InvalidArgumentError(f"cannot write {out}: {folder} is not a directory")
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=folder)
    try:
        with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, data in files.items():
                archive.writestr(name, data)
        os.chmod(tmp, 0o600)  # biometric data: readable by its owner only
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
