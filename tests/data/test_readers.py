"""Readers for CamVid, Cityscapes and paired-folder datasets on generated fixtures (plus one real CamVid slice)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from synthlabel.data.datasets import check_dataset, detect_format, list_splits, open_dataset
from synthlabel.errors import DataError

CAMVID_REAL = Path(__file__).resolve().parents[2].parent / "shared/data/camvid"


def _check_sample(ds, index: int, expected_label: np.ndarray, expected_image: np.ndarray) -> None:
    sample = ds[index]
    h, w = expected_label.shape
    assert sample.image.shape == (3, h, w) and sample.image.dtype == torch.float32
    assert sample.image.min() >= -1.0 and sample.image.max() <= 1.0
    assert sample.label.shape == (h, w) and sample.label.dtype == torch.int64
    np.testing.assert_array_equal(sample.label.numpy(), expected_label)
    expected = torch.from_numpy(expected_image).permute(2, 0, 1).float() / 127.5 - 1.0
    torch.testing.assert_close(sample.image, expected)


def test_camvid_reader_loads_ids_and_images(camvid_root, fake_data):
    ds = open_dataset(camvid_root, "train")
    assert ds.layout == "camvid" and len(ds) == 4 and ds.spec.ignore_index == fake_data.CAMVID_VOID
    assert ds.spec.names == list(fake_data.CLASS_NAMES)
    for i in range(len(ds)):
        label = fake_data.label_pattern((12, 16), i)
        _check_sample(ds, i, label, fake_data.color_image(label))
    assert set(np.unique(ds[0].label.numpy())) == {0, 1, 2, 3}
    image, label = ds.read(0)
    assert image.shape == (12, 16, 3) and image.dtype == np.uint8 and label.dtype == np.int64
    image[0, 0] = 0  # callers get arrays they own


def test_camvid_meta_csv_joins_condition_sequence_frame(camvid_root):
    ds = open_dataset(camvid_root, "val")
    metas = [ds[i].meta for i in range(len(ds))]
    assert [m["condition"] for m in metas] == ["day", "day", "dusk", "dusk"]
    assert [m["sequence"] for m in metas] == ["seqA", "seqA", "seqB", "seqB"]
    assert metas[3] == {
        "file": "seqB_000003.png",
        "split": "val",
        "sequence": "seqB",
        "condition": "dusk",
        "frame": "000003",
    }


def test_camvid_meta_csv_overrides_sequence_conditions(camvid_root, fake_data):
    # meta.csv wins over classes.json's sequence -> condition; without a CSV the sequence decides.
    rows = [
        {
            "split": "train",
            "file": fake_data.camvid_name(i, 4),
            "sequence": "seqA",
            "condition": "dusk",
            "frame": str(i),
        }
        for i in range(4)
    ]
    fake_data.write_meta_csv(camvid_root / "meta.csv", rows)
    assert [m["condition"] for m in open_dataset(camvid_root, "train").load().meta] == ["dusk"] * 4
    no_csv = open_dataset(camvid_root, "train", meta_csv=None)
    assert [r.meta["condition"] for r in no_csv.records] == ["day", "day", "dusk", "dusk"]
    assert no_csv.records[3].meta == {
        "file": "seqB_000003.png",
        "split": "train",
        "sequence": "seqB",
        "frame": "000003",
        "condition": "dusk",
    }  # from the file name and classes.json


def test_cityscapes_label_ids_become_train_ids(cityscapes_root, fake_data):
    ds = open_dataset(cityscapes_root, "train")
    assert ds.layout == "cityscapes" and len(ds) == 2 and ds.spec.num_classes == 19
    for i in range(len(ds)):
        raw = fake_data.label_pattern((12, 16), i, fake_data.CITYSCAPES_RAW)
        expected = fake_data.label_pattern((12, 16), i, fake_data.CITYSCAPES_TRAIN)
        _check_sample(ds, i, expected, fake_data.color_image(fake_data.label_pattern((12, 16), i)))
        label = ds[i].label.numpy()
        assert (label[raw == 7] == 0).all() and (label[raw == 26] == 13).all() and (label[raw == 0] == 255).all()
    assert ds.spec.names[13] == "car" and ds.spec.names[0] == "road"
    assert ds[0].meta["sequence"] == "testcity_000000" and ds[0].meta["frame"] == "000019"


def test_folders_reader_pairs_by_stem(folders_root, fake_data):
    ds = open_dataset(folders_root, "all")
    assert ds.layout == "folders" and ds.split == "all" and len(ds) == 3
    assert [r.image.suffix for r in ds.records] == [".bmp"] * 3
    for i in range(len(ds)):
        label = fake_data.label_pattern((12, 16), i, (0, 1, 2, 255))
        _check_sample(ds, i, label, fake_data.color_image(fake_data.label_pattern((12, 16), i)))


def test_folders_with_split_subfolders(folders_split_root):
    assert list_splits(folders_split_root) == ["train", "val"]
    assert len(open_dataset(folders_split_root, "val")) == 3
    with pytest.raises(DataError, match="no split 'all'"):
        open_dataset(folders_split_root, "all")


def test_palette_masks_decode_through_class_colors(palette_root, fake_data):
    ds = open_dataset(palette_root, "all")
    assert Image.open(ds.records[0].mask).mode == "RGB"
    for i in range(len(ds)):
        label = fake_data.label_pattern((12, 16), i, (0, 1, 2, 255))  # black = void color -> ignore 255
        _check_sample(ds, i, label, fake_data.color_image(fake_data.label_pattern((12, 16), i)))


def test_detect_format_and_list_splits(camvid_root, cityscapes_root, folders_root, folders_split_root, tmp_path):
    assert detect_format(camvid_root) == "camvid"
    assert detect_format(cityscapes_root) == "cityscapes"
    assert detect_format(folders_root) == "folders"
    assert list_splits(camvid_root) == ["train", "val"]
    assert list_splits(cityscapes_root) == ["train", "val"]
    assert list_splits(folders_root) == ["all"]
    (camvid_root / "test").mkdir()  # an image folder without an annot folder is not a split
    assert list_splits(camvid_root) == ["train", "val"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="unknown dataset layout"):
        detect_format(tmp_path / "empty")


def test_load_native_size_stacks_uint8(camvid_root):
    data = open_dataset(camvid_root, "train").load()
    assert data.images.shape == (4, 3, 12, 16) and data.images.dtype == torch.uint8
    assert data.labels.shape == (4, 12, 16) and data.labels.dtype == torch.int64
    assert len(data) == 4 and [m["condition"] for m in data.meta] == ["day", "day", "dusk", "dusk"]


@pytest.mark.parametrize("size", [(6, 8), (24, 32), (10, 14)])
def test_load_resizes_image_bilinear_and_mask_nearest(camvid_root, size):
    ds = open_dataset(camvid_root, "train")
    data = ds.load(size)
    h, w = size
    assert data.images.shape == (4, 3, h, w) and data.labels.shape == (4, h, w)
    for i, rec in enumerate(ds.records):
        img = Image.open(rec.image).convert("RGB").resize((w, h), Image.BILINEAR, reducing_gap=None)
        np.testing.assert_array_equal(data.images[i].permute(1, 2, 0).numpy(), np.asarray(img))
        mask = np.asarray(Image.open(rec.mask).resize((w, h), Image.NEAREST), dtype=np.int64)
        np.testing.assert_array_equal(data.labels[i].numpy(), mask)
        assert set(np.unique(data.labels[i].numpy())) <= {0, 1, 2, 3}
    if h > 12:  # upsampling blends block edges: bilinear, not nearest, on the image
        colors = {tuple(c) for c in data.images.permute(0, 2, 3, 1).reshape(-1, 3).tolist()}
        assert len(colors) > 4


def test_load_rejects_mixed_sizes_without_working_size(tmp_path, fake_data):
    root = fake_data.camvid(tmp_path / "a", n=2)
    fake_data.camvid(tmp_path / "b", n=2, size=(8, 8), splits=("train",), meta=False)
    for sub in ("train", "trainannot"):  # one more image of another size
        (tmp_path / "b" / sub / "seqA_000000.png").rename(root / sub / "seqA_000009.png")
    ds = open_dataset(root, "train")
    with pytest.raises(DataError, match="pass a working size"):
        ds.load()
    assert ds.load((8, 8)).images.shape == (3, 3, 8, 8)


def _write_target(path: Path) -> None:
    spec = {
        "ignore_index": 255,
        "classes": [
            {"id": 0, "name": "road", "color_rgb": [128, 64, 128]},
            {"id": 1, "name": "vehicle", "color_rgb": [0, 0, 142]},
        ],
    }
    path.write_text(json.dumps(spec))


def test_class_map_by_name_id_and_ignore_into_target_spec(camvid_root, fake_data):
    _write_target(camvid_root.parent / "target.json")
    cmap = camvid_root.parent / "to_target.yaml"
    cmap.write_text("target: target.json\nmapping:\n  sky: ignore\n  road: road\n  2: vehicle\n")
    ds = open_dataset(camvid_root, "train", class_map=cmap)
    assert ds.out_spec.names == ["road", "vehicle"] and ds.out_spec.ignore_index == 255
    assert ds.spec.names == list(fake_data.CLASS_NAMES)  # the source spec is kept
    for i in range(len(ds)):
        src = fake_data.label_pattern((12, 16), i)
        expected = np.array([255, 0, 1, 255])[src]  # sky -> ignore, road -> 0, car -> 1, void -> 255
        np.testing.assert_array_equal(ds[i].label.numpy(), expected)
    np.testing.assert_array_equal(ds.load((6, 8)).labels.unique().numpy(), [0, 1, 255])


def test_class_map_in_same_spec_with_default_keep(camvid_root, fake_data):
    cmap = camvid_root.parent / "merge.yaml"
    cmap.write_text("default: keep\nmapping:\n  car: 1\n")
    ds = open_dataset(camvid_root, "train", class_map=cmap)
    assert ds.out_spec == ds.spec
    src = fake_data.label_pattern((12, 16), 0)
    np.testing.assert_array_equal(ds[0].label.numpy(), np.array([0, 1, 1, 3])[src])
    report = check_dataset(camvid_root, class_map=cmap)
    assert report.ok and report.pixel_fraction["train"][2] == 0.0


def _expected_fractions(labels: list[np.ndarray], k: int) -> list[float]:
    counts = sum(np.bincount(np.where(lab < k, lab, k).ravel(), minlength=k + 1) for lab in labels)
    return (counts / counts.sum()).tolist()


def test_check_dataset_on_clean_camvid(camvid_root, fake_data):
    before = fake_data.listing(camvid_root)
    report = check_dataset(camvid_root)
    assert report.ok and report.problems == [] and report.layout == "camvid"
    assert report.counts == {"train": {"day": 2, "dusk": 2}, "val": {"day": 2, "dusk": 2}}
    labels = [fake_data.label_pattern((12, 16), i) for i in range(4)]
    for split in ("train", "val"):
        assert len(report.pixel_fraction[split]) == 4
        assert sum(report.pixel_fraction[split]) == pytest.approx(1.0)
        assert report.pixel_fraction[split] == pytest.approx(_expected_fractions(labels, 3))
    assert fake_data.listing(camvid_root) == before


def test_check_dataset_on_clean_cityscapes_and_folders(cityscapes_root, folders_root, palette_root, fake_data):
    report = check_dataset(cityscapes_root)
    assert report.ok, report.problems
    assert report.counts == {"train": {"unknown": 2}, "val": {"unknown": 2}}
    train = [fake_data.label_pattern((12, 16), i, fake_data.CITYSCAPES_TRAIN) for i in range(2)]
    assert report.pixel_fraction["train"] == pytest.approx(_expected_fractions(train, 19))
    for root in (folders_root, palette_root):
        report = check_dataset(root)
        assert report.ok, report.problems
        assert report.counts == {"all": {"unknown": 3}}
        assert sum(report.pixel_fraction["all"]) == pytest.approx(1.0)


@pytest.mark.skipif(not CAMVID_REAL.is_dir(), reason="real CamVid slice not present")
def test_real_camvid_slice():
    ds = open_dataset(CAMVID_REAL, "train")
    assert len(ds) > 2 and ds.spec.num_classes == 11 and ds.spec.ignore_index == 11
    ds = ds.subset([0, len(ds) - 1])
    data = ds.load((96, 128))
    assert data.images.shape == (2, 3, 96, 128) and data.images.dtype == torch.uint8
    assert data.labels.min() >= 0 and data.labels.max() <= 11
    assert {m["condition"] for m in data.meta} <= {"day", "dusk"}
    assert all(m["condition"] for m in data.meta)
