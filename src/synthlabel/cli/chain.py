"""Whole-chain subcommands: experiment (arms x amounts x seeds + gain report) and run (every stage from one config)."""

from __future__ import annotations

import argparse
import json

from synthlabel.cli.common import config_args, resolved_config
from synthlabel.config import ExperimentConfig, PipelineConfig

# Stage modules are imported inside the commands, for speed only (see synthlabel.cli).


def cmd_experiment(a: argparse.Namespace) -> int:
    from synthlabel.experiment import run_experiment

    cfg = resolved_config(ExperimentConfig, a)
    if a.dry_run:
        return 0
    report = run_experiment(cfg, only_plan=a.plan)
    if not a.plan:
        print(f"report: {report} (Markdown and CSV beside it)")
    return 0


def cmd_run(a: argparse.Namespace) -> int:
    from synthlabel.pipeline import run_pipeline

    cfg = resolved_config(PipelineConfig, a)
    if a.dry_run:
        return 0
    summary = run_pipeline(cfg)
    m = json.loads((summary.parent / f"eval_{cfg.eval_split}.json").read_text())
    print(f"\n{cfg.eval_split} mIoU {100 * m['miou']:.1f}%, pixel accuracy {100 * m['pixel_accuracy']:.1f}%")
    print(f"outputs in {summary.parent}/ (summary: {summary})")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("experiment", help="arms x synthetic amounts x seeds, cached and resumable, + gain report")
    config_args(s)
    s.add_argument("--plan", action="store_true", help="list the runs (and which are done) without running")
    s.set_defaults(fn=cmd_experiment)

    s = sub.add_parser("run", help="the whole chain from one config (skips finished stages)")
    config_args(s)
    s.set_defaults(fn=cmd_run)
