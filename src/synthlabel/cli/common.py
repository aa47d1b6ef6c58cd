"""What the subcommand modules share: argument groups, value parsers and config loading with --dry-run."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from synthlabel.config import Strict, load_config, to_dict
from synthlabel.errors import ConfigError


def parse_size(text: str) -> tuple[int, int]:
    """'96x128' -> (96, 128) (H, W)."""
    h, _, w = text.lower().partition("x")
    return int(h), int(w)


def parse_pairs(items: list[str] | None, what: str) -> dict[str, float | str]:
    """['Pole=0.03', 'Pedestrian=3%'] -> {'Pole': 0.03, 'Pedestrian': '3%'} (values parsed by the callee)."""
    out = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"{what} {item!r} must look like CLASS=VALUE")
        out[name] = value if value.endswith("%") else float(value)
    return out


def data_args(s: argparse.ArgumentParser, path_name: str = "path") -> None:
    s.add_argument(path_name, help="dataset folder (CamVid, Cityscapes or images/+masks/ layout)")
    s.add_argument("--layout", default="auto", choices=["auto", "camvid", "cityscapes", "folders"])
    s.add_argument("--class-map", help="YAML class map applied at load time (label harmonization)")


def config_args(s: argparse.ArgumentParser) -> None:
    s.add_argument("config", nargs="?", help="YAML config (optional)")
    s.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.steps=2000")
    s.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")


def training_args(s: argparse.ArgumentParser, default_out: str) -> None:
    """A training subcommand: `config_args`, its run directory and --resume (which refuses a changed config)."""
    config_args(s)
    s.add_argument("--out", default=default_out, help="run directory")
    s.add_argument("--resume", action="store_true", help="continue an interrupted run in --out (same config)")


def resolved_config(cls: type[Strict], a: argparse.Namespace):
    """The config of a `config_args` subcommand (file + overrides); printed as YAML with --dry-run."""
    config, overrides = a.config, list(a.overrides)
    if config and "=" in config and not Path(config).exists():  # no config file: the first item is an override
        config, overrides = None, [config, *overrides]
    cfg = load_config(cls, config, overrides)
    if a.dry_run:
        print(yaml.safe_dump(to_dict(cfg), sort_keys=False), end="")
    return cfg
