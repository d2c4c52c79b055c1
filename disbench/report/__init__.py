"""Locatello-style comparison reports from a run table (``disbench report``)."""
