"""The objectives: `build(model_cfg, encoder, decoder, latent_dim)`.

`model.name` is a built-in name (MODELS), an entry point of group `disbench.models`, or
an import path `package.module:ClassName` (see `disbench.plugins`). Each model's
hyperparameters are the keyword arguments of its class (and, through `**kwargs`, of
its base classes); the config's values are checked against that signature, so a typo
or a wrong type ends in one clear message.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Mapping

from torch import nn

from disbench import plugins
from disbench.errors import DisbenchError
from disbench.models.annealedvae import AnnealedVAE
from disbench.models.attrivae import AttriVAE
from disbench.models.base import VAE, Objective, OptimizerSpec, Step
from disbench.models.betatcvae import BetaTCVAE
from disbench.models.betavae import BetaVAE
from disbench.models.critic_vae import CriticVAE
from disbench.models.dipvae import DIPVAE1, DIPVAE2
from disbench.models.factorvae import FactorVAE
from disbench.models.gvvae import GVVAE
from disbench.models.gwae import GWAE
from disbench.models.lagrangian_vae import GCVAE
from disbench.models.nashae import NashAE
from disbench.models.ssvae import SSVAE
from disbench.models.strkm import StRKM
from disbench.models.vaegan import VAEGAN

MODELS: dict[str, type[Objective]] = {
    "vae": VAE,
    "betavae": BetaVAE,
    "annealedvae": AnnealedVAE,
    "factorvae": FactorVAE,
    "dipvae1": DIPVAE1,
    "dipvae2": DIPVAE2,
    "betatcvae": BetaTCVAE,
    "lagrangian_vae": GCVAE,
    "gvvae": GVVAE,
    "nashae": NashAE,
    "critic_vae": CriticVAE,
    "vaegan": VAEGAN,
    "attrivae": AttriVAE,
    "ssvae": SSVAE,
    "strkm": StRKM,
    "gwae": GWAE,
}

__all__ = ["MODELS", "VAE", "Objective", "OptimizerSpec", "Step", "build", "check",
           "hyperparameters", "packable", "resolve"]
NOT_HYPERPARAMETERS = ("self", "encoder", "decoder", "latent_dim")


def _is_objective(found) -> bool:
    return isinstance(found, type) and issubclass(found, Objective)


def resolve(name) -> type[Objective]:
    """The objective class `name` stands for (built-in, entry point or import path)."""
    return plugins.resolve("model", name, MODELS, _is_objective,
                           "an objective (a subclass of disbench.models.Objective)")


@functools.cache
def signature_of(cls: type) -> dict[str, inspect.Parameter]:
    """A class's keyword arguments, following `**kwargs` into its base classes."""
    out: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        if klass in (nn.Module, object):
            break
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(klass.__init__, eval_str=True).parameters
        out.update({k: p for k, p in params.items()
                    if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and k not in out})
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            break
    return out


def hyperparameters(name) -> dict[str, inspect.Parameter]:
    """The hyperparameters a model takes (its constructor's keyword arguments)."""
    return {k: p for k, p in signature_of(resolve(name)).items() if k not in NOT_HYPERPARAMETERS}


def packable(cls: type[Objective]) -> tuple[str, ...] | None:
    """The hyperparameters that may differ within a pack, as the class itself declares
    them (never inherited: a plug-in that subclasses a packable objective and changes its
    step is not packable until it says so); None: its runs train solo."""
    declared = vars(cls).get("packable")
    return None if declared is None else tuple(declared)


def _check_value(model: str, key: str, value, annotation):
    """`value` as the type the model's signature declares (float, int, optional)."""
    if typing.get_origin(annotation) is typing.Literal:
        if value not in typing.get_args(annotation):
            raise DisbenchError(f"model.{key}={value!r} for model '{model}': expected one of "
                                f"{', '.join(map(str, typing.get_args(annotation)))}")
        return value
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


def check(cfg: Mapping) -> tuple[type[Objective], dict]:
    """The objective class named `cfg["name"]` and its checked hyperparameters."""
    cfg = dict(cfg)
    name = cfg.pop("name", None)
    cls = resolve(name)
    allowed = hyperparameters(name)
    kwargs = {}
    for key, value in cfg.items():
        if key not in allowed:
            valid = ", ".join(allowed) or "none"
            raise DisbenchError(f"model '{name}' has no hyperparameter '{key}'; valid: {valid}")
        kwargs[key] = _check_value(name, key, value, allowed[key].annotation)
    missing = [k for k, p in allowed.items() if p.default is p.empty and k not in kwargs]
    if missing:
        raise DisbenchError(f"model '{name}' needs a value for {', '.join(missing)}: set "
                            f"{' '.join(f'+model.{k}=...' for k in missing)}")
    return cls, kwargs


def build(cfg: Mapping, encoder, decoder, latent_dim: int) -> Objective:
    """Instantiate the objective named `cfg["name"]` with the other keys as hyperparameters."""
    cls, kwargs = check(cfg)
    if "latent_dim" in signature_of(cls):
        kwargs["latent_dim"] = latent_dim
    return cls(encoder, decoder, **kwargs)
