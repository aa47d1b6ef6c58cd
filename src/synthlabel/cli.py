"""`synthlabel` command line: one subcommand per stage, plus `run` for the whole chain."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from synthlabel.errors import SynthlabelError


def _size(text: str) -> tuple[int, int]:
    h, _, w = text.lower().partition("x")
    return int(h), int(w)


def cmd_check_data(a) -> int:
    from synthlabel.data.datasets import check_dataset
    from synthlabel.report.tables import markdown_table

    r = check_dataset(a.path, a.layout, a.class_spec, a.class_map, a.meta or "auto")
    print(f"{r.root} (layout: {r.layout})")
    if r.spec is not None and r.counts:
        conds = sorted({c for s in r.counts.values() for c in s})
        print(
            markdown_table(
                ["split", "images", *conds],
                [[s, sum(c.values()), *[c.get(k, 0) for k in conds]] for s, c in r.counts.items()],
            )
        )
        names = r.spec.names + ["(ignore)"]
        if a.class_map:
            from synthlabel.data.classes import ClassMap

            names = ClassMap.from_yaml(a.class_map, r.spec).target.names + ["(ignore)"]
        rows = [[n, *[f"{100 * r.pixel_fraction[s][i]:.2f}" for s in r.pixel_fraction]] for i, n in enumerate(names)]
        print("\npixel fraction per class (%):")
        print(markdown_table(["class", *r.pixel_fraction], rows))
    print(f"\n{len(r.problems)} problem(s) found" + (":" if r.problems else ""))
    for p in r.problems:
        print(f"  - {p}")
    return 0 if r.ok else 1


def cmd_make_demo(a) -> int:
    from synthlabel.data.toy import make_demo_dataset

    path = make_demo_dataset(
        a.out, a.n_train, a.n_val, a.n_test, _size(a.size), a.seed, paired=a.paired, overwrite=a.overwrite
    )
    print(f"demo dataset written to {path}")
    return 0


def cmd_subset(a) -> int:
    from synthlabel.data.datasets import open_dataset
    from synthlabel.data.subset import lowshot_indices, write_split_file

    ds = open_dataset(a.path, a.split, a.layout)
    path = write_split_file(a.out, ds, lowshot_indices(len(ds), a.n, a.seed))
    print(f"{a.n} of {len(ds)} '{a.split}' images (seed {a.seed}) written to {path}; use data.subset.file={path}")
    return 0


def _load(cls, a):
    from synthlabel.config import load_config, to_dict

    config, overrides = a.config, list(a.overrides)
    if config and "=" in config and not Path(config).exists():  # no config file: the first item is an override
        config, overrides = None, [config, *overrides]
    cfg = load_config(cls, config, overrides)
    if a.dry_run:
        print(yaml.safe_dump(to_dict(cfg), sort_keys=False), end="")
    return cfg


def cmd_train_seg(a) -> int:
    from synthlabel.config import SegConfig
    from synthlabel.downstream.workflow import train_segmenter

    cfg = _load(SegConfig, a)
    if a.dry_run:
        return 0
    result = train_segmenter(cfg, a.out, resume=a.resume)
    val = f", val mIoU {100 * result.val['miou']:.1f}" if result.val else ""
    print(f"model: {result.model_dir}{val}")
    return 0


def cmd_eval_seg(a) -> int:
    from synthlabel.downstream.workflow import evaluate_segmenter
    from synthlabel.eval.segmentation import metrics_markdown

    out = a.out or Path(a.model) / f"eval_{a.split}.json"
    m = evaluate_segmenter(a.model, a.data, a.split, a.layout, _size(a.size) if a.size else None, a.class_map, out)
    print(metrics_markdown(m, title=f"{a.split} ({a.data})"))
    print(f"\nmetrics written to {out}")
    return 0


def cmd_analyze(a) -> int:
    from synthlabel.analyze import analyze
    from synthlabel.eval.distribution import distribution_markdown

    res = analyze(a.path, a.out, a.layout, a.class_map, a.model, a.metrics, a.split)
    print(distribution_markdown(res))
    print(f"\nanalysis written to {a.out} (analysis.json, analysis.md, frequency_vs_iou.png)")
    return 0


def cmd_experiment(a) -> int:
    from synthlabel.config import ExperimentConfig
    from synthlabel.experiment import run_experiment

    cfg = _load(ExperimentConfig, a)
    if a.dry_run:
        return 0
    report = run_experiment(cfg, only_plan=a.plan)
    if not a.plan:
        print(f"report: {report} (Markdown and CSV beside it)")
    return 0


def cmd_run(a) -> int:
    from synthlabel.config import PipelineConfig
    from synthlabel.pipeline import run_pipeline

    cfg = _load(PipelineConfig, a)
    if a.dry_run:
        return 0
    summary = run_pipeline(cfg)
    m = json.loads((summary.parent / f"eval_{cfg.eval_split}.json").read_text())
    print(f"\n{cfg.eval_split} mIoU {100 * m['miou']:.1f}%, pixel accuracy {100 * m['pixel_accuracy']:.1f}%")
    print(f"outputs in {summary.parent}/ (summary: {summary})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="synthlabel", description="More labeled data from a few labeled images, and proof that it helps."
    )
    sub = p.add_subparsers(dest="command", required=True)

    def data_args(s, path_name="path"):
        s.add_argument(path_name, help="dataset folder (CamVid, Cityscapes or images/+masks/ layout)")
        s.add_argument("--layout", default="auto", choices=["auto", "camvid", "cityscapes", "folders"])
        s.add_argument("--class-map", help="YAML class map applied at load time (label harmonization)")

    def config_args(s):
        s.add_argument("config", nargs="?", help="YAML config (optional)")
        s.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.steps=2000")
        s.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")

    s = sub.add_parser("check-data", help="validate a dataset: counts, class pixel fractions, every problem")
    data_args(s)
    s.add_argument("--class-spec", help="classes.json (default: <path>/classes.json)")
    s.add_argument("--meta", help="metadata CSV joined by file name (default: <path>/meta.csv if present)")
    s.set_defaults(fn=cmd_check_data)

    s = sub.add_parser("make-demo", help="write the procedural demo dataset (road scenes, 4 conditions)")
    s.add_argument("out")
    s.add_argument("--n-train", type=int, default=48)
    s.add_argument("--n-val", type=int, default=16)
    s.add_argument("--n-test", type=int, default=24)
    s.add_argument("--size", default="96x128", help="HxW")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--paired", action="store_true", help="every scene under every condition")
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(fn=cmd_make_demo)

    s = sub.add_parser("subset", help="write a deterministic low-shot split file (N images by seed)")
    s.add_argument("path")
    s.add_argument("--layout", default="auto")
    s.add_argument("--split", default="train")
    s.add_argument("--n", type=int, required=True)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True)
    s.set_defaults(fn=cmd_subset)

    s = sub.add_parser("train-seg", help="train the downstream segmenter")
    config_args(s)
    s.add_argument("--out", default="runs/segmenter", help="run directory")
    s.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
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

    from synthlabel.cli_synth import add_parsers

    add_parsers(sub, config_args, data_args)

    from synthlabel.cli_cls import add_parsers as add_cls_parsers

    add_cls_parsers(sub, config_args, data_args)

    s = sub.add_parser("experiment", help="arms x synthetic amounts x seeds, cached and resumable, + gain report")
    config_args(s)
    s.add_argument("--plan", action="store_true", help="list the runs (and which are done) without running")
    s.set_defaults(fn=cmd_experiment)

    s = sub.add_parser("run", help="the whole chain from one config (skips finished stages)")
    config_args(s)
    s.set_defaults(fn=cmd_run)
    return p


def main(argv: list[str] | None = None) -> int:
    from synthlabel.runs import setup_logging

    args = build_parser().parse_args(argv)
    setup_logging()
    try:
        return args.fn(args)
    except SynthlabelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; re-run with --resume (train-seg) or the same command (run) to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
