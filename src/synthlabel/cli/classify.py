"""The classification study subcommand: `synthlabel cls-experiment CONFIG.yaml [key=value ...]`."""

from __future__ import annotations

import argparse
from pathlib import Path

from synthlabel.cli.common import config_args, resolved_config
from synthlabel.cls.config import ClsExperimentConfig
from synthlabel.errors import ConfigError

# Stage modules are imported inside the commands, for speed only (see synthlabel.cli).


def parse_runs(text: str | None, total: int) -> list[int] | None:
    """'3' -> [3]; '0-4' -> [0..4]; None -> None (all runs)."""
    if not text:
        return None
    first, _, last = text.partition("-")
    try:
        runs = list(range(int(first), int(last or first) + 1))
    except ValueError:
        raise ConfigError(f"--runs {text!r} must look like 3 or 0-4") from None
    if not runs or runs[0] < 0 or runs[-1] >= total:
        raise ConfigError(f"--runs {text!r} must lie in 0..{total - 1} (the config has runs={total})")
    return runs


def cmd_cls_experiment(a: argparse.Namespace) -> int:
    from synthlabel.cls.experiment import run_study
    from synthlabel.cls.report import summary_markdown

    cfg = resolved_config(ClsExperimentConfig, a)
    if a.dry_run:
        return 0
    summary = run_study(cfg, a.out, runs=parse_runs(a.runs, cfg.runs))
    print(summary_markdown(summary))
    print(f"\nreport: {Path(a.out) / 'report.html'} (re-run the same command to continue an interrupted study)")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser(
        "cls-experiment",
        help="classifier augmentation study: GANs per run, selection, classifier arms x runs, report (resumable)",
    )
    config_args(s)
    s.add_argument("--out", default="runs/cls", help="study directory (cache, per-run results, report)")
    s.add_argument("--runs", help="run indices to do now, e.g. 0-4 (default: all); finished ones are skipped")
    s.set_defaults(fn=cmd_cls_experiment)
