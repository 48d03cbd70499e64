"""Reproducible artifact of 'Tracking Universal Features Through Fine-Tuning and Model Merging' (Horn & Elliott, arXiv 2410.12391)

Modules:

- `universal_features.robustness`: Every transition's persistence divided by the agreement of two SAEs of the parent model that differ only in seed, with intervals that combine the block bootstrap and the seed spread; then (in the `cpu-study` profile) what drives survival: how far the fine-tune moves the model, the paper's learning rate, the SLERP t, and the SAE's own settings."""

__version__ = "0.1.0"
