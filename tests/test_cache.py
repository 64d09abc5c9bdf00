import json

import pytest

from faceatlas.errors import ModelError
from faceatlas.models.cache import CACHE_ENV, cache_dir, cached_model


def test_cache_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "env"))
    assert cache_dir() == tmp_path / "env"
    assert cache_dir(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv(CACHE_ENV)
    assert "faceatlas" in str(cache_dir())


def test_builds_once_then_reuses(tmp_path):
    calls = []

    def build():
        calls.append(1)
        return b"model-bytes"

    p1 = cached_model("m", "src1", "1", build, tmp_path)
    p2 = cached_model("m", "src1", "1", build, tmp_path)
    assert p1 == p2 and p1.read_bytes() == b"model-bytes" and len(calls) == 1


@pytest.mark.parametrize("damage", ["corrupt", "truncate", "manifest", "stale_source", "stale_converter"])
def test_corrupt_or_stale_cache_is_rebuilt(tmp_path, damage):
    calls = []

    def build():
        calls.append(1)
        return b"model-bytes-v%d" % len(calls)

    path = cached_model("m", "src1", "1", build, tmp_path)
    source, converter = "src1", "1"
    if damage == "corrupt":
        path.write_bytes(b"model-bytes-XX")
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:3])
    elif damage == "manifest":
        (tmp_path / "m.json").write_text("{not json")
    elif damage == "stale_source":
        source = "src2"
    else:
        converter = "2"
    path = cached_model("m", source, converter, build, tmp_path)
    assert len(calls) == 2 and path.read_bytes() == b"model-bytes-v2"
    manifest = json.loads((tmp_path / "m.json").read_text())
    assert manifest["source_sha256"] == source and manifest["converter_version"] == converter


def test_conversion_failure_is_a_model_error_and_leaves_no_file(tmp_path):
    def build():
        raise RuntimeError("boom")

    with pytest.raises(ModelError, match="could not convert.*boom"):
        cached_model("m", "s", "1", build, tmp_path)
    assert not (tmp_path / "m.onnx").exists()
