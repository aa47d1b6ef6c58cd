"""Filters for synthetic samples: drop low scorers (e.g. per-sample label fidelity) while per-class quotas keep the
rare classes that synthesis was run for. Deterministic: ties are broken by file name."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from synthlabel import checkpoint as ckpt
from synthlabel.data import manifest
from synthlabel.data.datasets import SegDataset, open_dataset
from synthlabel.errors import DataError
from synthlabel.runs import log, progress

KEEP_FILE = "keep.txt"
FILTERED_MANIFEST = "manifest.filtered.jsonl"
SUMMARY = "filter.json"


def rank(scores: Mapping[str, float]) -> list[str]:
    """Files best first: higher score first, nan last, ties by file name."""
    return sorted(scores, key=lambda f: (1, 0.0, f) if math.isnan(scores[f]) else (0, -scores[f], f))


def select_samples(
    scores: Mapping[str, float],
    threshold: float | None = None,
    keep_fraction: float | None = None,
    quotas: Mapping[int, float] | None = None,
    classes_of: Mapping[str, set[int]] | None = None,
) -> set[str]:
    """The files kept: score >= `threshold` (if given) and among the best ceil(`keep_fraction` x N) (if given).

    Quotas: for each class c with share q, of the samples that contain c (`classes_of[file]` = class ids present)
    at least ceil(q x their number) are kept; when the cut keeps fewer, the best-scoring of them are added back.
    A nan score is below every threshold and ranks last."""
    order = rank(scores)
    keep = set(order)
    if threshold is not None:
        keep = {f for f in keep if scores[f] >= threshold}
    if keep_fraction is not None:
        if not 0 < keep_fraction <= 1:
            raise ValueError(f"keep_fraction must be in (0, 1], got {keep_fraction}")
        keep &= set(order[: _quota(keep_fraction, len(order))])
    for class_id, share in sorted((quotas or {}).items()):
        if not 0 <= share <= 1:
            raise ValueError(f"quota of class {class_id} must be a share in [0, 1], got {share}")
        if classes_of is None:
            raise ValueError("quotas need classes_of: the classes present in each sample")
        members = [f for f in order if class_id in classes_of[f]]
        need = _quota(share, len(members)) - sum(f in keep for f in members)
        keep.update([f for f in members if f not in keep][: max(need, 0)])  # the best-scoring of those cut
    return keep


def filter_samples(
    synth_dir: str | Path,
    scores: Mapping[str, float | None],
    threshold: float | None = None,
    quotas: Mapping[int | str, float] | None = None,
    keep_fraction: float | None = None,
    split: str = "train",
    layout: str = "auto",
    out_dir: str | Path | None = None,
) -> list[str]:
    """Filter a synthetic split by per-sample `scores` (image file name -> score; None counts as nan, the lowest)
    with `select_samples`, e.g. `fidelity_report(...)["per_sample"]`.

    Writes into `out_dir` (default `synth_dir`): `keep.txt` (kept image names, one a line: a split file usable as
    `data.subset.file`), `manifest.filtered.jsonl` (the kept manifest lines with their score) and `filter.json`
    (settings and counts per quota class). Returns the kept file names in dataset order."""
    synth_dir = Path(synth_dir)
    out_dir = Path(out_dir) if out_dir is not None else synth_dir
    ds = open_dataset(synth_dir, split, layout)
    files = [r.image.name for r in ds.records]
    _check_scores(synth_dir, split, files, scores)
    scores = {f: math.nan if scores[f] is None else float(scores[f]) for f in files}
    quota_ids = {ds.out_spec.lookup(c): float(s) for c, s in (quotas or {}).items()}
    classes_of = _classes_present(ds) if quota_ids else None
    keep = select_samples(scores, threshold, keep_fraction, quota_ids, classes_of)
    kept = [f for f in files if f in keep]
    summary = {
        "threshold": threshold,
        "keep_fraction": keep_fraction,
        "quotas": {ds.out_spec.names[c]: s for c, s in quota_ids.items()},
        "total": len(files),
        "kept": len(kept),
        "per_quota_class": _quota_counts(ds, quota_ids, classes_of, keep),
    }
    _write_outputs(synth_dir, out_dir, kept, scores, summary)
    log.info("filter: kept %d of %d synthetic samples in %s", len(kept), len(files), synth_dir)
    return kept


def _quota(share: float, n: int) -> int:
    """ceil(share x n), robust to float noise (0.14 x 50 is 7.000000000000001 in floats)."""
    return math.ceil(round(share * n, 9))


def _check_scores(root: Path, split: str, files: list[str], scores: Mapping[str, float]) -> None:
    missing = [f for f in files if f not in scores]
    unknown = sorted(set(scores) - set(files))
    if missing or unknown:
        raise DataError(
            f"{root}: scores do not match split '{split}' ({len(missing)} samples unscored, first "
            f"{missing[:1]}; {len(unknown)} scores for unknown files, first {unknown[:1]}); score this split"
        )


def _classes_present(ds: SegDataset) -> dict[str, set[int]]:
    k = ds.out_spec.num_classes
    out = {}
    for i in progress(range(len(ds)), desc="read masks", total=len(ds)):
        ids = np.unique(ds.read_label(i))
        out[ds.records[i].image.name] = {int(c) for c in ids if 0 <= c < k}
    return out


def _quota_counts(ds: SegDataset, quota_ids: dict[int, float], classes_of, keep: set[str]) -> dict:
    counts = {}
    for c, share in quota_ids.items():
        members = [f for f, present in classes_of.items() if c in present]
        kept, required = sum(f in keep for f in members), _quota(share, len(members))
        counts[ds.out_spec.names[c]] = {"samples": len(members), "kept": kept, "required": required}
    return counts


def _write_outputs(synth_dir: Path, out_dir: Path, kept: list[str], scores: dict[str, float], summary: dict) -> None:
    ckpt.atomic_write_text(out_dir / KEEP_FILE, "".join(f"{f}\n" for f in kept))
    if (synth_dir / manifest.MANIFEST).is_file():
        keep = set(kept)
        rows = [r | {"score": _finite(scores[r["file"]])} for r in manifest.rows(synth_dir) if r.get("file") in keep]
        ckpt.atomic_write_text(out_dir / FILTERED_MANIFEST, "".join(json.dumps(r) + "\n" for r in rows))
    ckpt.atomic_write_text(out_dir / SUMMARY, json.dumps(summary, indent=1))


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None
