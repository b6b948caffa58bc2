"""Evaluation as in the paper: generation, pairwise judging, agreement."""

from lima.env import interpreter_bin_on_path

interpreter_bin_on_path()
