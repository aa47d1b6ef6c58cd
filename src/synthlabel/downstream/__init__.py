"""Downstream models (segmenters) and their training."""

from synthlabel.downstream import unet  # noqa: F401  (registers "unet")
