"""Self-training's data (the cheap alternative that also uses unlabeled images): the real-data segmenter labels
unlabeled images, and only its confident pixels keep their label (the others are written as ignore). The result is
a labeled dataset in the usual layout with a manifest (source image, confidence threshold, model hash), mixed
like renders (`synthlabel experiment` sources). Deterministic, resumable and atomic per sample."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from synthlabel import checkpoint as ckpt
from synthlabel.data import layouts, manifest
from synthlabel.data.classes import ClassSpec
from synthlabel.data.datasets import read_rgb
from synthlabel.data.sample import to_float
from synthlabel.downstream.segmenter import load_segmenter
from synthlabel.errors import DataError
from synthlabel.runs import log, progress
from synthlabel.synth.synthesize import check_foreign_files, write_png


@torch.no_grad()
def pseudo_label(
    segmenter: str | Path, images: Sequence[Path], out_dir: str | Path, confidence: float = 0.9,
    split: str = "train", layout: str = "camvid", batch_size: int = 8,
) -> Path:  # fmt: skip
    """Label `images` (image files) with the segmenter at its working size; pixels whose top softmax probability
    is below `confidence` become ignore. Writes the set into `out_dir`; returns it."""
    if not 0.0 <= confidence < 1.0:
        raise DataError(f"confidence must be in [0, 1), got {confidence}")
    if not images:
        raise DataError("pseudo-labeling needs unlabeled images")
    out_dir, lay = Path(out_dir), layouts.get(layout)
    model, meta = load_segmenter(segmenter)
    spec = ClassSpec.from_json(meta["class_spec"])
    if spec.ignore_index is None:
        raise DataError(f"{segmenter}: its label set has no ignore value to mark unconfident pixels; add one")
    size = tuple(meta["size"]) if meta.get("size") else None
    tag = ckpt.model_hash(segmenter)
    entries = []
    for i, path in enumerate(images):
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
        entries.append({"file": lay.sample_paths(Path("."), split, i)[0].name, "index": i, "split": split,
                        "layout": lay.name, "source": Path(path).name, "map_index": i, "map_hash": digest,
                        "condition": None, "seed": 0, "generator_hash": f"{tag}@{confidence:g}"})  # fmt: skip
    check_foreign_files(out_dir, lay, split)
    done = manifest.load(out_dir, entries)
    spec.save(out_dir / "classes.json")
    todo = [e for e in entries if e["index"] not in done]
    log.info("pseudo-label: %d images (%d done), confidence >= %g, into %s", len(entries), len(done), confidence,
             out_dir)  # fmt: skip
    model.eval()
    for start in progress(range(0, len(todo), batch_size), desc="pseudo-label"):
        chunk = todo[start : start + batch_size]
        arrays = [read_rgb(images[e["index"]], size) for e in chunk]
        x = to_float(torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2))
        probs = F.softmax(model(x).float(), dim=1)
        conf, pred = probs.max(1)
        labels = torch.where(conf >= confidence, pred, spec.ignore_id)
        for e, image, label, c in zip(chunk, arrays, labels, conf, strict=True):
            image_path, mask_path = lay.sample_paths(out_dir, split, e["index"])
            image_path.parent.mkdir(parents=True, exist_ok=True)
            mask_path.parent.mkdir(parents=True, exist_ok=True)
            write_png(mask_path, lay.encode_mask(label.numpy().astype(np.uint8)))
            write_png(image_path, image)
            manifest.append(out_dir, {**e, "confident": round(float((c >= confidence).float().mean()), 4)})
    manifest.write_meta_csv(out_dir, manifest.rows(out_dir))
    return out_dir
