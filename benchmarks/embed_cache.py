"""Embed a folder-per-identity image set once and keep the result in an .npz (outside the repo)."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np

from faceatlas.eval.runner import primary_embeddings
from faceatlas.pipeline import FaceAnalyzer

CACHE = Path.home() / ".cache" / "faceatlas-bench"


def embed_identity_folders(
    root: Path, flip: bool = False, batch: int = 32, embedder: str = "dlib_resnet", detector: str = "mtcnn"
) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    """(embeddings (N, D), labels (N,), paths) for images whose primary face was found."""
    paths = sorted(root.glob("*/*.jpg"))
    # the key of dlib + MTCNN (what every cache before these options held) is unchanged
    tag = ("" if embedder == "dlib_resnet" else f"|{embedder}") + ("" if detector == "mtcnn" else f"|{detector}")
    key = hashlib.sha256(f"{root.resolve()}|{len(paths)}|{flip}{tag}".encode()).hexdigest()[:16]
    cached = CACHE / f"{key}.npz"
    if cached.exists():
        data = np.load(cached, allow_pickle=False)
        return data["emb"], data["labels"], [Path(p) for p in data["paths"]]
    analyzer = FaceAnalyzer(detector=detector, embedder=embedder, flip=flip).load()
    vectors, kept = [], []
    t0 = time.perf_counter()
    for start in range(0, len(paths), batch):
        chunk = paths[start : start + batch]
        for path, vec in zip(chunk, primary_embeddings(analyzer, chunk), strict=True):
            if vec is not None:
                vectors.append(vec)
                kept.append(path)
        if start % (batch * 20) == 0:
            print(f"  {start + len(chunk)}/{len(paths)} images, {time.perf_counter() - t0:.0f} s", flush=True)
    names = sorted({p.parent.name for p in kept})
    index = {n: i for i, n in enumerate(names)}
    emb = np.stack(vectors).astype(np.float32)
    labels = np.array([index[p.parent.name] for p in kept])
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(cached, emb=emb, labels=labels, paths=np.array([str(p) for p in kept]))
    print(f"  {len(kept)}/{len(paths)} images with a face")
    return emb, labels, kept
