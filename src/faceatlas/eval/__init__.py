"""Evaluation protocols: what `faceatlas eval` runs, as functions.

>>> from faceatlas.eval import FaceRunner, AnalyzerSource, protocols, read_lfw_pairs
>>> runner = FaceRunner(AnalyzerSource())                 # faces cached per (system, file content)
>>> protocols.pairs(read_lfw_pairs("pairs.txt", "lfw/"), runner, "out/", "LFW View 2")

Each protocol also has its pure metric function (``verification_report``,
``evaluate_detections``, ``clustering_metrics``, ``open_set_report``, ``landmark_report``,
``pose_errors``, ``compare_quality_scorers``, ``group_metrics``) for predictions made elsewhere.
Nothing heavy is imported until a name is used.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    # running a system over a dataset, with the results cache
    "FaceRunner": "faceatlas.eval.source",
    "FaceSource": "faceatlas.eval.source",
    "AnalyzerSource": "faceatlas.eval.source",
    "ResultCache": "faceatlas.eval.source",
    "ImageResult": "faceatlas.eval.source",
    # readers
    "read_lfw_pairs": "faceatlas.eval.pairs",
    "read_cfp_pairs": "faceatlas.eval.pairs",
    "read_csv_pairs": "faceatlas.eval.pairs",
    "read_wider_gt": "faceatlas.eval.detection",
    "apply_wider_difficulty": "faceatlas.eval.detection",
    "read_json_annotations": "faceatlas.eval.detection",
    "read_mtfl": "faceatlas.eval.landmarks",
    "read_dlib_xml": "faceatlas.eval.landmarks",
    "read_aflw2000": "faceatlas.eval.landmarks",
    "read_identity_folders": "faceatlas.eval.clustering",
    "read_identity_csv": "faceatlas.eval.clustering",
    # metrics on predictions made elsewhere
    "evaluate_pairs": "faceatlas.eval.pairs",
    "verification_report": "faceatlas.eval.metrics",
    "evaluate_detections": "faceatlas.eval.detection",
    "landmark_report": "faceatlas.eval.landmarks",
    "match_predictions": "faceatlas.eval.landmarks",
    "pose_errors": "faceatlas.eval.landmarks",
    "clustering_metrics": "faceatlas.eval.clustering",
    "baseline_cluster": "faceatlas.eval.clustering",
    "open_set_report": "faceatlas.eval.identification",
    "split_gallery_probes": "faceatlas.eval.identification",
    "compare_quality_scorers": "faceatlas.eval.edc",
    "group_metrics": "faceatlas.eval.fairness",
    "verification_fairness": "faceatlas.eval.fairness",
}

__all__ = [*_EXPORTS, "protocols"]  # noqa: PLE0604 (the names of the table above)


def __getattr__(name: str) -> Any:
    if name == "protocols":
        return importlib.import_module("faceatlas.eval.protocols")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'faceatlas.eval' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
