"""Probe (issue 15): do other per-frame aggregations of the N=25 model's uncertainty rank frames by true error
better than the whole-frame mean? Variants: the mean over pixels (what `synthlabel mine` uses), the mean of the
top 5 % / 10 % most uncertain pixels, the 90th percentile, the mean over the predicted classes of each class's mean
(weighting classes equally, as mIoU does), and 1 - a soft-IoU estimate of the frame's mIoU from the probabilities.
Spearman against 1 - per-frame mIoU, on val (where a variant would be chosen) and per test condition. Needs the
N=25 model of `camvid_active.py` in its cache.

    python benchmarks/camvid_active_variants.py --seed 0
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from camvid_active import rank_correlation
from camvid_lowshot import SIZE
from common import REPO, SHARED_CAMVID

from synthlabel.checkpoint import atomic_write_text
from synthlabel.data.datasets import open_dataset
from synthlabel.data.sample import to_float
from synthlabel.device import resolve_precision
from synthlabel.downstream.segmenter import load_segmenter
from synthlabel.eval.generator_metrics import per_image_miou
from synthlabel.mining.scores import _dropout_on, entropy


@torch.no_grad()
def probabilities(model, images: torch.Tensor, passes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(softmax [N, K, H, W], per-pixel BALD mutual information [N, H, W] over `passes` dropout passes)."""
    precision = resolve_precision("auto", "auto")
    torch.manual_seed(seed)
    probs, mi = [], []
    for i in range(0, len(images), 16):
        x = to_float(images[i : i + 16])
        with precision.autocast():
            probs.append(F.softmax(model.eval()(x).float(), 1))
            layers = _dropout_on(model)
            runs = torch.stack([F.softmax(model(x).float(), 1) for _ in range(passes)])
        for m in layers:
            m.eval()
        mi.append((entropy(runs.mean(0)) - entropy(runs).mean(0)).clamp(min=0))
    return torch.cat(probs), torch.cat(mi)


def class_average(pixel: torch.Tensor, pred: torch.Tensor, k: int) -> np.ndarray:
    """Per frame, the mean over its predicted classes of the pixel score's mean on each class."""
    return np.array([np.mean([float(m[p == c].mean()) for c in range(k) if (p == c).any()])
                     for m, p in zip(pixel, pred, strict=True)])  # fmt: skip


def top_share(pixel: torch.Tensor, share: float) -> np.ndarray:
    flat = pixel.flatten(1)
    return flat.topk(max(1, int(share * flat.shape[1])), 1).values.mean(1).numpy()


def soft_iou_error(probs: torch.Tensor, pred: torch.Tensor) -> np.ndarray:
    """1 - the frame's expected mIoU over the classes predicted or given >= 1 % of the probability mass."""
    hard = F.one_hot(pred, probs.shape[1]).permute(0, 3, 1, 2).float()
    inter, soft, area = (probs * hard).flatten(2).sum(2), probs.flatten(2).sum(2), hard.flatten(2).sum(2)
    union = soft + area - inter
    present = (area > 0) | (soft > 0.01 * probs[0, 0].numel())
    iou = torch.where(present, inter / union.clamp(min=1e-6), torch.nan)
    return (1 - iou.nanmean(1)).numpy()


def variants(probs: torch.Tensor, mi: torch.Tensor) -> dict[str, np.ndarray]:
    conf, pred = probs.max(1)
    ent, k = entropy(probs), probs.shape[1]
    return {
        "entropy_mean": ent.flatten(1).mean(1).numpy(),
        "entropy_top5pct": top_share(ent, 0.05),
        "entropy_top10pct": top_share(ent, 0.10),
        "entropy_q90": ent.flatten(1).quantile(0.9, dim=1).numpy(),
        "entropy_class_mean": class_average(ent, pred, k),
        "mc_dropout_mean": mi.flatten(1).mean(1).numpy(),
        "mc_dropout_top10pct": top_share(mi, 0.10),
        "mc_dropout_class_mean": class_average(mi, pred, k),
        "low_confidence_class_mean": class_average(1 - conf, pred, k),
        "soft_iou_error": soft_iou_error(probs, pred),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=SHARED_CAMVID)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", type=Path, default=REPO / "benchmarks" / "cache" / "camvid_active")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "camvid_active")
    args = p.parse_args(argv)
    model, _ = load_segmenter(args.cache / f"n25_s{args.seed}" / "model")
    table = {}
    for split in ("val", "test"):
        data = open_dataset(args.data, split)
        loaded, spec = data.load(SIZE, desc=f"load {split}"), data.out_spec
        probs, mi = probabilities(model, loaded.images, 8, args.seed)
        per_frame = per_image_miou(probs.argmax(1), loaded.labels, spec.num_classes, spec.ignore_id)
        error = 1 - np.nan_to_num(np.array(per_frame), nan=1.0)
        conditions = np.array([m.get("condition") or "all" for m in loaded.meta])
        groups = {"all": np.ones(len(error), bool)} | {c: conditions == c for c in sorted(set(conditions))}
        scores = variants(probs, mi)
        table[split] = {g: {name: rank_correlation(s[sel], error[sel]) for name, s in scores.items()}
                        for g, sel in groups.items()}  # fmt: skip
    atomic_write_text(args.out / f"score_variants_s{args.seed}.json", json.dumps(table, indent=1))
    print(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
