"""`synthlabel` command line: one subcommand per stage, plus `run` for the whole chain. The commands import their
stage modules when they run, for speed only: together those pull torch models, scipy and matplotlib, which would
double the time of `synthlabel --help` (tests/test_imports.py lists these imports)."""

from __future__ import annotations

import argparse
import contextlib
import io
import sys

from synthlabel import distributed
from synthlabel.cli import chain, classify, data, segment, synthesis
from synthlabel.errors import SynthlabelError
from synthlabel.runs import setup_logging


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="synthlabel", description="More labeled data from a few labeled images, and proof that it helps."
    )
    sub = p.add_subparsers(dest="command", required=True)
    for module in (data, segment, synthesis, classify, chain):
        module.add_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    quiet = distributed.env_rank() > 0  # under torchrun rank 0 alone prints results
    try:
        with contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext():
            return args.fn(args)
    except SynthlabelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; re-run with --resume (train-seg) or the same command (run) to continue", file=sys.stderr)
        return 130
