"""Generator selection: a deliberately broken generator (one constant image) is dropped, a good candidate is
kept, and the selected images come from the chosen candidate of every class."""

from __future__ import annotations

import torch

from synthlabel.cls.config import ClassifierConfig, SelectionConfig
from synthlabel.cls.data import ClassSet
from synthlabel.cls.select import assemble, diversity_ratio, score_candidates, select

CLASSIFIER = ClassifierConfig(width=4, dropout=0.0, lr=1e-2, precision="fp32")
SELECTION = SelectionConfig(tstr_steps=40, tstr_batch_size=16, min_recall=0.5, min_diversity=0.3)


def good_generator(make_blobs, real: ClassSet) -> ClassSet:
    """Stands in for a working generator: other draws of the same blob classes."""
    return make_blobs(per_class=20, num_classes=real.num_classes, seed=7)


def broken_generator(make_blobs, real: ClassSet, broken_class: int) -> ClassSet:
    """Like the good one, but class `broken_class` is one constant gray image repeated."""
    pool = good_generator(make_blobs, real)
    images = pool.images.clone()
    images[pool.labels == broken_class] = 128
    return ClassSet(images, pool.labels.clone(), list(pool.class_names))


def test_diversity_of_a_constant_image_is_zero(blob_set, make_blobs):
    ratio = diversity_ratio(broken_generator(make_blobs, blob_set, 1), blob_set)
    assert ratio[1] == 0.0 and ratio[0] > 0.5 and ratio[2] > 0.5


def test_selection_drops_a_broken_generator(blob_set, make_blobs):
    broken = {"broken": broken_generator(make_blobs, blob_set, 1)}
    scores = score_candidates(broken, blob_set, SELECTION, CLASSIFIER, seed=0)
    chosen = select(scores, SELECTION)
    assert chosen.choice == ["broken", None, "broken"] and chosen.dropped == [1]
    assert scores["broken"]["diversity"][1] == 0.0
    alone = assemble(broken, chosen.choice)
    assert sorted(set(alone.labels.tolist())) == [0, 2] and len(alone) == 40
    # with the real images, the dropped class falls back to them, as many as the kept classes have
    pool = assemble(broken, chosen.choice, blob_set)
    assert pool.counts() == [20, 20, 20]
    real_1 = {tuple(x.flatten().tolist()) for x in blob_set.of_class(1).images}
    assert all(tuple(x.flatten().tolist()) in real_1 for x in pool.of_class(1).images)


def test_selection_prefers_the_working_candidate(blob_set, make_blobs):
    candidates = {"b_broken": broken_generator(make_blobs, blob_set, 2), "a_good": good_generator(make_blobs, blob_set)}
    scores = score_candidates(candidates, blob_set, SELECTION, CLASSIFIER, seed=0)
    chosen = select(scores, SELECTION)
    assert chosen.choice == ["a_good"] * 3 and not chosen.dropped
    pool = assemble(candidates, chosen.choice, blob_set)
    assert torch.equal(pool.images, candidates["a_good"].images)


def test_selection_thresholds_per_family_and_per_class():
    scores = {"s1": {"recall": [0.9, 0.4, 0.9], "diversity": [0.1, 1.0, 1.0]},
              "s2": {"recall": [0.6, 0.45, 0.9], "diversity": [0.5, 1.0, 1.2]}}  # fmt: skip
    cfg = SelectionConfig(min_recall=0.5, min_diversity=0.3)
    # one snapshot for all classes, the best mean recall (s1); its class 0 is too uniform, class 1 too unrecognized
    assert select(scores, cfg).choice == [None, None, "s1"]
    scores["s1"]["recall"] = [0.5, 0.3, 0.95]  # now s2 has the better mean
    assert select(scores, cfg).choice == ["s2", None, "s2"]
    per_class = select(scores, cfg.model_copy(update={"per_class": True}))
    assert per_class.choice == ["s2", None, "s1"]  # class by class: s1 is best for class 2
