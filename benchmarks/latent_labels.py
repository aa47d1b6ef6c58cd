"""Benchmark (issue 14): labels from a latent GAN trained on unlabeled images, against what a user would do with the
same unlabeled images (self-training). Datasets: car parts (`../shared/data/carparts`, 128x128: 350 train images as
the unlabeled pool, 50 val, 100 test, 10 classes) and CamVid (96x128: 367 train images unlabeled). N labeled
images in {16, 50} (the low-shot subset of each seed), seeds 0,1,2.

Per dataset, once: the latent GAN on every train image (images only), the inversion encoder (latent regression on
generated pairs, then reconstruction of the train images). Per N and seed: the label head on the N inverted labeled
images (its test mIoU on inverted test images is the arm `head`), `--samples` labeled pairs sampled from it
(uncertain pixels ignored, the most uncertain images dropped), the baseline's pseudo-labels of the other train images
(confident pixels only), then the experiment at one budget for every arm:
- baseline: real N + classic augmentation;
- self_training: + the pseudo-labeled images (half of every batch);
- synthetic_only: the sampled pairs alone (every batch synthetic);
- real_synthetic: + the sampled pairs (half of every batch);
- head: the label head as a segmenter on inverted test images (no segmenter training).

Every stage is cached and resumable; per-run results are copied to benchmarks/results/latent_labels/runs/ so the
profile resumes on a new machine. The peak resident memory of the whole chain is recorded (`peak_rss_gb`).

    python benchmarks/latent_labels.py --datasets carparts --ns 16 --seeds 0      # a part
    python benchmarks/latent_labels.py ... --arms baseline,self_training        # beside it, on the other core:
    python benchmarks/latent_labels.py ... --arms synthetic_only,real_synthetic,head   # (the GAN chain)
    python benchmarks/latent_labels.py --summarize                                # headline.json
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import sys
import time
from pathlib import Path

import torch
from camvid_lowshot import DEFAULTS, selected_overrides
from common import REPO, machine
from safetensors.torch import load_file

from synthlabel.checkpoint import atomic_write_text
from synthlabel.config import ExperimentConfig, LatentGANConfig, LatentLabelsConfig, build_config
from synthlabel.data.datasets import open_dataset
from synthlabel.data.sample import to_uint8
from synthlabel.data.subset import lowshot_indices
from synthlabel.downstream.mixing import read_keep_file
from synthlabel.experiment import RunSpec, num_real_images, run_experiment, run_one
from synthlabel.generators.io import load_generator
from synthlabel.generators.latent import train_latent_gan
from synthlabel.latent.stage import sample_latent_dataset, train_latent_labels
from synthlabel.report.plots import sample_grid
from synthlabel.runs import setup_logging
from synthlabel.synth.pseudo import pseudo_label

SHARED = REPO.parent / "shared" / "data"
DATASETS = {"carparts": (SHARED / "carparts", [128, 128]), "camvid": (SHARED / "camvid", [96, 128])}
ARMS = ("baseline", "self_training", "synthetic_only", "real_synthetic", "head")


def gan(args, name: str, data: Path, size) -> Path:
    run = args.cache / name / "gan"
    if not (run / "done").is_file():
        cfg = build_config(LatentGANConfig, {"data": {"path": str(data), "size": size}},
                           [f"train.steps={args.gan_steps}", "train.sample_every=1000"] + args.gan_set)  # fmt: skip
        train_latent_gan(cfg, run, resume=(run / "config.yaml").is_file())  # killed before a checkpoint too
        atomic_write_text(run / "peak_rss_gb", str(round(peak_rss_gb(), 2)))  # the GAN may train in another process
        (run / "done").touch()
    return run / "model"


def labels_config(args, data: Path, size, gan_dir: Path, split: Path, seed: int) -> LatentLabelsConfig:
    base = {"data": {"path": str(data), "size": size, "subset": {"file": str(split)}}, "gan": str(gan_dir),
            "seed": seed}  # fmt: skip
    steps = [f"encoder.latent_steps={args.encoder_steps}", f"encoder.recon_steps={args.encoder_steps // 2}",
             f"head.steps={args.head_steps}"]  # fmt: skip
    return build_config(LatentLabelsConfig, base, steps + args.labels_set)


def experiment(args, name, data, size, n, seed, split, sets: dict[str, Path | None]) -> Path:
    chosen, _ = selected_overrides(REPO / "benchmarks" / "results" / "camvid_lowshot" / "tune")
    base = build_config(ExperimentConfig, {"data": {"path": str(data), "size": size, "subset": {"file": str(split)}},
                                           "arms": [{"name": "baseline"}]},
                        [*DEFAULTS, *chosen, f"train.steps={args.seg_steps}"])  # fmt: skip

    def synthetic(arm: str, key: str, fraction: float) -> dict:
        """An arm on every image of the set `key` (the whole pseudo-labeled pool, every kept latent pair): its
        amount (synthetic images per real one) is the set's size over N, since an amount of 1.0 would use only N."""
        path = sets[key]
        keep = path / "keep.txt" if (path / "keep.txt").is_file() else None
        count = len(read_keep_file(keep)) if keep else len(open_dataset(path, "train"))
        source = {"path": str(path), "name": key, "keep": str(keep) if keep else None}
        return {"name": arm, "kind": "synthetic", "amounts": [count / n], "sources": [source],
                "mix": {"mode": "mixed", "fraction": fraction}}  # fmt: skip

    arms = [{"name": "baseline", "kind": "real_aug"}]  # always: every delta needs it (cached after the first run)
    for arm, key, fraction in (("self_training", "pseudo", 0.5), ("synthetic_only", "latent", 1.0),
                               ("real_synthetic", "latent", 0.5)):  # fmt: skip
        if arm in args.arms:
            arms.append(synthetic(arm, key, fraction))
    out = args.cache / name / f"n{n}_s{seed}" / "experiment"
    cfg = {"out": str(out), "data": base.data.model_dump(mode="json"), "model": base.model.model_dump(mode="json"),
           "train": {**base.train.model_dump(mode="json"), "seed": seed}, "seeds": [seed], "select_seeds": None,
           "arms": arms}  # fmt: skip
    return Path(run_experiment(build_config(ExperimentConfig, cfg))).parent


def baseline_model(args, name, data, size, seed, split) -> Path:
    """The baseline's model of this seed (the experiment's own run, trained first): the pseudo-labeler."""
    chosen, _ = selected_overrides(REPO / "benchmarks" / "results" / "camvid_lowshot" / "tune")
    exp = build_config(ExperimentConfig, {"out": str(args.cache / name / split.stem / "experiment"),
                                          "data": {"path": str(data), "size": size, "subset": {"file": str(split)}},
                                          "seeds": [seed], "arms": [{"name": "baseline", "kind": "real_aug"}]},
                       [*DEFAULTS, *chosen, f"train.steps={args.seg_steps}", f"train.seed={seed}"])  # fmt: skip
    spec = RunSpec(exp.arms[0], 0.0, seed)
    run_dir = Path(exp.out) / "runs" / spec.key
    run_one(exp, spec, run_dir, num_real_images(exp))
    return run_dir / "model"


def run(args) -> None:
    for name in args.datasets:
        data, size = DATASETS[name]
        data = args.data_root / name if args.data_root else data
        train = open_dataset(data, "train")
        names = [r.image.name for r in train.records]
        for n in args.ns:
            for seed in args.seeds:
                key = f"n{n}_s{seed}"
                split = args.cache / name / f"{key}.txt"
                split.parent.mkdir(parents=True, exist_ok=True)
                labeled = sorted(names[i] for i in lowshot_indices(len(names), n, seed))
                atomic_write_text(split, "".join(x + "\n" for x in labeled))
                head_miou, latent, pseudo = None, None, None
                if {"synthetic_only", "real_synthetic", "head"} & set(args.arms):
                    gan_dir = gan(args, name, data, size)
                    labels_dir = args.cache / name / key / "labels"
                    shared_encoder = args.cache / name / "encoder"  # the encoder sees every train image: one per set
                    if shared_encoder.is_dir() and not (labels_dir / "encoder").is_dir():
                        labels_dir.mkdir(parents=True, exist_ok=True)
                        shutil.copytree(shared_encoder, labels_dir / "encoder")
                    result = train_latent_labels(labels_config(args, data, size, gan_dir, split, seed), labels_dir,
                                                 resume=(labels_dir / "config.yaml").is_file())  # fmt: skip
                    head_miou = result.test_miou
                    if not shared_encoder.is_dir():
                        shutil.copytree(labels_dir / "encoder", shared_encoder)
                    latent = sample_latent_dataset(labels_dir, gan_dir, args.cache / name / key / "latent",
                                                   args.samples, seed, layout="folders")  # fmt: skip
                    write_grid(args, name, key, data, size, labels_dir, gan_dir, latent)
                if {"baseline", "self_training"} & set(args.arms):
                    seg = baseline_model(args, name, data, size, seed, split)
                if "self_training" in args.arms:
                    pool = [r.image for r in train.records if r.image.name not in set(labeled)]
                    pseudo = args.cache / name / key / "pseudo"
                    if not (pseudo / "meta.csv").is_file() or len(open_dataset(pseudo, "train")) < len(pool):
                        pseudo_label(seg, pool, pseudo, args.confidence, layout="folders")
                exp_dir = experiment(args, name, data, size, n, seed, split, {"latent": latent, "pseudo": pseudo})
                publish(args, name, key, exp_dir, head_miou if "head" in args.arms else None)
    print(json.dumps(headline(args), indent=1))


def write_grid(args, name: str, key: str, data: Path, size, labels_dir: Path, gan_dir: Path, latent: Path) -> Path:
    """<out>/<name>_<key>_samples.png, four rows of 8: labeled real images, their inversions G(w) (the inversion
    error the head learns through), sampled images, and the label maps the head gave them (ignored pixels show the
    image)."""
    G, _ = load_generator(gan_dir)
    split = open_dataset(data, "train")
    names = (labels_dir / "subset.txt").read_text().split()[:8]
    index = {r.image.name: i for i, r in enumerate(split.records)}
    real = split.subset([index[x] for x in names]).load(size, desc="grid images").images
    ws = load_file(str(labels_dir / "inverted.safetensors"))["w"][: len(real)]
    with torch.no_grad():
        recon = to_uint8(G.synthesize(ws, noise_mode="const"))
    sampled = open_dataset(latent, "train")
    kept = (latent / "keep.txt").read_text().split()[:8]
    order = {r.image.name: i for i, r in enumerate(sampled.records)}
    pairs = sampled.subset([order[x] for x in kept]).load(size, desc="grid samples")
    spec = sampled.out_spec
    blank = torch.full((len(real) + len(recon) + len(pairs), *size), 255, dtype=torch.long)
    tiles = torch.cat([real, recon, pairs.images, pairs.images])
    maps = torch.cat([blank, pairs.labels.long()])
    png = sample_grid(tiles.permute(0, 2, 3, 1), maps, spec.palette().tolist(), nrow=8, alpha=1.0)
    path = args.out / f"{name}_{key}_samples.png"
    path.write_bytes(png)
    return path


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB -> GB


def publish(args, name: str, key: str, exp_dir: Path, head_miou: float | None) -> None:
    out = args.out / "runs" / name / key
    out.mkdir(parents=True, exist_ok=True)
    records = [json.loads(x) for x in (exp_dir / "results.jsonl").read_text().splitlines() if x.strip()]
    small = [{"arm": r["arm"], "seed": r["seed"], "miou": r["eval"]["real_test"]["miou"],
              "per_class_iou": r["eval"]["real_test"]["per_class_iou"]} for r in records]  # fmt: skip
    if head_miou is not None:
        small.append({"arm": "head", "seed": int(key.split("_s")[1]), "miou": head_miou})
    peak = peak_rss_gb()
    gan_peak = args.cache / name / "gan" / "peak_rss_gb"
    if gan_peak.is_file():
        peak = max(peak, float(gan_peak.read_text()))
    if (out / "result.json").is_file():  # arms run by other invocations (--arms) stay
        old = json.loads((out / "result.json").read_text())
        ran = {(r["arm"], r["seed"]) for r in small}
        small = [r for r in old["runs"] if (r["arm"], r["seed"]) not in ran] + small
        peak = max(peak, old["peak_rss_gb"])
    atomic_write_text(out / "result.json", json.dumps({"runs": small, "peak_rss_gb": round(peak, 2)}, indent=1))


def headline(args) -> dict:
    head = {"date": time.strftime("%Y-%m-%d"), "machine": machine(),
            "command": "python benchmarks/latent_labels.py " + " ".join(sys.argv[1:])}  # fmt: skip
    peaks = []
    for ds_dir in sorted((args.out / "runs").glob("*")):
        table = {}
        for key_dir in sorted(ds_dir.glob("n*_s*")):
            record = json.loads((key_dir / "result.json").read_text())
            peaks.append(record["peak_rss_gb"])
            for r in record["runs"]:
                table.setdefault(key_dir.name.split("_s")[0], {}).setdefault(r["arm"], {})[r["seed"]] = 100 * r["miou"]
        out = {}
        for n, arms in table.items():
            base = arms.get("baseline", {})
            out[n] = {}
            for arm, seeds in arms.items():
                diffs = [v - base[s] for s, v in seeds.items() if s in base and arm != "baseline"]
                out[n][arm] = {"miou": round(statistics.mean(seeds.values()), 2),
                               "miou_std": round(statistics.stdev(seeds.values()), 2) if len(seeds) > 1 else None,
                               "delta": round(statistics.mean(diffs), 2) if diffs else None,
                               "delta_se": round(statistics.stdev(diffs) / len(diffs) ** 0.5, 2)
                               if len(diffs) > 1 else None, "seeds": sorted(seeds)}  # fmt: skip
        head[ds_dir.name] = out
    head["peak_rss_gb"] = max(peaks) if peaks else None
    atomic_write_text(args.out / "headline.json", json.dumps(head, indent=1))
    return head


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default="carparts,camvid")
    p.add_argument("--data-root", type=Path, help="folder holding <dataset>/ (default: ../shared/data)")
    p.add_argument("--ns", default="16,50")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--gan-steps", type=int, default=6000)
    p.add_argument("--encoder-steps", type=int, default=2000)
    p.add_argument("--head-steps", type=int, default=1500)
    p.add_argument("--seg-steps", type=int, default=2400)
    p.add_argument("--samples", type=int, default=500, help="labeled pairs sampled per (N, seed)")
    p.add_argument("--confidence", type=float, default=0.9, help="self-training: pseudo-label confidence")
    p.add_argument("--gan-set", nargs="*", default=[], help="overrides of the latent GAN config")
    p.add_argument("--labels-set", nargs="*", default=[], help="overrides of the encoder/head config")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "latent_labels")
    p.add_argument("--cache", type=Path, default=REPO / "benchmarks" / "cache" / "latent_labels")
    p.add_argument(
        "--arms",
        default=",".join(ARMS),
        help="a subset of the arms (e.g. the ones without the GAN in one process, the latent-GAN chain in another)",
    )
    p.add_argument("--summarize", action="store_true")
    args = p.parse_args(argv)
    args.datasets = args.datasets.split(",")
    args.ns = [int(x) for x in args.ns.split(",")]
    args.seeds = [int(x) for x in args.seeds.split(",")]
    args.arms = args.arms.split(",")
    if sorted(set(args.arms) - set(ARMS)):
        p.error(f"unknown arms {sorted(set(args.arms) - set(ARMS))}; known: {', '.join(ARMS)}")
    unknown = sorted(set(args.datasets) - set(DATASETS))
    if unknown:
        p.error(f"unknown datasets {unknown}; known: {', '.join(DATASETS)}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_logging()
    if args.summarize:
        print(json.dumps(headline(args), indent=1))
        return 0
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
