"""Benchmark: the U-Net segmenter on CamVid at 96x128 with N in {25, 50, 100, all} labeled train images, classic
augmentation on/off, 3 seeds, evaluated on the 233 test images. The baseline every generator must beat.

Resumable: each finished arm writes benchmarks/results/camvid_lowshot/<arm>.json and is skipped on re-run; an arm
killed mid-training resumes from its last checkpoint in benchmarks/cache/.

    python benchmarks/camvid_lowshot.py --quick        # N=50, seed 0, aug on (< 10 min on 2 CPU cores)
    python benchmarks/camvid_lowshot.py                # full profile (24 arms)
    python benchmarks/camvid_lowshot.py --tune         # settings grid scored on val (never on test)
    python benchmarks/camvid_lowshot.py --curve        # the baseline's val learning curve: the fair budget
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

from common import REPO, SHARED_CAMVID, cached, machine, save_result

from synthlabel.budget import choose_steps
from synthlabel.checkpoint import atomic_write_text
from synthlabel.config import SegConfig, build_config
from synthlabel.downstream.workflow import evaluate_segmenter, train_segmenter
from synthlabel.eval.segmentation import aggregate_seeds
from synthlabel.runs import setup_logging
from synthlabel.tables import fmt_mean_std, markdown_table

SIZE = [96, 128]
# Chosen on CamVid val with benchmarks/camvid_lowshot.py --tune (see docs/benchmarks.md).
DEFAULTS = ["train.steps=1200", "train.batch_size=8", "train.eval_every=100000", "train.log_every=100"]
TUNE_GRID = {
    "lr2e-3_isf": [],
    "lr2e-3_none": ["train.class_weights=none"],
    "lr2e-3_median": ["train.class_weights=median_freq"],
}
CURVE_STEPS = (1200, 2400, 4800)  # the budget protocol's learning curve (docs/experiments.md)
TUNE_LOWSHOT: tuple[str, ...] = ()  # low-shot arms to also score on val (none in the recorded selection)


def selected_overrides(tune_dir: Path) -> tuple[list[str], str]:
    """The settings of the best N=all arm on val (from --tune results); the first grid entry if none ran."""
    scored = [(r["metrics"]["miou"], r["arm"]) for p in sorted(tune_dir.glob("nall_*.json")) if (r := cached(p))]
    best = max(scored)[1].removeprefix("nall_") if scored else next(iter(TUNE_GRID))
    return TUNE_GRID.get(best, []), best


def arm_config(data: Path, n: int | None, aug: bool, seed: int, extra: list[str]) -> SegConfig:
    base = {"data": {"path": str(data), "size": SIZE, "subset": {"n": n, "seed": seed}}}
    overrides = DEFAULTS + [f"train.augment.enabled={str(aug).lower()}", f"train.seed={seed}"] + extra
    return build_config(SegConfig, base, overrides)


def run_arm(name: str, cfg: SegConfig, out: Path, cache: Path, eval_split: str, also: tuple[str, ...] = ()) -> dict:
    """Train one arm (resumable) and score it on eval_split; splits in `also` are scored too (never chosen on)."""
    result_path = out / f"{name}.json"
    if (done := cached(result_path)) is not None:
        print(f"[cached] {name}: mIoU {100 * done['metrics']['miou']:.1f}")
        return done
    run_dir = cache / name
    start = time.monotonic()
    train = train_segmenter(cfg, run_dir, resume=(run_dir / "config.yaml").exists())
    metrics = evaluate_segmenter(train.model_dir, cfg.data.path, eval_split)
    result = {
        "arm": name,
        "eval_split": eval_split,
        "n": cfg.data.subset.n,
        "aug": cfg.train.augment.enabled,
        "seed": cfg.train.seed,
        "steps": cfg.train.steps,
        "config": cfg.model_dump(mode="json"),
        "train_seconds": round(train.seconds, 1),
        "wall_seconds": round(time.monotonic() - start, 1),
        "metrics": {
            k: metrics[k]
            for k in (
                "miou",
                "pixel_accuracy",
                "mean_accuracy",
                "per_class_iou",
                "per_class_accuracy",
                "per_class_frequency",
                "class_names",
            )
        },
    }
    for split in also:
        extra = evaluate_segmenter(train.model_dir, cfg.data.path, split)
        result[f"{split}_metrics"] = {k: extra[k] for k in ("miou", "per_class_iou")}
    save_result(result_path, result)
    print(f"[done] {name}: mIoU {100 * metrics['miou']:.1f} ({result['wall_seconds']:.0f}s)")
    return result


def summarize(results: list[dict], out: Path, title: str) -> str:
    if not results:
        return "no finished arms yet"
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault((r["n"] or 10**9, r["aug"], r.get("tune", "")), []).append(r)
    names = results[0]["metrics"]["per_class_iou"].keys()
    rows, summary = [], []
    for (n, aug, tune), rs in sorted(groups.items()):
        agg = aggregate_seeds([r["metrics"] for r in rs])
        label = "all" if n == 10**9 else str(n)
        cells = [fmt_mean_std(agg["per_class_iou"][c]["mean"], 0, digits=1).split(" ±")[0] for c in names]
        rows.append(
            [
                label,
                "on" if aug else "off",
                tune,
                agg["n"],
                fmt_mean_std(agg["miou"]["mean"], agg["miou"]["std"]),
                *cells,
                f"{sum(r['train_seconds'] for r in rs) / len(rs):.0f}",
            ]
        )
        summary.append({"n": label, "aug": aug, "tune": tune, "aggregate": agg})
    table = markdown_table(["N", "aug", "arm", "seeds", "mIoU %", *names, "train s/run"], rows)
    atomic_write_text(
        out / "summary.json", json.dumps({"title": title, "machine": machine(), "groups": summary}, indent=1)
    )
    atomic_write_text(out / "summary.md", f"### {title}\n\n{table}\n")
    return table


def learning_curve(args, ns: list[int | None], steps: list[int], seeds: list[int]) -> int:
    """The baseline (real + aug, settings chosen on val) at each step count on val, N=50 and all: the fair budget is
    the fewest steps where it has stopped improving (`synthlabel.budget.choose_steps`). Test is scored too, only to
    report the chosen budget's figure without another run."""
    out, cache = args.out / "curve", args.cache / "curve"
    chosen, _ = selected_overrides(args.out / "tune")
    for n in ns:
        for st in steps:
            for seed in seeds:
                name = f"n{n or 'all'}_{st}st_s{seed}"
                cfg = arm_config(args.data, n, True, seed, chosen + args.set + [f"train.steps={st}"])
                run_arm(name, cfg, out, cache, "val", also=("test",))
    curves: dict[str, dict[int, list[float]]] = {}  # every finished curve run, this invocation's or an earlier one's
    for path in sorted(out.glob("n*_*st_s*.json")):
        r = cached(path)
        curves.setdefault(f"n{r['n'] or 'all'}", {}).setdefault(r["steps"], []).append(r["metrics"]["miou"])
    table, picked = [], {}
    for key, curve in curves.items():
        means = {st: sum(v) / len(v) for st, v in sorted(curve.items())}
        picked[key] = choose_steps(means)
        table += [[key, st, f"{100 * m:.1f}", "<-" if st == picked[key] else ""] for st, m in means.items()]
    text = markdown_table(["N", "steps", "val mIoU %", "chosen"], table)
    atomic_write_text(out / "summary.md", f"### Baseline val learning curve, CamVid 96x128\n\n{text}\n")
    atomic_write_text(out / "chosen.json", json.dumps({"steps": picked, "machine": machine()}, indent=1))
    print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=SHARED_CAMVID)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "camvid_lowshot")
    p.add_argument("--cache", type=Path, default=REPO / "benchmarks" / "cache" / "camvid_lowshot")
    p.add_argument("--quick", action="store_true", help="one N (50), one seed, aug on")
    p.add_argument("--tune", action="store_true", help="score the settings grid on val (N=all and N=50, seed 0)")
    p.add_argument("--curve", action="store_true", help="baseline val learning curve over --curve-steps (N=50, all)")
    p.add_argument("--curve-steps", default=",".join(map(str, CURVE_STEPS)))
    p.add_argument("--ns", help="N values (default: 25,50,100,all; with --curve: 50,all)")
    p.add_argument("--seeds", help="seeds (default: 0,1,2; with --curve: 0)")
    p.add_argument("--aug", default="on,off")
    p.add_argument("--set", nargs="*", default=[], help="extra overrides for every arm, e.g. train.steps=600")
    p.add_argument("--summarize", action="store_true", help="tabulate the finished arms only; train nothing")
    args = p.parse_args(argv)
    setup_logging()
    ns = [None if n == "all" else int(n) for n in (args.ns or ("50,all" if args.curve else "25,50,100,all")).split(",")]
    seeds = [int(s) for s in (args.seeds or ("0" if args.curve else "0,1,2")).split(",")]
    augs = [a == "on" for a in args.aug.split(",")]
    if args.quick:
        ns, seeds, augs = [50], [0], [True]
    tag = ("_" + hashlib.sha1(" ".join(args.set).encode()).hexdigest()[:6]) if args.set else ""  # user overrides
    start, results = time.monotonic(), []
    if args.curve:
        return learning_curve(args, ns, [int(s) for s in args.curve_steps.split(",")], seeds)
    if args.tune:
        out, cache = args.out / "tune", args.cache / "tune"
        for n in (None, 50):
            for tname, extra in TUNE_GRID.items():
                if n is not None and tname not in TUNE_LOWSHOT:
                    continue
                name = f"n{n or 'all'}_{tname}{tag}"
                r = run_arm(name, arm_config(args.data, n, True, 0, extra + args.set), out, cache, "val")
                results.append({**r, "tune": tname})
        print(summarize(results, out, "CamVid val (settings selection)"))
    else:
        out, cache = args.out, args.cache
        chosen, best = selected_overrides(args.out / "tune")
        print(f"settings chosen on val: {best} {chosen}")
        args.set = chosen + args.set
        for seed in seeds:  # seed-major: a partial run still covers every (N, aug) cell
            for n in ns:
                for aug in augs:
                    name = f"n{n or 'all'}_aug{'on' if aug else 'off'}_s{seed}{tag}"
                    if args.summarize:
                        results += [r] if (r := cached(out / f"{name}.json")) else []
                        continue
                    results.append(run_arm(name, arm_config(args.data, n, aug, seed, args.set), out, cache, "test"))
        print(summarize(results, out, "CamVid test, 96x128"))
    print(f"wall time {time.monotonic() - start:.0f}s on {machine()['device']} ({machine()['cpu']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
