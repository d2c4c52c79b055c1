"""Reconstruction error and ELBO of a trained model on a fixed sample of its dataset.

The reference (disentanglement_lib ``methods/unsupervised/train.py``) records the
reconstruction loss, KL and ELBO of the last training batch only: 64 images, a noisy
estimate, and the losses of a model that was still being updated. Here the same terms
are averaged over ``num_points`` observations drawn once with the evaluation seed
(``seed_from``: the run's seed, or the study's), with the trained model in eval mode:

    reconstruction = 1/N sum_n -log p(x_n | z_n),   z_n ~ q(z | x_n), one draw per point
    kl             = 1/N sum_n KL(q(z | x_n) || N(0, I))
    elbo           = -(reconstruction + kl)

the single-sample estimate the model trains on (``disbench.models.base.VAE.step``), with
the model's own reconstruction loss (``model.reconstruction_loss(logits, x)``: the
Bernoulli log-likelihood of the reference, or the run's ``model.reconstruction``).
The noise is drawn from the same numpy generator as the observations, so the scores do
not depend on the batch size.

The points are not held out from training: as in the reference, the models train on
the whole dataset. They are held out from the loss record, a fixed sample scored after
training, the same for every run under ``seed_from: study``.

A deterministic encoder (``encode`` returning ``(code, None)``, e.g. NashAE) has no
posterior: its code is decoded, and ``kl`` and ``elbo`` are not defined, so not
reported. Nor are they for a model with a prior of its own (``sample_prior``: GWAE's
learned prior, the semi-supervised VAE's), whose ELBO is not the one against N(0, I).
A model without ``reconstruction_loss`` gets no held-out scores (with a
``MetricWarning``).
"""

from __future__ import annotations

import warnings

import numpy as np

from disbench.metrics.utils import MetricWarning, as_observations

METRIC = "held-out reconstruction"


def heldout_scores(model, dataset, num_points: int, rng: np.random.Generator, device,
                   batch_size: int = 1024) -> dict[str, float]:
    """``{"reconstruction", "kl", "elbo"}`` of ``model`` averaged over ``num_points``
    observations of ``dataset`` (module doc).

    Args:
        model: a torch module with ``encode(x) -> (mean, log_var)``, ``decode(z) ->
            logits`` and ``reconstruction_loss(logits, x)`` (mean over the batch), in eval
            mode on ``device``.
        dataset: anything with ``sample(num, rng) -> (factors, observations)``.
        num_points: observations averaged over.
        rng: draws the observations, then the posterior noise (N, D), batch by batch.
        device: where the model runs.
        batch_size: observations per forward pass (the scores do not depend on it).
    """
    import torch

    from disbench.models.base import gaussian_kl

    if not callable(getattr(model, "reconstruction_loss", None)):
        warnings.warn(f"{METRIC}: {type(model).__name__} has no reconstruction_loss(logits, "
                      f"x); its held-out reconstruction and ELBO are not computed.",
                      MetricWarning, stacklevel=2)
        return {}
    _, observations = dataset.sample(int(num_points), rng)
    observations = as_observations(observations)
    totals = {"reconstruction": 0.0, "kl": 0.0}
    deterministic = False
    with torch.inference_mode():
        for start in range(0, len(observations), batch_size):
            x = torch.from_numpy(observations[start:start + batch_size]).to(device)
            mean, log_var = model.encode(x)
            deterministic = log_var is None
            z = mean
            if not deterministic:  # numpy draws: the same noise in batches of any size
                noise = torch.from_numpy(rng.standard_normal(tuple(mean.shape)))
                z = mean + torch.exp(0.5 * log_var) * noise.to(mean.device, mean.dtype)
                totals["kl"] += len(x) * float(gaussian_kl(mean, log_var))
            totals["reconstruction"] += len(x) * float(
                model.reconstruction_loss(model.decode(z), x))
    scores = {k: v / len(observations) for k, v in totals.items()}
    if deterministic or callable(getattr(model, "sample_prior", None)):
        return {"reconstruction": scores["reconstruction"]}
    return {**scores, "elbo": -(scores["reconstruction"] + scores["kl"])}
