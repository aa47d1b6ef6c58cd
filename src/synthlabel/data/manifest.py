"""The records of a synthetic dataset: `manifest.jsonl` (one JSON line per finished sample: what made it) and
`meta.csv` (split, file, sequence, condition, frame) for synthlabel's reader. Appends are safe for several ranks."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from synthlabel.checkpoint import append_line, atomic_write_text
from synthlabel.errors import DataError

MANIFEST = "manifest.jsonl"
META_CSV = "meta.csv"
META_COLUMNS = ("split", "file", "sequence", "condition", "frame")
# The fields of a manifest line that a re-run must reproduce to continue the same synthesis.
IDENTITY = ("file", "split", "layout", "source", "map_hash", "condition", "seed", "generator_hash")


def load(out_dir: Path, entries: list[dict]) -> set[int]:
    """Indices of finished samples, given the planned `entries`. A torn last line (killed mid-append) is dropped; a
    line that disagrees with the plan means `out_dir` holds another synthesis, which is an error rather than something
    to mix in. The manifest is rewritten in index order when lines were dropped or appended out of order."""
    path = out_dir / MANIFEST
    if not path.is_file():
        return set()
    lines, kept = path.read_text().splitlines(), {}
    for n, line in enumerate(lines):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if n == len(lines) - 1:
                break
            raise DataError(f"{path}: line {n + 1} is not JSON; delete the folder and synthesize again") from None
        i = row.get("index")
        if not isinstance(i, int) or not 0 <= i < len(entries) or any(row.get(f) != entries[i][f] for f in IDENTITY):
            raise DataError(
                f"{path}: line {n + 1} ({row.get('file')}) was made by another synthesis (other maps, conditions, "
                "seed or generator); write into an empty folder or re-run with the same settings"
            )
        kept[i] = line
    ordered = [kept[i] for i in sorted(kept)]
    if ordered != lines:
        atomic_write_text(path, "".join(f"{line}\n" for line in ordered))
    return set(kept)


def rows(out_dir: Path) -> list[dict]:
    """The manifest's rows (none when there is no manifest); lines that are not JSON (a torn last line of a killed
    synthesis: its sample is not done) are left out."""
    path, out = out_dir / MANIFEST, []
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def append(out_dir: Path, entry: dict) -> None:
    """Mark a written sample done: its manifest line, then its meta.csv row."""
    append_line(out_dir / MANIFEST, json.dumps(entry, default=_jsonable))
    append_line(out_dir / META_CSV, _meta_row(entry))


def write_meta_csv(out_dir: Path, entries: list[dict]) -> None:
    """meta.csv of the finished samples; rebuilt from the manifest at the start and end of a synthesis."""
    lines = [",".join(META_COLUMNS)] + [_meta_row(e) for e in entries]
    atomic_write_text(out_dir / META_CSV, "".join(f"{line}\n" for line in lines))


def _meta_row(entry: dict) -> str:
    """One meta.csv line; the renders of one label map share a sequence, `map######`."""
    buffer = io.StringIO()
    row = (entry["split"], entry["file"], f"map{entry['map_index']:06d}", entry["condition"] or "", entry["index"])
    csv.writer(buffer, lineterminator="").writerow(row)
    return buffer.getvalue()


def _jsonable(value):
    """numpy values as plain ones and sets as sorted lists (recomposition ops hold both)."""
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()
    if isinstance(value, set):
        return sorted(value)
    raise TypeError(f"cannot write {type(value).__name__} to the manifest")
