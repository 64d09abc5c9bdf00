"""Move a gallery to another embedder in place: ``reembed_gallery``.

A gallery keeps no images, only each face's ``source`` and ``box``, so the images are given again
(a folder, walked as every command walks one). Each face is matched to its image by what its
source records, then to a face the new analyzer detects there by its box:

- ``<sha256>#<n>`` (a face enrolled from a collection): the image file whose bytes have that sha256;
- ``<sha256>`` (``Gallery.enroll``: of the decoded pixels; or a file's own): the image whose pixels
  or bytes have it;
- anything else is taken for the image's path (absolute, or relative to the folder).

In that image the detected face whose box overlaps the stored one best, with IoU at least
``MIN_IOU``, is embedded (a face stored without a box needs an image with exactly one face).
Faces enrolled from embeddings, faces whose image is not in the folder, and faces with no detected
face at their box cannot be re-embedded: the run stops before writing anything, naming them,
unless ``drop_missing`` removes them in the switching transaction. People, names, metadata, face
ids, sources, boxes and qualities stay as they are. Resumable and never mixed: see
``faceatlas.reembed.staging``; both the SQLite and the PostgreSQL store.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from faceatlas._files import sha256_file
from faceatlas.errors import GalleryError, InvalidArgumentError, InvalidImageError
from faceatlas.gallery.store import GalleryStore
from faceatlas.reembed.common import (
    ATTEMPTS,
    Progress,
    before_after,
    card_of_tag,
    checked_vectors,
    target_tag,
    threshold_of,
)
from faceatlas.reembed.report import ReembedPlan, ReembedReport, UnmatchedFacesError, Unusable
from faceatlas.reembed.staging import PostgresStaging, Staging, Unstaged, sqlite_gallery_staging
from faceatlas.types import Box, Face

MIN_IOU = 0.5  # a detected face is the enrolled one when their boxes overlap at least this much
_FROM_COLLECTION = re.compile(r"([0-9a-f]{64})#\d+")
_DIGEST = re.compile(r"[0-9a-f]{64}")
OLD_ROWS_KEPT = (
    "PostgreSQL keeps the old embeddings in dead row versions until the faces table is rewritten "
    "(VACUUM FULL, as GalleryStore.compact() runs)"
)


@dataclass(frozen=True, slots=True)
class _StoredFace:
    id: int
    person: str
    source: str
    box: tuple[float, float, float, float] | None
    from_embedding: bool  # its source is the digest of its own embedding: it never had an image

    @property
    def where(self) -> str:
        return f"face {self.id} of {self.person!r}"


def where_of(store: Any) -> str:
    """A store's location for messages: a PostgreSQL URL without its password."""
    if "://" in store.url:
        from faceatlas.gallery.postgres_store import redact

        return redact(store.url)
    return str(store.url)


def staging_of(store: GalleryStore) -> Staging:
    from faceatlas.gallery.sqlite_store import SqliteStore

    if isinstance(store, SqliteStore):
        return sqlite_gallery_staging(store)
    if type(store).__name__ == "PostgresStore":  # not imported unless used: it needs psycopg
        return PostgresStaging(store)
    raise GalleryError(f"cannot re-embed a {type(store).__name__}: only SQLite and PostgreSQL galleries")


def _faces(store: GalleryStore) -> list[_StoredFace]:
    faces = []
    for row in store.export_rows():
        if row["kind"] != "face":
            continue
        vector = np.asarray(row["embedding"], dtype=np.float32)
        box = row.get("box")
        faces.append(
            _StoredFace(
                int(row["id"]),
                str(row["person"]),
                str(row["source"]),
                None if box is None else (float(box[0]), float(box[1]), float(box[2]), float(box[3])),
                row["source"] == hashlib.sha256(vector.tobytes()).hexdigest(),  # Gallery.enroll_embeddings' source
            )
        )
    return faces


def _match_images(faces: list[_StoredFace], folder: Path | None) -> tuple[dict[int, str], list[Unusable]]:
    """(face id -> the image file it is embedded from, the faces without one); see the module doc."""
    unusable = [
        Unusable(f.where, "enrolled from an embedding, not an image", (f.id,)) for f in faces if f.from_embedding
    ]
    faces = [f for f in faces if not f.from_embedding]
    if folder is None:
        if faces:
            reason = "no folder of images was given (a gallery keeps no images: pass --images)"
            unusable += [Unusable(f.where, reason, (f.id,)) for f in faces]
        return {}, unusable
    if not folder.is_dir():
        raise InvalidArgumentError(
            f"{folder} is not a folder; pass the folder of the images the gallery was enrolled from"
        )
    by_bytes: dict[str, list[_StoredFace]] = defaultdict(list)
    by_pixels: dict[str, list[_StoredFace]] = defaultdict(list)
    by_path: dict[str, list[_StoredFace]] = defaultdict(list)
    for face in faces:
        if match := _FROM_COLLECTION.fullmatch(face.source):
            by_bytes[match.group(1)].append(face)
        elif _DIGEST.fullmatch(face.source):
            by_bytes[face.source].append(face)
            by_pixels[face.source].append(face)
        else:
            for path in {Path(face.source).expanduser().absolute(), (folder / face.source).absolute()}:
                by_path[os.path.normpath(path)].append(face)
    found: dict[int, str] = {}
    pending = {f.id for f in faces}
    hashed = {f.id for group in by_bytes.values() for f in group}  # pending faces a file's bytes may match
    decoded = {f.id for group in by_pixels.values() for f in group}  # ... its decoded pixels may match
    from faceatlas.image import iter_image_files, load_image

    for file in iter_image_files(folder):
        if not pending:
            break
        hits = list(by_path.get(os.path.normpath(file.absolute()), []))
        try:
            if hashed:
                hits += by_bytes.get(sha256_file(file), [])
            if decoded:
                hits += by_pixels.get(hashlib.sha256(load_image(file).tobytes()).hexdigest(), [])
        except (OSError, InvalidImageError):
            pass  # not an image it can use: the faces it might have been are reported below if none is found
        for face in hits:
            if face.id in pending:
                found[face.id] = str(file)
                pending.discard(face.id)
                hashed.discard(face.id)
                decoded.discard(face.id)
    unusable += [Unusable(f.where, f"its image is not in {folder}", (f.id,)) for f in faces if f.id in pending]
    return found, unusable


def plan_gallery(store: GalleryStore, analyzer: Any, images: str | os.PathLike[str] | None) -> ReembedPlan:
    """What ``reembed_gallery`` would do, without writing: each face's image in ``images`` (read and
    hashed here, not analysed), the faces staged by an earlier run, and the faces without an image."""
    target, source = target_tag(analyzer), store.model()
    faces = _faces(store)
    staged = staging_of(store).staged(target) & {f.id for f in faces}
    found: dict[int, str] = {}
    unusable: list[Unusable] = []
    if source != target:
        folder = None if images is None else Path(images).expanduser()
        found, unusable = _match_images([f for f in faces if f.id not in staged], folder)
    return ReembedPlan("gallery", where_of(store), source, target, len(faces), len(staged), tuple(unusable), found)


def _detected_match(face: _StoredFace, detected: list[Face]) -> Face | str:
    """The detected face that is ``face`` (best box overlap, at least MIN_IOU), or why there is none."""
    if not detected:
        return "no face was detected in its image"
    if face.box is None:
        if len(detected) == 1:
            return detected[0]
        return f"it was stored without a box, and its image has {len(detected)} faces"
    box = Box(*face.box)
    overlaps = [box.iou(d.box) for d in detected]
    best = int(np.argmax(overlaps))
    if overlaps[best] < MIN_IOU:
        return f"no face was detected at its box (best overlap {overlaps[best]:.2f}, {MIN_IOU} needed)"
    return detected[best]


def _embed_image(analyzer: Any, file: str, faces: list[_StoredFace]) -> tuple[list[int], Any, list[Unusable]]:
    """(ids embedded, their embeddings, the faces that could not be) for the faces of one image."""
    from faceatlas.image import load_image

    try:
        data = Path(file).read_bytes()
        pixels = load_image(data)
    except (OSError, InvalidImageError) as exc:
        return [], None, [Unusable(f.where, f"its image {file} cannot be read now: {exc}", (f.id,)) for f in faces]
    digests = {hashlib.sha256(data).hexdigest(), hashlib.sha256(pixels.tobytes()).hexdigest()}
    detected = list(analyzer.detect(pixels))
    ids, chosen, unusable = [], [], []
    for face in faces:
        match = _FROM_COLLECTION.fullmatch(face.source)
        digest = match.group(1) if match else face.source
        if _DIGEST.fullmatch(digest) and digest not in digests:
            unusable.append(Unusable(face.where, f"its image {file} changed since it was found", (face.id,)))
            continue
        found = _detected_match(face, detected)
        if isinstance(found, str):
            unusable.append(Unusable(face.where, f"{found} in {file}", (face.id,)))
            continue
        ids.append(face.id)
        chosen.append(found)
    return ids, (analyzer.embed_faces(pixels, chosen) if chosen else None), unusable


def _matrix(store: GalleryStore) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    matrix = store.face_matrix()
    return matrix.face_ids, matrix.person_ids, matrix.qualities, matrix.embeddings


def reembed_gallery(
    store: GalleryStore,
    analyzer: Any,
    images: str | os.PathLike[str] | None,
    *,
    drop_missing: bool = False,
    progress: Progress | None = None,
    plan: ReembedPlan | None = None,
) -> ReembedReport:
    """Move the gallery ``store`` to ``analyzer``'s embedder, embedding each face again from
    ``images`` (see the module doc); returns what was done, with leave-one-out identification and
    separation figures on the enrolled people before and after.

    UnmatchedFacesError (nothing switched, nothing written) when faces cannot be re-embedded and
    ``drop_missing`` is False. Interrupted, the gallery keeps its old model and the faces embedded
    so far; run again with the same embedder to resume. ``Gallery`` objects opened on the store
    before the switch must be opened again (they keep the model they first bound). ``plan``: the
    one ``plan_gallery`` made for the same embedder and images (spares hashing the folder twice).
    """
    target, source = target_tag(analyzer), store.model()
    staging = staging_of(store)
    location = where_of(store)
    if source == target or source is None:  # None: no face either (a face needs a model)
        staging.discard()  # rows staged for another model by an abandoned run
        if source is None:
            store.bind_model(target)
        return ReembedReport("gallery", location, source, target, len(store.face_matrix()), 0, 0)
    if plan is None:
        plan = plan_gallery(store, analyzer, images)
    elif plan.target != target or plan.kind != "gallery":
        raise InvalidArgumentError(f"the plan given is for {plan.kind} to {plan.target}, not this gallery to {target}")
    if plan.unusable and not drop_missing:
        raise UnmatchedFacesError(location, plan.unusable)
    staged, discarded = staging.open(target)
    old = _matrix(store)
    image_of = dict(plan.images)
    dropped: dict[int, Unusable] = {u.face_ids[0]: u for u in plan.unusable}
    resumed, embedded = len(staged), 0
    folder = None if images is None else Path(images).expanduser()
    for _attempt in range(ATTEMPTS):
        todo = [f for f in _faces(store) if f.id not in staged and f.id not in dropped]
        unknown = [f for f in todo if f.id not in image_of]  # enrolled meanwhile
        if unknown:
            found, unusable = _match_images(unknown, folder)
            image_of.update(found)
            dropped.update((u.face_ids[0], u) for u in unusable)
        by_image: dict[str, list[_StoredFace]] = defaultdict(list)
        for face in todo:
            if face.id in image_of:
                by_image[image_of[face.id]].append(face)
        total = sum(len(group) for group in by_image.values())
        for file, group in by_image.items():
            ids, vectors, unusable = _embed_image(analyzer, file, group)
            dropped.update((u.face_ids[0], u) for u in unusable)
            if ids:
                staging.stage(target, ids, checked_vectors(vectors, len(ids), target))
                staged.update(ids)
                embedded += len(ids)
            if progress is not None:
                progress(embedded, total)
        if dropped and not drop_missing:
            raise UnmatchedFacesError(location, tuple(dropped.values()))
        try:
            staging.swap(target, drop_faces=list(dropped))
            break
        except Unstaged:  # faces were enrolled meanwhile: embed those too
            continue
    else:
        raise GalleryError(
            f"gallery {location} kept gaining faces while it was re-embedded; stop enrolling into it and run "
            "`faceatlas reembed` again (it resumes)"
        )
    thresholds = (threshold_of(card_of_tag(source)), threshold_of(analyzer.embedder.card))
    before, after = before_after(old, _matrix(store), thresholds)
    notes = []
    if discarded:
        notes.append(f"discarded {discarded} embedding(s) an earlier run had staged for another model")
    if "://" in store.url:
        notes.append(OLD_ROWS_KEPT)
    emptied = sorted(p.name for p in store.list_people() if p.n_faces == 0)
    if dropped and emptied:
        notes.append(f"people left without a face: {', '.join(emptied)} (enrol them again, or delete them)")
    return ReembedReport(
        "gallery", location, source, target, len(store.face_matrix()), embedded, resumed,
        tuple(dropped.values()), before, after, tuple(notes),
    )  # fmt: skip
