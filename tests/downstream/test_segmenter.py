"""Segmenter registry contract, class weights, training, evaluation, checkpoint and exact resume."""

import json

import pytest
import torch

from synthlabel.config import SegConfig, build_config, to_dict
from synthlabel.downstream.segmenter import (
    build_segmenter,
    class_weights,
    load_segmenter,
    model_kwargs,
    save_segmenter,
)
from synthlabel.downstream.workflow import evaluate_segmenter, train_segmenter
from synthlabel.errors import DataError
from synthlabel.registry import SEGMENTERS


@pytest.mark.parametrize("name", SEGMENTERS.names())
def test_segmenter_contract(name, tmp_path):
    torch.manual_seed(0)
    model = build_segmenter(name, num_classes=5, width=8, depth=3)
    x = torch.randn(2, 3, 24, 40)
    y = model(x)
    assert y.shape == (2, 5, 24, 40) and torch.isfinite(y).all()
    y.mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    cfg = build_config(SegConfig, {"model": {"name": name, "width": 8, "depth": 3}})
    from synthlabel.data.classes import ClassInfo, ClassSpec

    spec = ClassSpec(tuple(ClassInfo(i, f"c{i}", (i, i, i)) for i in range(5)))
    save_segmenter(tmp_path / "m", model, cfg, spec, (24, 40))
    loaded, meta = load_segmenter(tmp_path / "m")
    model.eval()
    assert meta["size"] == [24, 40] and torch.equal(loaded(x), model(x))
    torch.manual_seed(1)
    a = build_segmenter(name, num_classes=5, width=8, depth=3)
    torch.manual_seed(1)
    b = build_segmenter(name, num_classes=5, width=8, depth=3)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


@pytest.mark.parametrize("norm,layer", [("batch", torch.nn.BatchNorm2d), ("instance", torch.nn.InstanceNorm2d),
                                        ("group", torch.nn.GroupNorm)])  # fmt: skip
def test_unet_norm_option_is_built_and_saved(norm, layer, tmp_path):
    from synthlabel.data.classes import ClassInfo, ClassSpec

    cfg = build_config(SegConfig, {"model": {"width": 8, "depth": 3, "norm": norm}})
    model = build_segmenter("unet", 3, **model_kwargs(cfg))
    assert any(isinstance(m, layer) for m in model.modules())
    spec = ClassSpec(tuple(ClassInfo(i, f"c{i}", (i, i, i)) for i in range(3)))
    loaded, meta = load_segmenter(save_segmenter(tmp_path / "m", model, cfg, spec, None))
    assert meta["config"]["norm"] == norm and any(isinstance(m, layer) for m in loaded.modules())


def test_class_weights_favor_rare_classes_and_average_one():
    labels = torch.tensor([0] * 90 + [1] * 9 + [2] * 1 + [255] * 5)
    for mode in ("inv_sqrt_freq", "median_freq"):
        w = class_weights(labels, 3, mode)
        freq = torch.tensor([0.9, 0.09, 0.01])
        assert w[2] > w[1] > w[0]
        assert (w * freq).sum() == pytest.approx(1.0, rel=0.05) or w.max() == 10.0
    assert class_weights(labels, 3, "none") is None


def test_train_eval_writes_run_dir(demo_root, tmp_path, tiny_seg):
    cfg = build_config(SegConfig, {}, tiny_seg(demo_root, steps=4) + ["data.subset.n=4"])
    result = train_segmenter(cfg, tmp_path / "run")
    run = tmp_path / "run"
    for name in (
        "config.yaml",
        "env.json",
        "log.txt",
        "metrics.jsonl",
        "train_state.pt",
        "subset.txt",
        "val_metrics.json",
        "model/config.json",
        "model/model.safetensors",
    ):
        assert (run / name).is_file(), name
    assert len((run / "subset.txt").read_text().split()) == 4
    env = json.loads((run / "env.json").read_text())
    assert env["torch"] == torch.__version__ and "git_commit" in env
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3, 4]
    assert result.steps == 4 and 0 <= result.val["miou"] <= 1
    m = evaluate_segmenter(result.model_dir, demo_root, "test", out=tmp_path / "e.json")
    assert json.loads((tmp_path / "e.json").read_text())["miou"] == m["miou"]
    assert (tmp_path / "e.md").read_text().count("|") > 10


def test_resumed_run_equals_uninterrupted(demo_root, tmp_path, tiny_seg):
    cfg = build_config(SegConfig, {}, tiny_seg(demo_root, steps=6) + ["train.precision=fp32"])
    full = train_segmenter(cfg, tmp_path / "full")

    class Interrupt(Exception):
        pass

    def stop_at_4(trainer):
        if trainer.step == 4:
            raise Interrupt

    with pytest.raises(Interrupt):
        train_segmenter(cfg, tmp_path / "cut", on_step=stop_at_4)
    with pytest.raises(Exception, match="--resume"):
        train_segmenter(cfg, tmp_path / "cut")
    resumed = train_segmenter(cfg, tmp_path / "cut", resume=True)
    a, _ = load_segmenter(full.model_dir)
    b, _ = load_segmenter(resumed.model_dir)
    for (k, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.allclose(p.float(), q.float(), atol=1e-6), k

    def losses(d):
        return [r["loss"] for r in map(json.loads, (d / "metrics.jsonl").read_text().splitlines()) if "loss" in r]  # noqa: E731

    assert losses(tmp_path / "cut") == pytest.approx(losses(tmp_path / "full"), abs=1e-6)


def test_data_error_leaves_no_run_dir(tmp_path, tiny_seg):
    cfg = build_config(SegConfig, {}, tiny_seg(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="not found"):
        train_segmenter(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    assert to_dict(cfg)["data"]["path"].endswith("nowhere")
