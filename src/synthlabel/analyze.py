"""`synthlabel analyze`: class frequency per split joined with a model's per-class IoU, to aim the generation."""

from __future__ import annotations

import json
from pathlib import Path

from synthlabel.checkpoint import atomic_write_text
from synthlabel.data.datasets import list_splits, open_dataset
from synthlabel.downstream.workflow import evaluate_segmenter
from synthlabel.eval.distribution import (
    analyze_distribution,
    distribution_markdown,
    label_statistics,
    plot_frequency_vs_iou,
)
from synthlabel.runs import environment, log, progress


def split_statistics(
    data_path: str | Path, layout: str = "auto", class_map: str | None = None, splits: list[str] | None = None
) -> tuple[dict[str, dict], list[str]]:
    """Per-split label statistics (pixel and appearance frequency) and the class names."""
    stats, names = {}, []
    for split in splits or list_splits(data_path, layout):
        ds = open_dataset(data_path, split, layout, class_map=class_map)
        spec = ds.out_spec
        names = spec.names
        labels = (ds.read_label(i) for i in progress(range(len(ds)), desc=f"labels {split}", total=len(ds)))
        stats[split] = label_statistics(labels, spec.num_classes, spec.ignore_id)
    return stats, names


def analyze(
    data_path: str | Path,
    out_dir: str | Path,
    layout: str = "auto",
    class_map: str | None = None,
    model_dir: str | Path | None = None,
    metrics_json: str | Path | None = None,
    eval_split: str = "test",
    reference_split: str | None = None,
) -> dict:
    """Write analysis.json, analysis.md and frequency_vs_iou.png into out_dir; IoU from a metrics JSON (as written
    by eval-seg) or by evaluating `model_dir` on `eval_split`."""
    out_dir = Path(out_dir)
    stats, names = split_statistics(data_path, layout, class_map)
    iou = None
    if metrics_json is not None:
        iou = json.loads(Path(metrics_json).read_text())["per_class_iou"]
    elif model_dir is not None:
        iou = evaluate_segmenter(model_dir, data_path, eval_split, layout, class_map=class_map)["per_class_iou"]
    reference = reference_split or ("train" if "train" in stats else next(iter(stats)))
    analysis = analyze_distribution(stats, names, iou, reference_split=reference)
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {**analysis, "data": str(data_path), "environment": environment()}
    atomic_write_text(out_dir / "analysis.json", json.dumps(record, indent=1))
    atomic_write_text(out_dir / "analysis.md", distribution_markdown(analysis))
    plot_frequency_vs_iou(analysis, out_dir / "frequency_vs_iou.png", title=f"{data_path}")
    log.info("analysis written to %s", out_dir)
    return analysis
