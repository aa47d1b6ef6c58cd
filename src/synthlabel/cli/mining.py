"""Targeted data gathering: mine (the frames a segmenter most likely gets wrong, as a labeling queue) and
import-labels (a Label Studio export back as a labeled dataset)."""

from __future__ import annotations

import argparse
from typing import get_args

from synthlabel.config import MineConfig

# Stage modules are imported inside the commands, for speed only (see synthlabel.cli).


def cmd_mine(a: argparse.Namespace) -> int:
    from synthlabel.mining.mine import mine

    cfg = MineConfig(
        source=a.source, segmenters=tuple(a.segmenter), events=a.events, score=a.score,
        classes=tuple(a.classes.split(",")) if a.classes else (), before=a.before, after=a.after,
        whole_drive=a.whole_drive, k=a.k, duplicates=a.duplicates, diversity=not a.no_diversity,
        mc_passes=a.mc_passes, rate=a.rate, every=a.every, fps=a.fps, image_url=a.image_url, seed=a.seed,
    )  # fmt: skip
    out = mine(cfg, a.out)
    print(f"labeling queue: {out}/queue ({out}/tasks.json for Label Studio, {out}/review.html to look first)")
    return 0


def cmd_import_labels(a: argparse.Namespace) -> int:
    from synthlabel.mining.mine import import_labels

    out = import_labels(a.export, a.queue, a.out, a.split, a.layout)
    print(f"labeled dataset: {out} (train it, or augment it with synth and translate)")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("mine", help="queue the frames of a drive the segmenter most likely gets wrong, for labeling")
    s.add_argument("source", help="a folder of frames (meta.csv 'frame' order, else by name) or a video file")
    s.add_argument("--segmenter", action="append", required=True,
                   help="segmenter model dir (repeat for an ensemble)")  # fmt: skip
    s.add_argument("--events", help="CSV of interventions: a 'time' (s) or 'frame' column, optional 'kind'")
    s.add_argument("--score", default="entropy", choices=list(get_args(MineConfig.model_fields["score"].annotation)),
                   help="class_targeted: chosen classes unsure or vanishing (windows before events); "
                   "class_uncertainty: unsure where the chosen classes may be (a pool of frames)")  # fmt: skip
    s.add_argument("--classes", help="class_targeted / class_uncertainty: comma-separated class names, e.g. "
                   "Pedestrian,Bicyclist")  # fmt: skip
    s.add_argument("--before", type=float, default=5.0, help="window before each event (s with a rate, else frames)")
    s.add_argument("--after", type=float, default=0.0)
    s.add_argument("--whole-drive", action="store_true", help="rank every frame, not only the event windows")
    s.add_argument("--k", type=int, default=25, help="frames to queue")
    s.add_argument("--duplicates", type=float, default=0.2, help="near-duplicate feature distance (0 = keep all)")
    s.add_argument("--no-diversity", action="store_true", help="plain ranking instead of score-weighted k-center")
    s.add_argument("--mc-passes", type=int, default=8)
    s.add_argument("--rate", type=float, help="video: frames kept per second")
    s.add_argument("--every", type=int, default=1, help="folder: keep every n-th frame")
    s.add_argument("--fps", type=float, help="folder: frame rate, so times and events are in seconds")
    s.add_argument("--image-url", default="/data/local-files/?d={path}",
                   help="image URL template of the Label Studio tasks ({path}, {name})")  # fmt: skip
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True)
    s.set_defaults(fn=cmd_mine)

    s = sub.add_parser("import-labels", help="a Label Studio JSON export of a mine queue -> a labeled dataset")
    s.add_argument("export", help="Label Studio export (JSON format)")
    s.add_argument("--queue", required=True, help="the mine output folder the tasks came from")
    s.add_argument("--out", required=True)
    s.add_argument("--split", default="train")
    s.add_argument("--layout", default="camvid", choices=["camvid", "folders"])
    s.set_defaults(fn=cmd_import_labels)
