"""Generator selection: a deliberately broken generator (one constant image) is dropped, a good candidate is
kept, and the selected images come from the chosen candidate of every class."""

from __future__ import annotations

import torch

from synthlabel.cls.config import ClassifierConfig, SelectionConfig
from synthlabel.cls.data import ClassSet, concat
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
    scores = score_candidates(
        {"broken": broken_generator(make_blobs, blob_set, 1)}, blob_set, SELECTION, CLASSIFIER, seed=0
    )
    chosen = select(scores, SELECTION)
    assert chosen.choice == ["broken", None, "broken"] and chosen.dropped == [1]
    assert scores["broken"]["diversity"][1] == 0.0
    pool = assemble({"broken": broken_generator(make_blobs, blob_set, 1)}, chosen.choice)
    assert sorted(set(pool.labels.tolist())) == [0, 2] and len(pool) == 40


def test_selection_prefers_the_working_candidate_per_class(blob_set, make_blobs):
    candidates = {"a_broken": broken_generator(make_blobs, blob_set, 2), "b_good": good_generator(make_blobs, blob_set)}
    scores = score_candidates(candidates, blob_set, SELECTION, CLASSIFIER, seed=0)
    chosen = select(scores, SELECTION)
    assert chosen.choice[2] == "b_good" and not chosen.dropped
    pool = assemble(candidates, chosen.choice)
    assert torch.equal(pool.of_class(2).images, candidates["b_good"].of_class(2).images)
    assert len(pool) == len(concat([good_generator(make_blobs, blob_set)]))


def test_selection_thresholds():
    scores = {"s1": {"recall": [0.9, 0.4, 0.9], "diversity": [0.1, 1.0, 1.0]},
              "s2": {"recall": [0.6, 0.45, 0.9], "diversity": [0.5, 1.0, 1.2]}}  # fmt: skip
    chosen = select(scores, SelectionConfig(min_recall=0.5, min_diversity=0.3))
    assert chosen.choice == ["s2", None, "s2"]  # s1 class 0 too uniform; class 1 below recall; tie -> diversity
