"""Name -> component registries (generators, discriminators, downstream models, ...), timm-style."""

from __future__ import annotations

from collections.abc import Callable

from synthlabel.errors import ConfigError


class Registry:
    """Maps a short name to a constructor; `create(name, **kwargs)` builds it."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, Callable] = {}

    def register(self, name: str) -> Callable:
        def deco(fn: Callable) -> Callable:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._items[name] = fn
            return fn

        return deco

    def get(self, name: str) -> Callable:
        if name not in self._items:
            raise ConfigError(f"unknown {self.kind} {name!r}; available: {', '.join(sorted(self._items))}")
        return self._items[name]

    def create(self, name: str, **kwargs):
        return self.get(name)(**kwargs)

    def names(self) -> list[str]:
        return sorted(self._items)


SEGMENTERS = Registry("segmenter")
# Every kind of generator and discriminator (label map -> image, class -> image); each declares its `conditioning`.
GENERATORS = Registry("generator")
DISCRIMINATORS = Registry("discriminator")
CLASSIFIERS = Registry("classifier")  # image classification (synthlabel.cls)
