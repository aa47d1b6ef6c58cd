"""The whole chain for one experiment, as stages that skip themselves when their outputs exist:
data (demo) -> analyze -> train segmenter -> evaluate -> analyze with IoU -> summary."""

from __future__ import annotations

import json
import time
from pathlib import Path

from synthlabel.analyze import analyze
from synthlabel.checkpoint import atomic_write_text
from synthlabel.config import PipelineConfig, to_dict
from synthlabel.downstream.workflow import evaluate_segmenter, train_segmenter
from synthlabel.eval.segmentation import metrics_markdown
from synthlabel.runs import log, setup_logging


def _stage(name: str, done: Path) -> bool:
    if done.exists():
        log.info("[skip] %s: %s exists", name, done)
        return False
    log.info("[run] %s", name)
    return True


def run_pipeline(cfg: PipelineConfig) -> Path:
    """Run every stage into cfg.out; returns the path of the summary (summary.md)."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    setup_logging(out / "log.txt")
    atomic_write_text(out / "config.yaml", __import__("yaml").safe_dump(to_dict(cfg), sort_keys=False))
    start = time.monotonic()
    if cfg.demo is not None:
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"path": str(out / "data")})})
        if _stage("demo data", out / "data"):
            from synthlabel.data.toy import make_demo_dataset

            d = cfg.demo
            make_demo_dataset(out / "data", d.n_train, d.n_val, d.n_test, d.size, d.seed, paired=d.paired)
    data = cfg.data
    if _stage("analyze (label distribution)", out / "analysis_before" / "analysis.json"):
        analyze(data.path, out / "analysis_before", data.layout, data.class_map)
    seg_dir = out / "segmenter"
    if _stage("train segmenter", seg_dir / "val_metrics.json" if data.val_split else seg_dir / "done"):
        train_segmenter(cfg.seg_config(), seg_dir, resume=(seg_dir / "config.yaml").exists())
        (seg_dir / "done").touch()
    eval_json = out / f"eval_{cfg.eval_split}.json"
    if _stage(f"evaluate on {cfg.eval_split}", eval_json):
        evaluate_segmenter(
            seg_dir / "model", data.path, cfg.eval_split, data.layout, class_map=data.class_map, out=eval_json
        )
    if _stage("analyze (frequency vs IoU)", out / "analysis" / "analysis.json"):
        analyze(data.path, out / "analysis", data.layout, data.class_map, metrics_json=eval_json)
    return write_summary(out, json.loads(eval_json.read_text()), time.monotonic() - start)


def write_summary(out: Path, metrics: dict, seconds: float) -> Path:
    analysis = (out / "analysis" / "analysis.md").read_text()
    text = "\n\n".join(
        [
            f"# synthlabel run: {out}",
            metrics_markdown(metrics, title=f"Segmenter on {metrics['split']}"),
            "## Label distribution vs IoU\n\n" + analysis + "\n\n![frequency vs IoU](analysis/frequency_vs_iou.png)",
            f"Outputs: `{out}/segmenter/model` (model), `{out}/eval_{metrics['split']}.json` (metrics), "
            f"`{out}/analysis/` (analysis). This invocation took {seconds:.0f} s.",
        ]
    )
    atomic_write_text(out / "summary.md", text + "\n")
    return out / "summary.md"
