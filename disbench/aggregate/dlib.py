"""disentanglement_lib's aggregated results as disbench table rows, so that old studies sit
beside new ones.

Reads the JSON that google-research/disentanglement_lib's ``aggregate_results_to_json``
(``disentanglement_lib/utils/aggregate_results.py``) writes: a pandas ``DataFrame.to_json()``,
orient "columns" (``{column: {row: value}}``); orient "records" (``[{column: value}]``) is read
too. Each row is one evaluation of one trained model (one model, postprocessing and metric);
its keys are ``<step>_config.<gin binding>`` (values as gin prints them: ``'beta_vae'``,
``4.0``, ``@vae()``) and ``<step>_results.<key>`` (numbers). The rows of one trained model
(one ``train_results.uuid``, or one set of ``train_config`` values where there is no uuid)
become one row of the table described in ``disbench.aggregate.table``.

``train_results.elbo`` is copied as it is: disentanglement_lib's model_fn reports the metric
"elbo" as ``-elbo`` of its tensor ``elbo = reconstruction + KL``, so the stored value is
already the ELBO, as disbench's ``train.elbo`` is. ``train_results.global_step`` is not kept
(FactorVAE's two optimisers both advance it).

The study's two downstream evaluations share ``evaluation_fn = @downstream_task`` and differ
in ``predictor.predictor_fn`` alone; they become disbench's ``downstream.logreg_*`` and
``downstream.gbt_*`` scores. The reference's ``num_active_dims`` is not disbench's (a count of
active dimensions): the FactorVAE score's is the number of all dimensions, the IRS's a sum of
code values. It is kept as ``dlib_num_active_dims``, and ``num_active_dims`` stays empty.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import math
from pathlib import Path

from disbench.aggregate.table import Aggregate, Skipped, eval_key, strength_of, to_frame
from disbench.errors import DisbenchError

SOURCE = "disentanglement_lib"

MODELS = {
    "beta_vae": "betavae",
    "annealed_vae": "annealedvae",
    "factor_vae": "factorvae",
    "dip_vae_i": "dipvae1",
    "dip_vae_ii": "dipvae2",
    "beta_tc_vae": "betatcvae",
}

# disbench hyperparameter -> gin binding in train_config
HYPERPARAMETERS = {
    "betavae": {"beta": "vae.beta"},
    "annealedvae": {"c_max": "annealed_vae.c_max", "gamma": "annealed_vae.gamma",
                    "iteration_threshold": "annealed_vae.iteration_threshold"},
    "factorvae": {"gamma": "factor_vae.gamma"},
    "dipvae1": {"lambda_od": "dip_vae.lambda_od", "lambda_d_factor": "dip_vae.lambda_d_factor"},
    "dipvae2": {"lambda_od": "dip_vae.lambda_od", "lambda_d_factor": "dip_vae.lambda_d_factor"},
    "betatcvae": {"beta": "beta_tc_vae.beta"},
}

DATASETS = {"dsprites_full": "dsprites"} | {name: name for name in (
    "color_dsprites", "noisy_dsprites", "scream_dsprites", "smallnorb", "cars3d", "shapes3d",
    "mpi3d_toy", "mpi3d_realistic", "mpi3d_real")}

ARCHS = {"@conv_encoder": "locatello"}

REPRESENTATIONS = {"@mean_representation": "mean", "@sampled_representation": "sampled"}

# evaluation_fn -> (disbench metric, {disentanglement_lib result key: disbench score});
# the reference's num_active_dims means another thing than disbench's (module docstring)
METRICS = {
    "@beta_vae_sklearn": ("beta_vae", {"train_accuracy": "train_accuracy",
                                       "eval_accuracy": "eval_accuracy"}),
    "@factor_vae_score": ("factor_vae", {"train_accuracy": "train_accuracy",
                                         "eval_accuracy": "eval_accuracy",
                                         "num_active_dims": "dlib_num_active_dims"}),
    "@mig": ("mig", {"discrete_mig": "mig"}),
    "@dci": ("dci", {key: key for key in ("disentanglement", "completeness",
                                          "informativeness_train", "informativeness_test")}),
    "@sap_score": ("sap", {"SAP_score": "sap"}),
    "@modularity_explicitness": ("modularity", {
        "modularity_score": "modularity", "explicitness_score_train": "explicitness_train",
        "explicitness_score_test": "explicitness_test"}),
    "@irs": ("irs", {"IRS": "irs", "num_active_dims": "dlib_num_active_dims"}),
    "@unsupervised_metrics": ("unsupervised", {key: key for key in (
        "gaussian_total_correlation", "gaussian_wasserstein_correlation",
        "gaussian_wasserstein_correlation_norm", "mutual_info_score")}),
}

DOWNSTREAM_FN = "@downstream_task"
# predictor.predictor_fn -> disbench's predictor (disbench.metrics.downstream)
PREDICTORS = {"@logistic_regression_cv": "logreg", "@gradient_boosting_classifier": "gbt"}

TRAIN_TERMS = {"reconstruction_loss": "reconstruction", "kl_loss": "kl", "loss": "loss",
               "elbo": "elbo"}
NOT_SCORES = {"elapsed_time", "uuid"}
NOT_TRAIN_TERMS = NOT_SCORES | {"global_step"}
NOT_EVAL_SETTINGS = {"uuid", "path", "dataset.name"}

POSTPROCESS_FN = "postprocess_config.postprocess.postprocess_fn"
EVALUATION_FN = "evaluation_config.evaluation.evaluation_fn"
PREDICTOR_FN = "evaluation_config.predictor.predictor_fn"


class _Unusable(Exception):
    def __init__(self, state: str, reason: str):
        super().__init__(reason)
        self.state, self.reason = state, reason


def import_dlib(path: Path, study: str | None = None) -> Aggregate:
    """The trained models in a disentanglement_lib aggregated-results JSON as a disbench
    table (``source`` = "disentanglement_lib"); ``study`` defaults to the file's stem."""
    path = Path(path)
    study = study or path.stem
    groups: dict[str, list[dict]] = {}
    for record in _read_records(path):
        groups.setdefault(_model_key(record), []).append(record)
    rows, skipped, owners = [], [], {}
    for key, records in groups.items():
        got = _model_row(records, study, path)
        if isinstance(got, Skipped):
            skipped.append(got)
            continue
        if got["run_id"] in owners:
            raise DisbenchError(
                f"{path}: two trained models ({owners[got['run_id']]} and {key}) have the same "
                f"train_config, so both would be run {got['run_id']}; keep one of them in the "
                f"file.")
        owners[got["run_id"]] = key
        rows.append(got)
    if not rows:
        if skipped:
            reasons = "; ".join(f"{s.run_id}: {s.reason}" for s in skipped[:3])
            raise DisbenchError(f"{path} holds no trained model disbench can import "
                                f"({len(skipped)} left out: {reasons}).")
        raise DisbenchError(f"{path} holds no rows: aggregate some evaluation results with "
                            f"disentanglement_lib's aggregate_results_to_json first.")
    return Aggregate(to_frame(rows), skipped)


# -- reading -------------------------------------------------------------------------
def _read_records(path: Path) -> list[dict]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise DisbenchError(f"no file {path}: give the JSON that disentanglement_lib's "
                            f"aggregate_results_to_json wrote.") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DisbenchError(f"{path} cannot be read ({err}); give the JSON that "
                            f"disentanglement_lib's aggregate_results_to_json wrote.") from None
    try:
        data = json.loads(text)
    except ValueError as err:
        raise DisbenchError(f"{path} is not JSON ({err}); give the JSON that "
                            f"disentanglement_lib's aggregate_results_to_json wrote.") from None
    expected = ("expected disentanglement_lib's aggregated results (aggregate_results_to_json): "
                "a DataFrame.to_json() object {column: {row: value}}, or a list of row objects, "
                "with columns named train_config.* and evaluation_results.*")
    if isinstance(data, dict) and all(isinstance(v, dict) for v in data.values()):
        records = _columns_to_records(data)
        columns = set(data)
    elif isinstance(data, list) and all(isinstance(r, dict) for r in data):
        records = [{k: v for k, v in r.items() if v is not None} for r in data]
        columns = {k for r in data for k in r}
    elif isinstance(data, dict) and any(k.startswith("train_config.") for k in data):
        raise DisbenchError(f"{path} holds the results of one evaluation (a flat object), not "
                            f"an aggregated table; {expected}.")
    else:
        raise DisbenchError(f"{path} holds a JSON {type(data).__name__} of another shape; "
                            f"{expected}.")
    missing = [p for p in ("train_config.", "evaluation_results.")
               if not any(c.startswith(p) for c in columns)]
    if missing:
        found = ", ".join(sorted(columns)[:6]) or "none"
        raise DisbenchError(f"{path} has no column named {' or '.join(m + '*' for m in missing)} "
                            f"(columns found: {found}); {expected}.")
    return records


def _columns_to_records(data: dict[str, dict]) -> list[dict]:
    rows: dict[str, dict] = {}
    for column, values in data.items():
        for index, value in values.items():
            row = rows.setdefault(index, {})
            if value is not None:
                row[column] = value
    order = sorted(rows, key=lambda i: (0, int(i), "") if i.isdigit() else (1, 0, i))
    return [rows[i] for i in order]


def _section(record: dict, step: str) -> dict:
    prefix = f"{step}."
    return {k[len(prefix):]: v for k, v in record.items() if k.startswith(prefix)}


def _model_key(record: dict) -> str:
    uuid = record.get("train_results.uuid")
    if uuid is not None:
        return f"train_results.uuid {uuid}"
    return "train_config " + json.dumps(_section(record, "train_config"), sort_keys=True)


@functools.lru_cache(maxsize=4096)
def _parse_gin(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def _gin(value):
    return _parse_gin(value.strip()) if isinstance(value, str) else value


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _same(a, b) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float)
                      and math.isnan(a) and math.isnan(b))


def _merge(into: dict, values: dict, run_id: str, path: Path, prefix: str = "") -> None:
    for key, value in values.items():
        column = prefix + key
        if column in into and not _same(into[column], value):
            raise DisbenchError(
                f"{path}: trained model {run_id} has two values for {column}: "
                f"{into[column]!r} and {value!r}; the file is corrupt (the rows of one trained "
                f"model must agree). Aggregate the results again.")
        into[column] = value


# -- one trained model ---------------------------------------------------------------
def _number(config: dict, key: str, integer: bool = False, required: bool = False):
    if key not in config:
        if required:
            raise _Unusable("unreadable", f"train_config.{key} is missing")
        return None
    value = _gin(config[key])
    if not _is_number(value) or (integer and not float(value).is_integer()):
        kind = "an integer" if integer else "a number"
        raise _Unusable("unreadable", f"train_config.{key} = {config[key]!r} is not {kind}")
    return int(value) if integer else float(value)


def _run_id(config: dict) -> str:
    model = str(_gin(config.get("model.name", "unknown")))
    dataset = str(_gin(config.get("dataset.name", "unknown")))
    seed = _gin(config.get("model.random_seed", "?"))
    digest = hashlib.sha256(json.dumps(sorted(config.items())).encode()).hexdigest()[:10]
    return f"{MODELS.get(model, model)}-{DATASETS.get(dataset, dataset)}-s{seed}-{digest}"


def _identity(config: dict, run_id: str) -> dict:
    raw_model = _gin(config.get("model.name"))
    if raw_model is None:
        raise _Unusable("unreadable", "train_config.model.name is missing")
    if raw_model not in MODELS:
        raise _Unusable("unsupported", f"model {raw_model!r} has no disbench counterpart; "
                        f"imported: {', '.join(MODELS)}")
    raw_dataset = _gin(config.get("dataset.name"))
    if raw_dataset is None:
        raise _Unusable("unreadable", "train_config.dataset.name is missing")
    if raw_dataset not in DATASETS:
        raise _Unusable("unsupported", f"data set {raw_dataset!r} has no disbench counterpart; "
                        f"imported: {', '.join(DATASETS)}")
    model = MODELS[raw_model]
    hp = {name: _number(config, key, required=True)
          for name, key in HYPERPARAMETERS[model].items()}
    if "lambda_d_factor" in hp:
        hp["lambda_d"] = hp.pop("lambda_d_factor") * hp["lambda_od"]
    strength = strength_of(model)
    encoder = _gin(config.get("encoder.encoder_fn"))
    lr_key = "vae/AdamOptimizer.learning_rate"
    if lr_key not in config:
        lr_key = "AdamOptimizer.learning_rate"
    max_steps = _number(config, "model.training_steps", integer=True)
    row = {
        "source": SOURCE,
        "run_id": run_id,
        "model": model,
        "dataset": DATASETS[raw_dataset],
        "data_source": "official",
        "seed": _number(config, "model.random_seed", integer=True, required=True),
        "arch": ARCHS.get(encoder, str(encoder).lstrip("@")) if encoder is not None else None,
        "latent_dim": _number(config, "encoder.num_latent", integer=True),
        "max_steps": max_steps,
        "batch_size": _number(config, "model.batch_size", integer=True),
        "lr": _number(config, lr_key),
        "strength_name": strength,
        "strength": hp.get(strength) if strength else None,
        "state": "completed",
        "step": max_steps,
        "attempts": None,
        "device": None,
        "host": None,
        "started_at": None,
        "finished_at": None,
    }
    row.update({f"hp.{k}": v for k, v in hp.items()})
    return row


def _train_terms(results: dict) -> dict:
    return {f"train.{TRAIN_TERMS.get(k, k)}": float(v) for k, v in results.items()
            if k not in NOT_TRAIN_TERMS and _is_number(v)}


def _columns(fn: str, record: dict, results: dict) -> tuple[str, dict]:
    """The evaluation's name (``mig``) and ``{result key: column}`` (``mig.mig``), both
    without the representation; keys without a disbench counterpart keep their name."""
    if fn == DOWNSTREAM_FN:
        return _downstream_columns(record, results)
    name, keys = METRICS.get(fn, (fn.lstrip("@"), {}))
    return name, {k: f"{name}.{keys[k]}" if k in keys else f"{fn.lstrip('@')}.{k}"
                  for k in results}


def _downstream_columns(record: dict, results: dict) -> tuple[str, dict]:
    """The downstream task by its predictor: ``10:mean_test_accuracy`` with
    ``@logistic_regression_cv`` is disbench's ``downstream.logreg_10_mean_test_accuracy``;
    another predictor's keys stay under the reference's name, after the predictor's
    (``downstream_task.mlp_10:mean_test_accuracy``)."""
    predictor = record.get(PREDICTOR_FN)
    predictor = None if predictor is None else str(_gin(predictor))
    if predictor in PREDICTORS:
        kind = PREDICTORS[predictor]
        return f"downstream.{kind}", {k: f"downstream.{kind}_{k.replace(':', '_', 1)}"
                                      for k in results}
    if predictor is None:
        return "downstream_task", {k: f"downstream_task.{k}" for k in results}
    other = predictor.lstrip("@")
    return f"downstream_task.{other}", {k: f"downstream_task.{other}_{k}" for k in results}


def _scores(record: dict) -> tuple[str, dict, dict]:
    """The evaluation's name (``mean.mig``), its settings and its scores as table columns."""
    results = {k: v for k, v in _section(record, "evaluation_results").items()
               if k not in NOT_SCORES and _is_number(v)}
    postprocess, evaluation = record.get(POSTPROCESS_FN), record.get(EVALUATION_FN)
    if postprocess is None or evaluation is None:
        if results:
            raise _Unusable("unreadable", f"a row has evaluation results but no "
                            f"{POSTPROCESS_FN if postprocess is None else EVALUATION_FN}")
        return "", {}, {}
    fn = str(_gin(evaluation))
    part = REPRESENTATIONS.get(str(_gin(postprocess)))
    if part is None:
        raise _Unusable("unsupported", f"postprocessing {postprocess!r} is neither of "
                        f"{', '.join(REPRESENTATIONS)}")
    name, columns = _columns(fn, record, results)
    scores = {f"{part}.{columns[k]}": float(v) for k, v in results.items()}
    settings = {k: v for k, v in _section(record, "evaluation_config").items()
                if k not in NOT_EVAL_SETTINGS}
    return f"{part}.{name}", settings, scores


def _model_row(records: list[dict], study: str, path: Path) -> dict | Skipped:
    run_id = _run_id(_section(records[0], "train_config"))
    config, train, scores, settings = {}, {}, {}, {}
    try:
        for record in records:
            _merge(config, _section(record, "train_config"), run_id, path, "train_config.")
            _merge(train, _section(record, "train_results"), run_id, path, "train_results.")
            name, evaluation, values = _scores(record)
            if name:
                _merge(settings, {name: evaluation}, run_id, path, "evaluation settings of ")
            _merge(scores, values, run_id, path)
        config = {k.removeprefix("train_config."): v for k, v in config.items()}
        train = {k.removeprefix("train_results."): v for k, v in train.items()}
        row = {"study": study, **_identity(config, run_id)}
    except _Unusable as why:
        return Skipped(study, run_id, why.state, f"{why.reason} ({len(records)} rows)")
    settings = {k.removeprefix("evaluation settings of "): v for k, v in settings.items()}
    elapsed = train.get("elapsed_time")
    row.update({
        "duration_s": float(elapsed) if _is_number(elapsed) else None,
        "eval_settings": SOURCE if settings else None,
        "eval_key": eval_key(settings),
        "eval_boosting": "sklearn" if settings else None,
    })
    row.update(_train_terms(train))
    row.update(scores)
    return row
