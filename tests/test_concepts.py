"""CRAFT concept objectives: a tiny CNN split as CRAFT needs, CraftTf fitted on two textures."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from xplique.concepts import CraftManagerTf, CraftTf, HolisticCraftTf
from xplique.concepts.tf.layered_model_latent_extractor import LayeredModelExtractorBuilder

import maco_tf
from maco_tf.core.objectives import compile_objective
from maco_tf.targets.concepts import (
    ConceptIndexError,
    ConceptModelError,
    ConceptVisualization,
    CraftNotFittedError,
    concept_objective,
    visualize_concepts,
)
from maco_tf.targets.units import TargetIndexError

SIZE = 32
NB_CONCEPTS = 2
IMAGE = 96  # MACO image side (crops are resized to the 32 px input)


def _stripes(rng: np.random.Generator, size: int) -> np.ndarray:
    r = np.arange(size)
    rows, cols = np.meshgrid(r, r, indexing="ij")
    angle, period = rng.uniform(0, np.pi), rng.uniform(5, 8)
    wave = np.cos(2 * np.pi * (cols * np.cos(angle) + rows * np.sin(angle)) / period)
    return 0.8 * wave[..., None] * np.array([1.0, 0.3, -1.0])


def _checks(rng: np.random.Generator, size: int) -> np.ndarray:
    cells = (rng.random((size // 4, size // 4)) > 0.5) * 2.0 - 1.0
    return np.kron(cells, np.ones((4, 4)))[..., None] * np.array([-0.3, 0.8, 0.2])


def two_textures(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class 0: stripes on the left, checks on the right; class 1: checks only."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for i in range(n):
        image = _checks(rng, SIZE)
        if i % 2 == 0:
            image[:, : SIZE // 2] = _stripes(rng, SIZE)[:, : SIZE // 2]
        images.append(image + rng.normal(0, 0.05, image.shape))
        labels.append(i % 2)
    return np.clip(np.asarray(images, np.float32), -1, 1), np.asarray(labels)


class CenterImage(keras.layers.Layer):
    """Subtract each image's mean colour: flat images give no texture response."""

    def call(self, images):
        return images - keras.ops.mean(images, axis=(1, 2), keepdims=True)


def split_cnn() -> tuple[keras.Model, keras.Model, keras.Model]:
    """A tiny CNN and its CRAFT split: g (image -> ReLU latent 16x16x16), h (latent -> logits)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    x = CenterImage(name="center")(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(x)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="conv2")(x)
    g = keras.Model(inputs, x, name="g")
    latent = keras.Input(x.shape[1:], name="latent")
    y = keras.layers.GlobalAveragePooling2D(name="pool")(latent)
    h = keras.Model(latent, keras.layers.Dense(2, name="logits")(y), name="h")
    full = keras.Model(inputs, h(g(inputs)), name="full")
    return full, g, h


@pytest.fixture(scope="module")
def fitted():
    full, g, h = split_cnn()
    images, labels = two_textures(64, seed=0)
    full.compile(
        keras.optimizers.Adam(3e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    full.fit(images, labels, epochs=8, batch_size=16, verbose=0)
    craft = CraftTf(g, h, number_of_concepts=NB_CONCEPTS, batch_size=64, patch_size=16)
    craft.fit(images[labels == 0][:16], class_id=0)
    return craft, g


@pytest.fixture(scope="module")
def concepts_run(fitted):
    craft, _ = fitted
    return visualize_concepts(
        craft, steps=48, crops=4, size=IMAGE, box_size=0.8, seed=0, whole_views=0, noise=0.08
    )


def _numpy_dot_cossim(vector: np.ndarray, direction: np.ndarray, power: float) -> float:
    dot = float(vector @ direction)
    cosine = dot / (np.linalg.norm(vector) * np.linalg.norm(direction))
    return dot * max(cosine, 0.1) ** power


def test_latent_model_is_a_keras_model_with_image_input(fitted):
    craft, g = fitted
    assert isinstance(craft.input_to_latent_model, keras.Model)
    objective = concept_objective(craft)
    assert objective.model is g
    assert tuple(objective.layers[0].shape) == (None, 16, 16, 16)
    assert objective.names == [[f"Concept#{k}" for k in range(NB_CONCEPTS)]]
    # the same latent addressed inside a bigger model that contains g
    outer_input = keras.Input((SIZE, SIZE, 3))
    outer = keras.Model(outer_input, craft.latent_to_logit_model(g(outer_input)))
    on_outer = concept_objective(craft, model=outer, layer=f"{g.name}/conv2")
    assert on_outer.model is outer
    image = np.random.default_rng(0).uniform(-1, 1, (1, SIZE, SIZE, 3)).astype(np.float32)
    np.testing.assert_allclose(
        keras.Model(outer.inputs[0], on_outer.layers[0])(image), g(image), rtol=1e-5, atol=1e-6
    )


def test_concept_loss_pools_space_like_craft(fitted):
    craft, _ = fitted
    bank = craft.factorization.concept_bank_w
    latent = np.random.default_rng(1).random((1, 16, 16, 16)).astype(np.float32)
    for power in (0.0, 1.0, 3.0):
        compiled = compile_objective(concept_objective(craft, [1, 0], cossim_pow=power))
        pooled = latent[0].mean(axis=(0, 1))  # CraftTf averages crops' activations over space
        for row, concept in enumerate((1, 0)):
            value = compiled.funcs[0](
                tf.constant(latent), tf.constant(compiled.masks[0][row][None])
            )
            expected = _numpy_dot_cossim(pooled, bank[concept], power)
            np.testing.assert_allclose(float(tf.reduce_mean(value)), expected, rtol=1e-4)


def test_visualize_concepts_end_to_end(concepts_run, fitted):
    craft, _ = fitted
    run = concepts_run
    assert isinstance(run, ConceptVisualization)
    assert isinstance(run, maco_tf.Visualization)
    assert run.names == tuple(f"Concept#{k}" for k in range(NB_CONCEPTS))
    assert run.concept_ids == tuple(range(NB_CONCEPTS))
    assert run.class_id == 0
    assert run.images.shape == (NB_CONCEPTS, IMAGE, IMAGE, 3)
    assert np.all(np.isfinite(run.images))
    assert run.images.min() >= -1.0 and run.images.max() <= 1.0
    # importances: CRAFT's Sobol total indices, one per concept, ranked in decreasing order
    assert run.importances.shape == (NB_CONCEPTS,)
    np.testing.assert_allclose(run.importances, craft.sensitivity.importances)
    assert sorted(run.ranking.tolist()) == list(range(NB_CONCEPTS))
    assert np.all(np.diff(run.importances[run.ranking]) <= 0)
    assert run.ranked_concepts[0] == int(np.argmax(run.importances))
    # the concept objective increases during the optimisation, for every concept
    history = run.loss_history
    assert history.shape == (48, NB_CONCEPTS)
    start, end = history[0], history[-8:].mean(axis=0)
    print("concept objective: start", start.round(3), "end", end.round(3))
    assert np.all(end > start)
    assert np.mean(end / start) > 1.5


def _is_stripes(crops: np.ndarray) -> np.ndarray:
    """Stripes are orange/blue (strong blue channel), checks magenta/green (weak blue)."""
    return np.abs(np.asarray(crops)[..., 2]).mean(axis=(1, 2)) > 0.35


def test_concepts_are_the_two_textures_and_stripes_matter(concepts_run, fitted):
    craft, _ = fitted
    crops, crops_u = craft.factorization.crops, craft.factorization.crops_u
    top = [np.argsort(crops_u[:, k])[::-1][:5] for k in range(NB_CONCEPTS)]
    stripes_share = [float(_is_stripes(np.asarray(crops)[ids]).mean()) for ids in top]
    print("share of stripes among each concept's top-5 crops:", stripes_share)
    assert sorted(stripes_share) == [0.0, 1.0]
    # only class 0 has stripes: the stripes concept is the important one
    stripes_concept = int(np.argmax(stripes_share))
    assert concepts_run.ranked_concepts[0] == stripes_concept


def test_each_image_points_to_its_own_concept(concepts_run, fitted):
    craft, g = fitted
    bank = craft.factorization.concept_bank_w
    latent = g(tf.image.resize(concepts_run.images, (SIZE, SIZE)), training=False)
    pooled = np.asarray(latent).mean(axis=(1, 2))  # the whole image, pooled as CRAFT pools
    cosine = (pooled @ bank.T) / np.outer(
        np.linalg.norm(pooled, axis=1), np.linalg.norm(bank, axis=1)
    )
    print("cos(image of concept i, concept j):\n", cosine.round(3))
    assert np.all(np.argmax(cosine, axis=0) == np.arange(NB_CONCEPTS))
    assert np.all(np.diag(cosine) > 0.8)


def test_visualize_chosen_concepts_and_given_importances(fitted):
    craft, _ = fitted
    run = visualize_concepts(
        craft,
        class_id=0,
        concept_ids=[1, 0],
        importances=[0.1, 0.4],
        steps=2,
        crops=1,
        size=None,
        seed=0,
    )
    assert run.names == ("Concept#1", "Concept#0")
    assert run.images.shape == (2, SIZE, SIZE, 3)
    np.testing.assert_allclose(run.importances, [0.4, 0.1])
    assert run.ranked_concepts == (1, 0)
    none = visualize_concepts(craft, concept_ids=0, importances=False, steps=1, crops=1, size=None)
    assert none.importances is None and none.ranking is None and none.ranked_concepts is None
    twice = visualize_concepts(craft, importances=[0.1, 0.4], copies=2, steps=1, crops=1, size=None)
    assert twice.names == ("Concept#0 #0", "Concept#0 #1", "Concept#1 #0", "Concept#1 #1")
    assert twice.concept_ids == (0, 0, 1, 1)
    np.testing.assert_allclose(twice.importances, [0.1, 0.1, 0.4, 0.4])
    assert twice.ranked_concepts == (1, 0)


def test_craft_manager_picks_the_class(fitted):
    craft, g = fitted
    images, labels = two_textures(16, seed=2)
    manager = CraftManagerTf(
        g, craft.latent_to_logit_model, images, labels, [0, 1], NB_CONCEPTS, patch_size=16
    )
    manager.fit()
    run = visualize_concepts(manager, class_id=1, importances=False, steps=1, crops=1)
    assert run.class_id == 1 and len(run) == NB_CONCEPTS
    with pytest.raises(TargetIndexError, match=r"classes: \[0, 1\]"):
        visualize_concepts(manager, class_id=5, steps=1)
    with pytest.raises(maco_tf.MacoError, match="class_id="):
        visualize_concepts(manager, steps=1)


def test_holistic_craft_scores_every_position():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same", activation="relu", name="conv2")(x)
    y = keras.layers.Dense(2, name="logits")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, y)
    extractor = LayeredModelExtractorBuilder.build(model, split_layer=2, batch_size=8)
    craft = HolisticCraftTf(extractor, number_of_concepts=3)
    craft.fit(two_textures(8, seed=1)[0], class_id=1)
    objective = concept_objective(craft, cossim_pow=2.0)
    assert tuple(objective.layers[0].shape) == (None, 16, 16, 6)
    compiled = compile_objective(objective)
    latent = np.random.default_rng(2).random((1, 16, 16, 6)).astype(np.float32)
    bank = craft.factorization.concept_bank_w
    value = compiled.funcs[0](tf.constant(latent), tf.constant(compiled.masks[0][1][None]))
    expected = np.mean([_numpy_dot_cossim(v, bank[1], 2.0) for v in latent.reshape(-1, 6)])
    np.testing.assert_allclose(float(tf.reduce_mean(value)), expected, rtol=1e-4)
    run = visualize_concepts(craft, steps=2, crops=1, size=None, seed=0)
    assert run.class_id == 1 and run.images.shape == (3, SIZE, SIZE, 3)
    assert run.importances is None  # HolisticCraft's importance needs images and an operator


def test_bad_input(fitted):
    craft, g = fitted
    _, g2, h2 = split_cnn()
    with pytest.raises(CraftNotFittedError, match="not been fitted"):
        concept_objective(CraftTf(g2, h2, number_of_concepts=2))
    with pytest.raises(ConceptIndexError, match="out of range.*valid: 0-1"):
        concept_objective(craft, [1, NB_CONCEPTS])
    with pytest.raises(ConceptIndexError):
        concept_objective(craft, -1)
    with pytest.raises(ConceptIndexError, match="integers"):
        concept_objective(craft, [1.5])
    with pytest.raises(TargetIndexError, match="fitted on class 0"):
        visualize_concepts(craft, class_id=1, steps=1)
    with pytest.raises(ConceptModelError, match="8 channels"):
        concept_objective(craft, layer="conv1")
    with pytest.raises(maco_tf.MacoError, match="importances"):
        visualize_concepts(craft, importances=[1.0, 2.0, 3.0], steps=1)
    with pytest.raises(ConceptModelError, match="CraftTf"):
        concept_objective(object())
    assert issubclass(CraftNotFittedError, maco_tf.MacoError)
    assert issubclass(ConceptModelError, maco_tf.MacoError)
    assert issubclass(ConceptIndexError, maco_tf.MacoError)


def test_save_concept_images(concepts_run, tmp_path):
    paths = maco_tf.save_visualization(
        tmp_path, "concept0", concepts_run.images[0], concepts_run.transparency[0]
    )
    assert paths["image"].stat().st_size > 0
