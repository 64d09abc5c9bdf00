"""INT8 dlib ResNet: made from the user's photos, agreeing with float32, refused clearly when missing."""

from __future__ import annotations

import numpy as np
import pytest
from face_photos import varied_photos

from faceatlas.embedders.dlib_resnet import DlibResNetEmbedder
from faceatlas.errors import InvalidArgumentError, ModelError
from faceatlas.models import quantize
from faceatlas.quantization import quantize_embedder

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image provides the test photo")


@pytest.fixture(scope="module")
def quantized(tmp_path_factory):
    root = tmp_path_factory.mktemp("int8")
    cache = root / "cache"
    report = quantize_embedder("dlib_resnet", varied_photos(root / "photos", 30), cache_dir=cache)
    return cache, report


def test_the_int8_model_agrees_with_float32(quantized):
    cache, report = quantized
    assert report.path.is_file() and report.path.parent == cache
    assert report.calibration_faces + report.held_out_faces >= 28  # a face in (nearly) every photo
    assert report.cosine_min > 0.99 and report.cosine_mean > 0.995
    assert report.faces_per_s_int8 > 0 and report.faces_per_s_fp32 > 0
    assert "FACEATLAS_INT8=1" in str(report)
    # the embedder picks it up, by argument or by the environment, and embeds real faces alike
    crop = skimage_data.astronaut()[30:180, 160:310].copy()
    fp32 = DlibResNetEmbedder(cache_dir=cache, int8=False).embed(crop)
    int8 = DlibResNetEmbedder(cache_dir=cache, int8=True).embed(crop)
    assert float(fp32[0] @ int8[0]) > 0.99
    assert not np.array_equal(fp32, int8)  # another model really ran


def test_int8_follows_the_environment(quantized, monkeypatch):
    cache, _ = quantized
    monkeypatch.setenv(quantize.INT8_ENV, "1")
    assert DlibResNetEmbedder(cache_dir=cache).int8 is True
    monkeypatch.setenv(quantize.INT8_ENV, "0")
    assert DlibResNetEmbedder(cache_dir=cache).int8 is False


def test_asking_for_int8_before_quantizing_says_how(tmp_path, quantized, monkeypatch):
    crop = np.zeros((1, 150, 150, 3), np.uint8)
    with pytest.raises(ModelError, match="faceatlas models quantize dlib_resnet"):
        DlibResNetEmbedder(cache_dir=tmp_path / "empty", int8=True).embed(crop)
    cache, _ = quantized
    monkeypatch.setattr(quantize, "QUANTIZER_VERSION", "another recipe")  # a cached model of an older recipe
    with pytest.raises(ModelError, match="stale"):
        DlibResNetEmbedder(cache_dir=cache, int8=True).embed(crop)


def test_too_few_faces_or_another_model_is_refused(tmp_path):
    with pytest.raises(InvalidArgumentError, match="at least 20"):
        quantize_embedder("dlib_resnet", varied_photos(tmp_path / "few", 4), cache_dir=tmp_path / "c")
    with pytest.raises(InvalidArgumentError, match="only dlib_resnet"):
        quantize_embedder("facenet", [], cache_dir=tmp_path / "c")


def test_the_command_reports_and_refuses_a_missing_folder(tmp_path, quantized):
    from typer.testing import CliRunner

    from faceatlas.cli import app

    missing = CliRunner().invoke(app, ["models", "quantize", "dlib_resnet", "--images", str(tmp_path / "none")])
    assert missing.exit_code == 3 and "not a folder" in missing.output
