"""Recomposition targets as class pixel shares: 'each of these classes at least X% of pixels', or an extra share
split by 1 - IoU of the current downstream model (from `synthlabel analyze` or a metrics JSON)."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from synthlabel.data.classes import ClassSpec
from synthlabel.errors import ConfigError, DataError

_KEYS = ("min_fraction", "iou", "iou_file", "total_boost")


@dataclass(frozen=True)
class Targets:
    """Minimum pixel share per class, plus `total_boost` extra share split over classes by `boost_weights`.

    Shares are of labeled (non-ignore) pixels over the whole recomposed set; `resolve` turns them into one
    target share per class given the shares of the original maps.
    """

    minimum: dict[int, float] = field(default_factory=dict)
    boost_weights: dict[int, float] = field(default_factory=dict)
    total_boost: float = 0.0

    @classmethod
    def min_fraction(cls, fractions: Mapping[int | str, float | str], spec: ClassSpec | None = None) -> Targets:
        """Each listed class (id, or name when `spec` is given) at least this share of pixels (0.03 or '3%')."""
        minimum = {}
        for key, value in fractions.items():
            cid = spec.lookup(key) if spec is not None else int(key)
            minimum[cid] = _share(value, f"min_fraction of {key!r}")
        return cls(minimum=minimum)

    @classmethod
    def from_iou(cls, per_class_iou: Mapping[str, float | None], spec: ClassSpec, total_boost: float | str) -> Targets:
        """Extra pixel share `total_boost` split over classes in proportion to 1 - IoU. Classes without an IoU (None)
        get nothing; `recompose` further keeps only the classes the bank can insert, renormalising the weights."""
        ious = {spec.id_of(name): iou for name, iou in per_class_iou.items()}
        weights = {c: 1.0 - float(iou) for c, iou in ious.items() if iou is not None and 1.0 - float(iou) > 0}
        return cls(boost_weights=weights, total_boost=_share(total_boost, "total_boost"))

    @classmethod
    def from_dict(
        cls, data: Mapping, spec: ClassSpec, base_dir: Path | None = None, source: str = "targets"
    ) -> Targets:
        """Targets from `{min_fraction: {class: share}, iou: {class: IoU} | iou_file: path, total_boost: share}`."""
        unknown = sorted(set(data) - set(_KEYS))
        if unknown:
            raise ConfigError(f"{source}: unknown target keys {unknown}; use {', '.join(_KEYS)}")
        try:
            out = cls.min_fraction(data.get("min_fraction") or {}, spec)
            iou = data.get("iou")
            if data.get("iou_file"):
                iou = read_iou(Path(base_dir or ".") / data["iou_file"])
            if iou is not None:
                boost = cls.from_iou(iou, spec, data.get("total_boost", 0.1))
                out = cls(out.minimum, boost.boost_weights, boost.total_boost)
        except (DataError, ConfigError) as exc:
            raise ConfigError(f"{source}: {exc}") from exc
        if not out.minimum and not out.boost_weights:
            raise ConfigError(f"{source}: no targets; give min_fraction and/or iou (or iou_file) with total_boost")
        return out

    @classmethod
    def from_yaml(cls, path: str | Path, spec: ClassSpec) -> Targets:
        """Targets from a YAML file with the keys of `from_dict`; `iou_file` is relative to the YAML's folder."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: cannot read targets ({exc}); fix the path or the YAML") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: targets must be a mapping of {', '.join(_KEYS)}")
        return cls.from_dict(data, spec, base_dir=path.parent, source=str(path))

    def resolve(self, base: np.ndarray, insertable: Collection[int], spec: ClassSpec) -> dict[int, float]:
        """Target share per class: max(minimum, base share + its part of the boost) over `insertable` classes.

        base: [K] pixel shares of the original maps. A minimum on a class the bank cannot insert raises DataError.
        """
        missing = sorted(set(self.minimum) - set(insertable))
        if missing:
            raise DataError(
                f"classes {[spec.names[c] for c in missing]} have no insertable segments in the class bank "
                "(not indexed, never found, or ground); rebuild the bank with them or drop their targets"
            )
        goal = dict(self.minimum)
        weights = {c: w for c, w in self.boost_weights.items() if c in insertable}
        total = sum(weights.values())
        for c, w in weights.items():
            goal[c] = max(goal.get(c, 0.0), float(base[c]) + self.total_boost * w / total)
        if sum(goal.values()) >= 1.0:
            raise ConfigError(f"targets add up to {sum(goal.values()):.0%} of all pixels; lower them")
        return dict(sorted(goal.items()))


def read_iou(path: Path) -> dict[str, float | None]:
    """Per-class IoU from a metrics JSON (`per_class_iou`) or an `analysis.json` of `synthlabel analyze`."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read IoUs ({exc}); point iou_file to a metrics or analysis JSON") from exc
    if isinstance(data.get("per_class_iou"), dict):
        return data["per_class_iou"]
    if isinstance(data.get("rows"), list):
        return {r["class"]: r.get("iou") for r in data["rows"]}
    raise ConfigError(f"{path}: no 'per_class_iou' or 'rows'; point iou_file to a metrics or analysis JSON")


def _share(value: float | str, what: str) -> float:
    """A share in [0, 1) from 0.03 or '3%'."""
    try:
        share = float(value[:-1]) / 100 if isinstance(value, str) and value.endswith("%") else float(value)
    except ValueError as exc:
        raise ConfigError(f"{what}: {value!r} is not a number or a percentage") from exc
    if not 0.0 <= share < 1.0:
        raise ConfigError(f"{what}: {value!r} is not a share in [0, 1) (e.g. 0.03 or '3%')")
    return share
