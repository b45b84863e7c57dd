import numpy as np
import pytest
import tensorflow as tf
from xplique.features_visualizations import Objective

import maco_tf
from maco_tf.core.objectives import (
    callable_key,
    compile_objective,
    image_term_values,
    per_image_losses,
    with_image_term,
)


def test_combinations_follow_xplique_order(tiny_model):
    objective = Objective.neuron(tiny_model, "logits", [1, 2]) + Objective.channel(
        tiny_model, "conv1", [0, 3, 5]
    )
    compiled = compile_objective(objective)
    _, _, xplique_names, input_shape = objective.compile()
    assert list(compiled.names) == list(xplique_names)
    assert compiled.nb_combinations == input_shape[0] == 6
    assert compiled.masks[0].shape == (6, 10)
    assert compiled.masks[1].shape == (6, 32, 32, 8)
    # second sub-objective varies fastest
    assert compiled.masks[0][:3, 1].tolist() == [1, 1, 1]
    assert compiled.masks[1][:3, 0, 0].argmax(-1).tolist() == [0, 3, 5]


def test_multipliers_combine_as_written(tiny_model):
    """a*2 + b*3 is 2a + 3b (Xplique's own compile gives (2a + b) * 3)."""
    a = Objective.neuron(tiny_model, "logits", 1)
    b = Objective.neuron(tiny_model, "logits", 4)
    compiled = compile_objective(a * 2 + b * 3)
    outputs = tf.constant(np.arange(20, dtype=np.float32).reshape(2, 10))  # 1 image, 2 crops
    masks = [tf.constant(m) for m in compiled.masks]
    value = per_image_losses(
        compiled, [outputs, outputs], masks, tf.constant(compiled.multipliers), 1, 2
    ).numpy()
    # mean over crops of logit1 = (1 + 11) / 2 = 6; of logit4 = (4 + 14) / 2 = 9
    # Xplique's neuron loss is a mean over the layer's units: divide by 10
    np.testing.assert_allclose(value, [(2 * 6 + 3 * 9) / 10], rtol=1e-6)
    minus = compile_objective(
        Objective.neuron(tiny_model, "logits", 1) - Objective.neuron(tiny_model, "logits", 4)
    )
    np.testing.assert_allclose(minus.multipliers, [1, -1])
    with pytest.raises(maco_tf.InvalidSettingError, match="weights contains NaN or infinite"):
        compile_objective(a * 1e39)  # finite in float64, infinite in the float32 loop


def test_direction_scores_each_crop_alone(tiny_model):
    vector = np.linspace(-1, 1, 10).astype(np.float32)
    compiled = compile_objective(Objective.direction(tiny_model, "logits", vector))
    rng = np.random.default_rng(0)
    outputs = rng.normal(size=(4, 10)).astype(np.float32)  # 2 images x 2 crops
    masks = [tf.constant(m) for m in compiled.masks]
    masks = [tf.concat([m, m], 0) for m in masks]
    both = per_image_losses(
        compiled, [tf.constant(outputs)], masks, tf.constant([1.0]), 2, 2
    ).numpy()
    first_alone = per_image_losses(
        compiled, [tf.constant(outputs[:2])], [m[:1] for m in masks], tf.constant([1.0]), 1, 2
    ).numpy()
    np.testing.assert_allclose(both[0], first_alone[0], rtol=1e-5)
    changed = outputs.copy()
    changed[2:] *= 5.0
    other = per_image_losses(
        compiled, [tf.constant(changed)], masks, tf.constant([1.0]), 2, 2
    ).numpy()
    np.testing.assert_allclose(other[0], both[0], rtol=1e-5)


def test_equal_closures_share_a_key(tiny_model):
    first = Objective.neuron(tiny_model, "logits", 1).funcs[0]
    second = Objective.neuron(tiny_model, "logits", 5).funcs[0]
    channel = Objective.channel(tiny_model, "conv1", 1).funcs[0]
    assert callable_key(first) == callable_key(second)
    assert callable_key(first) != callable_key(channel)


def test_batch_similarity_known_values():
    from maco_tf.core.objectives import batch_similarity

    rng = np.random.default_rng(0)
    same = np.repeat(rng.normal(size=(1, 4, 4, 3)), 2, axis=0).astype(np.float32)
    assert abs(float(batch_similarity(tf.constant(same), 2, 1)) - 1.0) < 1e-5
    only_first = np.zeros((1, 4, 4, 3), np.float32)
    only_first[..., 0] = 1.0
    only_second = np.zeros((1, 4, 4, 3), np.float32)
    only_second[..., 1] = 1.0
    disjoint = tf.constant(np.concatenate([only_first, only_second]))
    assert abs(float(batch_similarity(disjoint, 2, 1))) < 1e-6
    assert float(batch_similarity(tf.constant(same[:1]), 1, 1)) == 0.0


def test_repeat_names_and_masks(tiny_model):
    from maco_tf.core.objectives import repeat

    compiled = repeat(compile_objective(Objective.neuron(tiny_model, "logits", [1, 2])), 2)
    assert compiled.names == (
        "Neuron#logits_1 #0",
        "Neuron#logits_1 #1",
        "Neuron#logits_2 #0",
        "Neuron#logits_2 #1",
    )
    assert compiled.masks[0][:, 1].tolist() == [1, 1, 0, 0]


def _squared_distance(images, reference):
    return tf.reduce_sum(tf.square(images - reference), axis=[1, 2, 3])


def test_image_terms_score_the_images_against_their_masks(tiny_model):
    compiled = compile_objective(Objective.neuron(tiny_model, "logits", [1, 2]))
    references = np.stack([np.zeros((4, 4, 3)), np.ones((4, 4, 3))]).astype(np.float32)
    termed = with_image_term(compiled, _squared_distance, references, -0.5)
    assert len(termed.masks) == 2 and termed.multipliers.tolist() == [1.0, -0.5]
    assert termed.structure_key() != compiled.structure_key()
    images = tf.fill((2, 4, 4, 3), 2.0)
    masks = [tf.constant(m) for m in termed.masks]
    values = image_term_values(termed, images, masks, tf.constant(termed.multipliers))
    np.testing.assert_allclose(values.numpy(), [-0.5 * 48 * 4.0, -0.5 * 48 * 1.0])
    with pytest.raises(ValueError, match="one mask per combination"):
        with_image_term(compiled, _squared_distance, references[:1], -1.0)
