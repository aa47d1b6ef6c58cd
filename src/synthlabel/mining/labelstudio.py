"""The labeling queue in Label Studio's terms and back: the labeling config for a class spec, tasks with the
model's prediction as brush pre-annotations, and masks from an export (`synthlabel import-labels`).

Brush masks travel in Label Studio's RLE (thi-ng's rle-pack over the RGBA bytes of the mask image). The codec is
written here, by hand, on purpose: the well-kept implementation lives in `label-studio-sdk`, whose install pulls
opencv, nltk, pandas, lxml and some twenty other packages into a training toolkit that needs none of them for
60 lines of bit packing; the round-trip test runs against a real Label Studio server to keep this honest."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

from synthlabel.data.classes import ClassSpec
from synthlabel.errors import DataError

RLE_SIZES = (3, 4, 8, 16)  # bits of a run's length, by the 2-bit size index (Label Studio's encoder's choice)
WORD = 8  # bits per value (RGBA bytes)
FROM_NAME, TO_NAME = "label", "image"


def _runs(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(run values, run lengths) of a 1-D array."""
    if len(values) == 0:
        return values, np.zeros(0, np.int64)
    change = np.flatnonzero(values[1:] != values[:-1]) + 1
    starts = np.concatenate([[0], change])
    lengths = np.diff(np.concatenate([starts, [len(values)]]))
    return values[starts], lengths


def encode_rle(values: np.ndarray) -> list[int]:
    """Bytes (as ints) of rle-pack: header (count: 32 bits, word size - 1: 5 bits, each run-length size - 1: 4
    bits), then per run a repeat flag (1 bit), a size index (2 bits), length - 1 in that many bits, and the value
    (a single value is a literal run of length 1). Runs longer than 2**16 are split."""
    values = np.asarray(values).astype(np.int64).ravel()
    if values.size and (values.min() < 0 or values.max() >= 2**WORD):
        raise ValueError(f"rle values must be in 0..{2**WORD - 1}")
    vals, lengths = _runs(values)
    cap = 2 ** RLE_SIZES[-1]
    reps = -(-lengths // cap)  # split long runs
    vals = np.repeat(vals, reps)
    lengths = np.concatenate([[cap] * (r - 1) + [n - cap * (r - 1)] for n, r in zip(lengths, reps, strict=True)])
    lengths = lengths.astype(np.int64)
    index = np.searchsorted(np.array([2**s for s in RLE_SIZES]), lengths)  # smallest size that holds length - 1
    size = np.array(RLE_SIZES)[index]
    repeat = (lengths > 1).astype(np.int64)
    # fields per run: flag (1), index (2), length - 1 (size), value (WORD)
    fields = np.stack([repeat, index, lengths - 1, vals], axis=1).ravel()
    widths = np.stack([np.ones_like(size), np.full_like(size, 2), size, np.full_like(size, WORD)], axis=1).ravel()
    header_vals = [len(values), WORD - 1, *(s - 1 for s in RLE_SIZES)]
    header_widths = [32, 5, 4, 4, 4, 4]
    fields = np.concatenate([np.array(header_vals, np.int64), fields])
    widths = np.concatenate([np.array(header_widths, np.int64), widths])
    return list(np.packbits(_bits(fields, widths)).tolist())


def _bits(fields: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """The big-endian bits of each field at its width, concatenated (uint8 0/1)."""
    starts = np.concatenate([[0], np.cumsum(widths)[:-1]])
    out = np.zeros(int(widths.sum()), np.uint8)
    for w in np.unique(widths):
        sel = widths == w
        shifts = np.arange(w - 1, -1, -1)
        bits = (fields[sel][:, None] >> shifts) & 1
        out[(starts[sel][:, None] + np.arange(w)).ravel()] = bits.ravel()
    return out


def decode_rle(rle: Sequence[int]) -> np.ndarray:
    """The values (uint8) of an rle-pack byte list (any run-length sizes and word size up to 8)."""
    bits = np.unpackbits(np.asarray(rle, dtype=np.uint8))
    pos = 0

    def read(n: int) -> int:
        nonlocal pos
        chunk = bits[pos : pos + n]
        pos += n
        return int(chunk.dot(1 << np.arange(n - 1, -1, -1))) if n else 0

    num, word = read(32), read(5) + 1
    sizes = [read(4) + 1 for _ in range(4)]
    if word > 8:
        raise DataError(f"brush RLE with {word}-bit words is not an 8-bit mask")
    out = np.zeros(num, np.uint8)
    i = 0
    while i < num:
        repeat = read(1)
        j = i + 1 + read(sizes[read(2)])
        if j > num:
            raise DataError("brush RLE is corrupt: a run goes past the end of the mask")
        if repeat:
            out[i:j] = read(word)
        else:
            for k in range(i, j):
                out[k] = read(word)
        i = j
    return out


def mask_to_rle(mask: np.ndarray) -> list[int]:
    """A boolean mask [H, W] -> Label Studio brush RLE (RGBA, 255 where set)."""
    return encode_rle(np.repeat(np.asarray(mask, bool).ravel().astype(np.uint8) * 255, 4))


def rle_to_mask(rle: Sequence[int], height: int, width: int) -> np.ndarray:
    """Label Studio brush RLE -> boolean mask [H, W] (painted where the alpha channel is set)."""
    values = decode_rle(rle)
    if values.size != height * width * 4:
        raise DataError(f"brush RLE holds {values.size} values, not {height}x{width} RGBA pixels")
    return values.reshape(height, width, 4)[:, :, 3] > 0


def labeling_config(spec: ClassSpec) -> str:
    """Label Studio's labeling config: the image and one brush label per class, in the class colours."""
    labels = "\n".join(
        f'    <Label value="{escape(c.name, {chr(34): "&quot;"})}" background="#{bytes(c.color).hex()}"/>'
        for c in spec.classes
    )
    image = f'  <Image name="{TO_NAME}" value="$image" zoom="true"/>'
    return (
        f'<View>\n{image}\n  <BrushLabels name="{FROM_NAME}" toName="{TO_NAME}">\n{labels}\n  </BrushLabels>\n</View>\n'
    )


def prediction(label_map: np.ndarray, spec: ClassSpec, model_version: str, score: float | None = None) -> dict:
    """A Label Studio prediction: one brush result per class present in `label_map` [H, W] of class indices
    (0..K-1, as a segmenter predicts; ignore pixels left unpainted)."""
    h, w = label_map.shape
    results = []
    for k, c in enumerate(spec.classes):
        mask = label_map == k
        if mask.any():
            results.append({
                "id": f"{c.id}", "type": "brushlabels", "from_name": FROM_NAME, "to_name": TO_NAME,
                "original_width": int(w), "original_height": int(h), "image_rotation": 0,
                "value": {"format": "rle", "rle": mask_to_rle(mask), "brushlabels": [c.name]},
            })  # fmt: skip
    out = {"model_version": model_version, "result": results}
    return out | ({"score": float(score)} if score is not None else {})


def task(image_url: str, frame: str, prediction_: dict | None = None, extra: dict | None = None) -> dict:
    """One task: the image URL, our frame name (to bring the labels back), and the pre-annotation."""
    data = {"image": image_url, "frame": frame, **(extra or {})}
    return {"data": data, **({"predictions": [prediction_]} if prediction_ else {})}


def masks_from_export(export: list[dict], spec: ClassSpec) -> dict[str, np.ndarray]:
    """{frame name: label map [H, W] uint8 (ignore where nothing is painted)} from a Label Studio JSON export.

    Each task's newest annotation that was not cancelled is used; brush results paint their class in order
    (a later stroke wins). A label name the class spec does not know is one DataError naming it and the task."""
    names = {c.name: c.id for c in spec.classes}
    if spec.ignore_index is None:
        raise DataError("importing labels needs an ignore value for unpainted pixels; add ignore_index to classes.json")
    out: dict[str, np.ndarray] = {}
    for item in export:
        frame = item.get("data", {}).get("frame")
        if frame is None:
            raise DataError(f"task {item.get('id')}: no 'frame' in its data; export the tasks synthlabel mine wrote")
        annotations = [a for a in item.get("annotations", []) if not a.get("was_cancelled")]
        if not annotations:
            continue
        latest = max(annotations, key=lambda a: (a.get("updated_at") or a.get("created_at") or "", a.get("id", 0)))
        label_map = None
        for result in latest.get("result", []):
            if result.get("type") != "brushlabels":
                continue
            value = result["value"]
            h, w = int(result["original_height"]), int(result["original_width"])
            if label_map is None:
                label_map = np.full((h, w), spec.ignore_index, np.uint8)
            for name in value.get("brushlabels", []):
                if name not in names:
                    raise DataError(
                        f"task {item.get('id')} ({frame}): label {name!r} is not a class of this dataset "
                        f"({', '.join(names)}); rename it in Label Studio or add it to classes.json"
                    )
                label_map[rle_to_mask(value["rle"], h, w)] = names[name]
        if label_map is not None:
            out[frame] = label_map
    return out


def read_export(path: str | Path) -> list[dict]:
    """A Label Studio JSON export (a list of tasks), with a clear error for anything else."""
    try:
        export = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a readable Label Studio JSON export ({exc})") from exc
    if not isinstance(export, list):
        raise DataError(f"{path}: a Label Studio JSON export is a list of tasks; export with the 'JSON' format")
    return export
