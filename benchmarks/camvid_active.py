"""Benchmark (issue 15): does mining pick frames worth labeling? CamVid at 96x128, seeds 0,1,2. Start from N=25
labeled train images (the low-shot subset of the seed); acquire 25 more from the rest of the train pool by each
strategy, retrain at the same budget, and repeat once (25 -> 50 -> 75). Strategies (the scores of
`synthlabel.mining`, computed by the current round's model on the unlabeled pool):
- random;
- entropy: highest mean predictive entropy;
- mc_dropout: highest BALD mutual information over 8 dropout passes;
- entropy_diversity: entropy-weighted k-center on the segmenter's features, near-duplicates dropped;
- class_targeted: low confidence on, or a vanishing area of, the five rare classes;
- class_uncertainty: the most pixel uncertainty where the five rare classes have probability (an extra strategy,
  added after class_targeted picked frames without rare objects).
Also the Spearman correlation, on the test frames, between each score of the N=25 model and the frame's true error
(1 - its mIoU over the classes present).

Every round trains the segmenter of camvid_lowshot (settings chosen on val) for the same steps (`--steps`,
default the N=50 budget of the val learning curve); each finished round is cached under
benchmarks/results/camvid_active/runs/ (its acquired frames and test metrics), so a killed profile resumes:

    python benchmarks/camvid_active.py --seeds 0 --strategies random,entropy      # a part
    python benchmarks/camvid_active.py --seeds 0 --rounds 1                       # every strategy's 25 -> 50 first
    python benchmarks/camvid_active.py --summarize                                # headline.json
    python benchmarks/camvid_active.py --seeds 0 --acquire-only     # record the next frames from cached models

Each acquisition is recorded in runs/acquired/ as soon as it is made (also the one of the round after --rounds,
while the model that picks it is in the cache), so a new machine trains the next round without the models of the
rounds before it.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
from camvid_gain import RARE, chosen_steps
from camvid_lowshot import DEFAULTS, SIZE, selected_overrides
from common import REPO, SHARED_CAMVID, command_line, machine
from scipy.stats import spearmanr

from synthlabel.checkpoint import atomic_write_text
from synthlabel.config import SegConfig, build_config
from synthlabel.data.datasets import open_dataset
from synthlabel.data.subset import lowshot_indices
from synthlabel.device import resolve_precision
from synthlabel.downstream.segmenter import load_segmenter
from synthlabel.downstream.workflow import evaluate_segmenter, train_segmenter
from synthlabel.eval.generator_metrics import per_image_miou
from synthlabel.mining.scores import CLASS_SCORES, score_frames
from synthlabel.mining.select import rank_frames
from synthlabel.runs import setup_logging

STRATEGIES = ("random", "entropy", "mc_dropout", "entropy_diversity", "class_targeted", "class_uncertainty")
START, STEP, ROUNDS = 25, 25, 2
SCORE_OF = {"entropy": "entropy", "mc_dropout": "mc_dropout", "entropy_diversity": "entropy",
            "class_targeted": "class_targeted", "class_uncertainty": "class_uncertainty"}  # fmt: skip


def train_round(args, names: list[str], key: str, seed: int, force: bool = False) -> dict:
    """Train on the named train images (cached by key) and score on test; returns the round's record. `force`
    trains again although the record is committed (its model is gone with the machine's cache): the committed
    record stays, with the retrained model's figures added as `retrained`."""
    path = args.out / "runs" / f"{key}.json"
    old = json.loads(path.read_text()) if path.is_file() else None
    if old is not None and not force:
        return old
    split = args.cache / f"{key}.txt"
    split.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(split, "".join(n + "\n" for n in names))
    chosen, _ = selected_overrides(REPO / "benchmarks" / "results" / "camvid_lowshot" / "tune")
    cfg = build_config(
        SegConfig, {"data": {"path": str(args.data), "size": SIZE, "subset": {"file": str(split)}}},
        [*DEFAULTS, *chosen, f"train.steps={args.steps}", f"train.seed={seed}"],
    )  # fmt: skip
    run_dir = args.cache / key
    start = time.monotonic()
    # A run killed before its first checkpoint has config.yaml but no train_state.pt: reopen it (restore() then
    # starts from step 0) instead of refusing the directory.
    train_segmenter(cfg, run_dir, resume=(run_dir / "config.yaml").is_file())
    metrics = evaluate_segmenter(run_dir / "model", args.data, "test")
    record = {"key": key, "seed": seed, "labeled": names, "steps": args.steps, "miou": metrics["miou"],
              "per_class_iou": metrics["per_class_iou"], "seconds": round(time.monotonic() - start),
              "machine": machine()}  # fmt: skip
    if old is not None:
        old.setdefault("retrained", []).append({k: record[k] for k in ("miou", "per_class_iou", "seconds", "machine")})
        record = old
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(record, indent=1))
    return record


def model_of(args, record: dict) -> Path:
    """The round's model directory, trained again from its committed record when the cache lost it."""
    model = args.cache / record["key"] / "model"
    if not (model / "config.json").is_file():
        print(f"{record['key']}: model not in the cache; training it again", flush=True)
        train_round(args, record["labeled"], record["key"], record["seed"], force=True)
    return model


def labeled_for(
    args, strategy: str, key: str, prev: dict, labeled: list[str], pool_ds, seed: int, round_: int, retrain: bool
) -> list[str] | None:
    """The labeled names of round `key`: from its trained record, else from its recorded acquisition
    (runs/acquired/<key>.json), else acquired now by the previous round's model and recorded. None when that model
    is not in the cache and `retrain` is off."""
    for path in (args.out / "runs" / f"{key}.json", args.out / "runs" / "acquired" / f"{key}.json"):
        if path.is_file():
            return json.loads(path.read_text())["labeled"]
    model = None
    if strategy != "random":
        if not retrain and not (args.cache / prev["key"] / "model" / "config.json").is_file():
            print(f"{key}: the {prev['key']} model is not in the cache; not acquired", flush=True)
            return None
        model = model_of(args, prev)  # trains it again from its record when the cache lost it
    picked = acquire(args, strategy, model, labeled, pool_ds, seed, round_)
    record = {"key": key, "seed": seed, "strategy": strategy, "scored_by": None if model is None else prev["key"],
              "acquired": picked, "labeled": labeled + picked, "machine": machine()}  # fmt: skip
    path = args.out / "runs" / "acquired" / f"{key}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(record, indent=1))
    return record["labeled"]


def acquire(
    args, strategy: str, model_dir: Path | None, labeled: list[str], pool_ds, seed: int, round_: int
) -> list[str]:
    """STEP names from the unlabeled pool by `strategy`, scored by the model of this round."""
    pool = [r.image.name for r in pool_ds.records if r.image.name not in set(labeled)]
    if strategy == "random":
        return random.Random(seed * 1000 + round_).sample(pool, STEP)
    index = {r.image.name: i for i, r in enumerate(pool_ds.records)}
    images = pool_ds.load(SIZE, desc="load pool").images
    rows = [index[n] for n in pool]
    model, meta = load_segmenter(model_dir)
    spec = pool_ds.out_spec
    rare = [spec.id_of(c) for c in RARE] if strategy in CLASS_SCORES else []
    area = None
    if rare:  # the classes' pixel share on the labeled images: a frame where they vanish is suspect
        lab = [index[n] for n in labeled]
        labels = pool_ds.load(SIZE).labels[lab]
        area = [float((labels == k).float().mean()) for k in range(spec.num_classes)]
    passes = 8 if strategy == "mc_dropout" else 0  # the dropout passes only where their score is used
    scored = score_frames([model], images[rows], resolve_precision("auto", "auto"), passes, rare, area, seed=seed)
    score = scored.scores[SCORE_OF[strategy]]
    diverse = strategy == "entropy_diversity"
    picked, _ = rank_frames(score, scored.features, STEP, duplicate_threshold=0.2 if diverse else 0.0,
                            diversity=diverse)  # fmt: skip
    return [pool[i] for i in picked]


def spearman_files(args, seed: int) -> list[Path]:
    return [args.out / "runs" / f"spearman{part}_s{seed}.json" for part in ("", "_detail", "_pixel")]


def spearman_of_scores(args, model_dir: Path, seed: int) -> None:
    """Each score of the N=25 model on the test frames against their true error (1 - per-frame mIoU) in
    spearman_s<seed>.json; also per test condition (one sequence each in CamVid) and on val, in
    spearman_detail_s<seed>.json. In spearman_pixel_s<seed>.json, from the same model (or, for a seed whose two
    first files came from an earlier model, from the one at hand): the same against each frame's pixel error
    (1 - pixel accuracy) and its mIoU error. A frame's mIoU error also moves with how many classes it holds (one
    missed sliver of a rare class costs a whole class's IoU), which no uncertainty score can see; the pixel error
    shows whether the scores rank the frames a model gets wrong. Files already written are kept."""
    path, detail, pixel = spearman_files(args, seed)
    parts = score_correlations(args, model_dir, seed)
    if not (path.is_file() and detail.is_file()):
        atomic_write_text(detail, json.dumps(parts["frame_miou_error"], indent=1))
        atomic_write_text(path, json.dumps(parts["frame_miou_error"]["test"]["all"], indent=1))
    if not pixel.is_file():
        atomic_write_text(pixel, json.dumps(parts | {"machine": machine()}, indent=1))


def score_correlations(args, model_dir: Path, seed: int) -> dict:
    """{error kind: {split: {condition group: {score: rho}}}} for the model in `model_dir`."""
    model, _ = load_segmenter(model_dir)
    parts: dict = {"frame_miou_error": {}, "pixel_error": {}, "classes_in_label_vs_frame_miou_error": {}}
    for split in ("test", "val"):
        data = open_dataset(args.data, split)
        loaded = data.load(SIZE, desc=f"load {split}")
        spec = data.out_spec
        scored = score_frames([model], loaded.images, resolve_precision("auto", "auto"), 8,
                              [spec.id_of(c) for c in RARE], seed=seed)  # fmt: skip
        per_frame = per_image_miou(scored.predictions, loaded.labels, spec.num_classes, spec.ignore_id)
        errors = {"frame_miou_error": 1 - np.nan_to_num(np.array(per_frame), nan=1.0),
                  "pixel_error": pixel_error(scored.predictions.numpy(), loaded.labels.numpy(), spec)}  # fmt: skip
        conditions = np.array([m.get("condition") or "all" for m in loaded.meta])
        groups = {"all": np.ones(len(per_frame), bool)} | {c: conditions == c for c in sorted(set(conditions))}
        for kind, error in errors.items():
            parts[kind][split] = {g: {name: rank_correlation(s.numpy()[sel], error[sel])
                                      for name, s in scored.scores.items()} for g, sel in groups.items()}  # fmt: skip
        # not a score (it reads the labels): how much of the mIoU error the frame's class count alone explains
        present = np.stack([(loaded.labels.numpy() == c).reshape(len(per_frame), -1).any(1)
                            for c in range(spec.num_classes)], 1).sum(1)  # fmt: skip
        parts["classes_in_label_vs_frame_miou_error"][split] = {
            g: rank_correlation(present[sel], errors["frame_miou_error"][sel]) for g, sel in groups.items()
        }
    return parts


def pixel_error(pred: np.ndarray, target: np.ndarray, spec) -> np.ndarray:
    """[N] share of each frame's labeled pixels the prediction gets wrong (1 for a frame without labeled pixels)."""
    valid = (target != spec.ignore_id) & (target >= 0) & (target < spec.num_classes)
    wrong = ((pred != target) & valid).reshape(len(pred), -1).sum(1)
    n = valid.reshape(len(pred), -1).sum(1)
    return np.where(n > 0, wrong / np.maximum(n, 1), 1.0)


def rank_correlation(score: np.ndarray, error: np.ndarray) -> float | None:
    """Spearman's rho; None for a constant score (no rank order)."""
    rho = float(spearmanr(score, error).statistic)
    return None if np.isnan(rho) else round(rho, 4)


def run(args) -> None:
    train_ds = open_dataset(args.data, "train")
    names = [r.image.name for r in train_ds.records]
    for seed in args.seeds:
        start = sorted(names[i] for i in lowshot_indices(len(names), START, seed))
        first = train_round(args, start, f"n{START}_s{seed}", seed)
        if not all(p.is_file() for p in spearman_files(args, seed)) and not args.acquire_only:
            spearman_of_scores(args, model_of(args, first), seed)
        for strategy in args.strategies:
            labeled, prev = list(start), first
            for r in range(1, ROUNDS + 1):
                key = f"{strategy}_n{START + r * STEP}_s{seed}"
                # a round past --rounds (or any, with --acquire-only) still records its frames while the model
                # that picks them is at hand, so the next session trains it without that model
                train = r <= args.rounds and not args.acquire_only
                labeled = labeled_for(args, strategy, key, prev, labeled, train_ds, seed, r, retrain=train)
                trained = (args.out / "runs" / f"{key}.json").is_file()
                if labeled is None or not (train or trained):
                    break
                prev = train_round(args, labeled, key, seed)
    if not args.acquire_only:
        print(json.dumps(headline(args), indent=1))


def headline(args) -> dict:
    runs = [json.loads(p.read_text()) for p in sorted((args.out / "runs").glob("*_s*.json"))
            if not p.name.startswith("spearman")]  # fmt: skip
    by = {}
    for r in runs:
        strategy, rest = ("start", r["key"][1:]) if r["key"].startswith(f"n{START}_") else r["key"].rsplit("_n", 1)
        by.setdefault(strategy, {}).setdefault(int(rest.split("_s")[0]), []).append(r)
    start = by.get("start", {}).get(START, [])
    curves, rare = {}, {}
    for strategy in STRATEGIES:
        points = {str(START): start, **{str(n): rs for n, rs in by.get(strategy, {}).items()}}
        curves[strategy] = {n: round(100 * float(np.mean([r["miou"] for r in rs])), 2) for n, rs in points.items()
                            if rs}  # fmt: skip
        rare[strategy] = {n: round(100 * float(np.mean([rare_mean(r) for r in rs])), 2) for n, rs in points.items()
                          if rs}  # fmt: skip
    spear = [json.loads(p.read_text()) for p in sorted((args.out / "runs").glob("spearman_s*.json"))]
    seeds = ",".join(str(s) for s in sorted({r["seed"] for r in runs}))
    command = command_line("camvid_active.py", args.summarize, seeds=seeds, steps=args.steps)
    head = {"date": time.strftime("%Y-%m-%d"), "machine": machine(),
            "command": command, "steps": args.steps,
            "curves": curves, "rare": rare,
            "spearman": {k: round(float(np.mean([s[k] for s in spear if s[k] is not None] or [np.nan])), 3)
                         for k in (spear[0] if spear else {})},
            "spearman_detail": spearman_detail(args.out),
            # the same scores against the frame's pixel error, and its mIoU error again, from one model per seed
            "spearman_pixel_error": spearman_by_error(args.out),
            "seeds": sorted({r["seed"] for r in runs}),
            # where each run trained (records before 2026-12-07's second session do not say: CPU-2E, bf16)
            "run_machines": {r["key"]: describe(r.get("machine")) for r in runs}}  # fmt: skip
    atomic_write_text(args.out / "headline.json", json.dumps(head, indent=1))
    return head


def describe(machine_record: dict | None) -> str:
    if not machine_record:
        return "not recorded"
    return f"{machine_record['cpu']}, {machine_record['device']}"


def spearman_detail(out: Path) -> dict:
    """Per split ("test", "val") and condition group, each score's Spearman rho, mean over seeds."""
    seeds = [json.loads(p.read_text()) for p in sorted((out / "runs").glob("spearman_detail_s*.json"))]
    table: dict = {}
    for split, groups in (seeds[0] if seeds else {}).items():
        for group, scores in groups.items():
            for name in scores:
                vals = [s[split][group][name] for s in seeds if s[split][group][name] is not None]
                rho = round(float(np.mean(vals)), 3) if vals else None
                table.setdefault(split, {}).setdefault(group, {})[name] = rho
    return table


def spearman_by_error(out: Path) -> dict:
    """{error kind: {score: rho}} on all test frames, mean over the seeds with a spearman_pixel_s<seed>.json."""
    seeds = [json.loads(p.read_text()) for p in sorted((out / "runs").glob("spearman_pixel_s*.json"))]
    table: dict = {}
    for kind in ("pixel_error", "frame_miou_error"):
        for name in seeds[0][kind]["test"]["all"] if seeds else ():
            vals = [s[kind]["test"]["all"][name] for s in seeds if s[kind]["test"]["all"][name] is not None]
            table.setdefault(kind, {})[name] = round(float(np.mean(vals)), 3) if vals else None
    return table


def rare_mean(record: dict) -> float:
    return float(np.mean([record["per_class_iou"][c] or 0 for c in RARE]))


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=SHARED_CAMVID)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "camvid_active")
    p.add_argument("--cache", type=Path, default=REPO / "benchmarks" / "cache" / "camvid_active")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--strategies", default=",".join(STRATEGIES))
    p.add_argument("--steps", type=int, help="segmenter steps per round (default: the N=50 val-curve budget)")
    p.add_argument(
        "--rounds",
        type=int,
        default=ROUNDS,
        choices=range(1, ROUNDS + 1),
        help="acquisition rounds to run (1: only 25 -> 50, so every strategy's first round can come first)",
    )
    p.add_argument("--summarize", action="store_true")
    p.add_argument(
        "--acquire-only",
        action="store_true",
        help="record each strategy's next acquisition from the models in the cache (runs/acquired/), train nothing",
    )
    args = p.parse_args(argv)
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.strategies = args.strategies.split(",")
    unknown = sorted(set(args.strategies) - set(STRATEGIES))
    if unknown:
        p.error(f"unknown strategies {unknown}; known: {', '.join(STRATEGIES)}")
    args.steps = args.steps or chosen_steps("n50")
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
