"""The fair budget protocol: steps chosen on the baseline's validation learning curve, the same for every arm."""

from __future__ import annotations

import json

import pytest

from synthlabel import experiment as exp
from synthlabel.budget import choose_steps
from synthlabel.config import ExperimentConfig, build_config
from tests.test_experiment import experiment_dict


def test_the_fewest_steps_within_tolerance_of_the_best():
    assert choose_steps({1200: 0.40, 2400: 0.45, 4800: 0.452}) == 2400  # 4800 adds 0.2 points: not worth it
    assert choose_steps({1200: 0.40, 2400: 0.45, 4800: 0.47}) == 4800  # still improving
    assert choose_steps({1200: 0.46, 2400: 0.45}) == 1200  # longer got worse
    assert choose_steps({600: 0.3}, tolerance=0.0) == 600
    with pytest.raises(ValueError):
        choose_steps({})


def test_every_arm_trains_the_steps_chosen_on_the_baseline_curve(demo_root, synth_root, tmp_path, tiny_seg):
    d = experiment_dict(demo_root, synth_root, tmp_path / "exp", tiny_seg)
    d.update(seeds=[0], amounts=[1.0], synthetic_test=None, budget={"curve": [2, 4], "tolerance": 1.0})
    exp.run_experiment(build_config(ExperimentConfig, d))
    budget = json.loads((tmp_path / "exp" / "budget.json").read_text())
    assert budget["steps"] == 2 and set(budget["curve"]) == {"2", "4"}  # tolerance 1.0: the shortest is enough
    records = [json.loads(line) for line in (tmp_path / "exp" / "results.jsonl").read_text().splitlines()]
    assert {r["arm"] for r in records} == {"real_aug", "copy_paste", "synth"}
    assert {r["exposure"]["steps"] for r in records} == {2} and {r["steps"] for r in records} == {2}
    seen = {r["arm"]: r["exposure"]["real_samples"] for r in records}
    assert seen["real_aug"] == seen["copy_paste"] == 2 * 2 and seen["synth"] == 2 * 2 * 0.5  # fraction 0.5
    # the baseline's curve run at the chosen steps is the grid's run, not trained again
    assert "experiment real_aug/a0_s0: reusing" in (tmp_path / "exp" / "log.txt").read_text()
    report = (tmp_path / "exp" / "report.md").read_text()
    assert "## Verdict" in report and "Every arm trained 2 steps at batch 2" in report


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    from synthlabel.data.toy import make_demo_dataset

    return make_demo_dataset(
        tmp_path_factory.mktemp("syn") / "data", n_train=8, n_val=0, n_test=4, size=(32, 48), seed=5
    )
