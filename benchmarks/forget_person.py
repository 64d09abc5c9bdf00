"""How long `faceatlas forget` takes: one person forgotten, with the erase, from a collection and a gallery.

    python benchmarks/forget_person.py                        # SQLite (files in a temporary folder)
    python benchmarks/forget_person.py --postgres URL         # PostgreSQL + pgvector (fresh schemas)

Synthetic data, 512-d float32 embeddings: a collection of ``--faces`` faces (5 per photo, in
clusters of 100; the person is one of them) and a gallery of ``--gallery`` faces (10 per person).
Times ``forget_person(full=True)``: deleting the person's faces, clusters and constraints, the
gallery person, and the erase (SQLite: WAL emptied and a VACUUM when free pages exist; PostgreSQL:
VACUUM FULL of the collection's faces, constraints and clusters and of the gallery's tables).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from _common import machine

from faceatlas.collection.forget import forget_person
from faceatlas.collection.store import CollectionStore, NewPhoto
from faceatlas.gallery.gallery import Gallery
from faceatlas.gallery.store import FaceRecord, ModelTag, open_store
from faceatlas.types import Box, Face, Landmarks, Pose, Quality

DIM = 512
TAG = ModelTag("bench_model", "1", DIM)
NAME = "Benchmark Person"


def unit_rows(n: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def build_collection(store: CollectionStore, n_faces: int) -> None:
    store.bind_model(TAG)
    vectors = unit_rows(n_faces, 1)
    per_photo, batch = 5, []
    for p in range(n_faces // per_photo):
        faces = [
            Face(
                box=Box(10 + 60 * k, 10, 60 + 60 * k, 60),
                score=0.99,
                landmarks=Landmarks(np.full((5, 2), 30.0)),
                pose=Pose(0.0, 0.0, 0.0),
                quality=Quality(0.9, 1, 1, 1, 1, 1),
                embedding=vectors[p * per_photo + k],
            )
            for k in range(per_photo)
        ]
        batch.append(NewPhoto(f"p{p:06d}.jpg", "/photos", f"{p:064x}", 1000, p, 400, 100, faces))
        if len(batch) == 200:
            store.add_photos(batch)
            batch = []
    if batch:
        store.add_photos(batch)
    table = store.face_table()
    labels = (np.arange(len(table)) // 100).astype(np.int64)  # clusters of 100 faces
    store.set_clusters(table.face_ids, labels)
    store.name_cluster(int(labels[len(labels) // 2]), NAME)
    ids = table.face_ids[labels == labels[len(labels) // 2]]
    store.add_constraints([(int(ids[i]), int(ids[i + 1])) for i in range(0, 20, 2)], "must")


def build_gallery(gallery: Gallery, n_faces: int) -> None:
    store = gallery.store
    store.bind_model(TAG)
    vectors = unit_rows(n_faces, 2)
    for person in range(n_faces // 10):
        name = NAME if person == n_faces // 20 else f"person {person:05d}"
        pid = store.add_person(name)
        rows = vectors[person * 10 : person * 10 + 10]
        store.add_faces(pid, [FaceRecord(v, 0.9, f"src{person}-{i}") for i, v in enumerate(rows)])


def run(collection_target: str | Path, gallery_target: str | Path, n_faces: int, n_gallery: int) -> None:
    with CollectionStore.open(collection_target) as store, Gallery(open_store(gallery_target)) as gallery:
        started = time.perf_counter()
        build_collection(store, n_faces)
        build_gallery(gallery, n_gallery)
        built = time.perf_counter() - started
        started = time.perf_counter()
        report = forget_person(NAME, gallery, store)
        took = time.perf_counter() - started
    print(f"  built in {built:.1f} s; forget (with erase): {took:.2f} s")
    print(
        f"  gallery faces {report.faces}, collection faces {report.collection_faces}, corrections {report.constraints}"
    )
    for line in report.erased:
        print(f"  erased: {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=10_000, help="faces in the collection")
    parser.add_argument("--gallery", type=int, default=10_000, help="faces in the gallery")
    parser.add_argument("--postgres", help="a postgresql:// URL (fresh schemas are created in it)")
    args = parser.parse_args()
    print(machine())
    if args.postgres:
        suffix = uuid.uuid4().hex[:8]
        sep = "&" if "?" in args.postgres else "?"
        print(f"PostgreSQL: {args.faces} collection faces, {args.gallery} gallery faces")
        run(
            f"{args.postgres}{sep}schema=bc_{suffix}",
            f"{args.postgres}{sep}schema=bg_{suffix}",
            args.faces,
            args.gallery,
        )
        return
    with tempfile.TemporaryDirectory() as folder:
        print(f"SQLite: {args.faces} collection faces, {args.gallery} gallery faces")
        run(Path(folder) / "collection.db", Path(folder) / "gallery.db", args.faces, args.gallery)


if __name__ == "__main__":
    main()
