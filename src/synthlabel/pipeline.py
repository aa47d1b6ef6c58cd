"""The whole chain for one experiment, as stages that skip themselves when their outputs exist:
data (demo) -> analyze -> real-data segmenter -> evaluate -> analyze with IoU, and with a generator configured:
-> train generator -> class bank -> recompose -> synthesize -> fidelity filter -> experiment (mix, train, evaluate)
-> gain report."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import yaml

from synthlabel.analyze import analyze
from synthlabel.checkpoint import atomic_write_text
from synthlabel.config import ExperimentConfig, PipelineConfig, build_config, to_dict
from synthlabel.downstream.workflow import evaluate_segmenter, open_split, select_subset, train_segmenter
from synthlabel.eval.segmentation import metrics_markdown
from synthlabel.runs import log, setup_logging


def _stage(name: str, done: Path) -> bool:
    if done.exists():
        log.info("[skip] %s: %s exists", name, done)
        return False
    log.info("[run] %s", name)
    return True


def run_pipeline(cfg: PipelineConfig) -> Path:
    """Run every stage into cfg.out; returns the path of the summary (summary.md)."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    setup_logging(out / "log.txt", role="chain")
    atomic_write_text(out / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False))
    start = time.monotonic()
    if cfg.demo is not None:
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"path": str(out / "data")})})
        if _stage("demo data", out / "data"):
            from synthlabel.data.toy import make_demo_dataset

            d = cfg.demo
            make_demo_dataset(out / "data", d.n_train, d.n_val, d.n_test, d.size, d.seed, paired=d.paired)
    eval_json = real_baseline(cfg, out)
    report = None
    if cfg.generator is not None:
        synth_dirs = synthetic_data(cfg, out)
        report = run_gain_experiment(cfg, out, synth_dirs)
    return write_summary(out, json.loads(eval_json.read_text()), time.monotonic() - start, report)


def real_baseline(cfg: PipelineConfig, out: Path) -> Path:
    """Analyze, train the real-data segmenter, evaluate it, analyze frequency vs IoU; returns the eval JSON."""
    data = cfg.data
    if _stage("analyze (label distribution)", out / "analysis_before" / "analysis.json"):
        analyze(data.path, out / "analysis_before", data.layout, data.class_map)
    seg_dir = out / "segmenter"
    if _stage("train segmenter", seg_dir / "val_metrics.json" if data.val_split else seg_dir / "done"):
        train_segmenter(cfg.seg_config(), seg_dir, resume=(seg_dir / "config.yaml").exists())
        (seg_dir / "done").touch()
    eval_json = out / f"eval_{cfg.eval_split}.json"
    if _stage(f"evaluate on {cfg.eval_split}", eval_json):
        evaluate_segmenter(
            seg_dir / "model", data.path, cfg.eval_split, data.layout, class_map=data.class_map, out=eval_json
        )
    if _stage("analyze (frequency vs IoU)", out / "analysis" / "analysis.json"):
        analyze(data.path, out / "analysis", data.layout, data.class_map, metrics_json=eval_json)
    return eval_json


def synthetic_data(cfg: PipelineConfig, out: Path) -> dict[str, Path]:
    """Generator, class bank, recomposed maps, both synthetic sets and their filters; returns {maps kind: dir}."""
    from synthlabel.generators.workflow import train_generator

    gen_dir = out / "generator"
    if _stage("train generator", gen_dir / "done"):
        train_generator(cfg.gen_config(), gen_dir, resume=(gen_dir / "config.yaml").exists())
        (gen_dir / "done").touch()
    train = select_subset(open_split(cfg.data, cfg.data.train_split), cfg.data)
    dirs = {}
    for kind in ("original", "recomposed"):
        synth_dir = out / f"synth_{kind}"
        if _stage(f"synthesize ({kind} label maps)", synth_dir / "done"):
            _synthesize(cfg, out, train, kind, synth_dir)
            (synth_dir / "done").touch()
        if _stage(f"filter ({kind})", synth_dir / "keep.txt"):
            _filter(cfg, out, synth_dir)
        dirs[kind] = synth_dir
    return dirs


def _synthesize(cfg: PipelineConfig, out: Path, train, kind: str, synth_dir: Path) -> None:
    from synthlabel.synth.synthesize import label_sources_from_dataset, label_sources_from_recomposed, synthesize

    s = cfg.synth
    sources = label_sources_from_dataset(train)
    if kind == "recomposed":
        sources = label_sources_from_recomposed(_recompose(cfg, out, train), train)
    synthesize(out / "generator" / "model", sources, synth_dir, list(s.conditions), s.k, s.seed, train.layout)


def _recompose(cfg: PipelineConfig, out: Path, train):
    """Maps aimed at the classes the real-data segmenter misses (1 - IoU on val, never test), or fixed shares."""
    from synthlabel.synth.class_bank import ClassBank
    from synthlabel.synth.recompose import recompose
    from synthlabel.synth.targets import Targets

    r, spec = cfg.synth.recompose, train.out_spec
    bank_dir = out / "bank"
    if _stage("class bank", bank_dir / "bank.json"):
        ClassBank.from_dataset(train, None, r.min_area).save(bank_dir)
    bank = ClassBank.load(bank_dir)
    if r.min_fraction:
        targets = Targets.min_fraction(r.min_fraction, spec)
    else:
        val = out / "segmenter" / "val_metrics.json"
        iou = json.loads((val if val.is_file() else out / f"eval_{cfg.eval_split}.json").read_text())["per_class_iou"]
        targets = Targets.from_iou(iou, spec, r.boost)
    maps = [train.read_label(i) for i in range(len(train))]
    n_out = max(1, round(r.maps_per_real * len(maps)))
    made = recompose(maps, bank, targets, rng_seed=r.seed, n_out=n_out, mix_prob=r.mix_prob)
    atomic_write_text(out / "bank" / "recomposed_ops.jsonl", "".join(json.dumps(m.ops) + "\n" for m in made))
    return made


def _filter(cfg: PipelineConfig, out: Path, synth_dir: Path) -> None:
    """Per-sample label fidelity by the real-data segmenter, then keep the best `keep_fraction` of the renders."""
    from synthlabel.eval.generator_metrics import fidelity_report
    from synthlabel.synth.filters import filter_samples

    d = cfg.data
    real_split = d.val_split or cfg.eval_split
    real = open_split(d, real_split)
    report = fidelity_report(out / "segmenter" / "model", synth_dir, real, out=synth_dir / "fidelity.json")
    log.info("label fidelity of %s: %.3f", synth_dir.name, report["fidelity"] or 0.0)
    filter_samples(synth_dir, report["per_sample"], keep_fraction=cfg.synth.keep_fraction)


def experiment_config(cfg: PipelineConfig, out: Path, synth_dirs: dict[str, Path]) -> ExperimentConfig:
    """The real_aug baseline plus the configured arms, on the pipeline's data, model and training settings."""
    e = cfg.experiment
    arms = [{"name": "real_aug", "kind": "real_aug"}]
    for name in e.arms:
        if name in ("real", "copy_paste"):
            arms.append({"name": name, "kind": name})
            continue
        d = synth_dirs[name.removeprefix("synthetic_")]
        source = {"path": str(d), "name": d.name, "keep": str(d / "keep.txt") if e.filtered else None}
        mix = {k: v for k, v in to_dict(e.mix).items() if k != "sources"}
        arms.append({"name": name, "kind": "synthetic", "sources": [source], "mix": mix})
    data = {
        "out": str(out / "experiment"),
        "data": to_dict(cfg.data),
        "model": to_dict(cfg.model),
        "train": to_dict(cfg.train),
        "arms": arms,
        "seeds": list(e.seeds),
        "amounts": list(e.amounts),
        "eval_split": cfg.eval_split,
    }
    return build_config(ExperimentConfig, data, source="pipeline experiment")


def reuse_real_segmenter(cfg: PipelineConfig, out: Path, exp: ExperimentConfig) -> None:
    """The real-data segmenter is the experiment's real_aug run of its seed when their configs agree: copy it there
    (the experiment then only evaluates it) instead of training the same model twice."""
    from synthlabel.experiment import RunSpec, arm_seg_config

    spec = RunSpec(exp.arms[0], 0.0, cfg.train.seed)
    target = Path(exp.out) / "runs" / spec.key
    same = to_dict(arm_seg_config(exp, spec, num_real=0)) == to_dict(cfg.seg_config())
    if (
        spec.seed not in exp.seeds
        or target.exists()
        or not same
        or not (out / "segmenter" / "train_state.pt").is_file()
    ):
        return
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(out / "segmenter", tmp)
    tmp.rename(target)
    log.info("experiment %s: reusing the real-data segmenter", spec.key)


def run_gain_experiment(cfg: PipelineConfig, out: Path, synth_dirs: dict[str, Path]) -> Path:
    from synthlabel.experiment import run_experiment

    exp = experiment_config(cfg, out, synth_dirs)
    reuse_real_segmenter(cfg, out, exp)
    return run_experiment(exp)


def write_summary(out: Path, metrics: dict, seconds: float, report: Path | None = None) -> Path:
    analysis = (out / "analysis" / "analysis.md").read_text()
    parts = [
        f"# synthlabel run: {out}",
        metrics_markdown(metrics, title=f"Real-data segmenter on {metrics['split']}"),
        "## Label distribution vs IoU\n\n" + analysis + "\n\n![frequency vs IoU](analysis/frequency_vs_iou.png)",
    ]
    if report is not None:
        gain_md = (report.parent / "report.md").read_text().split("\n## ", 2)
        parts.append("## Gain of synthetic data\n\n" + ("## " + gain_md[1] if len(gain_md) > 1 else ""))
        parts.append(f"Full report: `{report}` (open it in a browser).")
    parts.append(
        f"Outputs: `{out}/segmenter/model` (model), `{out}/eval_{metrics['split']}.json` (metrics), "
        f"`{out}/analysis/` (analysis). This invocation took {seconds:.0f} s."
    )
    atomic_write_text(out / "summary.md", "\n\n".join(parts) + "\n")
    return out / "summary.md"
