"""Generator metrics without pretrained networks: label fidelity (a segmenter trained on the real data segments
the generated images, as in the "segmentation score" of SPADE/OASIS), diversity of the renders of one map,
memorization (nearest training image), and condition fidelity (a small classifier trained on the real images)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from synthlabel import checkpoint as ckpt
from synthlabel.config import Strict
from synthlabel.data.classes import ClassSpec
from synthlabel.data.datasets import SegDataset
from synthlabel.data.sample import TensorSet, to_float
from synthlabel.device import Precision, resolve_precision
from synthlabel.errors import DataError
from synthlabel.eval.segmentation import confusion_matrix, evaluate, metrics_from_confusion, predict
from synthlabel.runs import log
from synthlabel.train.supervised import Batch, Classification, SupervisedConfig, SupervisedTrainer

PER_SAMPLE_METRIC = "miou_present_classes"
FP32_CPU = Precision(torch.device("cpu"), False)
FEATURE_SIDE = 32  # diversity and memorization compare images area-downsampled to at most this many pixels a side


def _as_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (as stored) or float in [-1, 1] -> float in [-1, 1]."""
    images = torch.as_tensor(images)
    return to_float(images) if images.dtype == torch.uint8 else images.float()


def per_image_miou(pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int) -> list[float]:
    """[N] mIoU of each prediction [N, H, W] over the classes present in its target [N, H, W] (nan if none)."""
    n, k = pred.shape[0], num_classes
    valid = (target != ignore_index) & (target >= 0) & (target < k)
    image = torch.arange(n)[:, None, None].expand_as(target)
    idx = (image * k + target.clamp(0, k - 1)) * k + pred.clamp(0, k - 1)
    cm = torch.bincount(idx[valid], minlength=n * k * k).reshape(n, k, k).double()  # [N, K(gt), K(pred)]
    tp, gt, predicted = cm.diagonal(dim1=1, dim2=2), cm.sum(2), cm.sum(1)
    iou = tp / (gt + predicted - tp).clamp(min=1)
    present = gt > 0
    scores = (iou * present).sum(1) / present.sum(1)
    return [float(s) for s in scores]  # 0/0 = nan for a map without labeled pixels


def label_fidelity_report(
    segmenter: nn.Module,
    synth: TensorSet,
    real: TensorSet,
    spec: ClassSpec,
    precision: Precision | None = None,
    batch_size: int = 16,
) -> dict:
    """Label fidelity of a synthetic dataset: the real-data segmenter's mIoU on the synthetic images (against the
    maps they were rendered from) next to its mIoU on real test images; `fidelity` is their ratio (1 = the
    generated images are as recognizable as real ones), per class too. Also mIoU per condition and the per-sample
    scores (`per_sample`: file -> score or None for a map without labeled pixels, for `synth.filters.filter_samples`).
    Both sets at the segmenter's working size."""
    precision = precision or resolve_precision("auto", "auto")
    preds = predict(segmenter, synth.images, precision, batch_size, desc="segment")
    synthetic = _metrics(preds, synth.labels, spec)
    real_metrics = evaluate(segmenter, real, spec, precision, batch_size, desc="eval real")
    scores = per_image_miou(preds, synth.labels, spec.num_classes, spec.ignore_id)
    return {
        "synthetic_miou": synthetic["miou"],
        "real_miou": real_metrics["miou"],
        "fidelity": _safe_ratio(synthetic["miou"], real_metrics["miou"]),
        "per_class_fidelity": {
            n: _safe_ratio(synthetic["per_class_iou"][n], real_metrics["per_class_iou"][n]) for n in spec.names
        },
        "per_condition_miou": _per_condition(preds, synth, spec),
        "per_sample_metric": PER_SAMPLE_METRIC,
        "per_sample": {m["file"]: s if math.isfinite(s) else None for m, s in zip(synth.meta, scores, strict=True)},
        "synthetic": synthetic,
        "real": real_metrics,
    }


def _metrics(preds: torch.Tensor, labels: torch.Tensor, spec: ClassSpec) -> dict:
    cm = confusion_matrix(preds, labels, spec.num_classes, spec.ignore_id)
    return metrics_from_confusion(cm, spec.names)


def _per_condition(preds: torch.Tensor, data: TensorSet, spec: ClassSpec) -> dict[str, float | None]:
    groups: dict[str, list[int]] = {}
    for i, m in enumerate(data.meta):
        groups.setdefault(m.get("condition") or "unknown", []).append(i)
    return {c: _metrics(preds[idx], data.labels[idx], spec)["miou"] for c, idx in sorted(groups.items())}


def _safe_ratio(num: float | None, den: float | None) -> float | None:
    return None if num is None or not den else float(num) / float(den)


def _feature_size(shape: Sequence[int], side: int) -> tuple[int, int]:
    h, w = shape[-2:]
    scale = min(1.0, side / max(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))


def _features(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[N, D] images area-downsampled to `size`."""
    return F.adaptive_avg_pool2d(_as_float(images), size).flatten(1)


def diversity(images_k: torch.Tensor, side: int = FEATURE_SIDE) -> float:
    """Mean L1 distance (in [-1, 1] pixel units, 0..2) between the K renders of each map, over all pairs and maps.

    images_k: [M, K, 3, H, W], K >= 2 renders of each of M label maps. Images are area-downsampled to at most
    `side` px a side first, so the figure reflects changes of colour and texture layout, not pixel noise.
    0 means the generator ignores its noise (mode collapse per map)."""
    if images_k.dim() != 5 or images_k.shape[1] < 2:
        raise ValueError(f"diversity needs [M, K >= 2, 3, H, W] renders, got {list(images_k.shape)}")
    m, k = images_k.shape[:2]
    feats = _features(images_k.flatten(0, 1), _feature_size(images_k.shape, side)).reshape(m, k, -1)  # [M, K, D]
    dist = torch.cdist(feats.double(), feats.double(), p=1) / feats.shape[-1]  # [M, K, K]
    pairs = torch.triu_indices(k, k, offset=1)
    return float(dist[:, pairs[0], pairs[1]].mean())


def memorization(
    generated: torch.Tensor,
    train_images: torch.Tensor,
    threshold: float | None = None,
    relative: float = 0.5,
    percentile: float = 5.0,
    side: int = FEATURE_SIDE,
) -> dict:
    """Nearest training image of each generated image, and which ones are near-copies.

    Images are area-downsampled (at most `side` px a side, train size decides) and standardized per image (zero
    mean, unit std: a copy with shifted brightness or contrast still counts); distance is the RMS difference.
    The near-copy threshold, unless given, is `relative` x the `percentile`-th percentile of the distances of
    each training image to its nearest *other* training image: closer to a training image than half of what
    separates the closest 5% of distinct real pairs means copied, not rendered. Renders of the training label
    maps share their layout with a training image, hence the margin below the real pairs."""
    size = _feature_size(train_images.shape, side)
    train, gen = _standardize(_features(train_images, size)), _standardize(_features(generated, size))
    nn_dist, nn_index = _nearest(gen, train)
    train_p = None
    if len(train) >= 2:
        self_dist, _ = _nearest(train, train, exclude_self=True)
        train_p = float(np.percentile(self_dist.numpy(), percentile))
    if threshold is None:
        if train_p is None:
            raise ValueError("memorization needs two or more training images, or an explicit threshold")
        threshold = relative * train_p
    near = nn_dist < threshold
    return {
        "nn_distance": nn_dist.tolist(),
        "nn_index": nn_index.tolist(),
        "near_copy": near.tolist(),
        "near_copy_rate": float(near.double().mean()) if len(near) else 0.0,
        "threshold": float(threshold),
        "train_nn_percentile": train_p,
        "median_nn_distance": float(nn_dist.median()) if len(nn_dist) else None,
    }


def _standardize(feats: torch.Tensor) -> torch.Tensor:
    feats = feats.double()
    return (feats - feats.mean(1, keepdim=True)) / feats.std(1, keepdim=True).clamp(min=1e-6)


def _nearest(query: torch.Tensor, bank: torch.Tensor, exclude_self: bool = False, chunk: int = 256):
    """(distance [N], index [N]) of each query row's nearest bank row; RMS distance."""
    dists, idxs = [], []
    for i in range(0, len(query), chunk):
        d = torch.cdist(query[i : i + chunk], bank, compute_mode="donot_use_mm_for_euclid_dist")
        if exclude_self:
            rows = torch.arange(i, min(i + chunk, len(query)))
            d[rows - i, rows] = math.inf
        best = d.min(1)
        dists.append(best.values / math.sqrt(bank.shape[1]))
        idxs.append(best.indices)
    return torch.cat(dists) if dists else torch.zeros(0), torch.cat(idxs) if idxs else torch.zeros(0, dtype=torch.long)


class ConditionClassifierConfig(Strict):
    """Training of the condition classifier (a few hundred steps on CPU at 48x64)."""

    width: int = Field(16, ge=4)
    size: tuple[int, int] = (48, 64)
    steps: int = Field(300, ge=1)
    batch_size: int = Field(32, ge=2)
    lr: float = Field(2e-3, gt=0)
    seed: int = 0


class ConditionClassifier(nn.Module):
    """Small CNN: image [B, 3, H, W] in [-1, 1] -> condition logits [B, C]; inputs are resized to `size`.

    No normalization layers: instance or layer norm would erase the global brightness and colour that tell day
    from dusk, and batch statistics of tiny batches are noise."""

    def __init__(self, conditions: Sequence[str], width: int = 16, size: tuple[int, int] = (48, 64)):
        super().__init__()
        if len(conditions) < 2:
            raise DataError(f"a condition classifier needs two or more conditions, got {list(conditions)}")
        self.conditions, self.width, self.size = list(conditions), width, (int(size[0]), int(size[1]))
        chans = [3, width, 2 * width, 4 * width, 4 * width]
        layers: list[nn.Module] = []
        for c_in, c_out in zip(chans[:-1], chans[1:], strict=True):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(2 * chans[-1], len(conditions))

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # [B, 3, H, W] -> [B, C]
        if tuple(images.shape[-2:]) != self.size:
            images = F.interpolate(images, size=self.size, mode="bilinear", align_corners=False, antialias=True)
        x = self.features(images)
        return self.head(torch.cat([x.mean((2, 3)), x.amax((2, 3))], dim=1))

    @torch.no_grad()
    def predict(self, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """Condition ids [N] (index into `self.conditions`) for images [N, 3, H, W] (uint8 or float)."""
        was_training = self.training
        self.eval()
        out = [self(_as_float(images[i : i + batch_size])).argmax(1) for i in range(0, len(images), batch_size)]
        self.train(was_training)
        return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)

    def save(self, directory: str | Path) -> Path:
        config = {"conditions": self.conditions, "width": self.width, "size": list(self.size)}
        return ckpt.save_model(directory, "condition_classifier", config, {"model": self})

    @classmethod
    def load(cls, directory: str | Path) -> ConditionClassifier:
        config = ckpt.read_model_config(directory)["config"]
        model = ckpt.construct(
            directory, "condition classifier", lambda: cls(config["conditions"], config["width"], tuple(config["size"]))
        )
        return ckpt.load_weights(directory, "model", model).eval()


class BalancedBatches:
    """Class-balanced batches: each sample draws its condition uniformly, then an image of it."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, num_classes: int, batch_size: int):
        self.images, self.labels, self.batch_size = images, labels, batch_size
        self.members = [torch.nonzero(labels == c).flatten() for c in range(num_classes)]

    def __call__(self, step: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        classes = torch.randint(len(self.members), (self.batch_size,), generator=generator)
        idx = torch.stack(
            [self.members[c][torch.randint(len(self.members[c]), (1,), generator=generator)][0] for c in classes]
        )
        return self.images[idx], self.labels[idx]


def random_flip(images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> Batch:
    """Horizontal flip of half the images (of a classification batch: the labels stay)."""
    flip = torch.rand(len(images), generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(-1), images), labels


def train_condition_classifier_on(
    dataset: SegDataset, cfg: ConditionClassifierConfig | None = None
) -> ConditionClassifier:
    """Train on the images of a real split that have a condition in their metadata; class-balanced batches,
    horizontal flips only: colour jitter would fake other conditions. AdamW at a constant rate, fp32 on CPU."""
    cfg = cfg or ConditionClassifierConfig()
    keep = [i for i, r in enumerate(dataset.records) if r.meta.get("condition")]
    if not keep:
        raise DataError(f"{dataset.root}: split '{dataset.split}' has no conditions; add them to meta.csv")
    data = dataset.subset(keep).load(tuple(cfg.size), desc="load condition data")
    return fit_condition_classifier(data.images, [m["condition"] for m in data.meta], cfg)


def fit_condition_classifier(
    images: torch.Tensor, conditions: Sequence[str], cfg: ConditionClassifierConfig | None = None
) -> ConditionClassifier:
    """The condition classifier from images [N, 3, H, W] (uint8 or float) and their condition names: no labels
    needed, so unlabeled target-condition images serve (`train_condition_classifier_on` for a labeled split)."""
    cfg = cfg or ConditionClassifierConfig()
    if len(images) != len(conditions):
        raise ValueError(f"{len(images)} images but {len(conditions)} condition names")
    names = sorted(set(conditions))
    torch.manual_seed(cfg.seed)
    model = ConditionClassifier(names, cfg.width, cfg.size)
    x = F.interpolate(_as_float(images), size=model.size, mode="bilinear", align_corners=False, antialias=True)
    y = torch.tensor([names.index(c) for c in conditions])
    loop = SupervisedConfig(
        cfg.steps, cfg.batch_size, cfg.lr, 1e-4, seed=cfg.seed, channels_last=False, desc="train condition classifier"
    )
    batches = BalancedBatches(x, y, len(names), cfg.batch_size)
    trainer = SupervisedTrainer(model, Classification(), batches, loop, FP32_CPU, augment=[random_flip])
    trainer.fit()
    log.info("condition classifier: %s, final batch loss %.3f", names, trainer.last_loss)
    return model.eval()


def condition_fidelity(classifier: ConditionClassifier, images: torch.Tensor, target_condition: str) -> float:
    """Share of images [N, 3, H, W] the classifier assigns to `target_condition`."""
    if target_condition not in classifier.conditions:
        raise DataError(
            f"the condition classifier knows {classifier.conditions}, not {target_condition!r}; "
            "train it on real images of that condition"
        )
    if len(images) == 0:
        raise ValueError("condition_fidelity needs at least one image")
    pred = classifier.predict(images)
    return float((pred == classifier.conditions.index(target_condition)).double().mean())
