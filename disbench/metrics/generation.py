"""Generation quality: Frechet distances between a model's decoded images and its dataset's.

The Frechet distance between two Gaussians fitted to image features (Dowson & Landau 1982),

    FD = ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2)),

is the Frechet Inception Distance (FID) of Heusel, Ramsauer, Unterthiner, Nessler &
Hochreiter (2017), "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
Equilibrium", NeurIPS (arXiv:1706.08500), when the features are the 2048-d pool features
of the Inception-v3 network those authors used. Means and covariances (``np.cov``, N - 1)
are in float64; the square root is ``scipy.linalg.sqrtm``: when it is not finite (a
singular product) the covariances get 1e-6 added to their diagonals, and a complex result
keeps its real part when the imaginary part of its diagonal is below 1e-3 (rounding), as
in the reference implementations (bioinf-jku/TTUR, mseitzer/pytorch-fid); above that the
distance is NaN, with a ``MetricWarning``.

Two feature spaces:

* ``fd_factors``: the penultimate layer of a convolutional classifier that disbench
  trains on the dataset itself, one softmax head per ground-truth factor. No network has
  to be downloaded, and the features are the ones that tell the dataset's factors apart.
  It is trained once per dataset and extractor setting (``factor_classifier``,
  ``factor_extractor``) from a fixed seed, and cached on disk. The distances are not FID
  and not comparable with FID values, nor between datasets or extractor settings.
* ``fid``: true FID, when ``inception_weights`` names a local copy of the TorchScript
  Inception-v3 of StyleGAN2-ADA-PyTorch's metrics (``inception-2015-12-05.pt``; Karras et
  al. 2020, arXiv:2006.06676), called as ``detector(uint8 NCHW RGB, return_features=True)``
  and resizing inside itself. Grey images are repeated to three channels, as that code
  does.

Each space scores two sets of ``num_samples`` images against ``num_samples`` real
observations:

* ``samples``: decoded prior samples, sigmoid(decode(z)). A model that draws from its
  prior itself, ``model.sample_prior(num, generator) -> z (num, D)`` with a
  ``torch.Generator`` on the scoring device (seeded from the generator passed here), is
  decoded from those (GWAE, the semi-supervised VAE); otherwise z ~ N(0, I), the prior of
  the VAE family's KL term, for a model with a Gaussian posterior (``encode`` returning a
  log-variance). A deterministic encoder (``encode`` returning ``(code, None)``, e.g. NashAE) has no
  prior: only its reconstructions are scored.
* ``reconstructions``: sigmoid(decode(mean of q(z|x))) of a second, independent sample of
  observations. Being independent of the reference sample, a perfect model scores the
  same finite-sample floor on both sets.

The draws, all from the generator the caller passes (the suite's ``fid`` generator):
the reference observations, then those reconstructed, in chunks of ``CHUNK`` whatever
the batch size, then the prior noise (float64 normal, cast to float32; or the seed of
``sample_prior``'s generator), so the scores do not depend on ``batch_size``.

Choices where the references are silent: the extractor (layers, 2000 steps of Adam at
1e-3, batches of 64 fresh observations from seed 0, 128 features after a ReLU) is
disbench's own; reconstructions decode the posterior mean.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import time
import warnings
from pathlib import Path

import numpy as np

from disbench.errors import DisbenchError, first_line
from disbench.metrics.utils import MetricWarning, as_observations
from disbench.store import write_atomic

METRIC = "generation quality"
INCEPTION_KEY = "eval.fid.inception_weights"
INCEPTION_FILE = "inception-2015-12-05.pt"
INCEPTION_URL = ("https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/"
                 + INCEPTION_FILE)
INCEPTION_BATCH = 64  # images per Inception call: it works on 299 x 299 copies
CHUNK = 1000  # observations per draw from the dataset
# the extractor: bump EXTRACTOR_VERSION whenever its network or training changes, so that
# older cache files are not used
EXTRACTOR_VERSION = 1
EXTRACTOR_SEED = 0
EXTRACTOR_LR = 1e-3
EXTRACTOR_CHANNELS = (32, 32, 64, 64)
EXTRACTOR_CHECK = 1000  # fresh observations its accuracy is measured on after training
CACHE_SUBDIR = "feature_extractors"


# -- the distance ----------------------------------------------------------------
def gaussian_stats(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (N - 1) of features (N, F), in float64."""
    features = np.asarray(features, dtype=np.float64)
    return features.mean(axis=0), np.atleast_2d(np.cov(features, rowvar=False))


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)) (module doc)."""
    from scipy import linalg

    mu1, mu2 = (np.atleast_1d(np.asarray(m, np.float64)) for m in (mu1, mu2))
    sigma1, sigma2 = (np.atleast_2d(np.asarray(s, np.float64)) for s in (sigma1, sigma2))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape \
            or sigma1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"{METRIC}: the Gaussians' shapes differ: means {mu1.shape}, "
                         f"{mu2.shape}; covariances {sigma1.shape}, {sigma2.shape}")
    diff = mu1 - mu2
    with warnings.catch_warnings():  # a singular product: handled below
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sigma1 @ sigma2)
        if not np.isfinite(covmean).all():
            offset = np.eye(len(mu1)) * eps
            covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        imaginary = np.abs(np.diagonal(covmean).imag).max()
        if imaginary > 1e-3:
            warnings.warn(f"{METRIC}: the square root of S1 S2 has an imaginary part of "
                          f"{imaginary:.3g} on its diagonal; the distance is NaN",
                          MetricWarning, stacklevel=2)
            return float("nan")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def frechet_distance_of(features_a, features_b) -> float:
    """The Frechet distance between Gaussians fitted to two feature sets (N, F)."""
    return frechet_distance(*gaussian_stats(features_a), *gaussian_stats(features_b))


# -- the extractor trained on the dataset's factors ------------------------------
def factor_classifier(shape, factor_sizes, features: int):
    """The extractor's network, an ``nn.ModuleDict``: ``net["features"]`` maps images (N,
    C, H, W) to the penultimate layer (N, ``features``), ``net["heads"]`` holds one linear
    softmax head per factor. Stride-2 4x4 convolutions with ``EXTRACTOR_CHANNELS`` while
    the image is at least 8 pixels on its shorter side, then a fully connected layer of
    ``features`` units with a ReLU."""
    from torch import nn

    c, h, w = (int(s) for s in shape)
    layers: list = []
    for out in EXTRACTOR_CHANNELS:
        if min(h, w) < 8:
            break
        layers += [nn.Conv2d(c, out, 4, stride=2, padding=1), nn.ReLU()]
        c, h, w = out, h // 2, w // 2
    layers += [nn.Flatten(), nn.Linear(c * h * w, features), nn.ReLU()]
    return nn.ModuleDict({
        "features": nn.Sequential(*layers),
        "heads": nn.ModuleList(nn.Linear(features, int(k)) for k in factor_sizes)})


def _logits(net, x) -> list:
    f = net["features"](x)
    return [head(f) for head in net["heads"]]


def extractor_key(dataset, steps: int, batch_size: int, features: int) -> dict:
    """What the trained extractor depends on: its cache file's identity."""
    return {"version": EXTRACTOR_VERSION, "dataset": str(dataset.name),
            "observation_shape": [int(s) for s in dataset.observation_shape],
            "factor_sizes": [int(s) for s in dataset.factor_sizes],
            "steps": int(steps), "batch_size": int(batch_size), "features": int(features),
            "lr": EXTRACTOR_LR, "seed": EXTRACTOR_SEED}


def cache_path(cache_dir: str | Path, key: dict) -> Path:
    """``<cache_dir>/<dataset>-<hash of the key>.pt``."""
    text = json.dumps(key, sort_keys=True, separators=(",", ":"))
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", key["dataset"])
    return Path(cache_dir) / f"{name}-{hashlib.sha256(text.encode()).hexdigest()[:16]}.pt"


def default_cache_dir(data_dir: str | Path | None = None) -> Path:
    """``<data_dir>/feature_extractors``; the data directory by default is disbench's
    (``$DISBENCH_DATA``, else ``~/.cache/disbench``)."""
    from disbench.data import default_data_dir

    return Path(data_dir if data_dir is not None else default_data_dir()) / CACHE_SUBDIR


def _digest(state: dict) -> str:
    h = hashlib.sha256()
    for name in sorted(state):
        h.update(name.encode())
        h.update(state[name].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _observations(dataset, num: int, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``num`` factor combinations (num, K) and their observations, float32 (num, C, H, W)."""
    factors = dataset.sample_factors(num, rng)
    return factors, as_observations(dataset.sample_observations_from_factors(factors, rng))


def train_extractor(dataset, steps: int, batch_size: int, features: int, device="cpu"):
    """A ``factor_classifier`` trained on ``dataset``: ``steps`` Adam steps (lr
    ``EXTRACTOR_LR``) on the summed cross-entropies of its heads, each step on
    ``batch_size`` fresh observations, all drawn from ``EXTRACTOR_SEED``; the weights are
    initialised from that seed too. Returns ``(net, info)``: the net in eval mode on
    ``device``; ``info`` its accuracy per factor on ``EXTRACTOR_CHECK`` fresh observations
    and the seconds its training took."""
    import torch
    import torch.nn.functional as F

    start = time.perf_counter()
    rng = np.random.default_rng(EXTRACTOR_SEED)
    with torch.inference_mode(False), torch.enable_grad():  # whatever the caller's mode
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(EXTRACTOR_SEED)
            net = factor_classifier(dataset.observation_shape, dataset.factor_sizes, features)
        net.to(device).train()
        optimizer = torch.optim.Adam(net.parameters(), lr=EXTRACTOR_LR)
        for _ in range(int(steps)):
            factors, x = _observations(dataset, batch_size, rng)
            x = torch.from_numpy(x).to(device)
            y = torch.from_numpy(np.asarray(factors, dtype=np.int64)).to(device)
            loss = sum(F.cross_entropy(logits, y[:, j])
                       for j, logits in enumerate(_logits(net, x)))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    net.eval()
    seconds = time.perf_counter() - start
    accuracy = extractor_accuracy(net, dataset, EXTRACTOR_CHECK, rng, device)
    return net, {"accuracy": [float(a) for a in accuracy], "train_seconds": seconds}


def extractor_accuracy(net, dataset, num: int, rng: np.random.Generator, device="cpu",
                       batch_size: int = 1024) -> np.ndarray:
    """The accuracy per factor of the extractor's heads on ``num`` fresh observations."""
    import torch

    factors, x = _observations(dataset, num, rng)
    correct = np.zeros(len(dataset.factor_sizes))
    with torch.inference_mode():
        for start in range(0, num, batch_size):
            batch = torch.from_numpy(x[start:start + batch_size]).to(device)
            for j, logits in enumerate(_logits(net, batch)):
                predicted = logits.argmax(1).cpu().numpy()
                correct[j] += (predicted == factors[start:start + batch_size, j]).sum()
    return correct / num


def _read_cache(path: Path, key: dict, net) -> dict:
    """The info of a valid cache file, its weights loaded into ``net``; raises ValueError
    (the reason) when the file is not one ``_write_cache`` wrote for ``key``."""
    import torch

    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is rebuilt
        raise ValueError(f"it cannot be loaded: {first_line(err)}") from None
    if not isinstance(stored, dict) or not {"key", "state_dict", "digest"} <= set(stored):
        raise ValueError("it is not a feature extractor file")
    if stored["key"] != json.dumps(key, sort_keys=True):
        raise ValueError("it was written for other settings")
    state = stored["state_dict"]
    if not isinstance(state, dict) or _digest(state) != stored["digest"]:
        raise ValueError("its weights do not match their checksum")
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"its weights do not fit the network ({err})") from None
    return {k: v for k, v in stored.items() if k not in ("state_dict", "key", "digest")}


def _write_cache(path: Path, key: dict, net, info: dict) -> None:
    import torch

    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    buffer = io.BytesIO()
    torch.save({"key": json.dumps(key, sort_keys=True), "state_dict": state,
                "digest": _digest(state), **info}, buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, buffer.getvalue())  # a reader sees the old file or the whole new one


def factor_extractor(dataset, steps: int, batch_size: int, features: int,
                     cache_dir: str | Path | None = None, device="cpu"):
    """The dataset's trained ``factor_classifier`` (eval mode, on ``device``) and its info:
    read from ``cache_dir`` (default ``default_cache_dir()``) when a file for these
    settings is there, else trained (``train_extractor``) and written there atomically.
    A file that cannot be read or does not match gets one ``MetricWarning`` and is
    rebuilt; a directory that cannot be written, one warning (the net is still used)."""
    key = extractor_key(dataset, steps, batch_size, features)
    path = cache_path(cache_dir if cache_dir is not None else default_cache_dir(), key)
    if path.is_file():
        net = factor_classifier(dataset.observation_shape, dataset.factor_sizes, features)
        try:
            info = _read_cache(path, key, net)
            return net.to(device).eval(), {**info, "cached": True, "path": str(path)}
        except ValueError as err:
            warnings.warn(f"{METRIC}: the feature extractor cache {path} is corrupt ({err}); "
                          f"training the extractor again and rewriting the file",
                          MetricWarning, stacklevel=2)
    net, info = train_extractor(dataset, steps, batch_size, features, device)
    try:
        _write_cache(path, key, net, info)
    except OSError as err:
        warnings.warn(f"{METRIC}: could not write the feature extractor cache {path} ({err}); "
                      f"it will be trained again next time. Set paths.data (or "
                      f"$DISBENCH_DATA) to a writable directory.", MetricWarning, stacklevel=2)
    return net, {**info, "cached": False, "path": str(path)}


# -- the Inception network --------------------------------------------------------
def load_inception(path, device="cpu", shape=None):
    """The TorchScript Inception of ``path`` (module doc), on ``device``; None when
    ``path`` is None. With ``shape`` (C, H, W), one call on two blank images of that shape
    checks that it answers as the expected network does. Raises ``DisbenchError`` naming
    the setting when the file is missing, unreadable or not that network."""
    import torch

    if path is None:
        return None
    expected = (f"the TorchScript Inception-v3 of StyleGAN2-ADA's metrics, {INCEPTION_FILE} "
                f"({INCEPTION_URL}), or null for no FID")
    file = Path(str(path)).expanduser()
    if not file.is_file():
        raise DisbenchError(f"{INCEPTION_KEY}={path}: no such file; expected {expected}.")
    try:
        with warnings.catch_warnings():  # torch.jit is deprecated; the file is TorchScript
            warnings.simplefilter("ignore", DeprecationWarning)
            detector = torch.jit.load(str(file), map_location=torch.device(device))
    except Exception as err:  # noqa: BLE001 - whatever torch says, the file is not usable
        raise DisbenchError(f"{INCEPTION_KEY}={path}: the file cannot be read as TorchScript "
                            f"({first_line(err)}); expected {expected}.") from None
    detector.eval()
    if shape is not None:
        try:
            out = _detector_call(detector, torch.zeros((2, *shape), device=torch.device(device)))
        except Exception as err:  # noqa: BLE001
            raise DisbenchError(f"{INCEPTION_KEY}={path}: calling it as detector(images, "
                                f"return_features=True) failed ({first_line(err)}); expected "
                                f"{expected}.") from None
        if out.ndim != 2 or len(out) != 2:
            raise DisbenchError(f"{INCEPTION_KEY}={path}: it returned features of shape "
                                f"{tuple(out.shape)} for 2 images, not (2, F); expected "
                                f"{expected}.")
    return detector


def _detector_call(detector, images):
    """Features (N, F) of images (N, C, H, W) in [0, 1]: as uint8 RGB, in chunks."""
    import torch

    pixels = (images.float() * 255).round_().clamp_(0, 255).to(torch.uint8)
    if pixels.shape[1] == 1:
        pixels = pixels.repeat(1, 3, 1, 1)
    with torch.inference_mode():
        parts = [detector(pixels[i:i + INCEPTION_BATCH], return_features=True)
                 for i in range(0, len(pixels), INCEPTION_BATCH)]
    return torch.cat(parts).reshape(len(pixels), -1)


# -- the scores -------------------------------------------------------------------
def _image_batches(model, dataset, which: str, num: int, rng, device, batch_size: int,
                   state: dict):
    """Batches of images in [0, 1] (float32, on ``device``): the dataset's observations
    (``real``), the model's reconstructions of them (``reconstructions``), or decoded
    prior samples (``samples``; ``state["latent_dim"]`` from a reconstruction pass)."""
    import torch

    if which == "samples":
        if callable(getattr(model, "sample_prior", None)):
            generator = torch.Generator(device=torch.device(device))
            generator.manual_seed(int(rng.integers(2**63)))
            z_all = model.sample_prior(num, generator)
        else:
            z_all = torch.from_numpy(rng.standard_normal((num, state["latent_dim"]))
                                     .astype(np.float32))
        for start in range(0, num, batch_size):
            z = z_all[start:start + batch_size].to(device)
            yield torch.sigmoid(model.decode(z)).float()
        return
    for chunk in range(0, num, CHUNK):
        _, observations = _observations(dataset, min(CHUNK, num - chunk), rng)
        for start in range(0, len(observations), batch_size):
            x = torch.from_numpy(observations[start:start + batch_size]).to(device)
            if which == "real":
                yield x
                continue
            mean, log_var = model.encode(x)
            state["latent_dim"], state["posterior"] = int(mean.shape[1]), log_var is not None
            yield torch.sigmoid(model.decode(mean)).float()


def _has_prior(model, posterior: bool) -> bool:
    """Whether decoded prior samples can be scored: the model draws them itself
    (``sample_prior``), or it has a Gaussian posterior (the N(0, I) of the VAE family's
    KL)."""
    return callable(getattr(model, "sample_prior", None)) or posterior


def _features(batches, detectors: dict, shape) -> dict[str, np.ndarray]:
    out: dict[str, list] = {name: [] for name in detectors}
    for images in batches:
        if tuple(images.shape[1:]) != tuple(shape):
            raise DisbenchError(f"{METRIC}: the model decodes images of shape "
                                f"{tuple(images.shape[1:])}; the dataset's are {tuple(shape)}")
        for name, detector in detectors.items():
            out[name].append(detector(images).double().cpu().numpy())
    return {name: np.concatenate(parts) for name, parts in out.items()}


def generation_scores(model, dataset, num_samples: int, extractor, rng: np.random.Generator,
                      device="cpu", batch_size: int = 1024, inception=None) -> dict[str, float]:
    """``{"fd_factors.samples", "fd_factors.reconstructions"}`` and, with ``inception``,
    ``{"fid.samples", "fid.reconstructions"}`` of ``model`` (module doc); no ``samples``
    for a deterministic encoder, nothing (with a ``MetricWarning``) for a model without
    ``decode``.

    Args:
        model: a torch module with ``encode(x) -> (mean, log_var)`` and ``decode(z) ->
            logits``, in eval mode on ``device``.
        dataset: a ground-truth dataset (``sample_factors``,
            ``sample_observations_from_factors``, ``observation_shape``).
        num_samples: images in each set (reference, samples, reconstructions).
        extractor: the trained ``factor_classifier`` (``factor_extractor``), on ``device``.
        rng: draws the reference observations, the reconstructed ones, then the prior
            noise.
        inception: a detector from ``load_inception``, or None.
    """
    import torch

    if not callable(getattr(model, "decode", None)):
        warnings.warn(f"{METRIC}: {type(model).__name__} has no decode(z); its decoded images "
                      f"are not scored.", MetricWarning, stacklevel=2)
        return {}
    detectors = {"fd_factors": extractor["features"]}
    if inception is not None:
        detectors["fid"] = lambda images: _detector_call(inception, images)
    shape = dataset.observation_shape
    num = int(num_samples)
    state: dict = {}
    with torch.inference_mode():
        real = _features(_image_batches(model, dataset, "real", num, rng, device, batch_size,
                                        state), detectors, shape)
        try:
            recon = _features(_image_batches(model, dataset, "reconstructions", num, rng,
                                             device, batch_size, state), detectors, shape)
        except NotImplementedError:
            warnings.warn(f"{METRIC}: {type(model).__name__} does not implement encode and "
                          f"decode; its decoded images are not scored.", MetricWarning,
                          stacklevel=2)
            return {}
        samples = None
        if _has_prior(model, state["posterior"]):
            samples = _features(_image_batches(model, dataset, "samples", num, rng, device,
                                               batch_size, state), detectors, shape)
    scores = {}
    for name in detectors:
        real_stats = gaussian_stats(real[name])
        if samples is not None:
            scores[f"{name}.samples"] = frechet_distance(*gaussian_stats(samples[name]),
                                                         *real_stats)
        scores[f"{name}.reconstructions"] = frechet_distance(*gaussian_stats(recon[name]),
                                                             *real_stats)
    return scores


def score_generation(model, dataset, settings: dict, rng: np.random.Generator, device="cpu",
                     batch_size: int = 1024, cache_dir: str | Path | None = None,
                     inception=None) -> dict[str, float]:
    """``generation_scores`` under the suite's ``fid`` settings (``num_samples``,
    ``inception_weights``, ``extractor_steps``, ``extractor_batch_size``,
    ``extractor_features``): the extractor from its cache (or trained), the Inception
    network from ``inception`` or else loaded from ``inception_weights``."""
    if not callable(getattr(model, "decode", None)):
        return generation_scores(model, dataset, settings["num_samples"], None, rng)
    extractor, _ = factor_extractor(dataset, settings["extractor_steps"],
                                    settings["extractor_batch_size"],
                                    settings["extractor_features"], cache_dir, device)
    if inception is None:
        inception = load_inception(settings["inception_weights"], device)
    return generation_scores(model, dataset, settings["num_samples"], extractor, rng, device,
                             batch_size, inception)
