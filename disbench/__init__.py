"""disbench: reproducible large-scale sweeps of disentangled-representation models."""

__version__ = "0.1.0"


def load(path, device="cpu"):
    """A trained objective from an exported folder or a run directory (``disbench.zoo``)."""
    from disbench.zoo import load as load_model

    return load_model(path, device)
