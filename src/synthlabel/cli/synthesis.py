"""Generator-side subcommands: train-gen, train-latent-gan, train-latent-labels, sample-latent, pseudo-label, bank,
synth, fidelity, filter, trust, train-translator, translate."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from synthlabel.cli.common import data_args, parse_pairs, resolved_config, training_args
from synthlabel.config import GenConfig, LatentGANConfig, LatentLabelsConfig, TranslatorConfig
from synthlabel.data.datasets import SegDataset, open_dataset
from synthlabel.data.layouts import list_images
from synthlabel.data.subset import read_split_file
from synthlabel.errors import ConfigError
from synthlabel.synth.hardness import hard_map_counts
from synthlabel.synth.targets import Targets, read_iou

# Stage modules are imported inside the commands, for speed only (see synthlabel.cli).


def cmd_train_gen(a: argparse.Namespace) -> int:
    from synthlabel.generators.workflow import train_generator

    cfg = resolved_config(GenConfig, a)
    if a.dry_run:
        return 0
    result = train_generator(cfg, a.out, resume=a.resume)
    print(f"generator: {result.model_dir} (samples in {result.samples_dir})")
    return 0


def cmd_train_translator(a: argparse.Namespace) -> int:
    from synthlabel.generators.translation import train_translator

    cfg = resolved_config(TranslatorConfig, a)
    if a.dry_run:
        return 0
    result = train_translator(cfg, a.out, resume=a.resume)
    print(f"translator: {result.model_dir} (samples in {result.samples_dir})")
    return 0


def cmd_train_latent_gan(a: argparse.Namespace) -> int:
    from synthlabel.generators.latent import train_latent_gan

    cfg = resolved_config(LatentGANConfig, a)
    if a.dry_run:
        return 0
    result = train_latent_gan(cfg, a.out, resume=a.resume)
    print(f"latent GAN: {result.model_dir} (samples in {result.samples_dir})")
    return 0


def cmd_train_latent_labels(a: argparse.Namespace) -> int:
    from synthlabel.latent.stage import train_latent_labels

    cfg = resolved_config(LatentLabelsConfig, a)
    if a.dry_run:
        return 0
    result = train_latent_labels(cfg, a.out, resume=a.resume)
    test = "" if result.test_miou is None else f"; the head on inverted test images: mIoU {100 * result.test_miou:.1f}"
    print(f"encoder and label head in {result.run_dir}{test}")
    return 0


def cmd_sample_latent(a: argparse.Namespace) -> int:
    from synthlabel.latent.stage import sample_latent_dataset

    out = sample_latent_dataset(a.run, a.gan, a.out, a.n, a.seed, a.ignore_quantile, a.drop, a.out_split, a.layout)
    print(f"labeled pairs in {out} (keep.txt leaves out the most uncertain; uncertain pixels are ignore)")
    return 0


def cmd_pseudo_label(a: argparse.Namespace) -> int:
    from synthlabel.synth.pseudo import pseudo_label

    source = Path(a.images)
    if (source / "classes.json").is_file() or any(source.glob("*annot")):  # a dataset: its split's images only
        images = [r.image for r in open_dataset(source, a.split).records]
    else:
        images = list_images(source) if source.is_dir() else []
    if a.exclude:
        skip = set(Path(a.exclude).read_text().split())
        images = [p for p in images if p.name not in skip]
    out = pseudo_label(a.segmenter, images, a.out, a.confidence, a.out_split, a.layout)
    print(f"pseudo-labeled set: {out} (unconfident pixels are ignore)")
    return 0


def cmd_bank(a: argparse.Namespace) -> int:
    from synthlabel.synth.class_bank import ClassBank

    ds = open_dataset(a.path, a.split, a.layout, class_map=a.class_map)
    bank = ClassBank.from_dataset(ds, a.classes.split(",") if a.classes else None, a.min_area)
    bank.save(a.out)
    for cid in bank.classes:
        print(f"{ds.out_spec.names[cid]}: {len(bank.segments(cid))} segments")
    print(f"class bank written to {a.out}")
    return 0


def _recomposed(a: argparse.Namespace, ds: SegDataset) -> list:
    from synthlabel.synth.class_bank import ClassBank
    from synthlabel.synth.recompose import recompose_dataset

    if not a.bank:
        raise ConfigError("--maps recomposed/both needs --bank DIR (build it with `synthlabel bank`)")
    bank = ClassBank.load(a.bank)
    if a.targets:
        targets = Targets.from_yaml(a.targets, ds.out_spec)
    else:
        targets = Targets.min_fraction(parse_pairs(a.min_fraction, "--min-fraction"), ds.out_spec)
    return recompose_dataset(ds, bank, targets, a.n_out, a.seed, a.mix_prob)


def cmd_synth(a: argparse.Namespace) -> int:
    from synthlabel.synth.synthesize import SynthesizeConfig, synthesize_from_config

    ds = open_dataset(a.data, a.split, a.layout, class_map=a.class_map)
    if a.subset:
        ds = ds.subset(read_split_file(a.subset, ds))
    conditions = a.conditions.split(",") if a.conditions else []
    cfg = SynthesizeConfig(
        generator=a.generator, maps=a.maps, conditions=conditions, k=a.k, seed=a.seed, split=a.out_split
    )
    recomposed = _recomposed(a, ds) if a.maps in ("recomposed", "both") else None
    counts = None
    if a.hard_maps:  # hard-map resampling from a segmenter's validation IoU (eval-seg's JSON)
        counts = hard_map_counts(ds, read_iou(a.hard_maps), a.k, a.hard_extra)
    out = synthesize_from_config(cfg, ds, a.out, recomposed, counts)
    print(f"synthetic dataset written to {out} (manifest.jsonl lists every sample)")
    return 0


def cmd_fidelity(a: argparse.Namespace) -> int:
    from synthlabel.downstream.workflow import fidelity_report

    out = a.out or Path(a.synth) / "fidelity.json"
    r = fidelity_report(a.segmenter, a.synth, a.real, a.synth_split, a.real_split, out=out)
    print(
        f"label fidelity {r['fidelity']:.3f} (synthetic mIoU {100 * r['synthetic_miou']:.1f} / real "
        f"{a.real_split} mIoU {100 * r['real_miou']:.1f}); report: {out}"
    )
    return 0


def cmd_filter(a: argparse.Namespace) -> int:
    from synthlabel.synth.filters import filter_samples

    scores = json.loads(Path(a.scores).read_text())
    scores = scores.get("per_sample", scores)
    quotas = parse_pairs(a.quota, "--quota") or None
    kept = filter_samples(a.synth, scores, a.threshold, quotas, a.keep_fraction, a.split)
    print(f"kept {len(kept)} of {len(scores)} samples; {Path(a.synth) / 'keep.txt'} works as data.subset.file")
    return 0


def cmd_trust(a: argparse.Namespace) -> int:
    from synthlabel.synth.trust import write_trust_maps

    reference = open_dataset(a.real, a.real_split, class_map=a.class_map) if a.real else None
    r = write_trust_maps(a.synth, a.segmenter, a.tolerance, a.disagreement, a.split, keep=a.keep, reference=reference)
    print(
        f"trust maps written to {Path(a.synth) / 'trust'}: {100 * r['untrusted_share']:.1f}% of labeled pixels not "
        f"trusted (tolerance {a.tolerance:g}); training with this source ignores them"
    )
    return 0


def cmd_translate(a: argparse.Namespace) -> int:
    from synthlabel.synth.translate import translate

    ds = open_dataset(a.data, a.split, a.layout)
    if a.subset:
        ds = ds.subset(read_split_file(a.subset, ds))
    method = "model" if a.model and a.method == "photometric" else a.method
    out = translate(ds, a.out, a.conditions.split(","), method, a.k, a.seed, a.out_split, a.segmenter, a.model)
    print(f"translated dataset written to {out} (labels copied from the sources; manifest.jsonl lists every sample)")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("train-gen", help="train a label map -> image generator (spade, pix2pix)")
    training_args(s, "runs/generator")
    s.set_defaults(fn=cmd_train_gen)

    s = sub.add_parser(
        "train-translator",
        help="train a condition translator (day -> dusk, ...) from labeled source images and unlabeled target ones",
    )
    training_args(s, "runs/translator")
    s.set_defaults(fn=cmd_train_translator)

    s = sub.add_parser("train-latent-gan", help="train an unconditional latent GAN (stylegan) on unlabeled images")
    training_args(s, "runs/latent_gan")
    s.set_defaults(fn=cmd_train_latent_gan)

    s = sub.add_parser("train-latent-labels", help="inversion encoder + pixel label head on a latent GAN's features")
    training_args(s, "runs/latent_labels")
    s.set_defaults(fn=cmd_train_latent_labels)

    s = sub.add_parser("sample-latent", help="sample labeled pairs from a latent GAN and its label head")
    s.add_argument("run", help="train-latent-labels run directory (head/)")
    s.add_argument("--gan", required=True, help="the latent GAN model directory")
    s.add_argument("--n", type=int, required=True, help="number of labeled pairs")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--ignore-quantile", type=float, default=0.9, help="pixels above this JS quantile -> ignore")
    s.add_argument("--drop", type=float, default=0.1, help="share of the most uncertain images left out of keep.txt")
    s.add_argument("--layout", default="camvid", choices=["camvid", "folders"])
    s.add_argument("--out", required=True)
    s.add_argument("--out-split", default="train")
    s.set_defaults(fn=cmd_sample_latent)

    s = sub.add_parser(
        "pseudo-label", help="self-training data: a segmenter labels unlabeled images (confident pixels)"
    )
    s.add_argument("images", help="a folder of unlabeled images, or a dataset (its --split images; masks unread)")
    s.add_argument("--segmenter", required=True)
    s.add_argument("--confidence", type=float, default=0.9, help="pixels below this top probability -> ignore")
    s.add_argument("--split", default="train")
    s.add_argument("--exclude", help="split file of images to leave out (e.g. the labeled subset)")
    s.add_argument("--layout", default="camvid", choices=["camvid", "folders"])
    s.add_argument("--out", required=True)
    s.add_argument("--out-split", default="train")
    s.set_defaults(fn=cmd_pseudo_label)

    s = sub.add_parser("bank", help="build the class bank: per-class segments with position/scale/neighbours")
    data_args(s)
    s.add_argument("--split", default="train")
    s.add_argument("--classes", help="comma-separated class names to bank (default: all)")
    s.add_argument("--min-area", type=int, default=8)
    s.add_argument("--out", required=True)
    s.set_defaults(fn=cmd_bank)

    _add_synth_parser(sub)
    _add_filter_parsers(sub)


def _add_synth_parser(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("synth", help="render label maps (original and/or recomposed) into a labeled dataset")
    s.add_argument("generator", help="generator model directory (from train-gen)")
    s.add_argument("--data", required=True, help="dataset whose label maps are rendered")
    s.add_argument("--split", default="train")
    s.add_argument("--layout", default="auto")
    s.add_argument("--class-map")
    s.add_argument("--subset", help="split file: render only these maps (e.g. the low-shot subset)")
    s.add_argument("--out", required=True)
    s.add_argument("--out-split", default="train")
    s.add_argument("--maps", default="original", choices=["original", "recomposed", "both"])
    s.add_argument("--bank", help="class bank directory (for recomposed maps)")
    s.add_argument("--min-fraction", nargs="*", help="recomposition targets, e.g. Pole=0.03 Pedestrian=3%%")
    s.add_argument("--targets", help="targets YAML (min_fraction / iou_file + total_boost)")
    s.add_argument("--n-out", type=int, help="number of recomposed maps (default: one per map)")
    s.add_argument("--mix-prob", type=float, default=0.0)
    s.add_argument("--conditions", help="comma-separated conditions to render (default: unconditioned)")
    s.add_argument("--k", type=int, default=1, help="renders per map and condition")
    s.add_argument("--hard-maps", help="eval-seg JSON on validation: extra renders for the maps holding hard classes")
    s.add_argument("--hard-extra", type=float, default=1.0, help="extra renders per map, shared out by hardness")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(fn=cmd_synth)


def _add_filter_parsers(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("fidelity", help="label fidelity of a synthetic set with a segmenter trained on real data")
    s.add_argument("segmenter", help="segmenter model directory")
    s.add_argument("--synth", required=True)
    s.add_argument("--synth-split", default="train")
    s.add_argument("--real", required=True, help="real dataset (its test split is the reference)")
    s.add_argument("--real-split", default="test")
    s.add_argument("--out")
    s.set_defaults(fn=cmd_fidelity)

    s = sub.add_parser("filter", help="drop low-fidelity synthetic samples, keeping per-class quotas")
    s.add_argument("synth")
    s.add_argument("--scores", required=True, help="fidelity JSON (per_sample) or a file -> score JSON")
    s.add_argument("--threshold", type=float)
    s.add_argument("--keep-fraction", type=float)
    s.add_argument("--quota", nargs="*", help="e.g. Pedestrian=0.8: keep at least 80%% of samples with the class")
    s.add_argument("--split", default="train")
    s.set_defaults(fn=cmd_filter)

    s = sub.add_parser("trust", help="per-pixel trust maps of a synthetic set from real-data segmenter losses")
    s.add_argument("synth")
    s.add_argument("--segmenter", nargs="+", required=True, help="real-data segmenter model directories")
    s.add_argument("--tolerance", type=float, default=1.25, help="untrusted above this x the class's mean loss")
    s.add_argument("--disagreement", action="store_true", help="also untrusted where the segmenters disagree")
    s.add_argument("--keep", help="keep.txt of `filter`: maps for these samples only")
    s.add_argument("--split", default="train")
    s.add_argument("--real", help="real dataset whose images (unseen in training) set the class-wise mean losses")
    s.add_argument("--real-split", default="val")
    s.add_argument("--class-map", help="class map of the real dataset into the synthetic set's classes")
    s.set_defaults(fn=cmd_trust)

    s = sub.add_parser("translate", help="render labeled images in other conditions (dusk, night, fog, snow)")
    s.add_argument("--data", required=True, help="labeled dataset to translate")
    s.add_argument("--split", default="train")
    s.add_argument("--layout", default="auto")
    s.add_argument("--subset", help="split file: translate only these samples (e.g. the day images)")
    s.add_argument("--conditions", required=True, help="comma-separated target conditions, e.g. dusk,night")
    s.add_argument(
        "--method",
        default="photometric",
        choices=["photometric", "model"],
        help="photometric (image operations) or model (a translator from train-translator, --model)",
    )
    s.add_argument("--model", help="translator directory (train-translator's model/); implies --method model")
    s.add_argument("--k", type=int, default=1, help="translations per sample and condition")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--segmenter", help="real-data segmenter: per-sample label consistency in consistency.json")
    s.add_argument("--out", required=True)
    s.add_argument("--out-split", default="train")
    s.set_defaults(fn=cmd_translate)
