"""Segmenter subcommands: train-seg, eval-seg, and analyze (class frequency vs a segmenter's per-class IoU)."""

from __future__ import annotations

import argparse
from pathlib import Path

from synthlabel.cli.common import data_args, parse_size, resolved_config, training_args
from synthlabel.config import SegConfig
from synthlabel.eval.segmentation import metrics_markdown

# Stage modules are imported inside the commands, for speed only (see synthlabel.cli).


def cmd_train_seg(a: argparse.Namespace) -> int:
    from synthlabel.downstream.workflow import train_segmenter

    cfg = resolved_config(SegConfig, a)
    if a.dry_run:
        return 0
    result = train_segmenter(cfg, a.out, resume=a.resume)
    val = f", val mIoU {100 * result.val['miou']:.1f}" if result.val else ""
    print(f"model: {result.model_dir}{val}")
    return 0


def cmd_eval_seg(a: argparse.Namespace) -> int:
    from synthlabel.downstream.workflow import evaluate_segmenter

    out = a.out or Path(a.model) / f"eval_{a.split}.json"
    size = parse_size(a.size) if a.size else None
    m = evaluate_segmenter(a.model, a.data, a.split, a.layout, size, a.class_map, out)
    print(metrics_markdown(m, title=f"{a.split} ({a.data})"))
    print(f"\nmetrics written to {out}")
    return 0


def cmd_analyze(a: argparse.Namespace) -> int:
    from synthlabel.analyze import analyze
    from synthlabel.eval.distribution import distribution_markdown

    res = analyze(a.path, a.out, a.layout, a.class_map, a.model, a.metrics, a.split)
    print(distribution_markdown(res))
    print(f"\nanalysis written to {a.out} (analysis.json, analysis.md, frequency_vs_iou.png)")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("train-seg", help="train the downstream segmenter")
    training_args(s, "runs/segmenter")
    s.set_defaults(fn=cmd_train_seg)

    s = sub.add_parser("eval-seg", help="evaluate a trained segmenter (confusion matrix, per-class IoU, mIoU)")
    s.add_argument("model", help="model directory (config.json + model.safetensors)")
    s.add_argument("--data", required=True)
    s.add_argument("--split", default="test")
    s.add_argument("--layout", default="auto")
    s.add_argument("--size", help="HxW (default: the model's training size)")
    s.add_argument("--class-map")
    s.add_argument("--out", help="metrics JSON (default: MODEL/eval_SPLIT.json; a .md table is written beside)")
    s.set_defaults(fn=cmd_eval_seg)

    s = sub.add_parser("analyze", help="class frequency per split vs a model's per-class IoU")
    data_args(s)
    s.add_argument("--model", help="segmenter model directory to evaluate for IoU")
    s.add_argument("--metrics", help="metrics JSON from eval-seg (instead of --model)")
    s.add_argument("--split", default="test", help="split to evaluate --model on")
    s.add_argument("--out", default="runs/analysis")
    s.set_defaults(fn=cmd_analyze)
