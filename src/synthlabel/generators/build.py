"""Label map -> image networks from a `GenModelConfig`: constructor kwargs (stored with the model), (G, D), and the
config errors a build would raise, checked before anything is allocated or written."""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch
from torch import nn

from synthlabel.config import GenModelConfig
from synthlabel.errors import ConfigError
from synthlabel.generators import conditioned_on
from synthlabel.registry import DISCRIMINATORS, GENERATORS, Registry

# Keys a config's `options` may not set: the trainer derives them from the data and the config's own fields.
_DERIVED = ("num_classes", "num_conditions", "width", "image_size", "z_dim", "num_scales")


def generator_kwargs(model: GenModelConfig, num_classes: int, num_conditions: int, size: Sequence[int]) -> dict:
    """Constructor kwargs of the generator (JSON-ready: they are stored in the model directory)."""
    _check_options(model.options, "model.options")
    kwargs = {"num_classes": num_classes, "num_conditions": num_conditions, "width": model.width}
    z_dim = {"z_dim": model.z_dim} if model.z_dim is not None else {}
    return {**kwargs, "image_size": [int(s) for s in size], **z_dim, **model.options}


def discriminator_kwargs(model: GenModelConfig, num_classes: int, num_conditions: int) -> dict:
    d = model.discriminator
    _check_options(d.options, "model.discriminator.options")
    kwargs = {"num_classes": num_classes, "num_conditions": num_conditions, "width": d.width}
    if "num_scales" in inspect.signature(DISCRIMINATORS.get(d.name)).parameters:  # patch discriminators only
        kwargs["num_scales"] = d.num_scales
    return {**kwargs, **d.options}


def _check_options(options: dict, where: str) -> None:
    clash = sorted(set(options) & set(_DERIVED))
    if clash:
        raise ConfigError(f"{where} may not set {', '.join(clash)}; use the config's own fields or data.size")


def _check_kind(registry: Registry, name: str, where: str) -> None:
    """A label -> image stage takes networks conditioned on label maps only (not the class -> image families)."""
    if "label_map" not in registry.get(name).conditioning:
        usable = ", ".join(conditioned_on(registry, "label_map"))
        raise ConfigError(f"{where} {name!r} is not conditioned on label maps; use one of {usable}")


def build_networks(
    model: GenModelConfig, num_classes: int, num_conditions: int, size: Sequence[int]
) -> tuple[nn.Module, nn.Module]:
    """(G, D) from the config; a config the constructors reject raises ConfigError with their reason."""
    _check_kind(DISCRIMINATORS, model.discriminator.name, "model.discriminator.name")
    d_kwargs = discriminator_kwargs(model, num_classes, num_conditions)
    _check_kind(GENERATORS, model.name, "model.name")
    g_kwargs = generator_kwargs(model, num_classes, num_conditions, size)
    try:
        generator = GENERATORS.create(model.name, **{**g_kwargs, "image_size": tuple(g_kwargs["image_size"])})
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"model: cannot build generator {model.name!r} at size {tuple(size)}: {exc} "
            "(set data.size or model.options)"
        ) from exc
    try:
        discriminator = DISCRIMINATORS.create(model.discriminator.name, **d_kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model.discriminator: cannot build {model.discriminator.name!r}: {exc}") from exc
    return generator, discriminator


def check_networks(model: GenModelConfig, num_classes: int, num_conditions: int, size: Sequence[int]) -> None:
    """Raise the config errors `build_networks` would, before anything is allocated or written (on the meta
    device: no memory, no initialization)."""
    with torch.device("meta"):
        build_networks(model, num_classes, num_conditions, size)
