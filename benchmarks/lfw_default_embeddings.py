"""Full LFW through the default pipeline (``FaceAnalyzer()``), embedded once and cached with qualities.

    python benchmarks/lfw_default_embeddings.py [--root DIR] [--embedder NAME]

``embed_cache.embed_identity_folders`` keys its cache on the folder alone, so a cache written before
the default detector changed would be read back as if it were current; this one names the detector,
aligner and embedder (with their card versions) in its key, with a digest of the package's detection,
alignment and embedding source (a change there that keeps the card versions, such as how landmarks are
refined, still re-embeds), and keeps each face's quality, which the gallery weights templates by.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import LFW_FULL, require
from embed_cache import CACHE

from faceatlas.image import load_image
from faceatlas.pipeline import FaceAnalyzer, primary_face


@dataclass(frozen=True)
class Embedded:
    emb: np.ndarray  # (n, dim) float32, unit rows: the primary (most central) face of each image with one
    quality: np.ndarray  # (n,) float32: the face's quality score, as Gallery.enroll stores it
    labels: np.ndarray  # (n,) int64: index into names
    names: list[str]  # the identities (folder names), sorted
    paths: list[str]


def _describe(analyzer: FaceAnalyzer) -> str:
    parts = []
    for model in (analyzer.detector, analyzer.embedder):
        card = getattr(model, "card", None)
        parts.append(f"{card.name}-{card.version}" if card is not None else type(model).__name__)
    return "+".join([parts[0], type(analyzer.aligner).__name__, parts[1]])


def _source_digest() -> str:
    """sha256 of the faceatlas source that turns an image into a face embedding."""
    import faceatlas

    package = Path(faceatlas.__file__).parent
    files = [package / name for name in ("pipeline.py", "align.py", "quality.py", "pose.py", "image.py")]
    for folder in ("detectors", "embedders", "models"):
        files += sorted(f for f in (package / folder).glob("*.py") if f.name != "cards.py")  # thresholds: not the faces
    digest = hashlib.sha256()
    for path in files:
        if path.is_file():
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def embed_default(root: Path, batch: int = 32, embedder: str | None = None) -> Embedded:
    """Every image's primary face through ``FaceAnalyzer()`` (or with another ``embedder``)."""
    analyzer = FaceAnalyzer() if embedder is None else FaceAnalyzer(embedder=embedder)
    paths = sorted(root.glob("*/*.jpg"))
    pipeline = _describe(analyzer)
    key = hashlib.sha256(f"{root.resolve()}|{len(paths)}|{pipeline}|central|{_source_digest()}".encode()).hexdigest()[
        :16
    ]
    cached = CACHE / f"default-{key}.npz"
    if not cached.exists():
        analyzer.load()
        vectors, qualities, kept = [], [], []
        started = time.perf_counter()
        for start in range(0, len(paths), batch):
            chunk = paths[start : start + batch]
            images = [load_image(p) for p in chunk]
            for path, image, faces in zip(chunk, images, analyzer.analyze_batch(images), strict=True):
                face = primary_face(faces, (image.shape[1], image.shape[0]), "central")
                if face is not None and face.embedding is not None:
                    vectors.append(face.embedding)
                    qualities.append(face.quality.score if face.quality is not None else 1.0)
                    kept.append(str(path))
            if start % (batch * 20) == 0:
                print(f"  {start + len(chunk)}/{len(paths)} images, {time.perf_counter() - started:.0f} s", flush=True)
        CACHE.mkdir(parents=True, exist_ok=True)
        np.savez(
            cached,
            emb=np.stack(vectors).astype(np.float32),
            quality=np.array(qualities, np.float32),
            paths=np.array(kept),
            pipeline=np.array(pipeline),
        )
        print(f"  {len(kept)}/{len(paths)} images with a face ({pipeline}), {time.perf_counter() - started:.0f} s")
    data = np.load(cached, allow_pickle=False)
    kept = [str(p) for p in data["paths"]]
    names = sorted({Path(p).parent.name for p in kept})
    index = {n: i for i, n in enumerate(names)}
    labels = np.array([index[Path(p).parent.name] for p in kept], np.int64)
    return Embedded(data["emb"], data["quality"], labels, names, kept)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", type=Path, default=LFW_FULL / "lfw-deepfunneled")
    parser.add_argument("--embedder", help="an embedder other than the default")
    args = parser.parse_args()
    data = embed_default(require(args.root, "LFW image folders"), embedder=args.embedder)
    print(f"{len(data.emb)} faces of {len(data.names)} people; quality < 0.3: {(data.quality < 0.3).sum()}")


if __name__ == "__main__":
    main()
