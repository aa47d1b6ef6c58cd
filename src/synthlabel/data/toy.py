"""Procedural demo road scenes (CamVid-like classes) rendered under day/dusk/night/fog with identical labels.

Deterministic by seed, numpy only, nothing downloaded; used by the README quickstart and by tests.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from synthlabel.checkpoint import atomic_dir
from synthlabel.data.classes import ClassInfo, ClassSpec
from synthlabel.errors import DataError

DEMO_CLASSES: tuple[str, ...] = ("sky", "building", "road", "sidewalk", "tree", "car", "pedestrian", "pole")
DEMO_CONDITIONS: tuple[str, ...] = ("day", "dusk", "night", "fog")
_COLORS = (
    (128, 128, 128),
    (128, 0, 0),
    (128, 64, 128),
    (60, 40, 222),
    (128, 128, 0),
    (64, 0, 128),
    (64, 64, 0),
    (192, 192, 128),
)
SKY, BUILDING, ROAD, SIDEWALK, TREE, CAR, PEDESTRIAN, POLE = range(8)
# detail codes painted at sampling time, so textures are identical under every condition
_DARK, _PAINT, _WINDOW, _LIT_WINDOW = 1, 2, 3, 4
_FINE_NOISE = np.array([0, 0.05, 0.07, 0.05, 0.15, 0.02, 0.05, 0.03], dtype=np.float32)
_COARSE_NOISE = np.array([0, 0.08, 0.05, 0.06, 0.3, 0.01, 0.04, 0.02], dtype=np.float32)
_FACADES = ((0.78, 0.7, 0.58), (0.62, 0.32, 0.25), (0.55, 0.55, 0.57), (0.85, 0.83, 0.78), (0.7, 0.55, 0.4))
_CAR_PAINTS = ((0.7, 0.1, 0.1), (0.15, 0.25, 0.6), (0.85,) * 3, (0.1,) * 3, (0.6, 0.6, 0.65), (0.9, 0.7, 0.1))


def demo_spec() -> ClassSpec:
    """The demo label set: 8 CamVid-like classes (ids 0..7), void 255, conditions day/dusk/night/fog."""
    classes = tuple(
        ClassInfo(i, name, color) for i, (name, color) in enumerate(zip(DEMO_CLASSES, _COLORS, strict=True))
    )
    return ClassSpec(classes=classes, ignore_index=255, conditions=DEMO_CONDITIONS)


@dataclass
class Scene:
    """One procedural scene: its label map plus what `render` needs to draw it under any condition."""

    label: np.ndarray  # [H, W] int64 class ids 0..7
    instance: np.ndarray  # [H, W] int32 index into `colors` (stuff classes have one entry each)
    detail: np.ndarray  # [H, W] uint8 detail code (0 none, dark parts, lane paint, windows)
    colors: np.ndarray  # [N, 3] float32 albedo in [0, 1] per instance
    lamps: np.ndarray  # [M, 4] float32 (row, col, radius, kind) light sources; kind 0 street lamp, 1 tail light
    horizon: int
    seed: int


@dataclass(frozen=True)
class _Street:
    """Perspective geometry: a ground point at depth t (1 = bottom row, 0 = horizon) and lateral offset X."""

    height: int
    width: int
    horizon: int
    vanish_x: float
    bottom_x: float
    unit: float  # pixels per world unit at t = 1
    road: float  # road half-width, world units
    walk: float  # sidewalk width, world units

    def row(self, t: np.ndarray | float) -> np.ndarray | float:
        return self.horizon + t * (self.height - self.horizon)

    def col(self, t: np.ndarray | float, offset: float) -> np.ndarray | float:
        return self.vanish_x + t * (self.bottom_x - self.vanish_x + offset * self.unit)


class _Canvas:
    def __init__(self, height: int, width: int, rng: np.random.Generator) -> None:
        self.rng = rng
        self.label = np.zeros((height, width), np.int64)
        self.instance = np.zeros((height, width), np.int32)
        self.detail = np.zeros((height, width), np.uint8)
        self.colors: list[np.ndarray] = []
        self.lamps: list[tuple[float, float, float, int]] = []
        self.yy, self.xx = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5

    def new(self, color: Sequence[float], jitter: float = 0.06) -> int:
        self.colors.append(np.clip(np.asarray(color) + self.rng.uniform(-jitter, jitter, 3), 0, 1))
        return len(self.colors) - 1

    def paint(self, mask: np.ndarray, cls: int, inst: int, detail: int = 0) -> None:
        self.label[mask], self.instance[mask], self.detail[mask] = cls, inst, detail

    def rect(self, y0: float, y1: float, x0: float, x1: float) -> np.ndarray:
        # at least one pixel wide, so thin far objects (poles) do not vanish
        xc, half = (x0 + x1) / 2, max((x1 - x0) / 2, 0.5)
        return (self.yy >= y0) & (self.yy < y1) & (np.abs(self.xx - xc) <= half)


def sample_scene(seed: int, size: tuple[int, int] = (96, 128)) -> Scene:
    """A random perspective road scene (sky, facades, road, sidewalks, trees, cars, pedestrians, poles)."""
    height, width = size
    rng = np.random.default_rng(seed)
    horizon = int(rng.uniform(0.36, 0.5) * height)
    vanish_x, bottom_x = width * rng.uniform(0.38, 0.62), width * rng.uniform(0.42, 0.58)
    road, walk = rng.uniform(1.3, 1.8), rng.uniform(0.7, 1.1)
    street = _Street(height, width, horizon, vanish_x, bottom_x, width * 0.25, road, walk)
    canvas = _Canvas(height, width, rng)
    _draw_ground(canvas, street)
    for side in (-1, 1):
        _draw_facades(canvas, street, side)
    for depth, draw, offset in sorted(_sample_objects(rng, street), key=lambda o: o[0]):
        draw(canvas, street, depth, offset)
    colors = np.stack(canvas.colors).astype(np.float32)
    lamps = np.array(canvas.lamps, np.float32).reshape(-1, 4)
    return Scene(canvas.label, canvas.instance, canvas.detail, colors, lamps, street.horizon, seed)


def _draw_ground(c: _Canvas, s: _Street) -> None:
    c.paint(c.yy >= 0, SKY, c.new((0.6, 0.7, 0.9)))
    t = (c.yy - s.horizon) / (s.height - s.horizon)
    ground = t > 0
    c.paint(ground, SIDEWALK, c.new((0.62, 0.6, 0.56)))
    road = ground & (np.abs(c.xx - s.col(t, 0)) < t * s.road * s.unit)
    c.paint(road, ROAD, c.new((0.33, 0.33, 0.35), 0.03))
    depth = 1 / np.maximum(t, 1e-3)
    dashes = (np.abs(c.xx - s.col(t, 0)) < np.maximum(t * 0.05 * s.unit, 0.4)) & ((depth * 0.8) % 1 < 0.5)
    edges = np.abs(np.abs(c.xx - s.col(t, 0)) - t * (s.road - 0.12) * s.unit) < np.maximum(t * 0.03 * s.unit, 0.3)
    c.detail[road & (dashes | edges) & (t > 0.05)] = _PAINT


def _draw_facades(c: _Canvas, s: _Street, side: int) -> None:
    """Building fronts along one side, column by column: depth from where the sidewalk's outer edge crosses it."""
    slope = s.col(1, side * (s.road + s.walk)) - s.vanish_x
    t = np.maximum((c.xx[0] - s.vanish_x) / slope, 1e-3)  # [W]
    depth = 1 / t
    breaks = 0.15 + np.cumsum(c.rng.uniform(0.4, 2.2, 24))  # segment ends, in depth 1/t
    heights = c.rng.uniform(1.5, 7.0, 24) * (c.rng.random(24) > 0.2)
    seg = np.minimum(np.searchsorted(breaks, depth), 23)
    first = len(c.colors)
    for _ in range(24):
        c.new(_FACADES[c.rng.integers(len(_FACADES))], 0.08)
    bottom = s.row(t)
    top = bottom - heights[seg] * t * s.unit
    mask = (t > 0.02) & (heights[seg] > 0) & (c.yy >= top) & (c.yy < bottom)
    c.paint(mask, BUILDING, 0)
    c.instance[mask] = (first + seg[None, :].repeat(c.yy.shape[0], 0))[mask]
    # windows on a (depth, height above ground) grid of the facade; some are lit at night
    z = (bottom - c.yy) / (t * s.unit)
    win = ((depth * 2.2) % 1 < 0.55) & ((z * 1.6) % 1 > 0.45) & (z > 0.6) & (z < heights[seg] - 0.3) & mask
    cell = (np.floor(depth * 2.2) * 7919 + np.floor(z * 1.6) * 104729 + seg * 31337).astype(np.int64)
    lit = (cell * 2654435761 + s.horizon) % 97 < 30
    c.detail[win] = np.where(lit, _LIT_WINDOW, _WINDOW)[win]


def _sample_objects(rng: np.random.Generator, s: _Street) -> list:
    """(depth t, draw function, lateral offset) for every object; drawn far to near so nearer ones occlude."""
    objs = []
    for _ in range(rng.integers(0, 4)):
        objs.append((rng.uniform(0.15, 0.9), _draw_car, rng.choice((-0.5, 0.5)) * s.road + rng.uniform(-0.2, 0.2)))
    for _ in range(rng.integers(0, 3)):
        on_road = rng.random() < 0.25
        offset = rng.uniform(-s.road, s.road) if on_road else rng.choice((-1, 1)) * (s.road + rng.uniform(0.2, s.walk))
        objs.append((rng.uniform(0.25, 0.95), _draw_pedestrian, offset))
    for _ in range(rng.integers(0, 4)):
        objs.append((rng.uniform(0.2, 1.0), _draw_pole, rng.choice((-1, 1)) * (s.road + 0.15)))
    for _ in range(rng.integers(1, 5)):
        objs.append((rng.uniform(0.15, 0.9), _draw_tree, rng.choice((-1, 1)) * (s.road + s.walk * rng.uniform(0.5, 1))))
    return objs


def _draw_car(c: _Canvas, s: _Street, t: float, offset: float) -> None:
    inst, yb, xc = c.new(_CAR_PAINTS[c.rng.integers(len(_CAR_PAINTS))]), s.row(t), s.col(t, offset)
    w, h = 1.3 * t * s.unit, 0.95 * t * s.unit
    x0, x1 = xc - w / 2, xc + w / 2
    c.paint(c.rect(yb - 0.62 * h, yb - 0.12 * h, x0, x1), CAR, inst)
    c.paint(c.rect(yb - h, yb - 0.62 * h, x0 + 0.13 * w, x1 - 0.13 * w), CAR, inst)
    c.detail[c.rect(yb - 0.92 * h, yb - 0.64 * h, x0 + 0.19 * w, x1 - 0.19 * w)] = _DARK
    for a, b in ((0.04, 0.26), (0.74, 0.96)):
        c.paint(c.rect(yb - 0.14 * h, yb, x0 + a * w, x0 + b * w), CAR, inst, _DARK)
        c.lamps.append((yb - 0.45 * h, x0 + (a + b) / 2 * w, max(0.08 * w, 1.0), 1))


def _draw_pedestrian(c: _Canvas, s: _Street, t: float, offset: float) -> None:
    inst, yb, xc = c.new(c.rng.uniform(0.1, 0.8, 3), 0), s.row(t), s.col(t, offset)
    h, w = 1.15 * t * s.unit, 0.3 * t * s.unit
    r = 0.09 * h
    head = (c.yy - (yb - h + r)) ** 2 + (c.xx - xc) ** 2 < max(r, 0.6) ** 2
    c.paint(head, PEDESTRIAN, inst)
    c.paint(c.rect(yb - h + 1.8 * r, yb - 0.45 * h, xc - w / 2, xc + w / 2), PEDESTRIAN, inst)
    for leg in (xc - 0.3 * w, xc + 0.3 * w):
        c.paint(c.rect(yb - 0.45 * h, yb, leg - 0.13 * w, leg + 0.13 * w), PEDESTRIAN, inst)


def _draw_pole(c: _Canvas, s: _Street, t: float, offset: float) -> None:
    inst, yb, xc = c.new((0.45, 0.45, 0.47), 0.03), s.row(t), s.col(t, offset)
    h, w = 3.6 * t * s.unit, 0.07 * t * s.unit
    c.paint(c.rect(yb - h, yb, xc - w / 2, xc + w / 2), POLE, inst)
    arm = -np.sign(offset) * 0.5 * t * s.unit
    c.paint(c.rect(yb - h, yb - h + max(w, 1), min(xc, xc + arm), max(xc, xc + arm)), POLE, inst)
    c.lamps.append((yb - h + w, xc + arm, max(0.5 * t * s.unit, 1.5), 0))


def _draw_tree(c: _Canvas, s: _Street, t: float, offset: float) -> None:
    yb, xc, u = s.row(t), s.col(t, offset), t * s.unit
    trunk_top = yb - c.rng.uniform(0.9, 1.5) * u
    c.paint(c.rect(trunk_top, yb, xc - 0.07 * u, xc + 0.07 * u), TREE, c.new((0.3, 0.22, 0.15), 0.03))
    r = c.rng.uniform(0.7, 1.3) * u
    cy = trunk_top - 0.6 * r
    angle = np.arctan2(c.yy - cy, (c.xx - xc) / 1.15)
    phase = c.rng.uniform(0, 2 * np.pi, 2)
    radius = r * (1 + 0.15 * np.sin(5 * angle + phase[0]) + 0.08 * np.sin(11 * angle + phase[1]))
    crown = ((c.xx - xc) / 1.15) ** 2 + (c.yy - cy) ** 2 < radius**2
    c.paint(crown, TREE, c.new((0.22, 0.42, 0.15), 0.07))


@dataclass(frozen=True)
class _Light:
    ambient: tuple[float, float, float]
    sky_top: tuple[float, float, float]
    sky_horizon: tuple[float, float, float]
    saturation: float = 1.0
    glow: float = 0.0  # strength of lamps and lit windows
    fog: float = 0.0  # fog density at the horizon


_LIGHTS = {
    "day": _Light((1.0, 1.0, 0.96), (0.3, 0.5, 0.88), (0.68, 0.8, 0.95)),
    "dusk": _Light((0.6, 0.48, 0.4), (0.24, 0.22, 0.42), (0.95, 0.58, 0.3), saturation=0.7, glow=0.35),
    "night": _Light((0.08, 0.09, 0.15), (0.01, 0.02, 0.06), (0.07, 0.09, 0.18), saturation=0.8, glow=1.0),
    "fog": _Light((0.85, 0.85, 0.87), (0.75, 0.77, 0.8), (0.8, 0.81, 0.83), saturation=0.8, fog=0.9),
}
_FOG_COLOR = np.array((0.8, 0.81, 0.83), np.float32)
_LAMP_COLORS = np.array(((1.0, 0.82, 0.5), (1.0, 0.12, 0.08)), np.float32)


def render(scene: Scene, condition: str) -> np.ndarray:
    """[H, W, 3] uint8 image of `scene` under `condition`; textures depend on the scene only, so all conditions of
    one scene are pixel-aligned."""
    light = _LIGHTS.get(condition)
    if light is None:
        raise DataError(f"unknown condition {condition!r}; the demo scenes know {', '.join(DEMO_CONDITIONS)}")
    img = _albedo(scene) * np.asarray(light.ambient, np.float32)
    sky = scene.label == SKY
    rows = np.clip(np.arange(scene.label.shape[0], dtype=np.float32) / max(scene.horizon, 1), 0, 1)[:, None, None]
    gradient = np.asarray(light.sky_top) + (np.asarray(light.sky_horizon) - np.asarray(light.sky_top)) * rows**1.5
    img[sky] = np.broadcast_to(gradient, img.shape)[sky]
    luma = img @ np.array((0.299, 0.587, 0.114), np.float32)
    img = luma[..., None] + light.saturation * (img - luma[..., None])
    if light.glow:
        img = _add_lights(scene, img, light.glow)
    if light.fog:
        dist = (scene.label.shape[0] - np.arange(scene.label.shape[0])) / (scene.label.shape[0] - scene.horizon)
        alpha = (light.fog * np.clip(0.35 + 0.65 * dist, 0, 1)).astype(np.float32)[:, None, None]
        img = img * (1 - alpha) + _FOG_COLOR * alpha
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def _albedo(scene: Scene) -> np.ndarray:
    height, width = scene.label.shape
    rng = np.random.default_rng([scene.seed, 1])  # never the condition: textures must match across conditions
    fine = rng.standard_normal((height, width), dtype=np.float32)
    coarse = _smooth_noise(rng, height, width, 4)
    shade = 1 + _FINE_NOISE[scene.label] * fine + _COARSE_NOISE[scene.label] * coarse
    img = scene.colors[scene.instance] * shade[..., None]
    img[scene.detail == _DARK] = 0.07
    img[scene.detail == _PAINT] = 0.85
    img[scene.detail >= _WINDOW] = (0.2, 0.24, 0.3)
    return img


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """Bilinearly upsampled gaussian noise: blotches about `cell` pixels wide."""
    low = rng.standard_normal((height // cell + 2, width // cell + 2), dtype=np.float32)
    fy, fx = np.arange(height, dtype=np.float32) / cell, np.arange(width, dtype=np.float32) / cell
    y0, x0 = fy.astype(int), fx.astype(int)
    wy, wx = (fy - y0)[:, None], (fx - x0)[None, :]
    top = low[y0][:, x0] * (1 - wx) + low[y0][:, x0 + 1] * wx
    bottom = low[y0 + 1][:, x0] * (1 - wx) + low[y0 + 1][:, x0 + 1] * wx
    return top * (1 - wy) + bottom * wy


def _add_lights(scene: Scene, img: np.ndarray, strength: float) -> np.ndarray:
    lit = scene.detail == _LIT_WINDOW
    img[lit] += strength * (np.array((1.0, 0.8, 0.45), np.float32) - img[lit])
    height, width = scene.label.shape
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    for row, col, radius, kind in scene.lamps:
        r, c = int(row), int(col)
        if 0 <= r < height and 0 <= c < width and scene.label[r, c] != (POLE, CAR)[int(kind)]:
            continue  # hidden behind a nearer object
        d2 = ((yy - row) ** 2 + (xx - col) ** 2) / radius**2
        glow = np.exp(-d2 / 2) + (0.15 * np.exp(-d2 / 32) if kind == 0 else 0)
        img += strength * glow[..., None] * _LAMP_COLORS[int(kind)]
    return img


def make_demo_dataset(
    out_dir: str | Path,
    n_train: int = 48,
    n_val: int = 16,
    n_test: int = 24,
    size: tuple[int, int] = (96, 128),
    seed: int = 0,
    conditions: Sequence[str] = DEMO_CONDITIONS,
    condition_weights: Sequence[float] = (0.55, 0.2, 0.15, 0.1),
    paired: bool = False,
    overwrite: bool = False,
    unlabeled: Sequence[str] = (),
) -> Path:
    """Write a CamVid-layout demo dataset (train/ trainannot/ val/ ... + classes.json + meta.csv) to `out_dir`; a split
    of 0 images is left out (n_val=0: a dataset without validation split).

    paired=False renders each scene under one condition drawn by `condition_weights`; paired=True writes every
    scene under every condition (`{scene:06d}_{k}.png`, sequence `scene{scene:06d}`). `unlabeled`: train scenes
    drawn under these conditions are written as images only to `unlabeled/<condition>/` (no mask anywhere, not in
    meta.csv): the condition-gap story, labeled day scenes and unlabeled night ones. Written into a temporary
    sibling folder and renamed at the end, so an interrupted run leaves nothing half-written.
    """
    out = Path(out_dir)
    weights = _check_conditions(conditions, condition_weights)
    if set(unlabeled) - set(conditions) or (paired and unlabeled):
        raise DataError(f"unlabeled conditions {list(unlabeled)} must be among {list(conditions)}, and unpaired")
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder; pick an empty folder for the demo dataset")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise DataError(f"{out}: folder is not empty; pick an empty folder or pass overwrite=True to replace it")
    with atomic_dir(out) as tmp:
        splits = (("train", n_train), ("val", n_val), ("test", n_test))
        _write_dataset(tmp, splits, size, seed, tuple(conditions), weights, paired, tuple(unlabeled))
    return out


def _check_conditions(conditions: Sequence[str], weights: Sequence[float]) -> np.ndarray:
    unknown = [c for c in conditions if c not in _LIGHTS]
    if unknown or not conditions:
        raise DataError(f"unknown demo conditions {unknown}; choose from {', '.join(DEMO_CONDITIONS)}")
    w = np.asarray(weights, np.float64)
    if w.shape != (len(conditions),) or (w < 0).any() or w.sum() <= 0:
        raise DataError(f"condition_weights {tuple(weights)} need one non-negative weight per condition {conditions}")
    return w / w.sum()


def _write_dataset(
    root: Path, splits, size, seed: int, conditions: tuple[str, ...], weights, paired: bool, unlabeled=()
) -> None:
    demo_spec().save(root / "classes.json")
    pick = np.random.default_rng([seed, 2])
    rows, index = [("split", "file", "sequence", "condition", "frame")], 0
    for split, count in splits:
        if count == 0:  # no such split: an empty split folder would be a broken dataset
            continue
        (root / split).mkdir()
        (root / f"{split}annot").mkdir()
        for _ in range(count):
            # every scene of every split has its own seed, so splits never share a scene
            scene = sample_scene(int(np.random.SeedSequence([seed, index]).generate_state(1)[0]), size)
            if paired:
                todo = [(k, f"{index:06d}_{k}.png", f"scene{index:06d}") for k in range(len(conditions))]
            else:
                todo = [(int(pick.choice(len(conditions), p=weights)), f"{index:06d}.png", "demo")]
            label = Image.fromarray(scene.label.astype(np.uint8))
            for k, name, sequence in todo:
                if split == "train" and conditions[k] in unlabeled:  # the image only, outside the dataset
                    (root / "unlabeled" / conditions[k]).mkdir(parents=True, exist_ok=True)
                    Image.fromarray(render(scene, conditions[k])).save(root / "unlabeled" / conditions[k] / name)
                    continue
                Image.fromarray(render(scene, conditions[k])).save(root / split / name)
                label.save(root / f"{split}annot" / name)
                rows.append((split, name, sequence, conditions[k], index))
            index += 1
    with (root / "meta.csv").open("w", newline="") as f:
        csv.writer(f).writerows(rows)
