"""Pick a generator checkpoint by what its renders do for the segmenter, not by the last step: the model kept at
each sample step (`train.keep_models`) renders the training label maps, a short segmenter run trains on real +
those renders, and its validation mIoU scores the checkpoint. A GAN's last step is often not its best, and the
image-quality proxies (losses, fidelity) do not tell which renders help downstream; this measures it directly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from synthlabel.checkpoint import atomic_write_text
from synthlabel.config import SegConfig, build_config, to_dict
from synthlabel.downstream.workflow import fidelity_report, open_split, select_subset, train_segmenter
from synthlabel.errors import DataError
from synthlabel.runs import log
from synthlabel.synth.synthesize import OWN, label_sources_from_dataset, synthesize

SELECTION = "selection.json"


def kept_models(run_dir: str | Path) -> dict[int, Path]:
    """{step: model dir} of a generator run trained with train.keep_models."""
    found = {int(p.name.removeprefix("step_")): p for p in sorted((Path(run_dir) / "models").glob("step_*"))}
    if not found:
        raise DataError(f"{run_dir}: no kept models (models/step_*); train the generator with train.keep_models=true")
    return found


def score_checkpoints(
    run_dir: str | Path,
    seg_cfg: SegConfig,
    out_dir: str | Path,
    k: int = 1,
    fraction: float = 0.5,
    reference: str | Path | None = None,
) -> dict:
    """Score every kept model of a generator run: render the training maps of `seg_cfg.data` (its low-shot subset
    too) `k` times each under their own condition, train `seg_cfg` (a short schedule) on real + renders mixed at
    `fraction`, read its validation mIoU. With `reference` (a real-data segmenter), also the renders' label
    fidelity against the validation images. Each checkpoint's score is cached in out_dir/step_XXXXXX/score.json;
    the summary (scores and the best step by val mIoU) is written to out_dir/selection.json and returned."""
    if seg_cfg.data.val_split is None:
        raise DataError("scoring generator checkpoints needs a validation split (data.val_split)")
    out_dir = Path(out_dir)
    train = select_subset(open_split(seg_cfg.data, seg_cfg.data.train_split), seg_cfg.data)
    maps = label_sources_from_dataset(train)
    own = [OWN] if all(m.condition for m in maps) else []
    scores = {}
    for step, model in kept_models(run_dir).items():
        cell = out_dir / f"step_{step:06d}"
        if (cell / "score.json").is_file():
            scores[step] = json.loads((cell / "score.json").read_text())
            continue
        shutil.rmtree(cell, ignore_errors=True)  # a half-done cell is redone from scratch
        synth = synthesize(model, maps, cell / "synth", own, k, seed=0, layout=train.layout)
        mix = {**to_dict(seg_cfg.mix), "mode": "mixed", "fraction": fraction, "sources": [{"path": str(synth)}]}
        cfg = build_config(SegConfig, {**to_dict(seg_cfg), "mix": mix}, source="checkpoint scoring")
        result = train_segmenter(cfg, cell / "segmenter")
        score = {"step": step, "val_miou": None if result.val is None else result.val["miou"]}
        if reference is not None:
            real = open_split(seg_cfg.data, seg_cfg.data.val_split)
            score["fidelity"] = fidelity_report(reference, synth, real)["fidelity"]
        atomic_write_text(cell / "score.json", json.dumps(score, indent=1))
        shutil.rmtree(cell / "segmenter", ignore_errors=True)  # the score is what is kept
        scores[step] = score
        log.info("generator checkpoint %d: val mIoU %.3f with its renders", step, score["val_miou"] or 0.0)
    best = max(scores, key=lambda s: (scores[s]["val_miou"] or -1.0, s))
    summary = {"scores": {str(s): v for s, v in scores.items()}, "best": best, "model": str(kept_models(run_dir)[best])}
    atomic_write_text(out_dir / SELECTION, json.dumps(summary, indent=1))
    return summary
