"""The verdict a report opens with: which arm to use, by how much it helps (or hurts), for which classes, and how
sure that is over the seeds. The arm is chosen on validation only; test figures are reported, never chosen on.
When no arm beats the baseline on validation, the verdict is to train without synthetic data."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from synthlabel.eval.gain import best_by_validation, class_deltas, paired_delta

SHOWN = 3  # classes named as helped / hurt
NOTABLE = 0.01  # a per-class change smaller than one point is not named


def _pts(x: float) -> str:
    return f"{100 * x:+.1f}"


def certainty(d: Mapping | None, unit: str = "seeds") -> str:
    """How sure a paired delta is over its seeds (or runs), in words."""
    if d is None:
        return f"no paired {unit} to judge by"
    if d.get("se") is None:
        return f"{d['n']} {unit[:-1]} only, so no spread to judge by: run more {unit} before relying on it"
    if d["beyond_spread"]:
        return f"clear over {d['n']} {unit} (|Δ| > 2 standard errors, se {100 * d['se']:.1f})"
    return f"within the spread over {d['n']} {unit} (|Δ| < 2 standard errors, se {100 * d['se']:.1f}): not sure"


def verdict(
    records: Sequence[Mapping],
    baseline: str,
    rare: Sequence[str] = (),
    select_seeds: tuple[int, ...] | None = None,
    eval_set: str = "real_test",
) -> str:
    """Markdown paragraph: the arm picked on validation against `baseline`, its test delta, classes, certainty."""
    records = list(records)
    picked = best_by_validation(records, select_seeds)
    base_group = next((r["group"] for r in records if r["arm"] == baseline), None)
    if base_group is None:
        return f"No runs of the baseline arm {baseline!r} yet: no verdict."
    base = {r["seed"]: r for r in records if r["arm"] == baseline}
    candidates = []
    for group, (arm, amount) in picked.items():
        if group == base_group:
            continue
        runs = {r["seed"]: r for r in records if r["arm"] == arm and r["amount"] == amount}
        seeds = sorted(set(runs) & set(base))
        val = paired_delta(
            [(runs[s].get("val") or {}).get("miou") for s in seeds],
            [(base[s].get("val") or {}).get("miou") for s in seeds],
        )
        if val is not None:
            candidates.append((val["mean"], arm, amount, val))
    if not candidates:
        return f"No other arm has validation figures to compare with {baseline}: no verdict."
    val_gain, arm, amount, val = max(candidates, key=lambda c: c[0])
    chosen = [r for r in records if (r["arm"], r["amount"]) == (arm, amount) or r["arm"] == baseline]
    long = [{**r, "eval_set": eval_set, "metrics": r["eval"][eval_set]} for r in chosen if eval_set in r["eval"]]
    deltas = class_deltas(long, baseline, rare, eval_set=eval_set)["arms"]
    test = next(iter(deltas.values()))
    name = arm if amount == 0 else f"{arm} (synthetic × {amount:g})"
    d = test["miou"]
    test_text = f"test mIoU {_pts(d['mean'])} points ({certainty(d)})" if d else "no test mIoU delta"
    if val_gain <= 0:
        return (
            f"**Train without synthetic data.** No arm beat {baseline} on validation; the best, {name}, changed "
            f"validation mIoU by {_pts(val_gain)} points, and scores {test_text}."
        )
    parts = [f"**Use {name}.** It beat {baseline} on validation by {_pts(val_gain)} points mIoU; {test_text}"]
    if test.get("rare_mean") is not None and rare:
        parts.append(f"rare classes ({', '.join(rare)}) {_pts(test['rare_mean']['mean'])} points")
    per_class = [(c, x["mean"]) for c, x in test["per_class"].items() if x is not None]
    helped = [f"{c} {_pts(m)}" for c, m in sorted(per_class, key=lambda t: -t[1])[:SHOWN] if m >= NOTABLE]
    hurt = [f"{c} {_pts(m)}" for c, m in sorted(per_class, key=lambda t: t[1])[:SHOWN] if m <= -NOTABLE]
    if helped:
        parts.append(f"helps most {', '.join(helped)}")
    if hurt:
        parts.append(f"hurts {', '.join(hurt)}")
    text = "; ".join(parts) + "."
    if d is not None and d["mean"] < 0:
        text += " It lost on test although it won on validation: treat the gain as unproven."
    return text
