"""The objective API as the trainer runs it: named optimisers, one backward pass per loss
into its optimiser's parameters only, extra updates, the after-step hook, the checks
that refuse an ill-declared objective; and the reference weight initialisation."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from disbench import models, nets
from disbench.config import compose
from disbench.errors import DisbenchError
from disbench.models.base import Objective, OptimizerSpec, Step
from disbench.train.optimizers import NamedOptimizers, build_optimizers, check_losses
from disbench.train.run import build_model, run

ADAM = {"lr": 0.1, "betas": (0.9, 0.999), "eps": 1e-8}


class TwoPlayers(Objective):
    """a minimises (a - b)^2, b maximises it; b is updated `updates["b"]` times per step."""

    updates = {"b": 3}

    def __init__(self, encoder, decoder):
        super().__init__()
        self.a, self.b = nn.Parameter(torch.tensor(1.0)), nn.Parameter(torch.tensor(0.0))
        self.register_buffer("seen", torch.zeros(()))
        self.calls: list[int] = []

    def optimizers(self):
        return {"a": OptimizerSpec([self.a], torch.optim.SGD, {"lr": 0.1}),
                "b": OptimizerSpec([self.b], torch.optim.SGD, {"lr": 0.05})}

    def step(self, x, step, generator):
        gap = (self.a - self.b).square()
        return Step({"a": gap, "b": -gap}, {"gap": gap})

    def after_step(self, step, out):
        self.seen += 1
        self.calls.append(step)

    def encode(self, x):  # for the traversal
        return x.flatten(1)[:, :2] * self.a, None

    def decode(self, z):
        return z.sum(1)[:, None, None, None].expand(-1, 1, 64, 64)


def test_each_loss_reaches_only_its_optimisers_parameters():
    model = TwoPlayers(None, None)
    named = NamedOptimizers(build_optimizers(model, ADAM))
    out = model.step(None, 0, None)
    out.losses["a"].backward(inputs=named.params("a"), retain_graph=True)
    out.losses["b"].backward(inputs=named.params("b"))
    # d(a-b)^2/da = 2(a-b) = 2; d(-(a-b)^2)/db = 2(a-b) = 2: each from its own loss alone
    assert model.a.grad.item() == 2.0 and model.b.grad.item() == 2.0
    named.step()
    assert model.a.item() == pytest.approx(1.0 - 0.1 * 2) and model.b.item() == pytest.approx(
        0.0 - 0.05 * 2)
    assert set(named.state_dict()) == {"a", "b"}


def test_named_optimizers_state_round_trips():
    model = models.build({"name": "factorvae", "gamma": 10.0}, *nets.build("mlp", (1, 4, 4), 3),
                         3)
    named = NamedOptimizers(build_optimizers(model, ADAM))
    out = model.step(torch.rand(6, 1, 4, 4), 0, torch.Generator().manual_seed(0))
    for i, (name, loss) in enumerate(out.losses.items()):
        loss.backward(inputs=named.params(name), retain_graph=i == 0)
    named.step()
    again = NamedOptimizers(build_optimizers(model, ADAM))
    again.load_state_dict(named.state_dict())
    assert len(again.state) == len(named.state) == sum(1 for _ in model.parameters())
    with pytest.raises(DisbenchError, match="holds the optimisers"):
        again.load_state_dict({"model": named.state_dict()["model"]})


def test_the_trainer_runs_extra_updates_and_the_after_step_hook(tmp_path, data_dir, monkeypatch):
    monkeypatch.setitem(models.MODELS, "twoplayers", TwoPlayers)
    built = []
    original = build_model

    def keep(cfg, shape):
        built.append(original(cfg, shape))
        return built[-1]

    monkeypatch.setattr("disbench.train.run.build_model", keep)
    outcome = run(compose(["model=vae", "model.name=twoplayers", "~model.reconstruction",
                           "~model.augment_radius", "data=dsprites_procedural", "arch=mlp",
                           "trainer=smoke", "trainer.max_steps=2", "eval=none",
                           f"paths.results={tmp_path}", f"paths.data={data_dir}"]))
    assert outcome.state == "completed", outcome.reason
    model = built[-1]
    assert model.calls == [0, 1] and model.seen.item() == 2
    # by hand: per step, b makes 2 extra updates alone, then a and b one update each (SGD:
    # a descends (a-b)^2, b descends -(a-b)^2, both gradients 2(a-b))
    a, b = 1.0, 0.0
    for _ in range(2):
        for _ in range(2):
            b -= 0.05 * 2 * (a - b)
        a, b = a - 0.1 * 2 * (a - b), b - 0.05 * 2 * (a - b)
    assert model.a.item() == pytest.approx(a, rel=1e-6)
    assert model.b.item() == pytest.approx(b, rel=1e-6)


class Overlapping(TwoPlayers):
    def optimizers(self):
        return {"a": OptimizerSpec([self.a, self.b]), "b": OptimizerSpec([self.b])}


class Forgotten(TwoPlayers):
    def optimizers(self):
        return {"a": OptimizerSpec([self.a])}


class WrongUpdates(TwoPlayers):
    updates = {"c": 2}


@pytest.mark.parametrize("cls, message", [
    (Overlapping, "in both the 'a' and the 'b' optimiser"),
    (Forgotten, "parameter b is in no optimiser"),
    (WrongUpdates, "updates names 'c'"),
])
def test_ill_declared_optimisers_are_refused(cls, message):
    with pytest.raises(DisbenchError, match=message):
        build_optimizers(cls(None, None), ADAM)


def test_losses_must_match_the_optimisers():
    model = TwoPlayers(None, None)
    optimizers = build_optimizers(model, ADAM)
    with pytest.raises(DisbenchError, match=r"returned losses \['a'\] but declares the "
                                            r"optimisers \['a', 'b'\]"):
        check_losses(model, {"a": torch.tensor(0.0)}, optimizers)


def layers(module):
    return [m for m in module.modules() if isinstance(m, (nn.Linear, nn.Conv2d,
                                                          nn.ConvTranspose2d))]


def glorot_bound(layer) -> float:
    receptive = layer.weight[0, 0].numel()
    fan_in, fan_out = layer.weight.shape[1] * receptive, layer.weight.shape[0] * receptive
    return math.sqrt(6 / (fan_in + fan_out))


@pytest.mark.parametrize("arch, shape", [("locatello", (1, 64, 64)), ("mlp", (1, 64, 64))])
def test_reference_init_is_glorot_uniform_with_zero_biases(arch, shape):
    cfg = compose(["model=factorvae", f"arch={arch}"])
    torch.manual_seed(0)
    model = build_model(cfg, shape)
    for layer in layers(model):
        bound = glorot_bound(layer)
        w = layer.weight.detach().abs()
        assert w.max() <= bound and w.max() > 0.9 * bound, layer  # drawn up to the bound
        assert torch.count_nonzero(layer.bias) == 0
    first = model.discriminator.net[0]
    assert glorot_bound(first) == pytest.approx(0.0771, abs=1e-4)


def test_torch_init_is_pytorchs_default():
    torch.manual_seed(0)
    model = build_model(compose(["model=factorvae", "arch=mlp", "arch.init=torch"]), (1, 64, 64))
    first = model.discriminator.net[0]  # 10 -> 1000: U(-1/sqrt(10), 1/sqrt(10))
    assert 0.3 < first.weight.abs().max() <= 1 / math.sqrt(10)
    assert torch.count_nonzero(first.bias) > 0


def test_bad_init_is_refused_before_anything_is_written(in_process, tmp_path):
    out = in_process(["train", "arch.init=glorot", "data=dsprites_procedural", "eval=none"])
    assert out.returncode == 2
    assert out.stderr.strip() == ("error: arch.init='glorot' cannot work: expected reference "
                                  "or torch")


def test_a_checkpoint_of_one_adam_with_parameter_groups_loads_into_named_optimisers():
    """Checkpoints written before objectives named their optimisers held one Adam with a
    parameter group per network (FactorVAE: the VAE's, then the discriminator's)."""
    model = models.build({"name": "factorvae", "gamma": 10.0}, *nets.build("mlp", (1, 4, 4), 3),
                         3)
    vae = [*model.encoder.parameters(), *model.decoder.parameters()]
    single = torch.optim.Adam([{"params": vae, **ADAM},
                               {"params": list(model.discriminator.parameters()), "lr": 1e-4,
                                "betas": (0.5, 0.9), "eps": 1e-8}])
    out = model.step(torch.rand(6, 1, 4, 4), 0, torch.Generator().manual_seed(0))
    out.losses["model"].backward(inputs=vae, retain_graph=True)
    out.losses["discriminator"].backward(inputs=list(model.discriminator.parameters()))
    single.step()
    named = NamedOptimizers(build_optimizers(model, ADAM))
    named.load_state_dict(single.state_dict())
    for p in model.parameters():
        assert torch.equal(named.state[p]["exp_avg"], single.state[p]["exp_avg"])
        assert torch.equal(named.state[p]["exp_avg_sq"], single.state[p]["exp_avg_sq"])
    assert named.named["discriminator"].param_groups[0]["betas"] == (0.5, 0.9)
    assert len(named.named["model"].state) == len(vae)
