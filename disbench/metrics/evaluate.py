"""The metric suite: every metric of the reference study (and IRS) on a dataset and a
representation.

``evaluate(dataset, representation_fn, names=None, config="locatello", seed=0)``
scores any representation on any object with the ground-truth dataset protocol;
``score_model(model, dataset, eval_cfg, seed, device)`` scores a trained disbench
model on the representations its settings name (by default every metric on the mean
representation and the unsupervised scores also on the sampled one; the study scored
every metric on both). See docs/metrics.md.

Settings come from a preset in ``disbench/conf/eval/`` (``locatello``: the study's
sample counts; ``fast``: fewer samples, same estimators) or from a dict, merged over
the preset its ``name`` names (``locatello`` otherwise); ``locatello_fast`` is
``locatello`` with ``boosting: fast``. Besides one section per metric they hold three
suite-wide settings:

* ``seed_from``: ``run`` (default) seeds the evaluation with the given seed (a trained
  run's own seed); ``study`` with the fixed ``STUDY_SEED``, so every model of a study
  is scored on the same points, as in the reference;
* ``representations``: ``{"mean": ..., "sampled": ...}``, the metrics ``score_model``
  computes on each representation, ``"all"`` or a list of metric names;
* ``boosting``: the gradient-boosted trees of DCI and the downstream task, ``sklearn``
  (default: the reference's estimator) or ``fast`` (the same algorithm on LightGBM's
  tree learner, ``disbench.metrics.boosting``).

Randomness: each metric draws all its samples from one numpy ``Generator`` seeded
with ``(seed, crc32(metric name))``, so the same seed gives the same values, and a
metric's value does not depend on which other metrics run. The mean and the sampled
representation of one metric start from the same generator. The reference
(disentanglement_lib ``bin/dlib_reproduce``) draws one seed per (representation,
metric) pair, in turn, from a master ``RandomState(0)``: every model gets the same
seeds, so every model is scored on the same points (``seed_from: study``), and each
pair on points of its own.
"""

from __future__ import annotations

import copy
import math
import sys
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from disbench.config import load_eval_preset
from disbench.metrics.beta_vae import compute_beta_vae
from disbench.metrics.boosting import check_boosting
from disbench.metrics.dci import compute_dci
from disbench.metrics.downstream import compute_downstream, stop_workers
from disbench.metrics.factor_vae import compute_factor_vae
from disbench.metrics.fairness import fairness_from_sampler
from disbench.metrics.generation import default_cache_dir, load_inception, score_generation
from disbench.metrics.heldout import heldout_scores
from disbench.metrics.irs import compute_irs
from disbench.metrics.mig import compute_mig
from disbench.metrics.modularity import compute_modularity_explicitness
from disbench.metrics.sampling import (
    MAX_TABLE_GRID,
    CodeSampler,
    CodeTable,
    EncodeStats,
    Representation,
    check_dataset,
    model_representation,
)
from disbench.metrics.sap import compute_sap
from disbench.metrics.udr import model_udr_sample
from disbench.metrics.unsupervised import compute_unsupervised
from disbench.metrics.utils import MetricInputError

EVAL_CONF_DIR = Path(__file__).resolve().parents[1] / "conf" / "eval"

# metric -> {setting: kind}; kinds: "count" (int >= 2), "positive" (int >= 1),
# "counts" (non-empty list of counts), "fraction" (float in [0, 1]), "threshold" (float >= 0),
# "path" (a file name, or None)
SCHEMA: dict[str, dict[str, str]] = {
    "beta_vae": {"batch_size": "count", "num_train": "count", "num_eval": "count"},
    "factor_vae": {"batch_size": "count", "num_train": "count", "num_eval": "count",
                   "num_variance_estimate": "count", "prune_threshold": "threshold"},
    "mig": {"num_train": "count", "num_bins": "positive"},
    "dci": {"num_train": "count", "num_test": "count"},
    "sap": {"num_train": "count", "num_test": "count"},
    "modularity": {"num_train": "count", "num_test": "count", "num_bins": "positive"},
    "irs": {"num_train": "count", "diff_quantile": "fraction", "num_bins": "positive"},
    "unsupervised": {"num_train": "count", "num_bins": "positive"},
    "downstream": {"num_train": "counts", "num_test": "count"},
    "fairness": {"num_train": "count", "num_test_points_per_class": "positive"},
}
METRICS = tuple(SCHEMA)
# Scores of the model itself rather than of a representation, computed once by
# score_model: the held-out reconstruction and ELBO (disbench.metrics.heldout), the
# codes of the shared sample that `disbench aggregate` computes UDR from
# (disbench.metrics.udr.model_udr_sample), and the Frechet distances of decoded images
# (disbench.metrics.generation; its extractor's training settings are part of it).
MODEL_SCHEMA: dict[str, dict[str, str]] = {
    "heldout": {"num_points": "count"},
    "udr": {"num_points": "count"},
    "fid": {"num_samples": "count", "inception_weights": "path", "extractor_steps": "positive",
            "extractor_batch_size": "count", "extractor_features": "count"},
}
# suite-wide settings (beside the metrics' sections), as in the presets
SUITE_SETTINGS = ("seed_from", "representations", "boosting")
SEED_FROM = ("run", "study")  # the evaluation seed: the given (run's) seed, or STUDY_SEED
STUDY_SEED = 0  # as the reference's master seed (bin/dlib_reproduce: RandomState(0))
REPRESENTATIONS = ("mean", "sampled")


# -- settings ------------------------------------------------------------------
def presets() -> list[str]:
    """Names of the evaluation presets (``disbench/conf/eval/*.yaml``)."""
    return sorted(p.stem for p in EVAL_CONF_DIR.glob("*.yaml"))


def _read_preset(name: str) -> dict:
    path = EVAL_CONF_DIR / f"{name}.yaml"
    if not path.is_file():
        raise MetricInputError(f"unknown eval settings '{name}'; valid: {', '.join(presets())}")
    return copy.deepcopy(load_eval_preset(path))


def _check_value(where: str, kind: str, value):
    def is_int(v) -> bool:
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

    if kind == "path":
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise MetricInputError(f"eval setting {where} must be a file name or null; got "
                                   f"{value!r}.")
        return value
    if kind == "counts":
        if (not isinstance(value, (list, tuple)) or not value
                or not all(is_int(v) and v >= 2 for v in value)):
            raise MetricInputError(f"eval setting {where} must be a non-empty list of integers "
                                   f">= 2; got {value!r}.")
        return [int(v) for v in value]
    if kind in ("count", "positive"):
        low = 2 if kind == "count" else 1
        if not is_int(value) or value < low:
            raise MetricInputError(f"eval setting {where} must be an integer >= {low}; got "
                                   f"{value!r}.")
        return int(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise MetricInputError(f"eval setting {where} must be a number; got {value!r}.")
    if kind == "fraction" and not 0.0 <= value <= 1.0:
        raise MetricInputError(f"eval setting {where} must lie in [0, 1]; got {value!r}.")
    if kind == "threshold" and value < 0:
        raise MetricInputError(f"eval setting {where} must be >= 0; got {value!r}.")
    return float(value)


def _check_seed_from(value) -> str:
    if value not in SEED_FROM:
        raise MetricInputError(f"eval setting seed_from must be one of {', '.join(SEED_FROM)}; "
                               f"got {value!r}.")
    return value


def _check_representations(given, base: Mapping) -> dict:
    """``{"mean": "all" | [metric, ...], "sampled": ...}``: ``given`` merged over
    ``base``; a list is put in suite order."""
    if not isinstance(given, Mapping):
        raise MetricInputError(f"eval setting representations must be a mapping of "
                               f"{', '.join(REPRESENTATIONS)} to 'all' or a list of metrics; "
                               f"got {given!r}.")
    bad = sorted(map(str, set(given) - set(REPRESENTATIONS)))
    if bad:
        raise MetricInputError(f"unknown representation(s) {', '.join(bad)} in eval setting "
                               f"representations; valid: {', '.join(REPRESENTATIONS)}")
    out = {}
    for representation in REPRESENTATIONS:
        value = given.get(representation, base.get(representation))
        where = f"representations.{representation}"
        if value == "all":
            out[representation] = "all"
            continue
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise MetricInputError(f"eval setting {where} must be 'all' or a list of metric "
                                   f"names; got {value!r}.")
        unknown = [v for v in value if v not in SCHEMA]
        if unknown:
            raise MetricInputError(f"unknown metric(s) {', '.join(map(repr, unknown))} in eval "
                                   f"setting {where}; valid: {', '.join(METRICS)}")
        out[representation] = [m for m in METRICS if m in value]
    return out


def representation_metrics(settings: Mapping, representation: str) -> list[str]:
    """The metrics resolved ``settings`` compute on ``representation`` (mean, sampled)."""
    chosen = settings["representations"][representation]
    return list(METRICS) if chosen == "all" else list(chosen)


def evaluation_seed(settings: Mapping, seed: int) -> int:
    """The seed the metrics' generators are seeded with: ``seed`` (``seed_from: run``) or
    ``STUDY_SEED`` (``seed_from: study``, whatever ``seed``)."""
    return STUDY_SEED if settings["seed_from"] == "study" else seed


def resolve_settings(config: str | Mapping = "locatello") -> dict:
    """Complete, checked evaluation settings: ``{"name", "seed_from", "representations",
    metric: {setting: value}}``.

    ``config`` is a preset name or a mapping; a mapping is merged over the preset its
    ``name`` names (over ``locatello`` when it names none or an unknown one), per metric
    and per representation. Unknown metrics or settings, and values of the wrong type,
    raise ``MetricInputError``.
    """
    if isinstance(config, str):
        if config == "none":
            raise MetricInputError("eval=none computes no metrics; valid eval settings: "
                                   f"{', '.join(p for p in presets() if p != 'none')}")
        given = _read_preset(config)
    elif isinstance(config, Mapping):
        given = copy.deepcopy(dict(config))
    else:
        raise MetricInputError(f"config must be a preset name ({', '.join(presets())}) or a "
                               f"dict of settings; got {type(config).__name__}.")
    name = given.pop("name", None)
    # when a run is scored (at the end of its training, or later by `disbench eval`), not
    # how: checked, and left out of the settings that metrics.json records
    defer = given.pop("defer", False)
    if not isinstance(defer, bool):
        raise MetricInputError(f"eval.defer must be true or false; got {defer!r}.")
    if name == "none":
        raise MetricInputError("eval settings named 'none' compute no metrics.")
    if name is not None and not isinstance(name, str):
        raise MetricInputError(f"eval setting name must be a string; got {name!r}.")
    base_name = name if name in presets() else "locatello"
    base = _read_preset(base_name)
    base.pop("name", None)
    base.pop("defer", None)
    settings: dict = {"name": name if name is not None else base_name}
    unknown = sorted(map(str, set(given) - set(SCHEMA) - set(MODEL_SCHEMA)
                         - set(SUITE_SETTINGS)))
    if unknown:
        hint = (" (the evaluation seed is the run's seed, or with seed_from: study a fixed "
                "one; metrics.json records the run's seed as seed)" if "seed" in unknown else "")
        raise MetricInputError(f"unknown metric(s) {', '.join(unknown)} in the eval settings; "
                               f"valid: {', '.join(METRICS)}, and the settings "
                               f"{', '.join((*MODEL_SCHEMA, *SUITE_SETTINGS))}{hint}")
    settings["seed_from"] = _check_seed_from(given.get("seed_from", base.get("seed_from", "run")))
    settings["representations"] = _check_representations(
        given.get("representations", {}),
        base.get("representations", {"mean": "all", "sampled": ["unsupervised"]}))
    settings["boosting"] = check_boosting(given.get("boosting", base.get("boosting", "sklearn")),
                                          "eval setting boosting")
    for metric, schema in {**SCHEMA, **MODEL_SCHEMA}.items():
        section = given.get(metric, {})
        if not isinstance(section, Mapping):
            raise MetricInputError(f"eval setting {metric} must be a mapping of "
                                   f"{', '.join(schema)}; got {section!r}.")
        bad = sorted(set(section) - set(schema))
        if bad:
            raise MetricInputError(f"unknown setting(s) {', '.join(map(str, bad))} for {metric}; "
                                   f"valid: {', '.join(schema)}")
        merged = {**base.get(metric, {}), **section}
        settings[metric] = {key: _check_value(f"{metric}.{key}", kind, merged[key])
                            for key, kind in schema.items()}
    return settings


# -- the metrics on a sampler ----------------------------------------------------
def _train_test(sampler: CodeSampler, rng, num_train: int, num_test: int):
    factors_train, codes_train = sampler.sample(num_train, rng)
    factors_test, codes_test = sampler.sample(num_test, rng)
    return codes_train, factors_train, codes_test, factors_test


def _beta_vae(sampler, rng, s, **_):
    return compute_beta_vae(sampler, rng, **s)


def _factor_vae(sampler, rng, s, **_):
    return compute_factor_vae(sampler, rng, **s)


def _mig(sampler, rng, s, **_):
    factors, codes = sampler.sample(s["num_train"], rng)
    return compute_mig(codes, factors, num_bins=s["num_bins"])


def _dci(sampler, rng, s, **estimator):
    return compute_dci(*_train_test(sampler, rng, s["num_train"], s["num_test"]), **estimator)


def _sap(sampler, rng, s, **_):
    return compute_sap(*_train_test(sampler, rng, s["num_train"], s["num_test"]))


def _modularity(sampler, rng, s, **_):
    return compute_modularity_explicitness(
        *_train_test(sampler, rng, s["num_train"], s["num_test"]), num_bins=s["num_bins"])


def _irs(sampler, rng, s, **_):
    factors, codes = sampler.sample(s["num_train"], rng)
    return compute_irs(codes, factors, diff_quantile=s["diff_quantile"], num_bins=s["num_bins"])


def _unsupervised(sampler, rng, s, **_):
    _, codes = sampler.sample(s["num_train"], rng)
    return compute_unsupervised(codes, num_bins=s["num_bins"])


def _downstream(sampler, rng, s, **estimator):
    return compute_downstream(sampler, rng, num_train=tuple(s["num_train"]),
                              num_test=s["num_test"], **estimator)


def _fairness(sampler, rng, s, **estimator):
    return fairness_from_sampler(sampler, rng, s["num_train"], s["num_test_points_per_class"],
                                 **estimator)


_RUNNERS: dict[str, Callable] = {
    "beta_vae": _beta_vae, "factor_vae": _factor_vae, "mig": _mig, "dci": _dci, "sap": _sap,
    "modularity": _modularity, "irs": _irs, "unsupervised": _unsupervised,
    "downstream": _downstream, "fairness": _fairness,
}


def metric_rng(seed: int, metric: str) -> np.random.Generator:
    """The generator a metric draws every sample from."""
    return np.random.default_rng([seed, zlib.crc32(metric.encode())])


def _check_names(names: Sequence[str] | str | None) -> list[str]:
    if names is None:
        return list(METRICS)
    if isinstance(names, str):
        names = [names]
    names = list(names)
    unknown = [n for n in names if n not in SCHEMA]
    if unknown:
        raise MetricInputError(f"unknown metric(s) {', '.join(map(repr, unknown))}; valid: "
                               f"{', '.join(METRICS)}")
    if not names:
        raise MetricInputError(f"no metric selected; valid: {', '.join(METRICS)}")
    return names


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise MetricInputError(f"seed must be a non-negative integer; got {seed!r}.")
    return int(seed)


def _use_table(dataset, factor_sizes, encode_once: bool | None) -> bool:
    deterministic = getattr(dataset, "deterministic", False) is True
    fits = math.prod(factor_sizes) <= MAX_TABLE_GRID
    if encode_once is None:
        return deterministic and fits
    if encode_once and not deterministic:
        raise MetricInputError(
            f"encode_once=True needs a dataset whose observations are a fixed function of "
            f"their factors (deterministic == True); {type(dataset).__name__} is not.")
    if encode_once and not fits:
        raise MetricInputError("encode_once=True: the factor grid is too large for a table.")
    return bool(encode_once)


def _run_metrics(dataset, representation: Representation, table: CodeTable | None,
                 stats: EncodeStats, names: list[str], settings: dict, seed: int, sampled: bool,
                 batch_size: int, n_jobs: int | None, timings: dict | None,
                 bar=None) -> dict[str, float]:
    sampler = CodeSampler(dataset, representation, sampled=sampled, table=table,
                          batch_size=batch_size, stats=stats)
    results: dict[str, float] = {}
    for name in names:
        if bar is not None:  # a tqdm bar over the suite: which metric is running
            bar.set_description_str(f"scoring {name} ({'sampled' if sampled else 'mean'})")
        start, encode_before = time.perf_counter(), stats.seconds
        try:
            # One BLAS thread: the classifiers work on small matrices (N x D codes), where
            # threaded BLAS only adds overhead (4x slower on 2 busy cores). Encoding (torch)
            # keeps its threads.
            with threadpool_limits(limits=1, user_api="blas"):
                scores = _RUNNERS[name](sampler, metric_rng(seed, name), settings[name],
                                        n_jobs=n_jobs, boosting=settings["boosting"])
        except MetricInputError as err:
            raise MetricInputError(f"metric '{name}' (eval settings '{settings['name']}'): "
                                   f"{err}") from None
        for key, value in scores.items():
            results[f"{name}.{key}"] = float(value)
        if timings is not None:
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - start
            timings[f"{name}.encode"] = (timings.get(f"{name}.encode", 0.0)
                                         + stats.seconds - encode_before)
        if bar is not None:
            bar.update()
    return results


def _check_batch_size(batch_size) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise MetricInputError(f"batch_size must be a positive integer; got {batch_size!r}.")
    return int(batch_size)


def evaluate(dataset, representation_fn: Callable, names: Sequence[str] | str | None = None,
             config: str | Mapping = "locatello", seed: int = 0, *,
             representation: str = "mean", encode_once: bool | None = None,
             batch_size: int = 1024, n_jobs: int | None = -1,
             timings: dict | None = None) -> dict[str, float]:
    """Score a representation with the metric suite.

    Args:
        dataset: any object with the ground-truth dataset protocol
            (``disbench.data.GroundTruthDataset``): ``factor_sizes``,
            ``sample_factors(num, rng)``, ``sample_observations_from_factors(factors,
            rng)`` and, optionally, ``deterministic``.
        representation_fn: maps a float32 numpy batch of observations (N, C, H, W) in
            [0, 1] (at most ``batch_size`` of them) to codes, a numpy array (N, D), or
            to a pair ``(mean, log_var)`` of such arrays.
        names: the metrics to compute (default: all of ``METRICS``).
        config: ``"locatello"``, ``"fast"`` or a dict of settings (see
            ``resolve_settings``). Its ``seed_from`` applies (``study``: ``seed`` is not
            used); its ``representations`` do not: ``names`` and ``representation``
            choose what is computed.
        seed: every sample is drawn from generators seeded by it (with
            ``seed_from: run``, the presets' default).
        representation: ``"mean"`` (the codes, or the mean of a (mean, log_var) pair)
            or ``"sampled"`` (codes drawn from N(mean, exp(log_var))).
        encode_once: encode each grid point at most once and let every metric read
            from that table (default: when ``dataset.deterministic`` is True; the
            representation_fn must then be deterministic too). False encodes the
            sampled observations of every metric on the fly.
        batch_size: observations per call of ``representation_fn``.
        n_jobs: joblib workers for DCI and the downstream task (-1: all cores).
        timings: if given, filled with seconds per metric (``"<metric>"``, encoding
            included, and ``"<metric>.encode"``), ``"encode"`` and ``"num_encoded"``.

    Returns:
        A flat dict ``{"<metric>.<score>": float}``, e.g. ``"beta_vae.eval_accuracy"``.
    """
    names = _check_names(names)
    settings = resolve_settings(config)
    seed = _check_seed(seed)
    batch_size = _check_batch_size(batch_size)
    if representation not in ("mean", "sampled"):
        raise MetricInputError(f"representation must be 'mean' or 'sampled'; got "
                               f"{representation!r}.")
    factor_sizes = check_dataset(dataset)
    rep = Representation(representation_fn)
    stats = EncodeStats()
    table = None
    if _use_table(dataset, factor_sizes, encode_once):
        table = CodeTable(dataset, rep, factor_sizes, batch_size, stats)
    results = _run_metrics(dataset, rep, table, stats, names, settings,
                           evaluation_seed(settings, seed), representation == "sampled",
                           batch_size, n_jobs, timings)
    if timings is not None:
        timings["encode"] = stats.seconds
        timings["num_encoded"] = stats.num_encoded
    return results


def resolve_device(device=None):
    """A torch device: None or ``"auto"`` picks CUDA when available; ``"gpu"`` means CUDA."""
    import torch

    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "gpu":
        device = "cuda"
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise MetricInputError(f"bad device {device!r}: {err}") from None


def score_model(model, dataset, eval_cfg: Mapping | str, seed: int, device=None, *,
                batch_size: int | None = None, n_jobs: int | None = -1,
                encode_once: bool | None = None, timings: dict | None = None,
                progress: bool = False, data_dir=None) -> dict:
    """Score a trained model (``model.encode(x) -> (mean, log_var)``) with the suite.

    The settings' ``representations`` name the metrics computed on the mean
    representation and on the sampled one (codes drawn from N(mean, exp(log_var)) with
    the metric's generator). The presets: every metric on the mean, the unsupervised
    scores also on the sampled one; ``{"sampled": "all"}`` adds every metric on the
    sampled one, as the study (disentanglement_lib ``bin/dlib_reproduce`` runs every
    metric config on both postprocessed representations). On a deterministic dataset
    each grid image is encoded at most once, and both representations read from the
    same table.

    Args:
        model: a torch module with ``encode``; it is run in eval mode on ``device`` and
            put back where (and in the mode) it was.
        dataset: a ground-truth dataset.
        eval_cfg: the eval settings (a preset name, or a dict such as the resolved
            ``cfg.eval`` of a run: ``{"name": "locatello", ...}``).
        seed: the run's seed: the evaluation seed with ``seed_from: run``; with
            ``seed_from: study`` every run is scored with ``STUDY_SEED`` instead.
        device: where to encode (None / "auto": CUDA when available).
        batch_size: observations per encoder call (default 1024 on CPU, 4096 on CUDA).
        n_jobs, encode_once: as for ``evaluate``.
        timings: if given, filled as by ``evaluate`` for the mean representation, with the
            sampled pass under ``"sampled"``; ``"encode"`` and ``"num_encoded"`` cover both;
            ``"heldout"``, ``"udr_sample"`` and ``"generation"``: seconds of the model's own
            scores.
        progress: show a progress bar on stderr, one step per metric and representation
            (and the model's own scores), naming the metric that is running; below it, a
            bar of the images being encoded when a metric encodes ten batches or more.
        data_dir: the data directory, whose ``feature_extractors`` folder caches the
            trained feature extractor of ``generation`` (default: ``$DISBENCH_DATA``, else
            ``~/.cache/disbench``).

    Besides the metrics, the model itself is scored once: its reconstruction loss, KL
    and ELBO on ``heldout.num_points`` observations drawn with the evaluation seed
    (``disbench.metrics.heldout``), and its codes of the study's shared UDR sample of
    ``udr.num_points`` observations (``disbench.metrics.udr.model_udr_sample``), from
    which ``disbench aggregate`` computes UDR over each group of seeds, and the Frechet
    distances between its decoded images and ``fid.num_samples`` observations in the
    feature space of a classifier of the dataset's factors, and with
    ``fid.inception_weights`` in Inception's (FID) (``disbench.metrics.generation``).

    Returns:
        ``{"mean": {"<metric>.<score>": float}, "sampled": {...}, "heldout":
        {"reconstruction", "kl", "elbo"}, "generation": {"fd_factors.samples",
        "fd_factors.reconstructions", ...}, "eval": settings, "udr_sample": {...}}``
        where ``settings`` are the complete settings used, with ``"seed"``: the run's
        seed given here (what ``disbench eval`` compares), whatever ``seed_from``. A
        representation with no metrics gets ``{}``; a deterministic encoder has no
        ``kl``, ``elbo``, ``udr_sample`` or ``generation`` ``*.samples`` (no prior to
        sample). ``disbench.store.write_scores`` stores the result (``udr_sample`` as
        arrays beside ``metrics.json``).
    """
    import torch

    settings = resolve_settings(eval_cfg)
    seed = _check_seed(seed)
    device = resolve_device(device)
    batch_size = _check_batch_size(batch_size or (4096 if device.type == "cuda" else 1024))
    if not callable(getattr(model, "encode", None)):
        raise MetricInputError(f"the model {type(model).__name__} has no encode(x) -> "
                               f"(mean, log_var) method.")
    factor_sizes = check_dataset(dataset)
    param = next(iter(model.parameters()), None)
    original_device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    # before the long work: a missing or unreadable Inception file ends here
    inception = load_inception(settings["fid"]["inception_weights"], device,
                               tuple(dataset.observation_shape))
    model.eval().to(device)
    passes = {r: representation_metrics(settings, r) for r in REPRESENTATIONS}
    bar = tqdm(total=sum(map(len, passes.values())) + len(MODEL_SCHEMA), unit="metric",
               file=sys.stderr, disable=not progress, dynamic_ncols=True)
    try:
        rep = Representation(model_representation(model, device))
        stats = EncodeStats(progress=progress)
        table = None
        if _use_table(dataset, factor_sizes, encode_once):
            table = CodeTable(dataset, rep, factor_sizes, batch_size, stats)
        eval_seed = evaluation_seed(settings, seed)
        scores = {}
        for representation, names in passes.items():
            sampled = representation == "sampled"
            pass_timings = timings
            if sampled and timings is not None:
                pass_timings = timings.setdefault("sampled", {})
            scores[representation] = {} if not names else _run_metrics(
                dataset, rep, table, stats, names, settings, eval_seed, sampled, batch_size,
                n_jobs, pass_timings, bar)
        if timings is not None:  # both representations
            timings["encode"] = stats.seconds
            timings["num_encoded"] = stats.num_encoded
        bar.set_description_str("scoring the held-out reconstruction")
        start = time.perf_counter()
        scores["heldout"] = heldout_scores(model, dataset, settings["heldout"]["num_points"],
                                           metric_rng(eval_seed, "heldout"), device,
                                           batch_size)
        bar.update()
        bar.set_description_str("encoding the UDR sample")
        middle = time.perf_counter()
        udr_sample = model_udr_sample(model, dataset, settings["udr"]["num_points"], device,
                                      batch_size)
        if udr_sample is not None:
            scores["udr_sample"] = udr_sample
        bar.update()
        bar.set_description_str("scoring the decoded images (a dataset's first run trains "
                                "its feature extractor)")
        late = time.perf_counter()
        scores["generation"] = score_generation(
            model, dataset, settings["fid"], metric_rng(eval_seed, "fid"), device, batch_size,
            default_cache_dir(data_dir), inception)
        bar.update()
        if timings is not None:
            timings["heldout"] = middle - start
            timings["udr_sample"] = late - middle
            timings["generation"] = time.perf_counter() - late
    finally:
        bar.close()
        model.to(original_device).train(was_training)
        stop_workers()
    return {**scores, "eval": {**settings, "seed": seed}}
