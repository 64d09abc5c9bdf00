"""Every `faceatlas eval` protocol on ../shared/data, for faceatlas and face_recognition, side by side.

    python benchmarks/eval_side_by_side.py [--out /tmp/faceatlas-eval] [--only pairs,detection]

Both systems go through the same ``faceatlas.eval.protocols`` functions and the same results
cache, so a second run only recomputes what changed. Prints one markdown table per protocol
(the figures in docs/EVALUATION.md) and leaves each system's full report folders under --out.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import SHARED_DATA, machine, require
from baseline_face_recognition import FaceRecognitionSource

from faceatlas.eval import protocols
from faceatlas.eval.source import AnalyzerSource, FaceRunner
from faceatlas.models.cards import DLIB_RESNET_CARD

PROTOCOLS = ("pairs", "quality", "detection", "landmarks", "clustering", "identification")


def datasets() -> dict:
    from faceatlas.eval.clustering import read_identity_folders
    from faceatlas.eval.detection import read_wider_gt
    from faceatlas.eval.landmarks import LandmarkSet, read_dlib_xml
    from faceatlas.eval.pairs import read_lfw_pairs

    lfw = require(SHARED_DATA / "lfw_devtest", "LFW DevTest")
    wider = require(SHARED_DATA / "wider_train", "WIDER Handshaking")
    dlib_faces = require(SHARED_DATA / "dlib_faces" / "examples" / "faces", "dlib faces")
    sets = [read_dlib_xml(x) for x in sorted(dlib_faces.glob("*_with_face_landmarks.xml"))]
    landmark_set = LandmarkSet(tuple(s for one in sets for s in one))
    return {
        "pairs": (read_lfw_pairs(lfw / "pairs.txt", lfw / "images"), "LFW View 1 DevTest pairs"),
        "detection": (
            read_wider_gt(wider / "wider_face_train_bbx_gt.txt", wider / "images"),
            "WIDER FACE train, Handshaking (121 images)",
        ),
        "landmarks": (landmark_set, "dlib faces (training + testing), 68 points reduced to 5"),
        "identities": (read_identity_folders(lfw / "images"), "LFW DevTest identities (folders)"),
    }


def run(name: str, source, data: dict, out: Path, cache: Path) -> dict:
    runner = FaceRunner(source, cache=cache)
    folder = out / name
    threshold = DLIB_RESNET_CARD.threshold_for(1e-3)  # same network in both systems
    started = time.perf_counter()
    results = {}
    for protocol in ONLY:
        target = folder / protocol
        if protocol in ("pairs", "quality"):
            pairs, label = data["pairs"]
            fn = protocols.pairs if protocol == "pairs" else protocols.quality
            fn(pairs, runner, target, label)
        elif protocol == "detection":
            samples, label = data["detection"]
            protocols.detection(samples, runner, target, label)
        elif protocol == "landmarks":
            samples, label = data["landmarks"]
            protocols.landmarks(samples, runner, target, label)
        elif protocol == "clustering":
            items, label = data["identities"]
            protocols.clustering(items, runner, target, label, threshold)
        elif protocol == "identification":
            items, label = data["identities"]
            protocols.identification(items, runner, target, label)
        results[protocol] = json.loads((target / "result.json").read_text())
    print(
        f"{name}: {time.perf_counter() - started:.1f} s ({runner.stats.cached} cached, {runner.stats.computed} computed)"
    )
    return results


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def num(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def rows(protocol: str, r: dict) -> list[tuple[str, str]]:
    if protocol == "pairs":
        v = r["verification"]
        return [
            ("failed pairs", str(v["n_failed"])),
            ("accuracy (10-fold)", f"{pct(v['accuracy_mean'])} ± {100 * v['accuracy_std']:.2f}"),
            ("AUC", num(v["auc"], 5)),
            ("EER", pct(v["eer"])),
            ("TAR @ FAR 1e-2", pct(v["tar_at_far"]["0.01"])),
        ]
    if protocol == "quality":
        q = r["edc"]
        return [
            (f"EDC pAUC, {name} (vs random)", f"{num(curve['pauc'], 4)} ({num(curve['pauc_relative'], 2)})")
            for name, curve in q["curves"].items()
        ]
    if protocol == "detection":
        d = r["detection"]
        out = [(f"AP ({name})", pct(s["ap"])) for name, s in d["settings"].items()]
        out += [(f"recall ({name})", pct(s["recall"])) for name, s in d["settings"].items()]
        out += [
            (f"recall {b['min_size']:g}" + (f"–{b['max_size']:g} px" if b["max_size"] else "+ px"), pct(b["recall"]))
            for b in d["size_buckets"]
        ]
        speed = r["run"]["images_per_second"]
        return [*out, ("detections", str(d["n_detections"])), ("images/s (when computed)", num(speed, 1))]
    if protocol == "landmarks":
        m = r["landmarks"]
        return [
            ("faces (missed)", f"{m['faces']} ({m['missed']})"),
            ("mean NME (inter-ocular)", pct(m["nme_mean"])),
            ("median NME", pct(m["nme_median"])),
            ("failure rate (NME > 0.1, misses included)", pct(m["failure_rate"])),
            ("AUC@0.1", num(m["auc"], 4)),
        ]
    if protocol == "clustering":
        c = r["clustering"]
        return [
            ("clusters (identities)", f"{c['n_clusters']} ({c['n_identities']})"),
            (
                "pairwise P / R / F1",
                f"{num(c['pairwise_precision'])} / {num(c['pairwise_recall'])} / {num(c['pairwise_f1'])}",
            ),
            ("BCubed P / R / F1", f"{num(c['bcubed_precision'])} / {num(c['bcubed_recall'])} / {num(c['bcubed_f1'])}"),
            ("NMI", num(c["nmi"])),
            ("singleton share", num(c["singleton_share"])),
        ]
    if protocol == "identification":
        i = r["identification"]
        out = [(f"rank-{k} rate", pct(v)) for k, v in i["rank_rates"].items()]
        out += [(f"FNIR @ FPIR {k}", pct(v)) for k, v in i["fnir_at_fpir"].items()]
        return [("gallery / mated / non-mated probes", f"{i['n_gallery']} / {i['n_mated']} / {i['n_nonmated']}"), *out]
    return []


def main() -> None:
    global ONLY
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("/tmp/faceatlas-eval"))
    parser.add_argument(
        "--cache", type=Path, default=Path.home() / ".cache" / "faceatlas-bench" / "eval-results.sqlite"
    )
    parser.add_argument("--only", default=",".join(PROTOCOLS))
    args = parser.parse_args()
    ONLY = tuple(p for p in args.only.split(",") if p)
    data = datasets()
    print(f"machine: {machine()}\n")
    ours = run("faceatlas", AnalyzerSource(), data, args.out, args.cache)
    base = run("face_recognition", FaceRecognitionSource(), data, args.out, args.cache)
    for protocol in ONLY:
        print(f"\n### {protocol}\n\n| measure | faceatlas | face_recognition |\n|---|---|---|")
        theirs = dict(rows(protocol, base[protocol]))
        for label, value in rows(protocol, ours[protocol]):
            print(f"| {label} | {value} | {theirs.get(label, 'n/a')} |")


ONLY: tuple[str, ...] = PROTOCOLS

if __name__ == "__main__":
    main()
