"""Feature accentuation on two small models: planted orientation detectors and the tiny CNN.

The planted model (:mod:`tests.planted`) has two hand-wired simple cells, tuned to gratings at
45 and 135 degrees, read as the two logits of a classifier; the seed is a 45-degree grating
and the accentuation targets the 135-degree class. Closeness to the seed is measured by
``Accentuation.seed_distance``: the root mean squared pixel difference as a fraction of the
value range's width (0.05 = 5 % of the range, a PSNR of 26 dB).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import maco_tf
from maco_tf.core.objectives import compile_objective
from maco_tf.targets.accentuation import (
    AccentuationInputError,
    accentuate,
    objective_values,
    prepare_seeds,
    seed_distance,
)
from maco_tf.targets.units import class_logits

from .planted import MODEL_SIZE, PERIOD, grating, planted_model

SIZE = 48  # the seeds; the models take 32 px
SETTINGS = {"steps": 48, "crops": 4, "whole_views": 1, "seed": 0, "size": SIZE}
#: Accentuations stay within this RMS distance of their seed (fraction of the range).
MAX_DISTANCE = 0.15
TARGET = 1  # the 135-degree class; the seed shows 45 degrees


def seed_grating() -> np.ndarray:
    """A 45-degree grating over a blurry colour image: every frequency has some magnitude.

    (The accentuation keeps the seed's magnitude; a pure grating has none at 135 degrees.)
    """
    wave = grating(SIZE, 45.0, PERIOD * SIZE / MODEL_SIZE, contrast=0.2)
    return np.clip(wave + 0.5 * smooth_seed(0), -0.95, 0.95)


@pytest.fixture(scope="module")
def classifier() -> keras.Model:
    """The planted detectors' responses, times 4, as the logits of a two-class classifier."""
    detectors = planted_model()
    logits = keras.layers.Rescaling(4.0, name="logits")(detectors.output)
    return keras.Model(detectors.inputs, logits, name="orientation_classifier")


def probabilities(model, images: np.ndarray) -> np.ndarray:
    size = model.inputs[0].shape[1:3]
    return tf.nn.softmax(model(tf.image.resize(images, size, antialias=True))).numpy()


def smooth_seed(seed: int, size: int = SIZE) -> np.ndarray:
    """A blurry colour image in (-1, 1): random noise, low-pass filtered in Fourier space."""
    rng = np.random.default_rng(seed)
    freqs = np.sqrt(np.fft.fftfreq(size)[:, None] ** 2 + np.fft.rfftfreq(size)[None] ** 2)
    spectra = np.fft.rfft2(rng.normal(size=(3, size, size))) / np.maximum(freqs, 1 / size) ** 1.2
    image = np.moveaxis(np.fft.irfft2(spectra, s=(size, size)), 0, -1)
    return np.tanh(image / image.std()).astype(np.float32) * 0.9


@pytest.fixture(scope="module")
def accentuated(classifier):
    return accentuate(class_logits(classifier, TARGET), seed_grating(), **SETTINGS)


def test_objective_rises_while_the_image_stays_close_to_its_seed(accentuated):
    run = accentuated
    assert run.images.shape == run.seeds.shape == (1, SIZE, SIZE, 3)
    assert run.transparency.shape == run.images.shape and np.all(run.transparency >= 0)
    assert np.all(np.abs(run.images) <= 1.0)
    print(
        f"objective {run.objective_before[0]:.4f} -> {run.objective_after[0]:.4f}, distance "
        f"{run.seed_distance[0]:.4f}"
    )
    # objective = logit / 2 classes, positive on the seed (the cells see the blurry image)
    assert run.objective_before[0] > 0
    assert run.objective_after[0] > 1.5 * run.objective_before[0]
    assert 0 < run.seed_distance[0] < MAX_DISTANCE
    np.testing.assert_allclose(
        run.seed_distance, seed_distance(run.images, run.seeds, (-1, 1)), rtol=1e-6
    )


def test_accentuation_beats_a_random_perturbation_of_the_same_norm(classifier, accentuated):
    seed = accentuated.seeds
    change = accentuated.images - seed
    before = probabilities(classifier, seed)[0, TARGET]
    after = probabilities(classifier, accentuated.images)[0, TARGET]
    rng = np.random.default_rng(0)
    random_gains = []
    for _ in range(20):
        noise = rng.normal(size=seed.shape).astype(np.float32)
        noise *= np.linalg.norm(change) / np.linalg.norm(noise)
        perturbed = np.clip(seed + noise, -1, 1)
        random_gains.append(probabilities(classifier, perturbed)[0, TARGET] - before)
    print(f"p(B) {before:.4f} -> {after:.4f}; random: {np.mean(random_gains):+.5f}")
    assert after - before > 10 * np.abs(random_gains).mean()
    assert after > 1.5 * before


def test_penalty_keeps_the_image_closer(classifier, accentuated):
    free = accentuate(class_logits(classifier, TARGET), seed_grating(), penalty=0.0, **SETTINGS)
    assert free.seed_distance[0] > 1.2 * accentuated.seed_distance[0]
    assert free.objective_after[0] > accentuated.objective_after[0]
    assert free.settings["penalty"] == 0.0 and accentuated.settings["penalty"] == 1.0


def test_one_seed_per_combination_or_one_for_all(tiny_model):
    objective = class_logits(tiny_model, [1, 2])
    seeds = np.stack([smooth_seed(1), smooth_seed(2)])
    settings = {**SETTINGS, "steps": 4}
    each = accentuate(objective, seeds, **settings)
    for i in range(2):  # each image starts from its own seed and stays by it
        own = seed_distance(each.images[i : i + 1], seeds[i : i + 1], (-1, 1))[0]
        other = seed_distance(each.images[i : i + 1], seeds[1 - i : 2 - i], (-1, 1))[0]
        assert own < 0.2 * other
    shared = accentuate(objective, seeds[0], **settings)
    np.testing.assert_array_equal(shared.seeds[0], shared.seeds[1])
    assert shared.names == each.names == ("Neuron#logits_1", "Neuron#logits_2")


def test_objective_values_score_whole_images(tiny_model):
    compiled = compile_objective(class_logits(tiny_model, [4, 7]))
    images = np.stack([smooth_seed(3, 32), smooth_seed(4, 32)])
    logits = tiny_model(images).numpy()
    np.testing.assert_allclose(
        objective_values(compiled, images), [logits[0, 4] / 10, logits[1, 7] / 10], rtol=1e-4
    )


def test_seeds_are_resized_to_the_size(tiny_model):
    seeds = prepare_seeds(tiny_model, smooth_seed(5, 64), 2, (-1, 1), size=(40, 40))
    assert seeds.shape == (2, 40, 40, 3) and np.abs(seeds).max() <= 1.0
    assert prepare_seeds(tiny_model, smooth_seed(5, 64), 1, (-1, 1)).shape == (1, 32, 32, 3)
    with pytest.raises(AccentuationInputError, match="aspect ratio"):
        prepare_seeds(tiny_model, smooth_seed(5, 64)[:, :48], 1, (-1, 1))


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (np.zeros((SIZE, SIZE, 1), np.float32), "1 channel"),
        (np.zeros((SIZE, SIZE), np.float32), "shape"),
        (np.zeros((2, 2, SIZE, SIZE, 3), np.float32), "shape"),
        (np.zeros((16, 16, 3), np.float32), "smaller than the model input"),
        (np.full((SIZE, SIZE, 3), 200.0, np.float32), "x / 255"),
        (np.full((SIZE, SIZE, 3), np.nan, np.float32), "NaN"),
        (np.zeros((3, SIZE, SIZE, 3), np.float32), "3 seed images for 2"),
        ("photo.jpg", "numeric array"),
    ],
)
def test_bad_seeds_get_a_clear_error(tiny_model, images, message):
    objective = class_logits(tiny_model, [1, 2])
    with pytest.raises(AccentuationInputError, match=message):
        accentuate(objective, images, steps=1, size=SIZE)


def test_bad_settings_get_a_clear_error(tiny_model):
    objective = class_logits(tiny_model, 1)
    with pytest.raises(maco_tf.InvalidSettingError, match="penalty"):
        accentuate(objective, smooth_seed(0), penalty=-1.0)
    with pytest.raises(maco_tf.InvalidSettingError, match="finite in float32"):
        accentuate(objective, smooth_seed(0), penalty=1e39)
    with pytest.raises(maco_tf.InvalidSettingError, match="method"):
        accentuate(objective, smooth_seed(0), method="maco")
    with pytest.raises(maco_tf.InvalidSettingError, match="size"):
        accentuate(objective, smooth_seed(0), size=(16, 16))
    with pytest.raises(maco_tf.InvalidSettingError, match="steps"):
        accentuate(objective, smooth_seed(0), steps=0)
