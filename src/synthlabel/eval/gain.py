"""Gain of synthetic data on the downstream model: aggregation over experiment runs (arms x amounts x seeds) of run
records {"arm", "amount" (synthetic images per real image), "seed", "metrics" (`metrics_from_confusion`), optional
"eval_set" (default "real_test") and "train_set" (real | synthetic | mixed)}. Spreads are sample std (ddof=1)."""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from synthlabel.checkpoint import atomic_write_text
from synthlabel.tables import MISSING, fmt_mean_std, markdown_table

DEFAULT_EVAL_SET = "real_test"
Point = tuple[float, float | None, float | None, int]  # (amount, mIoU mean, mIoU std, n seeds)


# ---------------------------------------------------------------- small statistics


def stats(values: Iterable[float | None]) -> dict | None:
    """{"mean", "std" (ddof=1, None for one value), "n"} of the non-None values; None when there are none."""
    kept = [float(v) for v in values if v is not None]
    if not kept:
        return None
    mean = sum(kept) / len(kept)
    std = math.sqrt(sum((v - mean) ** 2 for v in kept) / (len(kept) - 1)) if len(kept) > 1 else None
    return {"mean": mean, "std": std, "n": len(kept)}


def _mean(values: Iterable[float | None]) -> float | None:
    kept = [float(v) for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def _delta(mean: float, std: float | None, se: float | None, n: int) -> dict:
    """A delta with its spread; beyond_spread is |mean| > 2 * se (about a 95% interval excluding 0)."""
    beyond = None if se is None else abs(mean) > 2.0 * se
    return {"mean": mean, "std": std, "se": se, "n": n, "beyond_spread": beyond}


def paired_delta(a: Sequence[float | None], b: Sequence[float | None]) -> dict | None:
    """Mean and std of per-seed differences a[i] - b[i] (pairs with a None skipped); se = std / sqrt(n)."""
    return _from_differences(x - y for x, y in zip(a, b, strict=True) if x is not None and y is not None)


def _from_differences(differences: Iterable[float | None]) -> dict | None:
    s = stats(differences)
    if s is None:
        return None
    se = None if s["std"] is None else s["std"] / math.sqrt(s["n"])
    return _delta(s["mean"], s["std"], se, s["n"])


def unpaired_delta(a: Sequence[float | None], b: Sequence[float | None]) -> dict | None:
    """Difference of means with the pooled std (ddof=1 per side); se = pooled * sqrt(1/na + 1/nb)."""
    sa, sb = stats(a), stats(b)
    if sa is None or sb is None:
        return None
    dof = sa["n"] + sb["n"] - 2
    squares = sum((s["n"] - 1) * s["std"] ** 2 for s in (sa, sb) if s["std"] is not None)
    pooled = math.sqrt(squares / dof) if dof > 0 else None
    se = None if pooled is None else pooled * math.sqrt(1.0 / sa["n"] + 1.0 / sb["n"])
    return _delta(sa["mean"] - sb["mean"], pooled, se, min(sa["n"], sb["n"]))


# ---------------------------------------------------------------- reading records


def class_ious(metrics: Mapping) -> dict[str, float | None]:
    """Per-class IoU {name: iou} of a metrics dict (its `per_class_iou`)."""
    return {str(k): (None if v is None else float(v)) for k, v in metrics["per_class_iou"].items()}


def _eval_set(record: Mapping) -> str:
    return str(record.get("eval_set", DEFAULT_EVAL_SET))


def _train_set(record: Mapping) -> str:
    return str(record.get("train_set", "real" if float(record["amount"]) == 0 else "mixed"))


def _select_eval_set(records: Sequence[Mapping], eval_set: str | None) -> list[Mapping]:
    """Records of one evaluation set: the one asked for, the only one present, or else "real_test"."""
    present = list(dict.fromkeys(_eval_set(r) for r in records))
    if eval_set is None:
        if len(present) > 1 and DEFAULT_EVAL_SET not in present:
            raise ValueError(f"records hold several eval sets {present}; pass eval_set= to choose one")
        eval_set = present[0] if len(present) == 1 else DEFAULT_EVAL_SET
    return [r for r in records if _eval_set(r) == eval_set]


def _groups(records: Sequence[Mapping], eval_set: str | None) -> dict[tuple[str, float], list[Mapping]]:
    """(arm, amount) -> records sorted by seed; arms in order of appearance, amounts ascending."""
    groups: dict[tuple[str, float], list[Mapping]] = {}
    for r in _select_eval_set(records, eval_set):
        groups.setdefault((str(r["arm"]), float(r["amount"])), []).append(r)
    arm_order = list(dict.fromkeys(arm for arm, _ in groups))
    out = {}
    for key in sorted(groups, key=lambda k: (arm_order.index(k[0]), k[1])):
        out[key] = sorted(groups[key], key=lambda r: int(r["seed"]))
        _check_seeds(out[key], f"arm {key[0]!r} at amount {key[1]:g}")
    return out


def _check_seeds(runs: Sequence[Mapping], what: str) -> None:
    seeds = [int(r["seed"]) for r in runs]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"{what} has the same seed twice: {seeds}")


def _mean_std(s: Mapping | None, name: str) -> dict:
    """{name_mean, name_std} of a `stats` result (both None without one)."""
    return {f"{name}_mean": None if s is None else s["mean"], f"{name}_std": None if s is None else s["std"]}


def _classes(records: Iterable[Mapping]) -> list[str]:
    return list(dict.fromkeys(c for r in records for c in class_ious(r["metrics"])))


def _rare_average(ious: Mapping[str, float | None], rare: Sequence[str]) -> float | None:
    return _mean(ious.get(c) for c in rare)


# ---------------------------------------------------------------- aggregations


def arm_summary(
    records: Sequence[Mapping], rare: Sequence[str] | None = None, eval_set: str | None = None
) -> list[dict]:
    """One row per (arm, amount): n seeds, mIoU mean/std, per-class IoU {"mean", "std", "n"} (None where the
    class is absent in every seed), and the rare-class average (per seed over the rare classes present, then
    mean/std over seeds) when `rare` is given."""
    rows = []
    for (arm, amount), runs in _groups(records, eval_set).items():
        ious = [class_ious(r["metrics"]) for r in runs]
        row = {"arm": arm, "amount": amount, "n": len(runs), "seeds": [int(r["seed"]) for r in runs]}
        row |= _mean_std(stats(r["metrics"].get("miou") for r in runs), "miou")
        row |= _mean_std(stats(_rare_average(i, rare) for i in ious) if rare else None, "rare")
        rows.append({**row, "per_class": {c: stats(i.get(c) for i in ious) for c in _classes(runs)}})
    return rows


def _compare(runs: list[Mapping], base: list[Mapping], classes: list[str], rare: Sequence[str]) -> dict:
    """Deltas of one group vs the baseline group: paired by seed when both have the same seeds."""
    seeds, base_seeds = [int(r["seed"]) for r in runs], [int(r["seed"]) for r in base]
    paired = seeds == base_seeds
    delta = paired_delta if paired else unpaired_delta
    a, b = [class_ious(r["metrics"]) for r in runs], [class_ious(r["metrics"]) for r in base]
    per_class = {c: delta([i.get(c) for i in a], [i.get(c) for i in b]) for c in classes}
    if not rare:
        rare_delta = None
    elif paired:  # per seed: average of the rare classes scored in both runs, so both sides see the same classes
        both = [[c for c in rare if x.get(c) is not None and y.get(c) is not None] for x, y in zip(a, b, strict=True)]
        rare_delta = _from_differences(_mean(x[c] - y[c] for c in cs) for x, y, cs in zip(a, b, both, strict=True))
    else:
        rare_delta = unpaired_delta([_rare_average(i, rare) for i in a], [_rare_average(i, rare) for i in b])
    miou = delta([r["metrics"].get("miou") for r in runs], [r["metrics"].get("miou") for r in base])
    return {
        "seeds": seeds,
        "n": len(runs),
        "paired": paired,
        "miou": miou,
        "rare_mean": rare_delta,
        "per_class": per_class,
    }


def _baseline_group(groups: dict, baseline_arm: str, baseline_amount: float | None) -> tuple[str, float]:
    keys = [k for k in groups if k[0] == baseline_arm and (baseline_amount is None or k[1] == float(baseline_amount))]
    if not keys:
        raise ValueError(f"no runs of baseline arm {baseline_arm!r}; arms present: {sorted({k[0] for k in groups})}")
    if len(keys) > 1:
        raise ValueError(f"baseline arm {baseline_arm!r} has amounts {[k[1] for k in keys]}; pass baseline_amount=")
    return keys[0]


def class_deltas(
    records: Sequence[Mapping],
    baseline_arm: str,
    rare: Sequence[str] | None = None,
    eval_set: str | None = None,
    baseline_amount: float | None = None,
) -> dict:
    """Per (arm, amount) vs the baseline arm: mIoU, rare-class-average and per-class IoU deltas.

    When a group has exactly the baseline's seeds, deltas are per seed and then mean ± std over seeds
    (se = std / sqrt(n)); otherwise difference of means with the pooled std (se = pooled * sqrt(1/na + 1/nb)).
    Each delta is {"mean", "std", "se", "n", "beyond_spread"} or None (class absent on one side), with
    beyond_spread = |mean| > 2 * se (None with one seed: no spread to compare with). Results are under
    "arms", keyed by the arm name, or "arm @ amount" for arms run at several amounts."""
    groups = _groups(records, eval_set)
    base_key = _baseline_group(groups, baseline_arm, baseline_amount)
    base = groups[base_key]
    classes = _classes(r for runs in groups.values() for r in runs)
    others = [k for k in groups if k != base_key]
    amounts_per_arm = {arm: sum(1 for a, _ in others if a == arm) for arm, _ in others}
    arms = {}
    for arm, amount in others:
        label = arm if amounts_per_arm[arm] == 1 else f"{arm} @ {amount:g}"
        arms[label] = {"arm": arm, "amount": amount, **_compare(groups[(arm, amount)], base, classes, rare or [])}
    baseline = {"arm": base_key[0], "amount": base_key[1], "seeds": [int(r["seed"]) for r in base], "n": len(base)}
    return {"baseline": baseline, "rare": list(rare or []), "classes": classes, "arms": arms}


def amount_sweep(
    records: Sequence[Mapping], arm: str, eval_set: str | None = None, baseline_arm: str | None = None
) -> list[Point]:
    """(amount, mIoU mean, std, n) of one arm, amounts ascending. With `baseline_arm`, the baseline's runs at
    amount 0 stand for the arm's amount-0 point when the arm has none of its own."""
    groups = _groups(records, eval_set)
    points = {amount: runs for (a, amount), runs in groups.items() if a == arm}
    if baseline_arm is not None and 0.0 not in points and (baseline_arm, 0.0) in groups:
        points[0.0] = groups[(baseline_arm, 0.0)]
    if not points:
        raise ValueError(f"no runs of arm {arm!r}; arms present: {sorted({k[0] for k in groups})}")
    out = []
    for amount in sorted(points):
        s = stats(r["metrics"].get("miou") for r in points[amount])
        out.append((amount, None if s is None else s["mean"], None if s is None else s["std"], len(points[amount])))
    return out


def cross_domain_table(records: Sequence[Mapping]) -> list[dict]:
    """mIoU mean/std for each (train_set, arm, amount) x eval_set, as long-format rows
    {"train_set", "arm", "amount", "eval_set", "n", "miou_mean", "miou_std"} (e.g. real/synthetic -> real/synthetic)."""
    cells: dict[tuple[str, str, float, str], list[Mapping]] = {}
    for r in records:
        cells.setdefault((_train_set(r), str(r["arm"]), float(r["amount"]), _eval_set(r)), []).append(r)
    rows = []
    for (train_set, arm, amount, eval_set), runs in cells.items():
        _check_seeds(runs, f"arm {arm!r} at amount {amount:g} on {eval_set!r}")
        row = {"train_set": train_set, "arm": arm, "amount": amount, "eval_set": eval_set, "n": len(runs)}
        rows.append(row | _mean_std(stats(r["metrics"].get("miou") for r in runs), "miou"))
    return rows


# ---------------------------------------------------------------- Markdown and CSV


def _pct(d: Mapping | None, mean: str = "mean", std: str = "std") -> str:
    return MISSING if d is None or d.get(mean) is None else fmt_mean_std(d[mean], d.get(std))


def summary_markdown(summary: Sequence[Mapping], per_class: bool = False) -> str:
    """Table of `arm_summary` rows (IoU in %, mean ± std over seeds); per-class columns when asked."""
    classes = list(dict.fromkeys(c for row in summary for c in row["per_class"])) if per_class else []
    headers = ["arm", "synthetic ×", "seeds", "mIoU %", "rare mIoU %"] + [f"{c} %" for c in classes]
    rows = []
    for row in summary:
        cells = [row["arm"], f"{row['amount']:g}", row["n"], _pct(row, "miou_mean", "miou_std")]
        rows.append(cells + [_pct(row, "rare_mean", "rare_std")] + [_pct(row["per_class"].get(c)) for c in classes])
    return markdown_table(headers, rows) + "\n"


def delta_cell(d: Mapping | None) -> str:
    """A delta as "+1.2 ± 0.8" IoU points, "*" when beyond the spread; "—" for None."""
    if d is None:
        return MISSING
    text = f"{100.0 * d['mean']:+.1f}" + ("" if d["std"] is None else f" ± {100.0 * d['std']:.1f}")
    return text + (" *" if d["beyond_spread"] else "")


def deltas_markdown(deltas: Mapping) -> str:
    """Table of `class_deltas`: rows mIoU, rare average and each class; one column per arm (IoU points,
    delta ± std; * marks a delta beyond 2 standard errors)."""
    arms = deltas["arms"]
    labels = [f"{label} ({'paired' if c['paired'] else 'unpaired'})" for label, c in arms.items()]
    headers = ["Δ IoU vs " + deltas["baseline"]["arm"], *labels]
    rows = [["mIoU"] + [delta_cell(c["miou"]) for c in arms.values()]]
    if deltas["rare"]:
        rows.append(["rare classes"] + [delta_cell(c["rare_mean"]) for c in arms.values()])
    rows += [
        [cls + (" (rare)" if cls in deltas["rare"] else "")]
        + [delta_cell(c["per_class"].get(cls)) for c in arms.values()]
        for cls in deltas["classes"]
    ]
    return markdown_table(headers, rows) + "\n\n\\* |mean| > 2 standard errors across seeds.\n"


def sweep_markdown(sweeps: Mapping[str, Sequence[Point]]) -> str:
    """Table of `amount_sweep` results per arm: amount, seeds, mIoU % mean ± std."""
    rows = [[arm, f"{a:g}", n, fmt_mean_std(m, s)] for arm, points in sweeps.items() for a, m, s, n in points]
    return markdown_table(["arm", "synthetic ×", "seeds", "mIoU %"], rows) + "\n"


def cross_domain_markdown(rows: Sequence[Mapping]) -> str:
    """`cross_domain_table` pivoted: one row per (train set, arm, amount), one mIoU % column per eval set."""
    eval_sets = list(dict.fromkeys(r["eval_set"] for r in rows))
    table: dict[tuple, dict[str, Mapping]] = {}
    for r in rows:
        table.setdefault((r["train_set"], r["arm"], r["amount"]), {})[r["eval_set"]] = r
    body = [
        [ts, arm, f"{amount:g}"] + [_pct(cells.get(e), "miou_mean", "miou_std") for e in eval_sets]
        for (ts, arm, amount), cells in table.items()
    ]
    return markdown_table(["train set", "arm", "synthetic ×"] + [f"{e} mIoU %" for e in eval_sets], body) + "\n"


def write_csv(path: str | os.PathLike, headers: Sequence[str], rows: Iterable[Sequence[object]]) -> Path:
    """Write a CSV atomically (None as an empty cell); returns the path."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows([["" if c is None else c for c in row] for row in rows])
    atomic_write_text(Path(path), buf.getvalue())
    return Path(path)


def write_summary_csv(summary: Sequence[Mapping], path: str | os.PathLike) -> Path:
    """`arm_summary` as CSV: one line per (arm, amount), per-class IoU mean and std columns (fractions)."""
    classes = list(dict.fromkeys(c for row in summary for c in row["per_class"]))
    headers = ["arm", "amount", "n", "seeds", "miou_mean", "miou_std", "rare_mean", "rare_std"]
    headers += [f"iou_{c}_{k}" for c in classes for k in ("mean", "std")]
    rows = []
    for row in summary:
        cells = [row["arm"], row["amount"], row["n"], " ".join(map(str, row["seeds"]))]
        cells += [row["miou_mean"], row["miou_std"], row["rare_mean"], row["rare_std"]]
        cells += [(row["per_class"].get(c) or {}).get(k) for c in classes for k in ("mean", "std")]
        rows.append(cells)
    return write_csv(path, headers, rows)


def write_deltas_csv(deltas: Mapping, path: str | os.PathLike) -> Path:
    """`class_deltas` as long-format CSV: one line per (arm, metric), metric = miou, rare_mean or a class."""
    headers = ["arm", "amount", "paired", "metric", "delta_mean", "delta_std", "delta_se", "n", "beyond_spread"]
    rows = []
    for label, comp in deltas["arms"].items():
        rare = [("rare_mean", comp["rare_mean"])] if deltas["rare"] else []
        for metric, d in [("miou", comp["miou"]), *rare, *comp["per_class"].items()]:
            values = [(d or {}).get(k) for k in ("mean", "std", "se", "n", "beyond_spread")]
            rows.append([label, comp["amount"], comp["paired"], metric, *values])
    return write_csv(path, headers, rows)


def write_sweep_csv(sweeps: Mapping[str, Sequence[Point]], path: str | os.PathLike) -> Path:
    """`amount_sweep` results per arm as CSV: arm, amount, miou_mean, miou_std, n."""
    rows = [[arm, a, m, s, n] for arm, points in sweeps.items() for a, m, s, n in points]
    return write_csv(path, ["arm", "amount", "miou_mean", "miou_std", "n"], rows)


def write_cross_domain_csv(rows: Sequence[Mapping], path: str | os.PathLike) -> Path:
    """`cross_domain_table` rows as CSV (long format)."""
    keys = ["train_set", "arm", "amount", "eval_set", "n", "miou_mean", "miou_std"]
    return write_csv(path, keys, [[r[k] for k in keys] for r in rows])


def best_by_validation(records: list[dict], seeds: tuple[int, ...] | None = None) -> dict[str, tuple[str, float]]:
    """Per group: the (arm, amount) with the highest mean validation mIoU over `seeds` (default: all seeds that
    ran); test figures are never looked at."""
    cells: dict[tuple[str, str, float], list[float]] = {}
    for r in records:
        if seeds is not None and r["seed"] not in seeds:
            continue
        val = (r.get("val") or {}).get("miou")
        cells.setdefault((r["group"], r["arm"], r["amount"]), []).append(math.nan if val is None else val)
    best: dict[str, tuple[float, str, float]] = {}
    for (group, arm, amount), vals in cells.items():
        finite = [v for v in vals if not math.isnan(v)]
        score = sum(finite) / len(finite) if finite else -math.inf
        if group not in best or score > best[group][0]:
            best[group] = (score, arm, amount)
    return {g: (arm, amount) for g, (_, arm, amount) in best.items()}
