"""Scale-out of the adversarial trainer: `train_generator` under torchrun with 2 CPU ranks (gloo) trains the same
networks as one process with the same global batch: identical parameters on every rank, equal (to float rounding)
to the single-process ones, one run directory written by rank 0."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from synthlabel.config import GenConfig, build_config
from synthlabel.data.toy import make_demo_dataset
from synthlabel.generators.workflow import train_generator

# Instance norm only (no batch norm, whose statistics would be per rank), no dropout (drawn per rank); R1, feature
# matching and an ADA p > 0, so every phase and the augmentation drawn for the global batch are exercised. pix2pix
# rather than SPADE: SPADE's biases before a parameter-free norm get gradients of pure rounding noise, which Adam's
# first steps (about lr * sign(gradient)) would turn into differences of the learning rate's size.
TINY = [
    "model.name=pix2pix",
    "model.z_dim=4",
    "model.options.dropout=0.0",
    "model.options.depth=3",
    "model.width=8",
    "model.discriminator.name=patchgan",
    "model.discriminator.width=8",
    "train.steps=3",
    "train.batch_size=4",
    "train.precision=fp32",
    "train.device=cpu",
    "train.r1_gamma=1.0",
    "train.r1_interval=2",
    "train.augment.p=0.5",
    "train.augment.ada_images=40",
    "train.log_every=1",
    "train.sample_every=3",
    "train.checkpoint_every=3",
    "train.sample_rows=2",
    "train.sample_columns=1",
]

ENTRY = textwrap.dedent(
    """
    import sys
    import torch
    from synthlabel import distributed
    from synthlabel.config import GenConfig, build_config
    from synthlabel.generators.workflow import train_generator

    torch.set_num_threads(1)
    out, overrides = sys.argv[1], sys.argv[2:]
    seen = {}
    train_generator(build_config(GenConfig, {}, overrides), out + "/run", on_step=lambda t: seen.update(t=t))
    t = seen["t"]
    nets = {"G": t.G.state_dict(), "D": t.D.state_dict(), "G_ema": t.G_ema.state_dict()}
    torch.save({**nets, "ada_p": t.ada_p, "world": distributed.world_size()}, f"{out}/rank{distributed.rank()}.pt")
    """
)


def torchrun(tmp_path, overrides: list[str]) -> subprocess.CompletedProcess:
    entry = tmp_path / "entry.py"
    entry.write_text(ENTRY)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(entry)]
    return subprocess.run(cmd + [str(tmp_path)] + overrides, env=env, capture_output=True, text=True, timeout=120)


def metrics(run_dir, key: str) -> list[float]:
    """The logged values of `key` by step (-1 where a step has none, e.g. D/r1 between lazy R1 steps)."""
    return [json.loads(line).get(key, -1.0) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist") / "data"
    return make_demo_dataset(root, n_train=4, n_val=1, n_test=1, size=(32, 48), seed=0, paired=False)


def test_two_ranks_train_like_one_process(demo, tmp_path):
    overrides = TINY + [f"data.path={demo}", "data.size=[32, 48]"]
    done = torchrun(tmp_path, overrides)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2] and ranks[0]["ada_p"] == ranks[1]["ada_p"] != 0.5

    single = train_generator(build_config(GenConfig, {}, overrides), tmp_path / "single")
    state = torch.load(tmp_path / "single" / "train_state.pt", weights_only=True)
    assert single.ada_p == pytest.approx(ranks[0]["ada_p"])
    # Adam's first steps move a weight by about lr (2e-4, 4e-4) whatever its gradient's size, so a gradient of the
    # wrong sign shows as a difference of that size; rounding (other sums, other batch sizes) stays far below it.
    for net in ("G", "D", "G_ema"):
        for key, value in ranks[0][net].items():
            assert torch.equal(value, ranks[1][net][key]), f"{net}.{key} differs between ranks"
            assert torch.allclose(value, state[net][key], rtol=1e-4, atol=5e-5), f"{net}.{key} differs from 1 process"

    run = tmp_path / "run"  # written by rank 0 alone: one metrics row per step, the samples and the model
    assert [int(s) for s in metrics(run, "step")] == [1, 2, 3]
    assert (run / "model" / "G.safetensors").is_file() and (run / "samples" / "step_000003.png").is_file()
    for key in ("G/loss", "D/loss", "D/r1", "D/real_sign", "ada_p"):  # rank means = the global batch's values
        assert metrics(run, key) == pytest.approx(metrics(tmp_path / "single", key), rel=1e-4, abs=1e-5), key
