"""Reproducible artifact of 'Tracking Universal Features Through Fine-Tuning and Model Merging' (Horn & Elliott, arXiv 2410.12391)

Modules:

- `universal_features.robustness`: Every transition's persistence divided by the agreement of two SAEs of the parent model that differ only in seed, over every parent-seed × child-seed pair of SAEs, with intervals from the paired block bootstrap pooled over seed pairs; then (in the `cpu-study` profile) what drives survival: how far the fine-tune moves the model, the paper's learning rate, the SLERP t, and the SAE's own settings."""

__version__ = "0.1.0"
