"""Generator model directories: config.json (registry name, constructor kwargs, class spec, conditions, size)
+ G.safetensors (the EMA generator when training used EMA)."""

from __future__ import annotations

from pathlib import Path

import torch

from synthlabel import checkpoint as ckpt
from synthlabel.data.classes import ClassSpec
from synthlabel.registry import GENERATORS


def save_generator(
    directory: str | Path,
    name: str,
    kwargs: dict,
    generator: torch.nn.Module,
    spec: ClassSpec,
    conditions: list[str],
    extra: dict | None = None,
) -> Path:
    """Write a generator so that `load_generator` can rebuild it with GENERATORS.create(name, **kwargs)."""
    info = {"class_spec": spec.to_json(), "conditions": list(conditions), **(extra or {})}
    return ckpt.save_model(directory, name, kwargs, {"G": generator}, extra=info)


def load_generator(directory: str | Path) -> tuple[torch.nn.Module, dict]:
    """(generator in eval mode, config.json dict with 'class_spec', 'conditions', 'config', 'name')."""
    import synthlabel.generators  # noqa: F401  (registers the built-in generators)

    meta = ckpt.read_model_config(directory)
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in meta["config"].items()}
    generator = GENERATORS.create(meta["name"], **kwargs)
    ckpt.load_weights(directory, "G", generator)
    return generator.eval(), meta


def generator_spec(meta: dict) -> ClassSpec:
    return ClassSpec.from_json(meta["class_spec"])
