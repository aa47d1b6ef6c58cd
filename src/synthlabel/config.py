"""Typed configs per stage; strict YAML loading (unknown keys and wrong types are errors); dotted overrides."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from synthlabel.errors import ConfigError


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, validate_assignment=True)


class SubsetConfig(Strict):
    """A deterministic low-shot subset: n images of the train split drawn by seed (or read from a split file)."""

    n: int | None = Field(None, ge=1)
    seed: int = 0
    file: str | None = None  # split file written by `synthlabel subset` (one file name per line)


class DataConfig(Strict):
    path: str = "demo_out/data"
    layout: Literal["auto", "camvid", "cityscapes", "folders"] = "auto"
    train_split: str = "train"
    val_split: str | None = "val"
    test_split: str | None = "test"
    size: tuple[int, int] | None = None  # working resolution (H, W); None = native (`synthlabel run`: see pipeline)
    class_map: str | None = None
    subset: SubsetConfig = Field(default_factory=SubsetConfig)


class SegModelConfig(Strict):
    """The downstream segmenter, by registered name, and its constructor arguments."""

    name: str = "unet"
    width: int = Field(32, ge=4)
    depth: int = Field(4, ge=2, le=6)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    # batch: statistics of each process's share of the batch under torchrun on CPU (no SyncBatchNorm there);
    # group / instance: independent of the batch, so any number of processes trains the same model
    norm: Literal["batch", "instance", "group"] = "batch"


class AugmentConfig(Strict):
    enabled: bool = True
    flip: bool = True
    scale: tuple[float, float] = (0.75, 1.5)
    jitter: float = Field(0.25, ge=0.0, le=1.0)  # brightness/contrast/saturation strength


class CopyPasteConfig(Strict):
    """Copy-paste augmentation: paste segments of rare classes, with their pixels, from other real training images
    (the cheap alternative to generative recomposition). Segments keep their original position and size, so they
    sit where the class usually is, optionally shifted sideways and mirrored."""

    enabled: bool = False
    classes: tuple[str, ...] | None = None  # None = classes below the median pixel share of the training labels
    prob: float = Field(0.5, ge=0.0, le=1.0)  # chance that an image receives pastes
    max_pastes: int = Field(3, ge=1)
    min_area: int = Field(12, ge=1)  # smaller segments (a few pixels of a far pole) are not pasted
    shift: float = Field(0.25, ge=0.0, le=1.0)  # horizontal shift range, as a share of the image width
    # which samples receive pastes: real ones, the extra (synthetic) ones (rare objects with real pixels over a
    # rendered scene), or both
    onto: Literal["real", "synthetic", "both"] = "real"


class SegTrainConfig(Strict):
    steps: int = Field(2000, ge=1)
    batch_size: int = Field(8, ge=1)
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    poly_power: float = 0.9
    warmup_steps: int = Field(50, ge=0)
    class_weights: Literal["none", "inv_sqrt_freq", "median_freq"] = "inv_sqrt_freq"
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    copy_paste: CopyPasteConfig = Field(default_factory=CopyPasteConfig)
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    device: str = "auto"
    seed: int = 0
    eval_every: int = Field(500, ge=1)
    checkpoint_every: int = Field(250, ge=1)
    log_every: int = Field(50, ge=1)


class SourceConfig(Strict):
    """An extra labeled dataset (e.g. synthetic, from `synthlabel synth`) mixed into the real training stream.

    Its labels are mapped into the real data's label set by `class_map` (label harmonization); `keep` restricts it
    to the files a `synthlabel filter` kept; `images` takes a deterministic subset (nested across amounts)."""

    path: str
    name: str | None = None  # label in logs and reports (default: the folder name)
    layout: Literal["auto", "camvid", "cityscapes", "folders"] = "auto"
    split: str = "train"
    class_map: str | None = None
    keep: str | None = None  # keep.txt of `synthlabel filter` (one file name per line)
    images: int | None = Field(None, ge=0)  # use at most this many images (None = all)
    weight: float = Field(1.0, gt=0.0)  # sampling weight among the extra sources
    trust: bool = True  # honor the source's trust maps (<path>/trust/, `synthlabel trust`): untrusted pixels ignored


class MixConfig(Strict):
    """How extra sources join the real data: `mixed` batches with a synthetic share `fraction` (per batch, exact on
    average), `alternate` whole real and synthetic batches (a share `fraction` of the steps are synthetic),
    or `pretrain` on the extra sources for a share `pretrain` of the steps, then real only.

    class_aware: repeat-factor sampling (Gupta et al., LVIS 2019) with this threshold; an image is drawn in
    proportion to max over its classes of max(1, sqrt(threshold / f_c)), f_c = share of the source's images that
    contain class c, so images with rare classes come up more often. 0 = uniform."""

    sources: tuple[SourceConfig, ...] = ()
    mode: Literal["mixed", "alternate", "pretrain"] = "mixed"
    fraction: float = Field(0.5, ge=0.0, le=1.0)
    pretrain: float = Field(0.5, ge=0.0, lt=1.0)
    class_aware: float = Field(0.0, ge=0.0, le=1.0)
    synthetic_weight: float = Field(1.0, gt=0.0)  # loss weight of each extra-source sample (1 = as a real one)
    separate_bn: bool = False  # extra samples normalised apart; batch norm's running statistics from real data only


class SegConfig(Strict):
    """`synthlabel train-seg`: data + model + training (+ extra sources mixed in)."""

    data: DataConfig = Field(default_factory=DataConfig)
    model: SegModelConfig = Field(default_factory=SegModelConfig)
    train: SegTrainConfig = Field(default_factory=SegTrainConfig)
    mix: MixConfig = Field(default_factory=MixConfig)


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply `a.b.c=value` overrides (value parsed as YAML) to a nested dict, returning a new dict."""
    data = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.sub=value")
        key, raw = item.split("=", 1)
        node = data
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {p} is not a section")
        node[parts[-1]] = yaml.safe_load(raw)
    return data


def _lists_to_tuples(x):
    if isinstance(x, dict):
        return {k: _lists_to_tuples(v) for k, v in x.items()}
    if isinstance(x, list):
        return tuple(_lists_to_tuples(v) for v in x)
    return x


def build_config(cls: type[Strict], data: dict | None = None, overrides: list[str] = (), source: str = "config"):
    """Validate a dict (+ overrides) into a config object; errors name the key and the problem."""
    data = apply_overrides(data or {}, list(overrides))
    try:
        # YAML has no tuples; strict mode would reject a list for a tuple field.
        return cls.model_validate(_lists_to_tuples(data))
    except ValidationError as exc:
        lines = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise ConfigError(f"{source}: invalid config\n  " + "\n  ".join(lines)) from None


def load_config(cls: type[Strict], path: str | Path | None = None, overrides: list[str] = ()):
    data = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a config must be a mapping of sections")
    return build_config(cls, data, overrides, source=str(path or "config"))


def to_dict(cfg: BaseModel) -> dict:
    """Plain dict (lists, not tuples) for YAML/JSON."""
    return cfg.model_dump(mode="json")


class DemoConfig(Strict):
    """The procedural demo dataset written by the pipeline's first stage (see data/toy.py)."""

    n_train: int = Field(48, ge=1)
    n_val: int = Field(16, ge=0)
    n_test: int = Field(24, ge=1)
    size: tuple[int, int] = (96, 128)
    seed: int = 0
    paired: bool = False
    # train scenes of these conditions are written without labels to <data>/unlabeled/<condition>/ (the default
    # `translate.target`): the condition-gap story
    unlabeled: tuple[str, ...] = ()
    # the share of scenes under day, dusk, night, fog (every split)
    condition_weights: tuple[float, float, float, float] = (0.55, 0.2, 0.15, 0.1)


class DiscriminatorConfig(Strict):
    """The discriminator of `train-gen`, by registered name (`patchgan` or `oasis`)."""

    name: str = "patchgan"
    width: int = Field(32, ge=4)
    num_scales: int = Field(2, ge=1, le=4)  # patch discriminators only (image pyramid levels)
    options: dict[str, int | float | bool | str] = Field(default_factory=dict)  # extra constructor kwargs


class GenModelConfig(Strict):
    """The generator of `train-gen`, by registered name (`spade` or `pix2pix`), and its discriminator."""

    name: str = "spade"
    width: int = Field(32, ge=4)
    z_dim: int | None = Field(None, ge=0)  # None = the generator's own default (spade 64, pix2pix 0)
    options: dict[str, int | float | bool | str] = Field(default_factory=dict)  # e.g. num_up, depth, dropout
    discriminator: DiscriminatorConfig = Field(default_factory=DiscriminatorConfig)


class GenAugmentConfig(Strict):
    """DiffAugment applied with the same parameters to real and fake and to their label maps; ADA adapts p."""

    policy: tuple[Literal["color", "translation", "cutout"], ...] = ("color", "translation", "cutout")
    adaptive: bool = True  # ADA: p starts at 0 and follows D's overfitting (E[sign D(real)] vs target)
    target: float = Field(0.6, gt=0.0, lt=1.0)
    p: float | None = Field(None, ge=0.0, le=1.0)  # initial p; None = 0 when adaptive, else 1
    ada_images: int = Field(10_000, ge=1)  # images for p to move 0 -> 1 at full speed (ADA: 500k on GPUs)


class GenTrainConfig(Strict):
    steps: int = Field(3000, ge=1)
    batch_size: int = Field(4, ge=1)
    lr_g: float = Field(2e-4, gt=0)
    lr_d: float = Field(4e-4, gt=0)  # two time-scale update rule: D learns faster than G
    betas: tuple[float, float] = (0.0, 0.99)
    adversarial: Literal["hinge", "nonsat"] = "hinge"
    feature_matching: float = Field(10.0, ge=0.0)  # patch discriminators only
    r1_gamma: float = Field(0.0, ge=0.0)  # 0 = off: spectral norm already bounds D
    r1_interval: int = Field(16, ge=1)
    # OASIS's LabelMix (segmentation discriminators only): D on a real/fake mix by classes must give the same mix
    # of its outputs on real and fake; weight of that consistency term in Dmain (OASIS: 10). 0 = off
    label_mix: float = Field(0.0, ge=0.0)
    flip: bool = True  # random horizontal flip of image + label map
    # random zoom-in of image + label map together (a scale-crop, same geometry for both), e.g. [1.0, 1.3]: more
    # layouts from a few labeled images; (1, 1) = off
    zoom: tuple[Annotated[float, Field(ge=1.0)], Annotated[float, Field(ge=1.0)]] = (1.0, 1.0)
    augment: GenAugmentConfig = Field(default_factory=GenAugmentConfig)
    ema_decay: float = Field(0.999, ge=0.0, le=1.0)
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    device: str = "auto"
    seed: int = 0
    log_every: int = Field(25, ge=1)
    sample_every: int = Field(500, ge=1)
    sample_rows: int = Field(4, ge=1)
    sample_columns: int = Field(3, ge=1)  # generated images per row (different z)
    checkpoint_every: int = Field(250, ge=1)
    # also keep the model (G_ema) at every sample step in models/step_XXXXXX/: for fidelity over training time and
    # picking a checkpoint by a downstream score instead of the last step
    keep_models: bool = False


class GenConfig(Strict):
    """`synthlabel train-gen`: data + generator/discriminator + training.

    conditions: the condition names the generator knows, in id order. None = the class spec's conditions if it
    lists any, else the distinct conditions of the training images, else none (an unconditioned generator).
    """

    data: DataConfig = Field(default_factory=DataConfig)
    model: GenModelConfig = Field(default_factory=GenModelConfig)
    train: GenTrainConfig = Field(default_factory=GenTrainConfig)
    conditions: tuple[str, ...] | None = None


class TranslatorDiscriminatorConfig(DiscriminatorConfig):
    """The image-only discriminator of `train-translator` (`image_patchgan`)."""

    name: str = "image_patchgan"


class TranslatorModelConfig(Strict):
    """The image -> image translator of `train-translator` (`resnet_translator`) and its image-only discriminator."""

    name: str = "resnet_translator"
    width: int = Field(32, ge=4)
    z_dim: int = Field(0, ge=0)  # > 0: noise, several different translations of one image
    blocks: int = Field(6, ge=1)
    discriminator: TranslatorDiscriminatorConfig = Field(default_factory=TranslatorDiscriminatorConfig)


class TranslatorTrainConfig(Strict):
    steps: int = Field(3000, ge=1)
    batch_size: int = Field(4, ge=1)
    lr_g: float = Field(2e-4, gt=0)
    lr_d: float = Field(2e-4, gt=0)
    betas: tuple[float, float] = (0.5, 0.999)  # CUT's
    adversarial: Literal["hinge", "nonsat"] = "hinge"
    nce: float = Field(1.0, ge=0.0)  # PatchNCE weight (content kept without a cycle); 0 = off
    nce_patches: int = Field(128, ge=2)  # locations per layer
    nce_identity: bool = True  # CUT's NCE identity term on target images
    # semantic consistency (CyCADA): the frozen real-data segmenter must predict the source labels on the
    # translation; weight of its cross-entropy. Needs `segmenter`; 0 = off (the ablation)
    consistency: float = Field(1.0, ge=0.0)
    # its form: "ce" (the cross-entropy on the translation less that on the source) or "margin" (only keep the
    # segmenter's argmax where it was right on the source, by its logit margin there up to `consistency_margin`;
    # lets the translation lower the segmenter's confidence, e.g. in a darker condition than it has seen)
    consistency_kind: Literal["ce", "margin"] = "ce"
    consistency_margin: float = Field(1.0, gt=0.0)
    # paired data only (`paired: true`): weight of the L1 distance to the scene's real image in the target
    # condition (pix2pix: 100)
    l1: float = Field(100.0, ge=0.0)
    flip: bool = True
    augment: GenAugmentConfig = Field(default_factory=GenAugmentConfig)  # DiffAugment/ADA on D's inputs
    ema_decay: float = Field(0.999, ge=0.0, le=1.0)
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    device: str = "auto"
    seed: int = 0
    log_every: int = Field(25, ge=1)
    sample_every: int = Field(500, ge=1)
    sample_rows: int = Field(4, ge=1)
    checkpoint_every: int = Field(250, ge=1)


class TranslatorConfig(Strict):
    """`synthlabel train-translator`: labeled source images (`data`, train split; `source_condition` keeps only the
    images of that condition in meta.csv) + unlabeled target-condition images (`target`: a folder of images, or a
    folder with one subfolder per condition) -> a translator into `conditions`. Target labels are never read.
    `segmenter`: a real-data segmenter model directory, for the semantic-consistency loss.

    `paired`: the training set holds the same scenes under several conditions (meta.csv rows with the same
    `sequence` and `frame`, e.g. `make-demo --paired`); the translator then learns each source image -> the real
    image of its scene in the target condition (pix2pix-style: adversarial + `train.l1`), `target` is not read."""

    data: DataConfig = Field(default_factory=DataConfig)
    target: str = "target"
    paired: bool = False
    conditions: tuple[str, ...] = Field(("dusk",), min_length=1)
    source_condition: str | None = None
    segmenter: str | None = None
    model: TranslatorModelConfig = Field(default_factory=TranslatorModelConfig)
    train: TranslatorTrainConfig = Field(default_factory=TranslatorTrainConfig)


class LatentModelConfig(Strict):
    """The unconditional latent GAN (`stylegan` generator and discriminator) of `train-latent-gan`."""

    z_dim: int = Field(128, ge=1)
    w_dim: int = Field(128, ge=1)
    width: int = Field(32, ge=4)  # channels at the output resolution; doubled per level below, up to max_channels
    max_channels: int = Field(256, ge=8)
    mapping_layers: int = Field(4, ge=1)
    d_width: int = Field(32, ge=4)


class LatentTrainConfig(Strict):
    steps: int = Field(5000, ge=1)
    batch_size: int = Field(8, ge=2)
    lr_g: float = Field(2e-3, gt=0)  # StyleGAN2-ADA's small-data rates
    lr_d: float = Field(2e-3, gt=0)
    betas: tuple[float, float] = (0.0, 0.99)
    r1_gamma: float = Field(0.1, ge=0.0)  # small images: StyleGAN2-ADA uses ~0.01-1 below 128 px
    r1_interval: int = Field(16, ge=1)
    flip: bool = True
    augment: GenAugmentConfig = Field(default_factory=GenAugmentConfig)  # DiffAugment + ADA: few images
    ema_decay: float = Field(0.999, ge=0.0, le=1.0)
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    device: str = "auto"
    seed: int = 0
    log_every: int = Field(25, ge=1)
    sample_every: int = Field(500, ge=1)
    checkpoint_every: int = Field(250, ge=1)


class LatentGANConfig(Strict):
    """`synthlabel train-latent-gan`: an unconditional latent GAN on *unlabeled* images (`data`'s train split,
    images only: masks, if any, are never read; or `images`: a folder of images), at `data.size`."""

    data: DataConfig = Field(default_factory=DataConfig)
    images: str | None = None  # a folder of unlabeled images instead of data's train split
    model: LatentModelConfig = Field(default_factory=LatentModelConfig)
    train: LatentTrainConfig = Field(default_factory=LatentTrainConfig)


class EncoderConfig(Strict):
    """The inversion encoder: latent regression on generated pairs, then reconstruction of real images."""

    width: int = Field(32, ge=4)
    levels: int = Field(5, ge=2)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(1e-3, gt=0)
    latent_steps: int = Field(2000, ge=0)
    recon_steps: int = Field(1000, ge=0)  # capped: the encoder must not overfit a few images' pixels
    ssim_weight: float = Field(1.0, ge=0.0)
    refine_steps: int = Field(50, ge=0)  # per-image latent refinement of the labeled images (0 = off)


class HeadConfig(Strict):
    """The pixel label head: an ensemble of small MLPs on hypercolumns of sampled labeled pixels."""

    members: int = Field(5, ge=1)
    hidden: int = Field(128, ge=4)
    steps: int = Field(1500, ge=1)
    images_per_batch: int = Field(2, ge=1)
    pixels_per_image: int = Field(2048, ge=1)
    lr: float = Field(1e-3, gt=0)


class LatentLabelsConfig(Strict):
    """`synthlabel train-latent-labels`: the latent GAN `gan` (from train-latent-gan), the encoder (trained on
    every train image of `data`, as images) and the label head (on the labeled ones: `data.subset`, fewer than
    50); the head is also scored on the inverted test images."""

    data: DataConfig = Field(default_factory=DataConfig)
    gan: str = "runs/latent_gan/model"
    encoder: EncoderConfig = Field(default_factory=EncoderConfig)
    head: HeadConfig = Field(default_factory=HeadConfig)
    seed: int = 0


class MineConfig(Strict):
    """`synthlabel mine`: a recorded drive (`source`: a folder of frames or a video) scored by the user's
    segmenters; the frames in the `before`/`after` window of each event in `events` (or all with `whole_drive`, or
    when there are no events) ranked by `score`, near-duplicates dropped (`duplicates`: standardized feature
    distance below which a frame repeats one already queued; 0 = off), spread by score-weighted k-center on the
    segmenter's features (`diversity`), `k` of them queued."""

    source: str
    segmenters: tuple[str, ...] = Field(min_length=1)
    events: str | None = None
    score: Literal["entropy", "mc_dropout", "ensemble", "flicker", "class_targeted", "class_uncertainty"] = "entropy"
    classes: tuple[str, ...] = ()  # for class_targeted / class_uncertainty, e.g. (Pedestrian, Bicyclist)
    before: float = Field(5.0, ge=0.0)  # window before each event, in the drive's time unit (s with a rate)
    after: float = Field(0.0, ge=0.0)
    whole_drive: bool = False
    k: int = Field(25, ge=1)
    duplicates: float = Field(0.2, ge=0.0)
    diversity: bool = True
    mc_passes: int = Field(8, ge=2)
    rate: float | None = Field(None, gt=0.0)  # video: frames kept per second (default: every frame)
    every: int = Field(1, ge=1)  # folder: keep every n-th frame
    fps: float | None = Field(None, gt=0.0)  # folder: frame rate, so that times (and events) are seconds
    # the image URL of each Label Studio task; {path} is the frame's path under the mine output, {name} its name
    image_url: str = "/data/local-files/?d={path}"
    seed: int = 0


class ArmConfig(Strict):
    """One arm of an experiment, as changes to the experiment's base training config.

    kind picks a named baseline: `real` (no augmentation), `real_aug` (classic augmentation), `copy_paste` (classic
    augmentation + copy-paste of rare-class segments), `synthetic` (classic augmentation + the extra `sources`,
    mixed by `mix`; the experiment's `amounts` set how many synthetic images per real image). Arms that share a
    `group` are variants of one recipe (e.g. mixing modes); the report picks the variant and amount with the best
    validation mIoU per group, and shows its test figures."""

    name: str
    kind: Literal["real", "real_aug", "copy_paste", "synthetic"] = "real_aug"
    group: str | None = None  # default: the arm's name
    sources: tuple[SourceConfig, ...] = ()
    mix: MixConfig = Field(default_factory=MixConfig)  # mode / fraction / class_aware (its sources are ignored)
    amounts: tuple[float, ...] | None = Field(None, min_length=1)  # None = the experiment's amounts
    overrides: tuple[str, ...] = ()  # dotted overrides of the arm's SegConfig, e.g. "train.lr=1e-3"


class HoldoutConfig(Strict):
    """The validation part `synthlabel run` and `synthlabel experiment` carve from train when the data has no
    validation split: a seeded permutation picks max(min_images, round(fraction x N)) of the N train images; they
    leave the training set (a low-shot `data.subset` is then drawn from the rest). Listed in <out>/holdout/ and
    named in the resolved config as split files (`data.val_split: train@<out>/holdout/val.txt`)."""

    fraction: float = Field(0.2, gt=0.0, lt=1.0)
    min_images: int = Field(2, ge=1)
    seed: int = 0


class BudgetConfig(Strict):
    """The fair budget (docs/experiments.md): with `curve`, the baseline arm's first seed trains at each of these
    step counts, scored on validation, and every arm of the experiment then trains the fewest steps where the
    baseline has stopped improving (within `tolerance` of its best val mIoU; `synthlabel.budget.choose_steps`).
    Empty: every arm trains `train.steps`."""

    curve: tuple[int, ...] = ()
    tolerance: float = Field(0.005, ge=0.0)


class ExperimentConfig(Strict):
    """`synthlabel experiment`: arms x synthetic amounts x seeds on one real dataset; cached and resumable."""

    out: str = "runs/experiment"
    data: DataConfig = Field(default_factory=DataConfig)
    model: SegModelConfig = Field(default_factory=SegModelConfig)
    train: SegTrainConfig = Field(default_factory=SegTrainConfig)
    arms: tuple[ArmConfig, ...] = Field(min_length=1)
    baseline: str | None = None  # arm name the deltas are measured against (default: the first arm)
    seeds: tuple[int, ...] = Field((0, 1, 2), min_length=1)
    amounts: tuple[float, ...] = Field((1.0,), min_length=1)  # synthetic images per real training image
    # Cheaper selection: groups with several variants (arms x amounts) run these seeds first; only the variant with
    # the best validation mIoU then runs every seed. None = every variant runs every seed.
    select_seeds: tuple[int, ...] | None = Field(None, min_length=1)
    eval_split: str = "test"
    synthetic_test: SourceConfig | None = None  # held-out synthetic set: the cross-domain table's second column
    rare: tuple[str, ...] | None = None  # classes averaged as "rare" (None = below-median pixel share of train)
    holdout: HoldoutConfig = Field(default_factory=HoldoutConfig)  # validation carved from train when data has none
    budget: BudgetConfig = Field(default_factory=BudgetConfig)


class RecomposeStageConfig(Strict):
    """Recomposed label maps for `synthlabel run`: extra pixel share `boost` for the classes the real-data segmenter
    misses, split in proportion to 1 - IoU (`from: iou`), or fixed minimum shares per class (`min_fraction`)."""

    boost: float = Field(0.1, gt=0.0, lt=1.0)
    min_fraction: dict[str, float] = Field(default_factory=dict)  # set: these targets instead of the IoU-driven ones
    maps_per_real: float = Field(1.0, gt=0.0)  # recomposed maps per real training map
    mix_prob: float = Field(0.0, ge=0.0, le=1.0)
    min_area: int = Field(8, ge=1)  # smallest segment kept in the class bank
    seed: int = 0


class SynthStageConfig(Strict):
    """Synthesis + filtering for `synthlabel run`."""

    conditions: tuple[str, ...] = ("own",)  # "own" = each map under its real image's condition
    k: int = Field(1, ge=1)  # renders per map and condition
    seed: int = 0
    keep_fraction: float = Field(0.8, gt=0.0, le=1.0)  # the filter keeps the best renders by per-sample fidelity
    # hard-map resampling: this many extra renders per real map, shared out by map hardness (synth.hardness)
    hard_maps: float = Field(0.0, ge=0.0)
    # pixel-level trust (synth.trust): ignore synthetic pixels whose real-segmenter loss is above this x the class
    # mean; None = every pixel of a kept render is trusted
    trust_tolerance: float | None = Field(None, gt=0.0)
    recompose: RecomposeStageConfig = Field(default_factory=RecomposeStageConfig)


class TranslateStageConfig(Strict):
    """Condition translation in `synthlabel run`: the labeled training images rendered in the conditions the data
    lacks, then an experiment arm `translated`. `target`: a folder of unlabeled images of the target condition (or
    one subfolder per condition); their labels are never read. method "model" trains a translator
    (`train-translator`, semantic consistency from the chain's real-data segmenter); "photometric" needs no
    training and no target images."""

    target: str | None = None
    conditions: tuple[str, ...] = Field(("night",), min_length=1)
    method: Literal["model", "photometric"] = "model"
    source_condition: str | None = None  # translate only the training images of this condition (meta.csv)
    k: int = Field(1, ge=1)  # translations per image and condition
    seed: int = 0
    model: TranslatorModelConfig = Field(default_factory=TranslatorModelConfig)
    train: TranslatorTrainConfig = Field(default_factory=TranslatorTrainConfig)


class LatentStageConfig(Strict):
    """Labels from a latent GAN in `synthlabel run`: the GAN on every train image (images only), the encoder and
    the label head on the chain's labeled images (`data.subset`), `samples` labeled pairs, then the experiment's
    `latent` arm."""

    model: LatentModelConfig = Field(default_factory=LatentModelConfig)
    train: LatentTrainConfig = Field(default_factory=LatentTrainConfig)
    encoder: EncoderConfig = Field(default_factory=EncoderConfig)
    head: HeadConfig = Field(default_factory=HeadConfig)
    samples: int = Field(500, ge=1)
    ignore_quantile: float = Field(0.9, gt=0.0, le=1.0)
    drop_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    seed: int = 0


StageArm = Literal["real", "copy_paste", "synthetic_original", "synthetic_recomposed", "translated", "latent"]


class ExperimentStageConfig(Strict):
    """The experiment that closes `synthlabel run`: these arms, amounts and seeds against the real_aug baseline."""

    arms: tuple[StageArm, ...] = ("copy_paste", "synthetic_original", "synthetic_recomposed")
    seeds: tuple[int, ...] = Field((0,), min_length=1)
    amounts: tuple[float, ...] = Field((1.0,), min_length=1)
    mix: MixConfig = Field(default_factory=MixConfig)
    filtered: bool = True  # synthetic arms use the filter's keep list
    budget: BudgetConfig = Field(default_factory=BudgetConfig)  # steps chosen on the baseline's val learning curve


class GenStageConfig(Strict):
    """The label -> image generator of `synthlabel run` (trained on the same real training images)."""

    model: GenModelConfig = Field(default_factory=GenModelConfig)
    train: GenTrainConfig = Field(default_factory=GenTrainConfig)
    conditions: tuple[str, ...] | None = None


class PipelineConfig(Strict):
    """`synthlabel run`: the whole chain for one experiment. Stages whose outputs exist are skipped.

    Without `generator` it stops after the real-data segmenter and its analysis; with it, it goes on: generator ->
    class bank -> recomposed maps -> synthesis -> fidelity filter -> experiment (mix, train, evaluate) -> report.
    With `translate`: translator -> translated training set -> the experiment's `translated` arm (with or without
    a generator). With `latent`: latent GAN -> encoder + label head -> sampled pairs -> the `latent` arm.
    Experiment arms whose synthetic set the chain does not make are left out.
    Everything that steers (segmenter validation, recomposition targets, filter reference, arm selection) uses the
    validation split; without one (data.val_split missing or null), `holdout` carves it from train before any
    training. The test split (`eval_split`) is only reported. Without `data.size`, every stage works at the first
    training image's size, long side at most 256, sides rounded down to multiples of 16 (`pipeline.working_size`),
    written into the resolved config.yaml."""

    out: str = "runs/demo"
    demo: DemoConfig | None = None  # set: generate the demo data into <out>/data and train on it
    data: DataConfig = Field(default_factory=DataConfig)
    model: SegModelConfig = Field(default_factory=SegModelConfig)
    train: SegTrainConfig = Field(default_factory=SegTrainConfig)
    eval_split: str = "test"
    holdout: HoldoutConfig = Field(default_factory=HoldoutConfig)
    generator: GenStageConfig | None = None
    synth: SynthStageConfig = Field(default_factory=SynthStageConfig)
    translate: TranslateStageConfig | None = None  # set: translate the training images into other conditions
    latent: LatentStageConfig | None = None  # set: labeled pairs from a latent GAN on the train images
    experiment: ExperimentStageConfig = Field(default_factory=ExperimentStageConfig)

    def seg_config(self) -> SegConfig:
        return SegConfig(data=self.data, model=self.model, train=self.train)

    def gen_config(self) -> GenConfig:
        g = self.generator or GenStageConfig()
        return GenConfig(data=self.data, model=g.model, train=g.train, conditions=g.conditions)
