"""A name → class registry whose classes are imported only when first created (timm-style)."""

from __future__ import annotations

import importlib
from typing import Any

from faceatlas.errors import InvalidArgumentError, UnknownModelError


class Registry:
    """Maps names to ``"package.module:Class"`` targets; unknown names list the known ones."""

    def __init__(self, kind: str, targets: dict[str, str]) -> None:
        self.kind = kind
        self._targets = dict(targets)

    def names(self) -> list[str]:
        return sorted(self._targets)

    def register(self, name: str, target: str) -> None:
        if ":" not in target:
            raise InvalidArgumentError(f"a {self.kind} target is 'package.module:Class', got {target!r}")
        self._targets[name] = target

    def create(self, name: str, **options: Any) -> Any:
        try:
            target = self._targets[name]
        except KeyError:
            raise UnknownModelError(f"no {self.kind} named {name!r}; available: {', '.join(self.names())}") from None
        module, cls = target.split(":")
        return getattr(importlib.import_module(module), cls)(**options)
