"""One definition per concept: shared errors, the face matrix, the file hash, leaf modules."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from faceatlas import errors
from faceatlas.collection import store as collection_store
from faceatlas.gallery import store as gallery_store


def test_model_mismatch_and_face_not_found_are_each_one_class_with_every_old_base():
    for name in ("ModelMismatchError", "FaceNotFoundError"):
        one = getattr(errors, name)
        assert getattr(gallery_store, name) is one and getattr(collection_store, name) is one
        assert issubclass(one, errors.GalleryError) and issubclass(one, errors.CollectionError)
    assert issubclass(errors.FaceNotFoundError, KeyError)
    assert (
        gallery_store.GalleryError is errors.GalleryError and collection_store.CollectionError is errors.CollectionError
    )
    from faceatlas.collection import FaceNotFoundError, ModelMismatchError  # the package's lazy exports

    assert FaceNotFoundError is errors.FaceNotFoundError and ModelMismatchError is errors.ModelMismatchError


def test_a_missing_face_keeps_its_id_and_an_unquoted_message():
    error = errors.FaceNotFoundError("no face 7 in collection x.db", 7)
    assert error.face_id == 7 and str(error) == "no face 7 in collection x.db"
    assert errors.FaceNotFoundError("no face with id 3 in the gallery").face_id is None
    # caught as either store's error, and as a KeyError, wherever it is raised
    for kind in (errors.GalleryError, errors.CollectionError, KeyError, errors.FaceAtlasError):
        with pytest.raises(kind):
            raise errors.FaceNotFoundError("no face 1", 1)


def test_the_gallery_and_the_collection_read_one_face_matrix_type(tmp_path: Path):
    from faceatlas.collection import FaceTable
    from faceatlas.types import FaceMatrix

    assert FaceTable is FaceMatrix and gallery_store.FaceMatrix is FaceMatrix
    gallery = gallery_store.open_store(tmp_path / "g.db")
    gallery.bind_model(gallery_store.ModelTag("fake", "1", 4))
    person = gallery.add_person("ada")
    gallery.add_faces(person, [gallery_store.FaceRecord(np.float32([1, 0, 0, 0]), 0.9, "a")])
    matrix = gallery.face_matrix()
    gallery.close()
    assert type(matrix) is FaceMatrix and matrix.person_ids.tolist() == [person] and matrix.photo_ids is None
    assert len(matrix) == 1 and matrix.version > 0
    with collection_store.CollectionStore.open(tmp_path / "c.db") as collection:
        table = collection.face_table()
    assert type(table) is FaceMatrix and len(table) == 0 and table.clusters is not None and table.photo_ids is not None


def test_one_file_hash(tmp_path: Path):
    from faceatlas._files import sha256_file
    from faceatlas.collection import indexer
    from faceatlas.eval.source import file_digest
    from faceatlas.models import cache

    path = tmp_path / "photo.bin"
    data = bytes(range(256)) * 5000  # over one chunk
    path.write_bytes(data)
    assert sha256_file(path) == sha256_file(path, chunk=1000) == hashlib.sha256(data).hexdigest()
    assert indexer.sha256_file is sha256_file and cache.sha256_file is sha256_file
    assert file_digest(path) == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("module", ["faceatlas._thresholds", "faceatlas._files", "faceatlas.types"])
def test_leaf_modules_import_nothing_above_them(module: str):
    code = f"import json, sys, {module}; print(json.dumps([m for m in sys.modules if m.startswith('faceatlas')]))"
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert set(loaded) <= {"faceatlas", "faceatlas.errors", module}
