"""Training: the Lightning module, its callbacks, and `run` (one run, every launcher)."""
