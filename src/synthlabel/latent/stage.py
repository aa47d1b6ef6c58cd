"""Labels from a latent GAN, as stages: `train_latent_labels` (the inversion encoder on every train image, then
the pixel label head on the inverted *labeled* images; also scores the head on inverted test images, a segmenter
in itself) and `sample_latent_dataset` (N latents -> images + label maps, uncertain pixels written as ignore, a
keep list without the most uncertain images). Both resumable; the sampled set is deterministic and atomic per
sample, in the input's layout with a manifest (latent seed, uncertainty)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from synthlabel import checkpoint as ckpt
from synthlabel.config import LatentLabelsConfig, SubsetConfig
from synthlabel.data import layouts, manifest
from synthlabel.data.classes import ClassSpec
from synthlabel.data.sample import to_float, to_uint8
from synthlabel.device import resolve_precision
from synthlabel.downstream.workflow import open_run, open_split, select_subset
from synthlabel.errors import DataError
from synthlabel.eval.segmentation import metrics_from_confusion
from synthlabel.generators.io import load_generator
from synthlabel.generators.sampling import seeded_noise
from synthlabel.latent.encoder import (
    LatentEncoder,
    LatentRegression,
    Reconstruction,
    generated_pairs,
    invert,
    real_images,
    refine,
)
from synthlabel.latent.head import EnsembleCrossEntropy, PixelEnsemble, pixel_batches, predict_maps
from synthlabel.runs import log, progress
from synthlabel.synth.synthesize import check_foreign_files, sample_seed, write_png
from synthlabel.train.supervised import SupervisedConfig, SupervisedTrainer

KEEP = "keep.txt"


@dataclass
class LatentLabelsResult:
    run_dir: Path
    test_miou: float | None  # the head on inverted test images, as a segmenter


def _gan(cfg: LatentLabelsConfig):
    G, meta = load_generator(cfg.gan)
    if meta["name"] != "stylegan":
        raise DataError(f"{cfg.gan}: a {meta['name']} generator, not a latent GAN (train one with train-latent-gan)")
    return G.requires_grad_(False), tuple(G.image_size)


def _loop(cfg: LatentLabelsConfig, steps: int, batch: int, lr: float, desc: str) -> SupervisedConfig:
    return SupervisedConfig(steps, batch, lr, 0.0, seed=cfg.seed, channels_last=False, desc=desc,
                            log_every=25, checkpoint_every=100)  # fmt: skip


def train_encoder(cfg: LatentLabelsConfig, run_dir: Path, G, size) -> LatentEncoder:
    """Phase 1 (latent regression on generated pairs) then phase 2 (reconstruction of every train image, labels
    never read); each phase resumable; encoder/ written at the end."""
    e = cfg.encoder
    if (run_dir / "encoder" / "config.json").is_file():
        return ckpt.load_weights(run_dir / "encoder", "model", LatentEncoder(G.w_dim, e.width, e.levels)).eval()
    precision = resolve_precision("auto", "auto")
    torch.manual_seed(cfg.seed)
    E = LatentEncoder(G.w_dim, e.width, e.levels)
    E.w_avg.copy_(G.w_avg)
    phases = [("latent", LatentRegression(), generated_pairs(G, e.batch_size), e.latent_steps)]
    data = cfg.data.model_copy(update={"subset": SubsetConfig()})  # every train image, as images
    pool = open_split(data, data.train_split).load(size, desc="load train images").images
    phases.append(("reconstruct", Reconstruction(G, e.ssim_weight), real_images(pool, e.batch_size), e.recon_steps))
    for name, task, batches, steps in phases:
        if steps == 0:
            continue
        trainer = SupervisedTrainer(E, task, batches, _loop(cfg, steps, e.batch_size, e.lr, f"encoder ({name})"),
                                    precision, state_path=run_dir / f"encoder_{name}_state.pt")  # fmt: skip
        trainer.restore()
        trainer.fit()
        E = trainer.model
    ckpt.save_model(run_dir / "encoder", "latent_encoder", {"w_dim": G.w_dim, "width": e.width, "levels": e.levels},
                    {"model": E})  # fmt: skip
    return E.eval()


def train_latent_labels(cfg: LatentLabelsConfig, run_dir: str | Path, resume: bool = False) -> LatentLabelsResult:
    """Encoder, inverted labeled images (inverted.safetensors), head/ and head_test.json in run_dir."""
    run_dir = Path(run_dir)
    G, size = _gan(cfg)
    open_run(cfg, cfg.data, run_dir, resume)
    E = train_encoder(cfg, run_dir, G, size)
    labeled = select_subset(open_split(cfg.data, cfg.data.train_split), cfg.data, run_dir).load(size)
    spec = open_split(cfg.data, cfg.data.train_split).out_spec
    if len(labeled) > 50:
        log.warning("%d labeled images: the latent-label recipe is meant for fewer than 50", len(labeled))
    inverted = run_dir / "inverted.safetensors"
    if inverted.is_file():
        ws = load_file(str(inverted))["w"]
    else:
        ws = invert(E, labeled.images)
        ws = refine(G, ws, to_float(labeled.images), cfg.encoder.refine_steps)
        with ckpt.atomic_file(inverted) as tmp:
            save_file({"w": ws.contiguous()}, str(tmp))
    h = cfg.head
    torch.manual_seed(cfg.seed)
    head = PixelEnsemble(sum(G.feature_channels), spec.num_classes, h.members, h.hidden)
    if (run_dir / "head" / "config.json").is_file():
        head = ckpt.load_weights(run_dir / "head", "model", head)
    else:
        batches = pixel_batches(G, ws, labeled.labels, spec.ignore_id, h.images_per_batch, h.pixels_per_image)
        loop = _loop(cfg, h.steps, h.images_per_batch * h.pixels_per_image, h.lr, "label head")
        precision, state = resolve_precision("auto", "auto"), run_dir / "head_state.pt"
        trainer = SupervisedTrainer(head, EnsembleCrossEntropy(spec.ignore_id), batches, loop, precision,
                                    state_path=state)  # fmt: skip
        trainer.restore()
        trainer.fit()
        head = trainer.model
        ckpt.save_model(run_dir / "head", "pixel_ensemble",
                        {"in_features": head.in_features, "num_classes": spec.num_classes, "members": h.members,
                         "hidden": h.hidden}, {"model": head}, extra={"class_spec": spec.to_json()})  # fmt: skip
    test_miou = None
    if cfg.data.test_split:
        report = head_as_segmenter(G, E, head, cfg, size, spec)
        ckpt.atomic_write_text(run_dir / "head_test.json", json.dumps(report, indent=1))
        test_miou = report["miou"]
        log.info("label head on inverted test images: mIoU %.1f", 100 * test_miou)
    return LatentLabelsResult(run_dir, test_miou)


@torch.no_grad()
def head_as_segmenter(G, E, head, cfg: LatentLabelsConfig, size, spec: ClassSpec) -> dict:
    """Invert each test image, predict its label map with the head: the test metrics of that segmenter."""
    test = open_split(cfg.data, cfg.data.test_split).load(size, desc="load test")
    k = spec.num_classes
    confusion = torch.zeros(k, k, dtype=torch.long)
    for i in progress(range(0, len(test), 8), desc="head on test"):
        ws = invert(E, test.images[i : i + 8])
        _, pred, _ = predict_maps(G, head, ws)
        target = test.labels[i : i + 8]
        valid = target != spec.ignore_id
        confusion += torch.bincount(target[valid] * k + pred[valid], minlength=k * k).view(k, k)
    metrics = metrics_from_confusion(confusion, spec.names)
    return {k: metrics[k] for k in ("miou", "per_class_iou", "pixel_accuracy")}


def sample_latent_dataset(
    run_dir: str | Path, gan: str | Path, out_dir: str | Path, n: int, seed: int = 0, ignore_quantile: float = 0.9,
    drop_fraction: float = 0.1, split: str = "train", layout: str = "camvid", batch_size: int = 8,
) -> Path:  # fmt: skip
    """N labeled pairs from latents seeded by (seed, i): image, label map (the ensemble's mean argmax) with the
    pixels whose JS divergence is above the `ignore_quantile` of a fixed calibration set written as ignore;
    manifest.jsonl (latent seed, mean uncertainty), meta.csv, classes.json; keep.txt leaves out the
    `drop_fraction` most uncertain images (written when every sample is done). Deterministic and resumable."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    G, _ = load_generator(gan)
    meta = ckpt.read_model_config(run_dir / "head")
    c = meta["config"]
    head = PixelEnsemble(c["in_features"], c["num_classes"], c["members"], c["hidden"])
    head = ckpt.load_weights(run_dir / "head", "model", head).eval()
    spec = ClassSpec.from_json(meta["class_spec"])
    lay = layouts.get(layout)
    tag = hashlib.sha256((ckpt.model_hash(gan) + ckpt.model_hash(run_dir / "head")).encode()).hexdigest()[:16]
    threshold = _calibrate(out_dir, G, head, seed, ignore_quantile, tag)
    entries = [{"file": lay.sample_paths(Path("."), split, i)[0].name, "index": i, "split": split, "layout": lay.name,
                "source": "latent", "map_index": i, "map_hash": None, "condition": None,
                "seed": sample_seed(seed, i, 0),
                "generator_hash": tag} for i in range(n)]  # fmt: skip
    check_foreign_files(out_dir, lay, split)
    done = manifest.load(out_dir, entries)
    spec.save(out_dir / "classes.json")
    todo = [e for e in entries if e["index"] not in done]
    for start in progress(range(0, len(todo), batch_size), desc="sample latent labels"):
        chunk = todo[start : start + batch_size]
        ws = G.map(seeded_noise(G.z_dim, [e["seed"] for e in chunk]))
        images, labels, unc = predict_maps(G, head, ws)
        labels = torch.where(unc > threshold, spec.ignore_id, labels)
        for e, image, label, u in zip(chunk, to_uint8(images), labels, unc, strict=True):
            image_path, mask_path = lay.sample_paths(out_dir, split, e["index"])
            image_path.parent.mkdir(parents=True, exist_ok=True)
            mask_path.parent.mkdir(parents=True, exist_ok=True)
            write_png(mask_path, lay.encode_mask(label.numpy().astype(np.uint8)))  # class ids, as synth writes
            write_png(image_path, np.ascontiguousarray(image.permute(1, 2, 0).numpy()))
            manifest.append(out_dir, {**e, "uncertainty": round(float(u.mean()), 6),
                                      "ignored": round(float((u > threshold).float().mean()), 4)})  # fmt: skip
    rows = manifest.rows(out_dir)
    manifest.write_meta_csv(out_dir, rows)
    if len(rows) == n:
        order = sorted(rows, key=lambda r: (r["uncertainty"], r["index"]))
        keep = order[: max(1, round(n * (1 - drop_fraction)))]
        ckpt.atomic_write_text(
            out_dir / KEEP, "".join(r["file"] + "\n" for r in sorted(keep, key=lambda r: r["index"]))
        )
    return out_dir


def _calibrate(out_dir: Path, G, head, seed: int, quantile: float, tag: str, count: int = 16) -> float:
    """The JS threshold: the `quantile` of the per-pixel JS over `count` fixed calibration latents (stored in
    latent_labels.json, so a resumed sampling uses the same one)."""
    path = out_dir / "latent_labels.json"
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved.get("tag") == tag and saved.get("quantile") == quantile and saved.get("seed") == seed:
            return float(saved["threshold"])
    ws = G.map(seeded_noise(G.z_dim, [sample_seed(seed, i, 1) for i in range(count)]))  # not the samples' latents
    _, _, unc = predict_maps(G, head, ws)
    threshold = float(torch.quantile(unc.flatten()[:: max(1, unc.numel() // 100_000)], quantile))
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt.atomic_write_text(path, json.dumps({"tag": tag, "quantile": quantile, "seed": seed, "threshold": threshold}))
    return threshold
