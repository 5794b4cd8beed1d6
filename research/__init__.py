"""Experiments beside the product: one folder per question (see research/README.md)."""
