"""Stage functions for the downstream segmenter: `train_segmenter(cfg, run_dir)` (under torchrun too),
`evaluate_segmenter(...)` and `fidelity_report(...)` (a saved segmenter judging a synthetic dataset)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from synthlabel import distributed
from synthlabel.checkpoint import atomic_write_text
from synthlabel.config import DataConfig, HoldoutConfig, SegConfig, build_config, to_dict
from synthlabel.data.classes import ClassSpec
from synthlabel.data.datasets import SegDataset, has_split, open_dataset
from synthlabel.data.sample import TensorSet
from synthlabel.data.subset import carve_validation, lowshot_indices, read_split_file, write_split_file
from synthlabel.device import Precision, resolve_precision
from synthlabel.downstream.mixing import build_sources
from synthlabel.downstream.segmenter import TrainResult, load_segmenter, segmenter_trainer
from synthlabel.errors import DataError
from synthlabel.eval.generator_metrics import label_fidelity_report
from synthlabel.eval.segmentation import evaluate, metrics_markdown
from synthlabel.runs import Run, environment, log


def open_split(data: DataConfig, split: str) -> SegDataset:
    return open_dataset(data.path, split, data.layout, class_map=data.class_map)


def select_subset(dataset: SegDataset, data: DataConfig, run_dir: Path | None = None) -> SegDataset:
    """Apply data.subset (split file or n/seed); the chosen files are written to run_dir/subset.txt."""
    sub = data.subset
    if sub.file:
        indices = read_split_file(sub.file, dataset)
    elif sub.n is not None:
        indices = lowshot_indices(len(dataset), sub.n, sub.seed)
    else:
        return dataset
    if run_dir is not None:
        write_split_file(run_dir / "subset.txt", dataset, indices)
    return dataset.subset(indices)


def settle_validation(data: DataConfig, holdout: HoldoutConfig, out: Path) -> DataConfig:
    """`data` with a validation split: the configured one when it exists, else a deterministic part carved from train
    (`holdout`), listed in <out>/holdout/ and said in the log. Every setting is chosen on it, never on test."""
    if data.val_split and has_split(data.path, data.val_split, data.layout):
        return data
    train = open_split(data, data.train_split)
    h = holdout
    train_split, val_split = carve_validation(train, out / "holdout", h.fraction, h.min_images, h.seed)
    why = f"no '{data.val_split}' split in {data.path}" if data.val_split else "data.val_split is null"
    n = len(open_split(data, val_split))
    log.info("%s: %d of the %d train images (seed %d) validate instead: %s", why, n, len(train), h.seed, val_split)
    return data.model_copy(update={"train_split": train_split, "val_split": val_split})


def load_training_data(data: DataConfig, run_dir: Path | None = None) -> tuple[TensorSet, TensorSet | None, ClassSpec]:
    """(train at working size, val or None, class spec) as the training stage sees them."""
    train_ds = open_split(data, data.train_split)
    train_ds = select_subset(train_ds, data, run_dir)
    val = None
    if data.val_split and has_split(data.path, data.val_split, train_ds.layout):
        val = open_split(data, data.val_split).load(data.size, desc="load val")
    elif data.val_split:  # never steer on test instead; `synthlabel run` carves a validation part from train
        log.info(
            "no '%s' split in %s: training without validation (test is never used instead)", data.val_split, data.path
        )
    return train_ds.load(data.size, desc="load train"), val, train_ds.out_spec


def open_run(cfg, data: DataConfig, run_dir: Path, resume: bool) -> Run:
    """Create (or reopen with resume) a training run dir for `cfg`, recording the low-shot subset it uses."""
    run = Run(run_dir, to_dict(cfg), resume=resume, normalize=lambda d: to_dict(build_config(type(cfg), d)))
    if data.subset.n is not None or data.subset.file:
        select_subset(open_split(data, data.train_split), data, run_dir)
    return run


def open_main_run(cfg, data: DataConfig, run_dir: Path, resume: bool) -> Run | None:
    """`open_run` on rank 0 (None on the other ranks); a refusal there (e.g. a finished run without resume) is
    raised on every rank, so none waits for the others."""
    run, error = None, None
    if distributed.is_main():
        try:
            run = open_run(cfg, data, run_dir, resume)
        except Exception as exc:
            error = exc
    error = distributed.broadcast_object(error)
    if error is not None:
        raise error
    return run


def train_segmenter(cfg: SegConfig, run_dir: str | Path, resume: bool = False, on_step=None) -> TrainResult:
    """Train a segmenter into run_dir (model/ + train_state.pt + metrics); resumable with resume=True (with any
    number of processes). Under torchrun each process trains on its share of every batch; rank 0 writes."""
    run_dir = Path(run_dir)
    # Read and validate the data before the run dir gets anything, so a data error leaves nothing behind.
    train, val, spec = load_training_data(cfg.data)
    if cfg.data.val_split is None:
        log.info("data.val_split is null: training without validation (test is never used instead)")
    sources = build_sources(train, spec, cfg.mix, cfg.data.size, cfg.train.seed)
    precision = resolve_precision(cfg.train.precision, cfg.train.device)
    distributed.init(precision.device)
    run = open_main_run(cfg, cfg.data, run_dir, resume)
    trainer = segmenter_trainer(cfg, train, spec, precision, run_dir, run, val, sources)
    if run is not None:
        run.write_env(trainer.precision.describe())
    if resume:
        trainer.restore()
    start = time.monotonic()
    result = TrainResult(run_dir / "model", trainer.fit(on_step), time.monotonic() - start, trainer.step)
    if result.val is not None:  # rank 0 only
        atomic_write_text(run_dir / "val_metrics.json", json.dumps(result.val, indent=1))
        log.info("val mIoU %.1f%% after %d steps (%.0fs)", 100 * result.val["miou"], result.steps, result.seconds)
    if run is not None:
        log.info("model written to %s", result.model_dir)
    return result


def evaluate_segmenter(
    model_dir: str | Path,
    data_path: str | Path,
    split: str = "test",
    layout: str = "auto",
    size: tuple[int, int] | None = None,
    class_map: str | None = None,
    out: str | Path | None = None,
) -> dict:
    """Evaluate a saved segmenter on a split at its training resolution (or `size`); writes JSON + Markdown."""
    model, meta = load_segmenter(model_dir)
    ds = open_dataset(data_path, split, layout, class_map=class_map)
    spec = ds.out_spec
    if meta["config"]["num_classes"] != spec.num_classes:
        raise DataError(
            f"{data_path}: {spec.num_classes} classes but the model predicts "
            f"{meta['config']['num_classes']}; evaluate on data with the model's label set"
        )
    size = tuple(size) if size else (tuple(meta["size"]) if meta.get("size") else None)
    metrics = evaluate(model, ds.load(size, desc=f"load {split}"), spec, desc=f"eval {split}")
    metrics.update(model=str(model_dir), data=str(data_path), split=split, size=list(size or []))
    metrics["environment"] = environment(resolve_precision().describe())
    if out is not None:
        out = Path(out)
        atomic_write_text(out, json.dumps(metrics, indent=1))
        atomic_write_text(out.with_suffix(".md"), metrics_markdown(metrics, title=f"{split} ({data_path})"))
    return metrics


def fidelity_report(
    segmenter_dir: str | Path,
    synth_dir: str | Path,
    real_test: str | Path | SegDataset,
    synth_split: str = "train",
    real_split: str = "test",
    precision: Precision | None = None,
    batch_size: int = 16,
    out: str | Path | None = None,
) -> dict:
    """`eval.generator_metrics.label_fidelity_report` of a saved segmenter (at its training size) on the synthetic
    dataset `synth_dir` against the real test images. Written as JSON to `out` if given."""
    model, meta = load_segmenter(segmenter_dir)
    size = tuple(meta["size"]) if meta.get("size") else None
    real_ds = real_test if isinstance(real_test, SegDataset) else open_dataset(real_test, real_split)
    synth_ds = open_dataset(synth_dir, synth_split)
    spec = real_ds.out_spec
    k = meta["config"]["num_classes"]
    if k != spec.num_classes or synth_ds.out_spec.num_classes != spec.num_classes:
        raise DataError(
            f"{segmenter_dir}: the segmenter predicts {k} classes, the real data has {spec.num_classes} and the "
            f"synthetic data {synth_ds.out_spec.num_classes}; use a segmenter trained on this label set"
        )
    synth, real = synth_ds.load(size, desc="load synthetic"), real_ds.load(size, desc="load real")
    report = label_fidelity_report(model, synth, real, spec, precision, batch_size)
    report.update(segmenter=str(segmenter_dir), synthetic_data=str(synth_dir))
    if out is not None:
        atomic_write_text(Path(out), json.dumps(report, indent=1))
    return report
