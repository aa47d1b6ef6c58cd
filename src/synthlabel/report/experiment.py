"""The gain report of an experiment: one self-contained HTML page (tables, amount curve, per-class delta bars,
frequency vs IoU before/after, sample grids with mask overlays, the resolved config) plus Markdown and CSV."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import yaml
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from synthlabel.checkpoint import atomic_write_text
from synthlabel.config import ExperimentConfig, to_dict
from synthlabel.data.copy_paste import below_median
from synthlabel.data.datasets import open_dataset
from synthlabel.eval import gain
from synthlabel.eval.verdict import verdict
from synthlabel.report import plots
from synthlabel.report.html import HtmlPage
from synthlabel.tables import MISSING, fmt_mean_std, markdown_table

GRID_IMAGES = 8


def flatten(records: Sequence[Mapping]) -> list[dict]:
    """One record per (run, eval set), in the form `eval.gain` reads: {..., "eval_set", "metrics"}."""
    return [{**r, "eval_set": name, "metrics": m} for r in records for name, m in r["eval"].items()]


def rare_classes(cfg: ExperimentConfig, names: list[str], freq: np.ndarray) -> list[str]:
    """cfg.rare, or the classes below the median pixel share of the training labels."""
    return list(cfg.rare) if cfg.rare is not None else [names[c] for c in below_median(freq)]


def headline(records: Sequence[Mapping], baseline: str, rare: list[str], select_seeds=None) -> list[list[str]]:
    """Per group, the (arm, amount) picked on validation, its test mIoU / rare IoU and deltas vs the baseline."""
    real = [r for r in flatten(records) if r["eval_set"] == "real_test"]
    picked = gain.best_by_validation(list(records), select_seeds)
    base_group = next(r["group"] for r in records if r["arm"] == baseline)
    chosen = [r for r in real if (r["arm"], r["amount"]) == picked[r["group"]]]
    summary = {(s["arm"], s["amount"]): s for s in gain.arm_summary(chosen, rare)}
    deltas = gain.class_deltas(chosen, baseline, rare)["arms"] if len(summary) > 1 else {}
    by_arm = {(d["arm"], d["amount"]): d for d in deltas.values()}
    rows = []
    for group, (arm, amount) in picked.items():
        s, d = summary[(arm, amount)], by_arm.get((arm, amount))
        rows.append(
            [group + (" (baseline)" if group == base_group else ""), arm, f"{amount:g}", s["n"],
             fmt_mean_std(s["miou_mean"], s["miou_std"]), fmt_mean_std(s["rare_mean"], s["rare_std"]),
             gain.delta_cell(d and d["miou"]), gain.delta_cell(d and d["rare_mean"])]
        )  # fmt: skip
    return rows


HEADLINE = ["group", "arm (picked on val)", "synthetic ×", "seeds", "test mIoU %", "rare IoU %", "Δ mIoU", "Δ rare"]


def frequency_vs_iou(names: list[str], freq: np.ndarray, before: Mapping, after: Mapping, labels: tuple[str, str]):
    """Scatter of train pixel share (log) vs test IoU for two arms, an arrow per class from before to after."""
    fig = Figure(figsize=(7, 4.5), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name, f in zip(names, freq, strict=True):
        b, a = (before.get(name) or {}).get("mean"), (after.get(name) or {}).get("mean")
        if f <= 0 or b is None:
            continue
        ax.scatter([f], [100 * b], color="tab:gray", s=18)
        if a is not None:
            ax.annotate("", xy=(f, 100 * a), xytext=(f, 100 * b), arrowprops={"arrowstyle": "->", "color": "tab:red"})
            ax.scatter([f], [100 * a], color="tab:red", s=18)
        ax.annotate(name, (f, 100 * (a if a is not None else b)), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set(xlabel="pixel share in the real training labels", ylabel="test IoU (%)")
    ax.set_title(f"frequency vs IoU: {labels[0]} (gray) → {labels[1]} (red)")
    return fig


def source_grid(source_path: str, split: str, layout: str, size) -> bytes | None:
    """PNG grid of the first images of a synthetic source with their masks overlaid (None if unreadable)."""
    try:
        ds = open_dataset(source_path, split, layout)
        n = min(GRID_IMAGES, len(ds))
        data = ds.subset(list(range(n))).load(size, desc="grid")
    except Exception:  # a report must not fail on one unreadable sample set; the grid is left out
        return None
    palette = [list(c.color) for c in ds.spec.classes]
    return plots.sample_grid(data.images, data.labels, palette, nrow=4, alpha=0.35)


def per_condition_markdown(real: Sequence[Mapping]) -> str:
    """Test mIoU per condition (day, dusk, ...) of every (arm, amount), mean ± std over seeds; "" when the test
    images hold one condition only."""
    cells: dict[tuple[str, float], dict[str, list[float]]] = {}
    for r in real:
        for c, m in (r["metrics"].get("per_condition") or {}).items():
            cells.setdefault((r["arm"], r["amount"]), {}).setdefault(c, []).append(m["miou"])
    if not cells:
        return ""
    names = sorted({c for v in cells.values() for c in v})
    rows = []
    for (arm, amount), by in cells.items():
        values = [gain.stats(by.get(c, [])) for c in names]
        rows.append(
            [arm, f"{amount:g}", *[MISSING if v is None else fmt_mean_std(v["mean"], v["std"]) for v in values]]
        )
    return markdown_table(["arm", "synthetic ×", *names], rows) + "\n"


def budget_line(records: Sequence[Mapping]) -> str:
    """Each arm's training budget and how many real samples it saw (the fair-budget protocol, docs/experiments.md)."""
    per_arm: dict[str, set] = {}
    for r in records:
        e = r.get("exposure")
        if e:
            per_arm.setdefault(r["arm"], set()).add((e["steps"], e["batch_size"], round(e["real_samples"])))
    if not per_arm:
        return ""
    budgets = {(st, b) for cells in per_arm.values() for st, b, _ in cells}
    same = len(budgets) == 1
    head = (
        f"Every arm trained {next(iter(budgets))[0]} steps at batch {next(iter(budgets))[1]}"
        if same
        else ("Arms trained different budgets (not a fair comparison)")
    )
    seen = ", ".join(f"{a} {'/'.join(str(x) for x in sorted({c[2] for c in cells}))}" for a, cells in per_arm.items())
    return f"{head}; real samples seen: {seen}."


def write_report(
    cfg: ExperimentConfig, records: Sequence[Mapping], out: str | Path, names: list[str], freq: np.ndarray
) -> Path:
    """Write report.html, report.md and CSVs into `out`; returns report.html. names, freq: the classes and their
    pixel shares in the real training labels (for the rare classes and the frequency-vs-IoU figure)."""
    out = Path(out)
    baseline = cfg.baseline or cfg.arms[0].name
    rare = rare_classes(cfg, names, freq)
    long = flatten(records)
    real = [r for r in long if r["eval_set"] == "real_test"]
    summary = gain.arm_summary(real, rare)
    deltas = gain.class_deltas(real, baseline, rare) if len(summary) > 1 else None
    synthetic = [a.name for a in cfg.arms if a.kind == "synthetic"]
    sweeps = {a: gain.amount_sweep(real, a, baseline_arm=baseline) for a in synthetic}
    cross = gain.cross_domain_table(long)
    head = headline(records, baseline, rare, cfg.select_seeds)
    gain.write_summary_csv(summary, out / "summary.csv")
    gain.write_cross_domain_csv(cross, out / "cross_domain.csv")
    if deltas:
        gain.write_deltas_csv(deltas, out / "deltas.csv")
    if sweeps:
        gain.write_sweep_csv(sweeps, out / "sweep.csv")
    sections = [
        ("Headline (picked on validation, scored on test)", markdown_table(HEADLINE, head) + "\n"),
        ("All arms (test, mean ± std over seeds)", gain.summary_markdown(summary, per_class=True)),
        ("Per-class IoU change vs the baseline", gain.deltas_markdown(deltas) if deltas else "one arm only\n"),
        ("Amount sweep", gain.sweep_markdown(sweeps) if sweeps else "no synthetic arm\n"),
        ("Cross-domain (train set × eval set)", gain.cross_domain_markdown(cross)),
    ]
    conditions = per_condition_markdown(real)
    if conditions:
        sections.insert(3, ("Per condition (test mIoU, mean ± std over seeds)", conditions))
    opening = verdict(records, baseline, rare, cfg.select_seeds)
    sections.insert(0, ("Verdict", f"{opening}\n\n{budget_line(records)}\n"))
    md = f"# Experiment {out}\n\nbaseline: {baseline}; rare classes: {', '.join(rare) or MISSING}\n\n"
    md += "\n".join(f"## {title}\n\n{body}" for title, body in sections)
    atomic_write_text(out / "report.md", md)
    page = _html(cfg, out, sections, summary, deltas, sweeps, rare, names, freq, baseline)
    return page.write(out / "report.html")


def _html(cfg, out, sections, summary, deltas, sweeps, rare, names, freq, baseline) -> HtmlPage:
    page = HtmlPage(f"synthlabel experiment: {out.name}")
    page.paragraph(
        f"Baseline: {baseline}. Rare classes: {', '.join(rare) or MISSING}. Settings are picked on the validation "
        "split; the test split is only scored. * = delta beyond 2 standard errors over seeds."
    )
    for title, body in sections:
        page.heading(title, 2)
        _markdown_table_to_page(page, body)
    if sweeps:
        page.figure(plots.amount_curve(sweeps), caption="test mIoU vs synthetic images per real image (± std)")
    if deltas:
        page.figure(plots.delta_bars(deltas, rare=rare), caption="per-class IoU delta vs baseline (± std over seeds)")
        best = max(summary, key=lambda s: s["miou_mean"] or -1)
        base = next(s for s in summary if s["arm"] == baseline)
        fig = frequency_vs_iou(names, freq, base["per_class"], best["per_class"], (baseline, best["arm"]))
        page.figure(fig, caption="class frequency vs IoU, baseline and the best arm on test")
    page.heading("Synthetic samples (mask overlay)", 2)
    for arm in cfg.arms:
        for s in arm.sources:
            grid = source_grid(s.path, s.split, s.layout, cfg.data.size)
            if grid is not None:
                page.image(grid, caption=f"{arm.name}: {s.path}")
    page.heading("Files", 2)
    for name in ("report.md", "summary.csv", "deltas.csv", "sweep.csv", "cross_domain.csv", "results.jsonl"):
        if (out / name).is_file():
            page.link(name, name)
    page.heading("Resolved config", 2)
    page.code(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    return page


def _markdown_table_to_page(page: HtmlPage, body: str) -> None:
    """Markdown tables from `eval.gain` as HTML tables (the same text, so the two reports always agree)."""
    lines = [ln for ln in body.splitlines() if ln.startswith("|")]
    if len(lines) < 2:
        page.paragraph(body.strip())
        return
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
    page.table(cells[0], cells[2:])
    rest = [ln for ln in body.splitlines() if ln and not ln.startswith("|")]
    if rest:
        page.paragraph(" ".join(rest).replace("\\*", "*"))
