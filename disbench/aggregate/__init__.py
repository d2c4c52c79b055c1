"""Stored runs as one table (``disbench aggregate``): a study's store, disbench tables and
disentanglement_lib's aggregated results, side by side."""
