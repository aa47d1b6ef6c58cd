"""Class bank: the connected segments of each class in a set of label maps, plus per-class statistics learned from
them (nothing is specific to one dataset).

On disk a bank is a directory: `bank.json` (class spec, segment metadata) + `masks.npz` (all masks, bit-packed).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from synthlabel.checkpoint import atomic_dir
from synthlabel.data.classes import ClassSpec
from synthlabel.data.datasets import SegDataset
from synthlabel.errors import DataError
from synthlabel.synth.segments import Segment, check_label_map, extract_segments
from synthlabel.synth.stats import GROUND_SHARE, ClassStats, class_stats, ground_share

FORMAT_VERSION = 1


@dataclass
class ClassBank:
    """Segments per class and the statistics learned from them; build with `ClassBank.build`."""

    spec: ClassSpec
    classes: tuple[int, ...]  # the classes that were indexed (some may have no segment)
    by_class: dict[int, list[Segment]]
    ground_classes: tuple[int, ...] = ()  # surfaces others stand on, learned from all classes (see `build`)
    min_area: int = 8
    _stats: dict[int, ClassStats] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def build(
        cls,
        label_maps: Sequence[np.ndarray],
        spec: ClassSpec,
        classes: Iterable[int | str] | None = None,
        min_area: int = 8,
        sources: Sequence[str] | None = None,
    ) -> ClassBank:
        """Index the 8-connected segments of `classes` (ids or names; default all) in label maps [H, W] each.

        Segments smaller than `min_area` pixels are dropped; `sources` optionally names each map (file name).
        Ground classes are learned from every class: those whose pixels mostly have nothing labeled below them
        (they reach the bottom of the labeled area, like road and pavement), whether indexed or not.
        """
        ids = tuple(range(spec.num_classes)) if classes is None else tuple(sorted({spec.id_of(c) for c in classes}))
        found: dict[int, list[Segment]] = {c: [] for c in range(spec.num_classes)}
        for index, label_map in enumerate(label_maps):
            label_map = check_label_map(label_map, spec, index)
            name = sources[index] if sources is not None else ""
            for segment in extract_segments(label_map, found, spec.ignore_id, min_area, index, name):
                found[segment.class_id].append(segment)
        ground = tuple(c for c, segs in found.items() if ground_share(segs) >= GROUND_SHARE)
        return cls(spec, ids, {c: found[c] for c in ids}, ground, int(min_area))

    @classmethod
    def from_dataset(
        cls, dataset: SegDataset, classes: Iterable[int | str] | None = None, min_area: int = 8
    ) -> ClassBank:
        """Build from every label map of a `SegDataset` split, naming segments by their record's file."""
        maps = [dataset.read_label(i) for i in range(len(dataset))]
        files = [str(r.meta.get("file", r.mask.name)) for r in dataset.records]
        return cls.build(maps, dataset.out_spec, classes, min_area, files)

    def segments(self, class_id: int | str) -> list[Segment]:
        """The segments of one class (empty when the class was indexed but never found)."""
        cid = self.spec.id_of(class_id)
        if cid not in self.by_class:
            raise DataError(f"class {self.spec.names[cid]!r} was not indexed in this bank; rebuild it with the class")
        return self.by_class[cid]

    def stats(self, class_id: int | str) -> ClassStats:
        """Position, scale, support and neighbour statistics of one class (computed once, then cached)."""
        cid = self.spec.id_of(class_id)
        if cid not in self._stats:
            self._stats[cid] = class_stats(cid, self.segments(cid), self.ground_classes)
        return self._stats[cid]

    @property
    def object_classes(self) -> tuple[int, ...]:
        """Classes that can be inserted and occlude: indexed, found, and not ground (ground spans all depths)."""
        return tuple(c for c in self.classes if self.by_class[c] and c not in self.ground_classes)

    def __len__(self) -> int:
        return sum(len(v) for v in self.by_class.values())

    def save(self, directory: str | Path) -> Path:
        """Write `bank.json` (spec, segments, per-class stats for reading) + `masks.npz` into `directory`
        atomically (temp dir, then rename); `load` recomputes the stats from the segments."""
        directory = Path(directory)
        with atomic_dir(directory) as tmp:
            segs = [s for c in self.classes for s in self.by_class[c]]
            bits = np.concatenate([s.mask.ravel() for s in segs]) if segs else np.zeros(0, bool)
            np.savez_compressed(tmp / "masks.npz", bits=np.packbits(bits), count=np.int64(bits.size))
            meta = {
                "format_version": FORMAT_VERSION,
                "class_spec": self.spec.to_json(),
                "classes": list(self.classes),
                "ground_classes": list(self.ground_classes),
                "min_area": self.min_area,
                "counts": {self.spec.names[c]: len(self.by_class[c]) for c in self.classes},
                "stats": {self.spec.names[c]: self.stats(c).to_json() for c in self.classes if self.by_class[c]},
                "segments": [s.to_json() for s in segs],
            }
            (tmp / "bank.json").write_text(json.dumps(meta))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> ClassBank:
        """Read a bank written by `save`; a missing or corrupt directory raises DataError."""
        directory = Path(directory)
        if not (directory / "bank.json").is_file() or not (directory / "masks.npz").is_file():
            raise DataError(f"{directory}: not a class bank (needs bank.json and masks.npz); build one first")
        try:
            meta = json.loads((directory / "bank.json").read_text())
            with np.load(directory / "masks.npz") as npz:
                bits = np.unpackbits(npz["bits"], count=int(npz["count"])).astype(bool)
            return cls._from_meta(meta, bits)
        except (OSError, ValueError, KeyError, TypeError, EOFError) as exc:
            raise DataError(f"{directory}: corrupt class bank ({exc!r}); rebuild it") from exc

    @classmethod
    def _from_meta(cls, meta: dict, bits: np.ndarray) -> ClassBank:
        if int(meta["format_version"]) > FORMAT_VERSION:
            raise ValueError(f"format {meta['format_version']} is newer than this synthlabel")
        spec = ClassSpec.from_json(meta["class_spec"])
        classes = tuple(int(c) for c in meta["classes"])
        by_class: dict[int, list[Segment]] = {c: [] for c in classes}
        offset = 0
        for data in meta["segments"]:
            y0, x0, y1, x1 = (int(v) for v in data["bbox"])
            size = (y1 - y0) * (x1 - x0)
            if offset + size > bits.size:
                raise ValueError("masks.npz holds fewer mask pixels than bank.json describes")
            mask = bits[offset : offset + size].reshape(y1 - y0, x1 - x0)
            offset += size
            by_class[int(data["class_id"])].append(Segment.from_json(data, mask))
        if offset != bits.size:
            raise ValueError("masks.npz holds more mask pixels than bank.json describes")
        ground = tuple(int(c) for c in meta["ground_classes"])
        return cls(spec, classes, by_class, ground, int(meta["min_area"]))
