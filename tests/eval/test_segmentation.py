"""Segmentation metrics: hand-made confusion matrices, ignore handling, accumulation, seeds, Markdown."""

import json

import numpy as np
import pytest
import torch

from synthlabel.eval.segmentation import (
    ConfusionMatrix,
    aggregate_seeds,
    confusion_matrix,
    metrics_from_confusion,
    metrics_markdown,
)
from synthlabel.tables import fmt_mean_std, fmt_pct, markdown_table

# rows = GT, cols = prediction. Class "sky" is only predicted (once), class "boat" appears nowhere.
CM = np.array(
    [
        [5, 1, 0, 0],
        [2, 3, 1, 0],
        [0, 0, 0, 0],
        [0, 0, 0, 0],
    ]
)
NAMES = ["road", "car", "sky", "boat"]


def test_hand_made_ious_and_absent_class():
    m = metrics_from_confusion(CM, NAMES)
    # road: tp 5, gt 6, pred 7 -> 5 / 8; car: tp 3, gt 6, pred 4 -> 3 / 7; sky: 0 / (0 + 1 - 0) = 0
    assert m["per_class_iou"]["road"] == pytest.approx(5 / 8)
    assert m["per_class_iou"]["car"] == pytest.approx(3 / 7)
    assert m["per_class_iou"]["sky"] == 0.0
    assert m["per_class_iou"]["boat"] is None
    expected = (5 / 8 + 3 / 7 + 0.0) / 3
    assert m["miou"] == pytest.approx(expected)
    assert m["miou"] != pytest.approx((5 / 8 + 3 / 7 + 0.0 + 1.0) / 4)  # kornia's "absent = 1" would give this
    assert m["pixel_accuracy"] == pytest.approx(8 / 12)
    assert m["mean_accuracy"] == pytest.approx((5 / 6 + 3 / 6) / 2)  # only classes with GT pixels
    assert m["per_class_accuracy"]["sky"] is None
    assert m["per_class_frequency"] == pytest.approx({"road": 0.5, "car": 0.5, "sky": 0.0, "boat": 0.0})
    assert m["num_pixels"] == 12 and m["class_names"] == NAMES


def test_metrics_are_plain_json():
    m = metrics_from_confusion(torch.as_tensor(CM), NAMES)
    json.dumps(m, allow_nan=False)
    assert type(m["miou"]) is float and type(m["per_class_iou"]["road"]) is float and type(m["num_pixels"]) is int
    assert metrics_from_confusion(CM)["class_names"] == ["class_0", "class_1", "class_2", "class_3"]


def test_empty_matrix_has_no_nan():
    m = metrics_from_confusion(np.zeros((3, 3), dtype=np.int64))
    assert m["miou"] is None and m["pixel_accuracy"] is None and m["mean_accuracy"] is None
    json.dumps(m, allow_nan=False)


def test_perfect_prediction_gives_one():
    target = torch.tensor([[0, 1, 2], [2, 2, 255]])
    pred = torch.where(target == 255, torch.zeros_like(target), target)
    m = metrics_from_confusion(confusion_matrix(pred, target, 4, 255))
    assert m["miou"] == 1.0 and m["pixel_accuracy"] == 1.0 and m["mean_accuracy"] == 1.0
    assert m["per_class_iou"]["class_3"] is None


def test_confusion_matrix_skips_ignore_and_out_of_range_targets():
    target = torch.tensor([[0, 1, 255, 255], [1, 7, 0, -1]])
    pred = torch.tensor([[0, 0, 1, 2], [1, 2, 2, 1]])
    cm = confusion_matrix(pred, target, num_classes=3, ignore_index=255)
    # counted pixels (gt, pred): (0,0), (1,0), (1,1), (0,2)
    expected = torch.zeros(3, 3, dtype=torch.int64)
    for gt, p in [(0, 0), (1, 0), (1, 1), (0, 2)]:
        expected[gt, p] += 1
    assert cm.dtype == torch.int64 and torch.equal(cm, expected)


def test_confusion_matrix_rejects_bad_input():
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(torch.zeros(2, 3, dtype=torch.long), torch.zeros(3, 2, dtype=torch.long), 2, 255)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        confusion_matrix(torch.tensor([0, 5]), torch.tensor([0, 1]), 2, 255)
    with pytest.raises(TypeError):
        confusion_matrix(torch.zeros(4), torch.zeros(4, dtype=torch.long), 2, 255)


def test_batchwise_accumulation_equals_one_shot_and_reference():
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 6, (6, 9, 11), generator=g)
    target[target == 5] = 255
    pred = torch.randint(0, 5, (6, 9, 11), generator=g)
    acc = ConfusionMatrix(num_classes=5, ignore_index=255)
    for i in range(0, 6, 2):
        acc.update(pred[i : i + 2], target[i : i + 2])
    one_shot = confusion_matrix(pred, target, 5, 255)
    reference = np.zeros((5, 5), dtype=np.int64)
    keep = (target != 255).numpy()
    np.add.at(reference, (target.numpy()[keep], pred.numpy()[keep]), 1)
    assert torch.equal(acc.matrix, one_shot)
    np.testing.assert_array_equal(acc.matrix.numpy(), reference)
    assert acc.compute()["miou"] == metrics_from_confusion(reference)["miou"]


def _result(miou, road, car):
    return {
        "miou": miou,
        "pixel_accuracy": 0.9,
        "mean_accuracy": miou,
        "per_class_iou": {"road": road, "car": car},
        "class_names": ["road", "car"],
    }


def test_aggregate_seeds_mean_and_sample_std():
    agg = aggregate_seeds([_result(0.4, 0.2, None), _result(0.5, 0.4, None), _result(0.6, None, None)])
    assert agg["n"] == 3
    assert agg["miou"]["mean"] == pytest.approx(0.5) and agg["miou"]["std"] == pytest.approx(0.1)
    assert agg["pixel_accuracy"] == pytest.approx({"mean": 0.9, "std": 0.0}, abs=1e-12)
    # road has values in two runs only: mean 0.3, sample std sqrt(((0.1)^2 + (0.1)^2) / 1)
    assert agg["per_class_iou"]["road"]["mean"] == pytest.approx(0.3)
    assert agg["per_class_iou"]["road"]["std"] == pytest.approx(np.sqrt(0.02))
    assert agg["per_class_iou"]["car"] is None
    json.dumps(agg, allow_nan=False)


def test_aggregate_single_run_and_mismatch():
    agg = aggregate_seeds([_result(0.4, 0.2, 0.6)])
    assert agg["n"] == 1 and agg["miou"] == {"mean": 0.4, "std": 0.0}
    other = dict(_result(0.4, 0.2, 0.6), class_names=["car", "road"])
    with pytest.raises(ValueError, match="classes"):
        aggregate_seeds([_result(0.4, 0.2, 0.6), other])


def test_markdown_single_and_aggregate():
    m = metrics_from_confusion(CM, NAMES)
    text = metrics_markdown(m, title="val")
    assert text.startswith("### val")
    for name in NAMES:
        assert f"| {name}" in text
    assert "62.5" in text and "—" in text  # road IoU 5/8 and the absent class
    runs = [metrics_from_confusion(CM, NAMES), metrics_from_confusion(np.diag([6, 6, 0, 0]), NAMES)]
    agg_text = metrics_markdown(aggregate_seeds(runs))
    # road IoU: 0.625 and 1.0 -> mean 81.2 (81.25 rounds half-even), std 26.5
    assert "81.2 ± 26.5" in agg_text and "over 2 runs" in agg_text


def test_table_helpers():
    assert fmt_pct(0.4534) == "45.3" and fmt_pct(None) == "—" and fmt_pct(0.5, digits=0) == "50"
    assert fmt_mean_std(0.453, 0.012) == "45.3 ± 1.2"
    table = markdown_table(["class", "IoU"], [["road", "45.3"], ["a", None]])
    lines = table.splitlines()
    assert len(lines) == 4 and len({len(line) for line in lines}) == 1  # aligned pipes
    assert lines[3].endswith("— |")
    with pytest.raises(ValueError):
        markdown_table(["a", "b"], [["only one"]])


def test_per_condition_metrics_on_a_hand_made_case():
    """Two day images predicted perfectly, one dusk image half wrong: the overall mIoU mixes them, per_condition
    tells them apart; one condition only adds nothing."""
    from synthlabel.data.classes import ClassInfo, ClassSpec
    from synthlabel.data.sample import TensorSet
    from synthlabel.eval.segmentation import evaluate

    spec = ClassSpec((ClassInfo(0, "a", (0, 0, 0)), ClassInfo(1, "b", (1, 1, 1))), 255)
    labels = torch.zeros(3, 4, 4, dtype=torch.long)
    labels[:, :, 2:] = 1
    images = torch.zeros(3, 3, 4, 4, dtype=torch.uint8)
    images[:2, 0][labels[:2] == 1] = 255  # day: the red channel shows the class
    images[2, 0, :2] = 255  # dusk: the top half looks like class b
    meta = [{"condition": "day"}, {"condition": "day"}, {"condition": "dusk"}]

    class RedIsB(torch.nn.Module):
        def forward(self, x):  # logits: class b where the red channel is high
            return torch.stack([-x[:, 0], x[:, 0]], dim=1)

    m = evaluate(RedIsB(), TensorSet(images, labels, meta), spec)
    day, dusk = m["per_condition"]["day"], m["per_condition"]["dusk"]
    assert day["miou"] == pytest.approx(1.0) and day["images"] == 2
    # dusk: pred b on the top half (4 a-pixels wrong, 4 b right), a on the bottom half (4 a right, 4 b wrong)
    assert dusk["miou"] == pytest.approx((4 / 12 + 4 / 12) / 2) and dusk["images"] == 1
    assert day["miou"] > m["miou"] > dusk["miou"]
    assert "per_condition" not in evaluate(RedIsB(), TensorSet(images[:2], labels[:2], meta[:2]), spec)
