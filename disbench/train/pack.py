"""A pack: several runs of one objective, stepped at once as one vectorised step.

The runs' networks are stacked parameter by parameter (a leading run dimension, as
`torch.func.stack_module_state` does), and the objective's own `step` runs once under
`torch.func.vmap` over that dimension, through `functional_call` on a parameter-free
copy of the objective. What may differ between the runs is their seed and the
hyperparameters the objective declares `packable`: those become tensors with one value
per run. Every run draws its batch and its noise from its own generator
(`RunGenerators`), so each sees exactly what it would see alone.

The optimisers of a packable objective are elementwise (Adam, AdamW, RMSprop, SGD): one
optimiser over the stacked tensors is then every run's own optimiser, with the same
settings. A run's state (its parameters, buffers and optimiser state) is a slice of the
pack's, and a run's checkpoint is exactly what a solo run would write.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from disbench import models
from disbench.errors import DisbenchError
from disbench.models import Objective

ELEMENTWISE = (torch.optim.Adam, torch.optim.AdamW, torch.optim.RMSprop, torch.optim.SGD)


class RunGenerators:
    """The generators of a pack's runs, as the `generator` a packed step receives: each
    draw takes one tensor from every run's generator, and gives each run its own.

    Inside `vmap` (randomness="same") each run's draw is an ordinary, unbatched draw from
    its generator; `run` (the batched run index) then picks each run's."""

    def __init__(self, generators: list[torch.Generator], run: torch.Tensor):
        self.generators, self.run = generators, run

    def normal(self, shape, like: torch.Tensor) -> torch.Tensor:
        return torch.stack([torch.randn(shape, generator=g, device=like.device,
                                        dtype=like.dtype) for g in self.generators])[self.run]

    def uniform(self, shape, like: torch.Tensor) -> torch.Tensor:
        return torch.stack([torch.rand(shape, generator=g, device=like.device,
                                       dtype=like.dtype) for g in self.generators])[self.run]


class _Stepper(nn.Module):
    """`functional_call` calls `forward`: here, the objective's step with the run's
    hyperparameters set as attributes."""

    def __init__(self, objective: Objective):
        super().__init__()
        self.objective = objective

    def forward(self, x, step: int, generator, hyper: dict):
        for name, value in hyper.items():
            object.__setattr__(self.objective, name, value)
        out = self.objective.step(x, step, generator)
        return out.losses, out.terms


def check_packable(model: Objective) -> tuple[str, ...]:
    """The objective's packable hyperparameters; DisbenchError if it cannot be packed."""
    cls = type(model)
    names = models.packable(cls)
    if names is None:
        raise DisbenchError(f"{cls.__name__} does not declare itself packable "
                            f"(its class attribute `packable`)")
    if type(model).after_step is not Objective.after_step:
        raise DisbenchError(f"{cls.__name__} overrides after_step, which a pack cannot run "
                            f"per run; remove it from `packable` objectives")
    for name in names:
        value = getattr(model, name, None)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise DisbenchError(f"{cls.__name__}.packable names '{name}', which is not a "
                                f"number attribute of the objective ({value!r})")
    return names


class Pack(nn.Module):
    """The stacked state of several runs of one objective, and their vectorised step.

    `members`: the runs' objectives, built and initialised as each run would be alone
    (same class, architecture and non-packable hyperparameters)."""

    def __init__(self, members: list[Objective]):
        super().__init__()
        template = members[0]
        self.hyper_names = check_packable(template)
        if any(type(m) is not type(template) for m in members):
            raise DisbenchError("a pack's runs must share one objective class")
        self.size = len(members)
        params, buffers = stack_module_state(members)
        trainable = {n: p.requires_grad for n, p in template.named_parameters()}
        self.param_names = list(params)
        self.stacked = nn.ParameterList(nn.Parameter(params[n].detach().clone(),
                                                     requires_grad=trainable[n])
                                        for n in self.param_names)
        self.buffer_names = list(buffers)
        self.persistent = set(template.state_dict())
        for i, name in enumerate(self.buffer_names):
            self.register_buffer(f"stacked_buffer_{i}", buffers[name].clone(),
                                 persistent=name in self.persistent)
        for name in self.hyper_names:
            values = [float(getattr(m, name)) for m in members]
            self.register_buffer(f"hyper_{name}", torch.tensor(values), persistent=False)
        self.register_buffer("run_index", torch.arange(self.size), persistent=False)
        # the step's code and the optimisers' structure, without parameters of its own
        # (kept out of the module tree, in a tuple: the pack's tensors are its own)
        self._stepper = (_Stepper(copy.deepcopy(template).to("meta")),)

    @property
    def template(self) -> Objective:
        return self._stepper[0].objective

    # -- the stacked state, by the objective's own names ------------------
    def tensors(self) -> dict[str, torch.Tensor]:
        """name -> stacked tensor (parameters and buffers), by the objective's names."""
        out = dict(zip(self.param_names, self.stacked))
        out.update((name, getattr(self, f"stacked_buffer_{i}"))
                   for i, name in enumerate(self.buffer_names))
        return out

    def hyperparameters(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, f"hyper_{name}").to(self.stacked[0].dtype)
                for name in self.hyper_names}

    # -- the step ------------------------------------------------------------
    def step(self, x: torch.Tensor, step: int, generators: list[torch.Generator]):
        """(losses, terms): each a {name: tensor of one value per run}; `x` holds each
        run's batch along its first dimension."""
        params = {f"objective.{n}": p for n, p in zip(self.param_names, self.stacked)}
        buffers = {f"objective.{n}": getattr(self, f"stacked_buffer_{i}")
                   for i, n in enumerate(self.buffer_names)}

        def one_run(params, buffers, x, run, hyper):
            return functional_call(self._stepper[0], (params, buffers),
                                   (x, step, RunGenerators(generators, run), hyper))

        return vmap(one_run, randomness="same")(params, buffers, x, self.run_index,
                                                self.hyperparameters())

    # -- optimisers ----------------------------------------------------------
    def optimizer_params(self) -> dict[str, list[nn.Parameter]]:
        """Each named optimiser's parameters, as stacked tensors, in its own order."""
        index = {id(p): i for i, (_, p) in enumerate(self.template.named_parameters())}
        return {name: [self.stacked[index[id(p)]] for p in spec.params]
                for name, spec in self.template.optimizers().items()}

    def optimizers(self, adam: dict) -> dict[str, torch.optim.Optimizer]:
        """The objective's named optimisers, each over the stacked tensors of its
        parameters (`adam`: the run's settings for a spec without its own)."""
        params = self.optimizer_params()
        out = {}
        for name, spec in self.template.optimizers().items():
            if not issubclass(spec.cls, ELEMENTWISE):
                raise DisbenchError(
                    f"{type(self.template).__name__}'s optimiser '{name}' is "
                    f"{spec.cls.__name__}, which does not act on each element alone; a pack "
                    f"takes {', '.join(c.__name__ for c in ELEMENTWISE)}")
            settings = adam if spec.settings is None else spec.settings
            out[name] = spec.cls(params[name], **settings)
        return out

    # -- one run's state, and back ------------------------------------------
    def run_state_dict(self, run: int) -> dict[str, torch.Tensor]:
        """Run `run`'s state dict, as its objective alone would give it (copies: a slice
        would save every run's storage)."""
        return {n: t[run].detach().clone() for n, t in self.tensors().items()
                if n in self.persistent}

    def stacked_state_dict(self, states: list[dict[str, torch.Tensor]]
                           ) -> dict[str, torch.Tensor]:
        """The pack's own state dict from its runs' (the inverse of `run_state_dict`)."""
        keys = {n: f"stacked.{i}" for i, n in enumerate(self.param_names)}
        keys.update((n, f"stacked_buffer_{i}") for i, n in enumerate(self.buffer_names))
        return {keys[n]: torch.stack([s[n] for s in states]) for n in keys
                if n in self.persistent}


def run_optimizer_state(packed: dict, stacked: list[torch.Tensor], run: int) -> dict:
    """One run's slice of an elementwise optimiser's state dict (`stacked`: its params in
    order): per-parameter tensors of the stacked shape are sliced, the rest (the step
    count) copied."""
    state = {}
    for i, values in packed["state"].items():
        shape = stacked[i].shape
        state[i] = {k: v[run].clone() if k != "step" and torch.is_tensor(v) and v.shape == shape
                    else copy.deepcopy(v) for k, v in values.items()}
    return {"state": state, "param_groups": copy.deepcopy(packed["param_groups"])}


def stack_optimizer_states(runs: list[dict], stacked: list[torch.Tensor]) -> dict:
    """The pack's optimiser state dict from its runs' (the inverse of
    `run_optimizer_state`); the runs must agree on everything but the tensors."""
    first = runs[0]
    state = {}
    for i, values in first["state"].items():
        shape = stacked[i].shape[1:]
        state[i] = {}
        for k, v in values.items():
            if k != "step" and torch.is_tensor(v) and v.shape == shape:
                state[i][k] = torch.stack([r["state"][i][k] for r in runs])
            else:
                if any(not _equal(r["state"][i][k], v) for r in runs[1:]):
                    raise DisbenchError(f"the runs' optimiser states disagree on '{k}' (they "
                                        f"are not at the same step)")
                state[i][k] = v
    return {"state": state, "param_groups": first["param_groups"]}


def _equal(a, b) -> bool:
    if torch.is_tensor(a) and torch.is_tensor(b):
        return a.shape == b.shape and bool(torch.equal(a, b))
    return a == b
