"""Sweeps: expand a spec into runs (`sweep`), run them (`local`, `slurm`), and report (`status`)."""
