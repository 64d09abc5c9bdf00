"""``faceatlas detect|embed IMAGES``: images analysed in chunks, on every core when there are many.

Each chunk of images is decoded and run through the models together (one detector batch, one
embedder batch: the networks are faster per image in batches), in this process or in one of
``faceatlas.parallel``'s worker processes, which return one JSON-ready record per image in input
order. The parent only prints, so what was printed before a failure stays printed.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from faceatlas.errors import InvalidImageError
from faceatlas.parallel import map_ordered, resolve_workers

CHUNK_IMAGES = 8  # images per task: enough for a full embedder batch on group photos
BATCH_PIXELS = 12_000_000  # decoded pixels analysed at once: bounds a worker's memory on big photos


@dataclasses.dataclass(frozen=True, slots=True)
class ImageTask:
    """One image to analyse, and where to draw it (None: not drawn)."""

    path: Path
    draw_to: Path | None = None


def run_images(
    tasks: Sequence[ImageTask],
    embed: bool,
    analyzer_options: dict[str, Any],
    workers: int | None = None,
) -> Iterator[dict[str, Any]]:
    """One record per task, in order: ``{"path", "faces"}`` or ``{"path", "error"}``.

    ``workers``: processes (None: one per core within the memory budget, and this process alone
    for a few images)."""
    from faceatlas.pipeline import FaceAnalyzer

    factory = functools.partial(FaceAnalyzer, **analyzer_options)
    chunks = [list(tasks[i : i + CHUNK_IMAGES]) for i in range(0, len(tasks), CHUNK_IMAGES)]
    count = resolve_workers(workers, len(tasks))
    for records in map_ordered(factory, functools.partial(analyse_chunk, embed=embed), chunks, count):
        yield from records


def analyse_chunk(analyzer: Any, chunk: Sequence[ImageTask], embed: bool) -> list[dict[str, Any]]:
    """Records for a chunk of images, analysed in batches of at most ``BATCH_PIXELS`` pixels."""
    from faceatlas.image import load_image

    records: list[dict[str, Any]] = []
    batch: list[tuple[int, ImageTask, Any]] = []
    pixels = 0
    for task in chunk:
        record: dict[str, Any] = {"path": str(task.path)}
        records.append(record)
        try:
            image = load_image(task.path)
        except InvalidImageError as exc:
            record["error"] = str(exc)
            continue
        if batch and pixels + image.shape[0] * image.shape[1] > BATCH_PIXELS:
            _analyse(analyzer, batch, records, embed)
            batch, pixels = [], 0
        batch.append((len(records) - 1, task, image))
        pixels += image.shape[0] * image.shape[1]
    if batch:
        _analyse(analyzer, batch, records, embed)
    return records


def _analyse(
    analyzer: Any, batch: list[tuple[int, ImageTask, Any]], records: list[dict[str, Any]], embed: bool
) -> None:
    images = [image for _, _, image in batch]
    analyse_one = analyzer.analyze if embed else analyzer.detect
    try:
        found = analyzer.analyze_batch(images) if embed else analyzer.detect_batch(images)
    except (InvalidImageError, MemoryError):
        found = None  # an image the models refuse, or a batch too big: one by one, so only that image fails
    for k, (index, task, image) in enumerate(batch):
        try:
            faces = found[k] if found is not None else analyse_one(image)
        except InvalidImageError as exc:
            records[index]["error"] = str(exc)
            continue
        except MemoryError:
            records[index]["error"] = (
                f"out of memory analysing this {image.shape[1]}x{image.shape[0]} image: "
                "run it again with fewer workers (--workers) or more memory"
            )
            continue
        records[index]["faces"] = [face_json(face, with_embedding=embed) for face in faces]
        if task.draw_to is not None:
            draw(image, faces, task.draw_to)


def face_json(face: Any, with_embedding: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "box": [round(v, 2) for v in face.box.as_xyxy()],
        "score": round(face.score, 4),
        "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in face.landmarks.points],
    }
    if face.pose is not None:
        out["pose"] = {
            "yaw": round(face.pose.yaw, 2),
            "pitch": round(face.pose.pitch, 2),
            "roll": round(face.pose.roll, 2),
        }
    if face.quality is not None:
        out["quality"] = {
            "score": round(face.quality.score, 4),
            **{k: round(v, 4) for k, v in face.quality.components().items()},
            "method": face.quality.method,
        }
        if face.quality.heuristic is not None:
            out["quality"]["heuristic"] = round(face.quality.heuristic, 4)
    if with_embedding and face.embedding is not None:
        out["embedding"] = [round(float(v), 6) for v in face.embedding]
    return out


def draw(image: Any, faces: Any, target: Path) -> None:
    from PIL import Image

    from faceatlas.draw import draw_faces

    Image.fromarray(draw_faces(image, faces)).save(target)
