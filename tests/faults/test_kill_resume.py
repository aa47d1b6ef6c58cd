"""kill -9 at a random point of `train-gen`, `train-seg`, `synth` and `experiment` (a real `python -m synthlabel`
process, killed once a checkpoint or a few samples exist), then resumed: the result is byte-identical to an
uninterrupted run."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
STEPS = 12  # checkpoints every step: the kill lands within the first few, well before the end


def cli(*args) -> list[str]:
    return [sys.executable, "-m", "synthlabel", *map(str, args)]


def run_to_end(*args) -> None:
    done = subprocess.run(cli(*args), env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def _probe(ready: Callable[[], bool]) -> bool:
    """`ready()`, where a directory that the running command renames away mid-scan (an atomic write's temporary
    directory) counts as not ready yet instead of failing the test."""
    try:
        return ready()
    except FileNotFoundError:
        return False


def kill_once(ready: Callable[[], bool], *args) -> None:
    """Start the command, wait until `ready()`, then SIGKILL it after a random short delay."""
    proc = subprocess.Popen(cli(*args), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not _probe(ready):
        assert proc.poll() is None, "the command ended before anything could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    time.sleep(random.uniform(0, 0.05))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "finished before the kill: raise STEPS"


def files(root: Path, pattern: str) -> dict[str, bytes]:
    found = {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.glob(pattern)) if p.is_file()}
    assert found, f"nothing matches {pattern} under {root}"
    return found


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("kill") / "demo"
    run_to_end("make-demo", out, "--n-train", 8, "--n-val", 2, "--n-test", 4, "--size", "32x48")
    return out


def seg_args(demo: Path) -> list[str]:
    return [
        f"data.path={demo}",
        "data.size=[32, 48]",
        "model.width=8",
        "model.depth=2",
        f"train.steps={STEPS}",
        "train.batch_size=2",
        "train.warmup_steps=1",
        f"train.eval_every={STEPS}",
        "train.checkpoint_every=1",
    ]


def gen_args(demo: Path) -> list[str]:
    return [
        f"data.path={demo}",
        "data.size=[32, 48]",
        "model.width=8",
        "model.discriminator.width=8",
        "model.discriminator.num_scales=1",
        f"train.steps={STEPS}",
        "train.batch_size=2",
        f"train.sample_every={STEPS}",
        "train.checkpoint_every=1",
    ]


@pytest.fixture(scope="module")
def generator(demo, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gen") / "ref"
    run_to_end("train-gen", *gen_args(demo), "--out", out)
    return out


def test_train_seg(demo, tmp_path):
    ref, out = tmp_path / "ref", tmp_path / "killed"
    run_to_end("train-seg", *seg_args(demo), "--out", ref)
    kill_once(lambda: (out / "train_state.pt").is_file(), "train-seg", *seg_args(demo), "--out", out)
    run_to_end("train-seg", *seg_args(demo), "--out", out, "--resume")
    assert files(out, "model/*.safetensors") == files(ref, "model/*.safetensors")


def test_train_gen(demo, generator, tmp_path):
    out = tmp_path / "killed"
    kill_once(lambda: (out / "train_state.pt").is_file(), "train-gen", *gen_args(demo), "--out", out)
    run_to_end("train-gen", *gen_args(demo), "--out", out, "--resume")
    assert files(out, "model/*.safetensors") == files(generator, "model/*.safetensors")


def test_synth(demo, generator, tmp_path):
    ref, out = tmp_path / "ref", tmp_path / "killed"
    args = [generator / "model", "--data", demo, "--conditions", "day,night", "--k", 2]
    run_to_end("synth", *args, "--out", ref)

    def some_written() -> bool:
        manifest = out / "manifest.jsonl"
        return manifest.is_file() and len(manifest.read_bytes().splitlines()) >= 3

    kill_once(some_written, "synth", *args, "--out", out)
    run_to_end("synth", *args, "--out", out)
    assert files(out, "**/*.png") == files(ref, "**/*.png")
    assert files(out, "*.jsonl") == files(ref, "*.jsonl") and files(out, "*.csv") == files(ref, "*.csv")


def test_experiment(demo, tmp_path):
    def config(out: Path) -> Path:
        cfg = {"out": str(out), "seeds": [0], "amounts": [1.0], "arms": [{"name": "real_aug", "kind": "real_aug"}]}
        for item in seg_args(demo):
            key, value = item.split("=", 1)
            section, _, field = key.partition(".")
            cfg.setdefault(section, {})[field] = yaml.safe_load(value)
        path = out.with_suffix(".yaml")
        path.write_text(yaml.safe_dump(cfg))
        return path

    ref, out = tmp_path / "ref", tmp_path / "killed"
    run_to_end("experiment", config(ref))
    kill_once(lambda: any(out.glob("runs/**/train_state.pt")), "experiment", config(out))
    run_to_end("experiment", config(out))
    assert files(out, "runs/**/model/*.safetensors") == files(ref, "runs/**/model/*.safetensors")

    def evals(root: Path) -> list[dict]:
        return [json.loads(line)["eval"] for line in (root / "results.jsonl").read_text().splitlines()]

    assert evals(out) == evals(ref) and (out / "report.html").is_file()
