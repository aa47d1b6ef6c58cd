"""`synthlabel mine`: the frames of a recorded drive the user's segmenter most likely gets wrong, in the windows
before intervention events (or over the whole drive), ranked by a score, without near-duplicates and spread over
different scenes, written as a labeling queue: the frames, a Label Studio project (labeling config + tasks with the
model's prediction as pre-annotation), every frame's scores, and a self-contained review page.
`import_labels` brings a Label Studio export back as a labeled dataset in the segmenter's class spec."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from synthlabel.checkpoint import atomic_write_text
from synthlabel.config import MineConfig
from synthlabel.data.classes import ClassSpec
from synthlabel.device import resolve_precision
from synthlabel.downstream.segmenter import load_segmenter
from synthlabel.errors import ConfigError, DataError
from synthlabel.mining import labelstudio as ls
from synthlabel.mining.frames import Drive, read_drive, read_events
from synthlabel.mining.scores import CLASS_SCORES, SCORES, score_frames
from synthlabel.mining.select import event_windows, rank_frames
from synthlabel.report.html import HtmlPage
from synthlabel.report.plots import sample_grid
from synthlabel.runs import log


def load_segmenters(dirs) -> tuple[list[torch.nn.Module], ClassSpec, tuple[int, int] | None]:
    """The models, the class spec of the first and its working size; every model must predict the same classes."""
    models, spec, size = [], None, None
    for d in dirs:
        model, meta = load_segmenter(d)
        this = ClassSpec.from_json(meta["class_spec"]) if meta.get("class_spec") else None
        if spec is None:
            spec, size = this, tuple(meta["size"]) if meta.get("size") else None
        elif this is not None and this.names != spec.names:
            raise DataError(
                f"{d}: predicts {this.names}, the first segmenter {spec.names}; give models of one label set"
            )
        models.append(model)
    if spec is None:
        raise DataError(f"{dirs[0]}: the segmenter has no class spec; train it with synthlabel train-seg")
    return models, spec, size


def candidates(cfg: MineConfig, drive: Drive) -> tuple[list[int], list[dict]]:
    """(frame indices the queue may take, the events with their window's frames)."""
    if not cfg.events:
        return list(range(len(drive.names))), []
    events = read_events(cfg.events, drive)
    windows = event_windows(drive.times, [e.time for e in events], cfg.before, cfg.after)
    info = [{"time": e.time, "kind": e.kind, "frames": w} for e, w in zip(events, windows, strict=True)]
    pool = sorted({i for w in windows for i in w})
    if cfg.whole_drive:
        pool = list(range(len(drive.names)))
    if not pool:
        raise DataError(
            f"{cfg.events}: no frame lies in the {cfg.before} {drive.unit} before any event; widen --before"
        )
    return pool, info


def mine(cfg: MineConfig, out: str | Path) -> Path:
    """Score the drive's frames, choose the queue and write it into `out`; returns `out`."""
    out = Path(out)
    models, spec, size = load_segmenters(cfg.segmenters)
    if cfg.score == "ensemble" and len(models) < 2:
        raise ConfigError("score 'ensemble' needs two or more --segmenter models")
    if cfg.score in CLASS_SCORES and not cfg.classes:
        raise ConfigError(f"score {cfg.score!r} needs --classes (e.g. Pedestrian,Bicyclist)")
    class_ids = [spec.lookup(c) for c in cfg.classes] if cfg.classes else []
    drive = read_drive(cfg.source, size, cfg.rate, cfg.every, cfg.fps)
    pool, events = candidates(cfg, drive)
    scored = score_frames(models, drive.images, resolve_precision("auto", "auto"), cfg.mc_passes, class_ids,
                          seed=cfg.seed)  # fmt: skip
    if cfg.score not in scored.scores:
        raise ConfigError(f"score {cfg.score!r} is not available here (the segmenter has no dropout?); "
                          f"available: {', '.join(scored.scores)}")  # fmt: skip
    score = scored.scores[cfg.score]
    queue, dropped = rank_frames(score, scored.features, cfg.k, pool, cfg.duplicates, cfg.diversity)
    out.mkdir(parents=True, exist_ok=True)
    (out / "queue").mkdir(exist_ok=True)
    tasks, rank = [], {i: r for r, i in enumerate(queue)}
    for r, i in enumerate(queue):
        image = _original(drive, i)
        name = drive.names[i] if drive.names[i].lower().endswith(".png") else Path(drive.names[i]).stem + ".png"
        Image.fromarray(image).save(out / "queue" / name)
        pred = np.asarray(Image.fromarray(scored.predictions[i].numpy().astype(np.uint8)).resize(
            (image.shape[1], image.shape[0]), Image.NEAREST))  # fmt: skip
        url = cfg.image_url.format(path=f"queue/{name}", name=name)
        extra = {"rank": r + 1, "score": round(float(score[i]), 6), "time": drive.times[i]}
        tasks.append(ls.task(url, drive.names[i], ls.prediction(pred, spec, "synthlabel", float(score[i])), extra))
    atomic_write_text(out / "tasks.json", json.dumps(tasks))
    atomic_write_text(out / "labeling_config.xml", ls.labeling_config(spec))
    spec.save(out / "classes.json")
    _write_scores(out / "scores.csv", drive, scored.scores, rank, dropped, events)
    summary = {"source": str(cfg.source), "frames": len(drive.names), "candidates": len(pool), "score": cfg.score,
               "queue": [drive.names[i] for i in queue], "duplicates_dropped": len(dropped), "events": events,
               "unit": drive.unit, "segmenters": [str(s) for s in cfg.segmenters]}  # fmt: skip
    atomic_write_text(out / "queue.json", json.dumps(summary, indent=1))
    review_page(out, drive, scored, score, queue, events, spec, cfg)
    log.info("mine: %d of %d frames queued (%d near-duplicates dropped) by %s into %s", len(queue),
             len(pool), len(dropped), cfg.score, out)  # fmt: skip
    return out


def _original(drive: Drive, i: int) -> np.ndarray:
    """The full-size frame i (re-read from a folder, kept from a video)."""
    if drive.originals:
        return drive.originals[i]
    return np.array(Image.open(drive.source / drive.names[i]).convert("RGB"))


def _write_scores(path: Path, drive: Drive, scores: dict, rank: dict, dropped: dict, events: list[dict]) -> None:
    window = {i: n for n, e in enumerate(events) for i in e["frames"]}
    names = list(scores)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["frame", "time", "event", *names, "queue_rank", "duplicate_of"])
    for i, name in enumerate(drive.names):
        dup = drive.names[dropped[i]] if i in dropped else ""
        w.writerow([name, drive.times[i], window.get(i, ""), *(f"{float(scores[s][i]):.6f}" for s in names),
                    rank[i] + 1 if i in rank else "", dup])  # fmt: skip
    atomic_write_text(path, buf.getvalue())


def review_page(out: Path, drive: Drive, scored, score, queue, events, spec: ClassSpec, cfg: MineConfig) -> Path:
    """review.html: the score timeline with the events and the queued frames marked, then the queued frames with
    the prediction overlaid and their scores."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    page = HtmlPage(f"Labeling queue: {Path(cfg.source).name}")
    page.paragraph(f"{len(queue)} frames queued of {len(drive.names)} by {cfg.score}"
                   + (f" in the {cfg.before} {drive.unit} before {len(events)} events" if events else ""))  # fmt: skip
    fig, ax = plt.subplots(figsize=(9, 3.2), dpi=100)
    ax.plot(drive.times, score.numpy(), lw=1, label=cfg.score)
    for e in events:
        ax.axvline(e["time"], color="red", lw=1)
        ax.axvspan(e["time"] - cfg.before, e["time"] + cfg.after, color="red", alpha=0.08)
    ax.scatter([drive.times[i] for i in queue], [float(score[i]) for i in queue], color="black", s=12,
               zorder=3, label="queued")  # fmt: skip
    ax.set_xlabel("time (s)" if drive.unit == "s" else "frame")
    ax.set_ylabel(cfg.score)
    ax.legend(loc="upper left")
    fig.tight_layout()
    page.heading("Score over the drive (events in red)")
    page.figure(fig)
    plt.close(fig)
    if queue:
        page.heading("Queued frames with the model's prediction")
        idx = torch.tensor(queue)
        page.image(sample_grid(drive.images[idx], scored.predictions[idx], [list(c.color) for c in spec.classes],
                               nrow=5, alpha=0.45), caption="in queue order")  # fmt: skip
        rows = [
            [r + 1, drive.names[i], f"{drive.times[i]:g}", *(f"{float(v[i]):.3f}" for v in scored.scores.values())]
            for r, i in enumerate(queue)
        ]
        page.table(["rank", "frame", "time", *scored.scores], rows)
    return page.write(out / "review.html")


def import_labels(export: str | Path, queue_dir: str | Path, out: str | Path, split: str = "train",
                  layout: str = "camvid", spec: ClassSpec | None = None) -> Path:  # fmt: skip
    """A Label Studio JSON export of a `mine` queue -> a labeled dataset in `out` (`layout`, `split`): each
    annotated frame's image from the queue and its mask in the queue's class spec (unpainted pixels = ignore),
    classes.json and meta.csv, ready for train-seg, synth and translate. Returns `out`."""
    queue_dir, out = Path(queue_dir), Path(out)
    spec = spec or ClassSpec.load(queue_dir / "classes.json")
    masks = ls.masks_from_export(ls.read_export(export), spec)
    if not masks:
        raise DataError(f"{export}: no task has an annotation yet; label some frames, then export again")
    if layout not in ("camvid", "folders"):
        raise DataError(f"import-labels writes the camvid or folders layout, not {layout!r}")
    rows = [("split", "file", "sequence", "condition", "frame")]
    for frame, label_map in sorted(masks.items()):
        name = frame if frame.lower().endswith(".png") else Path(frame).stem + ".png"
        source = queue_dir / "queue" / name
        if not source.is_file():
            raise DataError(f"{source}: the queued frame of an exported task is missing; import into the mine output")
        image = Image.open(source)
        if (image.height, image.width) != label_map.shape:
            raise DataError(f"{frame}: the annotation is {label_map.shape[1]}x{label_map.shape[0]}, the frame "
                            f"{image.width}x{image.height}")  # fmt: skip
        image_path, mask_path = (
            (out / split / name, out / f"{split}annot" / name) if layout == "camvid"
            else (out / "images" / split / name, out / "masks" / split / name)
        )  # fmt: skip
        image_path.parent.mkdir(parents=True, exist_ok=True)
        mask_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, image_path)
        Image.fromarray(label_map).save(mask_path)
        rows.append((split, name, "mined", "", ""))
    spec.save(out / "classes.json")
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    atomic_write_text(out / "meta.csv", buf.getvalue())
    log.info("import-labels: %d labeled frames into %s", len(masks), out)
    return out


__all__ = ["SCORES", "import_labels", "mine"]
