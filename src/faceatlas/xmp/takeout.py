"""People named in a Google Takeout (Google Photos) export: per-photo JSON, names without boxes.

Layout: next to ``IMG_1.jpg`` lies ``IMG_1.jpg.json`` (older exports) or
``IMG_1.jpg.supplemental-metadata.json`` (since 2024), holding ``"title"`` (the original file
name), ``"photoTakenTime"`` and ``"people": [{"name": ...}]``. The JSON's file name is cut to 51
characters, so long names lose the end of the suffix (``.supplemental-met.json``, ``.suppl.json``)
or of the photo's own name (46 characters + ``.json``); duplicates ``IMG_1(1).jpg`` get
``IMG_1.jpg(1).json`` (the counter moves behind the suffix); an ``IMG_1-edited.jpg`` shares its
original's JSON. A JSON is matched to its photo by these rules, then by its ``title``, then by an
unambiguous prefix of a photo's name.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from faceatlas.xmp.regions import clean_name

MAX_JSON_BYTES = 1024 * 1024
SUFFIX = "supplemental-metadata"
_DUPLICATE = re.compile(r"(.*)\((\d+)\)")


def _is_photo_metadata(data: Any) -> bool:
    return isinstance(data, dict) and "title" in data and any(k in data for k in ("photoTakenTime", "people"))


def _photo_for(json_name: str, data: dict[str, Any], files: dict[str, str]) -> str | None:
    """The photo (a name in ``files``, keyed by lowercase name) that a Takeout JSON describes."""
    base = json_name[: -len(".json")]
    dup = None
    match = _DUPLICATE.fullmatch(base)
    if match:
        base, dup = match.group(1), match.group(2)
    head, dot, tail = base.rpartition(".")
    if dot and head and tail and SUFFIX.startswith(tail.lower()):
        base = head

    def numbered(name: str) -> str:
        if dup is None:
            return name
        stem, ext = os.path.splitext(name)
        return f"{stem}({dup}){ext}"

    title = data.get("title")
    for candidate in (numbered(base), numbered(title) if isinstance(title, str) else None):
        if candidate and candidate.lower() in files:
            return files[candidate.lower()]
    prefix = (os.path.splitext(base)[0] if dup is not None and "." in base else base).lower()
    if len(json_name) >= 46:  # a cut name: the photo's name starts with what is left
        hits = [name for low, name in files.items() if low.startswith(prefix) and "-edited" not in low]
        if dup is not None:
            hits = [h for h in hits if f"({dup})" in h]
        if len(hits) == 1:
            return hits[0]
    return None


def takeout_people(folder: Path) -> tuple[dict[str, list[str]], list[str]]:
    """Names per photo in a Takeout folder: photo path relative to ``folder`` (posix) -> names
    (photos without people are left out), and the problems met. Never raises for bad content."""
    folder = Path(folder)
    problems: list[str] = []
    people: dict[str, list[str]] = {}
    if not folder.is_dir():
        return people, [f"{folder} is not a folder"]
    recognised = other = 0
    other_examples: list[str] = []
    for directory, _dirs, names in os.walk(folder):
        here = Path(directory)
        files = {n.lower(): n for n in names if not n.lower().endswith(".json")}
        for json_name in sorted(n for n in names if n.lower().endswith(".json")):
            path = here / json_name
            rel = path.relative_to(folder).as_posix()
            try:
                if path.stat().st_size > MAX_JSON_BYTES:
                    other += 1
                    problems.append(f"{rel}: over {MAX_JSON_BYTES} bytes, not Takeout photo metadata; skipped")
                    continue
                data = json.loads(path.read_bytes())
            except (OSError, ValueError) as exc:
                problems.append(f"{rel}: cannot be read as JSON ({exc}); skipped")
                continue
            if not _is_photo_metadata(data):
                other += 1
                if len(other_examples) < 3:
                    other_examples.append(rel)
                continue
            recognised += 1
            photo = _photo_for(json_name, data, files)
            if photo is None:
                problems.append(f"{rel}: no photo next to it matches (title {data.get('title')!r}); skipped")
                continue
            found = []
            for person in data.get("people") or []:
                name = clean_name(person.get("name")) if isinstance(person, dict) else None
                if name and name not in found:
                    found.append(name)
            if not found:
                continue
            stem, ext = os.path.splitext(photo)
            for target in (photo, files.get(f"{stem}-edited{ext}".lower())):
                if target:
                    key = (here / target).relative_to(folder).as_posix()
                    existing = people.setdefault(key, [])
                    existing += [n for n in found if n not in existing]
    if not recognised:
        shape = f" ({other} JSON file(s) of another shape, e.g. {', '.join(other_examples)})" if other else ""
        problems.append(f"{folder}: no Google Takeout photo metadata (IMG.jpg.json with title and people){shape}")
    return people, problems
