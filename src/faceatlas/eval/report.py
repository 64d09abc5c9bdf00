"""Writing a protocol's outputs: ``result.json``, ``report.txt`` and its PNG plots, in one folder."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from faceatlas.eval.source import RunStats

MAX_LISTED_ERRORS = 50


class Report(Protocol):
    def to_dict(self) -> dict: ...

    def table(self) -> str: ...


def json_safe(value: Any) -> Any:
    """NaN/inf become None (JSON has neither); numpy scalars and arrays become Python values."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "tolist"):
        return json_safe(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def run_summary(stats: RunStats | None) -> dict[str, Any]:
    if stats is None:
        return {}
    errors = dict(list(stats.errors.items())[:MAX_LISTED_ERRORS])
    return {
        "images": stats.images,
        "from_cache": stats.cached,
        "computed": stats.computed,
        "unreadable": stats.unreadable,
        "images_per_second": stats.images_per_second,
        "unreadable_files": errors,
    }


def write_outputs(
    out_dir: str | Path,
    protocol: str,
    reports: Mapping[str, Report],
    *,
    source: str,
    dataset: str,
    stats: RunStats | None = None,
    plots: Mapping[str, Callable[[Path], object]] | None = None,  # what they return is ignored
) -> list[Path]:
    """Write the reports (name → report) and plots (file name → function drawing into a path).

    Returns the files written. ``report.txt`` is what the CLI prints.
    """
    from faceatlas import __version__

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run = run_summary(stats)
    document = {
        "protocol": protocol,
        "dataset": dataset,
        "source": source,
        "faceatlas_version": __version__,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "run": run,
        **{name: report.to_dict() for name, report in reports.items()},
    }
    written = [out / "result.json", out / "report.txt"]
    written[0].write_text(json.dumps(json_safe(document), indent=2) + "\n")
    written[1].write_text(text_report(protocol, dataset, source, reports, run) + "\n")
    for name, draw in (plots or {}).items():
        draw(out / name)
        written.append(out / name)
    return written


def text_report(protocol: str, dataset: str, source: str, reports: Mapping[str, Report], run: dict[str, Any]) -> str:
    lines = [f"{protocol} — {dataset}", f"system: {source}"]
    if run:
        speed = run["images_per_second"]
        lines.append(
            f"images {run['images']} (from cache {run['from_cache']}, computed {run['computed']}"
            + (f" at {speed:.1f}/s" if speed else "")
            + f"; unreadable {run['unreadable']})"
        )
    for name, report in reports.items():
        lines += ["", f"[{name}]", report.table()]
    return "\n".join(lines)
