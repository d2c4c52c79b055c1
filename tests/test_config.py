from pathlib import Path

import pytest
from omegaconf import OmegaConf

from disbench.config import compose, identity, run_id
from disbench.launch.sweep import plan
from disbench.models import MODELS

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("model", MODELS)
def test_every_model_preset_composes(model):
    cfg = compose([f"model={model}", "data=dsprites_procedural"])
    assert cfg.model.name == model
    assert cfg.trainer.max_steps == 300_000 and cfg.trainer.batch_size == 64  # reference default


def test_stored_runs_keep_their_ids():
    """Keys added since (arch.init, model.reconstruction) are left out of the identity at
    the value that reproduces the stored runs: the committed study's runs, trained with
    PyTorch's initialisation and the Bernoulli loss, keep their ids."""
    runs = sorted(p for p in (REPO / "results" / "quick-dsprites").iterdir() if p.is_dir()
                  and (p / "config.yaml").exists())
    assert len(runs) == 26
    for run in runs:
        stored = OmegaConf.to_container(OmegaConf.load(run / "config.yaml"))
        assert "init" not in stored["arch"] and "reconstruction" not in stored["model"]
        stored["arch"]["init"] = "torch"
        stored["model"].update(reconstruction="bernoulli", augment_radius=31)
        assert run_id(stored) == run.name
        stored["arch"]["init"] = "reference"  # another initialisation: another run
        assert run_id(stored) != run.name


def test_reference_defaults():
    cfg = compose([])
    assert cfg.arch.name == "locatello" and cfg.arch.latent_dim == 10
    assert cfg.trainer.lr == 1e-4 and list(cfg.trainer.betas) == [0.9, 0.999]
    assert cfg.trainer.eps == 1e-8 and cfg.seed == 0
    assert compose(["model=annealedvae"]).model.gamma == 1000.0
    assert compose(["model=annealedvae"]).model.iteration_threshold == 100_000


@pytest.mark.parametrize("trainer, expected", [("locatello", "locatello"), ("quick", "fast"),
                                               ("smoke", "fast")])
def test_short_trainings_are_scored_with_eval_fast_unless_eval_is_chosen(trainer, expected,
                                                                          tmp_path):
    assert compose([f"trainer={trainer}"]).eval.name == expected
    assert compose([f"trainer={trainer}", "eval=none"]).eval.name == "none"
    assert compose(["eval=locatello", f"trainer={trainer}"]).eval.name == "locatello"
    # in a sweep: the trainer's choice, and the command line's over it
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"study: s\ngrid: {{seed: 0}}\nblocks: [{{model: vae}}]\n"
                    f"overrides: [trainer={trainer}]\n")
    (run,) = plan(str(spec), [])[1]
    assert compose(list(run.overrides)).eval.name == expected
    (run,) = plan(str(spec), ["eval=none"])[1]
    assert compose(list(run.overrides)).eval.name == "none"


def test_run_id_ignores_what_does_not_change_the_model():
    base = run_id(compose([]))
    for override in ["trainer.checkpoint_every_n_steps=7", "trainer.log_every_n_steps=3",
                     "study=other", "paths.results=/x", "data.verify=false",
                     "trainer.progress_bar=false", "trainer.accelerator=cpu"]:
        assert run_id(compose([override])) == base, override


def test_run_id_changes_with_what_changes_the_model():
    base = run_id(compose([]))
    changed = {run_id(compose([o])) for o in ["seed=1", "model.beta=2", "model=factorvae",
                                              "data=dsprites_procedural", "trainer.max_steps=10",
                                              "arch.latent_dim=5", "trainer.lr=0.001"]}
    assert base not in changed and len(changed) == 7


def test_run_id_does_not_depend_on_how_a_number_is_written():
    assert run_id(compose(["model.beta=1"])) == run_id(compose(["model.beta=1.0"]))


def test_identity_records_data_name_and_seed():
    ident = identity(compose(["data=dsprites_procedural", "seed=4"]))
    assert ident["data"] == {"name": "dsprites_procedural"} and ident["seed"] == 4


def test_user_config_dir_on_the_search_path(tmp_path, disbench_in_process):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "mybeta.yaml").write_text("name: betavae\nbeta: 11.0\n")
    out = disbench_in_process(["train", "--cfg", "job", f"hydra.searchpath=[file://{tmp_path}]",
                               "model=mybeta"])
    assert out.returncode == 0, out.stderr
    assert "beta: 11.0" in out.stdout
