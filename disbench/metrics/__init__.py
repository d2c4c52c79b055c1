"""Disentanglement metrics on arrays (samples in rows: codes N x D, factors N x K).

Estimators and defaults follow google-research/disentanglement_lib (Locatello et al.,
2019); see each module's docstring for the paper and any deliberate differences.
"""

from disbench.metrics.dci import compute_dci
from disbench.metrics.irs import compute_irs
from disbench.metrics.mig import compute_mig
from disbench.metrics.modularity import compute_modularity_explicitness
from disbench.metrics.sap import compute_sap
from disbench.metrics.unsupervised import compute_unsupervised
from disbench.metrics.utils import MetricInputError, MetricWarning

__all__ = [
    "MetricInputError",
    "MetricWarning",
    "compute_dci",
    "compute_irs",
    "compute_mig",
    "compute_modularity_explicitness",
    "compute_sap",
    "compute_unsupervised",
]
