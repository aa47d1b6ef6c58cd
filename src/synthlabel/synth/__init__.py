"""Label-map synthesis: a bank of class segments, recomposition of label maps that raise rare classes."""
