"""Evaluation: segmentation metrics, label distribution analysis."""
