"""Data we have never seen: no void class, class ids that are not 0..K-1, 16-bit masks, JPEG and grayscale images,
images of varying sizes within a split. Readers accept them and `check_dataset` reports them without crashing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from synthlabel.data.classes import NO_VOID, ClassSpec
from synthlabel.data.datasets import check_dataset, open_dataset
from synthlabel.errors import DataError
from synthlabel.eval.segmentation import confusion_matrix
from synthlabel.nn.labels import one_hot
from synthlabel.train.supervised import Segmentation


def label_pattern(size: tuple[int, int], index: int, values: tuple[int, ...]) -> np.ndarray:
    """[H, W] label map of 4x4 blocks cycling through `values`, shifted per image index."""
    yy, xx = np.mgrid[0 : size[0], 0 : size[1]]
    return np.asarray(values, dtype=np.int64)[(yy // 4 + xx // 4 + index) % len(values)]


def spec_json(ids: tuple[int, ...], ignore: int | None) -> dict:
    classes = [{"id": i, "name": f"c{i}", "color_rgb": [40 * n, 255 - 40 * n, 7]} for n, i in enumerate(ids)]
    return {"ignore_index": ignore, "classes": classes}


def write_set(
    root: Path,
    masks: list[np.ndarray],
    spec: dict,
    image_ext: str = ".png",
    image_mode: str = "RGB",
    mask_mode: str | None = None,
) -> Path:
    """Folders layout with split 'train': one image per mask, at the mask's size."""
    (root / "images" / "train").mkdir(parents=True)
    (root / "masks" / "train").mkdir(parents=True)
    (root / "classes.json").write_text(json.dumps(spec))
    for i, mask in enumerate(masks):
        h, w = mask.shape
        pixels = (np.arange(h * w * 3).reshape(h, w, 3) % 251).astype(np.uint8)
        Image.fromarray(pixels).convert(image_mode).save(root / "images" / "train" / f"im{i}{image_ext}")
        m = Image.fromarray(mask.astype(np.uint16 if mask_mode == "I;16" else np.uint8))
        m.save(root / "masks" / "train" / f"im{i}.png")
    return root


def test_a_spec_without_void_class_loads_and_round_trips(tmp_path):
    spec = ClassSpec.from_json(spec_json((0, 1), None))
    assert spec.ignore_index is None and spec.ignore_id == NO_VOID and spec.num_classes == 2
    assert spec.to_json()["ignore_index"] is None and len(spec.to_json()["classes"]) == 2
    spec.save(tmp_path / "classes.json")
    assert ClassSpec.load(tmp_path / "classes.json") == spec


def test_no_void_class_reads_every_pixel_and_rejects_255(tmp_path):
    masks = [label_pattern((8, 12), i, (0, 1)) for i in range(2)]
    root = write_set(tmp_path / "d", masks, spec_json((0, 1), None))
    ds = open_dataset(root, "train")
    assert np.array_equal(ds.read(0)[1], masks[0]) and check_dataset(root).ok
    bad = masks[1].copy()
    bad[0, 0] = 255  # no void class: 255 is no class
    Image.fromarray(bad.astype(np.uint8)).save(root / "masks" / "train" / "im1.png")
    with pytest.raises(DataError, match="im1.png: class ids \\[255\\]"):
        ds.read(1)
    assert any("im1.png" in p for p in check_dataset(root).problems)


def test_no_void_class_rgb_mask_rejects_the_ignore_color(tmp_path):
    spec = ClassSpec.from_json(spec_json((0, 1), None))
    rgb = np.array([[[0, 255, 7], [0, 0, 0]]], dtype=np.uint8)  # class 0, then black (no class, no void)
    with pytest.raises(DataError, match="not a class color"):
        spec.decode_colors(rgb)


def test_losses_and_metrics_take_no_ignore_index():
    labels = torch.tensor([[[0, 1], [1, NO_VOID]]])  # NO_VOID: padding of an augmentation
    logits = torch.randn(1, 2, 2, 2)
    assert Segmentation(None).count(labels) == 3.0
    assert torch.isfinite(Segmentation(None).loss(logits, labels))
    assert one_hot(labels, 2, None)[0, :, 1, 1].sum() == 0
    assert confusion_matrix(labels.clamp(min=0), labels, 2, None).sum() == 3


def test_non_contiguous_class_ids_are_mapped_through_classes_json(tmp_path):
    raw = label_pattern((8, 12), 0, (0, 7, 255))
    root = write_set(tmp_path / "d", [raw], spec_json((0, 7), 255))
    ds = open_dataset(root, "train")
    assert ds.spec.names == ["c0", "c7"] and ds.spec.raw_ids == (0, 7)
    assert np.array_equal(ds.read(0)[1], label_pattern((8, 12), 0, (0, 1, 255)))
    assert check_dataset(root).ok
    raw[0, 0] = 3  # a value that is no class id of classes.json
    Image.fromarray(raw.astype(np.uint8)).save(root / "masks" / "train" / "im0.png")
    with pytest.raises(DataError, match="im0.png: mask values \\[3\\]"):
        ds.read(0)


def test_16_bit_masks_with_large_ids(tmp_path):
    raw = label_pattern((8, 12), 0, (0, 1000, 65535))
    root = write_set(tmp_path / "d", [raw], spec_json((0, 1000), 65535), mask_mode="I;16")
    assert Image.open(root / "masks" / "train" / "im0.png").mode.startswith("I")
    ds = open_dataset(root, "train")
    assert np.array_equal(ds.read(0)[1], label_pattern((8, 12), 0, (0, 1, 65535)))
    assert np.array_equal(ds.read(0, size=(4, 6))[1], ds.read(0)[1][::2, ::2])
    assert check_dataset(root).ok


def test_jpeg_and_grayscale_images_become_rgb(tmp_path):
    masks = [label_pattern((8, 12), i, (0, 1)) for i in range(2)]
    for ext, mode in ((".jpg", "RGB"), (".png", "L"), (".jpeg", "L")):
        root = write_set(tmp_path / f"d{ext}{mode}", masks, spec_json((0, 1), None), image_ext=ext, image_mode=mode)
        data = open_dataset(root, "train").load((4, 6))
        assert tuple(data.images.shape) == (2, 3, 4, 6) and check_dataset(root).ok


def test_images_of_varying_sizes_load_at_the_working_size(tmp_path):
    masks = [label_pattern((8, 12), 0, (0, 1)), label_pattern((16, 10), 1, (0, 1))]
    root = write_set(tmp_path / "d", masks, spec_json((0, 1), None))
    ds = open_dataset(root, "train")
    assert tuple(ds.load((8, 8)).labels.shape) == (2, 8, 8)
    with pytest.raises(DataError, match="pass a working size"):
        ds.load()
    report = check_dataset(root)
    assert report.ok and report.counts["train"] == {"unknown": 2}


def test_class_map_names_non_contiguous_classes_by_their_classes_json_id(tmp_path):
    """Ids 0 and 7 in classes.json: a class map writes 7 (the id the user sees), maps it to ignore in a set without
    void, and check_dataset counts the ignored pixels instead of failing on them."""
    raw = label_pattern((8, 12), 0, (0, 7))
    root = write_set(tmp_path / "d", [raw], spec_json((0, 7), None))
    (tmp_path / "map.yaml").write_text("mapping: {0: 0, 7: ignore}\ndefault: keep\n")
    ds = open_dataset(root, "train", class_map=tmp_path / "map.yaml")
    assert np.array_equal(ds.read(0)[1], np.where(raw == 7, NO_VOID, 0))
    report = check_dataset(root, class_map=tmp_path / "map.yaml")
    assert report.ok and report.pixel_fraction["train"][2] == pytest.approx((raw == 7).mean())
    (tmp_path / "bad.yaml").write_text("mapping: {3: 0}\n")
    with pytest.raises(DataError, match="bad.yaml: class id 3 is not in classes.json \\(ids \\[0, 7\\]\\)"):
        open_dataset(root, "train", class_map=tmp_path / "bad.yaml")
