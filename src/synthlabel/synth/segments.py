"""Connected segments of one class in a label map, with their mask, position, scale, support class and neighbours:
what a class bank indexes and what recomposition inserts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, fields

import numpy as np
from scipy import ndimage

from synthlabel.data.classes import ClassSpec
from synthlabel.errors import DataError

_EIGHT = np.ones((3, 3), dtype=bool)  # 8-connectivity


@dataclass
class Segment:
    """One connected segment of one class in one label map."""

    class_id: int
    source: int  # index of the label map in the sequence the bank was built from
    source_file: str  # its file name ("" when unknown)
    bbox: tuple[int, int, int, int]  # (y0, x0, y1, x1), y1/x1 exclusive
    mask: np.ndarray  # [y1 - y0, x1 - x0] bool
    area: int
    bottom_y: float  # y1 / H: the bottom edge, 0 = top, 1 = bottom of the image
    center_x: float  # bbox centre / W
    support_class: int  # most common other class just below the bottom edge; -1 = image edge or ignore only
    neighbours: dict[int, float]  # class id -> share of the segment's dilated border
    footing: dict[int, float]  # class id -> share of the band below the segment, widened by `footing_margin`
    image_size: tuple[int, int]  # (H, W) of the source label map
    occluder_above: int = -1  # class of a nearer segment just above the top edge (hides the upper part), or -1

    @property
    def height_share(self) -> float:
        """Segment height as a share of the image height."""
        return (self.bbox[2] - self.bbox[0]) / self.image_size[0]

    @property
    def cut_vertically(self) -> bool:
        """True when the segment touches the top or bottom image edge, so its true height is unknown."""
        return self.bbox[0] == 0 or self.bbox[2] == self.image_size[0]

    @property
    def whole(self) -> bool:
        """True when the segment touches no image edge."""
        return not self.cut_vertically and self.bbox[1] > 0 and self.bbox[3] < self.image_size[1]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Segment):
            return NotImplemented
        return self.to_json() == other.to_json() and np.array_equal(self.mask, other.mask)

    def to_json(self) -> dict:
        """Everything but the mask, JSON-ready (the bank stores masks apart, bit-packed)."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "mask"}
        shares = {k: {str(c): v for c, v in data[k].items()} for k in ("neighbours", "footing")}
        return data | shares | {"bbox": list(self.bbox), "image_size": list(self.image_size)}

    @classmethod
    def from_json(cls, data: dict, mask: np.ndarray) -> Segment:
        """The segment of `to_json` + its mask; banks written before `source_file` and `occluder_above` load too."""
        data = {"source_file": "", "occluder_above": -1} | data | {"mask": mask}
        shares = {k: {int(c): float(v) for c, v in data[k].items()} for k in ("neighbours", "footing")}
        sizes = {"bbox": tuple(data["bbox"]), "image_size": tuple(data["image_size"])}
        return cls(**{f.name: data[f.name] for f in fields(cls)} | shares | sizes)


def extract_segments(
    label_map: np.ndarray, classes: Iterable[int], ignore_index: int, min_area: int, source: int = 0, name: str = ""
) -> list[Segment]:
    """The 8-connected segments of `classes` in one label map [H, W], at least `min_area` pixels each.

    Every class present is labeled (not just `classes`) so each segment knows what lies in front of its top edge.
    """
    wanted = set(classes)
    present = [int(c) for c in np.unique(label_map) if c != ignore_index]
    components = {c: ndimage.label(label_map == c, structure=_EIGHT) for c in present}
    bottoms = np.full(label_map.shape, -1, np.int64)  # [H, W] bottom edge (y1) of each pixel's segment
    for labels, _ in components.values():
        stops = np.array([sl[0].stop for sl in ndimage.find_objects(labels)], np.int64)
        bottoms[labels > 0] = stops[labels[labels > 0] - 1]
    out = []
    for c in sorted(wanted.intersection(present)):
        labels, n = components[c]
        areas = np.bincount(labels.ravel(), minlength=n + 1)
        for i, sl in enumerate(ndimage.find_objects(labels)):
            if areas[i + 1] >= min_area:
                segment = _describe(label_map, c, sl, labels[sl] == i + 1, int(areas[i + 1]), ignore_index)
                segment.source, segment.source_file = int(source), name
                segment.occluder_above = _nearer_above(label_map, bottoms, segment)
                out.append(segment)
    return out


def _describe(label_map, class_id, sl, mask, area, ignore_index) -> Segment:
    height, width = label_map.shape
    bbox = (sl[0].start, sl[1].start, sl[0].stop, sl[1].stop)
    return Segment(
        class_id=int(class_id),
        source=0,
        source_file="",
        bbox=bbox,
        mask=mask,
        area=area,
        bottom_y=bbox[2] / height,
        center_x=(bbox[1] + bbox[3]) / 2 / width,
        support_class=support_below(label_map, bbox, mask[-1], class_id, ignore_index),
        neighbours=_neighbours(label_map, bbox, mask, class_id, ignore_index),
        footing=_footing(label_map, bbox, class_id, ignore_index),
        image_size=(height, width),
    )


def _nearer_above(label_map: np.ndarray, bottoms: np.ndarray, segment: Segment) -> int:
    """The most common class just above the segment's top pixels whose own segment ends lower (is nearer), or -1.

    Such a class hides the segment's upper part, so the segment's height says little about its class's scale.
    """
    y0, x0, y1, _ = segment.bbox
    if y0 == 0:
        return -1
    cols = x0 + np.flatnonzero(segment.mask[0])
    nearer = bottoms[y0 - 1, cols] > y1
    values = label_map[y0 - 1, cols][nearer]
    return int(np.bincount(values).argmax()) if values.size else -1


def support_band(height: int, y1: int) -> slice:
    """Rows that count as 'just below' a bottom edge at row y1 (exclusive): a few rows, scaled with the image."""
    return slice(y1, min(height, y1 + max(2, round(0.03 * height))))


def support_below(label_map: np.ndarray, bbox, bottom_row: np.ndarray, class_id: int, ignore_index: int) -> int:
    """The most common class (not `class_id`, not ignore) under the segment's bottom-row pixels; -1 if none."""
    y0, x0, y1, x1 = bbox
    cols = x0 + np.flatnonzero(bottom_row)
    values = label_map[support_band(label_map.shape[0], y1)][:, cols].ravel()
    values = values[(values != class_id) & (values != ignore_index)]
    return int(np.bincount(values).argmax()) if values.size else -1


def footing_margin(segment_height: int) -> int:
    """Columns added on each side of a segment when reading its footing: the context it stands in."""
    return max(2, round(0.15 * segment_height))


def _footing(label_map, bbox, class_id, ignore_index) -> dict[int, float]:
    """Class shares of the support band below the segment, widened by a margin (e.g. pavement next to road)."""
    y0, x0, y1, x1 = bbox
    margin = footing_margin(y1 - y0)
    band = label_map[support_band(label_map.shape[0], y1), max(0, x0 - margin) : x1 + margin]
    return _shares(band, class_id, ignore_index)


def _neighbours(label_map, bbox, mask, class_id, ignore_index) -> dict[int, float]:
    """Class shares of the one-pixel ring around the segment (dilation minus the segment)."""
    height, width = label_map.shape
    y0, x0, y1, x1 = bbox
    ya, xa, yb, xb = max(y0 - 1, 0), max(x0 - 1, 0), min(y1 + 1, height), min(x1 + 1, width)
    full = np.zeros((yb - ya, xb - xa), bool)
    full[y0 - ya : y0 - ya + mask.shape[0], x0 - xa : x0 - xa + mask.shape[1]] = mask
    ring = ndimage.binary_dilation(full, structure=_EIGHT) & ~full
    return _shares(label_map[ya:yb, xa:xb][ring], class_id, ignore_index)


def _shares(values: np.ndarray, class_id: int, ignore_index: int) -> dict[int, float]:
    """Share of each class among `values`, leaving out the segment's own class and the ignore index."""
    values = values[(values != class_id) & (values != ignore_index)]
    return {int(k): v / values.size for k, v in sorted(Counter(values.tolist()).items())}


def check_label_map(label_map: np.ndarray, spec: ClassSpec, index: int | str) -> np.ndarray:
    """The label map (named by its index or source file) as int64 [H, W]; DataError when it has another shape or ids
    outside the class spec."""
    arr = np.asarray(label_map)
    if arr.ndim != 2:
        raise DataError(f"label map {index} has shape {arr.shape}; expected [H, W]")
    bad = (arr < 0) | (arr >= spec.num_classes)
    if spec.ignore_index is not None:  # without a void class every pixel must be a class (masks are written)
        bad &= arr != spec.ignore_index
    if bad.any():
        raise DataError(
            f"label map {index} has class ids {sorted(set(arr[bad].tolist()))[:5]} outside 0..{spec.num_classes - 1} "
            f"(ignore {spec.ignore_index}); fix the class map or the class spec"
        )
    return arr.astype(np.int64, copy=False)
