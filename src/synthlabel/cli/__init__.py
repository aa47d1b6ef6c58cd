"""`synthlabel` command line: one subcommand per stage, plus `run` for the whole chain. The commands import their
stage modules when they run, for speed only: together those pull torch models, scipy and matplotlib, which would
double the time of `synthlabel --help` (tests/test_imports.py lists these imports)."""

from __future__ import annotations

import argparse
import contextlib
import errno
import io
import sys
import traceback
from pathlib import Path

from synthlabel import distributed
from synthlabel.cli import chain, classify, data, mining, segment, synthesis
from synthlabel.errors import SynthlabelError
from synthlabel.runs import setup_logging


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="synthlabel", description="More labeled data from a few labeled images, and proof that it helps."
    )
    p.add_argument("--debug", action="store_true", help="print the traceback of an error, not just its message")
    sub = p.add_subparsers(dest="command", required=True)
    for module in (data, segment, synthesis, classify, mining, chain):
        module.add_parsers(sub)
    return p


NOT_WRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)


def error_message(exc: BaseException) -> str | None:
    """The one line a user gets for an error they can cause or fix; None for a bug (it keeps its traceback)."""
    if isinstance(exc, SynthlabelError):
        return str(exc)
    if isinstance(exc, OSError) and exc.errno in NOT_WRITABLE:
        path = Path(exc.filename or "?")
        folder = path if path.is_dir() else path.parent
        return f"{folder}: folder is read-only or not writable ({exc.strerror}); choose another output folder"
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return f"{exc.filename or 'output'}: disk full while writing; free space and re-run (finished files are kept)"
    if isinstance(exc, RuntimeError) and "unexpected pos" in str(exc):  # torch's zip writer on a full disk
        return "disk full while saving a checkpoint; free space and re-run with --resume (the last one is kept)"
    if isinstance(exc, FileNotFoundError):
        return f"{exc.filename}: not found; check the path"
    return None


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; an error a user can cause ends as one line on stderr and exit code 2."""
    args = build_parser().parse_args(argv)
    setup_logging()
    quiet = distributed.env_rank() > 0  # under torchrun rank 0 alone prints results
    try:
        with contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext():
            return args.fn(args)
    except KeyboardInterrupt:
        print("interrupted; re-run with --resume (train-seg) or the same command (run) to continue", file=sys.stderr)
        return 130
    except Exception as exc:
        message = error_message(exc)
        if message is None:
            raise
        if args.debug:
            traceback.print_exc()
        print(f"error: {message}", file=sys.stderr)
        return 2
