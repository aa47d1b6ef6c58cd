"""Synthesis: render label maps with a trained generator under chosen conditions into a dataset on disk, in the
layout of the real data, with `classes.json`, `meta.csv` and `manifest.jsonl`. Deterministic and resumable."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image
from pydantic import Field

from synthlabel import checkpoint as ckpt
from synthlabel import distributed
from synthlabel.config import Strict
from synthlabel.data import layouts, manifest
from synthlabel.data.classes import ClassSpec
from synthlabel.data.datasets import SegDataset
from synthlabel.data.layouts import Layout
from synthlabel.data.sample import to_uint8
from synthlabel.device import resolve_device
from synthlabel.errors import DataError
from synthlabel.generators.io import generator_spec, load_generator
from synthlabel.generators.sampling import render, seeded_noise
from synthlabel.runs import log, progress
from synthlabel.synth.recompose import Recomposed
from synthlabel.synth.segments import check_label_map


class SynthesizeConfig(Strict):
    """`synthesize` options: which maps, which conditions, how many renders, where and how to write them."""

    generator: str = "runs/generator/model"
    maps: Literal["original", "recomposed", "both"] = "original"
    conditions: list[str] = Field(default_factory=list)  # empty = unconditioned; ["own"] = each map's own condition
    k: int = Field(1, ge=1)  # renders per (label map, condition)
    seed: int = 0
    layout: Literal["camvid", "folders", "cityscapes"] = "camvid"
    split: str = "train"
    batch_size: int = Field(8, ge=1)


OWN = "own"  # conditions=["own"]: render each map under its own image's condition


@dataclass(frozen=True)
class LabelSource:
    """One label map to render [H, W] int64, the name of the real map it came from and the ops that made it."""

    label_map: np.ndarray
    source: str
    ops: list[dict] = field(default_factory=list)
    condition: str | None = None  # the condition of the real image the map came from (used by conditions ["own"])


@dataclass(frozen=True)
class _Planned:
    """One sample of the plan: render `j` of map `map_index` under `condition` (None = unconditioned)."""

    index: int
    map_index: int
    condition: str | None
    condition_id: int | None
    j: int
    seed: int


def label_sources_from_dataset(dataset: SegDataset) -> list[LabelSource]:
    """The real label maps of a split, at native size, named by their image file."""
    return [
        LabelSource(dataset.read_label(i), rec.image.name, condition=rec.meta.get("condition") or None)
        for i, rec in enumerate(dataset.records)
    ]


def label_sources_from_recomposed(recomposed: Sequence[Recomposed], dataset: SegDataset) -> list[LabelSource]:
    """Recomposed maps; `dataset` must be the split whose label maps (in record order) were given to `recompose`."""
    out = []
    for item in recomposed:
        if not 0 <= item.source < len(dataset):
            raise DataError(
                f"recomposed map names source {item.source} but split '{dataset.split}' of {dataset.root} has "
                f"{len(dataset)} maps; pass the dataset whose label maps were recomposed"
            )
        rec = dataset.records[item.source]
        out.append(LabelSource(item.label_map, rec.image.name, list(item.ops), rec.meta.get("condition") or None))
    return out


def sample_seed(seed: int, map_index: int, j: int) -> int:
    """Seed of the noise of render `j` of map `map_index`. The condition is left out on purpose: the renders of one
    map under different conditions share their noise, so they differ by the condition only."""
    return int(np.random.SeedSequence([seed, map_index, j]).generate_state(1)[0])


def synthesize(
    generator_dir: str | Path,
    label_maps: Sequence[LabelSource],
    out_dir: str | Path,
    conditions: Sequence[str],
    k: int | Sequence[int],
    seed: int,
    layout: str = "camvid",
    split: str = "train",
    batch_size: int = 8,
    device: str = "auto",
    on_sample: Callable[[int], None] | None = None,
) -> Path:
    """Render every map under every condition `k` times (z differs per render) into `out_dir`; returns `out_dir`.
    `k` may also be one count per map (hard-map resampling, `synth.hardness.render_counts`).

    Sample `index` = (map, condition, j) in that nesting order. Each sample is written mask first, image second
    (each atomically) and counts as done once its manifest line is appended; a re-run skips done samples and
    rewrites any leftovers. Work is done in fixed blocks of `batch_size` samples, so a resumed run writes the same
    bytes as an uninterrupted one. `on_sample(index)` is called after each finished sample. Empty `conditions`
    renders unconditioned; `["own"]` renders each map under the condition of the real image it came from.
    Under torchrun the blocks are dealt out to the ranks; a sample depends only on its map, condition and seed, so
    the files written are the same for any world size."""
    if not label_maps:
        raise DataError("synthesize needs at least one label map")
    counts = [k] * len(label_maps) if isinstance(k, int) else [int(c) for c in k]
    if len(counts) != len(label_maps) or min(counts) < 1 or batch_size < 1:
        raise ValueError(
            f"k must be >= 1 (one int, or one count per map: {len(label_maps)}) and batch_size >= 1, "
            f"got k={k if isinstance(k, int) else f'{len(counts)} counts, min {min(counts, default=0)}'}, "
            f"batch_size={batch_size}"
        )
    out_dir, dev, lay = Path(out_dir), resolve_device(device), layouts.get(layout)
    distributed.init(dev)
    generator, meta = load_generator(generator_dir)
    if "label_map" not in generator.conditioning:
        raise DataError(
            f"{generator_dir}: a {meta['name']!r} generator is conditioned on {generator.conditioning}, not on label "
            "maps; synthesize renders label maps with a label map -> image generator (train-gen)"
        )
    spec = generator_spec(meta)
    maps = [_fit_map(s.label_map, generator.image_size, spec, s.source) for s in label_maps]
    plan = _plan(_map_conditions(conditions, label_maps, meta, generator_dir), counts, seed)
    record = {"generator": str(generator_dir), "generator_hash": ckpt.model_hash(generator_dir), "run_seed": seed}
    entries = [_entry(p, label_maps[p.map_index], maps[p.map_index], lay, split, record) for p in plan]
    done = distributed.broadcast_object(_prepare(out_dir, spec, plan, entries, lay) if distributed.is_main() else None)
    generator.to(distributed.local_device(dev))
    blocks = [plan[i : i + batch_size] for i in range(0, len(plan), batch_size)]
    todo = distributed.shard([b for b in blocks if any(p.index not in done for p in b)])
    log.info("synthesize: %d samples (%d done) into %s", len(plan), len(done), out_dir)
    try:
        for block in progress(todo, desc="synthesize", total=len(todo)):
            images, masks = _render(generator, block, maps, spec)  # [B, H, W, 3] uint8, [B, H, W] ids
            for p, image, mask in zip(block, images, masks, strict=True):
                if p.index not in done:
                    _write_sample(out_dir, lay, entries[p.index], mask, image)
                    if on_sample is not None:
                        on_sample(p.index)
        distributed.barrier()
    finally:
        if distributed.is_main():  # the manifest (every rank's lines) in index order, and meta.csv from it
            manifest.write_meta_csv(out_dir, [entries[i] for i in sorted(manifest.load(out_dir, entries))])
    return out_dir


def _prepare(out_dir: Path, spec: ClassSpec, plan: list[_Planned], entries: list[dict], layout: Layout) -> set[int]:
    """Check and set up `out_dir` (rank 0 only): no foreign files, the manifest of an earlier run of this plan,
    classes.json and meta.csv. Returns the indices of the samples already done."""
    check_foreign_files(out_dir, layout, entries[0]["split"])
    done = manifest.load(out_dir, entries)
    _write_spec(out_dir, spec, sorted({p.condition for p in plan if p.condition}), layout)
    manifest.write_meta_csv(out_dir, [entries[i] for i in sorted(done)])
    return done


def synthesize_from_config(
    cfg: SynthesizeConfig,
    dataset: SegDataset,
    out_dir: str | Path,
    recomposed: Sequence[Recomposed] | None = None,
    counts: Sequence[int] | None = None,
) -> Path:
    """`synthesize` with the maps picked by `cfg.maps` from `dataset` (real maps) and `recomposed` (made from them);
    `counts`: renders per real map instead of cfg.k (hard-map resampling; maps 'original' only)."""
    sources: list[LabelSource] = []
    if cfg.maps in ("original", "both"):
        sources += label_sources_from_dataset(dataset)
    if cfg.maps in ("recomposed", "both"):
        if not recomposed:
            raise DataError(f"maps={cfg.maps!r} needs recomposed label maps; run recompose first or use 'original'")
        sources += label_sources_from_recomposed(recomposed, dataset)
    if counts is not None and cfg.maps != "original":
        raise DataError("per-map render counts (hard-map resampling) apply to maps 'original' only")
    k = cfg.k if counts is None else list(counts)
    return synthesize(
        cfg.generator, sources, out_dir, cfg.conditions, k, cfg.seed, cfg.layout, cfg.split, cfg.batch_size
    )


def _write_sample(out_dir: Path, layout: Layout, entry: dict, label_map: np.ndarray, image: np.ndarray) -> None:
    """Mask, then image (each atomically), then the manifest line and meta row that mark the sample done."""
    image_path, mask_path = layout.sample_paths(out_dir, entry["split"], entry["index"])
    write_png(mask_path, layout.encode_mask(label_map))
    write_png(image_path, image)
    manifest.append(out_dir, entry)


def _fit_map(label_map: np.ndarray, size: tuple[int, int], spec: ClassSpec, source: str) -> np.ndarray:
    """The map at the generator's size (nearest), checked against the spec; this is what is written as the mask."""
    if spec.ignore_index is not None and spec.ignore_index > 255:
        raise DataError(f"ignore index {spec.ignore_index} does not fit an 8-bit mask; use 255")
    label_map = check_label_map(label_map, spec, source)
    if label_map.shape != tuple(size):
        resized = Image.fromarray(label_map.astype(np.uint8)).resize((size[1], size[0]), Image.NEAREST)
        label_map = np.asarray(resized)
    return label_map.astype(np.int64)


def _map_conditions(
    conditions: Sequence[str], label_maps: Sequence[LabelSource], meta: dict, generator_dir
) -> list[list[tuple[str | None, int | None]]]:
    """Per map, the (condition, id in the generator's condition list) pairs to render it under; [(None, None)]
    renders unconditioned. ["own"]: the map's own condition (none when the generator knows no conditions)."""
    known = list(meta.get("conditions") or [])
    if list(conditions) != [OWN]:
        per_map = [list(conditions)] * len(label_maps)
    elif not known:
        per_map = [[]] * len(label_maps)
    else:
        missing = [s.source for s in label_maps if s.condition is None]
        if missing:
            raise DataError(
                f"conditions ['own'] needs each map's condition, but {missing[:3]} have none (meta.csv); "
                "name conditions"
            )
        per_map = [[s.condition] for s in label_maps]
    unknown = list(dict.fromkeys(c for names in per_map for c in names if c not in known))
    if unknown:
        raise DataError(
            f"{generator_dir}: the generator does not know conditions {unknown} "
            f"(it was trained on {known or 'none'}); choose among them"
        )
    if len(set(conditions)) != len(conditions):
        raise DataError(f"conditions {list(conditions)} list a condition twice")
    return [[(c, known.index(c)) for c in names] or [(None, None)] for names in per_map]


def _plan(per_map: list[list[tuple[str | None, int | None]]], counts: list[int], seed: int) -> list[_Planned]:
    plan: list[_Planned] = []
    for m, conditions in enumerate(per_map):
        for name, cid in conditions:
            for j in range(counts[m]):
                plan.append(_Planned(len(plan), m, name, cid, j, sample_seed(seed, m, j)))
    return plan


def _entry(p: _Planned, src: LabelSource, label_map: np.ndarray, layout: Layout, split: str, record: dict) -> dict:
    """The manifest line of a planned sample (also used to check that a re-run continues the same synthesis)."""
    return {
        "file": layout.sample_paths(Path("."), split, p.index)[0].name,
        "index": p.index,
        "split": split,
        "layout": layout.name,
        "source": src.source,
        "map_index": p.map_index,
        "map_hash": hashlib.sha256(np.ascontiguousarray(label_map, np.int64).tobytes()).hexdigest()[:16],
        "ops": src.ops,
        "condition": p.condition,
        "render": p.j,
        "seed": p.seed,
        **record,
    }


def check_foreign_files(out_dir: Path, layout: Layout, split: str) -> None:
    """Refuse to write into image or mask folders that hold files synthesis did not write (e.g. the real data)."""
    for folder in (p.parent for p in layout.sample_paths(out_dir, split, 0)):
        names = [f.name for f in folder.iterdir()] if folder.is_dir() else []
        foreign = [n for n in names if not n.startswith(("synth_", "."))]
        if foreign:
            raise DataError(
                f"{folder}: holds files synthesis did not write (first: {foreign[0]}); "
                "synthesize into an empty folder, never into a real dataset"
            )


def _write_spec(out_dir: Path, spec: ClassSpec, conditions: Sequence[str], layout: Layout) -> None:
    """classes.json: the generator's class spec, with the rendered conditions allowed."""
    layout.check_spec(spec)
    merged = tuple(dict.fromkeys([*spec.conditions, *conditions]))
    spec = replace(spec, conditions=merged if spec.conditions else ())
    spec.save(out_dir / "classes.json")


def _render(generator: torch.nn.Module, block: list[_Planned], maps: list[np.ndarray], spec: ClassSpec):
    """(images [B, H, W, 3] uint8, label maps [B, H, W] ids) of one block, as the generator returns them; each
    sample's noise comes from its own seed, so a sample does not depend on the block it is rendered in."""
    labels = torch.from_numpy(np.stack([maps[p.map_index] for p in block]))  # [B, H, W]
    condition = torch.tensor([-1 if p.condition_id is None else p.condition_id for p in block])
    z = seeded_noise(generator.z_dim, [p.seed for p in block])
    out = render(generator, z, labels, condition, ignore_index=spec.ignore_id)
    return to_uint8(out.images).permute(0, 2, 3, 1).numpy(), out.label_maps.numpy()


def write_png(path: Path, array: np.ndarray) -> None:
    """Encode in memory, then temp file + rename: a killed run never leaves a truncated PNG under the real name."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    ckpt.atomic_write_bytes(path, buffer.getvalue())
