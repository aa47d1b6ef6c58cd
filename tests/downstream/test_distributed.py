"""Scale-out of supervised training: two CPU processes (gloo) train the segmenter on halves of the same global batches
and end with the same weights as each other and as one process; rank 0 alone writes; a two-process checkpoint
resumes in one process."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from synthlabel.config import SegConfig, build_config
from synthlabel.downstream.segmenter import load_segmenter
from synthlabel.downstream.workflow import train_segmenter

STOP = 2  # the two-process run stops here (a checkpoint step); one process resumes it to the end


class Stop(Exception):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(data: str) -> SegConfig:
    overrides = [
        f"data.path={data}",
        "data.size=[32, 48]",
        "model.width=8",
        "model.depth=3",
        "model.norm=group",  # batch statistics would differ per rank
        "model.dropout=0.0",  # dropout masks are drawn per rank
        "train.precision=fp32",
        "train.device=cpu",
        "train.steps=4",
        "train.batch_size=4",
        "train.warmup_steps=1",
        "train.log_every=1",
        "train.eval_every=2",
        "train.checkpoint_every=2",
    ]
    return build_config(SegConfig, {}, overrides)


def snapshot_at(step: int, path: Path, stop: bool = False):
    """on_step callback: save the (unwrapped) weights after `step`, then optionally stop the run."""

    def on_step(trainer) -> None:
        if trainer.step == step:
            torch.save(trainer.model.state_dict(), path)
            if stop:
                raise Stop

    return on_step


def rank_main(rank: int, world: int, port: int, data: str, run_dir: str, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    try:
        train_segmenter(config(data), run_dir, on_step=snapshot_at(STOP, Path(out) / f"rank{rank}.pt", stop=True))
    except Stop:
        pass
    finally:
        dist.destroy_process_group()


def assert_close(a: dict, b: dict, atol: float) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=atol, rtol=1e-4), (k, (a[k] - b[k]).abs().max())


def test_two_processes_train_like_one_and_resume_in_one(demo_root, tmp_path):
    single_at_stop = tmp_path / "single_at_stop.pt"
    single = train_segmenter(config(str(demo_root)), tmp_path / "single", on_step=snapshot_at(STOP, single_at_stop))

    ddp = tmp_path / "ddp"
    mp.spawn(rank_main, args=(2, free_port(), str(demo_root), str(ddp), str(tmp_path)), nprocs=2, join=True)
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)  # DDP kept the ranks in step
    single_state = torch.load(single_at_stop, weights_only=True)
    assert_close(rank0, single_state, atol=5e-5)  # and they equal one process on the global batch
    rows = (ddp / "metrics.jsonl").read_text().splitlines()
    assert len([r for r in rows if '"loss"' in r]) == STOP  # one writer: no duplicate rows

    resumed = train_segmenter(config(str(demo_root)), ddp, resume=True)  # 2 processes -> 1
    assert resumed.steps == 4
    a, _ = load_segmenter(single.model_dir)
    b, _ = load_segmenter(resumed.model_dir)
    assert_close(a.state_dict(), b.state_dict(), atol=2e-4)
