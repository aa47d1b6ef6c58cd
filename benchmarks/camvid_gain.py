"""Benchmark (the headline): does synthetic data help the segmenter on CamVid at 96x128? Two scenarios:
low-shot (N=50 labeled train images, subset seed 0; the generator sees only those 50 labels) and full (all 367).
Arms: real + classic aug (baseline); + copy-paste; + synthetic renders of the original label maps; + synthetic
renders of recomposed label maps aimed at the classes the baseline misses (1 - IoU on val). Synthetic arms come in
variants (amount x synthetic batch share; by default 4 synthetic images per real image x share 0.3 / 0.5, one
amount so that a scenario takes about 2-2.5 h on 2 CPU cores; `--amounts 1,2,4` widens the search); each is run on
seed 0 first and only the variant with the best validation mIoU runs the other seeds (`select_seeds`): test is
scored, never used to choose.

Per scenario, in order (every step cached; a killed run resumes where it stopped):
1. the baseline's seed-0 run (its model is the reference segmenter: recomposition targets from its val IoU, and the
   per-sample fidelity filter);
2. the generator: camvid_label2image's arm of the same generator and N (trained there or here, same run dir);
3. synthetic sets: every real map rendered K = max(amounts) / 0.8 times under its own condition, and K x N
   recomposed maps rendered once; each filtered to the best 80% by per-sample label fidelity;
4. the experiment (`synthlabel experiment`): 3 seeds, report under benchmarks/cache/camvid_gain/<scenario>/.

    python benchmarks/camvid_gain.py --quick             # low-shot, seed 0, short schedules (smoke run)
    python benchmarks/camvid_gain.py                     # full profile: both scenarios

Re-running the same command after everything finished only rebuilds the reports.

Small result JSONs are copied to benchmarks/results/camvid_gain/<scenario>/ so they can be committed.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from pathlib import Path

import yaml
from camvid_label2image import STEPS as GEN_STEPS
from camvid_label2image import generator_config, train_arm
from camvid_lowshot import DEFAULTS, SIZE, selected_overrides
from common import REPO, SHARED_CAMVID, machine

from synthlabel.checkpoint import atomic_write_text
from synthlabel.config import ExperimentConfig, build_config, to_dict
from synthlabel.downstream.workflow import fidelity_report, open_split, select_subset
from synthlabel.eval.gain import best_by_validation, class_deltas, delta_cell, paired_delta
from synthlabel.experiment import RunSpec, adopt_run, num_real_images, run_experiment, run_one
from synthlabel.runs import setup_logging
from synthlabel.synth.class_bank import ClassBank
from synthlabel.synth.filters import filter_samples
from synthlabel.synth.hardness import hard_map_counts
from synthlabel.synth.recompose import recompose
from synthlabel.synth.synthesize import label_sources_from_dataset, label_sources_from_recomposed, synthesize
from synthlabel.synth.targets import Targets
from synthlabel.synth.trust import TOLERANCE, write_trust_maps
from synthlabel.tables import markdown_table

SCENARIOS = {"lowshot": 50, "full": None}
RARE = ("Pole", "SignSymbol", "Fence", "Pedestrian", "Bicyclist")
AMOUNTS = (4.0,)  # synthetic images per real image (variants; one amount keeps a scenario near 2-2.5 h on 2 cores)
FRACTIONS = (0.3, 0.5)  # synthetic share of each batch (variants)
BOOST = 0.1  # extra pixel share given to the missed classes in recomposed maps
KEEP = 0.8  # the fidelity filter keeps this share of the renders
L2I_CACHE = REPO / "benchmarks" / "cache" / "camvid_label2image"


def base_config(data: Path, n: int | None, out: Path, seeds: list[int], extra: list[str]) -> dict:
    """Data/model/training of camvid_lowshot (its settings chosen on val), on subset seed 0 for every seed."""
    chosen, _ = selected_overrides(REPO / "benchmarks" / "results" / "camvid_lowshot" / "tune")
    seg = build_config(
        ExperimentConfig,
        {"data": {"path": str(data), "size": SIZE, "subset": {"n": n, "seed": 0}}, "arms": [{"name": "real_aug"}]},
        DEFAULTS + chosen + extra,
    )
    return {
        "out": str(out),
        "data": to_dict(seg.data),
        "model": to_dict(seg.model),
        "train": to_dict(seg.train),
        "seeds": seeds,
        "select_seeds": [seeds[0]],
        "rare": list(RARE),
        "arms": [{"name": "real_aug", "kind": "real_aug"}],
    }


LOWSHOT_CURVE_CACHE = REPO / "benchmarks" / "cache" / "camvid_lowshot" / "curve"


def reference(cfg: dict) -> tuple[Path, dict]:
    """The baseline's first-seed run: (model dir, its val per-class IoU). camvid_lowshot --curve's run of the same
    config (N, seed, steps), when this machine has it, is adopted instead of training the same model again."""
    exp_cfg = build_config(ExperimentConfig, cfg)
    arm = exp_cfg.arms[0]
    n = exp_cfg.data.subset.n
    curve_run = LOWSHOT_CURVE_CACHE / f"n{n or 'all'}_{exp_cfg.train.steps}st_s{cfg['seeds'][0]}"
    if curve_run.is_dir():
        adopt_run(exp_cfg, RunSpec(arm, 0.0, cfg["seeds"][0]), curve_run, num_real_images(exp_cfg))
    run_dir = Path(cfg["out"]) / "runs" / RunSpec(arm, 0.0, cfg["seeds"][0]).key
    record = run_one(exp_cfg, RunSpec(arm, 0.0, cfg["seeds"][0]), run_dir, num_real_images(exp_cfg))
    return run_dir / "model", record["val"]["per_class_iou"]


def generator(data: Path, name: str, n: int | None, steps: int, cache: Path) -> Path:
    """camvid_label2image's generator for (name, N, steps): the same config in the same run dir, so whichever
    benchmark gets there first trains it and the other one finds it finished (or resumes it)."""
    cfg = generator_config(data, name, n, steps, [])
    return Path(train_arm(cfg, cache / f"{name}_n{n or 'all'}_{steps}st")["model_dir"])


def synthetic_sets(
    cfg: dict, gen_dir: Path, seg_dir: Path, val_iou: dict, out: Path, amounts, kinds=("original", "recomposed")
) -> dict[str, Path]:
    """{kind: dir} for kinds among original, recomposed and hard (the original maps, as many renders in all but
    shared out by map hardness, `synth.hardness`): rendered, fidelity-scored, filtered (keep.txt), with trust maps
    of the kept renders (`synth.trust`, used only by the arms that ask for them)."""
    exp_cfg = build_config(ExperimentConfig, cfg)
    train = select_subset(open_split(exp_cfg.data, "train"), exp_cfg.data)
    k = math.ceil(max(amounts) / KEEP)  # renders per real map, so the filter leaves max(amounts) per real image
    sets = {}
    for kind in kinds:
        target = out / f"synth_{kind}"
        if not (target / "done").is_file():
            if kind == "original":
                synthesize(gen_dir, label_sources_from_dataset(train), target, ["own"], k, 0)
            elif kind == "hard":
                counts = hard_map_counts(train, val_iou, 1, k - 1)  # k x N renders in all, hard maps get more
                synthesize(gen_dir, label_sources_from_dataset(train), target, ["own"], counts, 0)
            else:
                synthesize(gen_dir, recomposed_maps(train, val_iou, k, out), target, ["own"], 1, 0)
            (target / "done").touch()
        if not (target / "keep.txt").is_file():
            val = open_split(exp_cfg.data, "val")
            report = fidelity_report(seg_dir, target, val, out=target / "fidelity.json")
            filter_samples(target, report["per_sample"], keep_fraction=KEEP)
        val = open_split(exp_cfg.data, "val")  # real images the reference segmenter did not train on
        write_trust_maps(target, [seg_dir], TOLERANCE, keep=target / "keep.txt", reference=val)  # no-op once written
        kept = len((target / "keep.txt").read_text().split())
        if kept < max(amounts) * len(train):  # a cached set rendered for smaller --amounts would cap them silently
            raise SystemExit(
                f"{target} keeps {kept} renders, fewer than {max(amounts):g} x {len(train)} real images: "
                "delete it to render it again for these --amounts"
            )
        sets[kind] = target
    return sets


def recomposed_maps(train, val_iou: dict, k: int, out: Path):
    bank_dir = out / "bank"
    if not (bank_dir / "bank.json").is_file():
        ClassBank.from_dataset(train).save(bank_dir)
    targets = Targets.from_iou(val_iou, train.out_spec, BOOST)
    maps = [train.read_label(i) for i in range(len(train))]
    made = recompose(maps, ClassBank.load(bank_dir), targets, rng_seed=0, n_out=k * len(maps))
    return label_sources_from_recomposed(made, train)


def arms(sets: dict[str, Path], amounts, fractions) -> list[dict]:
    out = [{"name": "real_aug", "kind": "real_aug"}, {"name": "copy_paste", "kind": "copy_paste"}]
    for kind, path in sets.items():
        source = {"path": str(path), "name": f"synth_{kind}", "keep": str(path / "keep.txt"), "trust": False}
        for f in fractions:
            mix = {"mode": "mixed", "fraction": f}
            out.append({"name": f"synth_{kind}_f{round(100 * f)}", "group": f"synth_{kind}", "kind": "synthetic",
                        "sources": [source], "mix": mix, "amounts": list(amounts)})  # fmt: skip
    return out


# The ablation (issue 12): each lever on top of plain renders of the original maps, mixed 1:1 (FreeMask's ratio).
# name: (synthetic set, source options, mix options, segmenter overrides, the arm with this lever off)
LEVERS = {  # in the order they run
    "synthetic": ("original", {"trust": False}, {}, [], "real_aug"),
    "trust": ("original", {"trust": True}, {}, [], "synthetic"),
    "trust_hard": ("hard", {"trust": True}, {}, [], "trust"),
    "trust_paste": ("original", {"trust": True}, {},
                    ["train.copy_paste.enabled=true", "train.copy_paste.onto=synthetic"], "trust"),
    "trust_sepbn": ("original", {"trust": True}, {"separate_bn": True}, [], "trust"),
    "trust_weight": ("original", {"trust": True}, {"synthetic_weight": 0.5}, [], "trust"),
    "trust_pretrain": ("original", {"trust": True}, {"mode": "pretrain", "pretrain": 0.3}, [], "trust"),
    # the best seed-0 arm at a quarter of each batch instead of half: at a fixed budget the 1:1 share halves the real
    # samples (38,400 -> 19,200), and the val curve still gains about 1 point per doubling of them at N=50
    "trust_paste_low": ("original", {"trust": True}, {"fraction": 0.25},
                        ["train.copy_paste.enabled=true", "train.copy_paste.onto=synthetic"], "trust_paste"),
}  # fmt: skip
ABLATION_FRACTION, ABLATION_AMOUNT = 0.5, 4.0
CURVE = REPO / "benchmarks" / "results" / "camvid_lowshot" / "curve" / "chosen.json"


def chosen_steps(key: str) -> int:
    """The fair budget for N (key n50 / nall) from camvid_lowshot --curve (the baseline's val learning curve)."""
    if not CURVE.is_file():
        raise SystemExit(f"{CURVE} missing: run `python benchmarks/camvid_lowshot.py --curve` first (or --seg-steps)")
    return int(json.loads(CURVE.read_text())["steps"][key])


def lever_arms(sets: dict[str, Path], levers: list[str], copy_paste: bool = True) -> list[dict]:
    out = [{"name": "real_aug", "kind": "real_aug"}]
    for name in levers:
        kind, source, mix, overrides, _ = LEVERS[name]
        path = sets[kind]
        src = {"path": str(path), "name": f"synth_{kind}", "keep": str(path / "keep.txt"), **source}
        mixing = {"mode": "mixed", "fraction": ABLATION_FRACTION, **mix}
        out.append({"name": name, "kind": "synthetic", "sources": [src], "amounts": [ABLATION_AMOUNT],
                    "mix": mixing, "overrides": overrides})  # fmt: skip
    if copy_paste:  # last: the levers are what this table is for
        out.append({"name": "copy_paste", "kind": "copy_paste"})
    return out


def ablation(args) -> Path:
    """N=50, seeds 0 and 1 (seed-major), every lever on and off, scored on validation: the table that picks the
    recipe. Test is scored by the runner too but never read here."""
    start, out = time.monotonic(), args.cache / "ablation"
    steps = args.seg_steps or chosen_steps("n50")
    levers = args.levers.split(",") if args.levers else list(LEVERS)
    # copy_paste (real objects pasted, no renders) is the non-generative reference arm: always run, except under
    # --only where it runs only when named, so that two processes can share the arms without both training it
    copy_paste = not args.only or "copy_paste" in levers
    levers = [x for x in levers if x != "copy_paste"]
    unknown = sorted(set(levers) - set(LEVERS))
    if unknown:
        raise SystemExit(f"unknown levers {unknown}; known: {list(LEVERS)}")
    if not args.only:  # each lever's "off" arm too (--only: exactly the levers named, e.g. a second process)
        levers = list(dict.fromkeys([*levers, *(LEVERS[x][4] for x in levers if LEVERS[x][4] in LEVERS)]))
    results = args.out / "ablation"
    # seed-major: a partial run covers every lever; --summarize trains nothing
    for i in [] if args.summarize else range(1, len(args.seeds) + 1):
        cfg = base_config(args.data, 50, out / "experiment", args.seeds[:i], [f"train.steps={steps}"])
        cfg["select_seeds"] = None
        restore_runs(results, out / "experiment")
        seg_dir, val_iou = reference(cfg)
        gen_dir = generator(args.data, args.generator, 50, args.gen_steps or GEN_STEPS[args.generator],
                            args.generator_cache)  # fmt: skip
        kinds = tuple(sorted({LEVERS[x][0] for x in levers}))
        sets = synthetic_sets(cfg, gen_dir, seg_dir, val_iou, out, [ABLATION_AMOUNT], kinds)
        cfg["arms"] = lever_arms(sets, levers, copy_paste)
        run_experiment(build_config(ExperimentConfig, cfg))
        publish(out / "experiment", results, time.monotonic() - start, gen_dir)
    publish(out / "experiment", results, time.monotonic() - start, args.generator_cache)
    table = ablation_table(results / "runs", [x for x in LEVERS if (results / "runs" / x).is_dir()], steps)
    atomic_write_text(results / "ablation.md", table)
    print(table)
    return results / "ablation.md"


def finished_runs(runs: Path) -> list[dict]:
    """Every finished run's record under runs/<arm>/<cell>/result.json (published or cached)."""
    return [json.loads(p.read_text()) for p in sorted(runs.glob("*/*/result.json"))]


def ablation_table(runs: Path, levers: list[str], steps: int) -> str:
    """Val Δ mIoU and Δ rare IoU of every arm vs real_aug and vs the same arm with its lever off, paired by seed,
    from the finished runs (a partial profile gives a partial table)."""
    records = finished_runs(runs)
    by_arm: dict[str, dict[int, dict]] = {}
    for r in records:
        by_arm.setdefault(r["arm"], {})[r["seed"]] = r["val"]

    def rare(val: dict) -> float:
        ious = [val["per_class_iou"][c] for c in RARE if val["per_class_iou"].get(c) is not None]
        return sum(ious) / len(ious)

    def delta(a: str, b: str, f) -> str:
        seeds = sorted(set(by_arm.get(a, {})) & set(by_arm.get(b, {})))
        d = paired_delta([f(by_arm[a][s]) for s in seeds], [f(by_arm[b][s]) for s in seeds])
        return delta_cell(d) if d else "—"

    def miou(val: dict) -> float:
        return val["miou"]

    rows = []
    for arm in [a for a in ["copy_paste", *levers] if by_arm.get(a)]:  # arms with finished runs
        off = "real_aug" if arm == "copy_paste" else LEVERS[arm][4]
        vals = by_arm.get(arm, {})
        mean = sum(v["miou"] for v in vals.values()) / len(vals) if vals else None
        rows.append([arm, off, ",".join(map(str, sorted(vals))), "—" if mean is None else f"{100 * mean:.1f}",
                     delta(arm, "real_aug", miou), delta(arm, "real_aug", rare), delta(arm, off, miou),
                     delta(arm, off, rare)])  # fmt: skip
    base = by_arm.get("real_aug", {})
    head = (f"### Ablation on CamVid val, N=50, {steps} steps x batch 8 for every arm\n\nreal_aug val mIoU "
            f"{100 * sum(v['miou'] for v in base.values()) / max(len(base), 1):.1f} over seeds {sorted(base)}; "
            f"synthetic arms: {ABLATION_AMOUNT:g} renders per real image (kept by the fidelity filter), "
            f"{ABLATION_FRACTION:g} of each batch (trust_paste_low: 0.25).\n\n")  # fmt: skip
    headers = ["arm", "lever off", "seeds", "val mIoU %", "Δ mIoU vs real_aug", "Δ rare vs real_aug",
               "Δ mIoU vs lever off", "Δ rare vs lever off"]  # fmt: skip
    return head + markdown_table(headers, rows) + "\n"


def ablation_figures(records: list[dict]) -> dict:
    """{arm: {val_miou, delta_miou, delta_rare, seeds}} of the ablation (validation, points, paired by seed)."""
    by_arm: dict[str, dict[int, dict]] = {}
    for r in records:
        by_arm.setdefault(r["arm"], {})[r["seed"]] = r["val"]
    base = by_arm.get("real_aug", {})

    def rare(v):
        return sum(v["per_class_iou"][c] or 0 for c in RARE) / len(RARE)

    out = {}
    for arm, vals in by_arm.items():
        seeds = sorted(set(vals) & set(base))
        d = paired_delta([vals[s]["miou"] for s in seeds], [base[s]["miou"] for s in seeds])
        dr = paired_delta([rare(vals[s]) for s in seeds], [rare(base[s]) for s in seeds])
        out[arm] = {"val_miou": round(100 * sum(v["miou"] for v in vals.values()) / len(vals), 2),
                    "delta_miou": None if d is None else round(100 * d["mean"], 2),
                    "delta_rare": None if dr is None else round(100 * dr["mean"], 2), "seeds": seeds}  # fmt: skip
    return out


def restore_runs(results: Path, exp_dir: Path) -> None:
    """Put committed per-run results back into the run cache (a new machine has none); a run whose fingerprint no
    longer matches what it would train now is trained again, so this never reuses a stale result."""
    for path in (results / "runs").glob("*/*/result.json"):
        target = exp_dir / "runs" / path.parent.parent.name / path.parent.name / "result.json"
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)  # its "fingerprint" decides whether run_one reuses it


def scenario(args, name: str, n: int | None) -> Path:
    start = time.monotonic()
    out = args.cache / name
    extra = [f"train.steps={args.seg_steps}"] if args.seg_steps else []
    cfg = base_config(args.data, n, out / "experiment", args.seeds, extra)
    seg_dir, val_iou = reference(cfg)
    steps = args.gen_steps or (200 if args.quick else GEN_STEPS[args.generator])
    gen_dir = generator(args.data, args.generator, n, steps, args.generator_cache)
    sets = synthetic_sets(cfg, gen_dir, seg_dir, val_iou, out, args.amounts)
    cfg["arms"] = arms(sets, args.amounts, args.fractions)
    report = run_experiment(build_config(ExperimentConfig, cfg))
    publish(out / "experiment", args.out / name, time.monotonic() - start, gen_dir)
    return report


def publish(exp_dir: Path, results: Path, seconds: float, gen_dir: Path) -> None:
    """Copy the small outputs (per-run results, tables, report Markdown) where they can be committed."""
    results.mkdir(parents=True, exist_ok=True)
    for name in ("report.md", "summary.csv", "deltas.csv", "sweep.csv", "cross_domain.csv", "results.jsonl"):
        if (exp_dir / name).is_file():
            shutil.copyfile(exp_dir / name, results / name)
    info = {"seconds_this_invocation": round(seconds), "generator": str(gen_dir), "machine": machine()}
    (results / "run_info.json").write_text(json.dumps(info, indent=1))
    for path in (exp_dir / "runs").glob("*/*/result.json"):  # per-run results, so a new machine resumes from them
        target = results / "runs" / path.parent.parent.name / path.parent.name
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target / "result.json")


def scenario_figures(results_jsonl: Path) -> dict:
    """One scenario of headline.json: the baseline's test mIoU / rare IoU and, per arm (the variant picked on
    validation in each group), Δ mIoU and Δ rare IoU vs real_aug paired by seed, with standard errors (points)."""
    records = [json.loads(x) for x in results_jsonl.read_text().splitlines() if x.strip()]
    picked = best_by_validation(records)
    chosen = [r for r in records if (r["arm"], r["amount"]) == picked[r["group"]]]
    long = [{**r, "eval_set": "real_test", "metrics": r["eval"]["real_test"]} for r in chosen]
    deltas = class_deltas(long, "real_aug", list(RARE), eval_set="real_test")["arms"]
    base = [r for r in long if r["arm"] == "real_aug"]
    rare = [sum(r["metrics"]["per_class_iou"][c] or 0 for c in RARE) / len(RARE) for r in base]

    def pts(d, key):
        return None if d is None or d.get(key) is None else round(100 * d[key], 2)

    arms = {}
    for d in deltas.values():
        arms[d["arm"]] = {"delta_miou": pts(d["miou"], "mean"), "delta_miou_se": pts(d["miou"], "se"),
                          "delta_rare": pts(d["rare_mean"], "mean"), "delta_rare_se": pts(d["rare_mean"], "se"),
                          "seeds": d["seeds"], "amount": d["amount"]}  # fmt: skip
    return {
        "baseline_miou": round(100 * sum(r["metrics"]["miou"] for r in base) / len(base), 2),
        "baseline_rare": round(100 * sum(rare) / len(rare), 2),
        "baseline_seeds": sorted(r["seed"] for r in base),
        "arms": arms,
    }


def write_headline(
    args, steps: dict[str, int], date: str | None = None, command: str | None = None, note: str | None = None
) -> Path:
    """benchmarks/results/camvid_gain/headline.json from every finished scenario's per-run results, plus the
    ablation's finished runs (val, seed-paired) when there are any."""
    scenarios = {}
    for name in SCENARIOS:
        path = args.out / name / "results.jsonl"
        if path.is_file():
            scenarios[name] = scenario_figures(path)
    command = command or ("python benchmarks/camvid_gain.py " + " ".join(sys.argv[1:])).strip()
    head = {"date": date or time.strftime("%Y-%m-%d"), "machine": machine(), "command": command, "steps": steps,
            "scenarios": scenarios, **({"note": note} if note else {})}  # fmt: skip
    runs = args.out / "ablation" / "runs"
    if runs.is_dir():
        head["ablation_val"] = ablation_figures(finished_runs(runs))
    atomic_write_text(args.out / "headline.json", json.dumps(head, indent=1))
    return args.out / "headline.json"


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=SHARED_CAMVID)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "camvid_gain")
    p.add_argument("--cache", type=Path, default=REPO / "benchmarks" / "cache" / "camvid_gain")
    p.add_argument("--scenarios", default="lowshot,full")
    p.add_argument("--generator", default="spade", choices=sorted(GEN_STEPS))
    p.add_argument("--gen-steps", type=int, help="generator steps (default: camvid_label2image's)")
    p.add_argument("--seg-steps", type=int, help="segmenter steps (default: camvid_lowshot's)")
    p.add_argument("--generator-cache", type=Path, default=L2I_CACHE, help="where generators are trained/found")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--amounts", default=",".join(map(str, AMOUNTS)), help="synthetic images per real image (variants)")
    p.add_argument("--fractions", default=",".join(map(str, FRACTIONS)), help="synthetic batch shares (variants)")
    p.add_argument("--quick", action="store_true", help="low-shot, seed 0, 200-step schedules (smoke run)")
    p.add_argument("--ablation", action="store_true", help="N=50, seeds 0,1: every lever on and off, on val")
    p.add_argument(
        "--levers", help=f"ablation levers (default: all of {','.join(LEVERS)}; copy_paste names the reference arm)"
    )
    p.add_argument("--only", action="store_true", help="ablation: only the levers named, not their 'off' arms")
    p.add_argument("--summarize", action="store_true", help="ablation: publish finished runs and the table only")
    p.add_argument("--headline-only", action="store_true", help="rebuild headline.json from committed results")
    args = p.parse_args(argv)
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.amounts = [float(a) for a in args.amounts.split(",")]
    args.fractions = [float(f) for f in args.fractions.split(",")]
    if args.ablation and args.seeds == [0, 1, 2]:
        args.seeds = [0, 1]
    if args.quick:
        args.scenarios, args.seeds, args.seg_steps = "lowshot", [0], args.seg_steps or 200
        args.cache, args.out = args.cache / "quick", args.out / "quick"
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_logging()
    start = time.monotonic()
    if args.headline_only:  # the scenarios as last measured (see run_info.json / docs/benchmarks.md)
        info = json.loads((args.out / "headline_source.json").read_text())
        print(write_headline(args, info["steps"], info["date"], info["command"], info.get("note")))
        return 0
    if args.ablation:
        ablation(args)
        print(f"wall time {time.monotonic() - start:.0f}s on {machine()['device']} ({machine()['cpu']})")
        return 0
    steps = {}
    for name in args.scenarios.split(","):
        report = scenario(args, name, SCENARIOS[name])
        steps[name] = build_config(
            ExperimentConfig, yaml.safe_load((report.parent / "config.yaml").read_text())
        ).train.steps
        print(f"{name}: report {report}")
        print((report.parent / "report.md").read_text().split("\n## ")[1])
    print(f"headline: {write_headline(args, steps)}")
    print(f"wall time {time.monotonic() - start:.0f}s on {machine()['device']} ({machine()['cpu']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
