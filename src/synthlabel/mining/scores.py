"""Per-frame scores of how likely the user's segmenter is wrong on a frame, from its own outputs (no labels): mean
predictive entropy, MC-dropout mutual information (BALD), disagreement of an ensemble, temporal flicker between
consecutive frames, a class-targeted score (low confidence on, or a vanishing area of, chosen classes: a pedestrian
lost before an intervention) and a class-uncertainty score (the model is unsure and the chosen classes may be there:
for picking frames from a pool of independent images, where "vanishing" mostly means "absent").
Higher is "more worth labeling" for every score. Also the segmenter's pooled bottleneck features, for diversity.

The maps work on softmax probabilities [N, K, H, W] (or [T, N, K, H, W] for T stochastic passes / members)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from synthlabel.data.sample import to_float
from synthlabel.device import Precision
from synthlabel.runs import progress

SCORES = ("entropy", "mc_dropout", "ensemble", "flicker", "class_targeted", "class_uncertainty")
CLASS_SCORES = ("class_targeted", "class_uncertainty")  # the scores that need chosen classes
EPS = 1e-12


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """Per-pixel entropy (nats) of probabilities [..., K, H, W] over K -> [..., H, W]."""
    return -(probs * (probs + EPS).log()).sum(dim=-3)


def mean_entropy(probs: torch.Tensor) -> torch.Tensor:
    """Mean per-pixel predictive entropy of each frame: probs [N, K, H, W] -> [N]."""
    return entropy(probs).flatten(1).mean(1)


def mutual_information(samples: torch.Tensor) -> torch.Tensor:
    """BALD's mutual information per frame, from T stochastic passes (MC dropout) or T ensemble members:
    samples [T, N, K, H, W] -> [N], the mean over pixels of H(mean_t p_t) - mean_t H(p_t). Zero when every pass
    agrees; positive when they disagree (it is the ensemble disagreement score too)."""
    if samples.dim() != 5 or samples.shape[0] < 2:
        raise ValueError(f"mutual information needs [T >= 2, N, K, H, W] probabilities, got {list(samples.shape)}")
    total = entropy(samples.mean(0))
    expected = entropy(samples).mean(0)
    return (total - expected).clamp(min=0).flatten(1).mean(1)


def flicker(labels: torch.Tensor) -> torch.Tensor:
    """Temporal flicker: the share of pixels whose predicted class differs from the previous frame's, per frame
    (labels [N, H, W] in time order -> [N]; the first frame compares with the second)."""
    if len(labels) < 2:
        return torch.zeros(len(labels))
    changed = (labels[1:] != labels[:-1]).flatten(1).float().mean(1)
    return torch.cat([changed[:1], changed])


def class_targeted(probs: torch.Tensor, classes: Sequence[int], reference_area: Sequence[float] | None = None):
    """A frame is worth labeling for the chosen classes when the model is unsure about them: 1 - the mean max-
    probability over the pixels predicted as one of them (0 confidence when none is predicted), plus, with
    `reference_area` (each class's mean predicted area share on the training frames), how far the predicted area
    of the chosen classes falls short of it (a vanishing pedestrian). probs [N, K, H, W] -> [N]."""
    if not classes:
        raise ValueError("class_targeted needs at least one class")
    ids = torch.as_tensor(list(classes))
    conf, pred = probs.max(1)  # [N, H, W]
    chosen = torch.isin(pred, ids)
    n_chosen = chosen.flatten(1).sum(1)
    mean_conf = torch.where(n_chosen > 0, (conf * chosen).flatten(1).sum(1) / n_chosen.clamp(min=1), 0.0)
    score = 1 - mean_conf
    if reference_area is not None:
        expected = float(sum(reference_area[int(c)] for c in ids))
        area = chosen.flatten(1).float().mean(1)
        score = score + (expected - area).clamp(min=0) / max(expected, EPS)
    return score


def class_uncertainty(probs: torch.Tensor, classes: Sequence[int]) -> torch.Tensor:
    """A frame is worth labeling for the chosen classes when the model gives them probability where it is unsure:
    the mean over pixels of P(one of the classes) x (1 - max probability). Zero on a frame where they have no
    probability (an empty street adds nothing for pedestrians) and low where they are predicted confidently.
    probs [N, K, H, W] -> [N]."""
    if not classes:
        raise ValueError("class_uncertainty needs at least one class")
    chosen = probs[:, list(classes)].sum(1)
    return (chosen * (1 - probs.max(1).values)).flatten(1).mean(1)


@dataclass
class FrameScores:
    """Every score of every frame (in frame order) and the features diversity selection uses."""

    scores: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> [N]
    features: torch.Tensor | None = None  # [N, D] pooled bottleneck features of the first model
    predictions: torch.Tensor | None = None  # [N, H, W] class ids of the first model (for overlays)
    confidence: torch.Tensor | None = None  # [N, H, W] max probability of the first model


def _dropout_on(model: nn.Module) -> list[nn.Module]:
    """Put the model's dropout layers (only) in train mode; returns them."""
    layers = [m for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
    for m in layers:
        m.train()
    return layers


@torch.no_grad()
def score_frames(
    models: Sequence[nn.Module],
    images: torch.Tensor,  # [N, 3, H, W] uint8, in time order
    precision: Precision,
    mc_passes: int = 8,
    classes: Sequence[int] = (),
    reference_area: Sequence[float] | None = None,
    batch_size: int = 16,
    seed: int = 0,
) -> FrameScores:
    """Run the models over the frames and compute every score that applies: entropy (first model), mc_dropout
    (`mc_passes` passes of the first model with dropout on; needs dropout layers), ensemble (several models),
    flicker, class_targeted and class_uncertainty (when `classes`). Deterministic for a seed (the dropout masks are
    seeded)."""
    if not models:
        raise ValueError("score_frames needs at least one segmenter")
    first = models[0].eval().to(precision.device)
    has_dropout = any(isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in first.modules())
    features: list[torch.Tensor] = []
    hook = _feature_hook(first, features)
    probs, mc, members = [], [], []
    torch.manual_seed(seed)
    try:
        for i in progress(range(0, len(images), batch_size), desc="score frames"):
            x = to_float(images[i : i + batch_size]).to(precision.device).contiguous(memory_format=torch.channels_last)
            with precision.autocast():
                p = F.softmax(first(x).float(), dim=1).cpu()
            probs.append(p)
            hook.active = False
            if has_dropout and mc_passes >= 2:
                layers = _dropout_on(first)
                with precision.autocast():
                    passes = [F.softmax(first(x).float(), 1).cpu() for _ in range(mc_passes)]
                for m in layers:
                    m.eval()
                mc.append(mutual_information(torch.stack(passes)))
            if len(models) > 1:
                outs = [p]
                for other in models[1:]:
                    other.eval().to(precision.device)
                    with precision.autocast():
                        outs.append(F.softmax(other(x).float(), 1).cpu())
                members.append(mutual_information(torch.stack(outs)))
            hook.active = True
    finally:
        hook.remove()
    probs_all = torch.cat(probs)
    conf, pred = probs_all.max(1)
    out = FrameScores(features=torch.cat(features) if features else None, predictions=pred, confidence=conf)
    out.scores["entropy"] = mean_entropy(probs_all)
    if mc:
        out.scores["mc_dropout"] = torch.cat(mc)
    if members:
        out.scores["ensemble"] = torch.cat(members)
    out.scores["flicker"] = flicker(pred)
    if classes:
        out.scores["class_targeted"] = class_targeted(probs_all, classes, reference_area)
        out.scores["class_uncertainty"] = class_uncertainty(probs_all, classes)
    return out


class _FeatureHook:
    """Collects the global-average-pooled output of the model's deepest feature map on each forward it is active
    for (the pooled bottleneck: what the model 'sees', for k-center diversity)."""

    def __init__(self, module: nn.Module, sink: list[torch.Tensor]):
        self.sink, self.active = sink, True
        self.handle = module.register_forward_hook(self)

    def __call__(self, module, inputs, output) -> None:
        if self.active:
            self.sink.append(output.float().mean((2, 3)).cpu())

    def remove(self) -> None:
        self.handle.remove()


def _feature_hook(model: nn.Module, sink: list[torch.Tensor]) -> _FeatureHook:
    """A hook on the lowest-resolution 4-D feature map: the module whose output is smallest, found by one probe."""
    target = getattr(model, "bottleneck", None) or _deepest_module(model)
    return _FeatureHook(target, sink)


def _deepest_module(model: nn.Module) -> nn.Module:
    """The leaf-most module with the smallest spatial output on a probe input."""
    sizes: dict[nn.Module, int] = {}
    hooks = [
        m.register_forward_hook(lambda mod, i, o: sizes.__setitem__(mod, o.shape[-1] * o.shape[-2]))
        for m in model.modules()
        if m is not model and not list(m.children())
    ]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, 64, 64, device=next(model.parameters()).device))
    finally:
        for h in hooks:
            h.remove()
    four_d = {m: s for m, s in sizes.items() if isinstance(m, nn.Conv2d)}
    return min(four_d, key=four_d.get)
