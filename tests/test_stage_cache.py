"""`synthlabel run`'s stage ledger: a re-run with one changed key re-runs the stages that key reaches (and the
experiment runs that read their outputs) and nothing else."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from synthlabel import experiment as exp
from synthlabel import pipeline

TINY = ["demo.n_train=8", "demo.n_val=3", "experiment.arms=[synthetic_original]"]


def run(tiny_chain, out: Path, monkeypatch, *overrides: str) -> tuple[list[str], list[str]]:
    """Run the chain; returns (stages run, experiment runs trained from scratch)."""
    trained: list[str] = []
    real_train = exp.train_segmenter

    def recording(cfg, run_dir, resume=False, **kwargs):
        if not resume:  # the adopted real-data segmenter is only restored (its steps are done) and evaluated
            trained.append(f"{run_dir.parent.name}/{run_dir.name}")
        return real_train(cfg, run_dir, resume=resume, **kwargs)

    monkeypatch.setattr(exp, "train_segmenter", recording)
    log = out / "log.txt"
    before = len(log.read_text().splitlines()) if log.is_file() else 0
    pipeline.run_pipeline(tiny_chain(out, *TINY, *overrides))
    lines = log.read_text().splitlines()[before:]
    ran = [line.split("[run] ", 1)[1].removesuffix(" (resuming)") for line in lines if "[run] " in line]
    return [r for r in ran if "/" not in r], trained


@pytest.mark.slow
def test_a_changed_key_reruns_only_the_stages_it_reaches(tmp_path, monkeypatch, tiny_chain):
    out = tmp_path / "run"
    stages, trained = run(tiny_chain, out, monkeypatch)
    assert "train segmenter" in stages and "train generator" in stages and "filter (original)" in stages
    assert trained == ["synthetic_original/a1_s0"]  # real_aug/a0_s0 is the adopted real-data segmenter
    baseline = (out / "experiment/runs/real_aug/a0_s0/result.json").read_text()

    stages, trained = run(tiny_chain, out, monkeypatch)
    assert stages == [] and trained == []  # nothing changed: every stage and run is reused

    stages, trained = run(tiny_chain, out, monkeypatch, "synth.keep_fraction=0.5")
    assert stages == ["filter (original)", "filter (recomposed)"]  # segmenter, generator, renders are kept
    assert trained == ["synthetic_original/a1_s0"]  # its keep list changed; the real_aug run did not
    assert (out / "experiment/runs/real_aug/a0_s0/result.json").read_text() == baseline
    assert len((out / "synth_original/keep.txt").read_text().split()) == 4  # half of the 8 renders

    stages, trained = run(tiny_chain, out, monkeypatch, "synth.keep_fraction=0.5", "generator.train.steps=3")
    assert "train generator" in stages and "train segmenter" not in stages
    assert "synthesize (original label maps)" in stages and "filter (original)" in stages
    assert trained == ["synthetic_original/a1_s0"]
    ledger = json.loads((out / "stages.json").read_text())
    assert all(entry["done"] for entry in ledger.values())
    assert yaml.safe_load((out / "generator/config.yaml").read_text())["train"]["steps"] == 3
