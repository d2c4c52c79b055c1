"""Generation quality: the Frechet distance against closed forms, the factor extractor
(learning, cache), the Inception path with a TorchScript stand-in, and the suite."""

import warnings

import numpy as np
import pytest
import torch
from scipy.stats import norm
from suite_fixtures import SIZES, SMALL, decoded_factors, tiny_grid

from disbench import models, nets
from disbench.data import GridDataset
from disbench.errors import DisbenchError
from disbench.metrics import MetricInputError, MetricWarning, resolve_settings, score_model
from disbench.metrics import generation as gen

EXTRACTOR = {"extractor_steps": 40, "extractor_batch_size": 16, "extractor_features": 8}
FID = {"num_samples": 300, "inception_weights": None, **EXTRACTOR}
NOTHING_ELSE = {**SMALL, "representations": {"mean": [], "sampled": []},
                "heldout": {"num_points": 20}, "udr": {"num_points": 20}}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks: threads only add overhead (and much of it on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def script(module, path):
    with warnings.catch_warnings():  # torch.jit is deprecated; the detector file is TorchScript
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(module).save(str(path))


# -- the distance ----------------------------------------------------------------
def psd_sqrt(a):
    """The symmetric square root of a positive semi-definite matrix (eigh)."""
    w, v = np.linalg.eigh(a)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def closed_form(mu1, s1, mu2, s2):
    """||mu1 - mu2||^2 + Tr(S1) + Tr(S2) - 2 Tr((S1^1/2 S2 S1^1/2)^1/2): the same trace as
    Tr((S1 S2)^1/2), which is similar to it, through symmetric matrices only."""
    root = psd_sqrt(s1)
    d = np.asarray(mu1, float) - np.asarray(mu2, float)
    return float(d @ d + np.trace(s1) + np.trace(s2) - 2 * np.trace(psd_sqrt(root @ s2 @ root)))


def test_frechet_distance_of_1d_gaussians_is_the_squared_gaps_of_means_and_stds():
    for m1, sd1, m2, sd2 in [(0, 1, 0, 1), (1.5, 2, -0.5, 0.5), (3, 0.1, 3, 4)]:
        fd = gen.frechet_distance([m1], [[sd1**2]], [m2], [[sd2**2]])
        assert fd == pytest.approx((m1 - m2) ** 2 + (sd1 - sd2) ** 2, abs=1e-10)


def test_frechet_distance_of_2d_gaussians():
    # diagonal covariances commute: sum_i (sqrt(a_i) - sqrt(b_i))^2 plus the means' gap
    fd = gen.frechet_distance([1, 2], np.diag([4.0, 9.0]), [0, 0], np.diag([1.0, 16.0]))
    assert fd == pytest.approx(1 + 4 + (2 - 1) ** 2 + (3 - 4) ** 2, abs=1e-10)
    # covariances that do not commute
    s1 = np.array([[2.0, 0.8], [0.8, 1.0]])
    s2 = np.array([[0.5, -0.3], [-0.3, 3.0]])
    assert not np.allclose(s1 @ s2, s2 @ s1)
    fd = gen.frechet_distance([0.3, -1], s1, [1, 1], s2)
    assert fd == pytest.approx(closed_form([0.3, -1], s1, [1, 1], s2), abs=1e-9)


def test_identical_sets_are_at_zero_and_samples_approach_the_closed_form():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 6)) @ rng.normal(size=(6, 6))
    assert abs(gen.frechet_distance_of(a, a)) < 1e-8
    # a singular covariance (rank 3 of 6): finite, still ~0 against itself
    low = rng.normal(size=(500, 3)) @ rng.normal(size=(3, 6))
    assert abs(gen.frechet_distance_of(low, low)) < 1e-4
    mu, cov = gen.gaussian_stats(a)
    np.testing.assert_allclose(cov, np.cov(a.T), rtol=1e-12)
    s1, s2 = np.array([[1.0, 0.5], [0.5, 2.0]]), np.array([[3.0, -1.0], [-1.0, 1.0]])
    x = rng.multivariate_normal([0, 0], s1, size=200_000)
    y = rng.multivariate_normal([1, -1], s2, size=200_000)
    assert gen.frechet_distance_of(x, y) == pytest.approx(closed_form([0, 0], s1, [1, -1], s2),
                                                          abs=0.03)


# -- the extractor -----------------------------------------------------------------
def squares() -> GridDataset:
    """A 4 x 4 square at one of 3 x 3 positions of a 1 x 16 x 16 image, at one of 3
    intensities: 27 images, factors (x, y, intensity)."""
    sizes = (3, 3, 3)
    images = np.zeros((27, 1, 16, 16), np.uint8)
    for i, (x, y, v) in enumerate(np.ndindex(*sizes)):
        images[i, 0, 5 * y:5 * y + 4, 5 * x:5 * x + 4] = 85 * (v + 1)
    return GridDataset("squares", ("x", "y", "intensity"), sizes, images, "test")


def test_the_extractor_learns_the_factors_and_is_deterministic():
    dataset = squares()
    net, info = gen.train_extractor(dataset, steps=150, batch_size=32, features=16)
    accuracy = gen.extractor_accuracy(net, dataset, 500, np.random.default_rng(9))
    assert (accuracy > 0.9).all(), accuracy  # chance: 1/3
    np.testing.assert_allclose(info["accuracy"], accuracy, atol=0.1)
    with torch.inference_mode():  # trains whatever the caller's mode
        again, _ = gen.train_extractor(dataset, steps=150, batch_size=32, features=16)
    for (k, a), b in zip(net.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), k
    x = torch.rand(5, 1, 16, 16)
    assert net["features"](x).shape == (5, 16)


def test_the_extractor_is_cached_and_a_corrupt_file_is_rebuilt(tmp_path, monkeypatch):
    dataset = tiny_grid()
    first, info = gen.factor_extractor(dataset, 30, 16, 8, tmp_path)
    assert not info["cached"]
    files = list(tmp_path.iterdir())
    assert [f.name for f in files] == [gen.cache_path(tmp_path, gen.extractor_key(
        dataset, 30, 16, 8)).name]
    assert files[0].name.startswith("tiny-")

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    with monkeypatch.context() as m:
        m.setattr(gen, "train_extractor", no_training)
        loaded, info = gen.factor_extractor(dataset, 30, 16, 8, tmp_path)
    assert info["cached"] and not loaded.training
    for a, b in zip(first.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    # other settings: another file
    gen.factor_extractor(dataset, 31, 16, 8, tmp_path)
    assert len(list(tmp_path.iterdir())) == 2

    path = files[0]
    good = path.read_bytes()
    stored = torch.load(path, weights_only=True)
    stored["state_dict"]["features.1.bias"] += 1.0  # weights changed, checksum kept
    torch.save(stored, path)
    for damaged in (None, good[: len(good) // 2], b"not a torch file"):
        if damaged is not None:
            path.write_bytes(damaged)
        with pytest.warns(MetricWarning, match="feature extractor cache .* is corrupt") as w:
            rebuilt, info = gen.factor_extractor(dataset, 30, 16, 8, tmp_path)
        assert len(w) == 1 and not info["cached"]
        for a, b in zip(first.state_dict().values(), rebuilt.state_dict().values()):
            assert torch.equal(a, b)  # the same training: the same weights
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert gen.factor_extractor(dataset, 30, 16, 8, tmp_path)[1]["cached"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    with pytest.warns(MetricWarning, match="could not write the feature extractor cache"):
        net, info = gen.factor_extractor(dataset, 30, 16, 8, blocked / "cache")
    assert not info["cached"]
    for a, b in zip(first.state_dict().values(), net.state_dict().values()):
        assert torch.equal(a, b)


# -- the scores on models with known outputs ----------------------------------------
class GridModel(torch.nn.Module):
    """A model of the tiny grid that decodes exactly: z_j -> value floor(Phi(z_j) size_j)
    of factor j, drawn uniformly under z ~ N(0, I) as the grid is; encode returns that
    value's z (mean) and log_var 0 (None: a deterministic encoder). ``constant`` decodes
    every z to the same grey image."""

    def __init__(self, deterministic=False, constant=False):
        super().__init__()
        self.deterministic, self.constant = deterministic, constant
        self.scale = torch.nn.Parameter(torch.ones(()))  # a parameter, for score_model

    def encode(self, x):
        values = decoded_factors(x.cpu().numpy())
        z = norm.ppf((values + 0.5) / np.array(SIZES))
        mean = torch.from_numpy(z).float()
        return mean, None if self.deterministic else torch.zeros_like(mean)

    def decode(self, z):
        if self.constant:
            return torch.zeros(len(z), 1, 6, 6)
        index = np.floor(norm.cdf(z.cpu().numpy()) * np.array(SIZES)).astype(int)
        index = np.minimum(index, np.array(SIZES) - 1)
        images = tiny_grid().images[tiny_grid().index_of(index)] / 255.0
        return torch.logit(torch.from_numpy(images).float().clamp(1e-6, 1 - 1e-6))


def test_an_exact_model_scores_the_floor_and_a_constant_one_far_above(tmp_path):
    dataset = tiny_grid()
    extractor, _ = gen.factor_extractor(dataset, 100, 16, 8, tmp_path)
    exact = gen.generation_scores(GridModel(), dataset, 1000, extractor,
                                  np.random.default_rng(0))
    assert set(exact) == {"fd_factors.samples", "fd_factors.reconstructions"}
    # the floor: two independent samples of the dataset itself
    rng = np.random.default_rng(1)
    with torch.inference_mode():
        a, b = (extractor["features"](torch.from_numpy(gen._observations(dataset, 1000,
                                                                         rng)[1]))
                for _ in range(2))
    floor = gen.frechet_distance_of(a.numpy(), b.numpy())
    assert 0 <= exact["fd_factors.samples"] < 5 * floor + 1e-9
    assert 0 <= exact["fd_factors.reconstructions"] < 5 * floor + 1e-9
    constant = gen.generation_scores(GridModel(constant=True), dataset, 1000, extractor,
                                     np.random.default_rng(0))
    assert constant["fd_factors.samples"] > 100 * max(exact.values())
    assert constant["fd_factors.samples"] == pytest.approx(
        constant["fd_factors.reconstructions"])
    # a deterministic encoder has no prior: reconstructions only, the same draws
    only = gen.generation_scores(GridModel(deterministic=True), dataset, 1000, extractor,
                                 np.random.default_rng(0))
    assert only == {"fd_factors.reconstructions": exact["fd_factors.reconstructions"]}
    # the batch size does not change the draws
    small = gen.generation_scores(GridModel(), dataset, 1000, extractor,
                                  np.random.default_rng(0), batch_size=7)
    assert small == pytest.approx(exact, rel=1e-6, abs=1e-9)


def test_a_model_with_a_prior_of_its_own_is_sampled_through_sample_prior(tmp_path):
    dataset = tiny_grid()
    extractor, _ = gen.factor_extractor(dataset, 100, 16, 8, tmp_path)

    class Shifted(GridModel):
        """Its prior is N(3, I): nearly every decoded sample shows each factor's last value."""

        def sample_prior(self, num, generator):
            return 3 + torch.randn(num, 3, generator=generator)

    def scores(model):
        return gen.generation_scores(model, dataset, 1000, extractor, np.random.default_rng(0))

    plain, shifted = scores(GridModel()), scores(Shifted())
    assert shifted["fd_factors.samples"] > 10 * plain["fd_factors.samples"]
    assert shifted["fd_factors.reconstructions"] == plain["fd_factors.reconstructions"]
    assert scores(Shifted()) == shifted  # its generator is seeded from the given one


# -- Inception ----------------------------------------------------------------------
class StandIn(torch.nn.Module):
    """The call of StyleGAN2-ADA's Inception: uint8 RGB in, resized inside, features out.
    Its 6 features: the mean intensity of three pairs of rows of the first channel, and
    of the other two channels' squares."""

    def forward(self, img: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        assert img.dtype == torch.uint8
        assert img.shape[1] == 3
        assert return_features
        x = torch.nn.functional.interpolate(img.float() / 255.0, size=(12, 12), mode="nearest")
        rows = x.mean(dim=3)  # (N, 3, 12)
        first = rows[:, 0].reshape(-1, 3, 4).mean(dim=2)
        other = (rows[:, 1:] ** 2).mean(dim=1).reshape(-1, 3, 4).mean(dim=2)
        return torch.cat([first, other], dim=1)


def stand_in_features(images: np.ndarray) -> np.ndarray:
    """StandIn's features in numpy, for grey (N, 1, 6, 6) images in [0, 1]."""
    pixels = np.clip(np.round(images * 255), 0, 255) / 255.0
    rows = pixels[:, 0].mean(axis=2)  # (N, 6): the 12 resized rows repeat each row twice
    pairs = rows.reshape(-1, 3, 2).mean(axis=2)
    squares = (rows**2).reshape(-1, 3, 2).mean(axis=2)
    return np.concatenate([pairs, squares], axis=1)


@pytest.fixture
def inception_file(tmp_path):
    path = tmp_path / "inception-2015-12-05.pt"
    script(StandIn(), path)
    return path


def test_fid_through_a_torchscript_stand_in_matches_a_numpy_computation(inception_file,
                                                                        tmp_path):
    dataset, model, num = tiny_grid(), GridModel(), 400
    model.decode = lambda z: torch.logit(  # blurred: a distance that is not 0
        torch.from_numpy(tiny_grid().images[tiny_grid().index_of(np.minimum(np.floor(
            norm.cdf(z.numpy()) * np.array(SIZES)).astype(int), np.array(SIZES) - 1))]
            / 255.0 * 0.8 + 0.1).float())
    detector = gen.load_inception(inception_file, "cpu", dataset.observation_shape)
    extractor, _ = gen.factor_extractor(dataset, 20, 16, 8, tmp_path / "cache")
    scores = gen.generation_scores(model, dataset, num, extractor, np.random.default_rng(3),
                                   inception=detector, batch_size=64)
    # the draws, in the documented order: reference, reconstructed, prior noise
    rng = np.random.default_rng(3)
    real = gen._observations(dataset, num, rng)[1]
    second = gen._observations(dataset, num, rng)[1]
    z = rng.standard_normal((num, 3)).astype(np.float32)
    with torch.no_grad():
        recon = torch.sigmoid(model.decode(model.encode(torch.from_numpy(second))[0])).numpy()
        samples = torch.sigmoid(model.decode(torch.from_numpy(z))).numpy()

    def fd(a, b):
        fa, fb = stand_in_features(a), stand_in_features(b)
        return closed_form(fa.mean(0), np.cov(fa.T), fb.mean(0), np.cov(fb.T))

    assert scores["fid.samples"] == pytest.approx(fd(samples, real), rel=1e-5, abs=1e-9)
    assert scores["fid.reconstructions"] == pytest.approx(fd(recon, real), rel=1e-5,
                                                          abs=1e-9)
    assert scores["fid.samples"] > 1e-3
    assert {"fd_factors.samples", "fd_factors.reconstructions"} < set(scores)


def test_a_missing_or_unreadable_inception_file_is_one_clear_error(tmp_path):
    missing = tmp_path / "nowhere.pt"
    with pytest.raises(DisbenchError, match=r"eval\.fid\.inception_weights=.*nowhere\.pt: no "
                                            r"such file; expected .*inception-2015-12-05\.pt"):
        gen.load_inception(missing)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not torchscript")
    with pytest.raises(DisbenchError, match=r"eval\.fid\.inception_weights=.*garbage\.pt: the "
                                            r"file cannot be read as TorchScript"):
        gen.load_inception(garbage)
    other = tmp_path / "other.pt"  # TorchScript, but not called like the detector
    script(torch.nn.Linear(2, 2), other)
    with pytest.raises(DisbenchError, match=r"inception_weights=.*other\.pt: calling it as "
                                            r"detector\(images, return_features=True\) failed"):
        gen.load_inception(other, shape=(1, 6, 6))
    # through the suite: before any metric runs
    settings = {**NOTHING_ELSE, "fid": {**FID, "inception_weights": str(missing)}}
    with pytest.raises(DisbenchError, match="eval.fid.inception_weights"):
        score_model(GridModel(), tiny_grid(), settings, seed=0, device="cpu",
                    data_dir=tmp_path)
    assert not (tmp_path / "feature_extractors").exists()


# -- the suite ------------------------------------------------------------------------
def test_the_suite_scores_decoded_images_of_every_model_with_decode(tmp_path, inception_file):
    torch.manual_seed(0)
    encoder, decoder = nets.build("mlp", (1, 6, 6), 4)
    vae = models.build({"name": "vae"}, encoder, decoder, 4)
    settings = {**NOTHING_ELSE, "fid": FID}
    timings: dict = {}
    out = score_model(vae, tiny_grid(), settings, seed=5, device="cpu", data_dir=tmp_path,
                      timings=timings)
    assert set(out["generation"]) == {"fd_factors.samples", "fd_factors.reconstructions"}
    assert all(np.isfinite(v) and v > 0 for v in out["generation"].values())
    assert out["eval"]["fid"] == FID and timings["generation"] > 0
    assert len(list((tmp_path / "feature_extractors").glob("tiny-*.pt"))) == 1
    again = score_model(vae, tiny_grid(), settings, seed=5, device="cpu", data_dir=tmp_path)
    assert again["generation"] == out["generation"]
    other_seed = score_model(vae, tiny_grid(), settings, seed=6, device="cpu",
                             data_dir=tmp_path)
    assert other_seed["generation"] != out["generation"]
    # with the Inception file: FID too
    with_fid = score_model(vae, tiny_grid(), {**settings, "fid": {
        **FID, "inception_weights": str(inception_file)}}, seed=5, device="cpu",
        data_dir=tmp_path)
    assert set(with_fid["generation"]) == {"fd_factors.samples", "fd_factors.reconstructions",
                                           "fid.samples", "fid.reconstructions"}
    assert {k: with_fid["generation"][k] for k in out["generation"]} == out["generation"]
    # NashAE: encode returns (code, None), no prior: reconstructions only
    torch.manual_seed(0)
    encoder, decoder = nets.build("mlp", (1, 6, 6), 4)
    nashae = models.build({"name": "nashae"}, encoder, decoder, 4)
    assert nashae.encode(torch.zeros(1, 1, 6, 6))[1] is None
    out = score_model(nashae, tiny_grid(), settings, seed=5, device="cpu", data_dir=tmp_path)
    assert set(out["generation"]) == {"fd_factors.reconstructions"}


def test_the_fid_settings():
    locatello, fast = resolve_settings("locatello"), resolve_settings("fast")
    assert locatello["fid"]["num_samples"] == 10000 and fast["fid"]["num_samples"] == 1000
    assert locatello["fid"]["inception_weights"] is None
    # one extractor for both presets: the same feature space
    assert {k: v for k, v in locatello["fid"].items() if k.startswith("extractor_")} == \
        {k: v for k, v in fast["fid"].items() if k.startswith("extractor_")}
    assert resolve_settings({"fid": {"inception_weights": "/x/inception-2015-12-05.pt"}})[
        "fid"]["inception_weights"] == "/x/inception-2015-12-05.pt"
    for bad, match in [({"inception_weights": 3}, "fid.inception_weights must be a file name "
                                                   "or null"),
                       ({"num_samples": 1}, "fid.num_samples must be an integer >= 2"),
                       ({"extractor_steps": 0}, "fid.extractor_steps must be an integer >= 1"),
                       ({"samples": 10}, "unknown setting.*samples for fid")]:
        with pytest.raises(MetricInputError, match=match):
            resolve_settings({"fid": bad})
