"""The objectives of the reference study: `build(model_cfg, encoder, decoder, latent_dim)`.

Each model's hyperparameters are the keyword arguments of its class; the
config's values are checked against that signature, so a typo or a wrong type
ends in one clear message.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Mapping

from disbench.errors import DisbenchError
from disbench.models.annealedvae import AnnealedVAE
from disbench.models.base import VAE, Objective
from disbench.models.betatcvae import BetaTCVAE
from disbench.models.betavae import BetaVAE
from disbench.models.dipvae import DIPVAE1, DIPVAE2
from disbench.models.factorvae import FactorVAE

MODELS: dict[str, type[VAE]] = {
    "vae": VAE,
    "betavae": BetaVAE,
    "annealedvae": AnnealedVAE,
    "factorvae": FactorVAE,
    "dipvae1": DIPVAE1,
    "dipvae2": DIPVAE2,
    "betatcvae": BetaTCVAE,
}

__all__ = ["MODELS", "VAE", "Objective", "build", "check", "hyperparameters"]


@functools.cache
def hyperparameters(name: str) -> dict[str, inspect.Parameter]:
    """The hyperparameters a model takes (its constructor's keyword arguments)."""
    params = inspect.signature(MODELS[name].__init__).parameters
    return {k: p for k, p in params.items() if k not in ("self", "encoder", "decoder",
                                                         "latent_dim")}


def _check_value(model: str, key: str, value, annotation):
    """`value` as the type the model's signature declares (float, int, optional)."""
    kinds = typing.get_args(annotation) or (annotation,)
    if value is None and type(None) in kinds:
        return None
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if is_number and value < 0:  # strengths, rates and thresholds: none is negative
        raise DisbenchError(f"model.{key}={value!r} for model '{model}': expected a value "
                            f">= 0 (a negative strength would reward what it penalises).")
    if float in kinds and is_number:
        return float(value)  # NaN passes on purpose: the run then fails as non-finite
    if int in kinds and is_number and float(value).is_integer():
        return int(value)
    if not {float, int} & set(kinds):
        return value
    raise DisbenchError(f"model.{key}={value!r} for model '{model}': expected "
                        f"{' or '.join(getattr(k, '__name__', str(k)) for k in kinds)}.")


def check(cfg: Mapping) -> tuple[type[VAE], dict]:
    """The objective class named `cfg["name"]` and its checked hyperparameters."""
    cfg = dict(cfg)
    name = cfg.pop("name", None)
    if name not in MODELS:
        raise DisbenchError(f"unknown model '{name}'; valid: {', '.join(MODELS)}")
    allowed = hyperparameters(name)
    kwargs = {}
    for key, value in cfg.items():
        if key not in allowed:
            valid = ", ".join(allowed) or "none"
            raise DisbenchError(f"model '{name}' has no hyperparameter '{key}'; valid: {valid}")
        kwargs[key] = _check_value(name, key, value, allowed[key].annotation)
    return MODELS[name], kwargs


def build(cfg: Mapping, encoder, decoder, latent_dim: int) -> VAE:
    """Instantiate the objective named `cfg["name"]` with the other keys as hyperparameters."""
    cls, kwargs = check(cfg)
    if "latent_dim" in inspect.signature(cls.__init__).parameters:
        kwargs["latent_dim"] = latent_dim
    return cls(encoder, decoder, **kwargs)
