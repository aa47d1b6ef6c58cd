"""Synthesis sharded over two CPU processes (gloo) writes the same bytes as one process: blocks are dealt out to the
ranks, each sample's noise comes from its own seed, and rank 0 puts the manifest in index order."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import synthlabel.generators  # noqa: F401  (registers the generators)
from synthlabel.data.toy import DEMO_CONDITIONS, demo_spec, sample_scene
from synthlabel.generators.io import save_generator
from synthlabel.registry import GENERATORS
from synthlabel.synth.synthesize import LabelSource, synthesize

SIZE = (32, 48)
KWARGS = dict(num_classes=8, num_conditions=4, width=8, image_size=SIZE)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sources() -> list[LabelSource]:
    return [LabelSource(sample_scene(seed, SIZE).label, f"m{seed}.png") for seed in range(5)]


def render_into(generator_dir: Path, out: Path, on_sample=None) -> None:
    synthesize(generator_dir, sources(), out, conditions=["day", "night"], k=2, seed=3, batch_size=3, device="cpu",
               on_sample=on_sample)  # fmt: skip


def rank_main(rank: int, world: int, port: int, generator_dir: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank),
                      LOCAL_RANK=str(rank))  # fmt: skip
    torch.set_num_threads(1)
    rendered: list[int] = []
    try:
        render_into(Path(generator_dir), Path(out), rendered.append)
        Path(out).with_name(f"rank{rank}.txt").write_text(" ".join(map(str, rendered)))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_two_ranks_write_the_same_dataset_as_one(tmp_path):
    torch.manual_seed(0)
    generator = GENERATORS.create("spade", **KWARGS)
    generator_dir = save_generator(tmp_path / "model", "spade", KWARGS, generator, demo_spec(), list(DEMO_CONDITIONS))
    one, two = tmp_path / "one", tmp_path / "two"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same kernels as each rank uses
    try:
        render_into(generator_dir, one)
    finally:
        torch.set_num_threads(threads)
    mp.spawn(rank_main, args=(2, free_port(), str(generator_dir), str(two)), nprocs=2, join=True)
    a, b = files(one), files(two)
    assert len(a) == 1 + 1 + 1 + 2 * 20  # classes.json, manifest.jsonl, meta.csv, 20 samples x (image, mask)
    assert sorted(a) == sorted(b)
    assert [name for name in a if a[name] != b[name]] == []
    indices = [
        int(line.split('"index": ')[1].split(",")[0]) for line in (two / "manifest.jsonl").read_text().splitlines()
    ]
    assert indices == list(range(20))
    shares = [[int(i) for i in (tmp_path / f"rank{r}.txt").read_text().split()] for r in (0, 1)]
    assert all(shares) and sorted(shares[0] + shares[1]) == list(range(20))  # each rank rendered its own blocks
