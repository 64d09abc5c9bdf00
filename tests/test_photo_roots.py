"""``index_folder(allowed_roots=...)``: what the service indexes stays inside its photo roots.

The service passes FACEATLAS_PHOTO_ROOTS (see test_server_collection.py for the routes); the CLI
passes nothing and follows links as it always did. A fake analyzer finds one face per photo.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceatlas.collection import CollectionStore
from faceatlas.collection.indexer import analyse_file, index_folder
from faceatlas.errors import CollectionError
from faceatlas.models.cards import DLIB_RESNET_CARD
from faceatlas.types import Box, Face, Landmarks, Pose, Quality


class FakeEmbedder:
    card = DLIB_RESNET_CARD
    dim = 128


class OneFace:
    embedder = FakeEmbedder()

    def analyze(self, image: np.ndarray) -> list[Face]:
        vector = np.zeros(128, np.float32)
        vector[int(image[0, 0, 0]) % 128] = 1.0  # the photo's red says who it is
        return [
            Face(
                Box(2, 2, 30, 30),
                0.99,
                Landmarks(np.full((5, 2), 16.0)),
                Pose(0, 0, 0),
                Quality(0.9, 1, 1, 1, 1, 1),
                vector,
            )
        ]


def png(path: Path, red: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((32, 32, 3), red, np.uint8)).save(path)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """(a photo root with two photos and a link out of it, the outside photo it links to)."""
    root, outside = tmp_path / "root", png(tmp_path / "outside" / "secret.png", 7)
    png(root / "a.png", 1)
    png(root / "sub" / "b.png", 2)
    (root / "out.png").symlink_to(outside)
    (root / "sub" / "in.png").symlink_to(root / "a.png")  # a link that stays inside: fine
    return root, outside


def stored_paths(db: Path) -> list[str]:
    with CollectionStore.open(db, create=False) as store:
        return [p.path for p in store.photos()]


def test_a_file_link_out_of_the_allowed_roots_is_skipped_and_reported(tree, tmp_path):
    root, _ = tree
    with CollectionStore.open(tmp_path / "c.db") as store:
        report = index_folder(root, store, OneFace(), allowed_roots=[root])
    assert stored_paths(tmp_path / "c.db") == ["a.png", "sub/b.png", "sub/in.png"]
    assert [path for path, _ in report.problems] == ["out.png"] and "outside" in report.problems[0][1]
    assert (report.new, report.faces_added) == (3, 3)

    with CollectionStore.open(tmp_path / "cli.db") as store:  # no roots (the CLI): links are followed
        report = index_folder(root, store, OneFace())
    assert stored_paths(tmp_path / "cli.db") == ["a.png", "out.png", "sub/b.png", "sub/in.png"] and not report.problems


def test_the_roots_are_resolved_and_the_folder_must_lie_inside_them(tree, tmp_path):
    root, outside = tree
    (tmp_path / "alias").symlink_to(root, target_is_directory=True)
    with CollectionStore.open(tmp_path / "c.db") as store:
        report = index_folder(root / "sub", store, OneFace(), allowed_roots=[tmp_path / "alias"])
        assert report.new == 2 and not report.problems  # the root named through a link is the same folder
        with pytest.raises(CollectionError, match="not inside the folders this run may read"):
            index_folder(outside.parent, store, OneFace(), allowed_roots=[root])
        with pytest.raises(CollectionError, match="not inside"):
            index_folder(root, store, OneFace(), allowed_roots=[])


def test_a_file_swapped_for_a_link_after_the_check_is_not_read(tree, tmp_path):
    root, outside = tree
    real = root / "a.png"
    assert analyse_file(OneFace(), "a.png", real, "new", follow=False).error is None
    real.unlink()
    real.symlink_to(outside)  # what a swap between the check and the read would leave
    refused = analyse_file(OneFace(), "a.png", real, "new", follow=False)
    assert refused.error is not None and refused.error.startswith("cannot read") and not refused.faces
    assert analyse_file(OneFace(), "a.png", real, "new").faces  # the CLI's reads follow it


def test_photos_under_a_folder_that_cannot_be_listed_are_kept_not_forgotten(tree, tmp_path, monkeypatch):
    """A folder unreadable for one run (permissions, a disk not mounted) says so, and what was
    indexed under it stays: nothing stored is lost because a listing failed."""
    import os

    from faceatlas.collection import indexer

    root, _ = tree
    with CollectionStore.open(tmp_path / "c.db") as store:
        first = index_folder(root, store, OneFace())
        assert {p.path for p in store.photos()} >= {"a.png", "sub/b.png"}
        real_walk = os.walk

        def walk_failing_on_sub(top, onerror=None, **kwargs):
            for dirpath, dirnames, filenames in real_walk(top, onerror=onerror, **kwargs):
                if "sub" in dirnames:
                    dirnames.remove("sub")
                    onerror(PermissionError(13, "Permission denied", str(Path(dirpath, "sub"))))
                yield dirpath, dirnames, filenames

        monkeypatch.setattr(indexer.os, "walk", walk_failing_on_sub)
        again = index_folder(root, store, OneFace())
        assert ("sub/", "cannot read this folder: Permission denied") in again.problems
        assert again.removed == 0
        assert {p.path for p in store.photos()} >= {"a.png", "sub/b.png"}
    assert first.removed == 0
