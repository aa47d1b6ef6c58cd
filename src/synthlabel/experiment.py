"""`synthlabel experiment`: a grid of arms x synthetic amounts x seeds, each a segmenter trained and evaluated on the
real test split (and on a held-out synthetic set), cached per run so a re-run resumes; then the gain report."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from synthlabel.budget import choose_steps
from synthlabel.cache import claim, dataset_identity, fingerprint, read_record, stamp, write_record
from synthlabel.checkpoint import atomic_write_text
from synthlabel.config import ArmConfig, ExperimentConfig, SegConfig, build_config, to_dict
from synthlabel.downstream.mixing import real_exposure
from synthlabel.downstream.workflow import (
    evaluate_segmenter,
    open_split,
    select_subset,
    settle_validation,
    train_segmenter,
)
from synthlabel.errors import ConfigError
from synthlabel.eval.distribution import label_statistics
from synthlabel.eval.gain import best_by_validation
from synthlabel.report.experiment import write_report
from synthlabel.runs import log, setup_logging

RESULT = "result.json"


@dataclass(frozen=True)
class RunSpec:
    """One cell of the grid."""

    arm: ArmConfig
    amount: float
    seed: int

    @property
    def key(self) -> str:
        return f"{self.arm.name}/a{self.amount:g}_s{self.seed}"


def check_config(cfg: ExperimentConfig) -> None:
    names = [a.name for a in cfg.arms]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"arms must have distinct names; repeated: {dupes}")
    if cfg.baseline is not None and cfg.baseline not in names:
        raise ConfigError(f"baseline {cfg.baseline!r} is not an arm; arms: {names}")
    for arm in cfg.arms:
        if arm.kind == "synthetic" and not arm.sources:
            raise ConfigError(f"arm {arm.name!r} is synthetic but lists no sources (synthetic datasets to mix in)")
        if arm.kind != "synthetic" and arm.sources:
            raise ConfigError(f"arm {arm.name!r} has sources but kind {arm.kind!r}; use kind: synthetic")
        if any(a < 0 for a in (arm.amounts or cfg.amounts)):
            raise ConfigError(f"arm {arm.name!r}: amounts must be >= 0")


def plan(cfg: ExperimentConfig) -> list[RunSpec]:
    """Every (arm, amount, seed); arms without synthetic sources run at amount 0 only."""
    runs = []
    for arm in cfg.arms:
        amounts = (arm.amounts or cfg.amounts) if arm.kind == "synthetic" else (0.0,)
        runs += [RunSpec(arm, float(a), s) for a in amounts for s in cfg.seeds]
    return runs


def train_set_kind(arm: ArmConfig) -> str:
    """'real', 'synthetic' (no real image is ever drawn) or 'mixed', for the cross-domain table."""
    if arm.kind != "synthetic":
        return "real"
    return "synthetic" if arm.mix.mode in ("mixed", "alternate") and arm.mix.fraction >= 1.0 else "mixed"


def arm_seg_config(cfg: ExperimentConfig, spec: RunSpec, num_real: int) -> SegConfig:
    """The SegConfig of one run: base config + the arm's kind + its sources sized by the amount + its overrides."""
    data = {"data": to_dict(cfg.data), "model": to_dict(cfg.model), "train": to_dict(cfg.train)}
    train = data["train"]
    train["seed"] = spec.seed
    train["augment"]["enabled"] = spec.arm.kind != "real"
    train["copy_paste"]["enabled"] = spec.arm.kind == "copy_paste"  # combine with others through `overrides`
    if spec.arm.kind == "synthetic":
        images = max(1, round(spec.amount * num_real)) if spec.amount > 0 else 0
        sources = [{**to_dict(s), "images": images} for s in spec.arm.sources] if images else []
        data["mix"] = {**to_dict(spec.arm.mix), "sources": sources}
    return build_config(SegConfig, data, spec.arm.overrides, source=f"arm {spec.arm.name}")


def _evaluate(cfg: ExperimentConfig, model_dir: Path, run_dir: Path) -> dict:
    d = cfg.data
    evals = {
        "real_test": evaluate_segmenter(
            model_dir, d.path, cfg.eval_split, d.layout, d.size, d.class_map, out=run_dir / "eval_real_test.json"
        )
    }
    if cfg.synthetic_test is not None:
        s = cfg.synthetic_test
        evals["synthetic_test"] = evaluate_segmenter(
            model_dir, s.path, s.split, s.layout, d.size, s.class_map, out=run_dir / "eval_synthetic_test.json"
        )
    keep = ("miou", "pixel_accuracy", "mean_accuracy", "per_class_iou", "class_names", "per_condition")
    return {k: {m: v[m] for m in keep if m in v} for k, v in evals.items()}


def run_key(cfg: ExperimentConfig, seg_cfg: SegConfig) -> str:
    """Fingerprint of everything a run's result depends on: its segmenter config, what its synthetic sources hold
    (a source re-rendered at the same path is another source) and how it is evaluated."""
    synthetic_test = to_dict(cfg.synthetic_test) if cfg.synthetic_test else None
    evaluation = {"split": cfg.eval_split, "synthetic_test": synthetic_test}
    sources = [dataset_identity(s.path, s.keep, s.trust) for s in seg_cfg.mix.sources]
    return fingerprint(to_dict(seg_cfg), evaluation, sources)


def run_one(cfg: ExperimentConfig, spec: RunSpec, run_dir: Path, num_real: int) -> dict:
    """Train + evaluate one run into run_dir, or read its cached result when its fingerprint matches; a run of
    another config is redone from scratch, an interrupted run of this config resumes."""
    seg_cfg = arm_seg_config(cfg, spec, num_real)
    key = run_key(cfg, seg_cfg)
    done = read_record(run_dir / RESULT, key)
    if done is not None:
        return done
    resumable = claim(run_dir, key, what=spec.key) and (run_dir / "config.yaml").exists()
    start = time.monotonic()
    log.info("[run] %s%s", spec.key, " (resuming)" if resumable else "")
    result = train_segmenter(seg_cfg, run_dir, resume=resumable)
    evals = _evaluate(cfg, result.model_dir, run_dir)
    synthetic = sum(s.images or 0 for s in seg_cfg.mix.sources)
    val = None if result.val is None else {k: result.val[k] for k in ("miou", "per_class_iou")}
    record = {
        "arm": spec.arm.name,
        "group": spec.arm.group or spec.arm.name,
        "kind": spec.arm.kind,
        "amount": spec.amount,
        "seed": spec.seed,
        "train_set": train_set_kind(spec.arm),
        "images": {"real": num_real, "synthetic_requested": synthetic},
        "val": val,
        "eval": evals,
        "seconds": time.monotonic() - start,
        "steps": result.steps,
        "exposure": {
            "steps": seg_cfg.train.steps,
            "batch_size": seg_cfg.train.batch_size,
            "real_samples": real_exposure(seg_cfg.mix, seg_cfg.train.batch_size, seg_cfg.train.steps),
        },
    }
    return write_record(run_dir / RESULT, key, record)


def adopt_run(cfg: ExperimentConfig, spec: RunSpec, source_dir: Path, num_real: int) -> bool:
    """Copy a finished training run (e.g. the pipeline's real-data segmenter) in as the run of `spec` when its
    config is the one that run would train; the experiment then only evaluates it. True when adopted."""
    target = Path(cfg.out) / "runs" / spec.key
    seg_cfg = arm_seg_config(cfg, spec, num_real)
    recorded = source_dir / "config.yaml"
    if target.exists() or not (source_dir / "train_state.pt").is_file() or not recorded.is_file():
        return False
    try:  # read through the schema, so a run recorded before a new field existed matches at that field's default
        same = to_dict(build_config(SegConfig, yaml.safe_load(recorded.read_text()))) == to_dict(seg_cfg)
    except ConfigError:
        return False
    if not same:
        return False
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source_dir, tmp)
    atomic_write_text(tmp / "config.yaml", yaml.safe_dump(to_dict(seg_cfg), sort_keys=False))  # today's schema
    stamp(tmp, run_key(cfg, seg_cfg), what=spec.key)
    tmp.rename(target)
    log.info("experiment %s: reusing %s", spec.key, source_dir)
    return True


def run_grid(cfg: ExperimentConfig, runs: list[RunSpec], out: Path, num_real: int) -> list[dict]:
    """Every run, or with `select_seeds`: the selection seeds of every variant, then the other seeds of the
    variant picked on validation in each group (and of groups with a single variant)."""
    first = runs if cfg.select_seeds is None else [r for r in runs if r.seed in cfg.select_seeds]
    records = [_run(cfg, r, out, num_real, i, len(first)) for i, r in enumerate(first, start=1)]
    if cfg.select_seeds is None:
        return records
    picked = best_by_validation(records)
    rest = [r for r in runs if r.seed not in cfg.select_seeds and picked[r.arm.group or r.arm.name] == _variant(r)]
    for g, (arm, amount) in picked.items():
        log.info("group %s: picked %s at %g synthetic x on validation", g, arm, amount)
    return records + [_run(cfg, r, out, num_real, i, len(rest)) for i, r in enumerate(rest, start=1)]


def _variant(spec: RunSpec) -> tuple[str, float]:
    return spec.arm.name, spec.amount


def _run(cfg: ExperimentConfig, spec: RunSpec, out: Path, num_real: int, i: int, n: int) -> dict:
    log.info("experiment run %d/%d: %s", i, n, spec.key)
    return run_one(cfg, spec, out / "runs" / spec.key, num_real)


def settle_budget(cfg: ExperimentConfig, out: Path) -> ExperimentConfig:
    """`cfg` with train.steps chosen on the baseline's validation learning curve (cfg.budget.curve): its first seed
    trains at each step count (cached under <out>/budget/), the fewest steps within the tolerance of the best val
    mIoU are chosen (written to <out>/budget.json), and that run is adopted as the grid's baseline run."""
    num_real = num_real_images(cfg)
    arm = next(a for a in cfg.arms if a.name == (cfg.baseline or cfg.arms[0].name))
    spec = RunSpec(arm, 0.0, cfg.seeds[0])
    curve, dirs = {}, {}
    for steps in sorted(set(cfg.budget.curve)):
        at = cfg.model_copy(update={"train": cfg.train.model_copy(update={"steps": steps})})
        dirs[steps] = out / "budget" / f"{steps}st"
        log.info("budget: baseline %s at %d steps", spec.key, steps)
        record = run_one(at, spec, dirs[steps], num_real)
        if record["val"] is None:
            raise ConfigError("budget.curve needs a validation split to choose on; the data has none")
        curve[steps] = record["val"]["miou"]
    chosen = choose_steps(curve, cfg.budget.tolerance)
    info = {"curve": {str(k): v for k, v in curve.items()}, "tolerance": cfg.budget.tolerance, "steps": chosen}
    atomic_write_text(out / "budget.json", json.dumps(info, indent=1))
    log.info("budget: %d steps (baseline val mIoU %s)", chosen, {k: round(100 * v, 1) for k, v in curve.items()})
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"steps": chosen})})
    adopt_run(cfg, spec, dirs[chosen], num_real)
    return cfg


def num_real_images(cfg: ExperimentConfig) -> int:
    return len(select_subset(open_split(cfg.data, cfg.data.train_split), cfg.data))


def run_experiment(cfg: ExperimentConfig, only_plan: bool = False) -> Path:
    """Run (or resume) every cell of the grid into cfg.out, then write the report; returns report.html's path."""
    check_config(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    setup_logging(out / "log.txt", role="experiment")
    cfg = cfg.model_copy(update={"data": settle_validation(cfg.data, cfg.holdout, out)})
    if cfg.budget.curve and not only_plan:
        cfg = settle_budget(cfg, out)
    atomic_write_text(out / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False))
    runs = plan(cfg)
    num_real = num_real_images(cfg)
    log.info("experiment: %d runs (%d arms, %d seeds), %d real training images", len(runs), len(cfg.arms),
             len(cfg.seeds), num_real)  # fmt: skip
    if only_plan:
        for spec in runs:
            key = run_key(cfg, arm_seg_config(cfg, spec, num_real))
            print(spec.key, "(done)" if read_record(out / "runs" / spec.key / RESULT, key) else "")
        return out
    records = run_grid(cfg, runs, out, num_real)
    atomic_write_text(out / "results.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    return write_report(cfg, records, out, *train_frequency(cfg))


def train_frequency(cfg: ExperimentConfig) -> tuple[list[str], np.ndarray]:
    """Class names and pixel shares of the real training labels (the low-shot subset if one is set)."""
    ds = select_subset(open_split(cfg.data, cfg.data.train_split), cfg.data)
    spec = ds.out_spec
    stats = label_statistics((ds.read_label(i) for i in range(len(ds))), spec.num_classes, spec.ignore_id)
    return spec.names, np.array(stats["pixel_frequency"])
