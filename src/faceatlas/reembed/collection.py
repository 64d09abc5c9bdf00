"""Move a photo collection to another embedder in place: ``reembed_collection``.

Every face keeps its id, photo, box, landmarks, cluster, and with them the cluster names and the
user's corrections (constraints are pairs of face ids). Each face is embedded again from its photo
at its stored box and landmarks, so nothing is detected again and every face matches itself
exactly. A photo must be what was indexed: missing from disk, or with other bytes (its sha256
differs), its faces cannot be re-embedded; then the run stops before writing anything, naming
them, unless ``drop_missing`` removes those photos (and their faces) in the switching transaction.
Resumable and never mixed: see ``faceatlas.reembed.staging``.
"""

from __future__ import annotations

import hashlib
import json
import stat
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import Any

import numpy as np

from faceatlas._files import sha256_file
from faceatlas.collection.store import CollectionError, CollectionStore
from faceatlas.errors import InvalidArgumentError, InvalidImageError
from faceatlas.reembed.common import (
    ATTEMPTS,
    Progress,
    before_after,
    card_of_tag,
    checked_vectors,
    target_tag,
    threshold_of,
)
from faceatlas.reembed.report import MissingPhotosError, ReembedPlan, ReembedReport, Unusable
from faceatlas.reembed.staging import Unstaged, collection_staging
from faceatlas.types import Box, Face, Landmarks

CLUSTERS_KEPT = (
    "clusters, their names and your corrections are kept as they were (they were formed in the old space); "
    "`faceatlas cluster --full` regroups the unnamed faces in the new one (names and corrections still hold)"
)


@dataclass(frozen=True, slots=True)
class _StoredFace:
    id: int
    photo_id: int
    file: Path
    sha256: str
    size: int
    mtime_ns: int
    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray
    time: float | None = None  # a video's face: the time of the frame it was seen at (None: a photo)


def _faces(store: CollectionStore) -> list[_StoredFace]:
    """Every face with its photo, grouped by photo (photo id, then face id)."""
    with store._transaction(write=False) as conn:
        rows = conn.execute(
            "SELECT f.id, f.photo_id, p.root, p.path, p.sha256, p.size, p.mtime_ns, f.box, f.score, f.landmarks,"
            " CASE WHEN p.kind = 'video' THEN f.time END"
            " FROM faces f JOIN photos p ON p.id = f.photo_id ORDER BY f.photo_id, f.id"
        ).fetchall()
    return [_stored(row) for row in rows]


def _stored(row: tuple) -> _StoredFace:
    face_id, photo_id, root, path, sha, size, mtime, box, score, points, time = row
    x1, y1, x2, y2 = (float(v) for v in json.loads(box))
    landmarks = np.asarray(json.loads(points), dtype=np.float32)
    return _StoredFace(
        int(face_id),
        int(photo_id),
        Path(root, path),
        sha,
        int(size),
        int(mtime),
        (x1, y1, x2, y2),
        float(score),
        landmarks,
        None if time is None else float(time),
    )


def _named(store: CollectionStore) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(face ids ascending, cluster ids, qualities, embeddings) of the faces in named clusters."""
    tag = store.model()
    dim = 0 if tag is None else tag.dim
    with store._transaction(write=False) as conn:
        rows = conn.execute(
            "SELECT f.id, f.cluster, COALESCE(f.quality, 1.0), f.embedding FROM faces f"
            " JOIN clusters c ON c.id = f.cluster WHERE c.name IS NOT NULL ORDER BY f.id"
        ).fetchall()
    ids, clusters, qualities, blobs = zip(*rows, strict=True) if rows else ((), (), (), ())
    vectors = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(rows), dim)
    return np.array(ids, np.int64), np.array(clusters, np.int64), np.array(qualities, np.float32), vectors


def _photo_problem(face: _StoredFace) -> str | None:
    """Why a photo cannot be read as it was indexed, or None. (size, mtime) unchanged: trusted
    without reading, as ``index_folder`` does; otherwise its bytes are hashed."""
    try:
        info = face.file.stat()
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if (info.st_size, info.st_mtime_ns) == (face.size, face.mtime_ns):
        return None
    try:
        digest = sha256_file(face.file)
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    return None if digest == face.sha256 else "changed since it was indexed (its bytes differ)"


def plan_collection(store: CollectionStore, analyzer: Any) -> ReembedPlan:
    """What ``reembed_collection`` would do, without writing: the faces, those staged by an earlier
    run, and the photos whose faces cannot be re-embedded (missing or changed)."""
    target, source = target_tag(analyzer), store.model()
    faces = _faces(store)
    staged = collection_staging(store).staged(target) & {f.id for f in faces}
    unusable = []
    if source != target:
        todo = [f for f in faces if f.id not in staged]
        for _, group in groupby(todo, key=lambda f: f.photo_id):
            photo = list(group)
            reason = _photo_problem(photo[0])
            if reason is not None:
                unusable.append(Unusable(str(photo[0].file), reason, tuple(f.id for f in photo)))
    return ReembedPlan("collection", str(store.path), source, target, len(faces), len(staged), tuple(unusable))


def _embed_photo(analyzer: Any, photo: list[_StoredFace]) -> tuple[str | None, Any]:
    """(None, embeddings of the photo's faces at their stored landmarks), or (why not, None)."""
    from faceatlas.image import load_image

    first = photo[0]
    try:
        data = first.file.read_bytes()
    except FileNotFoundError:
        return "missing", None
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}", None
    if hashlib.sha256(data).hexdigest() != first.sha256:
        return "changed since it was indexed (its bytes differ)", None
    if first.time is not None:  # a video: each face in the frame it was seen at
        return _embed_video_faces(analyzer, photo)
    try:
        pixels = load_image(data)
    except InvalidImageError as exc:
        return f"unreadable: {exc}", None
    faces = [Face(Box(*f.box), f.score, Landmarks(f.landmarks)) for f in photo]
    return None, analyzer.embed_faces(pixels, faces)


def _embed_video_faces(analyzer: Any, video: list[_StoredFace]) -> tuple[str | None, Any]:
    """A video's faces (one per track) re-embedded in their best frames. The index stored each track's
    template over all its frames; the new model sees the best frame only (the others are not kept)."""
    from faceatlas.collection.video import read_frame

    vectors = []
    for f in video:
        try:
            pixels = read_frame(f.file, f.time or 0.0)
        except InvalidImageError as exc:
            return f"unreadable: {exc}", None
        vectors.append(analyzer.embed_faces(pixels, [Face(Box(*f.box), f.score, Landmarks(f.landmarks))])[0])
    return None, np.stack(vectors)


def reembed_collection(
    store: CollectionStore,
    analyzer: Any,
    *,
    drop_missing: bool = False,
    progress: Progress | None = None,
    plan: ReembedPlan | None = None,
) -> ReembedReport:
    """Move ``store`` to ``analyzer``'s embedder (see the module doc); returns what was done, with
    the named faces' figures before and after.

    MissingPhotosError (nothing switched, nothing written) when photos are missing or changed and
    ``drop_missing`` is False. Interrupted (killed, Ctrl-C, an error), the store keeps its old model
    and the faces embedded so far; run again with the same embedder to resume. ``plan``: the one
    ``plan_collection`` made for the same embedder (spares reading the photos' state twice).
    """
    target, source = target_tag(analyzer), store.model()
    staging = collection_staging(store)
    location = str(store.path)
    if source == target or source is None:  # None: no face either (a face needs a model)
        staging.discard()  # rows staged for another model by an abandoned run
        if source is None:
            store.bind_model(target)
        return ReembedReport("collection", location, source, target, len(store.face_table()), 0, 0)
    if plan is None:
        plan = plan_collection(store, analyzer)
    elif plan.target != target or plan.kind != "collection":
        raise InvalidArgumentError(
            f"the plan given is for {plan.kind} to {plan.target}, not this collection to {target}"
        )
    if plan.unusable and not drop_missing:
        raise MissingPhotosError(location, plan.unusable)
    staged, discarded = staging.open(target)
    old = _named(store)
    dropped = {u.face_ids[0]: u for u in plan.unusable}  # by a face of the photo, for now
    drop_photos: dict[int, Unusable] = {}
    resumed, embedded = len(staged), 0
    for _attempt in range(ATTEMPTS):
        faces = _faces(store)
        photo_of = {f.id: f.photo_id for f in faces}
        drop_photos.update((photo_of[face], u) for face, u in dropped.items() if face in photo_of)
        todo = [f for f in faces if f.id not in staged and f.photo_id not in drop_photos]
        for photo_id, group in groupby(todo, key=lambda f: f.photo_id):
            photo = list(group)
            why, vectors = _embed_photo(analyzer, photo)
            if why is not None:  # changed or gone since the plan
                drop_photos[photo_id] = Unusable(str(photo[0].file), why, tuple(f.id for f in photo))
                continue
            ids = [f.id for f in photo]
            staging.stage(target, ids, checked_vectors(vectors, len(photo), target))
            staged.update(ids)
            embedded += len(ids)
            if progress is not None:
                progress(embedded, len(todo))
        if drop_photos and not drop_missing:
            raise MissingPhotosError(location, tuple(drop_photos.values()))
        try:
            staging.swap(target, drop_photos=list(drop_photos))
            break
        except Unstaged:  # an index run added faces meanwhile: embed those too
            continue
    else:
        raise CollectionError(
            f"collection {location} kept gaining faces while it was re-embedded; stop `faceatlas index` on it and "
            "run `faceatlas reembed` again (it resumes)"
        )
    thresholds = (threshold_of(card_of_tag(source)), threshold_of(analyzer.embedder.card))
    before, after = before_after(old, _named(store), thresholds)
    notes = [CLUSTERS_KEPT]
    if discarded:
        notes.append(f"discarded {discarded} embedding(s) an earlier run had staged for another model")
    return ReembedReport(
        "collection", location, source, target, len(store.face_table()), embedded, resumed,
        tuple(drop_photos.values()), before, after, tuple(notes),
    )  # fmt: skip
