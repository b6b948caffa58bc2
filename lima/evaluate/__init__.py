"""Evaluation as in the paper: generation, pairwise judging, agreement."""
