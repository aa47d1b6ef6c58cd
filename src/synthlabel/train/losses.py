"""Adversarial losses for label map -> image GANs: hinge / non-saturating, feature matching (pix2pixHD), OASIS
segmentation losses, R1, and `GANLoss`, which runs them as StyleGAN2-ADA's named phases Gmain, Dmain, Dreg."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from synthlabel.generators.common import one_hot
from synthlabel.generators.discriminators import class_balanced_cross_entropy
from synthlabel.train.augment import DiffAugment

PatchOutput = list[list[torch.Tensor]]  # per scale: [features..., logits [B, 1, h, w]]


def d_loss(real: torch.Tensor, fake: torch.Tensor, kind: str = "hinge") -> torch.Tensor:
    """Discriminator loss on real and fake logits (any shape): "hinge" or "nonsat" (softplus, the logistic loss)."""
    real, fake = real.float(), fake.float()
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    if kind == "nonsat":
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    raise ValueError(f"unknown adversarial loss {kind!r}; use 'hinge' or 'nonsat'")


def g_loss(fake: torch.Tensor, kind: str = "hinge") -> torch.Tensor:
    """Generator loss on fake logits: hinge -> -D(fake), nonsat -> softplus(-D(fake))."""
    fake = fake.float()
    if kind == "hinge":
        return -fake.mean()
    if kind == "nonsat":
        return F.softplus(-fake).mean()
    raise ValueError(f"unknown adversarial loss {kind!r}; use 'hinge' or 'nonsat'")


def patch_d_loss(real_out: PatchOutput, fake_out: PatchOutput, kind: str = "hinge") -> torch.Tensor:
    """`d_loss` on the final logits of every scale, averaged over scales."""
    return torch.stack([d_loss(r[-1], f[-1], kind) for r, f in zip(real_out, fake_out, strict=True)]).mean()


def patch_g_loss(fake_out: PatchOutput, kind: str = "hinge") -> torch.Tensor:
    """`g_loss` on the final logits of every scale, averaged over scales."""
    return torch.stack([g_loss(f[-1], kind) for f in fake_out]).mean()


def feature_matching_loss(real_out: PatchOutput, fake_out: PatchOutput) -> torch.Tensor:
    """Mean L1 between the discriminator features of fake and (detached) real images, over scales and layers."""
    terms = [
        F.l1_loss(f.float(), r.detach().float())
        for real_scale, fake_scale in zip(real_out, fake_out, strict=True)
        for r, f in zip(real_scale[:-1], fake_scale[:-1], strict=True)
    ]
    return torch.stack(terms).mean()


def oasis_d_loss(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, label_map: torch.Tensor, ignore_index: int
) -> torch.Tensor:
    """OASIS D loss. real_logits, fake_logits [B, K + 1, H, W]; label_map [B, H, W] ids.

    Real pixels -> their class (class-balanced, ignore pixels skipped); every fake pixel -> class K (unweighted)."""
    fake_target = torch.full_like(label_map, fake_logits.shape[1] - 1)  # may equal ignore_index: not via the helper
    real_term = class_balanced_cross_entropy(real_logits, label_map, ignore_index)
    return real_term + F.cross_entropy(fake_logits.float(), fake_target)


def oasis_g_loss(fake_logits: torch.Tensor, label_map: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """OASIS G loss: fake pixels should be classified as their label's (real) class, class-balanced."""
    return class_balanced_cross_entropy(fake_logits, label_map, ignore_index)


def realness(output: PatchOutput | torch.Tensor) -> torch.Tensor:
    """Per-sample real-vs-fake logit [B] of any discriminator's output (its sign feeds ADA, its gradient R1).

    Patch: mean patch logit averaged over scales. Segmentation: mean over pixels of
    logsumexp(real-class logits) - fake logit, the log-odds of "some real class" against "fake"."""
    if isinstance(output, torch.Tensor):
        logits = output.float()
        return (torch.logsumexp(logits[:, :-1], dim=1) - logits[:, -1]).mean(dim=(1, 2))
    return torch.stack([scale[-1].float().mean(dim=(1, 2, 3)) for scale in output]).mean(dim=0)


def r1_penalty(scores: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): mean over the batch of ||d sum(scores) / d inputs||^2, differentiable (the
    graph is kept so the penalty trains D). `inputs` must require grad and `scores` depend on it."""
    (grad,) = torch.autograd.grad(scores.sum(), inputs, create_graph=True)
    return grad.float().square().flatten(1).sum(dim=1).mean()


class GANLoss:
    """Named phases as in StyleGAN2-ADA: `g_main` (Gmain), `d_main` (Dmain) and `d_reg` (Dreg, lazy R1 run every
    `r1_interval` steps, see `wants_reg`). Each returns (loss, stats); the caller runs backward and the optimizer
    step (freeze D's parameters during Gmain to save work). Real and fake go through `augment` with the same
    sampled parameters, and so do their label maps. The discriminator's `kind` picks the loss family.

    Args:
        generator, discriminator: registered networks (see synthlabel.generators).
        num_classes, ignore_index: the label maps' K and ignore id.
        augment: a DiffAugment module or None.
        adversarial: "hinge" or "nonsat" (patch discriminators; OASIS always uses its cross-entropy).
        feature_matching: weight of the feature-matching term in Gmain (patch discriminators only).
        r1_gamma: R1 weight (0 = off); the penalty is scaled by gamma / 2 * r1_interval.
        r1_interval: Dreg runs every this many steps.
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        num_classes: int,
        ignore_index: int = 255,
        augment: DiffAugment | None = None,
        adversarial: str = "hinge",
        feature_matching: float = 10.0,
        r1_gamma: float = 0.0,
        r1_interval: int = 16,
    ):
        self.G, self.D, self.augment = generator, discriminator, augment
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.adversarial, self.feature_matching = adversarial, feature_matching
        self.r1_gamma, self.r1_interval = r1_gamma, r1_interval
        self.segmentation = getattr(discriminator, "kind", "patch") == "segmentation"

    def one_hot(self, label_map: torch.Tensor) -> torch.Tensor:
        """[B, H, W] ids -> [B, K, H, W] one-hot (ignore -> zeros)."""
        return one_hot(label_map, self.num_classes, self.ignore_index)

    def run_D(self, image, label_map, condition, params):
        """Augment image + label ids with `params`, then D. Returns (D output, augmented label ids)."""
        if self.augment is not None:
            image, label_map = self.augment(image, label_map, params=params)
        return self.D(image, self.one_hot(label_map).to(image), condition), label_map

    def _params(self, image: torch.Tensor):
        return None if self.augment is None else self.augment.sample(image.shape[0], tuple(image.shape[-2:]))

    def g_main(self, real, label_map, condition=None, z=None) -> tuple[torch.Tensor, dict[str, float]]:
        """Gmain: fool D (+ feature matching against the real image with the same augmentation).

        real [B, 3, H, W], label_map [B, H, W] ids, condition [B] or None, z [B, z_dim] or None."""
        fake = self.G(self.one_hot(label_map), z, condition)
        params = self._params(fake)
        fake_out, aug_labels = self.run_D(fake, label_map, condition, params)
        if self.segmentation:
            loss = oasis_g_loss(fake_out, aug_labels, self.ignore_index)
            return loss, {"G/adv": loss.item()}
        adv = patch_g_loss(fake_out, self.adversarial)
        stats = {"G/adv": adv.item()}
        if self.feature_matching > 0:
            with torch.no_grad():
                real_out, _ = self.run_D(real, label_map, condition, params)
            fm = feature_matching_loss(real_out, fake_out)
            stats["G/fm"] = fm.item()
            adv = adv + self.feature_matching * fm
        return adv, stats

    def d_main(self, real, label_map, condition=None, z=None) -> tuple[torch.Tensor, dict[str, float]]:
        """Dmain: real -> real, fake (generated without gradient to G) -> fake, both with the same augmentation.

        stats["D/real_sign"] is E[sign(realness(D(real)))], ADA's overfitting signal for `DiffAugment.update`."""
        with torch.no_grad():
            fake = self.G(self.one_hot(label_map), z, condition)
        params = self._params(real)
        real_out, aug_labels = self.run_D(real, label_map, condition, params)
        fake_out, _ = self.run_D(fake, label_map, condition, params)
        if self.segmentation:
            loss = oasis_d_loss(real_out, fake_out, aug_labels, self.ignore_index)
        else:
            loss = patch_d_loss(real_out, fake_out, self.adversarial)
        real_sign = realness(real_out).sign().mean().item()
        return loss, {"D/loss": loss.item(), "D/real_sign": real_sign}

    def wants_reg(self, step: int) -> bool:
        """True on the steps where Dreg should run (lazy regularization)."""
        return self.r1_gamma > 0 and step % self.r1_interval == 0

    def d_reg(self, real, label_map, condition=None) -> tuple[torch.Tensor, dict[str, float]]:
        """Dreg: R1 on real images (gradient taken through the augmentation, w.r.t. the un-augmented image)."""
        real = real.detach().requires_grad_(True)
        out, _ = self.run_D(real, label_map, condition, self._params(real))
        penalty = r1_penalty(realness(out), real)
        return penalty * (self.r1_gamma / 2) * self.r1_interval, {"D/r1": penalty.item()}
