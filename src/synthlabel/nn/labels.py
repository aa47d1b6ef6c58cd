"""Label-map encoding shared by networks, losses and sampling: ids -> one-hot, with an ignore id."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from synthlabel.errors import DataError


def one_hot(label_map: torch.Tensor, num_classes: int, ignore_index: int | None) -> torch.Tensor:
    """Label ids [B, H, W] int64 -> float one-hot [B, K, H, W]; ignore pixels become all-zero columns.

    Raises DataError naming the bad ids when the map holds ids outside 0..K-1 other than `ignore_index` (None: no
    void class, but -100, the id augmentation pads with then, still reads as "no label").
    """
    ignore_index = -100 if ignore_index is None else ignore_index
    valid = label_map != ignore_index
    bad = valid & ((label_map < 0) | (label_map >= num_classes))
    if bad.any():
        ids = sorted(set(label_map[bad].unique().tolist()))
        raise DataError(
            f"label map holds ids {ids[:10]} outside 0..{num_classes - 1} (ignore index {ignore_index}); "
            "remap them with the class spec or raise num_classes"
        )
    ids = torch.where(valid, label_map, torch.zeros_like(label_map))
    out = F.one_hot(ids, num_classes).permute(0, 3, 1, 2).float()  # [B, K, H, W]
    return out * valid[:, None]
