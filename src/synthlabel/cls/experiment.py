"""The classification study behind `synthlabel cls-experiment`: per run, train the GAN families the arms use on the
run's n-per-class subset only, select candidates, train one classifier per arm; aggregate and report. Every finished
arm and trained family is stamped with a fingerprint of its settings, so a re-run redoes only what changed."""

from __future__ import annotations

import json
import time
from pathlib import Path

import yaml

from synthlabel.cache import fingerprint, read_record, write_record
from synthlabel.checkpoint import atomic_write_text
from synthlabel.cls import data as cdata
from synthlabel.cls.config import ArmConfig, ClsDataConfig, ClsExperimentConfig
from synthlabel.cls.data import ClassSet, Split
from synthlabel.cls.gan_train import GANRun, load_pool, train_family
from synthlabel.cls.report import save_class_grid, summarize, write_report
from synthlabel.cls.select import Selection, assemble, score_candidates, select
from synthlabel.cls.train import train_classifier
from synthlabel.config import to_dict
from synthlabel.device import resolve_precision
from synthlabel.errors import DataError
from synthlabel.runs import environment, log, setup_logging


def load_data(cfg: ClsDataConfig) -> tuple[ClassSet, ClassSet | None]:
    """(the pool runs draw from, a separate evaluation set or None), at the working size."""
    if cfg.source == "mnist5k":
        pool = cdata.mnist5k()
    elif cfg.source == "digits":
        pool = cdata.digits()
    else:
        pool = cdata.read_class_folders(cfg.path, cfg.size)
    test = cdata.read_class_folders(cfg.test_path, cfg.size or pool.image_size) if cfg.test_path else None
    if cfg.size is not None:
        pool = cdata.resize(pool, cfg.size)
    if test is not None and (test.class_names != pool.class_names or test.channels != pool.channels):
        raise DataError(f"{cfg.test_path}: classes or channels differ from {cfg.path}; use the same class folders")
    return pool, test


class Study:
    """One study: trained generators and candidate pools under `out`/cache, small per-run JSONs (r00/<arm>.json,
    r00/selection_<family>.json), sample grids and the report under `results_dir` (default: `out` itself)."""

    def __init__(self, cfg: ClsExperimentConfig, out: str | Path, results_dir: str | Path | None = None):
        self.cfg, self.out = cfg, Path(out)
        self.results = Path(results_dir) if results_dir is not None else self.out
        self.cache = self.out / "cache"
        self.pool, self.test = load_data(cfg.data)
        self._data_key = to_dict(cfg.data)

    # ---- per-run pieces -------------------------------------------------------------------------------------

    def seed(self, run: int) -> int:
        return self.cfg.seed + run

    def split(self, run: int) -> Split:
        d = self.cfg.data
        split = cdata.make_split(
            self.pool, d.n_per_class, self.seed(run), d.holdout_per_class, d.holdout_seed, d.protocol == "dev"
        )
        if self.test is not None:
            split.evaluation = self.test
        return split

    def family_dir(self, run: int, family: str) -> Path:
        key = fingerprint(self._data_key, self.seed(run), family, to_dict(self.cfg.gan(family)),
                          self.cfg.synthetic_per_class)  # fmt: skip
        return self.cache / f"r{run:02d}" / f"{family}-{key}"

    def gan_run(self, run: int, family: str, split: Split) -> GANRun:
        cfg = self.cfg.gan(family)
        return train_family(family, cfg, split.train, self.family_dir(run, family), self.seed(run),
                            self.cfg.synthetic_per_class)  # fmt: skip

    @staticmethod
    def candidates(gan: GANRun) -> dict[str, ClassSet]:
        return {f"step_{step:06d}": load_pool(path) for step, path in sorted(gan.pools.items())}

    def selection(self, run: int, family: str, split: Split, gan: GANRun) -> Selection:
        """The family's candidate scores for this run (cached as selection_<family>.json; the thresholds are
        applied afresh, so changing them costs no retraining) and the resulting choice."""
        path = self.results / f"r{run:02d}" / f"selection_{family}.json"
        sel = self.cfg.selection
        key = fingerprint(self.family_dir(run, family).name, sel.tstr_steps, sel.tstr_batch_size,
                          to_dict(self.cfg.classifier))  # fmt: skip
        cached = read_record(path, key)
        if cached is not None:
            return select(cached["scores"], sel)
        tic = time.monotonic()
        scores = score_candidates(self.candidates(gan), split.train, sel, self.cfg.classifier, self.seed(run))
        chosen = select(scores, sel)
        record = {"run": run, "family": family, **chosen.to_json(), "seconds": round(time.monotonic() - tic, 2)}
        write_record(path, key, record)
        return chosen

    def synthetic(self, run: int, arm: ArmConfig, split: Split) -> tuple[ClassSet | None, dict]:
        """The generated (or noise) images of an arm for this run, and a record of where they came from."""
        if arm.source == "real":
            return None, {}
        if arm.source == "noise":
            real = split.train.as_float()
            std = self.cfg.noise_std if self.cfg.noise_std is not None else float(real.std())
            t = split.train
            pool = cdata.noise_images(self.cfg.synthetic_per_class, t.num_classes, t.channels, t.image_size,
                                      float(real.mean()), std, self.seed(run), t.class_names)  # fmt: skip
            return pool, {"images": len(pool), "noise_mean": float(real.mean()), "noise_std": std}
        gan = self.gan_run(run, arm.source, split)
        candidates = self.candidates(gan)
        if arm.select:
            chosen = self.selection(run, arm.source, split, gan)
            pool = assemble(candidates, chosen.choice, split.train)
            info = {"choice": chosen.choice, "dropped": chosen.dropped}
        else:
            pool = candidates[f"step_{gan.final_step:06d}"]
            info = {"choice": [f"step_{gan.final_step:06d}"] * split.train.num_classes, "dropped": []}
        info.update(images=len(pool) if pool is not None else 0, gan_seconds=round(gan.seconds, 1))
        return pool, info

    def arm_key(self, run: int, name: str, arm: ArmConfig) -> str:
        parts = [self._data_key, self.seed(run), to_dict(self.cfg.classifier), to_dict(arm)]
        if arm.source == "noise":
            parts += [self.cfg.synthetic_per_class, self.cfg.noise_std]
        elif arm.source != "real":
            parts += [self.family_dir(run, arm.source).name, to_dict(self.cfg.selection) if arm.select else None]
        return fingerprint(*parts)

    def arm_path(self, run: int, name: str) -> Path:
        return self.results / f"r{run:02d}" / f"{name}.json"

    def cached_arm(self, run: int, name: str) -> dict | None:
        return read_record(self.arm_path(run, name), self.arm_key(run, name, self.cfg.arms[name]))

    def run_arm(self, run: int, name: str, split: Split) -> dict:
        """Train and evaluate one arm of one run; write its JSON."""
        arm = self.cfg.arms[name]
        tic = time.monotonic()
        pool, info = self.synthetic(run, arm, split)
        prep = time.monotonic() - tic
        res = train_classifier(split.train, self.cfg.classifier, pool, split.evaluation, arm.mode, arm.fraction,
                               arm.augment, self.seed(run))  # fmt: skip
        record = {
            "arm": name,
            "run": run,
            "seed": self.seed(run),
            "config": to_dict(arm),
            "final_accuracy": res.final_accuracy,
            "curve": res.curve,
            "train_images": len(split.train),
            "eval_images": len(split.evaluation),
            "synthetic": info,
            "train_seconds": round(res.seconds - res.eval_seconds, 2),
            "eval_seconds": round(res.eval_seconds, 2),
            "prep_seconds": round(prep, 2),
        }
        write_record(self.arm_path(run, name), self.arm_key(run, name, arm), record)
        log.info("run %d %s: accuracy %.3f (%.0fs)", run, name, res.final_accuracy, time.monotonic() - tic)
        return record

    # ---- the whole study ------------------------------------------------------------------------------------

    def run_one(self, run: int) -> dict[str, dict]:
        """Every arm of one run (finished ones from the cache)."""
        records = {name: self.cached_arm(run, name) for name in self.cfg.arms}
        todo = [name for name, rec in records.items() if rec is None]
        if todo:
            split = self.split(run)
            for name in todo:
                records[name] = self.run_arm(run, name, split)
            if run == 0:
                self.write_samples(split)
        return records

    def write_samples(self, split: Split) -> None:
        """Sample grids of run 0 per family (rows: classes; real training images, then generated ones)."""
        for family in self.cfg.families():
            gan = self.gan_run(0, family, split)
            final = load_pool(gan.pools[gan.final_step])
            save_class_grid(self.results / f"samples_{family}.png", split.train, final, self.cfg.samples_per_class)

    def results_by_arm(self, runs: range | list[int]) -> dict[str, dict[int, dict]]:
        """{arm: {run: record}} of the finished arms of `runs`."""
        records = {name: {run: self.cached_arm(run, name) for run in runs} for name in self.cfg.arms}
        return {name: {run: rec for run, rec in found.items() if rec is not None} for name, found in records.items()}


def run_study(
    cfg: ClsExperimentConfig,
    out: str | Path,
    results_dir: str | Path | None = None,
    runs: list[int] | None = None,
    report: bool = True,
) -> dict:
    """Run (or resume) the study and write its report; returns the summary. runs: which run indices to do now
    (default all of range(cfg.runs)); the report covers every finished run."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    setup_logging(out / "log.txt")
    atomic_write_text(out / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False))
    device = resolve_precision(cfg.classifier.precision, cfg.classifier.device).describe()
    atomic_write_text(out / "env.json", json.dumps(environment(device), indent=1))
    study = Study(cfg, out, results_dir)
    start = time.monotonic()
    for run in runs if runs is not None else range(cfg.runs):
        study.run_one(run)
        log.info("run %d done (%.0fs so far)", run, time.monotonic() - start)
    summary = summarize(cfg, study.results_by_arm(range(cfg.runs)))
    if report:
        write_report(study.results, cfg, summary)
    return summary
