"""The sampling layer of the metric suite: ground-truth factors in, codes out.

A metric that samples (every metric of ``disbench.metrics.evaluate``) asks a
``CodeSampler`` for factor combinations (``sample_factors``) and for the codes of
given factor combinations (``codes``). All randomness comes from the one numpy
``Generator`` the metric passes in: the factors it draws, the observation noise
of a random dataset (a child generator spawned from it) and, for the sampled
representation, the Gaussian noise added to the means.

Codes are obtained in one of two ways, which consume the generator identically
(factors are drawn first; codes are then looked up or computed; the noise of the
sampled representation is drawn last), so both give the same values on a
deterministic dataset:

* on the fly: ``dataset.sample_observations_from_factors`` renders the
  observations, which the representation encodes in batches (any dataset);
* from a ``CodeTable`` (datasets with ``deterministic == True``): each grid point
  (factor combination) is encoded at most once, when a metric first needs it, in
  large batches, and every metric then reads from the table. The reference
  (disentanglement_lib) encodes every sampled observation again, metric after
  metric: about 3 million encoder passes for the study's suite on dSprites,
  where the grid has 737,280 images.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from disbench.metrics.utils import MetricInputError

# What the metric suite uses of the `disbench.data.GroundTruthDataset` protocol.
# `deterministic` is optional here (missing means False: codes are computed on the fly).
REQUIRED_MEMBERS = ("factor_sizes", "sample_factors", "sample_observations_from_factors")

# The table is keyed by the flat index of a factor combination; larger grids are
# encoded on the fly.
MAX_TABLE_GRID = 2**62


def check_dataset(dataset: object) -> tuple[int, ...]:
    """Validate the parts of the ground-truth dataset protocol the metrics use.

    Returns the factor sizes. Raises ``MetricInputError`` naming every missing member.
    """
    missing = [m for m in REQUIRED_MEMBERS if not hasattr(dataset, m)]
    if missing:
        raise MetricInputError(
            f"the dataset {type(dataset).__name__} lacks {', '.join(missing)} of the "
            f"ground-truth dataset protocol (disbench.data.GroundTruthDataset): the metrics "
            f"need factor_sizes, sample_factors(num, rng) and "
            f"sample_observations_from_factors(factors, rng)."
        )
    for name in REQUIRED_MEMBERS[1:]:
        if not callable(getattr(dataset, name)):
            raise MetricInputError(
                f"the dataset {type(dataset).__name__}: {name} must be a method."
            )
    try:
        sizes = tuple(int(s) for s in dataset.factor_sizes)
    except (TypeError, ValueError) as err:
        raise MetricInputError(
            f"the dataset {type(dataset).__name__}: factor_sizes must be a sequence of "
            f"integers; got {dataset.factor_sizes!r} ({err})."
        ) from None
    if not sizes or min(sizes) < 1:
        raise MetricInputError(
            f"the dataset {type(dataset).__name__}: factor_sizes must list at least one "
            f"factor, each with at least one value; got {sizes}."
        )
    return sizes


def _to_numpy(x: object) -> object:
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor
        return x.detach().cpu().numpy()
    return x


class Representation:
    """A checked wrapper around a user's ``representation_fn``.

    ``representation_fn(observations)`` gets a float32 array (N, C, H, W) and returns
    the codes, a real array (N, D), or a pair ``(mean, log_var)`` of such arrays (a
    Gaussian encoder; the sampled representation needs the log-variances). numpy
    arrays are expected; torch tensors are converted. Every call is checked: shape,
    dtype, finiteness, and the same D and output kind as the first call.
    """

    def __init__(self, fn: Callable):
        if not callable(fn):
            raise MetricInputError(
                f"representation_fn must be callable (observations -> codes); got "
                f"{type(fn).__name__}."
            )
        self.fn = fn
        self.num_codes: int | None = None
        self.gaussian: bool | None = None

    def _check(self, out: object, what: str, n: int, point_mass: bool = False) -> np.ndarray:
        """`point_mass`: -inf is a valid value (a log-variance of 0)."""
        try:
            arr = np.asarray(_to_numpy(out))
        except (ValueError, TypeError) as err:
            raise MetricInputError(
                f"representation_fn returned {what} that is not a rectangular array ({err})."
            ) from None
        if arr.dtype.kind not in "biuf":
            raise MetricInputError(
                f"representation_fn returned {what} of dtype {arr.dtype}; codes must be real "
                f"numbers."
            )
        if arr.ndim != 2 or arr.shape[0] != n or arr.shape[1] < 1:
            raise MetricInputError(
                f"representation_fn returned {what} of shape {arr.shape} for {n} observations; "
                f"expected shape ({n}, num_codes): one row of codes per observation."
            )
        if self.num_codes is not None and arr.shape[1] != self.num_codes:
            raise MetricInputError(
                f"representation_fn returned {arr.shape[1]} codes per observation, but "
                f"{self.num_codes} on an earlier call; the number of codes must be fixed."
            )
        valid = np.isfinite(arr) | (point_mass & (arr == -np.inf))
        bad = int(arr.size - np.count_nonzero(valid))
        if bad:
            raise MetricInputError(
                f"representation_fn returned {bad} NaN/inf value(s) in {what} for {n} "
                f"observations; codes must be finite."
            )
        return arr

    def __call__(self, observations: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        n = len(observations)
        out = self.fn(observations)
        gaussian = isinstance(out, (tuple, list)) and len(out) == 2
        if self.gaussian is not None and gaussian != self.gaussian:
            raise MetricInputError(
                "representation_fn returned a (mean, log_var) pair on one call and codes on "
                "another; it must always return the same kind."
            )
        if gaussian:
            mean = self._check(out[0], "a mean", n)
            log_var = self._check(out[1], "a log-variance", n, point_mass=True)
            if log_var.shape != mean.shape:
                raise MetricInputError(
                    f"representation_fn returned a mean of shape {mean.shape} but a "
                    f"log-variance of shape {log_var.shape}; they must match."
                )
        else:
            mean = self._check(out, "codes", n)
            log_var = None
        self.num_codes, self.gaussian = mean.shape[1], gaussian
        return mean, log_var


def model_representation(model, device=None) -> Callable:
    """``representation_fn`` of a torch model with ``encode(x) -> (mean, log_var)``.

    A deterministic encoder returns ``(code, None)``: its posterior is a point mass, so
    its log-variance is -inf and its sampled representation is its code. Runs the model
    on ``device`` (default: where its parameters are) under ``torch.inference_mode``;
    returns float32 numpy arrays. The caller puts the model in eval mode.
    """
    import torch

    if device is None:
        param = next(iter(model.parameters()), None)
        device = param.device if param is not None else torch.device("cpu")

    def representation_fn(observations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = torch.as_tensor(observations, dtype=torch.float32).to(device)
        with torch.inference_mode():
            mean, log_var = model.encode(x)
            if log_var is None:
                log_var = torch.full_like(mean, -math.inf)
        return mean.float().cpu().numpy(), log_var.float().cpu().numpy()

    return representation_fn


@dataclass
class EncodeStats:
    """Encoder work done so far: observations encoded and seconds spent (rendering
    the observations included). With ``progress``, an encoding of ten batches or more
    shows a bar of its own on stderr (below the suite's)."""

    num_encoded: int = 0
    seconds: float = 0.0
    progress: bool = False


def _encode(dataset, representation: Representation, factors: np.ndarray,
            rng: np.random.Generator, batch_size: int, stats: EncodeStats
            ) -> tuple[np.ndarray, np.ndarray | None]:
    """Render and encode the observations of ``factors`` in batches."""
    start = time.perf_counter()
    means, log_vars = [], []
    with tqdm(total=len(factors), desc="encoding", unit="image", file=sys.stderr, leave=False,
              position=1, dynamic_ncols=True,
              disable=not stats.progress or len(factors) < 10 * batch_size) as bar:
        for i in range(0, len(factors), batch_size):
            chunk = factors[i:i + batch_size]
            observations = dataset.sample_observations_from_factors(chunk, rng)
            if len(observations) != len(chunk):
                raise MetricInputError(
                    f"the dataset {type(dataset).__name__}: sample_observations_from_factors "
                    f"returned {len(observations)} observations for {len(chunk)} factor rows."
                )
            mean, log_var = representation(observations)
            means.append(mean)
            log_vars.append(log_var)
            bar.update(len(chunk))
    stats.num_encoded += len(factors)
    stats.seconds += time.perf_counter() - start
    if not means:
        raise MetricInputError("no observations to encode (0 factor rows were requested).")
    mean = np.concatenate(means)
    log_var = None if log_vars[0] is None else np.concatenate(log_vars)
    return mean, log_var


class CodeTable:
    """Codes of a deterministic dataset's grid points, each encoded at most once.

    Keyed by the flat (row-major) index of a factor combination in the grid
    ``factor_sizes``. ``lookup`` encodes the grid points it has not seen yet, sorted,
    in batches of ``batch_size``, and returns the stored codes. The observations come
    from the dataset's own ``sample_observations_from_factors``, so the codes equal
    those computed on the fly.
    """

    def __init__(self, dataset, representation: Representation, factor_sizes: tuple[int, ...],
                 batch_size: int, stats: EncodeStats | None = None):
        self.dataset = dataset
        self.representation = representation
        self.factor_sizes = factor_sizes
        self.batch_size = batch_size
        self.stats = stats if stats is not None else EncodeStats()
        self.keys = np.empty(0, dtype=np.int64)
        self.mean: np.ndarray | None = None
        self.log_var: np.ndarray | None = None
        # A deterministic dataset ignores it; any draw it makes stays out of the metrics'.
        self._rng = np.random.default_rng(0)

    def __len__(self) -> int:
        return self.keys.size

    def _positions(self, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pos = np.searchsorted(self.keys, flat)
        found = np.zeros(flat.shape, dtype=bool)
        inside = pos < self.keys.size
        found[inside] = self.keys[pos[inside]] == flat[inside]
        return pos, found

    def _add(self, flat: np.ndarray) -> None:
        factors = np.stack(np.unravel_index(flat, self.factor_sizes), axis=1)
        mean, log_var = _encode(self.dataset, self.representation, factors, self._rng,
                                self.batch_size, self.stats)
        keys = np.concatenate([self.keys, flat])
        order = np.argsort(keys, kind="stable")
        self.keys = keys[order]
        self.mean = mean if self.mean is None else np.concatenate([self.mean, mean])[order]
        if log_var is not None:
            self.log_var = (log_var if self.log_var is None
                            else np.concatenate([self.log_var, log_var])[order])

    def lookup(self, factors: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(mean, log_var or None) of each row of ``factors`` (int array (N, K))."""
        flat = np.ravel_multi_index(tuple(factors.T), self.factor_sizes).astype(np.int64)
        unique = np.unique(flat)
        _, found = self._positions(unique)
        if not found.all():
            self._add(unique[~found])
        pos, _ = self._positions(flat)
        assert self.mean is not None
        return self.mean[pos], None if self.log_var is None else self.log_var[pos]


class CodeSampler:
    """Factors and codes for the metrics: the one interface between metrics and data.

    Args:
        dataset: an object with the ground-truth dataset protocol.
        representation: the checked representation function.
        sampled: False for the mean representation (the codes, or the mean of a
            Gaussian encoder); True for codes sampled from N(mean, exp(log_var)).
        table: a ``CodeTable`` to read codes from (deterministic datasets), or None to
            encode on the fly.
        batch_size: observations per call of the representation function.
    """

    def __init__(self, dataset, representation: Representation, *, sampled: bool = False,
                 table: CodeTable | None = None, batch_size: int = 1024,
                 stats: EncodeStats | None = None):
        self.factor_sizes = check_dataset(dataset)
        self.dataset = dataset
        self.representation = representation
        self.sampled = sampled
        self.table = table
        self.batch_size = batch_size
        self.stats = table.stats if table is not None else (stats or EncodeStats())

    @property
    def num_factors(self) -> int:
        return len(self.factor_sizes)

    def sample_factors(self, num: int, rng: np.random.Generator) -> np.ndarray:
        """``num`` factor combinations from the dataset's ``sample_factors``, checked."""
        name = type(self.dataset).__name__
        factors = np.asarray(self.dataset.sample_factors(num, rng))
        if factors.shape != (num, self.num_factors):
            raise MetricInputError(
                f"the dataset {name}: sample_factors({num}, rng) returned shape {factors.shape}; "
                f"expected ({num}, {self.num_factors}), one column per factor."
            )
        if factors.dtype.kind not in "iu" and not (
            factors.dtype.kind == "f" and np.array_equal(factors, np.round(factors))
        ):
            raise MetricInputError(
                f"the dataset {name}: sample_factors must return integer factor classes; got "
                f"dtype {factors.dtype}."
            )
        factors = factors.astype(np.int64)
        if factors.size and (factors.min() < 0 or np.any(factors.max(axis=0) >= self.factor_sizes)):
            raise MetricInputError(
                f"the dataset {name}: sample_factors returned values outside "
                f"[0, factor_sizes) = {self.factor_sizes}."
            )
        return factors

    def codes(self, factors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """float64 codes (N, D) of the observations of ``factors`` (int (N, K))."""
        if self.table is not None:
            mean, log_var = self.table.lookup(factors)
        else:
            mean, log_var = _encode(self.dataset, self.representation, factors,
                                    rng.spawn(1)[0], self.batch_size, self.stats)
        mean = mean.astype(np.float64)
        if not self.sampled:
            return mean
        if log_var is None:
            raise MetricInputError(
                "the sampled representation needs a representation_fn that returns a "
                "(mean, log_var) pair; this one returns codes only."
            )
        eps = rng.standard_normal(mean.shape)
        return mean + np.exp(0.5 * log_var.astype(np.float64)) * eps

    def sample(self, num: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``num`` factor combinations and their codes."""
        factors = self.sample_factors(num, rng)
        return factors, self.codes(factors, rng)


def grid_size(factor_sizes: tuple[int, ...]) -> int:
    return math.prod(factor_sizes)
