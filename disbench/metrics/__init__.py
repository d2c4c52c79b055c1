"""Disentanglement metrics.

Array-level metrics (samples in rows: codes N x D, factors N x K): ``compute_mig``,
``compute_dci``, ``compute_sap``, ``compute_modularity_explicitness``, ``compute_irs``,
``compute_unsupervised``. The suite, which samples from a ground-truth dataset and
encodes with a representation: ``evaluate`` (any dataset with the protocol, any
representation function) and ``score_model`` (a trained disbench model, as the study
did, with its held-out losses, ``heldout_scores``); the sampling metrics
``compute_beta_vae``, ``compute_factor_vae``, ``compute_downstream`` and
``fairness_from_sampler`` take a ``CodeSampler``; ``compute_fairness`` a dataset.
UDR scores a group of models: ``compute_udr`` (from representation functions) and
``udr_from_codes`` (from their codes).

Estimators and defaults follow google-research/disentanglement_lib (Locatello et al.,
2019); see each module's docstring for the paper and any deliberate differences, and
docs/metrics.md.
"""

from disbench.metrics.beta_vae import compute_beta_vae
from disbench.metrics.dci import compute_dci
from disbench.metrics.downstream import compute_downstream
from disbench.metrics.evaluate import METRICS, evaluate, resolve_settings, score_model
from disbench.metrics.factor_vae import compute_factor_vae
from disbench.metrics.fairness import compute_fairness, fairness_from_sampler
from disbench.metrics.heldout import heldout_scores
from disbench.metrics.irs import compute_irs
from disbench.metrics.mig import compute_mig
from disbench.metrics.modularity import compute_modularity_explicitness
from disbench.metrics.sampling import CodeSampler, CodeTable, model_representation
from disbench.metrics.sap import compute_sap
from disbench.metrics.udr import compute_udr, udr_from_codes
from disbench.metrics.unsupervised import compute_unsupervised
from disbench.metrics.utils import MetricInputError, MetricWarning

__all__ = [
    "METRICS",
    "CodeSampler",
    "CodeTable",
    "MetricInputError",
    "MetricWarning",
    "compute_beta_vae",
    "compute_dci",
    "compute_downstream",
    "compute_factor_vae",
    "compute_fairness",
    "compute_irs",
    "compute_mig",
    "compute_modularity_explicitness",
    "compute_sap",
    "compute_udr",
    "compute_unsupervised",
    "evaluate",
    "fairness_from_sampler",
    "heldout_scores",
    "model_representation",
    "resolve_settings",
    "score_model",
    "udr_from_codes",
]
