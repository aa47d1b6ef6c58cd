"""The whole chain for one experiment, as stages that skip themselves when their outputs exist:
data (demo, validation split) -> analyze -> real-data segmenter -> evaluate -> analyze with IoU, and with a generator:
-> train generator -> class bank -> recompose -> synthesize -> fidelity filter -> experiment -> gain report; with
`translate`: -> train translator -> translate -> the experiment's `translated` arm; with `latent`: -> latent GAN ->
encoder + label head -> sampled pairs -> the `latent` arm."""

from __future__ import annotations

import json
import time
from pathlib import Path

import yaml
from PIL import Image

from synthlabel.analyze import analyze
from synthlabel.cache import Ledger, fingerprint
from synthlabel.checkpoint import atomic_write_text
from synthlabel.config import (
    ExperimentConfig,
    LatentGANConfig,
    LatentLabelsConfig,
    PipelineConfig,
    TranslatorConfig,
    build_config,
    to_dict,
)
from synthlabel.data.datasets import SegDataset
from synthlabel.data.toy import make_demo_dataset
from synthlabel.downstream.workflow import (
    evaluate_segmenter,
    fidelity_report,
    open_split,
    select_subset,
    settle_validation,
    train_segmenter,
)
from synthlabel.errors import ConfigError
from synthlabel.eval.segmentation import metrics_markdown
from synthlabel.experiment import RunSpec, adopt_run, num_real_images, run_experiment
from synthlabel.generators.latent import train_latent_gan
from synthlabel.generators.translation import train_translator
from synthlabel.generators.workflow import train_generator
from synthlabel.latent.stage import sample_latent_dataset, train_latent_labels
from synthlabel.runs import log, setup_logging
from synthlabel.synth.class_bank import ClassBank
from synthlabel.synth.filters import filter_samples
from synthlabel.synth.hardness import hard_map_counts
from synthlabel.synth.recompose import Recomposed, recompose_dataset
from synthlabel.synth.synthesize import SynthesizeConfig, synthesize_from_config
from synthlabel.synth.targets import Targets, read_iou
from synthlabel.synth.translate import translate
from synthlabel.synth.trust import write_trust_maps

MAX_SIDE = 256  # default working resolution cap: the chain trains GANs, on CPUs too


class Chain:
    """One `synthlabel run`: its resolved config, output folder and stage ledger (`<out>/stages.json`). Each stage's
    key is the fingerprint of its own settings and of the keys of the stages it reads, so a config change re-runs
    the stages it reaches and nothing else."""

    def __init__(self, cfg: PipelineConfig, out: Path):
        self.cfg, self.out = cfg, out
        self.ledger = Ledger(out / "stages.json")
        self.keys: dict[str, str] = {}

    def stage(self, name: str, key: str, outputs: list[Path], run) -> str:
        """Run `run(resume)` unless `name` finished under `key` with its outputs present; returns the key."""
        self.keys[name] = key
        if self.ledger.done(name, key, *outputs):
            log.info("[skip] %s: done with these settings", name)
            return key
        resume = self.ledger.begin(name, key, *outputs)
        log.info("[run] %s%s", name, " (resuming)" if resume else "")
        run(resume)
        self.ledger.finish(name, key)
        return key


def run_pipeline(cfg: PipelineConfig) -> Path:
    """Run every stage into cfg.out; returns the path of the summary (summary.md)."""
    t = cfg.translate
    if t is not None and t.method == "model" and not t.target and not (cfg.demo and cfg.demo.unlabeled):
        raise ConfigError("translate.method 'model' needs translate.target: a folder of unlabeled target images")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    setup_logging(out / "log.txt", role="chain")
    start = time.monotonic()
    cfg = prepare_data(cfg, out)
    atomic_write_text(out / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False))
    chain = Chain(cfg, out)
    chain.keys["data"] = fingerprint(to_dict(cfg.data), to_dict(cfg.demo) if cfg.demo else None)
    eval_json = real_baseline(chain)
    report, synth_dirs = None, {}
    if cfg.generator is not None:
        synth_dirs |= synthetic_data(chain)
    if cfg.translate is not None:
        synth_dirs["translated"] = translated_data(chain)
    if cfg.latent is not None:
        synth_dirs["latent"] = latent_data(chain)
    if synth_dirs:
        report = run_gain_experiment(chain, synth_dirs)
    return write_summary(out, json.loads(eval_json.read_text()), time.monotonic() - start, report)


def prepare_data(cfg: PipelineConfig, out: Path) -> PipelineConfig:
    """Write the demo data when configured and settle the validation split, before any training: the configured
    one, else one carved from train (`cfg.holdout`). Returns the resolved config every stage runs with."""
    if cfg.demo is not None:
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"path": str(out / "data")})})
        d = cfg.demo
        Chain(cfg, out).stage(
            "demo data",
            fingerprint(to_dict(d)),
            [out / "data"],
            lambda _: make_demo_dataset(
                out / "data",
                d.n_train,
                d.n_val,
                d.n_test,
                d.size,
                d.seed,
                condition_weights=d.condition_weights,
                paired=d.paired,
                unlabeled=d.unlabeled,
            ),  # fmt: skip
        )
        if d.unlabeled and cfg.translate is not None and not cfg.translate.target:  # the demo's unlabeled scenes
            target = str(out / "data" / "unlabeled")
            cfg = cfg.model_copy(update={"translate": cfg.translate.model_copy(update={"target": target})})
    cfg = with_working_size(cfg)
    data = cfg.data
    open_split(data, cfg.eval_split)  # a missing test split fails now, not after hours of training
    return cfg.model_copy(update={"data": settle_validation(data, cfg.holdout, out)})


def working_size(native: tuple[int, int], max_side: int = MAX_SIDE, multiple: int = 16) -> tuple[int, int]:
    """(H, W) of data we have never seen: the native size, scaled down so the long side is at most `max_side`, each
    side rounded down to a multiple of `multiple` (what the default generators' up-sampling levels need)."""
    scale = min(1.0, max_side / max(native))
    return tuple(max(multiple, int(s * scale) // multiple * multiple) for s in native)


def with_working_size(cfg: PipelineConfig) -> PipelineConfig:
    """The config with data.size set: as configured, else `working_size` of the first training image (so images of
    varying sizes and sizes the generator cannot take still run); stated in the log and the resolved config."""
    if cfg.data.size is not None:
        return cfg
    first = open_split(cfg.data, cfg.data.train_split).records[0].image
    with Image.open(first) as image:
        native = (image.height, image.width)
    size = working_size(native)
    log.info("data.size not set: working size %dx%d (HxW) from %s (%dx%d)", *size, first.name, *native)
    return cfg.model_copy(update={"data": cfg.data.model_copy(update={"size": size})})


def evaluate(chain: Chain, split: str, name: str) -> Path:
    """The real-data segmenter's metrics on `split`, written to eval_<name>.json."""
    path, d = chain.out / f"eval_{name}.json", chain.cfg.data
    model = chain.out / "segmenter" / "model"
    chain.stage(
        f"evaluate on {name}",
        fingerprint(chain.keys["train segmenter"], split),
        [path],
        lambda _: evaluate_segmenter(model, d.path, split, d.layout, class_map=d.class_map, out=path),
    )
    return path


def real_baseline(chain: Chain) -> Path:
    """Analyze, train the real-data segmenter, evaluate it, analyze frequency vs IoU; returns the test eval JSON."""
    cfg, out, data = chain.cfg, chain.out, chain.cfg.data
    before, after, seg_dir = out / "analysis_before", out / "analysis", out / "segmenter"
    chain.stage(
        "analyze (label distribution)",
        fingerprint("analyze", chain.keys["data"]),
        [before],
        lambda _: analyze(data.path, before, data.layout, data.class_map),
    )
    seg_cfg = cfg.seg_config()
    chain.stage(
        "train segmenter",
        fingerprint(to_dict(seg_cfg), chain.keys["data"]),
        [seg_dir],
        lambda resume: train_segmenter(seg_cfg, seg_dir, resume=resume and (seg_dir / "config.yaml").exists()),
    )
    eval_json = evaluate(chain, cfg.eval_split, cfg.eval_split)
    chain.stage(
        "analyze (frequency vs IoU)",
        fingerprint(chain.keys[f"evaluate on {cfg.eval_split}"]),
        [after],
        lambda _: analyze(data.path, after, data.layout, data.class_map, metrics_json=eval_json),
    )
    return eval_json


def synthetic_data(chain: Chain) -> dict[str, Path]:
    """Generator, class bank, recomposed maps, both synthetic sets and their filters; returns {maps kind: dir}."""
    cfg, out = chain.cfg, chain.out
    gen_dir, gen_cfg = out / "generator", cfg.gen_config()
    chain.stage(
        "train generator",
        fingerprint(to_dict(gen_cfg), chain.keys["data"]),
        [gen_dir],
        lambda resume: train_generator(gen_cfg, gen_dir, resume=resume and (gen_dir / "config.yaml").exists()),
    )
    train = select_subset(open_split(cfg.data, cfg.data.train_split), cfg.data)
    dirs = {}
    for kind in ("original", "recomposed"):
        dirs[kind] = synth_dir = out / f"synth_{kind}"
        maps_key = recompose_key(chain, train) if kind == "recomposed" else "original"
        s = {k: v for k, v in to_dict(cfg.synth).items() if k not in ("keep_fraction", "trust_tolerance")}
        if kind == "original" and cfg.synth.hard_maps > 0:  # the counts follow the segmenter's val IoU
            maps_key = fingerprint(maps_key, chain.keys["train segmenter"], cfg.data.val_split)
        key = chain.stage(
            f"synthesize ({kind} label maps)",
            fingerprint(chain.keys["train generator"], s, maps_key),
            [synth_dir],
            lambda _, kind=kind, synth_dir=synth_dir: synthesize(chain, train, kind, synth_dir),
        )
        key = chain.stage(
            f"filter ({kind})",
            fingerprint(key, chain.keys["train segmenter"], cfg.synth.keep_fraction, cfg.data.val_split),
            [synth_dir / "keep.txt", synth_dir / "fidelity.json"],
            lambda _, synth_dir=synth_dir: filter_by_fidelity(chain, synth_dir),
        )
        if cfg.synth.trust_tolerance is not None:
            chain.stage(
                f"trust maps ({kind})",
                fingerprint(key, chain.keys["train segmenter"], cfg.synth.trust_tolerance, cfg.data.val_split),
                [synth_dir / "trust"],
                lambda _, synth_dir=synth_dir: write_trust_maps(
                    synth_dir,
                    [chain.out / "segmenter" / "model"],
                    cfg.synth.trust_tolerance,
                    keep=synth_dir / "keep.txt",
                ),  # fmt: skip
            )
    return dirs


def translated_data(chain: Chain) -> Path:
    """The translator (method "model"; semantic consistency from the real-data segmenter) and the training images
    translated into the target conditions, labels copied from their sources; returns the translated set's dir."""
    cfg, out, t = chain.cfg, chain.out, chain.cfg.translate
    model = None
    if t.method == "model":
        tr_dir, seg = out / "translator", out / "segmenter" / "model"
        tr_cfg = TranslatorConfig(data=cfg.data, target=t.target, conditions=t.conditions, segmenter=str(seg),
                                  source_condition=t.source_condition, model=t.model, train=t.train)  # fmt: skip
        chain.stage(
            "train translator",
            fingerprint(to_dict(tr_cfg), chain.keys["data"], chain.keys["train segmenter"]),
            [tr_dir],
            lambda resume: train_translator(tr_cfg, tr_dir, resume=resume and (tr_dir / "config.yaml").exists()),
        )
        model = tr_dir / "model"
    target = out / "translated"
    raw = cfg.data.model_copy(update={"class_map": None})  # masks are copied as they are on disk
    train = select_subset(open_split(raw, raw.train_split), raw)
    if t.source_condition is not None:
        train = train.subset([i for i, r in enumerate(train.records) if r.meta.get("condition") == t.source_condition])
    chain.stage(
        "translate",
        fingerprint(chain.keys.get("train translator", t.method), t.conditions, t.k, t.seed, t.source_condition),
        [target],
        lambda _: translate(
            train, target, t.conditions, t.method, t.k, t.seed, cfg.data.train_split, out / "segmenter" / "model", model
        ),  # fmt: skip
    )
    return target


def latent_data(chain: Chain) -> Path:
    """The latent GAN on every train image, the encoder and label head on the labeled ones, the sampled pairs."""
    cfg, out, lt = chain.cfg, chain.out, chain.cfg.latent
    gan_dir, labels_dir, target = out / "latent_gan", out / "latent_labels", out / "latent"
    gan_cfg = LatentGANConfig(data=cfg.data, model=lt.model, train=lt.train)
    chain.stage(
        "train latent GAN",
        fingerprint(to_dict(gan_cfg), chain.keys["data"]),
        [gan_dir],
        lambda resume: train_latent_gan(gan_cfg, gan_dir, resume=resume and (gan_dir / "config.yaml").exists()),
    )
    labels_cfg = LatentLabelsConfig(data=cfg.data, gan=str(gan_dir / "model"), encoder=lt.encoder, head=lt.head,
                                    seed=lt.seed)  # fmt: skip
    chain.stage(
        "train latent labels",
        fingerprint(to_dict(labels_cfg), chain.keys["train latent GAN"]),
        [labels_dir],
        lambda resume: train_latent_labels(
            labels_cfg, labels_dir, resume=resume and (labels_dir / "config.yaml").exists()
        ),
    )
    chain.stage(
        "sample latent labels",
        fingerprint(chain.keys["train latent labels"], lt.samples, lt.seed, lt.ignore_quantile, lt.drop_fraction),
        [target],
        lambda _: sample_latent_dataset(
            labels_dir,
            gan_dir / "model",
            target,
            lt.samples,
            lt.seed,
            lt.ignore_quantile,
            lt.drop_fraction,
            cfg.data.train_split,
            layout=_writable_layout(cfg),
        ),  # fmt: skip
    )
    return target


def _writable_layout(cfg: PipelineConfig) -> str:
    """The layout synthetic sets are written in: the data's own unless it is cityscapes (labelIds only)."""
    name = open_split(cfg.data, cfg.data.train_split).layout
    return name if name in ("camvid", "folders") else "camvid"


def synthesize(chain: Chain, train: SegDataset, kind: str, synth_dir: Path) -> None:
    """Render the training label maps (`original`) or maps recomposed from them with the trained generator."""
    s, out = chain.cfg.synth, chain.out
    options = {"maps": kind, "conditions": list(s.conditions), "k": s.k, "seed": s.seed, "layout": train.layout}
    synth = SynthesizeConfig(generator=str(out / "generator" / "model"), **options)
    counts = None
    if kind == "original" and s.hard_maps > 0:
        iou = read_iou(evaluate(chain, chain.cfg.data.val_split, "val"))
        counts = hard_map_counts(train, iou, s.k, s.hard_maps)
    synthesize_from_config(synth, train, synth_dir, recompose(chain, train) if kind == "recomposed" else None, counts)


def recompose_key(chain: Chain, train: SegDataset) -> str:
    """Key of the recomposed maps: the class bank (built here as its own stage) and what steers the targets."""
    r, bank = chain.cfg.synth.recompose, chain.out / "bank"
    bank_key = chain.stage(
        "class bank",
        fingerprint(chain.keys["data"], r.min_area),
        [bank],
        lambda _: ClassBank.from_dataset(train, None, r.min_area).save(bank),
    )
    steer = "fixed" if r.min_fraction else fingerprint(chain.keys["train segmenter"], chain.cfg.data.val_split)
    return fingerprint(bank_key, to_dict(r), steer)


def recompose(chain: Chain, train: SegDataset) -> list[Recomposed]:
    """Maps aimed at the classes the real-data segmenter misses (1 - IoU on the validation split), or fixed shares."""
    cfg, out = chain.cfg, chain.out
    r, spec = cfg.synth.recompose, train.out_spec
    if r.min_fraction:
        targets = Targets.min_fraction(r.min_fraction, spec)
    else:
        targets = Targets.from_iou(read_iou(evaluate(chain, cfg.data.val_split, "val")), spec, r.boost)
    n_out = max(1, round(r.maps_per_real * len(train)))
    ops_file = out / "bank" / "recomposed_ops.jsonl"
    return recompose_dataset(train, ClassBank.load(out / "bank"), targets, n_out, r.seed, r.mix_prob, ops_file)


def filter_by_fidelity(chain: Chain, synth_dir: Path) -> None:
    """Per-sample label fidelity by the real-data segmenter (the validation split is the real reference), then keep
    the best `keep_fraction` of the renders."""
    cfg = chain.cfg
    real = open_split(cfg.data, cfg.data.val_split)
    report = fidelity_report(chain.out / "segmenter" / "model", synth_dir, real, out=synth_dir / "fidelity.json")
    log.info("label fidelity of %s: %.3f", synth_dir.name, report["fidelity"] or 0.0)
    filter_samples(synth_dir, report["per_sample"], keep_fraction=cfg.synth.keep_fraction)


def experiment_config(cfg: PipelineConfig, out: Path, synth_dirs: dict[str, Path]) -> ExperimentConfig:
    """The real_aug baseline plus the configured arms, on the pipeline's data, model and training settings."""
    e = cfg.experiment
    arms = [{"name": "real_aug", "kind": "real_aug"}]
    wanted = [*e.arms, *(kind for kind in ("translated", "latent") if kind in synth_dirs and kind not in e.arms)]
    for name in wanted:
        if name in ("real", "copy_paste"):
            arms.append({"name": name, "kind": name})
            continue
        d = synth_dirs.get(name.removeprefix("synthetic_"))
        if d is None:
            log.info("experiment arm %s left out: this chain makes no %s set", name, name.removeprefix("synthetic_"))
            continue
        filtered = e.filtered and (d / "keep.txt").is_file()  # translations are not filtered by the chain
        source = {"path": str(d), "name": d.name, "keep": str(d / "keep.txt") if filtered else None}
        mix = {k: v for k, v in to_dict(e.mix).items() if k != "sources"}
        arms.append({"name": name, "kind": "synthetic", "sources": [source], "mix": mix})
    data = {k: v for k, v in to_dict(cfg).items() if k in ("data", "model", "train", "eval_split")}
    data |= {"out": str(out / "experiment"), "arms": arms, "seeds": list(e.seeds), "amounts": list(e.amounts),
             "budget": to_dict(e.budget)}  # fmt: skip
    return build_config(ExperimentConfig, data, source="pipeline experiment")


def run_gain_experiment(chain: Chain, synth_dirs: dict[str, Path]) -> Path:
    """The experiment (its runs are cached by their own fingerprints); the real-data segmenter is adopted as the
    real_aug run of its seed when the configs agree, instead of training the same model twice."""
    exp = experiment_config(chain.cfg, chain.out, synth_dirs)
    spec = RunSpec(exp.arms[0], 0.0, chain.cfg.train.seed)
    if spec.seed in exp.seeds:
        adopt_run(exp, spec, chain.out / "segmenter", num_real_images(exp))
    return run_experiment(exp)


def report_sections(path: Path) -> dict[str, str]:
    """{section title: body} of an experiment's report.md (its `## ` sections)."""
    chunks = path.read_text().split("\n## ")[1:]
    return {c.split("\n", 1)[0].strip(): c.split("\n", 1)[1].strip() + "\n" for c in chunks if "\n" in c}


def write_summary(out: Path, metrics: dict, seconds: float, report: Path | None = None) -> Path:
    analysis = (out / "analysis" / "analysis.md").read_text()
    parts = [f"# synthlabel run: {out}"]
    sections = report_sections(report.parent / "report.md") if report is not None else {}
    if "Verdict" in sections:  # what to do, first
        parts.append("## Verdict\n\n" + sections["Verdict"])
    parts += [
        metrics_markdown(metrics, title=f"Real-data segmenter on {metrics['split']}"),
        "## Label distribution vs IoU\n\n" + analysis + "\n\n![frequency vs IoU](analysis/frequency_vs_iou.png)",
    ]
    if report is not None:
        headline = next((body for title, body in sections.items() if title.startswith("Headline")), "")
        parts.append("## Gain of synthetic data\n\n" + headline)
        per_condition = next((body for title, body in sections.items() if title.startswith("Per condition")), "")
        if per_condition:  # the condition gap: each arm's test mIoU on each condition's images
            parts.append("## Per condition (test mIoU)\n\n" + per_condition)
        parts.append(f"Full report: `{report}` (open it in a browser).")
    parts.append(
        f"Outputs: `{out}/segmenter/model` (model), `{out}/eval_{metrics['split']}.json` (metrics), "
        f"`{out}/analysis/` (analysis). This invocation took {seconds:.0f} s."
    )
    atomic_write_text(out / "summary.md", "\n\n".join(parts) + "\n")
    return out / "summary.md"
