"""What a person's name may be: the one rule every front end (Python, CLI, API, cluster naming) applies.

>>> validate_person_name("  Zoe\u0308 ")   # NFD in, NFC out, surrounding spaces dropped
'Zoë'

A name is any text a person might be called by, in any script, with these exceptions:

- it is normalised to NFC (so "Zoë" typed as e + combining diaeresis is the same person as "Zoë")
  and stripped of surrounding whitespace; what is left must not be empty;
- no control or invisible characters (Unicode categories C*: NUL, tab, newline, bidi overrides,
  private-use and unassigned code points, lone surrogates) and no line or paragraph separators.
  They make two names that look the same differ, break one-name-per-line output (``people list``),
  and a lone surrogate cannot even be stored as UTF-8. The zero-width (non-)joiner is the exception:
  Persian, Indic scripts and emoji sequences need it;
- not ``.`` or ``..``, and no ``/``: the API addresses a person as one URL path segment
  (``/v1/people/{name}``); clients remove ``.``/``..`` segments and servers decode ``%2F`` before
  routing, so such a person could be enrolled but never read, renamed or deleted over HTTP.
  (A backslash is allowed: no part of faceatlas uses a name as a path or splits on it.);
- at most MAX_NAME_LENGTH characters (code points, after NFC).

Only names *entering* are checked (enrol, rename, naming a cluster). Looking a person up (to read,
merge or delete) takes the name as given, so a name stored before these rules stays reachable.
"""

from __future__ import annotations

import unicodedata

from faceatlas.errors import InvalidNameError

MAX_NAME_LENGTH = 100
_JOINERS = {"\u200c", "\u200d"}  # zero-width non-joiner and joiner: part of how some scripts are written
_SEPARATORS = {"Zl", "Zp"}  # U+2028, U+2029: line breaks by another name
_KINDS = {"Cc": "a control character", "Cs": "a lone surrogate", "Co": "private use", "Cn": "unassigned"}


def validate_person_name(name: object) -> str:
    """The name as stored: NFC-normalised and stripped; InvalidNameError (a ValueError) says why not."""
    if not isinstance(name, str):
        raise InvalidNameError(f"a person's name must be text, got {type(name).__name__}")
    text = unicodedata.normalize("NFC", name).strip()
    if not text:
        raise InvalidNameError(f"a person's name must be non-empty (not blank), got {name!r}")
    for char in text:
        category = unicodedata.category(char)
        if (category.startswith("C") and char not in _JOINERS) or category in _SEPARATORS:
            raise InvalidNameError(
                f"a person's name cannot contain control or invisible characters; {_shown(text)} has "
                f"U+{ord(char):04X} ({unicodedata.name(char, _KINDS.get(category, category))})"
            )
    if text in (".", ".."):
        raise InvalidNameError(f"{text!r} is not a usable person's name (it is a path segment); pick a real name")
    if "/" in text:
        raise InvalidNameError(
            f"a person's name cannot contain '/' (the API addresses a person by name in a URL path), got {_shown(text)}"
        )
    if len(text) > MAX_NAME_LENGTH:
        raise InvalidNameError(
            f"a person's name can have at most {MAX_NAME_LENGTH} characters, got {len(text)} ({_shown(text)})"
        )
    return text


def _shown(text: str, limit: int = 40) -> str:
    """The name for a message: quoted with escapes (so invisible characters show), cut when long."""
    return repr(text if len(text) <= limit else text[:limit] + "…")
