"""Image classification from a few labeled images per class: class-per-folder data, per-class and
class-conditional GANs, classifier training with generated images, objective generator selection, the study."""

from __future__ import annotations


def families() -> list[str]:
    """Registered class -> image GAN families (importing their modules registers them)."""
    from synthlabel.cls import cgan, dcgan  # noqa: F401
    from synthlabel.registry import CLASS_GENERATORS

    return CLASS_GENERATORS.names()


def classifiers() -> list[str]:
    from synthlabel.cls import models  # noqa: F401
    from synthlabel.registry import CLASSIFIERS

    return CLASSIFIERS.names()
