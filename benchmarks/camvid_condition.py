"""Benchmark (issue 13): does translating labeled day images into dusk teach the segmenter dusk, with the labels
still true? CamVid at 96x128. Labeled: the 305 day train images. Unlabeled target: the 62 dusk train images
(sequence 0001TP), copied as images only: no arm but the oracle reads their labels. Test: CamVid test, scored per
condition (62 dusk, 171 day images).

Arms (same steps and batch for all; seeds 0,1,2):
- baseline: day + classic augmentation;
- photometric: + the day images under `synth.photometric`'s dusk simulation (labels kept by construction);
- translation: + the day images translated by `train-translator` (CUT + semantic consistency from the baseline's
  seed-0 model, which never saw a dusk label);
- translation_no_consistency: the same translator trained without the consistency term (the ablation);
- translation_robust: the consistency term from the photometric arm's seed-0 model instead of the baseline's (a
  segmenter that has seen day images under the dusk simulation, so it does not call a translation wrong for looking
  dusk; no dusk label read either);
- translation_margin: the consistency term in its margin form (`train.consistency_kind=margin`, the baseline's
  model): the segmenter's argmax must hold where it was right on the source, but the translation may lower its
  confidence, so a darker-than-day look costs nothing while the labels stay readable;
- oracle: day + the 62 dusk train images with their labels.
Each synthetic arm adds one translation per day image, mixed at a fixed synthetic batch share (`--fraction`,
default 0.3, not tuned: CamVid val is all day, so no dusk figure could choose it without reading dusk labels).

Order (every step cached; a killed run resumes): the baseline's seed-0 run (the consistency segmenter); the two
translators; the translated sets (with their label consistency: the segmenter's mIoU on the translations over its
mIoU on the sources; condition fidelity: the share a day-vs-dusk classifier, trained on the day images and the
unlabeled dusk ones, calls dusk; the near-copy rate against the dusk images); the experiment. `--arms` runs only
the named arms (plus the baseline, which every delta needs), so two processes can share the work:

    python benchmarks/camvid_condition.py --seeds 0 --arms translation,oracle
    python benchmarks/camvid_condition.py --seeds 0 --arms photometric,translation_no_consistency
    python benchmarks/camvid_condition.py --seeds 0 --arms translation_no_consistency --translators-only  # beside
    python benchmarks/camvid_condition.py --summarize   # headline.json from the finished runs

Small results are copied to benchmarks/results/camvid_condition/ (per-run result.json, headline.json).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from camvid_gain import RARE, base_config, chosen_steps, restore_runs
from camvid_lowshot import SIZE
from common import REPO, SHARED_CAMVID, command_line, machine

from synthlabel.checkpoint import atomic_write_text
from synthlabel.config import ExperimentConfig, TranslatorConfig, build_config
from synthlabel.data.datasets import open_dataset, read_rgb
from synthlabel.data.layouts import list_images
from synthlabel.downstream.workflow import fidelity_report
from synthlabel.eval.generator_metrics import (
    ConditionClassifier,
    condition_fidelity,
    fit_condition_classifier,
    memorization,
)
from synthlabel.experiment import RunSpec, num_real_images, run_experiment, run_one
from synthlabel.generators.translation import train_translator
from synthlabel.runs import setup_logging
from synthlabel.synth.translate import CONSISTENCY, translate

ARMS = ("baseline", "photometric", "translation", "translation_no_consistency", "translation_robust",
        "translation_margin", "oracle")  # fmt: skip
TRANSLATOR_STEPS = 2000
# CUT's PatchNCE weight (1; Park et al. 2020) without its NCE identity term, and 4 residual blocks: about half the
# cost of CUT's per step on this CPU (~0.75 s at 96x128, batch 4, one thread), so both translators fit a session.
# The first run used FastCUT's weight 10: its translations stayed day (0.7 % called dusk by the condition classifier,
# against 89 % for the photometric simulation; the discriminator won throughout), so the content term was too strong.
# That choice reads only the unlabeled dusk images (the classifier), never a dusk label.
TRANSLATOR = ["model.blocks=4", "train.nce=1", "train.nce_identity=false"]
SOURCE, TARGET = "day", "dusk"
# every train image with its label: the day images and the 62 dusk ones
ORACLE = {"name": "oracle", "kind": "real_aug", "overrides": ["data.subset.file=null"]}


def prepare(data: Path, cache: Path) -> tuple[Path, Path]:
    """(split file of the day train images, folder of the dusk train images without their labels)."""
    cache.mkdir(parents=True, exist_ok=True)
    train = open_dataset(data, "train")
    split, target = cache / "day_train.txt", cache / "target_dusk"
    day = [r.image.name for r in train.records if r.meta.get("condition") == SOURCE]
    atomic_write_text(split, "".join(n + "\n" for n in day))
    if not (target / "done").is_file():
        target.mkdir(exist_ok=True)
        for r in train.records:
            if r.meta.get("condition") == TARGET:
                shutil.copyfile(r.image, target / r.image.name)  # the image only: never its mask
        (target / "done").touch()
    return split, target


def experiment_config(args, split: Path, steps: int, seeds: list[int]) -> dict:
    cfg = base_config(args.data, None, args.cache / "experiment", seeds, [f"train.steps={steps}"])
    cfg["data"]["subset"] = {"n": None, "seed": 0, "file": str(split)}
    cfg["select_seeds"] = None
    cfg["arms"] = [{"name": "baseline", "kind": "real_aug"}]
    return cfg


def reference(cfg: dict) -> Path:
    """The baseline's first-seed model (trained here, or found finished): the consistency segmenter."""
    exp_cfg = build_config(ExperimentConfig, cfg)
    spec = RunSpec(exp_cfg.arms[0], 0.0, cfg["seeds"][0])
    run_dir = Path(cfg["out"]) / "runs" / spec.key
    run_one(exp_cfg, spec, run_dir, num_real_images(exp_cfg))
    return run_dir / "model"


def robust_reference(args, cfg: dict, split: Path, segmenter: Path) -> Path:
    """The photometric arm's first-seed model (trained here, or found finished): translation_robust's consistency
    segmenter. The baseline's model reads dusk poorly, so its consistency term also penalizes a translation for
    looking dusk (seed 0: 16 % of translations called dusk with it, 42 % without); a segmenter trained on the dusk
    simulation too should penalize changed labels rather than the changed look."""
    sets = {"photometric": translated_set(args, split, "photometric", segmenter, None)}
    exp_cfg = build_config(ExperimentConfig, {**cfg, "arms": arm_configs(sets, args.fraction)})
    spec = RunSpec(exp_cfg.arms[1], 1.0, cfg["seeds"][0])
    run_dir = Path(cfg["out"]) / "runs" / spec.key
    run_one(exp_cfg, spec, run_dir, num_real_images(exp_cfg))
    return run_dir / "model"


def translator(args, split: Path, target: Path, segmenter: Path | None, name: str) -> Path:
    """The translator of the named arm (its cache dir `translator` + the arm's suffix); no segmenter: no
    consistency term."""
    overrides = [*TRANSLATOR, f"train.steps={args.translator_steps}", "train.sample_every=500", "train.log_every=50"]
    if segmenter is None:
        overrides.append("train.consistency=0")
    if name == "translation_margin":
        overrides.append("train.consistency_kind=margin")
    cfg = build_config(
        TranslatorConfig,
        {"data": {"path": str(args.data), "size": SIZE, "subset": {"file": str(split)}, "val_split": None},
         "target": str(target), "conditions": [TARGET], "source_condition": SOURCE,
         "segmenter": None if segmenter is None else str(segmenter)},
        overrides,
    )  # fmt: skip
    name = name.replace("translation", "translator")
    run_dir = args.cache / name
    model = run_dir / "model"
    if (run_dir / "done").is_file():
        return model
    train_translator(cfg, run_dir, resume=(run_dir / "config.yaml").is_file())  # killed before a checkpoint too
    (run_dir / "done").touch()
    return model


def translated_set(args, split: Path, name: str, segmenter: Path, model: Path | None) -> Path:
    out = args.cache / f"set_{name}"
    if (out / CONSISTENCY).is_file():
        return out
    day = open_dataset(args.data, "train")
    day = day.subset(day.indices_of(split.read_text().split(), split))
    method = "photometric" if model is None else "model"
    return translate(day, out, [TARGET], method=method, k=1, seed=0, segmenter=segmenter, model=model)


def condition_metrics(args, split: Path, target: Path, sets: dict[str, Path]) -> dict:
    """Per translated set: condition fidelity (the share of its images the condition classifier calls dusk) and
    the near-copy rate against the unlabeled dusk images. The classifier learns day vs dusk from the day train
    images and the unlabeled dusk ones (conditions only, no labels); its accuracy on each condition's test images
    (images only) says how far to trust it. Also, once the photometric arm's first-seed model exists, the label
    consistency as that model reads it (`consistency_dusk_judge`): the baseline's model reads dusk poorly, so its
    consistency also falls when a translation only looks more dusk. Cached in condition_metrics.json."""
    path = args.cache / "condition_metrics.json"
    done = json.loads(path.read_text()) if path.is_file() else {}
    todo = [name for name in sets if name not in done]
    if todo:
        done.update(classifier_metrics(args, split, target, {n: sets[n] for n in todo}, done))
        atomic_write_text(path, json.dumps(done, indent=1))
    judge = args.cache / "experiment" / "runs" / "photometric" / f"a1_s{args.seeds[0]}" / "model"
    unjudged = [n for n in sets if "consistency_dusk_judge" not in done[n]]
    if unjudged and (judge / "model.safetensors").is_file():
        sources = open_dataset(args.data, "train")
        sources = sources.subset(sources.indices_of(split.read_text().split(), split))
        for name in unjudged:
            done[name]["consistency_dusk_judge"] = fidelity_report(judge, sets[name], sources)["fidelity"]
        atomic_write_text(path, json.dumps(done, indent=1))
    return done


def classifier_metrics(args, split: Path, target: Path, sets: dict[str, Path], done: dict) -> dict:
    """condition_metrics' classifier figures of the named sets (and, once, the classifier's own accuracy)."""
    out = {}
    day = open_dataset(args.data, "train")
    day = day.subset(day.indices_of(split.read_text().split(), split)).load(SIZE, desc="load day").images
    dusk = torch.from_numpy(np.stack([read_rgb(f, SIZE) for f in list_images(target)])).permute(0, 3, 1, 2)
    clf_dir = args.cache / "condition_classifier"
    if (clf_dir / "config.json").is_file():
        classifier = ConditionClassifier.load(clf_dir)
    else:
        classifier = fit_condition_classifier(torch.cat([day, dusk]), [SOURCE] * len(day) + [TARGET] * len(dusk))
        classifier.save(clf_dir)
    if "classifier_test_accuracy" not in done:
        test = open_dataset(args.data, "test").load(SIZE, desc="load test images")
        out["classifier_test_accuracy"] = {
            c: condition_fidelity(classifier, test.images[[m["condition"] == c for m in test.meta]], c)
            for c in (SOURCE, TARGET)
        }
        out["sources_called_dusk"] = condition_fidelity(classifier, day, TARGET)
    for name, path in sets.items():
        images = open_dataset(path, "train").load(SIZE, desc=f"load {name}").images
        out[name] = {"condition_fidelity": condition_fidelity(classifier, images, TARGET),
                     "near_copy_rate": memorization(images, dusk)["near_copy_rate"]}  # fmt: skip
    return out


def arm_configs(sets: dict[str, Path], fraction: float) -> list[dict]:
    out = [{"name": "baseline", "kind": "real_aug"}]
    for name, path in sets.items():
        out.append({"name": name, "kind": "synthetic", "amounts": [1.0], "mix": {"mode": "mixed", "fraction": fraction},
                    "sources": [{"path": str(path), "name": name}]})  # fmt: skip
    return out


def consistency_segmenter(args, cfg: dict, split: Path, arm: str) -> Path | None:
    if arm == "translation_no_consistency":
        return None
    if arm == "translation_robust":
        return robust_reference(args, cfg, split, reference(cfg))
    return reference(cfg)


def run(args) -> None:
    start = time.monotonic()
    split, target = prepare(args.data, args.cache)
    cfg = experiment_config(args, split, args.seg_steps or chosen_steps("nall"), args.seeds)
    if args.translators_only:  # the ablation's translator needs no segmenter, so it can start beside the baseline
        for arm in (a for a in args.arms if a.startswith("translation")):
            translator(args, split, target, consistency_segmenter(args, cfg, split, arm), arm)
        return
    restore_runs(args.out, args.cache / "experiment")
    segmenter = reference(cfg)
    sets = {}
    for arm in args.arms:
        if arm == "photometric":
            sets[arm] = translated_set(args, split, arm, segmenter, None)
        elif arm.startswith("translation"):
            model = translator(args, split, target, consistency_segmenter(args, cfg, split, arm), arm)
            sets[arm] = translated_set(args, split, arm, segmenter, model)  # consistency scored by the baseline's
    if sets:
        condition_metrics(args, split, target, sets)
    cfg["arms"] = arm_configs(sets, args.fraction) + ([ORACLE] if "oracle" in args.arms else [])
    run_experiment(build_config(ExperimentConfig, cfg))
    report_all(args, cfg)
    publish(args, time.monotonic() - start)


def report_all(args, cfg: dict) -> None:
    """Rewrite the experiment report over every arm finished for these seeds, from the cached runs (no training):
    an invocation's own report shows only the arms it was given."""
    runs = args.cache / "experiment" / "runs"

    def finished(arm: str) -> bool:
        return all(any((runs / arm).glob(f"a*_s{seed}/result.json")) for seed in args.seeds)

    sets = {arm: args.cache / f"set_{arm}" for arm in ARMS[1:] if arm != "oracle" and finished(arm)}
    cfg = {**cfg, "arms": arm_configs(sets, args.fraction) + ([ORACLE] if finished("oracle") else [])}
    run_experiment(build_config(ExperimentConfig, cfg))


def publish(args, seconds: float) -> None:
    """Per-run results and the translated sets' consistency into results/ (committable), then headline.json."""
    exp = args.cache / "experiment"
    for path in args.cache.glob(f"set_*/{CONSISTENCY}"):
        report = json.loads(path.read_text())
        small = {k: report.get(k) for k in ("fidelity", "synthetic_miou", "real_miou", "per_class_fidelity")}
        (args.out / "consistency").mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out / "consistency" / f"{path.parent.name[4:]}.json", json.dumps(small, indent=1))
    for name in ("translator", "translator_no_consistency", "translator_robust", "translator_margin"):  # last grid
        grids = sorted((args.cache / name / "samples").glob("step_*.png"))
        if grids:
            (args.out / "samples").mkdir(parents=True, exist_ok=True)
            arm = name.replace("translator", "translation")
            shutil.copyfile(grids[-1], args.out / "samples" / f"{arm}_{args.translator_steps}st.png")
    if (args.cache / "condition_metrics.json").is_file():
        shutil.copyfile(args.cache / "condition_metrics.json", args.out / "condition_metrics.json")
    publish_runs(args)
    if (exp / "report.md").is_file():
        shutil.copyfile(exp / "report.md", args.out / "report.md")
    print(json.dumps(headline(args, seconds), indent=1))


def publish_runs(args) -> None:
    """Every finished run's result.json into results/runs/ (committable, so the profile resumes elsewhere)."""
    for path in (args.cache / "experiment" / "runs").glob("*/*/result.json"):
        target = args.out / "runs" / path.parent.parent.name / path.parent.name
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target / "result.json")


def records(results: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(results.glob("runs/*/*/result.json"))]


def headline(args, seconds: float | None = None) -> dict:
    """headline.json: per condition and arm, test mIoU mean/std over seeds and the delta to the baseline paired by
    seed (points); gap_closed (translation's share of the baseline -> oracle dusk gap); label consistency."""
    recs = [r for r in records(args.out) if r.get("eval", {}).get("real_test")]
    by_arm: dict[str, dict[int, dict]] = {}
    for r in recs:
        by_arm.setdefault(r["arm"], {})[r["seed"]] = r["eval"]["real_test"]
    steps = sorted({r["exposure"]["steps"] for r in recs if r.get("exposure")})
    seeds = ",".join(str(s) for s in sorted({r["seed"] for r in recs}))
    command = command_line("camvid_condition.py", args.summarize, seeds=seeds, seg_steps=",".join(map(str, steps)))
    head = {"date": time.strftime("%Y-%m-%d"), "machine": machine(), "command": command, "steps": steps}
    base = by_arm.get("baseline", {})
    for condition in (TARGET, SOURCE, "all"):
        table = {}
        for arm, seeds in by_arm.items():
            vals = {s: miou(m, condition) for s, m in seeds.items()}
            vals = {s: v for s, v in vals.items() if v is not None}
            if not vals:
                continue
            diffs = [vals[s] - miou(base[s], condition) for s in vals if s in base]
            table[arm] = {
                "miou": round(statistics.mean(vals.values()), 2),
                "miou_std": round(statistics.stdev(vals.values()), 2) if len(vals) > 1 else None,
                "delta": round(statistics.mean(diffs), 2) if diffs and arm != "baseline" else None,
                "delta_se": round(statistics.stdev(diffs) / len(diffs) ** 0.5, 2) if len(diffs) > 1 else None,
                "seeds": sorted(vals),
            }
        head[condition] = table
    dusk = head[TARGET]
    if {"baseline", "oracle", "translation"} <= set(dusk):
        gap = dusk["oracle"]["miou"] - dusk["baseline"]["miou"]
        head["gap_closed"] = round((dusk["translation"]["miou"] - dusk["baseline"]["miou"]) / gap, 3) if gap else None
    head["label_consistency"] = {
        p.stem: json.loads(p.read_text())["fidelity"] for p in sorted((args.out / "consistency").glob("*.json"))
    }
    metrics = args.out / "condition_metrics.json"
    if metrics.is_file():  # condition fidelity and near-copy rate of each translated set
        head["condition_metrics"] = json.loads(metrics.read_text())
    head["rare_classes"] = list(RARE)
    if seconds is not None:
        head["seconds_this_invocation"] = round(seconds)
    atomic_write_text(args.out / "headline.json", json.dumps(head, indent=1))
    return head


def miou(metrics: dict, condition: str) -> float | None:
    """Test mIoU in points over one condition's images (or all)."""
    if condition == "all":
        return 100 * metrics["miou"]
    part = (metrics.get("per_condition") or {}).get(condition)
    return None if part is None or part.get("miou") is None else 100 * part["miou"]


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=SHARED_CAMVID)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "camvid_condition")
    p.add_argument("--cache", type=Path, default=REPO / "benchmarks" / "cache" / "camvid_condition")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--arms", default=",".join(ARMS[1:]), help=f"arms besides the baseline, among {ARMS[1:]}")
    p.add_argument("--seg-steps", type=int, help="segmenter steps (default: the N=all budget of the val curve)")
    p.add_argument("--translator-steps", type=int, default=TRANSLATOR_STEPS)
    p.add_argument("--fraction", type=float, default=0.3, help="synthetic batch share of the synthetic arms")
    p.add_argument("--summarize", action="store_true", help="headline.json from the committed per-run results")
    p.add_argument(
        "--translators-only",
        action="store_true",
        help="train the named arms' translators and stop (the ablation's needs no baseline run)",
    )
    args = p.parse_args(argv)
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.arms = [a for a in args.arms.split(",") if a and a != "baseline"]
    unknown = sorted(set(args.arms) - set(ARMS))
    if unknown:
        p.error(f"unknown arms {unknown}; known: {', '.join(ARMS)}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_logging()
    if args.summarize:
        publish_runs(args)  # runs finished in this machine's cache, if any
        print(json.dumps(headline(args), indent=1))
        return 0
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
