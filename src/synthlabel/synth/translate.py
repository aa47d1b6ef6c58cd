"""Condition translation that keeps the labels: a labeled dataset in one condition (e.g. day) -> the same scenes in
the conditions the data lacks (dusk, night, fog, snow), written as a labeled dataset in the same layout with
`classes.json`, `meta.csv` and `manifest.jsonl` (source file, target condition, method or model hash, seed).

Only the images change: each translated sample's mask file is a byte copy of its source's, so its labels are the
source labels exactly. Deterministic (a sample depends on its source, condition, render index and seed only),
resumable and atomic per sample, like `synth`. With a real-data segmenter, each sample also gets a label-consistency
score (the segmenter's mIoU on the translation against the source labels), filterable like renders, and the set's
label consistency (its mIoU on the translations over its mIoU on the sources).

Methods: "photometric" (`synth.photometric`: gamma, colour temperature, noise, glow, haze; the cheap baseline) and
"model" (a translator trained by `train-translator`, `generators.translation`: unpaired, with semantic
consistency)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from synthlabel import checkpoint as ckpt
from synthlabel.data import layouts, manifest
from synthlabel.data.datasets import SegDataset
from synthlabel.downstream.workflow import fidelity_report
from synthlabel.errors import DataError
from synthlabel.generators.io import load_generator
from synthlabel.generators.translation import translate_images
from synthlabel.runs import log, progress
from synthlabel.synth.photometric import CONDITIONS, simulate
from synthlabel.synth.synthesize import check_foreign_files, sample_seed, write_png

METHODS = ("photometric", "model")
CONSISTENCY = "consistency.json"


def translate(
    dataset: SegDataset,
    out_dir: str | Path,
    conditions: Sequence[str],
    method: str = "photometric",
    k: int = 1,
    seed: int = 0,
    split: str = "train",
    segmenter: str | Path | None = None,
    model: str | Path | None = None,
) -> Path:
    """Translate every sample of `dataset` into every target condition `k` times (different seeds) into `out_dir`;
    returns `out_dir`. `method`: "photometric" (`synth.photometric`) or "model" (the translator directory `model`,
    from `train-translator`; k > 1 gives different translations only when it has noise). With `segmenter`, writes
    `<out_dir>/consistency.json` (per-sample scores for `synthlabel filter`, and the set's label consistency)."""
    if method not in METHODS:
        raise DataError(f"unknown translation method {method!r}; known: {', '.join(METHODS)}")
    translator, known, tag = None, CONDITIONS, method
    if method == "model":
        if model is None:
            raise DataError("translation method 'model' needs a translator directory (--model, from train-translator)")
        translator, meta = load_generator(model)
        if "image" not in translator.conditioning:
            raise DataError(f"{model}: {meta['name']} is not an image -> image translator (see train-translator)")
        known, tag = tuple(meta.get("conditions") or ()), ckpt.model_hash(model)
        if k > 1 and translator.z_dim == 0:
            log.warning("%s has no noise: its %d translations of an image are identical", model, k)
    unknown = [c for c in conditions if c not in known]
    if not conditions or unknown or len(set(conditions)) != len(conditions):
        raise DataError(f"conditions {list(conditions)}: name each target condition once, among {', '.join(known)}")
    if k < 1:
        raise DataError(f"k must be >= 1, got {k}")
    if dataset.class_map is not None:
        raise DataError(
            "translate copies each source mask as it is on disk: open the dataset without class_map, and give the "
            "class map to the training that reads the translated set"
        )
    out_dir, layout = Path(out_dir), layouts.get(dataset.layout)
    entries = _plan(dataset, conditions, method, k, seed, split, layout, tag)
    check_foreign_files(out_dir, layout, split)
    done = manifest.load(out_dir, entries)
    spec = dataset.spec
    merged = tuple(dict.fromkeys([*spec.conditions, *conditions])) if spec.conditions else ()
    replace(spec, conditions=merged).save(out_dir / "classes.json")
    manifest.write_meta_csv(out_dir, [entries[i] for i in sorted(done)])
    todo = [e for e in entries if e["index"] not in done]
    log.info("translate: %d samples (%d done) into %s", len(entries), len(done), out_dir)
    for entry in progress(todo, desc="translate", total=len(todo)):
        record = dataset.records[entry["map_index"]]
        image = torch.from_numpy(dataset.read(entry["map_index"])[0]).permute(2, 0, 1)[None]
        if translator is None:
            out = simulate(image, entry["condition"], torch.Generator().manual_seed(entry["seed"]))
        else:
            out = translate_images(translator, image, known.index(entry["condition"]), [entry["seed"]])
        out = out[0].permute(1, 2, 0).numpy()
        image_path, mask_path = layout.sample_paths(out_dir, split, entry["index"])
        mask_path.parent.mkdir(parents=True, exist_ok=True)
        image_path.parent.mkdir(parents=True, exist_ok=True)
        ckpt.atomic_write_bytes(mask_path, record.mask.read_bytes())  # the source labels, byte for byte
        write_png(image_path, np.ascontiguousarray(out))
        manifest.append(out_dir, entry)
    manifest.write_meta_csv(out_dir, [entries[i] for i in sorted(manifest.load(out_dir, entries))])
    if segmenter is not None:
        report = fidelity_report(segmenter, out_dir, dataset, synth_split=split, out=out_dir / CONSISTENCY)
        log.info("label consistency of %s: %.3f", out_dir, report["fidelity"] or 0.0)
    return out_dir


def _plan(dataset: SegDataset, conditions, method: str, k: int, seed: int, split: str, layout, tag: str) -> list[dict]:
    """The manifest line of every planned sample (source, condition, render j), in index order."""
    entries = []
    for i, record in enumerate(dataset.records):
        mask_hash = hashlib.sha256(record.mask.read_bytes()).hexdigest()[:16]
        for c, condition in enumerate(conditions):
            for j in range(k):
                index = len(entries)
                entries.append({
                    "file": layout.sample_paths(Path("."), split, index)[0].name,
                    "index": index,
                    "split": split,
                    "layout": layout.name,
                    "source": record.image.name,
                    "source_condition": record.meta.get("condition") or None,
                    "map_index": i,
                    "map_hash": mask_hash,
                    "condition": condition,
                    "render": j,
                    "seed": sample_seed(seed, i, j * len(conditions) + c),
                    "method": method,
                    "generator_hash": tag,  # the method, or the translator's hash
                })  # fmt: skip
    if not entries:
        raise DataError(f"{dataset.root}: split '{dataset.split}' has no samples to translate")
    return entries
