"""Class spec (ids, names, colors, ignore index, conditions), palette <-> ids, and label harmonization maps."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from synthlabel.checkpoint import atomic_write_text
from synthlabel.errors import DataError

NO_VOID = -100  # the internal ignore id of a label set without a void class: never a class id, cross-entropy's default


@dataclass(frozen=True)
class ClassInfo:
    id: int
    name: str
    color: tuple[int, int, int]


@dataclass(frozen=True)
class ClassSpec:
    """The label set of a dataset: trainable classes 0..K-1 plus one ignore index (void), or none (ignore_index
    None: every pixel is a class). `raw_ids` are the mask values of the classes when classes.json numbers them
    otherwise than 0..K-1 (e.g. 0, 7): readers map them to 0..K-1."""

    classes: tuple[ClassInfo, ...]
    ignore_index: int | None = 255
    ignore_color: tuple[int, int, int] = (0, 0, 0)
    conditions: tuple[str, ...] = ()  # allowed per-image conditions; empty = any
    condition_of_sequence: dict[str, str] = field(default_factory=dict)
    raw_ids: tuple[int, ...] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        ids = [c.id for c in self.classes]
        if ids != list(range(len(ids))):
            raise DataError(f"class ids must be 0..K-1 in order, got {ids}; renumber them in classes.json")
        if self.ignore_index is not None and 0 <= self.ignore_index < len(ids):
            raise DataError(f"ignore_index {self.ignore_index} collides with a class id; use K or 255")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def ignore_id(self) -> int:
        """The id that marks unlabeled pixels in label maps: the ignore index, or NO_VOID without a void class."""
        return NO_VOID if self.ignore_index is None else self.ignore_index

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    def id_of(self, name_or_id: str | int) -> int:
        """Class id from a name (case-insensitive) or an id; 'ignore'/'void' give the ignore index."""
        if isinstance(name_or_id, int):
            if not (0 <= name_or_id < self.num_classes or name_or_id == self.ignore_index):
                raise DataError(f"class id {name_or_id} is not in the spec (0..{self.num_classes - 1})")
            return name_or_id
        key = str(name_or_id).strip().lower()
        if key in ("ignore", "void", "unlabelled", "unlabeled"):
            return self.ignore_id
        for c in self.classes:
            if c.name.lower() == key:
                return c.id
        raise DataError(f"unknown class name {name_or_id!r}; known: {', '.join(self.names)}")

    def lookup(self, key: str | int) -> int:
        """Class id (0..K-1) of a class as a user writes it in a config: a name, 'ignore', or the id classes.json
        gives it (a digit string or int; with non-contiguous ids, the mask value, e.g. 7 for the second class)."""
        if isinstance(key, str) and not key.strip().isdigit():
            return self.id_of(key)
        number = int(key)
        if self.raw_ids is None or number == self.ignore_index:
            return self.id_of(number)
        if number not in self.raw_ids:
            raise DataError(f"class id {number} is not in classes.json (ids {list(self.raw_ids)})")
        return self.raw_ids.index(number)

    def palette(self) -> np.ndarray:
        """[K+1, 3] uint8 colors; the last row is the ignore color."""
        return np.array([c.color for c in self.classes] + [self.ignore_color], dtype=np.uint8)

    def colorize(self, label_map: np.ndarray) -> np.ndarray:
        """[H, W] ids -> [H, W, 3] uint8 colors (ignore and unknown ids get the ignore color)."""
        lut = self.palette()
        idx = np.where((label_map >= 0) & (label_map < self.num_classes), label_map, self.num_classes)
        return lut[idx]

    def decode_colors(self, rgb: np.ndarray, source: str = "mask") -> np.ndarray:
        """[H, W, 3] palette image -> [H, W] int64 ids; a color that is no class raises DataError."""
        codes = _pack(*np.moveaxis(rgb.astype(np.int64), -1, 0))
        table = {_pack(*c.color): c.id for c in self.classes}
        if self.ignore_index is not None:  # without a void class, the ignore color is no valid mask color
            table.setdefault(_pack(*self.ignore_color), self.ignore_index)
        keys = np.array(sorted(table), dtype=np.int64)
        vals = np.array([table[k] for k in keys], dtype=np.int64)
        pos = np.clip(np.searchsorted(keys, codes), 0, len(keys) - 1)
        bad = keys[pos] != codes
        if bad.any():
            c = int(codes[bad][0])
            raise DataError(
                f"{source}: color {(c >> 16, (c >> 8) & 255, c & 255)} is not a class color in the class spec; "
                "add it to classes.json or fix the mask"
            )
        return vals[pos]

    def from_raw(self, raw: np.ndarray, source: str = "mask") -> np.ndarray:
        """Mask values -> class ids 0..K-1 through `raw_ids` (the ignore index stays); a value that is neither a
        class's raw id nor the ignore index raises DataError."""
        if self.raw_ids is None:
            return raw
        keys = np.asarray(self.raw_ids, dtype=np.int64)  # ascending: classes are sorted by raw id
        pos = np.clip(np.searchsorted(keys, raw), 0, len(keys) - 1)
        hit = keys[pos] == raw
        bad = ~hit & (raw != self.ignore_id)
        if bad.any():
            found = sorted(set(np.unique(raw[bad]).tolist()))[:5]
            raise DataError(
                f"{source}: mask values {found} are no class id of classes.json (ids {list(self.raw_ids)}, "
                f"ignore {self.ignore_index}); fix the mask or add the classes to classes.json"
            )
        return np.where(hit, pos, raw)

    def to_json(self) -> dict:
        void = [{"id": self.ignore_index, "name": "void", "color_rgb": list(self.ignore_color), "void": True}]
        return {
            "num_classes": self.num_classes,
            "ignore_index": self.ignore_index,
            "classes": [{"id": c.id, "name": c.name, "color_rgb": list(c.color)} for c in self.classes]
            + (void if self.ignore_index is not None else []),
            "conditions": {c: [s for s, cc in self.condition_of_sequence.items() if cc == c] for c in self.conditions},
        }

    def save(self, path: str | Path) -> None:
        atomic_write_text(Path(path), json.dumps(self.to_json(), indent=1))

    @classmethod
    def from_json(cls, data: dict, source: str = "classes.json") -> ClassSpec:
        try:
            entries = data["classes"]
            ignore = data.get("ignore_index", 255)
            ignore = None if ignore is None else int(ignore)  # null: no void class, every pixel is a class
            real = [e for e in entries if not e.get("void") and int(e["id"]) != ignore]
            void = [e for e in entries if e.get("void") or int(e["id"]) == ignore]
            classes = tuple(
                ClassInfo(int(e["id"]), str(e["name"]), tuple(int(v) for v in e.get("color_rgb", e.get("color"))))
                for e in sorted(real, key=lambda e: int(e["id"]))
            )
            _check_unique_ids(classes, source)
            raw_ids = tuple(c.id for c in classes)
            if raw_ids != tuple(range(len(classes))):  # ids such as 0, 7: mask values, trained as 0..K-1
                classes = tuple(ClassInfo(i, c.name, c.color) for i, c in enumerate(classes))
            else:
                raw_ids = None
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(
                f"{source}: malformed class spec ({exc!r}); expected "
                '{"classes": [{"id": 0, "name": ..., "color_rgb": [r, g, b]}], "ignore_index": N}'
            ) from exc
        ignore_color = tuple(int(v) for v in void[0].get("color_rgb", (0, 0, 0))) if void else (0, 0, 0)
        conds = data.get("conditions") or {}
        if isinstance(conds, list):
            conds = {c: [] for c in conds}
        seq = {s: c for c, seqs in conds.items() for s in seqs}
        return cls(classes, ignore, ignore_color, tuple(conds), seq, raw_ids)

    @classmethod
    def load(cls, path: str | Path) -> ClassSpec:
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: class spec not found; write a classes.json (see docs/data.md)")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: not valid JSON ({exc}); fix the file") from exc
        return cls.from_json(data, source=str(path))


@dataclass(frozen=True)
class ClassMap:
    """Harmonization: source class id -> target class id (or the target's ignore index), as a lookup table."""

    table: np.ndarray  # [256] int64, indexed by source id
    target: ClassSpec

    def __call__(self, label_map: np.ndarray) -> np.ndarray:
        mapped = self.table[np.clip(label_map, 0, len(self.table) - 1)]
        return np.where(label_map >= 0, mapped, self.target.ignore_id)  # NO_VOID (-100) stays ignored

    @classmethod
    def from_yaml(cls, path: str | Path, source: ClassSpec) -> ClassMap:
        """YAML: `mapping: {source id or name: target id or name or 'ignore'}`; optional `target:` classes.json
        path and `default: ignore|keep` for source classes not listed (default: ignore)."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise DataError(f"{path}: cannot read class map ({exc}); fix the YAML") from exc
        if not isinstance(data, dict) or not isinstance(data.get("mapping"), dict):
            raise DataError(f"{path}: a class map needs a 'mapping:' dict of source class -> target class")
        target = ClassSpec.load((path.parent / data["target"]).resolve()) if data.get("target") else source
        default = str(data.get("default", "ignore"))
        if default not in ("ignore", "keep"):
            raise DataError(f"{path}: default must be 'ignore' or 'keep', got {default!r}")
        size = max(256, source.num_classes, (source.ignore_index or 0) + 1)
        table = np.full(size, target.ignore_id, dtype=np.int64)
        if default == "keep":
            n = min(source.num_classes, target.num_classes)
            table[:n] = np.arange(n)
        for src, dst in data["mapping"].items():
            try:
                table[source.lookup(src)] = target.lookup(dst)
            except DataError as exc:
                raise DataError(f"{path}: {exc}") from exc
        if source.ignore_index is not None:
            table[source.ignore_index] = target.ignore_id
        return cls(table, target)


def _check_unique_ids(classes: tuple[ClassInfo, ...], source: str) -> None:
    seen: dict[int, str] = {}
    for c in classes:
        if c.id in seen:
            raise DataError(f"{source}: classes {seen[c.id]!r} and {c.name!r} share id {c.id}; give each its own id")
        seen[c.id] = c.name


def _pack(r, g, b):
    """RGB (ints or int64 arrays) -> one 24-bit color code."""
    return (r << 16) | (g << 8) | b
