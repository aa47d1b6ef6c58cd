"""Segmenters by registered name (build, save, load) and their training as a task of the supervised trainer:
class-weighted cross-entropy, AdamW (fused) with poly decay, copy-paste and classic augmentation, real data mixed
with extra sources. Batches are a pure function of (seed, step), so a resumed run equals an uninterrupted one."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import torch

from synthlabel import checkpoint as ckpt
from synthlabel.config import SegConfig, to_dict
from synthlabel.data.classes import ClassSpec
from synthlabel.data.copy_paste import CopyPaste
from synthlabel.data.sample import TensorSet
from synthlabel.data.transforms import PairedAugment
from synthlabel.device import Precision
from synthlabel.downstream.mixing import MixedBatches, MixedSampler, Source
from synthlabel.eval.segmentation import evaluate
from synthlabel.registry import SEGMENTERS
from synthlabel.runs import Run, log, seed_everything
from synthlabel.train.supervised import Segmentation, SupervisedConfig, SupervisedTrainer


def class_weights(labels: torch.Tensor, num_classes: int, mode: str) -> torch.Tensor | None:
    """Loss weights from label frequencies, normalised so the average pixel weight is 1 (capped at 10x)."""
    if mode == "none":
        return None
    valid = labels[(labels >= 0) & (labels < num_classes)]
    freq = torch.bincount(valid.flatten(), minlength=num_classes).double()
    freq = freq / freq.sum().clamp(min=1)
    present = freq > 0
    if mode == "inv_sqrt_freq":
        w = torch.where(present, freq.clamp(min=1e-12).rsqrt(), torch.zeros_like(freq))
    elif mode == "median_freq":
        w = torch.where(present, freq[present].median() / freq.clamp(min=1e-12), torch.zeros_like(freq))
    else:
        raise ValueError(f"unknown class weighting {mode!r}")
    w = w / (w * freq).sum()
    w = w.clamp(max=10.0)
    return torch.where(present, w, w[present].max()).float()


def build_segmenter(name: str, num_classes: int, **kwargs) -> torch.nn.Module:
    return SEGMENTERS.create(name, num_classes=num_classes, **kwargs)


def model_kwargs(cfg: SegConfig) -> dict:
    """The constructor arguments of cfg.model besides its name (width, depth, dropout, norm)."""
    return {k: v for k, v in to_dict(cfg.model).items() if k != "name"}


def save_segmenter(
    directory: Path, model: torch.nn.Module, cfg: SegConfig, spec: ClassSpec, size: tuple[int, int] | None
) -> Path:
    model_cfg = {**to_dict(cfg.model), "num_classes": spec.num_classes}
    extra = {"class_spec": spec.to_json(), "size": list(size) if size else None}
    return ckpt.save_model(directory, cfg.model.name, model_cfg, {"model": model}, extra=extra)


def load_segmenter(directory: str | Path) -> tuple[torch.nn.Module, dict]:
    """Rebuild a segmenter from its model directory; returns (model in eval mode, config.json dict)."""
    meta = ckpt.read_model_config(directory)
    kwargs = {k: v for k, v in meta["config"].items() if k != "name"}
    model = ckpt.build_model(directory, SEGMENTERS, meta["name"], **kwargs)
    ckpt.load_weights(directory, "model", model)
    return model.eval(), meta


@dataclass
class TrainResult:
    model_dir: Path
    val: dict | None
    seconds: float
    steps: int


def loop_config(cfg: SegConfig) -> SupervisedConfig:
    """The supervised loop of cfg.train: its steps, batch, optimizer and intervals (the fields both configs name),
    poly decay after a linear warm-up, fused AdamW."""
    shared = {f.name for f in fields(SupervisedConfig)} & set(type(cfg.train).model_fields)
    return SupervisedConfig(
        **{k: getattr(cfg.train, k) for k in shared},
        schedule="poly",
        fused=True,
        desc="train-seg",
        extra_weight=cfg.mix.synthetic_weight,
        separate_bn=cfg.mix.separate_bn,
    )


def segmenter_trainer(
    cfg: SegConfig,
    train: TensorSet,
    spec: ClassSpec,
    precision: Precision,
    run_dir: Path,
    run: Run | None,
    val: TensorSet | None = None,
    sources: list[Source] | None = None,
) -> SupervisedTrainer:
    """The trainer of one segmenter run into run_dir (model/ + train_state.pt); `run` (rank 0 only) gets the metrics.
    sources: [real, *extra] from `mixing.build_sources` (default: the real `train` set alone)."""
    t = cfg.train
    seed_everything(t.seed)  # the initial weights are part of the run's seed
    model = build_segmenter(cfg.model.name, spec.num_classes, **model_kwargs(cfg))
    weights = class_weights(train.labels, spec.num_classes, t.class_weights)
    copy_paste = CopyPaste(train, spec, t.copy_paste) if t.copy_paste.enabled else None
    if copy_paste is not None:
        log.info("copy-paste: %d segments of %s", len(copy_paste), [spec.names[c] for c in copy_paste.class_ids])
    sampler = MixedSampler(sources or [Source("real", train)], cfg.mix, t.batch_size, t.steps, t.seed)
    a = t.augment
    augment = [PairedAugment(a.flip, a.scale, a.jitter, spec.ignore_id)] if a.enabled else []

    def validate(model: torch.nn.Module, step: int) -> dict:
        metrics = evaluate(model, val, spec, precision, desc="val")
        run.log_metrics(step, val_miou=metrics["miou"], val_pixel_accuracy=metrics["pixel_accuracy"])
        return metrics

    log.info("training %s on %d images, %d steps, %s", cfg.model.name, len(train), t.steps, precision.describe())
    return SupervisedTrainer(
        model,
        Segmentation(spec.ignore_id, weights),
        MixedBatches(sampler, copy_paste),
        loop_config(cfg),
        precision,
        augment=augment,
        validate=validate if val is not None and len(val) > 0 else None,
        run=run,
        state_path=run_dir / "train_state.pt",
        save_model=lambda model: save_segmenter(run_dir / "model", model, cfg, spec, cfg.data.size),
    )
