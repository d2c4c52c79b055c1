"""disbench: reproducible large-scale sweeps of disentangled-representation models."""

__version__ = "0.1.0"
