"""Typed configs of the classification study (`synthlabel cls-experiment`): data, GAN families, generator
selection, the classifier, and the arms compared over R runs. Strict like synthlabel.config: unknown keys and
wrong types are errors naming the key."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from synthlabel.config import Strict
from synthlabel.generators import conditioned_on
from synthlabel.registry import GENERATORS

BUILTIN_SETS = ("mnist5k", "digits")


class ClsDataConfig(Strict):
    """Where the labeled images come from and how each run splits them.

    Run r trains on `n_per_class` images of every class drawn with seed r and is evaluated on all the other
    images of the pool (or on `test_path` when given). `holdout_per_class` images of every class (drawn by
    `holdout_seed`) form a dev pool that no test run ever trains or evaluates on; `protocol: dev` runs the whole
    study inside that pool instead (train on n per class of it, evaluate on the rest of it), for choosing
    settings without touching the test images."""

    source: Literal["mnist5k", "digits", "folders"] = "digits"
    path: str | None = None  # folders: <path>/<class name>/<images>
    test_path: str | None = None  # folders: a separate evaluation tree with the same classes; None = rest of pool
    size: tuple[int, int] | None = None  # working size (H, W); None = native (all images must match)
    n_per_class: int = Field(10, ge=1)
    holdout_per_class: int = Field(0, ge=0)
    holdout_seed: int = 12345
    protocol: Literal["test", "dev"] = "test"

    @model_validator(mode="after")
    def _paths(self):
        if self.source == "folders" and not self.path:
            raise ValueError("data.path is required when data.source is 'folders'")
        if self.test_path and self.protocol == "dev":
            raise ValueError("data.test_path cannot be used with protocol 'dev' (the dev pool is the evaluation)")
        return self


class ClassGANConfig(Strict):
    """One GAN family's training (the family is the key in `generators`, a registered name: dcgan, cgan).

    Batches hold `batch_per_class` real and as many generated images of every class. `snapshots` EMA
    snapshots, evenly spaced and the last at `steps`, each render a pool of `synthetic_per_class` images per
    class: the candidates that selection scores."""

    width: int = Field(16, ge=2)
    z_dim: int = Field(64, ge=1)
    steps: int = Field(800, ge=1)
    batch_per_class: int = Field(8, ge=1)
    # DCGAN's Adam betas and loss; G faster than D: with ten images per class D otherwise wins within 200 steps
    lr_g: float = Field(6e-4, gt=0)
    lr_d: float = Field(3e-4, gt=0)
    betas: tuple[float, float] = (0.5, 0.999)
    adversarial: Literal["hinge", "nonsat"] = "nonsat"
    # DiffAugment ops on real and fake before D (off by default: within the short CPU budget of a few hundred
    # steps it slowed convergence on the MNIST dev pool; it pays off in longer runs, where D memorizes)
    augment: tuple[Literal["color", "translation", "cutout"], ...] = ()
    augment_p: float = Field(1.0, ge=0.0, le=1.0)  # initial p (DiffAugment: 1 = always)
    adaptive: bool = False  # ADA: p follows E[sign D(real)] toward ada_target (one p for all classes)
    ada_target: float = Field(0.6, gt=0.0, lt=1.0)
    ada_images: int = Field(20_000, ge=1)
    ema_decay: float = Field(0.99, ge=0.0, le=1.0)
    snapshots: int = Field(4, ge=1)
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    device: str = "cpu"


class SelectionConfig(Strict):
    """Objective generator selection without pretrained nets. A candidate (one EMA snapshot) scores, per class,
    `recall`: the share of the run's real training images of the class that a classifier trained only on the
    candidate's images gets right (train on synthetic, test on real), and `diversity`: the mean pairwise distance
    of its images of the class over that of the real ones. The snapshot with the best mean recall is kept; a class
    whose recall or diversity falls below the thresholds has its generator dropped, and its share of generated
    images falls back to its real images (so class frequencies stay balanced)."""

    min_recall: float = Field(0.5, ge=0.0, le=1.0)
    min_diversity: float = Field(0.3, ge=0.0)
    per_class: bool = False  # choose the snapshot class by class (noisy with ten real images per class)
    tstr_steps: int = Field(150, ge=1)
    tstr_batch_size: int = Field(64, ge=1)


class ClassicAugmentConfig(Strict):
    """Classic augmentation (the arms' `augment` switch): a random affine map per image."""

    rotate: float = Field(10.0, ge=0.0)  # degrees, uniform in [-rotate, rotate]
    translate: float = Field(0.1, ge=0.0, le=0.5)  # fraction of the image side
    scale: tuple[float, float] = (0.9, 1.1)
    flip: bool = False  # horizontal flips (off for digits and text)


class ClassifierConfig(Strict):
    """The downstream classifier and its training. An epoch is ceil(real training images / batch_size) steps in
    every arm, so all arms get the same steps (generated images replace real ones inside the steps)."""

    name: str = "cnn"
    width: int = Field(8, ge=2)
    dropout: float = Field(0.3, ge=0.0, lt=1.0)
    epochs: int = Field(120, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(5e-4, ge=0)
    eval_every: int = Field(24, ge=1)  # epochs between evaluations (and at the end): the accuracy curve
    augment: ClassicAugmentConfig = Field(default_factory=ClassicAugmentConfig)
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    device: str = "cpu"


class ArmConfig(Strict):
    """One way of training the classifier. source: "real" (the baseline: real images only), "noise" (the
    published noise images) or a GAN family. mixed: every batch holds `fraction` generated images; alternate:
    whole batches of generated images at a share of `fraction` of the steps (0.5 = real, generated, real, ...).
    The modes are those of the segmenter's `mix.mode` (one sampler, synthlabel.downstream.mixing)."""

    source: str = "real"
    mode: Literal["mixed", "alternate"] = "mixed"
    fraction: float = Field(0.5, ge=0.0, lt=1.0)
    augment: bool = False
    select: bool = True  # GAN sources: selected candidates (True) or every generator's final snapshot (False)


def default_arms() -> dict[str, ArmConfig]:
    sources = {"baseline": "real", "noise": "noise", "dcgan": "dcgan", "cgan": "cgan"}
    return {name: ArmConfig(source=source) for name, source in sources.items()}


class ClsExperimentConfig(Strict):
    """`synthlabel cls-experiment`: train the generators of every run, select, train a classifier per arm and
    run, aggregate. `generators` holds per-family settings (a family an arm uses but this map does not name
    trains with the defaults); `synthetic_per_class` generated (or noise) images per class are added to a run."""

    data: ClsDataConfig = Field(default_factory=ClsDataConfig)
    runs: int = Field(20, ge=1)
    synthetic_per_class: int = Field(200, ge=1)
    noise_std: float | None = Field(None, gt=0)  # None = the pixel std of the run's real training images
    generators: dict[str, ClassGANConfig] = Field(default_factory=dict)
    selection: SelectionConfig = Field(default_factory=SelectionConfig)
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)
    arms: dict[str, ArmConfig] = Field(default_factory=default_arms)
    seed: int = 0  # run r uses seed + r for its subset, its generators and its classifiers
    samples_per_class: int = Field(8, ge=1)  # generated images per class in the report's sample grids

    @model_validator(mode="after")
    def _sources(self):
        known = conditioned_on(GENERATORS, "class")
        for name in self.generators:
            if name not in known:
                raise ValueError(f"generators.{name}: unknown GAN family; available: {', '.join(known)}")
        for name, arm in self.arms.items():
            if arm.source not in ("real", "noise", *known):
                raise ValueError(f"arms.{name}.source {arm.source!r}: use real, noise or one of {', '.join(known)}")
            if arm.source != "real" and arm.fraction <= 0:
                raise ValueError(f"arms.{name}.fraction must be > 0 for source {arm.source!r}")
        if not self.arms:
            raise ValueError("arms: at least one arm is needed")
        return self

    def gan(self, family: str) -> ClassGANConfig:
        return self.generators.get(family, ClassGANConfig())

    def families(self) -> list[str]:
        """The GAN families the arms use, in first-use order."""
        return list(dict.fromkeys(a.source for a in self.arms.values() if a.source not in ("real", "noise")))
