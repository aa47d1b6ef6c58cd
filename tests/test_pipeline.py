"""`synthlabel run` on data without a validation split: validation is carved from train before any training, and
every stage that steers (segmenter validation, recomposition targets, filter reference, experiment) uses it; the
test split is only reported. Data that cannot serve the chain stops it before any training."""

from __future__ import annotations

import inspect
import json

import pytest
import yaml

from synthlabel import pipeline
from synthlabel.data.datasets import open_dataset
from synthlabel.errors import ConfigError, DataError
from synthlabel.synth.targets import Targets, read_iou

ARMS = "experiment.arms=[synthetic_recomposed]"


def spy(monkeypatch, name: str) -> list[dict]:
    """Record the arguments of every call of pipeline.<name> (by parameter name), then call it."""
    real, calls = getattr(pipeline, name), []

    def wrapper(*args, **kwargs):
        calls.append(inspect.signature(real).bind(*args, **kwargs).arguments)
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, name, wrapper)
    return calls


def test_without_val_split_every_stage_steers_on_a_part_carved_from_train(tmp_path, monkeypatch, tiny_chain):
    out = tmp_path / "run"
    calls = {
        name: spy(monkeypatch, name)
        for name in ("train_segmenter", "evaluate_segmenter", "recompose_dataset", "fidelity_report", "run_experiment")
    }
    pipeline.run_pipeline(tiny_chain(out, ARMS, "demo.n_val=0"))
    train_split, val_split = f"train@{out / 'holdout' / 'train.txt'}", f"train@{out / 'holdout' / 'val.txt'}"
    resolved = yaml.safe_load((out / "config.yaml").read_text())["data"]
    assert (resolved["train_split"], resolved["val_split"]) == (train_split, val_split)
    held, rest = ((out / "holdout" / f).read_text().split() for f in ("val.txt", "train.txt"))
    assert len(held) == 2 and sorted(held + rest) == [r.image.name for r in open_dataset(out / "data").records]
    assert "no 'val' split in" in (out / "log.txt").read_text()

    assert [c["cfg"].data.val_split for c in calls["train_segmenter"]] == [val_split]
    assert json.loads((out / "segmenter" / "val_metrics.json").read_text())["miou"] >= 0  # validated on the part
    assert sorted(c["split"] for c in calls["evaluate_segmenter"]) == sorted([val_split, "test"])
    eval_val = json.loads((out / "eval_val.json").read_text())
    assert eval_val["split"] == val_split
    (recompose,) = calls["recompose_dataset"]
    spec = recompose["dataset"].out_spec
    assert recompose["targets"] == Targets.from_iou(read_iou(out / "eval_val.json"), spec, 0.1)
    assert [c["real_test"].split for c in calls["fidelity_report"]] == [val_split, val_split]
    (experiment,) = calls["run_experiment"]
    assert (experiment["cfg"].data.train_split, experiment["cfg"].data.val_split) == (train_split, val_split)
    assert (out / "synth_recomposed" / "keep.txt").is_file() and (out / "summary.md").is_file()


def test_a_validation_split_is_used_as_it_is(tmp_path, tiny_chain):
    cfg = pipeline.prepare_data(tiny_chain(tmp_path, ARMS, "demo.n_val=2"), tmp_path)
    assert (cfg.data.train_split, cfg.data.val_split) == ("train", "val") and not (tmp_path / "holdout").exists()
    cfg = pipeline.prepare_data(
        tiny_chain(tmp_path, ARMS, "demo.n_val=2", "data.val_split=null", "holdout.fraction=0.5"), tmp_path
    )
    assert cfg.data.val_split == f"train@{tmp_path / 'holdout' / 'val.txt'}"
    assert len((tmp_path / "holdout" / "val.txt").read_text().split()) == 5


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["demo.n_train=2", "demo.n_val=0"], "too few to hold out 2"),
        (["eval_split=final"], "no split 'final'"),
    ],
)
def test_data_that_cannot_serve_the_chain_stops_it_before_any_training(tmp_path, overrides, message, tiny_chain):
    with pytest.raises(DataError, match=message):
        pipeline.run_pipeline(tiny_chain(tmp_path / "run", ARMS, *overrides))
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["data", "log.txt", "stages.json"]


def test_hard_maps_and_trust_maps_in_the_chain(tmp_path, tiny_chain):
    """synth.hard_maps adds renders of the maps the segmenter finds hard; synth.trust_tolerance writes trust maps
    beside the kept renders, which the experiment's synthetic arms read; summary.md opens with the verdict."""
    out = tmp_path / "run"
    pipeline.run_pipeline(
        tiny_chain(out, "experiment.arms=[synthetic_original]", "synth.hard_maps=1.0", "synth.trust_tolerance=1.25")
    )
    lines = [json.loads(x) for x in (out / "synth_original" / "manifest.jsonl").read_text().splitlines()]
    train = open_dataset(out / "data", "train")
    per_map = {}
    for line in lines:
        per_map[line["source"]] = per_map.get(line["source"], 0) + 1
    assert sum(per_map.values()) == 2 * len(train) and min(per_map.values()) >= 1  # k=1 each + 1 x N shared out
    kept = (out / "synth_original" / "keep.txt").read_text().split()
    trust = json.loads((out / "synth_original" / "trust" / "trust.json").read_text())
    assert trust["samples"] == len(kept) and trust["tolerance"] == 1.25
    assert "trust maps ignore" in (out / "log.txt").read_text()
    assert (out / "summary.md").read_text().split("\n")[2] == "## Verdict"


def test_the_translate_stage_trains_a_translator_and_adds_the_translated_arm(tmp_path, tiny_chain, demo_root):
    """translate: the chain's real-data segmenter gives the consistency loss, the day training images are
    translated into night (labels copied), and the experiment gets a `translated` arm; without a generator the
    generator arms are left out. Target images come from a folder without labels."""
    import shutil

    target = tmp_path / "night"
    target.mkdir()
    for record in open_dataset(demo_root, "test").records:
        shutil.copy(record.image, target / record.image.name)
    out = tmp_path / "run"
    tr = ["translate.model.width=8", "translate.model.blocks=1", "translate.model.discriminator.width=8",
          "translate.train.steps=2", "translate.train.batch_size=2", "translate.train.nce_patches=8"]  # fmt: skip
    cfg = tiny_chain(out, "generator=null", f"translate.target={target}", "translate.conditions=[night]",
                     "translate.source_condition=day", *tr)  # fmt: skip
    pipeline.run_pipeline(cfg)
    rows = [json.loads(x) for x in (out / "translated" / "manifest.jsonl").read_text().splitlines()]
    days = [r for r in open_dataset(out / "data", "train").records if r.meta["condition"] == "day"]
    assert len(rows) == len(days) and {r["condition"] for r in rows} == {"night"}
    assert (out / "translator" / "model" / "G.safetensors").is_file()
    assert (out / "translated" / "consistency.json").is_file()
    results = [json.loads(x) for x in (out / "experiment" / "results.jsonl").read_text().splitlines()]
    assert {r["arm"] for r in results} == {"real_aug", "copy_paste", "translated"}
    stages = json.loads((out / "stages.json").read_text())
    assert "train translator" in json.dumps(stages) and "translate" in json.dumps(stages)
    with pytest.raises(ConfigError, match="needs translate.target"):
        pipeline.run_pipeline(tiny_chain(tmp_path / "bad", "generator=null", "translate.conditions=[night]"))


def test_the_latent_stage_adds_the_latent_arm(tmp_path, tiny_chain):
    """latent: the latent GAN, the encoder + label head and the sampled pairs as chain stages, and a `latent`
    experiment arm (without a generator the generator arms are left out)."""
    out = tmp_path / "run"
    lt = [
        "latent.model.z_dim=8", "latent.model.w_dim=8", "latent.model.width=4", "latent.model.max_channels=16",
        "latent.model.d_width=4", "latent.train.steps=2", "latent.train.batch_size=4", "latent.encoder.width=8",
        "latent.encoder.levels=3", "latent.encoder.latent_steps=2", "latent.encoder.recon_steps=2",
        "latent.encoder.refine_steps=1", "latent.encoder.batch_size=4", "latent.head.members=2",
        "latent.head.hidden=8", "latent.head.steps=2", "latent.head.pixels_per_image=32", "latent.samples=4",
    ]  # fmt: skip
    pipeline.run_pipeline(tiny_chain(out, "generator=null", "experiment.arms=[real]", *lt))
    assert len(open_dataset(out / "latent", "train")) == 4
    assert (out / "latent_labels" / "head_test.json").is_file()
    results = [json.loads(x) for x in (out / "experiment" / "results.jsonl").read_text().splitlines()]
    assert {r["arm"] for r in results} == {"real_aug", "real", "latent"}
