"""Benchmark: label map -> image generators (spade, pix2pix) on CamVid at 96x128, trained on all 367 train images and
on the N=50 low-shot subset. Measures label fidelity (a real-trained segmenter on the renders vs on real test images,
overall and per class), diversity, near-copy rate, condition fidelity (day maps rendered as dusk), training time,
generation throughput, and writes sample grids.

Resumable like camvid_lowshot: each finished arm writes benchmarks/results/camvid_label2image/<arm>.json and is
skipped on re-run; a generator killed mid-training resumes from benchmarks/cache/camvid_label2image/<arm>/.

    python benchmarks/camvid_label2image.py --quick     # spade, N=all, 300 steps
    python benchmarks/camvid_label2image.py             # full profile: {spade, pix2pix} x N in {all, 50}
    python benchmarks/camvid_label2image.py --generators spade --ns all --set model.discriminator.name=oasis \
        train.keep_models=true                          # one variant, with its fidelity-over-training-time curve

Full profile on 2 CPU cores: per arm at most ~45 min of training (STEPS) and ~3-5 min of evaluation, about 3.5 h for
the four arms, plus ~10 min for the reference segmenter unless camvid_lowshot's N=all arm has finished.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from camvid_lowshot import arm_config, selected_overrides
from common import REPO, SHARED_CAMVID, cached, machine, save_result
from PIL import Image

from synthlabel.checkpoint import atomic_write_text
from synthlabel.config import GenConfig, build_config
from synthlabel.data.classes import ClassSpec
from synthlabel.data.datasets import SegDataset, open_dataset
from synthlabel.data.sample import to_uint8
from synthlabel.downstream.workflow import fidelity_report, open_split, select_subset, train_segmenter
from synthlabel.errors import DataError
from synthlabel.eval.generator_metrics import (
    ConditionClassifier,
    ConditionClassifierConfig,
    condition_fidelity,
    diversity,
    memorization,
    train_condition_classifier_on,
)
from synthlabel.generators.io import generator_spec, load_generator
from synthlabel.generators.sampling import render, seeded_noise
from synthlabel.generators.workflow import train_generator
from synthlabel.runs import setup_logging
from synthlabel.synth.checkpoints import kept_models
from synthlabel.synth.synthesize import label_sources_from_dataset, synthesize
from synthlabel.tables import MISSING, fmt_pct, markdown_table

SIZE = (96, 128)
# Generator steps that fit ~45 min (2700 s) of training per arm on 2 CPU cores. Measured at batch 4 with 1 thread on a
# machine busy with another benchmark: spade 1.49 s/step, pix2pix 0.34 s/step; those figures are taken as the 2-core
# speed, so the second core (and the missing load) is the safety margin: 2700 / 1.49 -> 1800, 2700 / 0.34 -> 7500.
STEPS = {"spade": 1800, "pix2pix": 7500}
QUICK_STEPS = 300
TARGET = 0.8  # fidelity ratio wanted from the all-data generator (pix2pixHD on Cityscapes: about 0.93)
RARE = ("Pole", "SignSymbol", "Fence", "Pedestrian", "Bicyclist")
DAY, DUSK = "day", "dusk"
CONDITION_MAPS = 64  # test day label maps rendered as dusk and as day
DIVERSITY_MAPS, DIVERSITY_K = 32, 3
GRID_ROWS, GRID_MAX_BYTES = 4, 480_000
SYNTH_BATCH = 16
LOWSHOT_RESULTS = REPO / "benchmarks" / "results" / "camvid_lowshot"
LOWSHOT_ARM = REPO / "benchmarks" / "cache" / "camvid_lowshot" / "nall_augon_s0"


@dataclass
class Bench:
    """What every arm shares: the real test split, its day label maps, the reference segmenter, the classifier."""

    out: Path
    cache: Path
    test: SegDataset
    day_index: list[int]  # test images rendered for condition fidelity and throughput
    day_maps: torch.Tensor  # [M, H, W] int64, their label maps at SIZE
    segmenter_dir: Path
    classifier: ConditionClassifier


def pick(dataset: SegDataset, condition: str, count: int) -> list[int]:
    """Up to `count` indices of images with `condition`, evenly spaced over the split."""
    index = [i for i, r in enumerate(dataset.records) if r.meta.get("condition") == condition]
    if not index:
        raise DataError(f"{dataset.root}: split '{dataset.split}' has no '{condition}' images; check its meta.csv")
    take = np.linspace(0, len(index) - 1, min(count, len(index))).round().astype(int)
    return [index[i] for i in take]


def reference_segmenter(data: Path, out: Path, cache: Path, seg_steps: int | None) -> dict:
    """The real-data segmenter whose test mIoU is the denominator of fidelity: the camvid_lowshot N=all, aug-on,
    seed-0 arm once that has finished on this data, else the same settings trained here (resumable)."""
    name = "segmenter" if seg_steps is None else f"segmenter_{seg_steps}st"
    if (done := cached(out / f"{name}.json")) is not None and Path(done["model_dir"]).is_dir():
        return done  # the first choice sticks, so every arm of a re-run has the same denominator
    lowshot, model = cached(LOWSHOT_RESULTS / "nall_augon_s0.json"), LOWSHOT_ARM / "model"
    same_data = lowshot is not None and Path(lowshot["config"]["data"]["path"]).resolve() == data.resolve()
    if seg_steps is None and same_data and (model / "config.json").is_file():
        result = {"model_dir": str(model), "source": "camvid_lowshot nall_augon_s0", "steps": lowshot["steps"]}
        save_result(out / f"{name}.json", result)
        return result
    chosen, best = selected_overrides(LOWSHOT_RESULTS / "tune")
    cfg = arm_config(data, None, True, 0, chosen + ([f"train.steps={seg_steps}"] if seg_steps else []))
    run_dir = cache / name
    train = train_segmenter(cfg, run_dir, resume=(run_dir / "config.yaml").exists())
    result = {
        "model_dir": str(train.model_dir),
        "source": f"trained here with camvid_lowshot's N=all aug-on settings ({best})",
        "steps": train.steps,
        "train_seconds": round(train.seconds, 1),
        "config": cfg.model_dump(mode="json"),
    }
    save_result(out / f"{name}.json", result)
    return result


def condition_classifier(data: Path, out: Path, cache: Path, steps: int) -> tuple[ConditionClassifier, dict]:
    """Day-vs-dusk classifier trained on the real train images (cached), with its accuracy per condition on the
    real test images: the ceiling condition fidelity can reach."""
    name = f"condition_classifier_{steps}st"
    if (cache / name / "config.json").is_file():
        classifier = ConditionClassifier.load(cache / name)
    else:
        classifier = train_condition_classifier_on(open_dataset(data, "train"), ConditionClassifierConfig(steps=steps))
        classifier.save(cache / name)
    if (info := cached(out / f"{name}.json")) is None:
        test = open_dataset(data, "test")
        accuracy = {}
        for c in classifier.conditions:
            images = test.subset(pick(test, c, len(test))).load(classifier.size, desc=f"load test {c}").images
            accuracy[c] = condition_fidelity(classifier, images, c)
        info = {"steps": steps, "conditions": classifier.conditions, "real_test_accuracy": accuracy}
        save_result(out / f"{name}.json", info)
    return classifier, info


def generator_config(data: Path, generator: str, n: int | None, steps: int, extra: list[str]) -> GenConfig:
    """Subset seed 0: the N=50 arm trains on the same 50 images as camvid_lowshot's N=50 seed-0 arms."""
    base = {"data": {"path": str(data), "size": list(SIZE), "subset": {"n": n, "seed": 0}}}
    overrides = [f"model.name={generator}", f"train.steps={steps}", "train.seed=0"] + extra
    return build_config(GenConfig, base, overrides)


def train_arm(cfg: GenConfig, run_dir: Path) -> dict:
    """Train (or resume) a generator. Training time survives resumes: it is summed from the logged step times."""
    resumed = (run_dir / "config.yaml").exists()
    result = train_generator(cfg, run_dir, resume=resumed)
    step_seconds = max(training_seconds(run_dir).values(), default=0.0)
    return {
        "model_dir": str(result.model_dir),
        "steps": result.steps,
        "resumed": resumed,
        "train_seconds": round(step_seconds if resumed else result.seconds, 1),
        "sec_per_step": round(step_seconds / max(result.steps, 1), 3),
        "ada_p": result.ada_p,
    }


def synthesize_own_conditions(generator_dir: Path, maps: SegDataset, out: Path) -> Path:
    """Render each map once under its own condition (from meta) into one dataset, out/synth."""
    sources = label_sources_from_dataset(maps)
    return synthesize(generator_dir, sources, out / "synth", ["own"], 1, 0, batch_size=SYNTH_BATCH)


def render_batched(
    generator: torch.nn.Module, label_maps: torch.Tensor, spec: ClassSpec, condition: int, seeds: list[int]
) -> torch.Tensor:  # [N, 3, H, W] float in [-1, 1]
    """`render` of label maps [N, H, W] under one condition id, SYNTH_BATCH maps at a time."""
    z, condition_ids = seeded_noise(generator.z_dim, seeds), torch.full((len(label_maps),), condition)
    return render(generator, z, label_maps, condition_ids, spec.ignore_index, SYNTH_BATCH).images


def _conditions(meta: dict, generator_dir: Path) -> list[str]:
    known = list(meta.get("conditions") or [])
    if DAY not in known or DUSK not in known:
        raise DataError(f"{generator_dir}: the generator knows conditions {known}; this benchmark needs {DAY}, {DUSK}")
    return known


def condition_and_diversity(generator_dir: Path, bench: Bench) -> dict:
    """Condition fidelity of the test day maps rendered as dusk (and as day: the control), and the diversity of
    DIVERSITY_K renders (different z) of the first DIVERSITY_MAPS of them under day."""
    generator, meta = load_generator(generator_dir)
    spec, known = generator_spec(meta), _conditions(meta, generator_dir)
    maps = bench.day_maps
    seeds = list(range(len(maps)))  # the same z for both conditions: the renders differ by the condition only
    as_dusk = render_batched(generator, maps, spec, known.index(DUSK), seeds)
    as_day = render_batched(generator, maps, spec, known.index(DAY), seeds)
    few = maps[:DIVERSITY_MAPS]
    k_seeds = [10_000 + i for i in range(len(few) * DIVERSITY_K)]
    renders = render_batched(generator, few.repeat_interleave(DIVERSITY_K, 0), spec, known.index(DAY), k_seeds)
    return {
        "condition": {
            "dusk": condition_fidelity(bench.classifier, as_dusk, DUSK),
            "day_control": condition_fidelity(bench.classifier, as_day, DAY),
            "maps": len(maps),
        },
        "diversity": {
            "value": diversity(renders.reshape(len(few), DIVERSITY_K, *renders.shape[1:])),
            "maps": len(few),
            "k": DIVERSITY_K,
        },
    }


def throughput(generator_dir: Path, bench: Bench, scratch: Path) -> dict:
    """Labeled samples per second of `synthesize` (load, render, write image + mask PNGs, manifest), the test day
    maps under day and dusk, into a fresh folder."""
    sources = label_sources_from_dataset(bench.test.subset(bench.day_index))
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        start = time.perf_counter()
        synthesize(generator_dir, sources, Path(tmp), [DAY, DUSK], 1, 0, batch_size=SYNTH_BATCH)
        seconds = time.perf_counter() - start
    samples = 2 * len(sources)
    return {"samples": samples, "seconds": round(seconds, 2), "samples_per_s": samples / seconds}


def _fidelity(report: dict, maps: int) -> dict:
    return {
        "ratio": report["fidelity"],
        "synthetic_miou": report["synthetic_miou"],
        "real_miou": report["real_miou"],
        "per_class": report["per_class_fidelity"],
        "per_condition_miou": report["per_condition_miou"],
        "synthetic_per_class_iou": report["synthetic"]["per_class_iou"],
        "real_per_class_iou": report["real"]["per_class_iou"],
        "maps": maps,
    }


def evaluate_arm(generator_dir: Path, cfg: GenConfig, bench: Bench, eval_dir: Path) -> dict:
    """Fidelity of the renders of the test maps (pix2pixHD's protocol: neither the generator nor the segmenter has
    seen them) and of the arm's own train maps, the train renders' near-copy rate against the arm's training
    images, condition fidelity, diversity and throughput."""
    maps = select_subset(open_split(cfg.data, cfg.data.train_split), cfg.data)
    synth_dir = synthesize_own_conditions(generator_dir, maps, eval_dir)
    train_report = fidelity_report(bench.segmenter_dir, synth_dir, bench.test, out=eval_dir / "fidelity.json")
    test_dir = synthesize_own_conditions(generator_dir, bench.test, eval_dir / "test_maps")
    test_report = fidelity_report(bench.segmenter_dir, test_dir, bench.test, out=eval_dir / "fidelity_test.json")
    renders = open_dataset(synth_dir, "train").load(SIZE, desc="load renders").images
    near = memorization(renders, maps.load(SIZE, desc="load train").images)
    keys = ("near_copy_rate", "threshold", "train_nn_percentile", "median_nn_distance")
    memo = {**{k: near[k] for k in keys}, "renders": len(renders), "training_images": len(maps)}
    return {
        "fidelity": _fidelity(test_report, len(bench.test)),
        "fidelity_train_maps": _fidelity(train_report, len(renders)),
        "memorization": memo,
        **condition_and_diversity(generator_dir, bench),
        "throughput": throughput(generator_dir, bench, eval_dir),
    }


def training_seconds(run_dir: Path) -> dict[int, float]:
    """{step: training seconds up to it} from the logged step times of a generator run."""
    out, total, last = {}, 0.0, 0
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line) if line.strip() else {}
        if "sec_per_step" in row:
            total += row["sec_per_step"] * (row["step"] - last)
            last = row["step"]
            out[last] = total
    return out


def fidelity_curve(run_dir: Path, bench: Bench, eval_dir: Path) -> list[dict]:
    """Test-map label fidelity (overall and of the thin classes) and diversity of every model kept during training
    (train.keep_models), against training time: the fidelity-over-training-time curve."""
    seconds = training_seconds(run_dir)
    points = []
    for step, model in kept_models(run_dir).items():
        cell = eval_dir / f"curve_step_{step:06d}"
        report = fidelity_report(bench.segmenter_dir, synthesize_own_conditions(model, bench.test, cell), bench.test)
        thin = {c: report["per_class_fidelity"].get(c) for c in ("Pole", "Pedestrian", "Bicyclist")}
        div = condition_and_diversity(model, bench)["diversity"]["value"]
        at = max((s for s in seconds if s <= step), default=0)
        points.append({"step": step, "train_seconds": round(seconds.get(at, 0.0), 1), "fidelity": report["fidelity"],
                       "thin": thin, "diversity": div})  # fmt: skip
        print(f"  step {step}: fidelity {_num(report['fidelity'])}, diversity {_num(div)}")
    return points


def run_arm(name: str, cfg: GenConfig, bench: Bench) -> dict:
    result_path = bench.out / f"{name}.json"
    if (done := cached(result_path)) is not None and "fidelity_train_maps" in done:
        print(f"[cached] {name}: fidelity {_num(done['fidelity']['ratio'])}")
        return done
    run_dir, start = bench.cache / name, time.monotonic()  # (a result without test-map fidelity is re-evaluated)
    train = train_arm(cfg, run_dir)
    result = {
        "arm": name,
        "generator": cfg.model.name,
        "n": cfg.data.subset.n,
        "steps": cfg.train.steps,
        "config": cfg.model_dump(mode="json"),
        "segmenter": str(bench.segmenter_dir),
        "train": train,
        **evaluate_arm(Path(train["model_dir"]), cfg, bench, run_dir / "eval"),
        "wall_seconds": round(time.monotonic() - start, 1),
    }
    if cfg.train.keep_models:  # --set train.keep_models=true: fidelity over training time
        result["fidelity_curve"] = fidelity_curve(run_dir, bench, run_dir / "eval")
    save_result(result_path, result)
    print(f"[done] {name}: fidelity {_num(result['fidelity']['ratio'])} ({result['wall_seconds']:.0f}s)")
    return result


def write_grid(path: Path, test: SegDataset, generators: dict[str, Path]) -> Path:
    """Rows: test label maps (half day, half dusk); columns: label | real | per generator a day and a dusk render.
    PNG, palette-quantized when it would exceed GRID_MAX_BYTES."""
    index = pick(test, DAY, GRID_ROWS // 2) + pick(test, DUSK, GRID_ROWS - GRID_ROWS // 2)
    data = test.subset(index).load(SIZE, desc="load grid maps")
    pairs = zip(data.labels, data.images, strict=True)
    tiles = [[test.out_spec.colorize(label.numpy()), image.permute(1, 2, 0).numpy()] for label, image in pairs]
    for generator_dir in generators.values():
        generator, meta = load_generator(generator_dir)
        spec, known = generator_spec(meta), _conditions(meta, generator_dir)
        for condition in (DAY, DUSK):
            seeds = list(range(len(index)))
            fake = to_uint8(render_batched(generator, data.labels, spec, known.index(condition), seeds))
            for row, image in zip(tiles, fake, strict=True):
                row.append(image.permute(1, 2, 0).numpy())
    _write_png(path, _compose(tiles))
    return path


def _compose(tiles: list[list[np.ndarray]], gap: int = 2) -> np.ndarray:
    h, w = tiles[0][0].shape[:2]
    grid = np.full((len(tiles) * (h + gap) - gap, len(tiles[0]) * (w + gap) - gap, 3), 255, np.uint8)
    for r, row in enumerate(tiles):
        for c, tile in enumerate(row):
            grid[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = tile
    return grid


def _write_png(path: Path, grid: np.ndarray) -> None:
    buffer = io.BytesIO()
    Image.fromarray(grid).save(buffer, format="PNG", optimize=True)
    if buffer.tell() > GRID_MAX_BYTES:
        buffer = io.BytesIO()
        Image.fromarray(grid).quantize(256).save(buffer, format="PNG", optimize=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")  # not mkstemp: its 0600 mode would stick to the grid
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, path)


def _num(x: float | None, digits: int = 2) -> str:
    return MISSING if x is None else f"{x:.{digits}f}"


def _row(r: dict) -> list:
    f, c = r["fidelity"], r["condition"]
    train_maps = _num(r["fidelity_train_maps"]["ratio"])
    head = [r["generator"], r["n"] or "all", r["steps"], _num(r["train"]["train_seconds"] / 60, 1), _num(f["ratio"])]
    head.append(train_maps)
    miou = [fmt_pct(f["synthetic_miou"]), fmt_pct(f["real_miou"])] + [_num(f["per_class"].get(k)) for k in RARE]
    condition = f"{fmt_pct(c['dusk'])} ({fmt_pct(c['day_control'])})"
    memo, speed = fmt_pct(r["memorization"]["near_copy_rate"]), _num(r["throughput"]["samples_per_s"], 1)
    return head + miou + [_num(r["diversity"]["value"], 3), memo, condition, speed]


HEADERS = (
    ["generator", "N", "steps", "train min", "fidelity", "fid. (train maps)", "synth mIoU %", "real mIoU %"]
    + [f"{c} fid." for c in RARE]
    + ["diversity", "near-copy %", "dusk cond. % (day ctrl)", "samples/s"]
)


def _notes(results: list[dict], segmenter: dict, classifier: dict, grids: list[Path]) -> list[str]:
    lines = []
    for r in results:
        if r["n"] is None:
            ratio, ok = r["fidelity"]["ratio"], (r["fidelity"]["ratio"] or 0) >= TARGET
            lines.append(
                f"- target fidelity >= {TARGET} with all data: {r['generator']} {_num(ratio)} "
                f"({'met' if ok else 'not met'}; published: pix2pixHD on Cityscapes about 0.93)"
            )
    flat = sorted({r["generator"] for r in results if r["diversity"]["value"] == 0})
    if flat:
        lines.append(f"- diversity 0 ({', '.join(flat)}): renders ignore z; pix2pix has none by default (z_dim 0)")
    acc = ", ".join(f"{c} {fmt_pct(a)}%" for c, a in classifier["real_test_accuracy"].items())
    lines += [
        f"- reference segmenter: {segmenter['source']} ({segmenter['model_dir']}); real mIoU = its test mIoU",
        f"- condition classifier ({classifier['steps']} steps) on real test images: {acc}",
        "- fidelity = the reference segmenter's mIoU on renders of the 233 test label maps (each under its own "
        "condition) / its mIoU on the real test images (pix2pixHD's protocol: neither network saw these maps); "
        "per-class columns are the same ratio per class; fid. (train maps): the same with the arm's own train maps "
        "rendered (those scenes are familiar to the segmenter, so it reads higher)",
        f"- diversity: mean L1 ([-1, 1] units, images at <= 32 px) between {DIVERSITY_K} renders of "
        f"{DIVERSITY_MAPS} test day maps; near-copy: renders of the train maps closer to a training image than "
        "half the 5th-percentile real-pair distance",
        f"- dusk cond.: share of {CONDITION_MAPS} test day maps rendered as dusk that the classifier calls dusk; "
        "day ctrl: the same maps rendered as day, called day",
        "- samples/s: `synthesize` end to end (render + image/mask PNGs) at 96x128",
        f"- grids ({', '.join(p.name for p in grids)}): rows = test maps (day, day, dusk, dusk); columns = label | "
        "real | per generator a day render and a dusk render",
    ]
    return lines


def summarize(results: list[dict], out: Path, segmenter: dict, classifier: dict, grids: list[Path]) -> str:
    title = "CamVid label -> image generators, 96x128"
    table = markdown_table(HEADERS, [_row(r) for r in results])
    notes = _notes(results, segmenter, classifier, grids)
    m = machine()
    footer = f"machine: {m['cpu']}, {m['threads']} threads, {m['device']}, torch {m['torch']}"
    atomic_write_text(out / "summary.md", f"### {title}\n\n{table}\n\n" + "\n".join(notes) + f"\n\n{footer}\n")
    compact = [{k: v for k, v in r.items() if k != "config"} for r in results]
    summary = {
        "title": title,
        "machine": m,
        "reference_segmenter": {k: v for k, v in segmenter.items() if k != "config"},
        "condition_classifier": classifier,
        "grids": [p.name for p in grids],
        "arms": compact,
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    return table + "\n\n" + "\n".join(notes)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=SHARED_CAMVID)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "camvid_label2image")
    p.add_argument("--cache", type=Path, default=REPO / "benchmarks" / "cache" / "camvid_label2image")
    p.add_argument("--generators", default="spade,pix2pix")
    p.add_argument("--ns", default="all,50")
    p.add_argument("--steps", type=int, help=f"generator steps (default per generator: {STEPS})")
    p.add_argument("--quick", action="store_true", help=f"spade, N=all, {QUICK_STEPS} steps")
    p.add_argument("--seg-steps", type=int, help="train the reference segmenter with this many steps (smoke runs)")
    p.add_argument("--clf-steps", type=int, default=300, help="condition classifier steps")
    p.add_argument("--set", nargs="*", default=[], help="extra GenConfig overrides, e.g. train.batch_size=8")
    args = p.parse_args(argv)
    unknown = [g for g in args.generators.split(",") if g not in STEPS]
    if unknown and args.steps is None and not args.quick:
        p.error(f"no default steps for generators {unknown}; pass --steps")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging()
    generators, ns = args.generators.split(","), [None if n == "all" else int(n) for n in args.ns.split(",")]
    if args.quick:
        generators, ns, args.steps = ["spade"], [None], args.steps or QUICK_STEPS
    tag = ("_" + hashlib.sha1(" ".join(args.set).encode()).hexdigest()[:6]) if args.set else ""  # user overrides
    start = time.monotonic()
    segmenter = reference_segmenter(args.data, args.out, args.cache, args.seg_steps)
    classifier, classifier_info = condition_classifier(args.data, args.out, args.cache, args.clf_steps)
    test = open_dataset(args.data, "test")
    day_index = pick(test, DAY, CONDITION_MAPS)
    day_maps = test.subset(day_index).load(SIZE, desc="load test day maps").labels
    bench = Bench(args.out, args.cache, test, day_index, day_maps, Path(segmenter["model_dir"]), classifier)
    results = []
    for n in ns:  # N-major: a partial run has every generator on all data first
        for generator in generators:
            cfg = generator_config(args.data, generator, n, args.steps or STEPS[generator], args.set)
            results.append(run_arm(f"{generator}_n{n or 'all'}_{cfg.train.steps}st{tag}", cfg, bench))
    grids = []
    for n in ns:
        trained = {r["generator"]: Path(r["train"]["model_dir"]) for r in results if r["n"] == n}
        trained = {g: d for g, d in trained.items() if (d / "config.json").is_file()}
        if trained:
            grids.append(write_grid(args.out / f"samples_n{n or 'all'}{tag}.png", test, trained))
    print(summarize(results, args.out, segmenter, classifier_info, grids))
    print(f"wall time {time.monotonic() - start:.0f}s on {machine()['device']} ({machine()['cpu']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
