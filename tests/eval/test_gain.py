"""Gain aggregation on hand-made numbers: means, ddof=1 std, paired and unpaired deltas, rare averages,
missing classes, amount sorting, cross-domain table, Markdown and CSV writers."""

import csv
import math
import statistics

import pytest

from synthlabel.eval.gain import (
    amount_sweep,
    arm_summary,
    class_deltas,
    cross_domain_markdown,
    cross_domain_table,
    deltas_markdown,
    paired_delta,
    stats,
    summary_markdown,
    sweep_markdown,
    unpaired_delta,
    write_cross_domain_csv,
    write_deltas_csv,
    write_summary_csv,
    write_sweep_csv,
)


def metrics(road, car, bike):
    """A metrics dict shaped like `metrics_from_confusion`; mIoU over the present classes."""
    ious = {"road": road, "car": car, "bike": bike}
    kept = [v for v in ious.values() if v is not None]
    return {"miou": sum(kept) / len(kept), "per_class_iou": ious, "class_names": list(ious)}


def rec(arm, amount, seed, road, car, bike, **extra):
    return {"arm": arm, "amount": amount, "seed": seed, "metrics": metrics(road, car, bike), **extra}


BASE = [rec("real", 0, 0, 0.90, 0.50, 0.10), rec("real", 0, 1, 0.92, 0.54, 0.14), rec("real", 0, 2, 0.94, 0.52, 0.12)]
SYN = [rec("syn", 1, 0, 0.91, 0.56, 0.20), rec("syn", 1, 1, 0.91, 0.58, 0.22), rec("syn", 1, 2, 0.95, 0.60, 0.30)]


def test_stats_sample_std_and_single_value():
    s = stats([1.0, 2.0, None, 4.0])
    assert s["mean"] == pytest.approx(7 / 3) and s["n"] == 3
    assert s["std"] == pytest.approx(statistics.stdev([1.0, 2.0, 4.0]))
    assert stats([0.5]) == {"mean": 0.5, "std": None, "n": 1}
    assert stats([None, None]) is None


def test_arm_summary_means_std_rare_and_order():
    shuffled = [SYN[2], BASE[1], SYN[0], BASE[0], BASE[2], SYN[1], rec("syn", 0.5, 0, 0.9, 0.5, 0.1)]
    rows = arm_summary(shuffled, rare=["bike"])
    assert [(r["arm"], r["amount"]) for r in rows] == [("syn", 0.5), ("syn", 1.0), ("real", 0.0)]
    syn = rows[1]
    assert syn["n"] == 3 and syn["seeds"] == [0, 1, 2]
    mious = [r["metrics"]["miou"] for r in SYN]
    assert syn["miou_mean"] == pytest.approx(statistics.mean(mious))
    assert syn["miou_std"] == pytest.approx(statistics.stdev(mious))
    assert syn["per_class"]["car"]["mean"] == pytest.approx(0.58)
    assert syn["per_class"]["car"]["std"] == pytest.approx(0.02)
    assert syn["rare_mean"] == pytest.approx(0.24) and syn["rare_std"] == pytest.approx(
        statistics.stdev([0.2, 0.22, 0.3])
    )
    one = rows[0]
    assert one["n"] == 1 and one["miou_std"] is None and one["per_class"]["road"]["std"] is None


def test_missing_class_is_skipped_not_zero():
    runs = [rec("a", 0, 0, 0.8, None, 0.2), rec("a", 0, 1, 0.6, 0.4, None), rec("a", 0, 2, 0.7, None, None)]
    row = arm_summary(runs, rare=["car", "bike"])[0]
    assert row["per_class"]["car"] == {"mean": 0.4, "std": None, "n": 1}
    assert row["per_class"]["bike"]["n"] == 1
    # rare average per seed over the rare classes present: 0.2, 0.4, (none) -> mean 0.3 over two seeds
    assert row["rare_mean"] == pytest.approx(0.3)
    assert row["rare_std"] == pytest.approx(statistics.stdev([0.2, 0.4]))
    all_absent = arm_summary([rec("b", 0, 0, 0.5, None, None)])[0]
    assert all_absent["per_class"]["car"] is None


def test_paired_deltas_per_seed():
    out = class_deltas(BASE + SYN, baseline_arm="real", rare=["bike"])
    assert out["baseline"] == {"arm": "real", "amount": 0.0, "seeds": [0, 1, 2], "n": 3}
    comp = out["arms"]["syn"]
    assert comp["paired"] and comp["n"] == 3
    car = [0.06, 0.04, 0.08]
    assert comp["per_class"]["car"]["mean"] == pytest.approx(0.06)
    assert comp["per_class"]["car"]["std"] == pytest.approx(statistics.stdev(car))
    assert comp["per_class"]["car"]["se"] == pytest.approx(statistics.stdev(car) / math.sqrt(3))
    assert comp["per_class"]["car"]["beyond_spread"] is True  # 0.06 > 2 * 0.0115
    road = [0.01, -0.01, 0.01]
    assert comp["per_class"]["road"]["mean"] == pytest.approx(statistics.mean(road))
    assert comp["per_class"]["road"]["beyond_spread"] is False
    d_miou = [s["metrics"]["miou"] - b["metrics"]["miou"] for s, b in zip(SYN, BASE, strict=True)]
    assert comp["miou"]["mean"] == pytest.approx(statistics.mean(d_miou))
    assert comp["miou"]["std"] == pytest.approx(statistics.stdev(d_miou))
    assert comp["rare_mean"]["mean"] == pytest.approx(statistics.mean([0.10, 0.08, 0.18]))


def test_paired_rare_delta_uses_classes_scored_on_both_sides():
    base = [rec("real", 0, 0, 0.9, 0.2, None), rec("real", 0, 1, 0.9, 0.4, 0.1)]
    syn = [rec("syn", 1, 0, 0.9, 0.3, 0.5), rec("syn", 1, 1, 0.9, 0.5, 0.3)]
    comp = class_deltas(base + syn, "real", rare=["car", "bike"])["arms"]["syn"]
    # seed 0: only car on both sides (+0.1); seed 1: car +0.1, bike +0.2 -> +0.15
    assert comp["rare_mean"]["mean"] == pytest.approx(0.125)
    assert comp["per_class"]["bike"]["n"] == 1 and comp["per_class"]["bike"]["std"] is None
    assert comp["per_class"]["bike"]["beyond_spread"] is None


def test_unpaired_fallback_pooled_std():
    syn = [rec("syn", 1, 5, 0.9, 0.60, 0.2), rec("syn", 1, 6, 0.9, 0.70, 0.2)]
    comp = class_deltas(BASE + syn, "real")["arms"]["syn"]
    assert not comp["paired"]
    car_a, car_b = [0.60, 0.70], [0.50, 0.54, 0.52]
    assert comp["per_class"]["car"]["mean"] == pytest.approx(0.65 - 0.52)
    pooled = math.sqrt((1 * statistics.variance(car_a) + 2 * statistics.variance(car_b)) / 3)
    assert comp["per_class"]["car"]["std"] == pytest.approx(pooled)
    assert comp["per_class"]["car"]["se"] == pytest.approx(pooled * math.sqrt(1 / 2 + 1 / 3))
    assert comp["rare_mean"] is None


def test_delta_helpers_edge_cases():
    assert paired_delta([None, 0.5], [0.1, None]) is None
    one = paired_delta([0.5], [0.25])
    assert one["mean"] == 0.25 and one["std"] is None and one["beyond_spread"] is None
    assert unpaired_delta([0.5], [0.25])["std"] is None  # no degrees of freedom
    assert unpaired_delta([0.5], [0.2, 0.3])["std"] == pytest.approx(statistics.stdev([0.2, 0.3]))


def test_several_amounts_are_labeled_and_baseline_must_be_unique():
    recs = BASE + SYN + [rec("syn", 4, 0, 0.9, 0.6, 0.3)]
    out = class_deltas(recs, "real")
    assert list(out["arms"]) == ["syn @ 1", "syn @ 4"]
    with pytest.raises(ValueError, match="baseline_amount"):
        class_deltas(recs, "syn")
    assert list(class_deltas(recs, "syn", baseline_amount=4)["arms"]) == ["real", "syn"]
    with pytest.raises(ValueError, match="no runs of baseline"):
        class_deltas(recs, "nope")
    with pytest.raises(ValueError, match="same seed twice"):
        arm_summary(BASE + [BASE[0]])


def test_amount_sweep_sorted_with_baseline_point():
    recs = [rec("syn", 4, 0, 0.9, 0.6, 0.3), rec("syn", 0.5, 0, 0.9, 0.5, 0.3), rec("syn", 1, 0, 0.9, 0.5, 0.2)]
    recs += [rec("syn", 1, 1, 0.9, 0.5, 0.4)] + BASE
    points = amount_sweep(recs, "syn")
    assert [p[0] for p in points] == [0.5, 1.0, 4.0]
    amount, mean, std, n = points[1]
    assert n == 2 and mean == pytest.approx((0.9 + 0.5 + 0.3) / 3) and std == pytest.approx(0.1 / 3 * math.sqrt(2))
    with_base = amount_sweep(recs, "syn", baseline_arm="real")
    assert with_base[0][0] == 0.0 and with_base[0][3] == 3
    with pytest.raises(ValueError, match="no runs of arm"):
        amount_sweep(recs, "nope")


def test_eval_set_selection():
    other = [dict(r, eval_set="synthetic") for r in SYN]
    assert {r["arm"] for r in arm_summary(BASE + SYN + other)} == {"real", "syn"}
    only_syn = arm_summary(BASE + SYN + other, eval_set="synthetic")
    assert [r["arm"] for r in only_syn] == ["syn"]
    with pytest.raises(ValueError, match="eval_set"):
        arm_summary([dict(r, eval_set="val") for r in BASE] + other)


def test_cross_domain_table_and_markdown():
    recs = BASE + [dict(r, eval_set="synthetic") for r in BASE]
    recs += [dict(r, train_set="synthetic", eval_set=e) for r in SYN for e in ("real_test", "synthetic")]
    rows = cross_domain_table(recs)
    by_key = {(r["train_set"], r["eval_set"]): r for r in rows}
    assert set(by_key) == {(t, e) for t in ("real", "synthetic") for e in ("real_test", "synthetic")}
    cell = by_key[("synthetic", "real_test")]
    assert cell["n"] == 3 and cell["miou_mean"] == pytest.approx(statistics.mean(r["metrics"]["miou"] for r in SYN))
    md = cross_domain_markdown(rows)
    assert "real_test mIoU %" in md and "synthetic mIoU %" in md and len(md.strip().splitlines()) == 4


def test_markdown_and_csv_writers(tmp_path):
    recs = BASE + SYN
    summary = arm_summary(recs, rare=["bike"])
    md = summary_markdown(summary, per_class=True)
    assert "| real" in md and "bike %" in md and "± " in md
    deltas = class_deltas(recs, "real", rare=["bike"])
    dmd = deltas_markdown(deltas)
    assert "+6.0 ± 2.0 *" in dmd and "bike (rare)" in dmd and "rare classes" in dmd
    assert "syn @" not in sweep_markdown({"syn": amount_sweep(recs, "syn")})

    path = write_summary_csv(summary, tmp_path / "summary.csv")
    rows = list(csv.DictReader(path.open()))
    assert [r["arm"] for r in rows] == ["real", "syn"] and rows[0]["seeds"] == "0 1 2"
    assert float(rows[1]["iou_car_mean"]) == pytest.approx(0.58)
    drows = list(csv.DictReader(write_deltas_csv(deltas, tmp_path / "deltas.csv").open()))
    assert [r["metric"] for r in drows] == ["miou", "rare_mean", "road", "car", "bike"]
    assert drows[3]["beyond_spread"] == "True" and float(drows[3]["delta_mean"]) == pytest.approx(0.06)
    srows = list(csv.reader(write_sweep_csv({"syn": amount_sweep(recs, "syn")}, tmp_path / "s.csv").open()))
    assert srows[0] == ["arm", "amount", "miou_mean", "miou_std", "n"] and len(srows) == 2
    crows = list(csv.DictReader(write_cross_domain_csv(cross_domain_table(recs), tmp_path / "c.csv").open()))
    assert {r["train_set"] for r in crows} == {"real", "mixed"}
    assert not list(tmp_path.glob(".*.tmp"))
