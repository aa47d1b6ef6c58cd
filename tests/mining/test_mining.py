"""Targeted data gathering (issue 15): scores on hand-made probability maps, event windows on a hand-made
timeline, duplicates suppressed, Label Studio's brush RLE, `mine` end to end on frames and on a video, and
`import-labels` (including one clear error for a label the dataset does not know)."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from synthlabel.cli import main
from synthlabel.data.datasets import open_dataset
from synthlabel.errors import DataError
from synthlabel.mining import labelstudio as ls
from synthlabel.mining.frames import read_drive, read_events
from synthlabel.mining.scores import class_targeted, class_uncertainty, flicker, mean_entropy, mutual_information
from synthlabel.mining.select import event_windows, k_center, rank_frames, suppress_duplicates
from synthlabel.report.browser import chromium_path, render_check


def test_entropy_is_zero_for_certain_pixels_and_log_k_for_uniform_ones():
    probs = torch.zeros(2, 4, 2, 2)
    probs[0, 1] = 1.0  # frame 0: certain everywhere
    probs[1] = 0.25  # frame 1: uniform over 4 classes
    assert torch.allclose(mean_entropy(probs), torch.tensor([0.0, math.log(4)]), atol=1e-6)


def test_mutual_information_is_zero_when_passes_agree_and_log2_when_two_certain_passes_disagree():
    agree = torch.zeros(3, 1, 2, 1, 1)
    agree[:, :, 0] = 0.7
    agree[:, :, 1] = 0.3  # every pass says 0.7 / 0.3: uncertain, but no disagreement
    disagree = torch.zeros(2, 1, 2, 1, 1)
    disagree[0, :, 0] = 1.0
    disagree[1, :, 1] = 1.0  # each pass certain, of a different class
    assert mutual_information(agree).item() == pytest.approx(0.0, abs=1e-6)
    assert mutual_information(disagree).item() == pytest.approx(math.log(2), abs=1e-5)
    with pytest.raises(ValueError):
        mutual_information(agree[:1])


def test_flicker_and_class_targeted_on_hand_made_maps():
    labels = torch.tensor([[[0, 0], [0, 0]], [[0, 1], [0, 0]], [[0, 1], [0, 0]]])
    assert flicker(labels).tolist() == [0.25, 0.25, 0.0]
    probs = torch.zeros(2, 3, 1, 2)
    probs[0, 2] = 0.6  # class 2 predicted at 0.6 confidence
    probs[0, 0] = 0.4
    probs[1, 0] = 1.0  # class 2 never predicted
    score = class_targeted(probs, [2])
    assert score.tolist() == pytest.approx([0.4, 1.0])
    with_area = class_targeted(probs, [2], reference_area=[0.5, 0.0, 0.5])
    assert with_area.tolist() == pytest.approx([0.4 + 0.0, 1.0 + 1.0])  # frame 1: the whole expected area is gone


def test_class_uncertainty_ranks_an_unsure_rare_object_above_an_empty_frame_and_a_confident_one():
    probs = torch.zeros(3, 3, 1, 2)
    probs[0, 2], probs[0, 0] = 0.6, 0.4  # class 2 there, unsure: 0.6 x (1 - 0.6) per pixel
    probs[1, 0] = 1.0  # no class-2 probability anywhere: nothing to learn about class 2 here
    probs[2, 2] = 1.0  # class 2 predicted with certainty
    score = class_uncertainty(probs, [2])
    assert score.tolist() == pytest.approx([0.24, 0.0, 0.0])
    assert class_targeted(probs, [2]).argmax() == 1  # the "vanishing" score prefers the empty frame instead
    with pytest.raises(ValueError):
        class_uncertainty(probs, [])


def test_event_windows_on_a_hand_made_timeline():
    times = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    assert event_windows(times, [2.0, 0.4], before=1.0) == [[2, 3, 4], [0]]
    assert event_windows(times, [2.0], before=0.5, after=0.5) == [[3, 4, 5]]
    with pytest.raises(ValueError):
        event_windows(times, [1.0], before=-1)


def test_duplicates_are_suppressed_and_k_center_spreads():
    feats = torch.tensor([[0.0, 0.0], [0.01, 0.0], [5.0, 5.0], [5.0, 5.01], [10.0, 0.0]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.1])
    kept, dropped = suppress_duplicates([0, 1, 2, 3, 4], feats, threshold=0.05)
    assert kept == [0, 2, 4] and dropped == {1: 0, 3: 2}
    queue, _ = rank_frames(scores, feats, 2, duplicate_threshold=0.05)
    assert queue == [0, 2]
    assert k_center([0, 1, 2, 3, 4], feats, scores, 3)[0] == 0  # the best-scored frame first
    assert set(k_center([0, 1, 2, 3, 4], feats, scores, 3)) == {0, 2, 4}  # then the farthest scenes


def test_brush_rle_round_trips_and_keeps_label_studio_s_format():
    rng = np.random.default_rng(0)
    for _ in range(10):
        h, w = rng.integers(1, 40, 2)
        mask = rng.random((h, w)) < 0.3
        assert np.array_equal(ls.rle_to_mask(ls.mask_to_rle(mask), h, w), mask)
    # the header of Label Studio's encoder: 32-bit count, word size 8, run-length sizes 3, 4, 8, 16
    rle = ls.mask_to_rle(np.ones((2, 2), bool))
    bits = "".join(f"{b:08b}" for b in rle)
    assert int(bits[:32], 2) == 16 and int(bits[32:37], 2) == 7
    assert [int(bits[37 + 4 * i : 41 + 4 * i], 2) + 1 for i in range(4)] == [3, 4, 8, 16]
    assert (ls.decode_rle(rle) == 255).all()
    with pytest.raises(DataError, match="not 3x3"):
        ls.rle_to_mask(rle, 3, 3)


def test_import_of_an_unknown_label_is_one_clear_error(demo_root):
    spec = open_dataset(demo_root, "train").out_spec
    result = {"type": "brushlabels", "original_width": 2, "original_height": 2,
              "value": {"rle": ls.mask_to_rle(np.ones((2, 2), bool)), "brushlabels": ["Unicorn"]}}  # fmt: skip
    export = [{"id": 7, "data": {"frame": "a.png"}, "annotations": [{"id": 1, "result": [result]}]}]
    with pytest.raises(DataError, match=r"task 7 \(a.png\): label 'Unicorn' is not a class"):
        ls.masks_from_export(export, spec)


@pytest.fixture(scope="module")
def drive(demo_root, tmp_path_factory):
    """A 'drive': the demo test frames in a folder with frame numbers, an events CSV, a tiny segmenter."""
    root = tmp_path_factory.mktemp("drive")
    frames = root / "frames"
    frames.mkdir()
    test = open_dataset(demo_root, "test")
    rows = ["file,frame"]
    for n, record in enumerate(test.records):
        shutil.copy(record.image, frames / f"f{n:03d}.png")
        rows.append(f"f{n:03d}.png,{10 * n}")
    (frames / "meta.csv").write_text("\n".join(rows) + "\n")
    (root / "events.csv").write_text("frame,kind\n25,takeover\n")
    seg = root / "seg"
    overrides = [f"data.path={demo_root}", "data.size=[32, 48]", "model.width=8", "model.depth=3",
                 "model.dropout=0.3", "train.steps=3", "train.batch_size=2", "train.warmup_steps=1"]  # fmt: skip
    assert main(["train-seg", *overrides, "--out", str(seg)]) == 0
    return root, frames, seg / "model"


def test_mine_queues_frames_before_the_event_and_writes_tasks_and_a_review_page(drive, tmp_path):
    root, frames, seg = drive
    out = tmp_path / "mine"
    args = ["mine", str(frames), "--segmenter", str(seg), "--events", str(root / "events.csv"), "--before", "20",
            "--k", "2", "--score", "mc_dropout", "--duplicates", "0", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    summary = json.loads((out / "queue.json").read_text())
    assert summary["candidates"] == 2  # frames 10 and 20 lie in [25 - 20, 25]; 0 and 30 do not
    assert set(summary["queue"]) == {"f001.png", "f002.png"}
    tasks = json.loads((out / "tasks.json").read_text())
    assert [t["data"]["frame"] for t in tasks] == summary["queue"]
    first = tasks[0]["predictions"][0]["result"][0]
    assert first["type"] == "brushlabels" and first["original_width"] == 48
    assert (out / "queue" / summary["queue"][0]).is_file() and (out / "labeling_config.xml").is_file()
    assert "<BrushLabels" in (out / "labeling_config.xml").read_text()
    assert "Score over the drive" in (out / "review.html").read_text()
    lines = (out / "scores.csv").read_text().splitlines()
    assert lines[0].startswith("frame,time,event,entropy,mc_dropout,flicker") and len(lines) == 5
    if chromium_path() is not None:  # the review page in a real headless browser: the timeline and the grid
        check = render_check(out / "review.html")
        assert check.ok and check.images_total == 2 and check.images_loaded == 2, check


def test_import_labels_brings_the_queue_back_as_a_dataset(drive, tmp_path):
    root, frames, seg = drive
    out = tmp_path / "mine"
    assert main(["mine", str(frames), "--segmenter", str(seg), "--k", "2", "--out", str(out)]) == 0
    tasks = json.loads((out / "tasks.json").read_text())
    export, truth = [], {}
    for n, t in enumerate(tasks):  # a labeler accepts the pre-annotation, then paints class 1 over a corner
        result = t["predictions"][0]["result"]
        corner = np.zeros((32, 48), bool)
        corner[:5, :7] = True
        result = [*result, {"type": "brushlabels", "original_width": 48, "original_height": 32,
                            "value": {"rle": ls.mask_to_rle(corner), "brushlabels": ["building"]}}]  # fmt: skip
        export.append({"id": n, "data": t["data"], "annotations": [{"id": n, "result": result}]})
        truth[t["data"]["frame"]] = result
    (tmp_path / "export.json").write_text(json.dumps(export))
    assert main(["import-labels", str(tmp_path / "export.json"), "--queue", str(out), "--out",
                 str(tmp_path / "labeled")]) == 0  # fmt: skip
    ds = open_dataset(tmp_path / "labeled", "train")
    assert sorted(r.image.name for r in ds.records) == sorted(truth)
    spec = ds.out_spec
    for i, record in enumerate(ds.records):
        label = ds.read_label(i)
        assert (label[:5, :7] == spec.id_of("building")).all()
        painted = np.zeros((32, 48), bool)
        for r in truth[record.image.name]:
            painted |= ls.rle_to_mask(r["value"]["rle"], 32, 48)
        assert ((label != spec.ignore_id) == painted).all()


def test_mine_reads_a_video_at_a_chosen_rate(drive, tmp_path):
    import av

    root, frames, seg = drive
    video = tmp_path / "drive.mp4"
    with av.open(str(video), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
        for path in sorted(frames.glob("*.png")) * 3:
            frame = av.VideoFrame.from_ndarray(np.array(Image.open(path).convert("RGB")), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    d = read_drive(video, (32, 48), rate=5.0)
    assert len(d.names) == 6 and d.unit == "s" and d.times[1] == pytest.approx(0.2, abs=0.01)
    (tmp_path / "ev.csv").write_text("time\n0.4\n")
    assert [e.time for e in read_events(tmp_path / "ev.csv", d)] == [0.4]
    out = tmp_path / "mine"
    assert main(["mine", str(video), "--segmenter", str(seg), "--rate", "5", "--events", str(tmp_path / "ev.csv"),
                 "--before", "0.25", "--k", "5", "--out", str(out)]) == 0  # fmt: skip
    assert json.loads((out / "queue.json").read_text())["candidates"] == 2  # t = 0.2 and 0.4
