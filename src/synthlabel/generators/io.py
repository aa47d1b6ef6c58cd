"""Generators on disk, every kind alike: `config.json` (registered name + constructor kwargs) + `G.safetensors`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from synthlabel import checkpoint as ckpt
from synthlabel.data.classes import ClassSpec
from synthlabel.registry import GENERATORS

# Importing this module ran synthlabel.generators/__init__, which registers every family `load_generator` rebuilds.


def save_generator(
    directory: str | Path,
    name: str,
    kwargs: dict,
    generator: torch.nn.Module,
    spec: ClassSpec | None = None,
    conditions: Sequence[str] = (),
    extra: dict | None = None,
) -> Path:
    """Write a generator so that `load_generator` can rebuild it with GENERATORS.create(name, **kwargs).

    A label-map generator stores its class spec and condition names (`spec`, `conditions`); `extra` adds any
    other JSON-ready record (steps, seed, class names, ...)."""
    labels = {"class_spec": spec.to_json(), "conditions": list(conditions)} if spec is not None else {}
    return ckpt.save_model(directory, name, kwargs, {"G": generator}, extra={**labels, **(extra or {})})


def load_generator(directory: str | Path) -> tuple[torch.nn.Module, dict]:
    """(generator in eval mode, config.json dict with 'name', 'config' and what `save_generator` recorded)."""
    meta = ckpt.read_model_config(directory)
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in meta["config"].items()}
    generator = ckpt.build_model(directory, GENERATORS, meta["name"], **kwargs)
    ckpt.load_weights(directory, "G", generator)
    return generator.eval(), meta


def generator_spec(meta: dict) -> ClassSpec:
    """The class spec a label-map generator was trained with (from `load_generator`'s meta)."""
    return ClassSpec.from_json(meta["class_spec"])
