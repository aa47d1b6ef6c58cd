"""Adversarial training pieces: losses, small-data augmentation (DiffAugment/ADA) and EMA of the generator."""
