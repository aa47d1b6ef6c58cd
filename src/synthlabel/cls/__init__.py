"""Image classification from a few labeled images per class: class-per-folder data, per-class and
class-conditional GANs, classifier training with generated images, objective generator selection, the study."""

from __future__ import annotations

from synthlabel.cls import models  # noqa: F401  (registers the classifiers)
from synthlabel.generators import conditioned_on
from synthlabel.registry import CLASSIFIERS, GENERATORS


def families() -> list[str]:
    """Registered class -> image GAN families: the generators conditioned on a class."""
    return conditioned_on(GENERATORS, "class")


def classifiers() -> list[str]:
    return CLASSIFIERS.names()
