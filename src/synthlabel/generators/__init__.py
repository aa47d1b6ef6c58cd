"""Generators and discriminators of every kind (label map -> image, class -> image, image -> image); importing this
package (or any of its modules) registers them. `conditioned_on` lists the registered names by what they are
conditioned on."""

from synthlabel.generators import (  # noqa: F401  (registers the models)
    cgan,
    dcgan,
    discriminators,
    pix2pix,
    spade,
    stylegan,
    translator,
)
from synthlabel.registry import Registry


def conditioned_on(registry: Registry, what: str) -> list[str]:
    """Registered names whose network declares `what` ("label_map", "condition", "class", "noise") in its
    `conditioning`, e.g. conditioned_on(GENERATORS, "class") -> the class -> image families."""
    return [name for name in registry.names() if what in registry.get(name).conditioning]
