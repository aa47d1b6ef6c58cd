"""Pixel-level trust for synthetic labels (after FreeMask, Yang et al., NeurIPS 2023, github.com/LiheYoung/FreeMask).

A render can be right as a whole and wrong in places: a pedestrian drawn as a smear still carries the label
"Pedestrian", and a segmenter trained on it learns a wrong appearance. The real-data segmenter's per-pixel loss on
the render against the map it was rendered from finds those places. Per class, pixels whose loss is above
`tolerance` x that class's mean loss on **real** reference images are not trusted: a render pixel must look at
least about as much like its class as a real one does (a class-wise threshold, so classes that are hard even on
real images keep their typical pixels). FreeMask takes the class means on the real training images under a large
pretrained model; synthlabel's segmenter is trained from scratch on a few images and nearly memorizes them, so
the reference is real images it has not trained on: the validation split. Without a reference the class means
come from the synthetic set itself (each class then drops only its own worst pixels). With several segmenters the
loss is their mean, and with `disagreement` a pixel is also untrusted where their predictions differ.

Streamed passes (class means, then maps), so memory does not grow with the set."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from synthlabel.cache import fingerprint
from synthlabel.checkpoint import atomic_write_text, model_hash
from synthlabel.data.datasets import SegDataset, open_dataset
from synthlabel.data.sample import to_float
from synthlabel.data.trust import TRUSTED, trust_folder, trust_path
from synthlabel.device import resolve_precision
from synthlabel.downstream.mixing import read_keep_file
from synthlabel.downstream.segmenter import load_segmenter
from synthlabel.errors import DataError
from synthlabel.runs import log, progress
from synthlabel.synth.synthesize import write_png

TOLERANCE = 1.25  # FreeMask's margin over the class-wise mean loss
SUMMARY = "trust.json"


@torch.no_grad()
def pixel_losses(
    models: Sequence[torch.nn.Module], images: torch.Tensor, labels: torch.Tensor, ignore_id: int, precision
) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean cross-entropy over the models [B, H, W] (0 at ignored pixels), [B, H, W] bool where the models'
    predictions differ) for uint8 images [B, 3, H, W] and labels [B, H, W]."""
    x = to_float(images).to(precision.device).contiguous(memory_format=torch.channels_last)
    target = labels.to(precision.device)
    losses, preds = [], []
    for model in models:
        with precision.autocast():
            logits = model(x)
        logits = logits.float()
        losses.append(F.cross_entropy(logits, target, ignore_index=ignore_id, reduction="none"))
        preds.append(logits.argmax(1))
    disagree = torch.zeros_like(target, dtype=torch.bool)
    for p in preds[1:]:
        disagree |= p != preds[0]
    return torch.stack(losses).mean(0).cpu(), disagree.cpu()


def trust_from_losses(
    loss: torch.Tensor,
    labels: torch.Tensor,
    class_mean: torch.Tensor,
    tolerance: float,
    ignore_id: int,
    disagree: torch.Tensor | None = None,
) -> torch.Tensor:
    """[B, H, W] bool: labeled pixels whose loss is at most tolerance x their class's mean loss (and, given
    `disagree`, where the segmenters agree). Ignored pixels are trusted: they teach nothing either way."""
    labeled = labels != ignore_id
    limit = tolerance * class_mean[labels.clamp(0, len(class_mean) - 1)]
    trusted = ~labeled | (loss <= limit)
    if disagree is not None:
        trusted &= ~labeled | ~disagree
    return trusted


def write_trust_maps(
    synth_dir: str | Path,
    segmenters: Sequence[str | Path],
    tolerance: float = TOLERANCE,
    disagreement: bool = False,
    split: str = "train",
    layout: str = "auto",
    keep: str | Path | None = None,
    batch_size: int = 16,
    reference: SegDataset | None = None,
) -> dict:
    """Write a trust map beside every sample of a synthetic set (`<synth_dir>/trust/<split>/`) from the real-data
    segmenter(s) and return the summary also written to `<synth_dir>/trust/trust.json` (tolerance, class-wise mean
    loss and where it came from, share of labeled pixels not trusted, overall and per class). `reference`: real
    images the segmenters did not train on (e.g. the validation split), read at the renders' size, for the class
    means; None = the synthetic set's own. A finished set with the same settings and segmenters is left as is."""
    if not segmenters:
        raise DataError("trust maps need at least one real-data segmenter model directory")
    if tolerance <= 0:
        raise DataError(f"tolerance must be > 0, got {tolerance}")
    synth_dir = Path(synth_dir)
    ds = open_dataset(synth_dir, split, layout)
    spec = ds.out_spec
    indices = list(range(len(ds)))
    if keep:
        kept = read_keep_file(keep)
        indices = [i for i in indices if ds.records[i].image.name in kept]
    key = fingerprint(
        {
            "segmenters": [model_hash(s) for s in segmenters],
            "tolerance": tolerance,
            "disagreement": disagreement,
            "files": [ds.records[i].image.name for i in indices],
            "reference": None if reference is None else [str(reference.root), reference.split, len(reference)],
        }  # fmt: skip
    )
    summary_path = synth_dir / "trust" / SUMMARY
    if summary_path.is_file() and json.loads(summary_path.read_text()).get("key") == key:
        log.info("trust maps of %s are up to date", synth_dir)
        return json.loads(summary_path.read_text())
    precision = resolve_precision("auto", "auto")
    models = [load_segmenter(s)[0].to(precision.device) for s in segmenters]
    k, ignore = spec.num_classes, spec.ignore_id

    size = tuple(ds.read(indices[0])[1].shape) if indices else None  # the renders' size

    def batches(dataset: SegDataset, rows: list[int], desc: str):
        for block in progress([rows[i : i + batch_size] for i in range(0, len(rows), batch_size)], desc=desc):
            pairs = [dataset.read(i, size) for i in block]
            images = torch.from_numpy(np.stack([p[0] for p in pairs])).permute(0, 3, 1, 2)
            labels = torch.from_numpy(np.stack([p[1] for p in pairs]))
            loss, disagree = pixel_losses(models, images, labels, ignore, precision)
            yield block, labels, loss, disagree

    def class_means(dataset: SegDataset, rows: list[int], desc: str) -> tuple[torch.Tensor, torch.Tensor]:
        total, count = torch.zeros(k, dtype=torch.float64), torch.zeros(k, dtype=torch.float64)
        for _, labels, loss, _ in batches(dataset, rows, desc):
            labeled = labels != ignore
            total += torch.bincount(labels[labeled], weights=loss[labeled].double(), minlength=k)
            count += torch.bincount(labels[labeled], minlength=k).double()
        return total / count.clamp(min=1), count

    if reference is not None and reference.out_spec.names != spec.names:
        raise DataError(f"{reference.root}: its classes differ from the synthetic set's {spec.names}")
    own, count = class_means(ds, indices, "trust: class losses (synthetic)")
    source = ["synthetic"] * k
    class_mean = own
    if reference is not None:
        real, real_count = class_means(reference, list(range(len(reference))), "trust: class losses (real)")
        class_mean = torch.where(real_count > 0, real, own)  # a class the reference lacks: its synthetic mean
        source = ["real" if real_count[c] > 0 else "synthetic" for c in range(k)]
    class_mean = class_mean.float()
    dropped = torch.zeros(k, dtype=torch.float64)
    trust_folder(synth_dir, split).mkdir(parents=True, exist_ok=True)
    for block, labels, loss, disagree in batches(ds, indices, "trust: maps"):
        trusted = trust_from_losses(loss, labels, class_mean, tolerance, ignore, disagree if disagreement else None)
        untrusted = (labels != ignore) & ~trusted
        dropped += torch.bincount(labels[untrusted], minlength=k).double()
        for i, t in zip(block, trusted, strict=True):
            path = trust_path(synth_dir, split, ds.records[i].image.name)
            write_png(path, t.numpy().astype(np.uint8) * TRUSTED)
    summary = {
        "key": key,
        "tolerance": tolerance,
        "disagreement": disagreement,
        "segmenters": [str(s) for s in segmenters],
        "samples": len(indices),
        "untrusted_share": float(dropped.sum() / count.sum().clamp(min=1)),
        "reference": None if reference is None else f"{reference.root} ({reference.split})",
        "per_class": {
            n: {
                "mean_loss": float(class_mean[c]),
                "mean_loss_from": source[c],
                "synthetic_mean_loss": float(own[c]),
                "untrusted_share": float(dropped[c] / max(float(count[c]), 1.0)),
            }
            for c, n in enumerate(spec.names)
        },  # fmt: skip
    }
    atomic_write_text(summary_path, json.dumps(summary, indent=1))
    log.info("trust maps: %.1f%% of labeled pixels not trusted (tolerance %.2f) in %s",
             100 * summary["untrusted_share"], tolerance, synth_dir)  # fmt: skip
    return summary
