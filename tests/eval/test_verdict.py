"""The verdict a report opens with: the arm picked on validation, its test delta, classes and certainty; train
without synthetic data when nothing beats the baseline on validation."""

from __future__ import annotations

from synthlabel.eval.verdict import verdict

CLASSES = ("road", "person")


def record(arm: str, seed: int, val: float, test: float, person: float, amount: float = 1.0) -> dict:
    ious = {"road": test, "person": person}
    return {"arm": arm, "group": arm, "amount": 0.0 if arm == "base" else amount, "seed": seed,
            "val": {"miou": val}, "eval": {"real_test": {"miou": test, "per_class_iou": ious}}}  # fmt: skip


def runs(arm, vals, tests, persons):
    return [record(arm, s, v, t, p) for s, (v, t, p) in enumerate(zip(vals, tests, persons, strict=True))]


BASE = runs("base", [0.50, 0.51, 0.49], [0.50, 0.52, 0.48], [0.20, 0.22, 0.18])


def test_an_arm_that_wins_on_validation_is_recommended_with_its_test_delta_and_certainty():
    good = runs("synth", [0.53, 0.54, 0.52], [0.53, 0.55, 0.51], [0.30, 0.31, 0.29])
    worse = runs("noise", [0.49, 0.50, 0.48], [0.60, 0.60, 0.60], [0.5, 0.5, 0.5])  # great on test, chosen never
    text = verdict(BASE + good + worse, "base", rare=["person"])
    assert text.startswith("**Use synth (synthetic × 1).**")
    assert "validation by +3.0 points mIoU" in text and "test mIoU +3.0 points" in text
    assert "clear over 3 seeds" in text and "rare classes (person) +10.0 points" in text
    assert "helps most person +10.0, road +3.0" in text


def test_no_arm_beating_the_baseline_on_validation_says_train_without_synthetic_data():
    worse = runs("synth", [0.48, 0.50, 0.47], [0.47, 0.50, 0.46], [0.1, 0.1, 0.1])
    text = verdict(BASE + worse, "base", rare=["person"])
    assert text.startswith("**Train without synthetic data.**") and "-1.7 points" in text


def test_a_gain_within_the_seed_spread_is_called_unsure_and_one_seed_has_no_spread():
    noisy = runs("synth", [0.52, 0.52, 0.52], [0.56, 0.48, 0.50], [0.2, 0.2, 0.2])
    assert "not sure" in verdict(BASE + noisy, "base")
    one = [BASE[0], record("synth", 0, 0.6, 0.6, 0.3)]
    assert "1 seed only" in verdict(one, "base")
    assert "treat the gain as unproven" in verdict([BASE[0], record("synth", 0, 0.6, 0.4, 0.1)], "base")


def cls_summary(gain_mean: float, std: float | None, better: int) -> dict:
    arm = {"config": {"source": "cgan"}, "baseline": "real", "gain": {"mean": gain_mean, "std": std,
           "better": better, "runs": 20}}  # fmt: skip
    return {"arms": {"real": {"config": {"source": "real"}, "gain": None}, "cgan": arm}}


def test_cls_experiment_verdict_warns_when_generated_images_cost_accuracy():
    from synthlabel.cls.report import cls_verdict, summary_markdown

    lost = cls_verdict(cls_summary(-0.02, 0.01, 2))
    assert lost.startswith("**Train without generated images.**") and "-2.0 points" in lost and "2/20" in lost
    won = cls_verdict(cls_summary(0.03, 0.02, 17))
    assert won.startswith("**Use cgan.**") and "clear over 20 runs" in won and "confirm a small gain" in won
    assert summary_markdown({"arms": {}}).startswith("## Verdict")
