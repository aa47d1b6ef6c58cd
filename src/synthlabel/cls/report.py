"""The study's report: accuracy over training per arm (mean and std band over runs: the published figure), mean
and std during and at the end of training with paired gains over the baseline (the published table), sample grids
per class; written as summary.json, report.md, curves.png and one self-contained report.html."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import yaml
from matplotlib.figure import Figure
from PIL import Image

from synthlabel.checkpoint import atomic_file, atomic_write_text
from synthlabel.cls.config import ClsExperimentConfig
from synthlabel.cls.data import ClassSet
from synthlabel.config import to_dict
from synthlabel.eval import gain
from synthlabel.eval.verdict import certainty
from synthlabel.report.html import HtmlPage
from synthlabel.tables import fmt_mean_std, markdown_table


def mean_std(values: list[float]) -> dict:
    """{"mean", "std" (sample std)}: std None for fewer than 2 values, both None for none."""
    s = gain.stats(values)
    return {"mean": None, "std": None} if s is None else {"mean": s["mean"], "std": s["std"]}


def arm_stats(records: Mapping[int, dict]) -> dict:
    """Over runs: final accuracy, accuracy during training (each run's mean over its evaluation points) and the
    curve per evaluation epoch, each as mean and std."""
    finals = [r["final_accuracy"] for r in records.values()]
    during = [statistics.fmean(p["accuracy"] for p in r["curve"]) for r in records.values()]
    by_epoch: dict[float, list[float]] = {}
    for r in records.values():
        for p in r["curve"]:
            by_epoch.setdefault(p["epoch"], []).append(p["accuracy"])
    curve = [{"epoch": e, **mean_std(v), "n": len(v)} for e, v in sorted(by_epoch.items())]
    return {"runs": sorted(records), "final": mean_std(finals), "during": mean_std(during), "curve": curve}


def baseline_for(cfg: ClsExperimentConfig, name: str) -> str | None:
    """The arm an arm is compared with: the first real-images-only arm with the same classic augmentation."""
    arm = cfg.arms[name]
    for other, a in cfg.arms.items():
        if a.source == "real" and a.augment == arm.augment and other != name:
            return other
    return None


def paired_gain(records: Mapping[int, dict], base: Mapping[int, dict]) -> dict | None:
    """Final accuracy minus the baseline's, paired by run over the runs both have: mean, std, runs better, runs."""
    common = sorted(set(records) & set(base))
    diffs = [records[r]["final_accuracy"] - base[r]["final_accuracy"] for r in common]
    d = gain.paired_delta(diffs, [0.0] * len(diffs))
    return (
        None if d is None else {"mean": d["mean"], "std": d["std"], "better": sum(x > 0 for x in diffs), "runs": d["n"]}
    )


def summarize(cfg: ClsExperimentConfig, by_arm: Mapping[str, Mapping[int, dict]]) -> dict:
    """{"arms": {name: {config, baseline, stats..., gain}}, "runs": cfg.runs}; arms without results are left out."""
    arms = {}
    for name, records in by_arm.items():
        if not records:
            continue
        base = baseline_for(cfg, name)
        gain = paired_gain(records, by_arm.get(base, {})) if base else None
        dropped = [len(r["synthetic"].get("dropped", [])) for r in records.values()]
        arms[name] = {"config": to_dict(cfg.arms[name]), "baseline": base, **arm_stats(records), "gain": gain,
                      "mean_classes_dropped": statistics.fmean(dropped) if dropped else 0.0}  # fmt: skip
    return {"runs": cfg.runs, "n_per_class": cfg.data.n_per_class, "arms": arms}


def _is_gan(config: Mapping) -> bool:
    return config["source"] not in ("real", "noise")


def _arm_label(config: Mapping) -> list[str]:
    source = config["source"]
    batches = "—" if source == "real" else config["mode"]
    select = ("yes" if config["select"] else "no") if _is_gan(config) else "—"
    return [source, batches, "on" if config["augment"] else "off", select]


def summary_rows(summary: Mapping) -> tuple[list[str], list[list[str]]]:
    headers = ["arm", "images added", "batches", "classic aug", "selection", "classes dropped", "runs",
               "during training %", "final %", "Δ final vs baseline", "runs better"]  # fmt: skip
    rows = []
    for name, a in summary["arms"].items():
        dropped = f"{a['mean_classes_dropped']:.1f}" if a["config"]["select"] and _is_gan(a["config"]) else "—"
        during = fmt_mean_std(a["during"]["mean"], a["during"]["std"])
        final = fmt_mean_std(a["final"]["mean"], a["final"]["std"])
        cells = [*_arm_label(a["config"]), dropped, str(len(a["runs"])), during, final, *_gain_cells(a["gain"])]
        rows.append([name, *cells])
    return headers, rows


def _gain_cells(gain: Mapping | None) -> list[str]:
    """["+3.1 ± 2.0", "17/20"] for a paired gain in accuracy points; dashes without one."""
    if gain is None:
        return ["—", "—"]
    spread = f" ± {100 * gain['std']:.1f}" if gain["std"] is not None else ""
    return [f"{100 * gain['mean']:+.1f}{spread}", f"{gain['better']}/{gain['runs']}"]


def summary_markdown(summary: Mapping) -> str:
    """The verdict, then the published table: accuracy % (mean ± std over runs) during and at the end of training,
    per arm, with the mean number of classes whose generator selection dropped and the paired gain over the
    baseline."""
    return f"## Verdict\n\n{cls_verdict(summary)}\n\n" + markdown_table(*summary_rows(summary))


def cls_verdict(summary: Mapping) -> str:
    """Which arm to use (or to train without generated images) by the paired gain in final accuracy over each arm's
    real-images baseline, with how sure that is over the runs."""
    gains = [(a["gain"]["mean"], name, a) for name, a in summary["arms"].items() if a["config"]["source"] != "real"
             and a.get("gain")]  # fmt: skip
    if not gains:
        return "No arm with generated or noise images has a paired baseline yet: no verdict."
    best, name, arm = max(gains, key=lambda g: g[0])
    g = arm["gain"]
    se = None if g["std"] is None else g["std"] / math.sqrt(g["runs"])
    sure = certainty(
        {"se": se, "n": g["runs"], "beyond_spread": None if se is None else abs(g["mean"]) > 2 * se}, "runs"
    )
    caveat = (
        " The arm is picked on the evaluation images its gain is measured on (the study has no separate validation "
        "split): confirm a small gain on held-out data."
    )
    if best <= 0:
        return (
            f"**Train without generated images.** No arm beat its real-images baseline; the best, {name}, changed "
            f"final accuracy by {100 * best:+.1f} points ({g['better']}/{g['runs']} runs better; {sure})."
        )
    return (
        f"**Use {name}.** Final accuracy {100 * best:+.1f} points over {arm['baseline']} ({g['better']}/{g['runs']} "
        f"runs better; {sure}).{caveat}"
    )


def curves_figure(summary: Mapping) -> Figure:
    """Accuracy over training per arm, mean with a ±1 std band; one panel per classic-augmentation setting."""
    arms = summary["arms"]
    panels = sorted({a["config"]["augment"] for a in arms.values()})
    fig = Figure(figsize=(6.5 * len(panels), 4.8), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, aug in zip(axes, panels, strict=True):
        for name, a in arms.items():
            if a["config"]["augment"] != aug:
                continue
            xs = np.array([p["epoch"] for p in a["curve"]])
            mean = np.array([100 * p["mean"] for p in a["curve"]])
            std = np.array([100 * (p["std"] or 0.0) for p in a["curve"]])
            style = "--" if _is_gan(a["config"]) and not a["config"]["select"] else "-"
            (line,) = ax.plot(xs, mean, style, label=name, linewidth=1.5)
            ax.fill_between(xs, mean - std, mean + std, color=line.get_color(), alpha=0.12, linewidth=0)
        ax.set_title(f"classic augmentation {'on' if aug else 'off'}")
        ax.set_xlabel("epoch")
        ax.set_ylabel("evaluation accuracy % (mean ± std over runs)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    return fig


def class_grid(real: ClassSet, generated: ClassSet | None, per_class: int, real_per_class: int = 5) -> np.ndarray:
    """[rows, cols, 3] uint8: a row per class, up to `real_per_class` real images, a gap, `per_class` generated."""
    h, w = real.image_size
    gap, cols = 2, real_per_class + 1 + per_class
    grid = np.full((real.num_classes * (h + gap) - gap, cols * (w + gap) - gap, 3), 255, np.uint8)
    for k in range(real.num_classes):
        tiles = [(c, img) for c, img in enumerate(real.images[real.labels == k][:real_per_class])]
        if generated is not None:
            gen = generated.images[generated.labels == k][:per_class]
            tiles += [(real_per_class + 1 + c, img) for c, img in enumerate(gen)]
        for c, img in tiles:
            tile = img.permute(1, 2, 0).numpy()
            grid[k * (h + gap) : k * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = tile  # broadcasts C=1
    return grid


def save_class_grid(path: str | Path, real: ClassSet, generated: ClassSet | None, per_class: int) -> Path:
    path = Path(path)
    grid = class_grid(real, generated, per_class)
    scale = max(1, 64 // real.image_size[0])  # tiny images (8x8 digits) are enlarged to stay visible
    img = Image.fromarray(grid).resize((grid.shape[1] * scale, grid.shape[0] * scale), Image.NEAREST)
    with atomic_file(path) as tmp:
        img.save(tmp, format="PNG")
    return path


def write_report(directory: str | Path, cfg: ClsExperimentConfig, summary: Mapping) -> dict[str, Path]:
    """summary.json, report.md, curves.png and report.html (self-contained) in `directory`."""
    directory = Path(directory)
    paths = {"summary": directory / "summary.json", "markdown": directory / "report.md"}
    atomic_write_text(paths["summary"], json.dumps(summary, indent=1))
    atomic_write_text(paths["markdown"], summary_markdown(summary) + "\n")
    if not summary["arms"]:
        return paths
    fig = curves_figure(summary)
    paths["curves"] = directory / "curves.png"
    with atomic_file(paths["curves"]) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    paths["html"] = _html(directory, cfg, summary, fig)
    return paths


def _html(directory: Path, cfg: ClsExperimentConfig, summary: Mapping, fig: Figure) -> Path:
    page = HtmlPage("Classifier augmentation with generated images")
    page.paragraph(
        f"{cfg.data.n_per_class} labeled images per class ({cfg.data.source}), {summary['runs']} runs per arm, each "
        "run with its own random training subset; generators are trained on that run's subset only. Accuracy % is "
        "mean ± std over runs; the gain is paired (same run, same classifier seed) against the baseline arm with "
        "the same classic augmentation."
    )
    page.heading("Accuracy during and at the end of training")
    page.table(*summary_rows(summary))
    page.figure(fig, caption="Evaluation accuracy over training, mean ± 1 std over runs (dashed: no selection).")
    page.heading("Samples per class (run 0)")
    for family in cfg.families():
        grid = directory / f"samples_{family}.png"
        if grid.is_file():
            page.image(grid, caption=f"{family}: real training images (left), final-snapshot samples (right)")
    page.heading("Configuration")
    page.code(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    return page.write(directory / "report.html")
