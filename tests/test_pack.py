"""Packs (`launcher.pack`): several runs of one objective trained at once, each still a
run of its own.

- The vectorised step and the optimisers over stacked tensors are each run's own step
  and optimiser: in float64 every loss term matches the solo computation to 1e-10 over
  20 updates, for each of the seven reference objectives and each later method that
  declares itself packable.
- Through the trainer (float32), each member's loss log matches the run trained alone.
  The same arithmetic in another order (batched kernels) differs by float32 rounding,
  which Adam turns into differences of up to its learning rate wherever a gradient is
  near zero. For beta-VAE that stays below 1e-4 relative at every logged step. For
  FactorVAE it does not, packed or not: the same run trained alone with 1 thread and
  with 2 threads differs by ~1e-3 relative in the loss and ~0.25 in the total
  correlation (a difference of logits near 0) over 50 steps (measured 2026-11-27), so
  the float32 FactorVAE comparison uses bounds of that size, and its exactness is the
  float64 test's.
- A pack killed with SIGKILL and run again ends bit-identical to an uninterrupted pack.
- A member with a non-finite loss fails alone.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from disbench import store
from disbench.config import compose, run_id
from disbench.launch.sweep import PlannedRun, packs, plan
from disbench.train.optimizers import build_optimizers
from disbench.train.pack import Pack
from disbench.train.run import run
from disbench.train.run_pack import run_pack
from tests.models.tiny import ARCH, build
from tests.processes import output_to, signal_at_step
from tests.test_resume_objectives import same

ADAM = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8}
REFERENCE = {  # the seven reference objectives, two hyperparameter values each
    "betavae": [{"beta": 1.0}, {"beta": 8.0}],
    "annealedvae": [{"c_max": 5.0}, {"c_max": 25.0, "gamma": 100.0}],
    "factorvae": [{"gamma": 10.0}, {"gamma": 40.0}],
    "dipvae1": [{"lambda_od": 1.0}, {"lambda_od": 5.0}],
    "dipvae2": [{"lambda_od": 1.0}, {"lambda_od": 5.0, "lambda_d": 2.0}],
    "betatcvae": [{"beta": 2.0}, {"beta": 6.0}],
    "vae": [{}, {}],
}
LATER = {  # the later methods that declare themselves packable
    "gvvae": [{}, {}],
    "critic_vae": [{"lambda_critic": 1.0, "critic": "network"},
                   {"lambda_critic": 4.0, "critic": "network"}],
    "nashae": [{"lambda_adv": 0.008}, {"lambda_adv": 0.1}],
    "vaegan": [{"gamma": 1e-6}, {"gamma": 1e-3}],
}


def _backward(losses: dict, optimizers: dict) -> None:
    for o in optimizers.values():
        o.zero_grad()
    names = list(losses)
    for i, name in enumerate(names):
        params = [p for g in optimizers[name].param_groups for p in g["params"]]
        torch.autograd.backward(losses[name].sum(), inputs=params,
                                retain_graph=i < len(names) - 1)
    for o in optimizers.values():
        o.step()


@pytest.mark.parametrize("name", sorted(REFERENCE) + sorted(LATER))
def test_packed_step_is_each_runs_own_step_float64(name):
    torch.set_default_dtype(torch.float64)
    try:
        hyper = {**REFERENCE, **LATER}[name]
        solo, members = [], []
        for seed, h in enumerate(hyper):
            torch.manual_seed(seed)
            solo.append(build(name, **h))
            torch.manual_seed(seed)
            members.append(build(name, **h))
        pack = Pack(members)
        pack_opt = pack.optimizers(ADAM)
        solo_opt = [build_optimizers(m, ADAM) for m in solo]
        pack_gen = [torch.Generator().manual_seed(s) for s in range(len(solo))]
        solo_gen = [torch.Generator().manual_seed(s) for s in range(len(solo))]
        data = torch.rand(20, len(solo), 8, 1, 4, 4, generator=torch.Generator().manual_seed(9))
        for step in range(20):
            losses, terms = pack.step(data[step], step, pack_gen)
            terms = {k: v.detach() for k, v in terms.items()}
            _backward(losses, pack_opt)
            for i, model in enumerate(solo):
                out = model.step(data[step, i], step, solo_gen[i])
                _backward(out.losses, solo_opt[i])
                for term, value in out.terms.items():
                    value = value.detach()
                    # abs: terms that are differences of O(1) quantities (VAE-GAN's decoder
                    # loss, the critic's log B - InfoNCE) end near 0 with float64 rounding
                    assert float(terms[term][i]) == pytest.approx(
                        value.item(), rel=1e-10, abs=1e-10), (step, i, term)
        # the final weights: within a millionth of one Adam step (lr 1e-3); rounding in the
        # 16th digit of a near-zero gradient moves Adam's normalised step a little
        for i, model in enumerate(solo):
            for key, tensor in model.state_dict().items():
                torch.testing.assert_close(pack.run_state_dict(i)[key], tensor, rtol=0,
                                           atol=1e-9)
    finally:
        torch.set_default_dtype(torch.float32)


OVERRIDES = ["data=dsprites_procedural", "arch=mlp", ARCH, "trainer=smoke", "eval=none",
             "trainer.max_steps=50", "trainer.log_every_n_steps=5",
             "trainer.checkpoint_every_n_steps=10", "trainer.batch_size=16",
             "trainer.threads=1"]


def _cfgs(model, settings, results, data_dir, study="pack", extra=()):
    return [compose([f"model={model}", *OVERRIDES, *extra, *s, f"seed={seed}", f"study={study}",
                     f"paths.results={results}", f"paths.data={data_dir}"])
            for seed, s in enumerate(settings)]


def _log(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _relative_differences(a_path, b_path) -> dict[str, float]:
    a, b = _log(a_path), _log(b_path)
    assert [r["step"] for r in a] == [r["step"] for r in b]
    worst = {}
    for ra, rb in zip(a, b):
        for key in ra:
            x, y = float(ra[key]), float(rb[key])
            worst[key] = max(worst.get(key, 0.0), abs(x - y) / max(abs(y), 1e-12))
    return worst


@pytest.mark.slow
@pytest.mark.parametrize("model, settings, bounds", [
    ("betavae", [["model.beta=1"], ["model.beta=4"], ["model.beta=16"]],
     {"loss": 1e-4, "reconstruction": 1e-4, "kl": 1e-4, "elbo": 1e-4}),
    ("factorvae", [["model.gamma=10"], ["model.gamma=40"]],  # see the module docstring
     {"loss": 1e-2, "reconstruction": 1e-3, "kl": 1e-2, "elbo": 1e-3}),
])
def test_pack_trains_each_run_as_it_trains_alone(model, settings, bounds, tmp_path, data_dir):
    packed = run_pack(_cfgs(model, settings, tmp_path, data_dir))
    assert [o.state for o in packed] == ["completed"] * len(settings)
    for cfg, member in zip(_cfgs(model, settings, tmp_path, data_dir, "solo"), packed):
        alone = run(cfg)
        assert alone.state == "completed" and alone.run_dir.path.name == member.run_dir.path.name
        worst = _relative_differences(member.run_dir.losses, alone.run_dir.losses)
        assert set(bounds) <= set(worst)
        for key, bound in bounds.items():
            assert worst[key] < bound, (key, worst[key])
        a = torch.load(member.run_dir.last_checkpoint, weights_only=True)
        b = torch.load(alone.run_dir.last_checkpoint, weights_only=True)
        assert a["global_step"] == b["global_step"] == 50
        assert a["state_dict"].keys() == b["state_dict"].keys()
        assert a["optimizer_states"][0].keys() == b["optimizer_states"][0].keys()
        if model == "betavae":
            # final weights: each tensor within 1e-4 of its norm, and no weight further than
            # 1% of the most Adam can move it in 50 steps (lr 1e-4 per step: 5e-3)
            for key, tensor in b["state_dict"].items():
                difference = a["state_dict"][key] - tensor
                assert difference.norm() <= 1e-4 * tensor.norm(), key
                assert difference.abs().max().item() < 0.01 * 1e-4 * 50, key
        metrics = json.loads(member.run_dir.metrics.read_text())
        assert metrics["train"]["loss"] == float(_log(member.run_dir.losses)[-1]["loss"])


def train_pack_until(signal_name: str, args: list[str], first: str, second: str,
                     log: str) -> None:
    """A pack's own process: trains `first` (seed 0) and `second` (seed 1) as one pack and
    sends itself `signal_name` once step 25 is logged; exits with the pack's exit code.
    Its output goes to `log`."""
    from disbench.train import packed

    output_to(log)
    signal_at_step(packed.PackRecorder, 25, getattr(signal, signal_name))
    outcomes = run_pack([compose([*args, first, "seed=0"]), compose([*args, second, "seed=1"])])
    sys.exit(max(o.exit_code for o in outcomes))


def pack_until(new_process, log, *args) -> int:
    """`train_pack_until(*args, log)` in a new process; its exit code (-N: signal N)."""
    process = new_process(target=train_pack_until, args=(*args, str(log)))
    process.start()
    process.join(timeout=600)
    if process.exitcode is None:
        process.kill()
        process.join()
    return process.exitcode


@pytest.mark.slow
@pytest.mark.parametrize("model, first, second", [
    ("factorvae", "model.gamma=10", "model.gamma=40"),  # two optimisers
    ("nashae", "model.lambda_adv=0.008", "model.lambda_adv=0.1"),  # extra updates, masks
])
def test_killed_pack_resumes_bit_identical(model, first, second, tmp_path, data_dir,
                                           new_process):
    common = [f"model={model}", *OVERRIDES, "trainer.max_steps=30",
              f"paths.data={data_dir}"]
    log = tmp_path / "killed.log"
    killed = pack_until(new_process, log, "SIGKILL",
                        [*common, f"paths.results={tmp_path / 'b'}"], first, second)
    assert killed == -9, log.read_text()[-2000:]
    settings = [[first], [second]]
    extra = ["trainer.max_steps=30"]
    reference = run_pack(_cfgs(model, settings, tmp_path / "a", data_dir, "default", extra))
    resumed = run_pack(_cfgs(model, settings, tmp_path / "b", data_dir, "default", extra))
    assert [o.state for o in reference] == [o.state for o in resumed] == ["completed"] * 2
    for a, b in zip(reference, resumed):
        assert json.loads(b.run_dir.status_file.read_text())["attempts"] == 2
        assert a.run_dir.losses.read_text() == b.run_dir.losses.read_text()
        ca = torch.load(a.run_dir.last_checkpoint, weights_only=True)
        cb = torch.load(b.run_dir.last_checkpoint, weights_only=True)
        for key in ("state_dict", "optimizer_states", "disbench_generator_state", "global_step"):
            same(ca[key], cb[key], key)


@pytest.mark.slow
def test_sigterm_records_every_member_interrupted_and_a_rerun_resumes(tmp_path, data_dir,
                                                                      new_process):
    common = ["model=factorvae", *OVERRIDES, "trainer.max_steps=30",
              f"paths.data={data_dir}", f"paths.results={tmp_path}"]
    log = tmp_path / "stopped.log"
    stopped = pack_until(new_process, log, "SIGTERM", common, "model.gamma=10",
                         "model.gamma=40")
    assert stopped == 128 + 15, log.read_text()[-2000:]
    run_dirs = sorted((tmp_path / "default").iterdir())
    assert len(run_dirs) == 2
    for path in run_dirs:
        status = json.loads((path / "status.json").read_text())
        assert (status["state"], status["reason"], status["stage"]) == (
            "interrupted", "SIGTERM during training", "training")
        assert not (path / "claim.json").exists()
        assert torch.load(path / "checkpoints" / "last.ckpt", weights_only=True)[
            "global_step"] == 20
    # a packed run's checkpoint is a solo run's: one member resumes alone, the other in a
    # pack of its own
    settings = [["model.gamma=10"], ["model.gamma=40"]]
    cfgs = _cfgs("factorvae", settings, tmp_path, data_dir, "default", ["trainer.max_steps=30"])
    resumed = [run(cfgs[0]), *run_pack(cfgs[1:])]
    assert [o.state for o in resumed] == ["completed"] * 2
    assert sorted(o.run_dir.path for o in resumed) == run_dirs
    for outcome in resumed:
        assert [int(r["step"]) for r in _log(outcome.run_dir.losses)] == list(range(5, 31, 5))
        status = json.loads(outcome.run_dir.status_file.read_text())
        assert (status["attempts"], status["step"]) == (2, 30)


@pytest.mark.slow
def test_a_member_with_a_non_finite_loss_fails_alone(tmp_path, data_dir):
    settings = [["model.beta=1"], ["model.beta=nan"], ["model.beta=4"]]
    outcomes = run_pack(_cfgs("betavae", settings, tmp_path, data_dir))
    assert [o.state for o in outcomes] == ["completed", "failed", "completed"]
    status = json.loads(outcomes[1].run_dir.status_file.read_text())
    assert status["state"] == "failed" and status["step"] == 0
    assert status["reason"].startswith("non-finite loss at step 0")
    assert not outcomes[1].run_dir.claim_file.exists()
    for ok in (outcomes[0], outcomes[2]):
        assert len(_log(ok.run_dir.losses)) == 10  # steps 5..50
        assert json.loads(ok.run_dir.status_file.read_text())["state"] == "completed"


def _planned(run_id, key):
    return PlannedRun((), run_id, "m", "d", None, key)


def test_packs_group_runs_by_key_in_plan_order():
    runs = [_planned("a0", "a"), _planned("b0", "b"), _planned("a1", "a"),
            _planned("s", None), _planned("a2", "a"), _planned("b1", "b")]
    tasks = packs(runs, 2)
    assert [[r.run_id for r in t] for t in tasks] == [["a0", "a1"], ["b0", "b1"], ["s"], ["a2"]]
    assert [[r.run_id for r in t] for t in packs(runs, 1)] == [[r.run_id] for r in runs]


def test_plan_packs_seeds_and_packable_values_only(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("study: s\ngrid:\n  data: dsprites_procedural\n  seed: [0, 1]\n"
                    "blocks:\n  - model: betavae\n    model.beta: [1, 4]\n"
                    "  - model: annealedvae\n    model.iteration_threshold: [10, 20]\n"
                    "  - model: lagrangian_vae\n")
    _, runs = plan(str(spec), [f"paths.results={tmp_path}"])
    keys = {}
    for r in runs:
        keys.setdefault((r.model, r.pack_key), []).append(r.run_id)
    betavae = [k for k in keys if k[0] == "betavae"]
    assert len(betavae) == 1 and len(keys[betavae[0]]) == 4  # seeds and betas: one pack
    annealed = [k for k in keys if k[0] == "annealedvae"]
    assert len(annealed) == 2  # iteration_threshold is not packable: two packs
    assert [k[1] for k in keys if k[0] == "lagrangian_vae"] == [None]  # not packable


PACKED_SPEC = """study: packed
grid:
  data: dsprites_procedural
  seed: [0, 1]
blocks:
  - model: betavae
    model.beta: [1, 4]
  - model: lagrangian_vae
overrides: [trainer=smoke, eval=none, arch=mlp, "arch.name=tests.models.tiny:Tiny"]
"""


def _sweep(args, results, data_dir):
    env = {**os.environ, "DISBENCH_RESULTS": str(results), "DISBENCH_DATA": str(data_dir)}
    return subprocess.run([sys.executable, "-m", "disbench.cli", "sweep", *args], env=env,
                          capture_output=True, text=True, timeout=900)


def test_cpu_sweeps_keep_one_run_per_task_unless_asked(tmp_path, in_process):
    spec = tmp_path / "packed.yaml"
    spec.write_text(PACKED_SPEC)
    out = in_process(["sweep", str(spec), "launcher.pack=4", "trainer.accelerator=cpu",
                      "--dry-run"])
    assert out.returncode == 0, out.stderr
    assert "launcher.pack=4 ignored: these runs train on CPU" in out.stdout
    assert "tasks of up to" not in out.stdout
    out = in_process(["sweep", str(spec), "launcher.pack=0", "--dry-run"])
    assert out.returncode == 2 and "error: launcher.pack=0: expected a whole number >= 1" in \
        out.stderr


@pytest.mark.slow
def test_local_sweep_trains_packs_and_solo_runs(tmp_path, data_dir, in_process):
    spec = tmp_path / "packed.yaml"
    spec.write_text(PACKED_SPEC)
    args = [str(spec), "launcher.pack=4", "launcher.pack_on_cpu=true", "launcher.workers=1"]
    out = _sweep(args, tmp_path, data_dir)
    assert out.returncode == 0, out.stdout + out.stderr
    assert ("packed: 4 runs in 1 tasks of up to 4 runs; 2 runs alone (lagrangian_vae: not "
            "packable, each run in a process of its own)") in out.stdout
    assert "summary: 6 completed" in out.stdout
    run_dirs = [p for p in (tmp_path / "packed").iterdir() if not p.name.startswith(".")]
    assert len(run_dirs) == 6
    packed = [p for p in run_dirs if p.name.startswith("betavae")]
    for path in packed:
        assert "trained in a pack of 4 runs" in (path / "train.log").read_text()
    (pack_log,) = [p / "pack.log" for p in packed if (p / "pack.log").exists()]
    assert pack_log.read_text().count(" completed: ") == 4
    for path in run_dirs:
        assert json.loads((path / "status.json").read_text())["state"] == "completed"
    again = in_process(["sweep", *args])
    assert again.returncode == 0 and "to run: 0" in again.stdout


@pytest.mark.slow
def test_bf16_mixed_precision_trains_packed_and_alone(tmp_path, data_dir):
    extra = ["trainer.max_steps=20", "arch=locatello"]
    settings = [["model.beta=1"], ["model.beta=4"]]
    bf16 = _cfgs("betavae", settings, tmp_path, data_dir,
                 extra=[*extra, "trainer.precision=bf16-mixed"])
    fp32 = _cfgs("betavae", settings, tmp_path, data_dir, extra=extra)
    assert run_id(bf16[0]) != run_id(fp32[0])  # another result: another run
    assert [o.state for o in run_pack(bf16)] == ["completed"] * 2
    alone = run(_cfgs("betavae", settings[:1], tmp_path, data_dir, "solo",
                      [*extra, "trainer.precision=bf16-mixed"])[0])
    assert alone.state == "completed"
    packed_log = _log(store.run_dir_for(tmp_path, "pack", run_id(bf16[0])).losses)
    alone_log = _log(alone.run_dir.losses)
    # bfloat16 keeps 8 bits of mantissa in the convolutions' inputs; the same autocast
    # regions in both, summed in another order
    for a, b in zip(packed_log, alone_log):
        assert float(a["loss"]) == pytest.approx(float(b["loss"]), rel=1e-3)
