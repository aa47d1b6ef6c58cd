"""Damaged model directories: truncated, empty or random safetensors, a malformed or edited config.json, weights of
another width, an unknown model name. Each is one ModelError naming the file or directory (and exit 2 in the CLI)."""

from __future__ import annotations

import json
import os

import pytest
import torch

from synthlabel import checkpoint as ckpt
from synthlabel.cli import main
from synthlabel.downstream.segmenter import build_segmenter, load_segmenter
from synthlabel.errors import ModelError
from synthlabel.eval.generator_metrics import ConditionClassifier
from synthlabel.generators.io import load_generator, save_generator
from synthlabel.registry import GENERATORS


@pytest.fixture
def seg_dir(tmp_path):
    net = build_segmenter("unet", 3, width=8, depth=2)
    return ckpt.save_model(tmp_path / "seg", "unet", {"num_classes": 3, "width": 8, "depth": 2}, {"model": net})


@pytest.fixture
def gen_dir(tmp_path):
    kwargs = {"num_classes": 2, "image_size": [8, 8], "width": 8, "z_dim": 4}
    g = GENERATORS.create("dcgan", **{**kwargs, "image_size": (8, 8)})
    return save_generator(tmp_path / "gen", "dcgan", kwargs, g)


@pytest.mark.parametrize("damage", ["truncated", "empty", "random"])
def test_damaged_safetensors_name_the_file(seg_dir, gen_dir, damage):
    for directory, key, load in ((seg_dir, "model", load_segmenter), (gen_dir, "G", load_generator)):
        path = directory / f"{key}.safetensors"
        data = path.read_bytes()
        path.write_bytes({"truncated": data[: len(data) // 2], "empty": b"", "random": os.urandom(4096)}[damage])
        with pytest.raises(ModelError, match=f"{path}: damaged weights file"):
            load(directory)


def test_malformed_config_json_names_the_file(seg_dir):
    (seg_dir / "config.json").write_text('{"name": "unet", "config": ')
    with pytest.raises(ModelError, match=f"{seg_dir / 'config.json'}: not valid JSON"):
        load_segmenter(seg_dir)
    (seg_dir / "config.json").write_text('["unet"]')
    with pytest.raises(ModelError, match="not a synthlabel model config"):
        load_segmenter(seg_dir)


def test_unexpected_constructor_argument_and_unknown_name_name_the_directory(seg_dir, gen_dir):
    meta = json.loads((seg_dir / "config.json").read_text())
    (seg_dir / "config.json").write_text(json.dumps({**meta, "config": {**meta["config"], "heads": 4}}))
    with pytest.raises(ModelError, match=f"{seg_dir}.*cannot build segmenter 'unet'.*heads"):
        load_segmenter(seg_dir)
    meta = json.loads((gen_dir / "config.json").read_text())
    (gen_dir / "config.json").write_text(json.dumps({**meta, "name": "stylegan9"}))
    with pytest.raises(ModelError, match=f"{gen_dir}.*unknown generator 'stylegan9'"):
        load_generator(gen_dir)


def test_condition_classifier_config_missing_a_field_names_the_file(tmp_path):
    directory = ConditionClassifier(["day", "night"], 8, (16, 16)).save(tmp_path / "cond")
    meta = json.loads((directory / "config.json").read_text())
    del meta["config"]["width"]
    (directory / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=f"{directory / 'config.json'}: cannot build condition classifier.*width"):
        ConditionClassifier.load(directory)


def test_weights_of_another_width_name_the_file(seg_dir, gen_dir):
    meta = json.loads((seg_dir / "config.json").read_text())
    (seg_dir / "config.json").write_text(json.dumps({**meta, "config": {**meta["config"], "width": 16}}))
    with pytest.raises(ModelError, match=f"{seg_dir / 'model.safetensors'}: weights do not fit.*size mismatch"):
        load_segmenter(seg_dir)


def test_cli_prints_one_line_and_exits_2(seg_dir, tmp_path, capsys):
    (seg_dir / "model.safetensors").write_bytes(b"\0" * 10)
    assert main(["eval-seg", str(seg_dir), "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(seg_dir / "model.safetensors") in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_safetensors_get_the_umask_mode(tmp_path):
    mask = os.umask(0o022)
    try:
        d = ckpt.save_model(tmp_path / "m", "linear", {}, {"net": torch.nn.Linear(1, 1)})
        assert (d / "net.safetensors").stat().st_mode & 0o777 == 0o644  # safetensors alone writes 0o600
        assert (d / "config.json").stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(mask)
