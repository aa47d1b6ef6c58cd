"""A recorded drive as frames in time order: a folder of images (ordered by the `frame` column of a meta.csv
beside them, else by file name) or a video file (decoded with PyAV), sampled at a chosen rate; and the events CSV
of interventions (a `time` in seconds or a `frame` number per row, optional `kind`)."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from synthlabel.data.datasets import read_rgb
from synthlabel.data.layouts import list_images
from synthlabel.errors import DataError
from synthlabel.runs import progress

VIDEO_EXTS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")


@dataclass
class Drive:
    """Frames in time order: names (file name, or `<video stem>_<frame>.png`), times (seconds when the rate is
    known, else frame numbers), the source frame numbers, and the images [N, 3, H, W] uint8 at the working size."""

    names: list[str]
    times: list[float]
    frames: list[int]
    images: torch.Tensor
    source: Path
    unit: str = "frame"  # "s" when times are seconds
    fps: float | None = None  # frames per second of the source, when known
    originals: list[np.ndarray] = field(default_factory=list)  # full-size frames (video only; folders re-read)


@dataclass
class Event:
    time: float
    kind: str = ""


def _frame_numbers(folder: Path, files: list[Path]) -> dict[str, int]:
    """{file name: frame} from meta.csv (beside or one level up) rows with `file` and `frame`, if any."""
    for meta in (folder / "meta.csv", folder.parent / "meta.csv"):
        if meta.is_file():
            with meta.open(newline="") as f:
                rows = [r for r in csv.DictReader(f) if r.get("file") and r.get("frame") not in (None, "")]
            names = {p.name for p in files}
            found = {r["file"]: int(r["frame"]) for r in rows if r["file"] in names}
            if found:
                return found
    return {}


def read_frame_folder(
    folder: str | Path, size: tuple[int, int] | None, every: int = 1, fps: float | None = None
) -> Drive:
    """Frames of a folder, in `frame` order (meta.csv) or name order, every `every`-th kept. With `fps` the times
    are seconds (frame / fps), else frame numbers (the file's position when meta.csv has none)."""
    folder = Path(folder)
    files = list_images(folder) if folder.is_dir() else []
    if not files:
        raise DataError(f"{folder}: no frames (a folder of png/jpg images, or a video file)")
    numbers = _frame_numbers(folder, files)
    if numbers and len(numbers) < len(files):
        missing = next(p.name for p in files if p.name not in numbers)
        raise DataError(f"{folder}: meta.csv gives frame numbers to some images but not {missing}; give all or none")
    order = sorted(files, key=lambda p: (numbers.get(p.name, 0), p.name)) if numbers else files
    frames = [numbers.get(p.name, i) for i, p in enumerate(order)]
    keep = list(range(0, len(order), max(1, every)))
    images = [read_rgb(order[i], size) for i in progress(keep, desc="read frames", total=len(keep))]
    times = [frames[i] / fps if fps else float(frames[i]) for i in keep]
    return Drive([order[i].name for i in keep], times, [frames[i] for i in keep],
                 torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous(), folder,
                 "s" if fps else "frame", fps)  # fmt: skip


def read_video(path: str | Path, size: tuple[int, int] | None, rate: float | None = None) -> Drive:
    """Frames of a video file decoded with PyAV, `rate` frames per second kept (default: every frame); times in
    seconds from the stream's timestamps."""
    try:
        import av  # optional: only videos need it
    except ImportError as exc:  # pragma: no cover - av is a dependency; this is for broken installs
        raise DataError("reading a video needs PyAV (pip install av)") from exc
    path = Path(path)
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise DataError(f"{path}: cannot open the video ({exc})") from exc
    names, times, numbers, images, originals = [], [], [], [], []
    next_time, fps = 0.0, None
    with container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate) if stream.average_rate else None
        for i, frame in enumerate(container.decode(stream)):
            t = float(frame.time) if frame.time is not None else i / float(stream.average_rate or 1)
            if rate and t + 1e-6 < next_time:
                continue
            next_time = t + 1.0 / rate if rate else t
            rgb = frame.to_ndarray(format="rgb24")
            originals.append(rgb)
            small = rgb if size is None else np.array(Image.fromarray(rgb).resize((size[1], size[0]), Image.BILINEAR))
            images.append(small)
            names.append(f"{path.stem}_{i:06d}.png")
            times.append(t)
            numbers.append(i)
    if not images:
        raise DataError(f"{path}: the video has no frames")
    return Drive(names, times, numbers, torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous(), path,
                 "s", fps, originals)  # fmt: skip


def read_drive(source: str | Path, size: tuple[int, int] | None, rate: float | None = None, every: int = 1,
               fps: float | None = None) -> Drive:  # fmt: skip
    """A video file (by extension) or a folder of frames."""
    source = Path(source)
    if source.suffix.lower() in VIDEO_EXTS:
        return read_video(source, size, rate)
    return read_frame_folder(source, size, every, fps)


def read_events(path: str | Path, drive: Drive) -> list[Event]:
    """Intervention events from a CSV with a `time` (seconds) or a `frame` column, optional `kind`, in the drive's
    time unit: frame numbers become seconds at the drive's frame rate; times need a drive with a rate."""
    path, fps = Path(path), drive.fps
    try:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as exc:
        raise DataError(f"{path}: cannot read the events CSV ({exc})") from exc
    if not rows:
        return []
    columns = set(rows[0])
    if not columns & {"time", "frame"}:
        raise DataError(f"{path}: an events CSV needs a 'time' (seconds) or a 'frame' column, found {sorted(columns)}")
    events = []
    for n, row in enumerate(rows, start=2):
        try:
            if row.get("time") not in (None, ""):
                if drive.unit != "s":
                    raise DataError(f"{path}:{n}: event times are seconds, but the frames have no rate; pass --fps")
                t = float(row["time"])
            else:
                frame = float(row["frame"])
                t = frame / fps if (drive.unit == "s" and fps) else frame
                if drive.unit == "s" and not fps:
                    raise DataError(f"{path}:{n}: events by frame need the frame rate; pass --fps")
        except ValueError as exc:
            raise DataError(f"{path}:{n}: not a number ({exc})") from exc
        events.append(Event(t, row.get("kind") or ""))
    return sorted(events, key=lambda e: e.time)
