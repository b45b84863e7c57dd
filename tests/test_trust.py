"""Trust check (Geirhos et al.'s path similarity): the measure, its helpers and the planted test.

The planted test builds (see :mod:`tests.trust_planted`) a fooling network whose unit is
reached by photos through a natural path and by an optimised image through a checkerboard
path photos never use, next to an honest twin with the natural path only. Both give the same
unit values on every photo. MACO visualises both units (2 images each, fixed seed); the trust
check must score the honest visualizations well above the fooling ones.

The compared layers are each network's nonlinear stages (``natural_branch``, and for the
fooling network ``pattern_branch`` and ``features``): the spatial mean of a first, linear
convolution is a linear function of the image's mean colour and says nothing of a path.

Run with ``-s`` to see the reports.
"""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from scipy.stats import spearmanr

import maco_tf
from maco_tf.outputs.activations import default_layers, layer_features
from maco_tf.outputs.features import MetricInputError
from maco_tf.outputs.references import load_photos, objective_scores, top_activating
from maco_tf.outputs.trust import TrustReport, path_similarity, rank_correlation, trust_check
from maco_tf.targets import neuron

from .test_images_reading import exif_rotated_jpeg
from .trust_planted import FOOLING_WEIGHT, SIZE, planted_pair, toy_photos

RANGE = (-1.0, 1.0)
SETTINGS = {
    "nb_steps": 48,
    "nb_crops": 6,
    "custom_shape": (2 * SIZE, 2 * SIZE),
    "box_size": 0.9,
    "values_range": RANGE,
    "seed": 0,
}
FOOLING_LAYERS = ["natural_branch", "pattern_branch", "features"]
HONEST_LAYERS = ["natural_branch"]


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    return toy_photos(64, seed=0)


@pytest.fixture(scope="module")
def pair(photos) -> tuple[keras.Model, keras.Model]:
    return planted_pair(photos)


@pytest.fixture(scope="module")
def visualizations(pair) -> dict[str, np.ndarray]:
    """Two MACO images of each network's unit."""
    return {
        model.name: maco_tf.maco(neuron(model, "unit", [0, 0]), **SETTINGS)[0] for model in pair
    }


def _at_input(images: np.ndarray) -> np.ndarray:
    return tf.image.resize(images, (SIZE, SIZE), antialias=True).numpy()


# ----------------------------------------------------------------------- planted test


def test_networks_agree_on_photos(pair, photos):
    fooling, honest = pair
    np.testing.assert_allclose(fooling(photos), honest(photos), rtol=0, atol=1e-6)
    pattern = keras.Model(fooling.inputs[0], fooling.get_layer("pattern_branch").output)
    assert float(np.max(pattern(photos))) == 0.0


def test_fooling_visualization_uses_the_pattern_path(pair, photos, visualizations):
    fooling, _ = pair
    gate = keras.Model(fooling.inputs[0], fooling.get_layer("gate").output)
    values = np.asarray(gate(_at_input(visualizations["fooling"])))
    assert np.all(values[:, 0] == 0.0), "the natural path should be gated off"
    unit_on_photos = float(np.max(fooling(photos)))
    assert np.all(FOOLING_WEIGHT * values[:, 1] > 2 * unit_on_photos)


def test_trust_check_flags_fooling_and_passes_honest(pair, photos, visualizations):
    fooling, honest = pair
    reports = {}
    for model, layers in ((fooling, FOOLING_LAYERS), (honest, HONEST_LAYERS)):
        reports[model.name] = trust_check(
            neuron(model, "unit", [0, 0]),
            visualizations[model.name],
            photos,
            k=8,
            layers=layers,
            values_range=RANGE,
        )
        print(f"\n{model.name}\n{reports[model.name].summary()}")
    honest_scores = reports["honest"].scores
    fooling_scores = reports["fooling"].scores
    assert np.all(honest_scores > 0.25)
    assert np.all(fooling_scores < -0.25)
    assert honest_scores.min() - fooling_scores.max() > 0.75
    assert np.all(reports["fooling"].flagged()) and not np.any(reports["honest"].flagged())
    features = FOOLING_LAYERS.index("features")
    assert np.all(reports["fooling"].below_baseline[:, features])


def test_path_similarity_matches_trust_check(pair, photos, visualizations):
    _, honest = pair
    objective = neuron(honest, "unit", 0)
    top = top_activating(objective, photos, 8, RANGE)[0]
    rest = np.setdiff1d(np.arange(len(photos)), top)
    direct = path_similarity(
        honest, visualizations["honest"][:1], photos[top], photos[rest], HONEST_LAYERS, RANGE
    )
    via_pool = trust_check(objective, visualizations["honest"][:1], photos, 8, HONEST_LAYERS, RANGE)
    np.testing.assert_allclose(direct.scores, via_pool.scores)


# ------------------------------------------------------------------------- helpers


def test_rank_correlation_is_spearman():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 20)), rng.standard_normal((4, 20))
    b[0] = a[1] * 2 + 1  # same order
    expected = np.array([[spearmanr(x, y).statistic for y in b] for x in a])
    np.testing.assert_allclose(rank_correlation(a, b), expected, atol=1e-12)
    assert rank_correlation(a[1:2], b[:1])[0, 0] == pytest.approx(1.0)


def test_rank_correlation_of_a_constant_row_is_zero():
    assert rank_correlation(np.zeros((1, 5)), np.arange(5.0)[None])[0, 0] == 0.0


def _report(vis: list[float], nat: list[float], base: list[float]) -> TrustReport:
    row = lambda values: np.asarray([values])  # noqa: E731
    return TrustReport(
        ("v",), tuple(f"l{i}" for i in range(len(vis))), row(vis), row(nat), row(base)
    )


def test_score_is_lift_over_baseline_relative_to_natural_gap():
    assert _report([0.5, 0.5], [0.8, 0.6], [0.2, 0.4]).scores[0] == pytest.approx(0.4 / 0.8)
    assert _report([0.8, 0.6], [0.8, 0.6], [0.2, 0.4]).scores[0] == pytest.approx(1.0)
    below = _report([0.1, 0.3], [0.8, 0.6], [0.2, 0.4])
    assert below.scores[0] < 0 and below.flagged()[0] and below.below_baseline.all()


def test_score_is_nan_when_references_are_not_closer_than_baseline():
    report = _report([0.5], [0.3], [0.3])
    assert np.isnan(report.scores[0]) and report.flagged()[0]


def test_report_summary_and_json():
    report = _report([0.5, 0.3], [0.8, 0.6], [0.2, 0.4])
    text = report.summary()
    assert "v: trust score 0.25" in text and "1/2 layers below the baseline" in text
    assert json.loads(json.dumps(report.to_dict()))["layers"] == ["l0", "l1"]


def test_objective_scores_are_the_unit_values(pair, photos):
    fooling, _ = pair
    scores = objective_scores(neuron(fooling, "unit", [0, 0]), photos, RANGE)
    assert scores.shape == (len(photos), 2)
    np.testing.assert_allclose(scores[:, 0], np.asarray(fooling(photos))[:, 0], rtol=1e-5)


def test_top_activating_orders_by_objective(pair, photos):
    _, honest = pair
    top = top_activating(neuron(honest, "unit", 0), photos, 5, RANGE)
    values = np.asarray(honest(photos))[:, 0]
    np.testing.assert_array_equal(top[0], np.argsort(-values, kind="stable")[:5])


def test_default_layers_skip_inputs_and_thin_layers(pair):
    fooling, _ = pair
    layers = default_layers(fooling)
    assert "input_layer" not in " ".join(layers) and "gate" not in layers and "unit" not in layers
    assert default_layers(fooling, max_layers=2) == [layers[0], layers[-1]]


def test_layers_inside_a_nested_model(pair, photos):
    _, honest = pair
    inputs = keras.Input((SIZE, SIZE, 3))
    outer = keras.Model(inputs, honest(inputs), name="outer")
    layers = default_layers(outer)
    assert "honest/natural_branch" in layers
    report = path_similarity(outer, photos[:2], photos[2:10], photos[10:20], None, RANGE)
    assert report.layers == tuple(layers) and np.all(np.isfinite(report.scores))


def test_layer_features_are_spatial_means(pair, photos):
    _, honest = pair
    paths, features = layer_features(honest, photos[:3], ["natural_branch"], RANGE)
    maps = keras.Model(honest.inputs[0], honest.get_layer("natural_branch").output)(photos[:3])
    np.testing.assert_allclose(features[0], np.asarray(maps).mean(axis=(1, 2)), rtol=1e-5)
    assert paths == ["natural_branch"]


def test_photos_from_a_folder(tmp_path, pair, photos, visualizations):
    _, honest = pair
    for index, photo in enumerate(photos[:12]):
        pixels = np.round((photo + 1) * 127.5).astype(np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"photo_{index:02d}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    loaded = load_photos(tmp_path, SIZE)
    assert loaded.shape == (12, SIZE, SIZE, 3) and 0 <= loaded.min() and loaded.max() <= 255
    report = trust_check(
        neuron(honest, "unit", 0), visualizations["honest"][:1], tmp_path, 4, HONEST_LAYERS, RANGE
    )
    assert report.scores.shape == (1,) and np.isfinite(report.scores[0])


# --------------------------------------------------------------------------- errors


def test_bad_input_gets_clear_errors(tmp_path, pair, photos):
    _, honest = pair
    objective = neuron(honest, "unit", 0)
    vis = photos[:1]
    with pytest.raises(MetricInputError, match="one image per combination"):
        trust_check(objective, photos[:2], photos, 4)
    with pytest.raises(MetricInputError, match="k must be"):
        trust_check(objective, vis, photos[:4], 4)
    with pytest.raises(MetricInputError, match="at least 2"):
        path_similarity(honest, vis, photos[:1], photos[1:3])
    with pytest.raises(MetricInputError, match="needs at least 8"):
        path_similarity(honest, vis, photos[:4], photos[4:8], layers=["unit"])
    with pytest.raises(MetricInputError, match="channel"):
        path_similarity(honest, vis[..., :1], photos[:4], photos[4:8])
    with pytest.raises(MetricInputError, match="no images"):
        load_photos(tmp_path, SIZE)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(MetricInputError, match="broken.png"):
        load_photos(tmp_path, SIZE)
    with pytest.raises(MetricInputError, match="does not exist"):
        load_photos(tmp_path / "missing", SIZE)


def test_photos_far_outside_their_range_are_refused(pair, photos, visualizations):
    _, honest = pair
    objective = neuron(honest, "unit", 0)
    vis = visualizations["honest"][:1]
    with pytest.raises(MetricInputError, match="far outside their range .*photos_range="):
        trust_check(objective, vis, photos * 1e30, 4, HONEST_LAYERS, RANGE)
    with pytest.raises(MetricInputError, match="photos hold values from"):
        trust_check(objective, vis, (photos + 1) * 127.5, 4, HONEST_LAYERS, RANGE)
    scaled = (photos + 1) * 127.5
    report = trust_check(objective, vis, scaled, 4, HONEST_LAYERS, RANGE, photos_range=(0, 255))
    assert np.isfinite(report.scores).all()


@pytest.mark.parametrize(
    ("size", "message"),
    [(10**5, "size=100000 is over the limit max_size"), (0, "positive integers"), ("a", "side")],
)
def test_a_bad_photo_size_is_one_line(tmp_path, size, message):
    Image.new("RGB", (8, 8)).save(tmp_path / "photo.png")
    with pytest.raises(MetricInputError, match=message) as error:
        load_photos(tmp_path, size)
    assert "\n" not in str(error.value)


def test_photo_folders_are_read_within_the_limits(tmp_path):
    for index in range(3):
        Image.new("RGB", (8, 8), (index, 0, 0)).save(tmp_path / f"photo{index}.png")
    with pytest.raises(MetricInputError, match="holds 3 photos, over the limit max_examples=2"):
        load_photos(tmp_path, SIZE, limits=maco_tf.Limits(max_examples=2))
    assert load_photos(tmp_path, SIZE, limit=2, limits=maco_tf.Limits(max_examples=2)).shape[0] == 2
    with pytest.raises(MetricInputError, match="max_batch_memory"):
        load_photos(tmp_path, SIZE, limits=maco_tf.Limits(max_batch_memory=100))
    with pytest.raises(MetricInputError, match="photo0.png.*max_image_pixels"):
        load_photos(tmp_path, SIZE, limits=maco_tf.Limits(max_image_pixels=63))
    rotated = tmp_path / "photo3.jpg"
    exif_rotated_jpeg(rotated)  # upright 4 wide x 8 high, red on top
    upright = load_photos(tmp_path, (8, 4))[3]
    assert upright[1, 2, 0] > 200 > upright[1, 2, 2] and upright[6, 2, 2] > 200
