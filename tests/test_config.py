"""Strict config loading: unknown keys and wrong types are errors; dotted overrides; YAML round trip."""

import pytest
import yaml

from synthlabel.config import PipelineConfig, SegConfig, apply_overrides, build_config, load_config, to_dict
from synthlabel.errors import ConfigError


def test_unknown_key_and_wrong_type_are_errors():
    with pytest.raises(ConfigError, match=r"train\.stepz"):
        build_config(SegConfig, {"train": {"stepz": 3}})
    with pytest.raises(ConfigError, match=r"train\.steps"):
        build_config(SegConfig, {}, ["train.steps=lots"])
    with pytest.raises(ConfigError, match="key.sub=value"):
        build_config(SegConfig, {}, ["train.steps"])


def test_overrides_parse_yaml_values_and_nest():
    cfg = build_config(SegConfig, {"data": {"size": [96, 128]}}, ["train.augment.scale=[0.5, 2]", "train.lr=0.01"])
    assert cfg.data.size == (96, 128) and cfg.train.augment.scale == (0.5, 2.0) and cfg.train.lr == 0.01
    assert apply_overrides({"a": {"b": 1}}, ["a.c=x"]) == {"a": {"b": 1, "c": "x"}}


def test_yaml_round_trip(tmp_path):
    cfg = build_config(PipelineConfig, {"demo": {"n_train": 5}}, ["train.steps=7"])
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(to_dict(cfg)))
    assert load_config(PipelineConfig, path) == cfg
    with pytest.raises(ConfigError, match="not found"):
        load_config(SegConfig, tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    "path,cls",
    [("configs/demo.yaml", "PipelineConfig"), ("configs/camvid.yaml", "PipelineConfig"),
     ("configs/experiment_example.yaml", "ExperimentConfig")],
)  # fmt: skip
def test_shipped_configs_load(path, cls):
    import synthlabel.config as config

    cfg = config.load_config(getattr(config, cls), path)
    assert cfg.out
