"""Adversarial losses: hinge / non-saturating, feature matching (pix2pixHD), OASIS's class-balanced segmentation
losses, R1, PatchNCE (CUT); and the loss objects that run them as StyleGAN2-ADA's named phases (Dmain, lazy Dreg,
Gmain), one per kind of GAN: `LabelImageLoss` (label map -> image), `ClassImageLoss` (class -> image) and
`TranslationLoss` (image -> image in another condition, labels kept)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from synthlabel.nn.labels import one_hot
from synthlabel.train.augment import AugmentParams, DiffAugment, translate
from synthlabel.train.batch import GANBatch

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


def class_balanced_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, ignore_index: int, balance: bool = True
) -> torch.Tensor:
    """Per-pixel cross-entropy, class-balanced per batch. logits [B, N, H, W]; target [B, H, W] ids in 0..N-1 or
    `ignore_index` (ignored pixels have weight 0). Returns the weighted mean over valid pixels (a scalar)."""
    valid = target != ignore_index
    ids = torch.where(valid, target, torch.zeros_like(target))
    ce = F.cross_entropy(logits.float(), ids, reduction="none")  # [B, H, W]
    weight = valid.float()
    if balance:  # per class inverse to its pixel count, mean 1 over valid pixels: each class present counts equally
        counts = torch.bincount(ids[valid], minlength=logits.shape[1]).float()
        present = counts > 0
        per_class = torch.zeros_like(counts)
        per_class[present] = valid.sum() / (present.sum() * counts[present])
        weight = weight * per_class[ids]
    return (ce * weight).sum() / valid.sum().clamp(min=1)


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
    """Named phases as in StyleGAN2-ADA: `phases(step)` lists them (Dmain; Dreg every `r1_interval` steps when the R1
    weight `r1_gamma` > 0, its penalty scaled by gamma / 2 * r1_interval; Gmain) and `loss(phase, batch)` computes one
    as (loss, stats). The trainer runs backward, syncs the gradients of the phase's network ("G..." or "D...") and
    steps its optimizer; `fp32_phases` run without autocast. A new kind of GAN is a subclass with its own `d_main`,
    `g_main` (and `d_reg`). The parameters of `augment` (DiffAugment or None) are drawn for the global batch, so a
    rank keeps those of its rows and the draws do not depend on the number of processes."""

    fp32_phases = ("Dreg",)  # R1 is the norm of a gradient, which bf16 rounding would swamp

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        augment: DiffAugment | None = None,
        r1_gamma: float = 0.0,
        r1_interval: int = 16,
    ):
        self.G, self.D, self.augment = generator, discriminator, augment
        self.r1_gamma, self.r1_interval = r1_gamma, r1_interval
        # networks trained by G's phases with G's optimizer but not part of the saved generator (CUT's projection
        # heads), by name: the trainer steps, syncs, checkpoints and restores them with G
        self.g_modules: dict[str, nn.Module] = {}

    def phases(self, step: int) -> list[str]:
        return ["Dmain", *(["Dreg"] if self.wants_reg(step) else []), "Gmain"]

    def wants_reg(self, step: int) -> bool:
        """True on the steps where Dreg should run (lazy regularization)."""
        return self.r1_gamma > 0 and step % self.r1_interval == 0

    def __call__(self, phase: str, batch: GANBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """(loss, stats) of one phase: `d_main`, `d_reg` or `g_main`, which a subclass defines."""
        method = {"Dmain": "d_main", "Dreg": "d_reg", "Gmain": "g_main"}.get(phase)
        if method is None or not hasattr(self, method):
            raise ValueError(f"{type(self).__name__} has no phase {phase!r}")
        return getattr(self, method)(batch)

    def augment_params(self, batch: GANBatch, image: torch.Tensor) -> AugmentParams | None:
        """Augmentation parameters of this batch's rows, drawn for the whole global batch."""
        if self.augment is None:
            return None
        return self.augment.sample(batch.global_size, tuple(image.shape[-2:])).select(batch.rows)


class LabelImageLoss(GANLoss):
    """Label map -> image GAN (label maps of `num_classes` ids and `ignore_index`). Real and fake go through `augment`
    with the same sampled parameters, and so do their label maps. The discriminator's `kind` picks the loss family:
    "patch" (`adversarial` "hinge" or "nonsat", plus `feature_matching` weight in Gmain) or "segmentation" (OASIS's
    cross-entropy). Gradients equal the single-process ones under data parallelism except OASIS's class balancing,
    which counts the pixels of each rank's rows (like batch norm statistics)."""

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
        label_mix: float = 0.0,
    ):
        super().__init__(generator, discriminator, augment, r1_gamma, r1_interval)
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.adversarial, self.feature_matching = adversarial, feature_matching
        self.segmentation = discriminator.kind == "segmentation"
        if label_mix > 0 and not self.segmentation:
            raise ValueError("label_mix needs a segmentation discriminator (oasis); a patch discriminator has none")
        self.label_mix = label_mix

    def run_D(self, image, label_map, condition, params):
        """Augment image + label ids with `params`, then D. Returns (D output, augmented label ids)."""
        if self.augment is not None:
            image, label_map = self.augment(image, label_map, params=params)
        return self.D(image, one_hot(label_map, self.num_classes, self.ignore_index).to(image), condition), label_map

    def generate(self, batch: GANBatch) -> torch.Tensor:
        return self.G(one_hot(batch.label_map, self.num_classes, self.ignore_index), batch.z, batch.condition)

    def g_main(self, batch: GANBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """Gmain: fool D (+ feature matching against the real image with the same augmentation)."""
        fake = self.generate(batch)
        params = self.augment_params(batch, fake)
        fake_out, aug_labels = self.run_D(fake, batch.label_map, batch.condition, params)
        if self.segmentation:
            loss = oasis_g_loss(fake_out, aug_labels, self.ignore_index)
            return loss, {"G/loss": loss.item(), "G/adv": loss.item()}
        adv = patch_g_loss(fake_out, self.adversarial)
        stats = {"G/adv": adv.item()}
        if self.feature_matching > 0:
            with torch.no_grad():
                real_out, _ = self.run_D(batch.real, batch.label_map, batch.condition, params)
            fm = feature_matching_loss(real_out, fake_out)
            stats["G/fm"] = fm.item()
            adv = adv + self.feature_matching * fm
        return adv, {"G/loss": adv.item(), **stats}

    def d_main(self, batch: GANBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """Dmain: real -> real, fake (generated without gradient to G) -> fake, both with the same augmentation.

        stats["D/real_sign"] is E[sign(realness(D(real)))], ADA's overfitting signal for `DiffAugment.update`."""
        with torch.no_grad():
            fake = self.generate(batch)
        params = self.augment_params(batch, batch.real)
        real_out, aug_labels = self.run_D(batch.real, batch.label_map, batch.condition, params)
        fake_out, _ = self.run_D(fake, batch.label_map, batch.condition, params)
        stats = {}
        if self.segmentation:
            loss = oasis_d_loss(real_out, fake_out, aug_labels, self.ignore_index)
            if self.label_mix > 0:
                mix = self.label_mix_loss(batch, fake, real_out, fake_out, params)
                loss = loss + self.label_mix * mix
                stats["D/label_mix"] = mix.item()
        else:
            loss = patch_d_loss(real_out, fake_out, self.adversarial)
        real_sign = realness(real_out).sign().mean().item()
        return loss, {"D/loss": loss.item(), "D/real_sign": real_sign, **stats}

    def label_mix_loss(self, batch: GANBatch, fake, real_out, fake_out, params) -> torch.Tensor:
        """OASIS's LabelMix: each class of a sample's label map is taken from the real or the fake image by a coin
        (drawn for the global batch); D's output on the mix must equal the same mix of its outputs on real and fake
        (mean squared difference), which makes D attend to the class regions and their borders."""
        coins = torch.rand(batch.global_size, self.num_classes + 1)[batch.rows].to(fake.device) < 0.5
        ids = torch.where(batch.label_map == self.ignore_index, self.num_classes, batch.label_map)
        from_real = torch.gather(coins, 1, ids.flatten(1)).view_as(ids)[:, None].to(fake.dtype)  # [B, 1, H, W]
        mixed = from_real * batch.real + (1 - from_real) * fake
        mixed_out, _ = self.run_D(mixed, batch.label_map, batch.condition, params)
        if params is not None and params.translation.any():  # the mask moves with the image (colour and cutout
            from_real = translate(from_real, params.translation, 0.0)  # act on both sides alike)
        target = from_real * real_out + (1 - from_real) * fake_out
        return F.mse_loss(mixed_out.float(), target.float())

    def d_reg(self, batch: GANBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """Dreg: R1 on real images (gradient taken through the augmentation, w.r.t. the un-augmented image)."""
        real = batch.real.detach().requires_grad_(True)
        out, _ = self.run_D(real, batch.label_map, batch.condition, self.augment_params(batch, real))
        penalty = r1_penalty(realness(out), real)
        return penalty * (self.r1_gamma / 2) * self.r1_interval, {"D/r1": penalty.item()}


class ClassImageLoss(GANLoss):
    """Class -> image GAN (per-class or class-conditional): D(image, class) gives one logit per sample. Real and
    fake are augmented with parameters drawn separately, as DiffAugment does; no Dreg (R1 is off)."""

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        augment: DiffAugment | None = None,
        adversarial: str = "nonsat",
    ):
        super().__init__(generator, discriminator, augment)
        self.adversarial = adversarial

    def _aug(self, images: torch.Tensor, batch: GANBatch) -> torch.Tensor:
        if self.augment is None:
            return images
        return self.augment(images, params=self.augment_params(batch, images))[0]

    def d_main(self, batch: GANBatch) -> tuple[torch.Tensor, dict[str, float]]:
        with torch.no_grad():
            fake = self.G(batch.z, batch.labels)
        real_logits = self.D(self._aug(batch.real, batch), batch.labels)
        loss = d_loss(real_logits, self.D(self._aug(fake, batch), batch.labels), self.adversarial)
        return loss, {"D/loss": loss.item(), "D/real_sign": real_logits.float().sign().mean().item()}

    def g_main(self, batch: GANBatch) -> tuple[torch.Tensor, dict[str, float]]:
        loss = g_loss(self.D(self._aug(self.G(batch.z, batch.labels), batch), batch.labels), self.adversarial)
        return loss, {"G/loss": loss.item()}


def patch_nce_loss(query: torch.Tensor, key: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """PatchNCE (CUT, Park et al. 2020): query, key [B, P, D] unit vectors at the same P locations of an output and
    its input; each query must pick its own location's key among the P keys of its image (the other locations are
    the negatives). Keys are detached. Returns the mean cross-entropy (a scalar)."""
    logits = torch.bmm(query.float(), key.detach().float().transpose(1, 2)) / temperature  # [B, P, P]
    target = torch.arange(logits.shape[1], device=logits.device).expand(len(logits), -1)
    return F.cross_entropy(logits.flatten(0, 1), target.flatten())


def label_margin(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """Per pixel [B, H, W]: the label's logit less the largest other logit (> 0 where the argmax is the label);
    0 at ignore pixels."""
    valid = labels != ignore_index
    index = labels.where(valid, 0).unsqueeze(1)
    own = logits.gather(1, index)
    others = logits.scatter(1, index, float("-inf")).amax(1, keepdim=True)
    return (own - others).squeeze(1).where(valid, 0.0)


class TranslationLoss(GANLoss):
    """Unpaired translation into a target condition that keeps the labels (CUT + CyCADA's semantic consistency).

    The batch holds source images (`batch.source`) with their label maps, target-condition real images
    (`batch.real`) and the target condition of each row (`batch.condition`). Dmain: real target images -> real,
    translations -> fake (patch discriminator on image + condition, `adversarial` loss, the same augmentation for
    both). Gmain: fool D; PatchNCE between the translation and its source on the generator's own encoder features
    (`nce` weight, `patches` locations per layer, CUT's 0.07 temperature), and the same between a target image and
    its translation into its own condition (`identity`, CUT's NCE identity); semantic consistency (`consistency`
    weight, CyCADA): a frozen real-data segmenter must predict the source labels on the translation as well as on
    the source (its cross-entropy on the translation minus that on the source: zero for the identity). With
    `consistency_kind="margin"` the term asks less: only that the segmenter's prediction stays right where it was
    right on the source, by the logit margin it had there, capped at `consistency_margin` (zero for the identity;
    a translation may lower the segmenter's confidence, e.g. make the scene darker than anything it saw, as long as
    the argmax holds; the cross-entropy form pulls every pixel back to the source's confidence). With paired
    data, `l1` weighs the L1 distance to the real image of the same scene in the target condition (pix2pix).
    `projector` (CUT's heads) trains with G (`g_modules`)."""

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        projector: nn.Module,
        segmenter: nn.Module | None = None,
        ignore_index: int = 255,
        augment: DiffAugment | None = None,
        adversarial: str = "hinge",
        nce: float = 1.0,
        patches: int = 128,
        identity: bool = True,
        consistency: float = 1.0,
        l1: float = 0.0,
        consistency_kind: str = "ce",
        consistency_margin: float = 1.0,
    ):
        super().__init__(generator, discriminator, augment)
        if consistency_kind not in ("ce", "margin"):
            raise ValueError(f"consistency_kind must be 'ce' or 'margin', not {consistency_kind!r}")
        self.consistency_kind, self.consistency_margin = consistency_kind, consistency_margin
        self.l1 = l1  # paired data: batch.real is the source's scene in the target condition
        if consistency > 0 and segmenter is None:
            raise ValueError("semantic consistency needs a real-data segmenter; give one or set consistency to 0")
        self.projector, self.segmenter, self.ignore_index = projector, segmenter, ignore_index
        self.adversarial, self.nce, self.patches, self.identity = adversarial, nce, patches, identity
        self.consistency = consistency if segmenter is not None else 0.0
        self.g_modules = {"projector": projector}
        if segmenter is not None:
            segmenter.eval().requires_grad_(False)

    def translate(self, images: torch.Tensor, batch: GANBatch) -> torch.Tensor:
        return self.G(images, batch.z, batch.condition)

    def run_D(self, image: torch.Tensor, batch: GANBatch, params) -> PatchOutput:
        if self.augment is not None:
            image = self.augment(image, params=params)[0]
        return self.D(image, batch.condition)

    def d_main(self, batch: GANBatch) -> tuple[torch.Tensor, dict[str, float]]:
        with torch.no_grad():
            fake = self.translate(batch.source, batch)
        params = self.augment_params(batch, batch.real)
        real_out = self.run_D(batch.real, batch, params)
        loss = patch_d_loss(real_out, self.run_D(fake, batch, params), self.adversarial)
        return loss, {"D/loss": loss.item(), "D/real_sign": realness(real_out).sign().mean().item()}

    def g_main(self, batch: GANBatch) -> tuple[torch.Tensor, dict[str, float]]:
        fake = self.translate(batch.source, batch)
        adv = patch_g_loss(self.run_D(fake, batch, self.augment_params(batch, fake)), self.adversarial)
        loss, stats = adv, {"G/adv": adv.item()}
        if self.nce > 0:
            nce = self.nce_term(batch.source, fake, batch)
            if self.identity:
                nce = (nce + self.nce_term(batch.real, self.translate(batch.real, batch), batch)) / 2
            loss, stats["G/nce"] = loss + self.nce * nce, nce.item()
        if self.l1 > 0:
            l1 = F.l1_loss(fake.float(), batch.real.float())
            loss, stats["G/l1"] = loss + self.l1 * l1, l1.item()
        if self.consistency > 0:
            term = self.margin_term(fake, batch) if self.consistency_kind == "margin" else self.ce_term(fake, batch)
            loss, stats["G/consistency"] = loss + self.consistency * term, term.item()
        return loss, {"G/loss": loss.item(), **stats}

    def ce_term(self, fake: torch.Tensor, batch: GANBatch) -> torch.Tensor:
        """The segmenter's excess cross-entropy on the translation over the source: 0 for an identity translator;
        the gradient is that of the translation's CE."""
        with torch.no_grad():
            on_source = self.segmenter_ce(batch.source, batch)
        return self.segmenter_ce(fake, batch) - on_source

    def margin_term(self, fake: torch.Tensor, batch: GANBatch) -> torch.Tensor:
        """Mean over labeled pixels of max(0, min(m, margin on the source) - margin on the translation), over the
        pixels the segmenter reads right on the source (margin > 0); margin = the label's logit less the largest
        other logit. 0 for the identity and for any translation that keeps each margin (up to m)."""
        with torch.no_grad():
            keep = label_margin(self.segmenter(batch.source).float(), batch.label_map, self.ignore_index)
            keep = keep.clamp(max=self.consistency_margin)
        margin = label_margin(self.segmenter(fake).float(), batch.label_map, self.ignore_index)
        labeled = (batch.label_map != self.ignore_index).sum().clamp(min=1)
        return (keep - margin).clamp(min=0).where(keep > 0, 0.0).sum() / labeled

    def segmenter_ce(self, images: torch.Tensor, batch: GANBatch) -> torch.Tensor:
        """The frozen segmenter's cross-entropy on `images` against the source labels (ignore pixels skipped)."""
        return F.cross_entropy(self.segmenter(images).float(), batch.label_map, ignore_index=self.ignore_index)

    def nce_term(self, source: torch.Tensor, output: torch.Tensor, batch: GANBatch) -> torch.Tensor:
        """PatchNCE between `output` and `source` over the encoder layers, at locations shared by the batch."""
        code = self.G.code(source, batch.condition, batch.z)
        src_feats, _ = self.G.encode(source, code)
        out_feats, _ = self.G.encode(output, code)
        terms = []
        for layer, (f_src, f_out) in enumerate(zip(src_feats, out_feats, strict=True)):
            flat_src, flat_out = f_src.flatten(2).transpose(1, 2), f_out.flatten(2).transpose(1, 2)  # [B, hw, C]
            ids = torch.randperm(flat_src.shape[1], device=f_src.device)[: self.patches]
            key = self.projector(layer, flat_src[:, ids])
            terms.append(patch_nce_loss(self.projector(layer, flat_out[:, ids]), key))
        return torch.stack(terms).mean()


class LatentImageLoss(GANLoss):
    """Unconditional latent GAN (StyleGAN2's objective): non-saturating logistic loss, lazy R1 on real images
    (`r1_gamma`, every `r1_interval` steps), real and fake through `augment` with parameters drawn separately
    (DiffAugment/ADA). Training draws fresh per-pixel noise; Gmain also tracks the generator's mean w (`w_avg`,
    for truncation) with StyleGAN's 0.995 decay."""

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        augment: DiffAugment | None = None,
        r1_gamma: float = 0.1,
        r1_interval: int = 16,
        w_avg_beta: float = 0.995,
    ):
        super().__init__(generator, discriminator, augment, r1_gamma, r1_interval)
        self.w_avg_beta = w_avg_beta

    def _aug(self, images: torch.Tensor, batch: GANBatch) -> torch.Tensor:
        if self.augment is None:
            return images
        return self.augment(images, params=self.augment_params(batch, images))[0]

    def generate(self, batch: GANBatch) -> torch.Tensor:
        w = self.G.map(batch.z)
        if self.G.training:
            with torch.no_grad():
                self.G.w_avg.copy_(w.detach().float().mean(0).lerp(self.G.w_avg, self.w_avg_beta))
        return self.G.synthesize(w, noise_mode="random")

    def d_main(self, batch: GANBatch) -> tuple[torch.Tensor, dict[str, float]]:
        with torch.no_grad():
            fake = self.G.synthesize(self.G.map(batch.z), noise_mode="random")
        real_logits = self.D(self._aug(batch.real, batch))
        loss = d_loss(real_logits, self.D(self._aug(fake, batch)), "nonsat")
        return loss, {"D/loss": loss.item(), "D/real_sign": real_logits.float().sign().mean().item()}

    def d_reg(self, batch: GANBatch) -> tuple[torch.Tensor, dict[str, float]]:
        real = batch.real.detach().requires_grad_(True)
        penalty = r1_penalty(self.D(self._aug(real, batch)), real)
        return penalty * (self.r1_gamma / 2) * self.r1_interval, {"D/r1": penalty.item()}

    def g_main(self, batch: GANBatch) -> tuple[torch.Tensor, dict[str, float]]:
        loss = g_loss(self.D(self._aug(self.generate(batch), batch)), "nonsat")
        return loss, {"G/loss": loss.item()}
