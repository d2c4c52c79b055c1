"""An objective's named optimisers, built from its `optimizers()` and checked.

Lightning counts one training step per optimiser step; `NamedOptimizers` presents the
objective's optimisers to it as one optimiser, so that one step of disbench is one
update of every network, whatever their number, and the checkpoint holds each
optimiser's state under its name.
"""

from __future__ import annotations

from collections.abc import MutableMapping

import torch

from disbench.errors import DisbenchError
from disbench.models import Objective


def build_optimizers(model: Objective, adam: dict) -> dict[str, torch.optim.Optimizer]:
    """The objective's optimisers; `adam`: the run's settings for a spec without its own.
    Refuses a parameter claimed by two optimisers, and a trainable one claimed by none."""
    specs = model.optimizers()
    if not specs:
        raise DisbenchError(f"{type(model).__name__}.optimizers() declares no optimiser")
    owner: dict[int, str] = {}
    for name, spec in specs.items():
        for p in spec.params:
            if id(p) in owner:
                raise DisbenchError(f"{type(model).__name__}: a parameter is in both the "
                                    f"'{owner[id(p)]}' and the '{name}' optimiser")
            owner[id(p)] = name
    names = dict(model.named_parameters())
    unowned = [n for n, p in names.items() if p.requires_grad and id(p) not in owner]
    if unowned:
        raise DisbenchError(f"{type(model).__name__}: parameter {unowned[0]} is in no optimiser "
                            f"of {list(specs)} and would never be trained")
    for name in model.updates:
        if name not in specs:
            raise DisbenchError(f"{type(model).__name__}.updates names '{name}', which is not "
                                f"one of its optimisers {list(specs)}")
    return {name: spec.cls(spec.params, **(adam if spec.settings is None else spec.settings))
            for name, spec in specs.items()}


def check_losses(model: Objective, losses: dict, optimizers: dict) -> None:
    """A step must return exactly one loss per optimiser."""
    if set(losses) != set(optimizers):
        raise DisbenchError(f"{type(model).__name__}.step returned losses {sorted(losses)} but "
                            f"declares the optimisers {sorted(optimizers)}: one loss per "
                            f"optimiser, under the same names")


class _MergedState(MutableMapping):
    """The members' `state` as one mapping (Lightning moves it between devices)."""

    def __init__(self, members):
        self.members = members

    def _owner(self, key):
        return next((o.state for o in self.members if key in o.state), self.members[0].state)

    def __getitem__(self, key):
        return self._owner(key)[key]

    def __setitem__(self, key, value):
        self._owner(key)[key] = value

    def __delitem__(self, key):
        del self._owner(key)[key]

    def __iter__(self):
        return (k for o in self.members for k in o.state)

    def __len__(self):
        return sum(len(o.state) for o in self.members)


class NamedOptimizers(torch.optim.Optimizer):
    """Several optimisers stepped as one; `state_dict` keeps each under its name."""

    def __init__(self, optimizers: dict[str, torch.optim.Optimizer]):
        # no Optimizer.__init__: the members own the parameters and their state
        self.named = optimizers
        self.defaults = {}
        self._optimizer_step_pre_hooks = {}
        self._optimizer_step_post_hooks = {}
        self._optimizer_state_dict_pre_hooks = {}
        self._optimizer_state_dict_post_hooks = {}
        self._optimizer_load_state_dict_pre_hooks = {}
        self._optimizer_load_state_dict_post_hooks = {}

    @property
    def param_groups(self) -> list[dict]:
        return [g for o in self.named.values() for g in o.param_groups]

    @property
    def state(self) -> MutableMapping:
        return _MergedState(list(self.named.values()))

    def params(self, name: str) -> list[torch.Tensor]:
        return [p for g in self.named[name].param_groups for p in g["params"]]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.named.values():
            o.zero_grad(set_to_none=set_to_none)

    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for o in self.named.values():
            o.step()
        return loss

    def state_dict(self) -> dict:
        return {name: o.state_dict() for name, o in self.named.items()}

    def load_state_dict(self, state_dict: dict) -> None:
        if set(state_dict) == {"state", "param_groups"}:
            state_dict = self.split_single(state_dict)
        if set(state_dict) != set(self.named):
            raise DisbenchError(f"the checkpoint holds the optimisers {sorted(state_dict)}, "
                                f"the objective declares {sorted(self.named)}")
        for name, o in self.named.items():
            o.load_state_dict(state_dict[name])

    def split_single(self, single: dict) -> dict:
        """One optimiser's state dict, as checkpoints held it before objectives named their
        optimisers (one Adam, a parameter group per network, in the order the objective
        now declares them), split into the named optimisers' state dicts."""
        groups = iter(single["param_groups"])
        out = {}
        for name, o in self.named.items():
            mine = [next(groups, None) for _ in o.param_groups]
            if any(g is None for g in mine):
                break
            index = {old: new for new, old in enumerate(p for g in mine for p in g["params"])}
            out[name] = {"state": {index[k]: v for k, v in single["state"].items()
                                   if k in index},
                         "param_groups": [{**g, "params": [index[p] for p in g["params"]]}
                                          for g in mine]}
        return out

    def __repr__(self) -> str:
        return f"NamedOptimizers({', '.join(self.named)})"
