"""The eval results cache and runner, with a fake face system (no models)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from faceatlas.eval.source import FaceRunner, ImageResult, ResultCache, _pack, _unpack
from faceatlas.types import Box, Face, Landmarks, Pose, Quality


class FakeSource:
    """One face per image; the embedding is a function of the pixels, so identical files match."""

    key = "fake-1"

    def __init__(self, fail_after: int | None = None) -> None:
        self.calls = 0
        self.images_seen = 0
        self.fail_after = fail_after

    def factory(self):
        return FakeSource  # a class is picklable: worker processes build their own

    def analyze_images(self, images, embed):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        self.calls += 1
        self.images_seen += len(images)
        out = []
        for image in images:
            h, w = image.shape[:2]
            seed = int(image.sum()) % 2**32
            vector = np.random.default_rng(seed).normal(size=8).astype(np.float32)
            out.append(
                [
                    Face(
                        box=Box(1.0, 2.0, w - 1.0, h - 2.0),
                        score=0.99,
                        landmarks=Landmarks(np.full((5, 2), 3.0)),
                        pose=Pose(1.0, -2.0, 3.0),
                        quality=Quality(0.5, 0.1, 0.2, 0.3, 0.4, 0.99),
                        embedding=vector / np.linalg.norm(vector) if embed else None,
                    )
                ]
            )
        return out


def write_images(folder, n, size=24):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        pixels = np.full((size, size, 3), 10 * i, dtype=np.uint8)
        path = folder / f"img{i:02d}.png"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


def test_pack_round_trip_is_exact():
    face = Face(
        box=Box(1.5, 2.25, 30.0, 40.0),
        score=0.987654321,
        landmarks=Landmarks(np.arange(10, dtype=np.float32).reshape(5, 2)),
        pose=Pose(10.5, -3.25, 1.0),
        quality=Quality(0.7, 0.1, 0.2, 0.3, 0.4, 0.5),
        embedding=np.linspace(-1, 1, 128, dtype=np.float32),
    )
    back = _unpack(_pack(ImageResult((face, face), 640, 480)))
    assert (back.width, back.height, back.error) == (640, 480, None)
    assert len(back.faces) == 2
    got = back.faces[1]
    assert got.box == face.box and got.score == face.score and got.pose == face.pose and got.quality == face.quality
    assert np.array_equal(got.landmarks.points, face.landmarks.points)
    assert np.array_equal(got.embedding, face.embedding)


def test_pack_keeps_missing_stages_and_errors():
    bare = Face(box=Box(0, 0, 5, 5), score=0.5, landmarks=Landmarks(np.zeros((5, 2))))
    back = _unpack(_pack(ImageResult((bare,), 10, 10)))
    assert back.faces[0].pose is None and back.faces[0].quality is None and back.faces[0].embedding is None
    broken = _unpack(_pack(ImageResult((), 0, 0, "not an image")))
    assert broken.error == "not an image" and not broken.ok and broken.faces == ()


def test_second_run_comes_from_the_cache(tmp_path):
    paths = write_images(tmp_path / "imgs", 5)
    cache = tmp_path / "c.sqlite"
    first_source = FakeSource()
    first = FaceRunner(first_source, cache=cache, batch_size=2).results(paths)
    assert first_source.images_seen == 5
    again_source = FakeSource()
    runner = FaceRunner(again_source, cache=cache)
    again = runner.results(paths)
    assert again_source.images_seen == 0 and runner.stats.cached == 5
    for path in paths:
        assert np.array_equal(first[path].faces[0].embedding, again[path].faces[0].embedding)


def test_cache_is_keyed_by_content_not_name(tmp_path):
    paths = write_images(tmp_path / "imgs", 2)
    cache = tmp_path / "c.sqlite"
    FaceRunner(FakeSource(), cache=cache).results(paths)
    copy = tmp_path / "renamed.png"
    copy.write_bytes(paths[0].read_bytes())
    edited = tmp_path / "edited.png"
    Image.fromarray(np.full((24, 24, 3), 200, dtype=np.uint8)).save(edited)
    source = FakeSource()
    FaceRunner(source, cache=cache).results([copy, edited])
    assert source.images_seen == 1  # the copy hit, the edited file did not


def test_detection_entries_do_not_serve_embedding_requests(tmp_path):
    paths = write_images(tmp_path / "imgs", 3)
    cache = tmp_path / "c.sqlite"
    FaceRunner(FakeSource(), cache=cache).results(paths, embed=False)
    source = FakeSource()
    out = FaceRunner(source, cache=cache).results(paths, embed=True)
    assert source.images_seen == 3 and out[paths[0]].faces[0].embedding is not None
    # …while embedded entries do serve detection requests
    detect_only = FakeSource()
    FaceRunner(detect_only, cache=cache).results(paths, embed=False)
    assert detect_only.images_seen == 0


def test_other_source_key_misses(tmp_path):
    paths = write_images(tmp_path / "imgs", 2)
    cache = tmp_path / "c.sqlite"
    FaceRunner(FakeSource(), cache=cache).results(paths)
    other = FakeSource()
    other.key = "fake-2"
    FaceRunner(other, cache=cache).results(paths)
    assert other.images_seen == 2


def test_interrupted_run_resumes_where_it_stopped(tmp_path):
    paths = write_images(tmp_path / "imgs", 7)
    cache = tmp_path / "c.sqlite"
    with pytest.raises(KeyboardInterrupt):
        FaceRunner(FakeSource(fail_after=2), cache=cache, batch_size=2).results(paths)
    resumed = FakeSource()
    runner = FaceRunner(resumed, cache=cache, batch_size=2)
    out = runner.results(paths)
    assert len(out) == 7 and runner.stats.cached == 4 and resumed.images_seen == 3


def test_unreadable_and_missing_files_are_reported_not_dropped(tmp_path):
    good = write_images(tmp_path / "imgs", 1)[0]
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image at all")
    missing = tmp_path / "missing.jpg"
    runner = FaceRunner(FakeSource(), cache=False)
    out = runner.results([good, bad, missing])
    assert out[good].ok and not out[bad].ok and not out[missing].ok
    assert runner.stats.unreadable == 2 and set(runner.stats.errors) == {str(bad), str(missing)}


def test_cache_file_is_plain_sqlite(tmp_path):
    paths = write_images(tmp_path / "imgs", 2)
    cache = ResultCache(tmp_path / "c.sqlite")
    FaceRunner(FakeSource(), cache=cache).results(paths)
    (count,) = cache._db.execute("SELECT COUNT(*) FROM results").fetchone()
    assert count == 2
    cache.close()


def test_write_outputs_makes_json_safe(tmp_path):
    from faceatlas.eval.report import write_outputs

    class Tiny:
        def to_dict(self):
            return {"value": float("nan"), "array": np.arange(3), "inf": float("inf")}

        def table(self):
            return "value n/a"

    written = write_outputs(tmp_path, "demo", {"tiny": Tiny()}, source="s", dataset="d")
    document = json.loads((tmp_path / "result.json").read_text())
    assert document["tiny"] == {"value": None, "array": [0, 1, 2], "inf": None}
    assert "value n/a" in (tmp_path / "report.txt").read_text() and len(written) == 2


def test_worker_processes_give_the_same_results(tmp_path):
    paths = write_images(tmp_path / "imgs", 9)
    bad = tmp_path / "imgs" / "bad.png"
    bad.write_bytes(b"garbage")
    serial = FaceRunner(FakeSource(), cache=False, batch_size=2).results([*paths, bad])
    runner = FaceRunner(FakeSource(), cache=tmp_path / "c.sqlite", batch_size=2, workers=2)
    parallel = runner.results([*paths, bad])
    assert runner.stats.computed == 9 and runner.stats.unreadable == 1
    assert not parallel[bad].ok
    for path in paths:
        assert np.array_equal(serial[path].faces[0].embedding, parallel[path].faces[0].embedding)
    # and they were committed to the cache
    again = FakeSource()
    FaceRunner(again, cache=tmp_path / "c.sqlite").results(paths)
    assert again.images_seen == 0


def test_workers_need_a_rebuildable_source():
    class Local:
        key = "local"

        def analyze_images(self, images, embed):
            return [[] for _ in images]

    with pytest.raises(ValueError, match="factory"):
        FaceRunner(Local(), cache=False, workers=2)
