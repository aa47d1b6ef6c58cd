"""Segmentation metrics from one dataset-level confusion matrix, and a model's metrics on a dataset. mIoU is over the
present classes only: unlike kornia's `mean_iou`, a class absent from both ground truth and prediction is left out."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from synthlabel.data.classes import ClassSpec
from synthlabel.data.sample import TensorSet, to_float
from synthlabel.device import Precision, resolve_precision
from synthlabel.eval.gain import stats
from synthlabel.runs import progress
from synthlabel.tables import fmt_mean_std, fmt_pct, markdown_table


def confusion_matrix(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int | None
) -> torch.Tensor:
    """Confusion matrix [K, K] int64 (rows = ground truth, cols = prediction) of integer maps of the same shape.

    Pixels whose target is `ignore_index` or outside [0, K) are skipped; a prediction outside [0, K) at a
    counted pixel is an error. The result lives on the inputs' device."""
    pred, target = torch.as_tensor(pred), torch.as_tensor(target)
    if pred.shape != target.shape:
        raise ValueError(f"pred shape {tuple(pred.shape)} does not match target shape {tuple(target.shape)}")
    if pred.is_floating_point() or target.is_floating_point():
        raise TypeError("pred and target must be integer class ids; take argmax over the class dim first")
    k = int(num_classes)
    pred, target = pred.reshape(-1).long(), target.reshape(-1).long()
    keep = (target >= 0) & (target < k)  # ignore_index (if any) and every other non-class id are skipped
    if ignore_index is not None:
        keep &= target != ignore_index
    pred, target = pred[keep], target[keep]
    if pred.numel() and (int(pred.min()) < 0 or int(pred.max()) >= k):
        raise ValueError(f"predicted class ids must lie in [0, {k}), got {int(pred.min())}..{int(pred.max())}")
    return torch.bincount(target * k + pred, minlength=k * k).reshape(k, k)


class ConfusionMatrix:
    """Accumulates one confusion matrix over a whole evaluation set, batch by batch (kept on CPU)."""

    def __init__(self, num_classes: int, ignore_index: int | None) -> None:
        self.num_classes, self.ignore_index = int(num_classes), ignore_index
        self.matrix = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch: integer predictions and targets of the same shape, e.g. [B, H, W]."""
        self.matrix += confusion_matrix(pred, target, self.num_classes, self.ignore_index).cpu()

    def compute(self, class_names: Sequence[str] | None = None) -> dict:
        """Metrics of everything accumulated so far, see `metrics_from_confusion`."""
        return metrics_from_confusion(self.matrix, class_names)


@torch.no_grad()
def predict(
    model: nn.Module, images: torch.Tensor, precision: Precision, batch_size: int = 16, desc: str | None = None
) -> torch.Tensor:
    """Class ids (argmax over dim 1) of uint8 images [N, C, H, W], batch by batch in eval mode, on CPU: label maps
    [N, H, W] of a segmenter, class ids [N] of a classifier."""
    was_training = model.training
    model.eval().to(precision.device)
    starts = range(0, len(images), batch_size)
    out = []
    for i in progress(starts, desc=desc) if desc else starts:
        x = to_float(images[i : i + batch_size]).to(precision.device).contiguous(memory_format=torch.channels_last)
        with precision.autocast():
            out.append(model(x).argmax(1).cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, *images.shape[-2:], dtype=torch.long)


def evaluate(
    model: nn.Module,
    data: TensorSet,
    spec: ClassSpec,
    precision: Precision | None = None,
    batch_size: int = 16,
    desc: str = "eval",
) -> dict:
    """One confusion matrix of the model's predictions over `data` -> `metrics_from_confusion` dict. When the images
    hold more than one condition (meta "condition", e.g. day / dusk), "per_condition" adds each condition's own
    metrics (mIoU, pixel accuracy, per-class IoU, images): a gain on one condition can hide a loss on another."""
    precision = precision or resolve_precision("auto", "auto")
    cm = ConfusionMatrix(spec.num_classes, spec.ignore_id)
    conditions = [(m.get("condition") or "unknown") for m in data.meta]
    per = {c: ConfusionMatrix(spec.num_classes, spec.ignore_id) for c in sorted(set(conditions))}
    for i in progress(range(0, len(data), batch_size), desc=desc):
        batch = slice(i, i + batch_size)
        preds, labels = predict(model, data.images[batch], precision, batch_size), data.labels[batch]
        cm.update(preds, labels)
        if len(per) > 1:
            for j, c in enumerate(conditions[batch]):
                per[c].update(preds[j : j + 1], labels[j : j + 1])
    metrics = cm.compute(spec.names)
    if len(per) > 1:
        metrics["per_condition"] = {
            c: {**{k: v for k, v in m.compute(spec.names).items() if k in CONDITION_KEYS},
                "images": conditions.count(c)}
            for c, m in per.items()
        }  # fmt: skip
    return metrics


CONDITION_KEYS = ("miou", "pixel_accuracy", "per_class_iou")


def _resolve_names(class_names: Sequence[str] | None, k: int) -> list[str]:
    if class_names is None:
        return [f"class_{i}" for i in range(k)]
    names = [str(n) for n in class_names]
    if len(names) != k:
        raise ValueError(f"got {len(names)} class names for a {k}x{k} confusion matrix")
    if len(set(names)) != k:
        raise ValueError(f"class names must be unique, got {names}")
    return names


def _ratio(num: float, den: float) -> float | None:
    return float(num) / float(den) if den > 0 else None


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(sum(kept) / len(kept)) if kept else None


def metrics_from_confusion(cm: np.ndarray | torch.Tensor, class_names: Sequence[str] | None = None) -> dict:
    """mIoU, per-class IoU/accuracy/frequency and pixel accuracy from a [K, K] confusion matrix (rows = GT).

    A class with no GT and no predicted pixels is absent: its IoU and accuracy are None and it is left out of
    the means. A class with no GT pixels but some predictions is present with IoU 0. All values are plain
    Python floats/ints or None, so the dict is JSON-serialisable."""
    cm = cm.detach().cpu().numpy() if isinstance(cm, torch.Tensor) else np.asarray(cm)
    cm = cm.astype(np.float64)
    names = _resolve_names(class_names, cm.shape[0])
    tp, gt, predicted = np.diag(cm), cm.sum(axis=1), cm.sum(axis=0)
    total = float(cm.sum())
    iou = [_ratio(t, g + p - t) for t, g, p in zip(tp, gt, predicted, strict=True)]
    acc = [_ratio(t, g) for t, g in zip(tp, gt, strict=True)]
    freq = [float(g) / total if total > 0 else 0.0 for g in gt]
    return {
        "miou": _mean(iou),
        "pixel_accuracy": _ratio(tp.sum(), total),
        "mean_accuracy": _mean(acc),
        "per_class_iou": dict(zip(names, iou, strict=True)),
        "per_class_accuracy": dict(zip(names, acc, strict=True)),
        "per_class_frequency": dict(zip(names, freq, strict=True)),
        "num_pixels": int(total),
        "class_names": names,
    }


def _mean_std(values: Sequence[float | None]) -> dict | None:
    s = stats(values)
    return None if s is None else {"mean": s["mean"], "std": s["std"] or 0.0}


def aggregate_seeds(results: Sequence[dict]) -> dict:
    """Mean and sample std (ddof=1; 0.0 for one run) over runs with different seeds of `metrics_from_confusion`.

    Per class, runs where the class is absent (None) are skipped; a class absent in every run is None."""
    if not results:
        raise ValueError("aggregate_seeds needs at least one result")
    names = list(results[0]["class_names"])
    for i, r in enumerate(results[1:], start=1):
        if list(r["class_names"]) != names:
            raise ValueError(f"result {i} has classes {r['class_names']}, result 0 has {names}")
    out: dict = {"n": len(results), "class_names": names}
    for key in ("miou", "pixel_accuracy", "mean_accuracy"):
        out[key] = _mean_std([r[key] for r in results])
    for key in ("per_class_iou", "per_class_accuracy", "per_class_frequency"):
        out[key] = {n: _mean_std([r[key].get(n) for r in results if key in r]) for n in names}
    return out


def _is_aggregate(metrics: dict) -> bool:
    return "n" in metrics and (metrics.get("miou") is None or isinstance(metrics.get("miou"), dict))


def _aggregate_cell(x: dict | None) -> str:
    return fmt_pct(None) if x is None else fmt_mean_std(x["mean"], x["std"])


def metrics_markdown(metrics_or_aggregate: dict, title: str | None = None) -> str:
    """A Markdown table of per-class IoU / accuracy / GT frequency (%) plus a summary line.

    Works for one `metrics_from_confusion` result and for an `aggregate_seeds` result (printed as mean ± std)."""
    m = metrics_or_aggregate
    if _is_aggregate(m):
        cell, suffix = _aggregate_cell, f" (mean ± std over {m['n']} runs)"
    else:
        cell, suffix = fmt_pct, (f" ({m['num_pixels']} pixels)" if "num_pixels" in m else "")
    per_class = [m["per_class_iou"], m.get("per_class_accuracy", {}), m.get("per_class_frequency", {})]
    rows = [[name] + [cell(values.get(name)) for values in per_class] for name in m["class_names"]]
    table = markdown_table(["class", "IoU %", "accuracy %", "GT pixels %"], rows)
    summary = (
        f"mIoU **{cell(m['miou'])}**, pixel accuracy {cell(m['pixel_accuracy'])}, "
        f"mean accuracy {cell(m['mean_accuracy'])}{suffix}"
    )
    parts = ([f"### {title}", ""] if title else []) + [table, "", summary]
    if m.get("per_condition"):
        rows = [[c, v["images"], cell(v["miou"]), cell(v["pixel_accuracy"])] for c, v in m["per_condition"].items()]
        parts += ["", markdown_table(["condition", "images", "mIoU %", "pixel accuracy %"], rows)]
    return "\n".join(parts) + "\n"
